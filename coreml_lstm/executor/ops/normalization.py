"""Normalisation (MIL ``normalization`` family): batch_norm, instance_norm, layer_norm, l2_norm,
local_response_norm.

Statistics are computed in float64 and the result returned as float32 (fp16-declared values are
held in float32; the runner rounds them in fp16 mode). Variances are population variances
(mean of squared deviations), as in the MIL definitions. iOS17 changes only typing (gamma, beta,
epsilon, ... may have a dtype other than x's), so the iOS17 kernels re-register the iOS15 ones.
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel


def _per_channel(v, x: np.ndarray, name: str, op: str) -> np.ndarray:
    """A (C,) parameter shaped to broadcast along axis 1 of x."""
    v = np.asarray(v, np.float64).reshape(-1)
    if x.ndim < 2 or v.shape[0] != x.shape[1]:
        raise ValueError(f"{op}: {name} has {v.shape[0]} values for x of shape {x.shape} (channels on axis 1)")
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def _axes(axes, rank: int, op: str) -> tuple[int, ...]:
    axes = range(rank) if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    out = sorted({a + rank if a < 0 else a for a in axes})
    if any(not 0 <= a < rank for a in out):
        raise ValueError(f"{op}: axes {list(axes)} out of range for rank {rank}")
    return tuple(out)


@kernel("batch_norm", opset="iOS15")
class BatchNorm(Kernel):
    """y = gamma_c (x - mean_c) / sqrt(variance_c + epsilon) + beta_c, channel c on axis 1.

    Shapes: x (N, C, *D), rank 3 to 5; mean, variance, gamma, beta (C,).
    """

    def compute(self, *, x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
        x = np.asarray(x, np.float64)
        y = (x - _per_channel(mean, x, "mean", "batch_norm")) / np.sqrt(_per_channel(variance, x, "variance", "batch_norm") + float(epsilon))
        if gamma is not None:
            y = y * _per_channel(gamma, x, "gamma", "batch_norm")
        if beta is not None:
            y = y + _per_channel(beta, x, "beta", "batch_norm")
        return y.astype(np.float32)


@kernel("instance_norm", opset="iOS15")
class InstanceNorm(Kernel):
    """Per sample and channel, over the spatial axes:
        y = gamma_c (x - mean_{n,c}) / sqrt(var_{n,c} + epsilon) + beta_c

    Shapes: x (N, C, *D), rank 3 or 4; gamma, beta (C,).
    """

    def compute(self, *, x, gamma=None, beta=None, epsilon=1e-5):
        x = np.asarray(x, np.float64)
        if x.ndim < 3:
            raise ValueError(f"instance_norm: x must be rank 3 or more, got shape {x.shape}")
        axes = tuple(range(2, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = np.square(x - mean).mean(axis=axes, keepdims=True)
        y = (x - mean) / np.sqrt(var + float(epsilon))
        if gamma is not None:
            y = y * _per_channel(gamma, x, "gamma", "instance_norm")
        if beta is not None:
            y = y + _per_channel(beta, x, "beta", "instance_norm")
        return y.astype(np.float32)


@kernel("layer_norm", opset="iOS15")
class LayerNorm(Kernel):
    """y = gamma (x - E[x]) / sqrt(Var[x] + epsilon) + beta, moments over ``axes`` (default: all).

    gamma and beta have the shape of x on ``axes``, in axis order (x (3, 4, 5, 6), axes [2, 0]:
    (3, 5)); they are laid out along those axes, which need not be the trailing ones.
    """

    def compute(self, *, x, axes=None, gamma=None, beta=None, epsilon=1e-5):
        x = np.asarray(x, np.float64)
        axes = _axes(axes, x.ndim, "layer_norm")
        shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        y = centred / np.sqrt(np.square(centred).mean(axis=axes, keepdims=True) + float(epsilon))
        for name, v in (("gamma", gamma), ("beta", beta)):
            if v is None:
                continue
            v = np.asarray(v, np.float64)
            if v.size != int(np.prod(shape)):
                raise ValueError(f"layer_norm: {name} of shape {v.shape} does not match x {x.shape} on axes {list(axes)}")
            y = y * v.reshape(shape) if name == "gamma" else y + v.reshape(shape)
        return y.astype(np.float32)


@kernel("l2_norm", opset="iOS15")
class L2Norm(Kernel):
    """y = x / sqrt(sum(x^2) + epsilon), the sum over the last three axes; leading axes are batch.

    x has rank 3 or more; a rank-3 x is normalised as a whole. epsilon defaults to 1e-6.
    """

    def compute(self, *, x, epsilon=1e-6):
        x = np.asarray(x, np.float64)
        if x.ndim < 3:
            raise ValueError(f"l2_norm: x must be rank 3 or more, got shape {x.shape}")
        axes = tuple(range(x.ndim - 3, x.ndim))
        return (x / np.sqrt(np.square(x).sum(axis=axes, keepdims=True) + float(epsilon))).astype(np.float32)


@kernel("local_response_norm", opset="iOS15")
class LocalResponseNorm(Kernel):
    """Across the channel axis, -3 (C of [N,] C, H, W), with torch.nn.LocalResponseNorm's window:
        y_c = x_c / (k + alpha / size * sum_{j = c - size // 2}^{c + (size - 1) // 2} x_j^2) ^ beta
    channels outside [0, C) contributing 0. Shapes: x of rank 3 to 5.

    The MIL text calls axis 1 the channels; Core ML normalises across axis -3, which is axis 1 for
    the rank-4 NCHW inputs converters emit. Apple's smoke test pins it: its expected values for a
    (1, 3, 2) input (which Core ML matches to 1e-4) normalise each value by itself alone.
    """

    def compute(self, *, x, size, alpha=1e-4, beta=0.75, k=1.0):
        x = np.asarray(x, np.float64)
        size = int(size)
        if x.ndim < 3 or size < 1:
            raise ValueError(f"local_response_norm: x of shape {x.shape} with size {size}")
        sq = np.moveaxis(np.square(x), -3, 0)  # (C, ...)
        channels = sq.shape[0]
        before, after = size // 2, (size - 1) // 2
        # Channel c sums csum[c + after + 1] - csum[c - before], both clipped to [0, C]: channels
        # past either end add nothing, so no padding is made (``size`` is the package's to choose).
        csum = np.concatenate([np.zeros_like(sq[:1]), np.cumsum(sq, axis=0)], axis=0)  # (C + 1, ...)
        c = np.arange(channels)
        hi, lo = np.minimum(c + after + 1, channels), np.maximum(c - before, 0)
        window = np.moveaxis(csum[hi] - csum[lo], 0, -3)  # the sum over each channel's window
        return (x / np.power(float(k) + float(alpha) / size * window, float(beta))).astype(np.float32)


def _ios17(cls, what: str):
    sub = type(cls.__name__ + "IOS17", (cls,), {"__doc__": f"iOS17: {what} may have a dtype other than x's; maths unchanged."})
    return kernel(cls.op_type, opset="iOS17")(sub)


_ios17(BatchNorm, "mean, variance, gamma, beta and epsilon")
_ios17(InstanceNorm, "gamma, beta and epsilon")
_ios17(LayerNorm, "gamma, beta and epsilon")
_ios17(L2Norm, "epsilon")
_ios17(LocalResponseNorm, "alpha, beta and k")
