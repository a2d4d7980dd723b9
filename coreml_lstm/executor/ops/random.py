"""random_bernoulli, random_categorical, random_normal and random_uniform (iOS15; no later opset
redefines them).

Values are drawn with numpy's ``Generator`` (PCG64) seeded from the op's ``seed``, so they differ
from the values of Core ML's generator except where the distribution is degenerate: ``prob`` 0 or
1, ``stddev`` 0, ``low == high``, a categorical distribution with one possible class. There every
generator gives the same values, and the executor's are Core ML's. Each run draws afresh from the
seed (the same feeds give the same outputs). An unseeded op (``seed`` -1, the default; any
negative seed) draws from a fixed seed derived from its output's name, so runs repeat and two
unseeded ops of a program still draw different values.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..program import Kernel
from ..registry import kernel
from ._args import check_shape, text


def _scalar(v, what: str) -> float:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size != 1:
        raise ValueError(f"{what} must be a scalar, got {a.size} values")
    return float(a[0])


class _Random(Kernel):
    def generator(self, seed) -> np.random.Generator:
        s = int(np.asarray(seed).reshape(-1)[0])
        if s < 0:  # unseeded: a fixed seed of the op's own, so runs repeat
            s = zlib.crc32(self.op.name.encode("utf-8"))
        return np.random.default_rng(s)


class _Distribution(_Random):
    """The ops that take a target ``shape`` (<K, i32>, each ``shape[k] > 0``, as a constant or a
    run-time tensor)."""

    def out_shape(self, shape, itemsize: int = 8) -> tuple[int, ...]:
        a = np.asarray(shape)
        if a.ndim != 1 or a.dtype.kind not in "iu":
            raise ValueError(f"{self.op_type}: shape must be a vector of integers, got {a.dtype.name} of shape {a.shape}")
        dims = tuple(int(d) for d in a)
        if any(d <= 0 for d in dims):
            raise ValueError(f"{self.op_type}: every dimension of shape must be > 0, got {dims}")
        # float64 draws before the output's float32: bound the larger.
        return check_shape(dims, itemsize, f"{self.op_type} output")


@kernel("random_bernoulli", opset="iOS15")
class RandomBernoulli(_Distribution):
    """1 with probability ``prob`` (default 0.5), else 0."""

    def compute(self, *, shape, prob=0.5, seed=-1):
        dims = self.out_shape(shape)
        p = _scalar(prob, "prob")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"random_bernoulli: prob must be in [0, 1], got {p}")
        return (self.generator(seed).random(dims) < p).astype(np.float32)


@kernel("random_normal", opset="iOS15")
class RandomNormal(_Distribution):
    """Normal with ``mean`` (default 0) and ``stddev`` (default 1)."""

    def compute(self, *, shape, mean=0.0, stddev=1.0, seed=-1):
        dims = self.out_shape(shape)
        m, s = _scalar(mean, "mean"), _scalar(stddev, "stddev")
        if not s >= 0.0:
            raise ValueError(f"random_normal: stddev must be >= 0, got {s}")
        if s == 0.0:
            return np.full(dims, m, dtype=np.float32)
        return (m + s * self.generator(seed).standard_normal(dims)).astype(np.float32)


@kernel("random_uniform", opset="iOS15")
class RandomUniform(_Distribution):
    """Uniform over [``low``, ``high``) (defaults 0 and 1); ``low`` when ``high == low``. The
    definition leaves ``high < low`` undefined ("may eventually raise an error"): refused."""

    def compute(self, *, shape, low=0.0, high=1.0, seed=-1):
        dims = self.out_shape(shape)
        lo, hi = _scalar(low, "low"), _scalar(high, "high")
        if not hi >= lo:
            raise ValueError(f"random_uniform: high ({hi}) is below low ({lo}): the definition leaves the result undefined")
        if hi == lo:
            return np.full(dims, lo, dtype=np.float32)
        out = (lo + (hi - lo) * self.generator(seed).random(dims)).astype(np.float32)
        # [low, high): a draw that rounded up to high in float32 takes the float32 just below it.
        top = np.float32(hi)
        below = np.nextafter(top, np.float32(lo))
        return np.where(out >= top, below, out).astype(np.float32)


@kernel("random_categorical", opset="iOS15")
class RandomCategorical(_Random):
    """``size`` class indices (as ``x``'s float type) drawn with replacement from each distribution
    of ``x`` <*D, K>: the last axis holds the K classes' logits (``mode`` "logits", the default) or
    probabilities ("probs": their log is taken as logits). Output <*D, size>."""

    def compute(self, *, x, mode="logits", size=1, seed=-1):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim < 1 or x.shape[-1] < 1:
            raise ValueError(f"random_categorical: x must have at least one class on its last axis, got shape {x.shape}")
        kind = text(mode)
        if kind not in ("logits", "probs"):
            raise ValueError(f"random_categorical: mode must be 'logits' or 'probs', got {kind!r}")
        n = int(np.asarray(size).reshape(-1)[0])
        if n < 1:
            raise ValueError(f"random_categorical: size must be >= 1, got {n}")
        lead = x.shape[:-1]
        out_dims = check_shape(lead + (n,), 8, "random_categorical output")  # float64 draws
        with np.errstate(divide="ignore"):  # a probability 0 is a logit -inf
            logits = np.log(x) if kind == "probs" else x
        rows = logits.reshape(-1, x.shape[-1])
        if np.isnan(rows).any() or np.isposinf(rows).any():
            raise ValueError("random_categorical: a distribution holds nan or +inf")
        top = rows.max(axis=1, keepdims=True)
        if np.isneginf(top).any():
            raise ValueError("random_categorical: a distribution gives every class probability 0")
        weights = np.exp(rows - top)
        cdf = np.cumsum(weights, axis=1)
        cdf /= cdf[:, -1:]
        u = self.generator(seed).random((rows.shape[0], n))
        idx = np.empty((rows.shape[0], n), dtype=np.int64)
        for r in range(rows.shape[0]):
            idx[r] = np.searchsorted(cdf[r], u[r], side="right")
        idx = np.minimum(idx, x.shape[-1] - 1)  # u < 1 = cdf[-1]; rounding cannot go past the last class
        return idx.reshape(out_dims).astype(np.float32)
