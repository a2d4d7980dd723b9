"""Pooling (MIL ``pool`` family): max_pool, avg_pool, l2_pool over 1 to 3 spatial axes, NC[D][H]W.

Padding is conv's (``conv.pads``, no dilation). The output size per spatial axis, with
p = before + after:
    floor((D + p - K) / s) + 1                      ceil_mode False
    ceil((D + p - K) / s) + 1, less one if the last window would start at or past D + before
    while p > 0                                     ceil_mode True (torch's rule)
A window may then run past the padded input; those positions do not take part (torch's rule too).
"""

from __future__ import annotations

import numpy as np

from ..limits import check_shape
from ..program import Kernel
from ..registry import kernel
from .conv import ints, pads, windows


def _out_size(d: int, k: int, s: int, before: int, after: int, ceil_mode: bool) -> int:
    span = d + before + after - k
    if span < 0:
        raise ValueError(f"the kernel {k} is larger than the padded input {d + before + after}")
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= d + before and before + after > 0:
        out -= 1
    return out


class _Pool(Kernel):
    """Shared by the three pools: x (N, C, *D) -> (N, C, *D_out), windows of ``kernel_sizes``."""

    fill = 0.0  # the value padding holds

    def _windows(self, x, kernel_sizes, strides, pad_type, pad, ceil_mode):
        """(windows of x, windows of the in-input mask, windows of the in-padded-input mask)."""
        x = np.asarray(x, np.float32)
        sp = x.ndim - 2
        if not 1 <= sp <= 3:
            raise ValueError(f"{self.op_type}: x must be rank 3 to 5, got shape {x.shape}")
        k = ints(kernel_sizes, sp, 1, "kernel_sizes")
        s = ints(strides, sp, 1, "strides")
        padding = pads(pad_type, pad, x.shape[2:], k, s)
        out = [_out_size(x.shape[2 + i], k[i], s[i], *padding[i], bool(ceil_mode)) for i in range(sp)]
        # Pad before as asked; after, as far as the last window reaches (ceil mode may run past the pad).
        reach = [(out[i] - 1) * s[i] + k[i] - x.shape[2 + i] - padding[i][0] for i in range(sp)]
        spec = [(0, 0), (0, 0)] + [(padding[i][0], max(reach[i], 0)) for i in range(sp)]
        # A custom pad is the package's to choose: check the padded input before np.pad makes it.
        check_shape([d + b + a for d, (b, a) in zip(x.shape, spec)], 4, f"{self.op_type} (its padded input)")
        check_shape(x.shape[:2] + tuple(out), 8, self.op_type)
        xp = np.pad(x, spec, constant_values=self.fill)
        inside = np.pad(np.ones(x.shape[2:], np.float32), spec[2:])
        padded = np.zeros_like(inside)
        padded[tuple(slice(0, padding[i][0] + x.shape[2 + i] + padding[i][1]) for i in range(sp))] = 1.0
        cut = (Ellipsis,) + tuple(slice(0, out[i]) for i in range(sp)) + (slice(None),) * sp
        ones = [1] * sp
        axes = tuple(range(-sp, 0))
        win = windows(xp, k, s, ones)[(slice(None), slice(None)) + cut[1:]]
        counts = windows(inside[None, None], k, s, ones)[(0, 0) + cut[1:]].sum(axis=axes)
        padded_counts = windows(padded[None, None], k, s, ones)[(0, 0) + cut[1:]].sum(axis=axes)
        return win, axes, counts, padded_counts


@kernel("max_pool", opset="iOS15")
class MaxPool(_Pool):
    """y = max over each window; padding is -inf, so it never wins."""

    fill = -np.inf
    keeps_fp16 = True  # picks values of x

    def compute(self, *, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
        win, axes, _, _ = self._windows(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
        return win.max(axis=axes)


@kernel("avg_pool", opset="iOS15")
class AvgPool(_Pool):
    """y = sum over each window / n, n counting the padding too unless ``exclude_padding_from_average``
    (then only positions inside x). Positions past the padding (ceil mode) never count.
    """

    def compute(self, *, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False,
                exclude_padding_from_average=False):
        win, axes, counts, padded_counts = self._windows(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
        n = counts if bool(exclude_padding_from_average) else padded_counts
        return (win.sum(axis=axes, dtype=np.float64) / np.maximum(n, 1)).astype(np.float32)


@kernel("l2_pool", opset="iOS15")
class L2Pool(_Pool):
    """y = sqrt(sum of x^2 over each window) (padding adds nothing); 1 or 2 spatial axes in MIL."""

    def compute(self, *, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
        win, axes, _, _ = self._windows(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
        check_shape(win.shape, 8, "l2_pool (its squared windows)")  # np.square copies the window view
        return np.sqrt(np.square(win, dtype=np.float64).sum(axis=axes)).astype(np.float32)
