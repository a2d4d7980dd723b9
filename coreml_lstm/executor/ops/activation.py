"""Activations (MIL ``activation`` family): elementwise maps of x, some with alpha / beta.

Every kernel keeps x's shape. Values the program declares fp16 arrive held in float32 and are
computed in float32; the runner rounds the results in fp16 mode. ``prelu`` and
``softplus_parametric`` take one alpha (and beta) per channel, axis 1 of x.

iOS17 changes only typing: alpha and beta may have a dtype other than x's. Here every value is
computed in float32 either way, so the iOS17 kernels are the iOS15 ones re-registered.
"""

from __future__ import annotations

import numpy as np

from ..limits import check_broadcast
from ..program import Kernel
from ..registry import kernel


def _f32(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _param(v) -> np.float32 | np.ndarray:
    """A scalar or per-channel parameter as float32 (fp16 immediates arrive as float16)."""
    return np.asarray(v, dtype=np.float32)


def sigmoid(x) -> np.ndarray:
    """1 / (1 + e^-x), as (tanh(x / 2) + 1) / 2: no overflow for large |x|."""
    x = _f32(x)
    return (np.tanh(x * np.float32(0.5)) + np.float32(1.0)) * np.float32(0.5)


# erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!  (all terms positive: no cancellation)
_ERF_SERIES = [1.0]
for _n in range(1, 50):  # 50 terms: the sum's relative error stays below 1e-15 for |x| < 2.5
    _ERF_SERIES.append(_ERF_SERIES[-1] * 2.0 / (2 * _n + 1))
_ERF_SWITCH = 2.5  # series below, continued fraction at and above
_ERFC_TERMS = 40  # continued fraction depth: relative error of erfc below 1e-14 from x = 2.5 on
_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)


def erf(x) -> np.ndarray:
    """The error function in float64, vectorised, to ~1e-15 relative (tests compare with math.erf).

    |x| < 2.5: the power series above in x^2 (Horner), times x e^(-x^2): relative accuracy near 0.
    |x| >= 2.5: erf = 1 - erfc, erfc(z) = e^(-z^2) / sqrt(pi) / (z + (1/2)/(z + (2/2)/(z + (3/2)/(z + ...)))),
    the continued fraction evaluated from a fixed depth back. Odd in x; NaN stays NaN, erf(+-inf) = +-1.
    Computed in chunks of 2^14 elements, so the temporaries stay small (and in cache).
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape, np.float64)
    flat, dest = x.reshape(-1), out.reshape(-1)
    for start in range(0, flat.size, _ERF_CHUNK):
        dest[start : start + _ERF_CHUNK] = _erf_chunk(flat[start : start + _ERF_CHUNK])
    return out


_ERF_CHUNK = 1 << 14


def _series_terms(zz: float) -> int:
    """Terms of the series enough for every z^2 <= zz: the first left out, t_n = (2 zz)^n / (2n+1)!!,
    below 1e-17 (the terms after it shrink faster than a geometric series of ratio 1/2 by then)."""
    t = 1.0
    for n in range(1, len(_ERF_SERIES)):
        t *= 2.0 * zz / (2 * n + 1)
        if t < 1e-17 and 2.0 * zz < n:
            return n
    return len(_ERF_SERIES)


def _erf_chunk(x: np.ndarray) -> np.ndarray:
    z = np.abs(x)
    out = np.empty_like(z)
    small = z < _ERF_SWITCH  # False for NaN: the continued fraction carries it through
    zs = z[small]
    zz = zs * zs
    terms = _series_terms(float(zz.max())) if zz.size else 1
    acc = np.full_like(zs, _ERF_SERIES[terms - 1])
    for c in reversed(_ERF_SERIES[: terms - 1]):
        acc *= zz
        acc += c
    out[small] = _TWO_OVER_SQRT_PI * zs * np.exp(-zz) * acc
    large = ~small
    if large.any():
        zl = z[large]
        f = zl.copy()
        for k in range(_ERFC_TERMS, 0, -1):
            np.divide(k / 2.0, f, out=f)
            f += zl
        out[large] = 1.0 - np.exp(-zl * zl) / (np.sqrt(np.pi) * f)
    return np.copysign(out, x)


def _params(x: np.ndarray, op: str, *values) -> list:
    """Scalar parameters (MIL's alpha, beta) as float32, after checking that what they broadcast
    x to fits the memory bound: a package may give a "scalar" of any shape."""
    check_broadcast(x.shape, *(np.shape(v) for v in values), what=op)
    return [_param(v) for v in values]


def _channel(param, x: np.ndarray, op: str, name: str = "alpha") -> np.ndarray:
    """A (C,) parameter shaped to broadcast along axis 1 of x."""
    p = _param(param)
    if x.ndim < 2 or p.ndim != 1 or p.shape[0] != x.shape[1]:
        raise ValueError(f"{op}: {name} must be a vector of length x.shape[1]; got {name} shape {p.shape}, x shape {x.shape}")
    return p.reshape((1, -1) + (1,) * (x.ndim - 2))


def _unary(op_type: str, fn, doc: str, keeps_fp16: bool = False):
    @kernel(op_type, opset="iOS15")
    class Unary(Kernel):
        def compute(self, *, x):
            return fn(_f32(x))

    Unary.__name__ = Unary.__qualname__ = "".join(p.title() for p in op_type.split("_"))
    Unary.__doc__ = doc
    Unary.keeps_fp16 = keeps_fp16
    return Unary


_unary("relu", lambda x: np.maximum(x, np.float32(0)), "max(x, 0).", keeps_fp16=True)
_unary("relu6", lambda x: np.minimum(np.maximum(x, np.float32(0)), np.float32(6)), "min(max(x, 0), 6).", keeps_fp16=True)
_unary("sigmoid", sigmoid, "1 / (1 + e^-x).")
_unary("silu", lambda x: x * sigmoid(x), "x * sigmoid(x) (SiLU, swish).")
_unary("softplus", lambda x: np.logaddexp(np.float32(0), x), "ln(1 + e^x), computed without overflow.")
_unary("softsign", lambda x: x / (np.float32(1) + np.abs(x)), "x / (1 + |x|).")


@kernel("clamped_relu", opset="iOS15")
class ClampedRelu(Kernel):
    """min(max(x, 0), beta) + min(min(x, 0) * alpha, beta): x >= 0 -> min(x, beta), else min(alpha x, beta)."""

    def compute(self, *, x, alpha, beta):
        x = _f32(x)
        alpha, beta = _params(x, "clamped_relu", alpha, beta)
        zero = np.float32(0)
        return np.minimum(np.maximum(x, zero), beta) + np.minimum(np.minimum(x, zero) * alpha, beta)


@kernel("elu", opset="iOS15")
class Elu(Kernel):
    """x if x > 0 else alpha * (e^x - 1)."""

    def compute(self, *, x, alpha):
        x = _f32(x)
        (alpha,) = _params(x, "elu", alpha)
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, np.float32(0))))


@kernel("gelu", opset="iOS15")
class Gelu(Kernel):
    """Gaussian error linear unit, by ``mode``:
        EXACT                  0.5 x (1 + erf(x / sqrt 2))
        TANH_APPROXIMATION     0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        SIGMOID_APPROXIMATION  x * sigmoid(1.702 x)
    """

    MODES = ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION")

    def compute(self, *, x, mode="EXACT"):
        x = _f32(x)
        mode = str(mode)
        if mode == "TANH_APPROXIMATION":
            c = np.float32(np.sqrt(2.0 / np.pi))
            return np.float32(0.5) * x * (np.float32(1) + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))
        if mode == "SIGMOID_APPROXIMATION":
            return x * sigmoid(np.float32(1.702) * x)
        if mode != "EXACT":
            raise ValueError(f"gelu: mode {mode!r} is not one of {', '.join(self.MODES)}")
        return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)


@kernel("leaky_relu", opset="iOS15")
class LeakyRelu(Kernel):
    """x if x >= 0 else alpha * x."""

    def compute(self, *, x, alpha):
        x = _f32(x)
        (alpha,) = _params(x, "leaky_relu", alpha)
        return np.where(x >= 0, x, x * alpha)


@kernel("linear_activation", opset="iOS15")
class LinearActivation(Kernel):
    """alpha * x + beta."""

    def compute(self, *, x, alpha, beta):
        x = _f32(x)
        alpha, beta = _params(x, "linear_activation", alpha, beta)
        return x * alpha + beta


@kernel("prelu", opset="iOS15")
class Prelu(Kernel):
    """max(x, 0) + alpha_c * min(x, 0), alpha of shape (C,) along axis 1; x is rank 3 to 5."""

    def compute(self, *, x, alpha):
        x = _f32(x)
        a = _channel(alpha, x, "prelu")
        zero = np.float32(0)
        return np.maximum(x, zero) + np.minimum(x, zero) * a


@kernel("scaled_tanh", opset="iOS15")
class ScaledTanh(Kernel):
    """alpha * tanh(beta * x)."""

    def compute(self, *, x, alpha, beta):
        x = _f32(x)
        alpha, beta = _params(x, "scaled_tanh", alpha, beta)
        return alpha * np.tanh(x * beta)


@kernel("sigmoid_hard", opset="iOS15")
class SigmoidHard(Kernel):
    """min(max(alpha * x + beta, 0), 1)."""

    def compute(self, *, x, alpha, beta):
        x = _f32(x)
        alpha, beta = _params(x, "sigmoid_hard", alpha, beta)
        return np.clip(x * alpha + beta, np.float32(0), np.float32(1))


@kernel("softplus_parametric", opset="iOS15")
class SoftplusParametric(Kernel):
    """alpha_c * ln(1 + e^(beta_c x)), alpha and beta of shape (C,) along axis 1; x rank >= 3."""

    def compute(self, *, x, alpha, beta):
        x = _f32(x)
        a = _channel(alpha, x, "softplus_parametric")
        b = _channel(beta, x, "softplus_parametric", "beta")
        return a * np.logaddexp(np.float32(0), x * b)


@kernel("softmax", opset="iOS15")
class Softmax(Kernel):
    """exp(x - max) / sum(exp(x - max)) along ``axis`` (default -1)."""

    def compute(self, *, x, axis=-1):
        x = _f32(x)
        axis = int(axis)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)


@kernel("thresholded_relu", opset="iOS15")
class ThresholdedRelu(Kernel):
    """x if x >= alpha else 0."""

    def compute(self, *, x, alpha):
        x = _f32(x)
        (alpha,) = _params(x, "thresholded_relu", alpha)
        return np.where(x >= alpha, x, np.float32(0))


def _ios17(cls, doc: str):
    sub = type(cls.__name__ + "IOS17", (cls,), {"__doc__": doc})
    return kernel(cls.op_type, opset="iOS17")(sub)


for _cls in (ClampedRelu, Elu, LeakyRelu, LinearActivation, Prelu, ScaledTanh, SigmoidHard, SoftplusParametric, ThresholdedRelu):
    _ios17(_cls, f"iOS17: alpha{' and beta' if 'beta' in _cls.compute.__code__.co_varnames else ''} may have a dtype other "
           f"than x's (computed in float32 either way); maths unchanged.")
