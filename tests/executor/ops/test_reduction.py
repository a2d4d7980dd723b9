"""Reductions against numpy: every reduce_*, negative and empty axes, keep_dims, iOS17 arg dtypes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


REFS = {
    "reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min, "reduce_prod": np.prod,
    "reduce_sum_square": lambda x, **k: np.sum(x * x, **k), "reduce_l1_norm": lambda x, **k: np.sum(np.abs(x), **k),
    "reduce_l2_norm": lambda x, **k: np.sqrt(np.sum(x * x, **k)), "reduce_log_sum": lambda x, **k: np.log(np.sum(x, **k)),
    "reduce_log_sum_exp": lambda x, **k: np.log(np.sum(np.exp(x), **k)),
}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(REFS)), st.integers(0, 2**16), st.booleans())
def test_reductions_over_any_axes(op, seed, keep):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 4, int(rng.integers(1, 4))))
    x = rng.uniform(0.1, 2.0, shape).astype(np.float32)
    rank = len(shape)
    axes = [int(a) - rank * int(rng.integers(0, 2)) for a in rng.choice(rank, int(rng.integers(0, rank + 1)), replace=False)]
    got = call(op, x=x, axes=np.array(axes, np.int32), keep_dims=np.array(keep))
    want = REFS[op](x.astype(np.float64), axis=tuple(axes), keepdims=keep)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(call(op, x=x), REFS[op](x.astype(np.float64)), rtol=1e-5)  # no axes: all of them


def test_log_sum_exp_is_stable():
    x = np.array([[1000.0, 1000.0], [-np.inf, -np.inf]], np.float32)
    got = call("reduce_log_sum_exp", x=x, axes=np.array([1]))
    np.testing.assert_allclose(got, [1000 + np.log(2), -np.inf])


@pytest.mark.parametrize("op, ref", [("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)])
def test_arg_reductions(op, ref):
    x = np.array([[1, 5, 5], [7, 0, 0]], np.float32)
    assert call(op, x=x).tolist() == ref(x, axis=-1).tolist()
    assert call(op, x=x, axis=0, keep_dims=np.array(True)).shape == (1, 3)
    got = call(op, "iOS17", x=x, axis=1, output_dtype=np.array("uint16"))
    assert got.dtype == np.uint16 and got.tolist() == ref(x, axis=1).tolist()
    assert call(op, "iOS17", x=x).dtype == np.int32
    with pytest.raises(ValueError, match="output_dtype"):
        call(op, "iOS17", x=x, output_dtype="int8")
