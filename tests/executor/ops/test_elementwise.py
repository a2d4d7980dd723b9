"""Elementwise kernels (not activations) against numpy / math and the MIL conversion rules."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


floats = hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=4), elements=st.floats(-1e6, 1e6, width=32))


@settings(max_examples=60, deadline=None)
@given(floats, st.sampled_from(["int8", "uint8", "int16", "uint16", "int32", "bool", "fp16", "fp32"]))
def test_cast_truncates_and_saturates(x, dtype):
    got = call("cast", "iOS17", x=x, dtype=np.array(dtype))
    if dtype == "bool":
        np.testing.assert_array_equal(got, x != 0)
    elif dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        want = np.clip(np.trunc(x.astype(np.float64)), info.min, info.max).astype(dtype)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_array_equal(got, x)  # fp16 values are rounded by the runner in fp16 mode


def test_cast_targets_by_opset():
    with pytest.raises(ValueError, match="not supported at this opset"):
        call("cast", "iOS16", x=np.zeros(2), dtype="int8")
    assert call("cast", "iOS17", x=np.array([300, -5], np.int32), dtype="uint8").tolist() == [255, 0]
    assert call("cast", x=np.array([True, False]), dtype="fp32").tolist() == [1.0, 0.0]
    assert call("cast", x=np.array([np.nan, 2.9], np.float32), dtype="int32").tolist() == [0, 2]


@pytest.mark.parametrize("op, ref, lo, hi", [
    ("acos", np.arccos, -1, 1), ("asin", np.arcsin, -1, 1), ("atan", np.arctan, -9, 9), ("atanh", np.arctanh, -0.99, 0.99),
    ("cosh", np.cosh, -5, 5), ("sinh", np.sinh, -5, 5), ("tan", np.tan, -1.5, 1.5), ("erf", np.vectorize(math.erf), -4, 4),
])
def test_unary_functions(op, ref, lo, hi):
    x = np.linspace(lo, hi, 37, dtype=np.float32)
    np.testing.assert_allclose(call(op, x=x), ref(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    assert np.shape(call(op, x=np.float32(0.5))) == ()


def test_threshold_clip_and_epsilon_ops():
    x = np.array([-2, 0.5, 3], np.float32)
    assert call("threshold", x=x, alpha=np.float32(1)).tolist() == [1, 1, 3]
    assert call("clip", "iOS17", x=x, alpha=np.float32(0), beta=np.float32(1)).tolist() == [0, 0.5, 1]
    with pytest.raises(ValueError, match="smaller than beta"):
        call("clip", "iOS17", x=x, alpha=np.float32(1), beta=np.float32(1))
    x = np.array([1, 4], np.float32)
    eps = np.float16(0.1)  # iOS17 lets epsilon's dtype differ from x's
    np.testing.assert_allclose(call("rsqrt", "iOS17", x=x, epsilon=eps), 1 / np.sqrt(x + np.float32(eps)), rtol=1e-6)
    np.testing.assert_allclose(call("inverse", "iOS17", x=x, epsilon=eps), 1 / (x + np.float32(eps)), rtol=1e-6)
    np.testing.assert_allclose(call("log", "iOS17", x=x, epsilon=eps), np.log(x + np.float32(eps)), rtol=1e-6)


def test_integer_division_mod_and_pow():
    x, y = np.array([7, -7, 7, -7], np.int32), np.array([2, 2, -2, -2], np.int32)
    assert call("floor_div", x=x, y=y).tolist() == [3, -4, -4, 3]  # toward negative infinity
    assert call("mod", x=x, y=y).tolist() == [1, 1, -1, -1]  # the divisor's sign, as Python's %
    np.testing.assert_allclose(call("pow", x=np.array([2, 4], np.int32), y=np.array([-1, 2], np.int32)), [0.5, 16])
    assert call("pow", x=np.float32(-8), y=np.float32(2)) == 64
