"""Activation quantization (MIL ``quantization`` family, iOS17): quantize, dequantize.

``scale`` and ``zero_point`` are scalars, or vectors laid along ``axis`` of the input (then each
has input.shape[axis] values). Weight decompression (constexpr_*) lives in ``compression.py``.
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel

RANGES = {"int8": (np.int8, -128, 127), "uint8": (np.uint8, 0, 255)}


def _along(param, data: np.ndarray, axis, name: str, op: str) -> np.ndarray:
    """A scalar, or a vector shaped to broadcast along ``axis`` of data."""
    p = np.asarray(param)
    if p.ndim == 0:
        return p
    if p.ndim != 1 or axis is None:
        raise ValueError(f"{op}: {name} must be a scalar, or a vector with axis given; got shape {p.shape}, axis {axis}")
    axis = int(axis)
    if not -data.ndim <= axis < data.ndim or p.shape[0] != data.shape[axis]:
        raise ValueError(f"{op}: {name} has {p.shape[0]} values for axis {axis} of an input of shape {data.shape}")
    shape = [1] * data.ndim
    shape[axis] = -1
    return p.reshape(shape)


@kernel("quantize", opset="iOS17")
class Quantize(Kernel):
    """q = clip(round_half_even(input / scale) + zero_point, range of output_dtype) as int8 or uint8."""

    def compute(self, *, input, scale, output_dtype, zero_point=None, axis=None):
        name = str(output_dtype)
        if name not in RANGES:
            raise ValueError(f"quantize: output_dtype {name!r} is not one of {', '.join(RANGES)}")
        dtype, lo, hi = RANGES[name]
        x = np.asarray(input, np.float32)
        q = np.round(x / _along(scale, x, axis, "scale", "quantize").astype(np.float32))
        if zero_point is not None:
            q = q + _along(zero_point, x, axis, "zero_point", "quantize").astype(np.float32)
        return np.clip(q, lo, hi).astype(dtype)


@kernel("dequantize", opset="iOS17")
class Dequantize(Kernel):
    """y = (input - zero_point) * scale, in scale's float type."""

    def compute(self, *, input, scale, zero_point=None, axis=None):
        q = np.asarray(input)
        y = q.astype(np.float32)
        if zero_point is not None:
            y = y - _along(zero_point, q, axis, "zero_point", "dequantize").astype(np.float32)
        return y * _along(scale, q, axis, "scale", "dequantize").astype(np.float32)
