"""Compressed weights: constexpr ops, folded once at load time into dense constants.

iOS16/17 take their parameters as op attributes (packed bits as uint8 bytes); iOS18 takes them as
inputs with typed sub-byte tensors, which the value decoder has already unpacked to one element
per value.
"""

from __future__ import annotations

import numpy as np

from ..limits import check_shape
from ..program import Kernel
from ..registry import kernel
from ..values import unpack_bits


def _along(v, axis: int, ndim: int) -> np.ndarray:
    """A scalar, or a vector laid along ``axis`` of an ndim tensor, for broadcasting."""
    v = np.asarray(v, dtype=np.float32)
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


@kernel("constexpr_affine_dequantize", opset="iOS16")
class ConstexprAffineDequantize(Kernel):
    """(quantized_data - zero_point) * scale; zero_point and scale scalar or per slice of ``axis``."""

    def compute(self, *, quantized_data, zero_point, scale, axis=0):
        q = np.asarray(quantized_data)
        axis = int(axis) % max(q.ndim, 1)
        check_shape(q.shape, 4, "constexpr_affine_dequantize")  # float32 out of (u)int8 storage: 4x its bytes
        return (q.astype(np.float32) - _along(zero_point, axis, q.ndim)) * _along(scale, axis, q.ndim)


@kernel("constexpr_cast", opset="iOS16")
class ConstexprCast(Kernel):
    """source_val (fp16) as ``output_dtype`` (fp32)."""

    def compute(self, *, source_val, output_dtype="fp32"):
        return np.asarray(source_val).astype(np.float32 if str(output_dtype) == "fp32" else np.float16)


@kernel("constexpr_lut_to_dense", opset="iOS16")
class ConstexprLutToDense(Kernel):
    """lut[indices] reshaped to ``shape``; indices are packed log2(len(lut))-bit values, lowest bit first."""

    def compute(self, *, lut, indices, shape):
        lut = np.asarray(lut)
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        nbits = int(np.log2(lut.shape[0]))
        count = int(np.prod(check_shape(shape, max(lut.itemsize, 8), "constexpr_lut_to_dense"), dtype=object))
        idx = unpack_bits(np.asarray(indices, dtype=np.uint8).reshape(-1), nbits, count)
        return lut[idx].reshape(shape)


@kernel("constexpr_lut_to_dense", opset="iOS18")
class ConstexprLutToDenseIOS18(ConstexprLutToDense):
    """iOS18: indices are a typed tensor of the output's (pre-vector) shape; lut has rank K + 2,
    (block grid..., 2^nbits, VECTOR_SIZE): each block of the output uses its own table, and a
    vector table fills VECTOR_SIZE consecutive elements along ``vector_axis``.
    """

    def compute(self, *, indices, lut, vector_axis=None):
        idx = np.asarray(indices).astype(np.int64)
        lut = np.asarray(lut)
        k = idx.ndim
        grid, vsize = lut.shape[:k], lut.shape[-1]
        # Which table each element uses: its block coordinate along every axis.
        block = [np.arange(idx.shape[d]) // (idx.shape[d] // grid[d]) for d in range(k)]
        coords = np.meshgrid(*block, indexing="ij")
        check_shape(idx.shape + (vsize,), max(lut.itemsize, 4), "constexpr_lut_to_dense")
        check_shape((k,) + idx.shape, 8, "constexpr_lut_to_dense (its block coordinates)")
        values = lut[tuple(coords) + (idx,)]  # (*idx.shape, VECTOR_SIZE)
        if vsize == 1:
            return values[..., 0]
        axis = int(vector_axis) % k
        moved = np.moveaxis(values, -1, axis + 1)  # the vector right after its axis
        shape = list(idx.shape)
        shape[axis] *= vsize
        return moved.reshape(shape)


@kernel("constexpr_sparse_to_dense", opset="iOS16")
class ConstexprSparseToDense(Kernel):
    """Zeros of ``shape`` with nonzero_data written, in order, where the packed bit ``mask`` is 1."""

    def compute(self, *, nonzero_data, mask, shape):
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        count = int(np.prod(check_shape(shape, 8, "constexpr_sparse_to_dense"), dtype=object))
        bits = np.unpackbits(np.asarray(mask, dtype=np.uint8).reshape(-1), bitorder="little")[:count].astype(bool)
        out = np.zeros(count, dtype=np.asarray(nonzero_data).dtype)
        out[bits] = np.asarray(nonzero_data).reshape(-1)
        return out.reshape(shape)


@kernel("constexpr_sparse_to_dense", opset="iOS18")
class ConstexprSparseToDenseIOS18(ConstexprSparseToDense):
    """iOS18: ``mask`` is a uint1 tensor of the output shape (already one element per value)."""

    def compute(self, *, nonzero_data, mask):
        mask = np.asarray(mask).astype(bool)
        check_shape(mask.shape, max(np.asarray(nonzero_data).itemsize, 1), "constexpr_sparse_to_dense")
        out = np.zeros(mask.shape, dtype=np.asarray(nonzero_data).dtype)
        out[mask] = np.asarray(nonzero_data).reshape(-1)
        return out


@kernel("constexpr_blockwise_shift_scale", opset="iOS18")
class ConstexprBlockwiseShiftScale(Kernel):
    """scale * (data - offset), with scale and offset of the same rank as data, one value per block
    (block size along axis i = data.shape[i] / scale.shape[i])."""

    def compute(self, *, data, scale, offset=None):
        check_shape(np.shape(data), 4, "constexpr_blockwise_shift_scale")  # float32 out of 4- or 8-bit storage
        data = np.asarray(data).astype(np.float32)
        scale = np.asarray(scale, dtype=np.float32)

        def expand(v):
            for d in range(data.ndim):
                v = np.repeat(v, data.shape[d] // v.shape[d], axis=d)
            return v

        if offset is not None:
            data = data - expand(np.asarray(offset, dtype=np.float32))
        return data * expand(scale)


def _dense(nonzero, mask) -> np.ndarray:
    """Zeros of mask's shape with ``nonzero`` written, in row-major order, where mask is 1."""
    mask = np.asarray(mask) != 0
    nonzero = np.asarray(nonzero).reshape(-1)
    if int(mask.sum()) != nonzero.size:
        raise ValueError(f"the mask holds {int(mask.sum())} ones for {nonzero.size} values")
    check_shape(mask.shape, max(nonzero.itemsize, 1), "constexpr (its dense data)")
    out = np.zeros(mask.shape, dtype=nonzero.dtype)
    out[mask] = nonzero
    return out


@kernel("constexpr_lut_to_sparse", opset="iOS18")
class ConstexprLutToSparse(Kernel):
    """Palettization of sparse data: the iOS18 lut_to_dense applied to the indices of the mask's 1s.

    indices_mask: uint1 (*S); indices_nonzero_data: (D,) LUT indices, one per 1 of the mask; lut as
    in constexpr_lut_to_dense. Returns (output_mask, output_nonzero_data): the mask, repeated
    VECTOR_SIZE times along ``vector_axis`` for vector palettization, and the looked-up values
    where that mask is 1 ((D * VECTOR_SIZE,)), ready for constexpr_sparse_to_dense.
    """

    def compute(self, *, indices_mask, indices_nonzero_data, lut, vector_axis=None):
        mask = np.asarray(indices_mask).astype(np.uint8)
        indices = _dense(np.asarray(indices_nonzero_data).astype(np.int64), mask)
        dense = ConstexprLutToDenseIOS18.compute(self, indices=indices, lut=lut, vector_axis=vector_axis)
        if vector_axis is not None:
            check_shape(mask.shape + (np.asarray(lut).shape[-1],), 1, "constexpr_lut_to_sparse")
            mask = np.repeat(mask, np.asarray(lut).shape[-1], axis=int(vector_axis) % mask.ndim)
        return mask, dense[mask != 0]


@kernel("constexpr_sparse_blockwise_shift_scale", opset="iOS18")
class ConstexprSparseBlockwiseShiftScale(Kernel):
    """Blockwise dequantization of sparse data: scale * (data - offset) on the mask's 1s.

    data_mask: uint1 (*S); nonzero_data: (D,) quantized values, one per 1 of the mask; scale and
    offset as in constexpr_blockwise_shift_scale (blocks of the dense shape S). Returns
    (data_mask, dequantized nonzero values (D,)).
    """

    def compute(self, *, data_mask, nonzero_data, scale, offset=None):
        mask = np.asarray(data_mask).astype(np.uint8)
        dense = _dense(nonzero_data, mask)
        values = ConstexprBlockwiseShiftScale.compute(self, data=dense, scale=scale, offset=offset)
        return mask, values[mask != 0]
