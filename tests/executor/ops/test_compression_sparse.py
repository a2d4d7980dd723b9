"""Sparse constexpr ops (iOS18): lut_to_sparse and sparse_blockwise_shift_scale, followed by
sparse_to_dense, equal the dense ops applied to the densified data."""

import numpy as np
import pytest

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


@pytest.mark.parametrize("vector", [1, 2])
def test_lut_to_sparse_then_dense_equals_lut_to_dense(vector):
    rng = np.random.default_rng(0)
    mask = (rng.random((4, 6)) < 0.6).astype(np.uint8)
    nbits = 2
    nonzero = rng.integers(0, 2**nbits, int(mask.sum())).astype(np.uint8)
    lut = rng.standard_normal((2, 1, 2**nbits, vector)).astype(np.float32)  # two tables over axis 0
    axis = np.int32(0) if vector > 1 else None
    out_mask, values = call("constexpr_lut_to_sparse", "iOS18", indices_mask=mask, indices_nonzero_data=nonzero, lut=lut, vector_axis=axis)
    dense = call("constexpr_sparse_to_dense", "iOS18", nonzero_data=values, mask=out_mask)
    indices = np.zeros(mask.shape, np.int64)
    indices[mask != 0] = nonzero
    full = call("constexpr_lut_to_dense", "iOS18", indices=indices, lut=lut, vector_axis=axis)
    keep = np.repeat(mask, vector, axis=0) != 0
    np.testing.assert_array_equal(dense, np.where(keep, full, 0))


def test_sparse_blockwise_shift_scale_the_definitions_example():
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]], np.uint8)
    out_mask, values = call("constexpr_sparse_blockwise_shift_scale", "iOS18", data_mask=mask,
                            nonzero_data=np.array([10, 11, 3, 4, 5, 6, 7, 8, 9], np.int8),
                            scale=np.array([[0.1, 0.2, 0.3, 0.4]], np.float32), offset=np.array([[1, 2, 3, 4]], np.int8))
    np.testing.assert_array_equal(out_mask, mask)
    np.testing.assert_allclose(values, [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4], rtol=1e-6)
    with pytest.raises(ValueError, match="ones for"):
        call("constexpr_sparse_blockwise_shift_scale", "iOS18", data_mask=mask, nonzero_data=np.zeros(3, np.int8),
             scale=np.ones((1, 4), np.float32))
