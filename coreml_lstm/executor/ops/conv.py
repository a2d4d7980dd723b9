"""Convolutions (MIL ``conv`` family): conv and conv_transpose over 1 to 3 spatial axes, NC[D][H]W.

Padding, as MIL's shape inference defines it per spatial axis i, with the dilated kernel
k = (K_i - 1) * dilation_i + 1:
    valid       no padding
    custom      pad[2i] before, pad[2i + 1] after
    same        total = max((ceil(D_i / s_i) - 1) * s_i + k - D_i, 0); total // 2 before, the rest after
    same_lower  the same total, the larger half before (iOS16+)
so that conv's output is floor((D_i + before + after - k) / s_i) + 1.

iOS17 changes only typing (weight and bias may have another dtype than x); values are computed in
float32 either way, so the iOS17 kernels re-register the iOS15 ones.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..limits import check_shape
from ..program import Kernel
from ..registry import kernel

PAD_TYPES = ("valid", "custom", "same", "same_lower")
_OUT, _KER = "xyz", "ijk"  # einsum letters for output / kernel spatial axes


def ints(value, count: int, default: int, name: str) -> list[int]:
    """An optional per-axis integer input (strides, dilations, kernel sizes) as a list of ``count``."""
    if value is None:
        return [default] * count
    out = [int(v) for v in np.asarray(value).reshape(-1)]
    if len(out) != count:
        raise ValueError(f"{name} has {len(out)} values for {count} spatial axes")
    return out


def pads(pad_type, pad, sizes, kernel_sizes, strides) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis; ``kernel_sizes`` are the dilated kernel sizes."""
    pad_type = str(pad_type).lower()
    n = len(sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        p = ints(pad, 2 * n, 0, "pad")
        return [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        out = []
        for d, k, s in zip(sizes, kernel_sizes, strides):
            total = max((-(-d // s) - 1) * s + k - d, 0)
            small, large = total // 2, total - total // 2
            out.append((small, large) if pad_type == "same" else (large, small))
        return out
    raise ValueError(f"pad_type {pad_type!r} is not one of {', '.join(PAD_TYPES)}")


def windows(x: np.ndarray, kernel_sizes, strides, dilations) -> np.ndarray:
    """Every receptive field of a padded x (N, C, *S): a view (N, C, *out, *K), no copy."""
    sp = x.ndim - 2
    eff = [(k - 1) * d + 1 for k, d in zip(kernel_sizes, dilations)]
    if any(x.shape[2 + i] < eff[i] for i in range(sp)):
        raise ValueError(f"the (padded) input {x.shape[2:]} is smaller than the dilated kernel {tuple(eff)}")
    view = sliding_window_view(x, eff, axis=tuple(range(2, 2 + sp)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _spatial(x, weight, op: str) -> int:
    sp = x.ndim - 2
    if not 1 <= sp <= 3 or weight.ndim != x.ndim:
        raise ValueError(f"{op}: x of rank {x.ndim} and weight of rank {weight.ndim}; expected equal ranks 3 to 5")
    return sp


@kernel("conv", opset="iOS15")
class Conv(Kernel):
    """Convolution (cross-correlation) with groups, strides, dilations and padding.

        y[n, o, p] = bias[o] + sum_{c, k} x_pad[n, g(o) * C_in/G + c, p * s + k * d] * weight[o, c, k]

    Shapes: x (N, C_in, *D); weight (C_out, C_in / groups, *K), which may be a run-time value;
    bias (C_out,). Output (N, C_out, *D_out), D_out = floor((D + before + after - k) / s) + 1.
    """

    def compute(self, *, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
        x = np.asarray(x, np.float32)
        weight = np.asarray(weight, np.float32)
        sp = _spatial(x, weight, "conv")
        groups = int(groups)
        n, c_in = x.shape[:2]
        c_out = weight.shape[0]
        if groups < 1 or c_in % groups or c_out % groups or weight.shape[1] != c_in // groups:
            raise ValueError(f"conv: x has {c_in} channels and weight shape {weight.shape} for {groups} groups")
        k = weight.shape[2:]
        strides = ints(strides, sp, 1, "strides")
        dilations = ints(dilations, sp, 1, "dilations")
        eff = [(k[i] - 1) * dilations[i] + 1 for i in range(sp)]
        padding = pads(pad_type, pad, x.shape[2:], eff, strides)
        if any(p != (0, 0) for p in padding):
            check_shape(x.shape[:2] + tuple(d + b + a for d, (b, a) in zip(x.shape[2:], padding)), 4, "conv (its padded input)")
            x = np.pad(x, [(0, 0), (0, 0)] + padding)
        win = windows(x, k, strides, dilations)  # (N, C_in, *out, *K)
        out = win.shape[2 : 2 + sp]
        check_shape(win.shape, 4, "conv (its windows)")  # the reshape below copies the windows
        check_shape((n, c_out) + tuple(out), 4, "conv")
        win = win.reshape((n, groups, c_in // groups) + win.shape[2:])
        w = weight.reshape((groups, c_out // groups) + weight.shape[1:])
        o, kk = _OUT[:sp], _KER[:sp]
        y = np.einsum(f"ngc{o}{kk},goc{kk}->ngo{o}", win, w, optimize=True)
        y = y.reshape((n, c_out) + tuple(out))
        if bias is not None:
            y = y + np.asarray(bias, np.float32).reshape((1, -1) + (1,) * sp)
        return y


@kernel("conv", opset="iOS17")
class ConvIOS17(Conv):
    """iOS17: weight and bias may have a dtype other than x's (computed in float32 either way)."""


@kernel("conv_transpose", opset="iOS15")
class ConvTranspose(Kernel):
    """Transposed convolution (the gradient of conv with respect to its input).

    The full result scatters every input position through the kernel:
        full[n, g * C_out/G + o, p * s + k * d] += x[n, g * C_in/G + c, p] * weight[g * C_in/G + c, o, k]
    of size F = (D - 1) * s + (K - 1) * d + 1 per axis; the output is the window of F that the
    padding leaves: custom crops pad[2i] before and pad[2i + 1] after; valid keeps all of F; same
    keeps D * s, cropping total = max(F - D * s, 0) with total // 2 before (same_lower: the larger half).
    ``output_shape`` (N, C_out, *D_out) fixes the size instead, cropped from the same start;
    positions past F are zero. Shapes: x (N, C_in, *D); weight (C_in, C_out / groups, *K);
    bias (C_out,).
    """

    def compute(self, *, x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                dilations=None, groups=1):
        x = np.asarray(x, np.float32)
        weight = np.asarray(weight, np.float32)
        sp = _spatial(x, weight, "conv_transpose")
        groups = int(groups)
        n, c_in = x.shape[:2]
        if groups < 1 or c_in % groups or weight.shape[0] != c_in:
            raise ValueError(f"conv_transpose: x has {c_in} channels and weight shape {weight.shape} for {groups} groups")
        og = weight.shape[1]
        c_out = og * groups
        k = weight.shape[2:]
        d_in = x.shape[2:]
        strides = ints(strides, sp, 1, "strides")
        dilations = ints(dilations, sp, 1, "dilations")
        full = [(d_in[i] - 1) * strides[i] + (k[i] - 1) * dilations[i] + 1 for i in range(sp)]
        check_shape((n, c_out) + tuple(full), 4, "conv_transpose")
        y_full = np.zeros((n, groups, og) + tuple(full), np.float32)
        xg = x.reshape((n, groups, c_in // groups) + d_in)
        wg = weight.reshape((groups, c_in // groups, og) + k)
        o = _OUT[:sp]
        for offs in np.ndindex(*k):
            contrib = np.einsum(f"ngc{o},gco->ngo{o}", xg, wg[(slice(None),) * 3 + offs], optimize=True)
            index = (slice(None),) * 3 + tuple(
                slice(offs[i] * dilations[i], offs[i] * dilations[i] + (d_in[i] - 1) * strides[i] + 1, strides[i]) for i in range(sp)
            )
            y_full[index] += contrib
        y_full = y_full.reshape((n, c_out) + tuple(full))
        starts, sizes = self._window(pad_type, pad, output_shape, full, d_in, strides, sp)
        check_shape((n, c_out) + tuple(sizes), 4, "conv_transpose")
        y = np.zeros((n, c_out) + tuple(sizes), np.float32)
        src = tuple(slice(max(b, 0), min(b + s, f)) for b, s, f in zip(starts, sizes, full))
        dst = tuple(slice(max(-b, 0), max(-b, 0) + (r.stop - r.start)) for b, r in zip(starts, src))
        y[(slice(None), slice(None)) + dst] = y_full[(slice(None), slice(None)) + src]
        if bias is not None:
            y = y + np.asarray(bias, np.float32).reshape((1, -1) + (1,) * sp)
        return y

    @staticmethod
    def _window(pad_type, pad, output_shape, full, d_in, strides, sp):
        """(start, size) of the output within the full result, per spatial axis."""
        pad_type = str(pad_type).lower()
        if pad_type not in PAD_TYPES:
            raise ValueError(f"pad_type {pad_type!r} is not one of {', '.join(PAD_TYPES)}")
        if output_shape is not None:
            shape = [int(v) for v in np.asarray(output_shape).reshape(-1)]
            sizes = shape[-sp:]
        elif pad_type == "custom":
            p = ints(pad, 2 * sp, 0, "pad")
            sizes = [full[i] - p[2 * i] - p[2 * i + 1] for i in range(sp)]
        elif pad_type in ("same", "same_lower"):
            sizes = [d_in[i] * strides[i] for i in range(sp)]
        else:
            sizes = list(full)
        if pad_type == "custom":
            p = ints(pad, 2 * sp, 0, "pad")
            starts = [p[2 * i] for i in range(sp)]
        elif pad_type in ("same", "same_lower"):
            totals = [max(full[i] - sizes[i], 0) for i in range(sp)]  # a longer output is zero past F
            starts = [t // 2 if pad_type == "same" else t - t // 2 for t in totals]
        else:
            starts = [0] * sp
        if any(s < 0 for s in sizes):
            raise ValueError(f"conv_transpose: the padding leaves a negative output size {sizes}")
        return starts, sizes


@kernel("conv_transpose", opset="iOS17")
class ConvTransposeIOS17(ConvTranspose):
    """iOS17: weight and bias may have a dtype other than x's (computed in float32 either way)."""
