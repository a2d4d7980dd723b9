"""Linear algebra and normalisation: linear, matmul, layer_norm, batch_norm, conv (1-D/2-D)."""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel


@kernel("linear", opset="iOS15")
class Linear(Kernel):
    """x @ weight.T + bias. x: (..., D_in), weight: (D_out, D_in), bias: (D_out,)."""

    def compute(self, *, x, weight, bias=None):
        y = np.matmul(x, np.asarray(weight, dtype=np.result_type(x, np.float32)).T)
        return y + bias if bias is not None else y


@kernel("matmul", opset="iOS15")
class Matmul(Kernel):
    """x @ y with optional transposes of the last two axes; batch axes broadcast."""

    def compute(self, *, x, y, transpose_x=False, transpose_y=False):
        x, y = np.asarray(x), np.asarray(y)
        if bool(transpose_x):
            x = np.swapaxes(x, -1, -2)
        if bool(transpose_y):
            y = np.swapaxes(y, -1, -2)
        if x.ndim == 1 or y.ndim == 1:
            return np.matmul(x, y)
        return np.matmul(x, y)


@kernel("layer_norm", opset="iOS15")
class LayerNorm(Kernel):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over ``axes`` (default: all)."""

    def compute(self, *, x, axes=None, gamma=None, beta=None, epsilon=1e-5):
        axes = tuple(range(x.ndim)) if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mean) / np.sqrt(var + epsilon)
        if gamma is not None:
            y = y * gamma
        if beta is not None:
            y = y + beta
        return y


@kernel("batch_norm", opset="iOS15")
class BatchNorm(Kernel):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta, per channel (axis 1)."""

    def compute(self, *, x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + epsilon)
        if gamma is not None:
            y = y * gamma.reshape(shape)
        if beta is not None:
            y = y + beta.reshape(shape)
        return y


@kernel("conv", opset="iOS15")
class Conv(Kernel):
    """1-D or 2-D convolution (cross-correlation), NC[H]W, groups, strides, dilations, pads.

    x: (N, C_in, *S), weight: (C_out, C_in / groups, *K), bias: (C_out,).
    """

    def compute(self, *, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
        spatial = x.ndim - 2
        strides = [1] * spatial if strides is None else [int(s) for s in np.asarray(strides).reshape(-1)]
        dilations = [1] * spatial if dilations is None else [int(d) for d in np.asarray(dilations).reshape(-1)]
        k = weight.shape[2:]
        eff = [(k[i] - 1) * dilations[i] + 1 for i in range(spatial)]
        if pad_type == "custom":
            p = [int(v) for v in np.asarray(pad).reshape(-1)]
            pads = [(p[2 * i], p[2 * i + 1]) for i in range(spatial)]
        elif pad_type == "same":
            pads = []
            for i in range(spatial):
                n = x.shape[2 + i]
                out = -(-n // strides[i])
                total = max((out - 1) * strides[i] + eff[i] - n, 0)
                pads.append((total // 2, total - total // 2))
        else:
            pads = [(0, 0)] * spatial
        x = np.pad(x, [(0, 0), (0, 0)] + pads)
        groups = int(groups)
        n, c_in = x.shape[:2]
        c_out = weight.shape[0]
        out_sizes = [(x.shape[2 + i] - eff[i]) // strides[i] + 1 for i in range(spatial)]
        # Gather the receptive fields, then one matmul per group.
        cols = []
        for offs in np.ndindex(*k):
            index = [slice(None), slice(None)]
            for i in range(spatial):
                start = offs[i] * dilations[i]
                index.append(slice(start, start + (out_sizes[i] - 1) * strides[i] + 1, strides[i]))
            cols.append(x[tuple(index)])
        patches = np.stack(cols, axis=2)  # (N, C_in, prod(K), *out)
        patches = patches.reshape(n, groups, c_in // groups, -1, *out_sizes)
        w = weight.reshape(groups, c_out // groups, c_in // groups, -1)
        y = np.einsum("ngckS,gock->ngoS", patches.reshape(n, groups, c_in // groups, w.shape[-1], -1), w)
        y = y.reshape(n, c_out, *out_sizes)
        if bias is not None:
            y = y + bias.reshape((1, -1) + (1,) * spatial)
        return y
