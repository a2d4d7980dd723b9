"""Gaussian mixtures: the training loss and the probabilistic metrics, in numpy where it is maths.

A mixture per predicted value: weights w_k (sum 1), means mu_k, scales s_k > 0, K components.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def mixture_nll(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood, in the model's frame, of raw targets y (B, horizon, T) under
    the model's mixture for raw windows x (B, W, F)."""
    import torch  # the loss only: the metrics and quantiles (predict's) are numpy

    z, ctx = model.frame(x)
    logits, mu, s = model.forward_normalized(z)  # each (B, horizon, T, K)
    y = model.target_frame(y, ctx).unsqueeze(-1)
    log_pdf = -0.5 * ((y - mu) / s) ** 2 - torch.log(s) - LOG_SQRT_2PI
    return -torch.logsumexp(torch.log_softmax(logits, dim=-1) + log_pdf, dim=-1).mean()


def _phi(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    # erf through numpy only: math.erf vectorised is exact and fast enough for metric sizes.
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


_erf = np.vectorize(math.erf, otypes=[np.float64])


def log_likelihood(w, mu, s, y) -> np.ndarray:
    """log p(y) per value: w, mu, s (..., K); y (...)."""
    y = np.asarray(y, np.float64)[..., None]
    s = np.asarray(s, np.float64)
    log_pdf = -0.5 * ((y - mu) / s) ** 2 - np.log(s) - LOG_SQRT_2PI
    a = np.log(np.maximum(np.asarray(w, np.float64), 1e-300)) + log_pdf
    m = a.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]


def _abs_normal_mean(m, s):
    """E|X| for X ~ N(m, s^2)."""
    u = m / s
    return m * (2 * _norm_cdf(u) - 1) + 2 * s * _phi(u)


def crps(w, mu, s, y) -> np.ndarray:
    """Continuous ranked probability score of a Gaussian mixture at y (closed form), per value.

    CRPS = sum_i w_i E|X_i - y| - 1/2 sum_ij w_i w_j E|X_i - X_j|.
    """
    w, mu, s = (np.asarray(a, np.float64) for a in (w, mu, s))
    y = np.asarray(y, np.float64)[..., None]
    first = (w * _abs_normal_mean(mu - y, s)).sum(-1)
    dm = mu[..., :, None] - mu[..., None, :]
    ds = np.sqrt(s[..., :, None] ** 2 + s[..., None, :] ** 2)
    second = (w[..., :, None] * w[..., None, :] * _abs_normal_mean(dm, ds)).sum((-1, -2))
    return first - 0.5 * second


def cdf(w, mu, s, x) -> np.ndarray:
    x = np.asarray(x, np.float64)[..., None]
    return (np.asarray(w, np.float64) * _norm_cdf((x - mu) / s)).sum(-1)


def quantile(w, mu, s, q: float, iterations: int = 60) -> np.ndarray:
    """The q-quantile of each mixture by bisection on its CDF (monotone, so bisection is exact)."""
    w, mu, s = (np.asarray(a, np.float64) for a in (w, mu, s))
    lo = (mu - 10 * s).min(-1)
    hi = (mu + 10 * s).max(-1)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = cdf(w, mu, s, mid) < q
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def interval_scale(w, mu, s, y, coverage: float = 0.9, bounds: tuple[float, float] = (1.0, 20.0)) -> np.ndarray:
    """Per target, the stretch c of each mixture about its mean (means m + c (mu_k - m), scales
    c s_k) under which the central ``coverage`` intervals cover that fraction of ``y``:
    split-conformal calibration (Vovk et al.; Angelopoulos & Bates 2021) on held-out windows.

    Stretching about the mean m maps every quantile q to m + c (q - m), so the value y is inside
    the stretched interval exactly when c >= (y - m) / (q_hi - m) above the mean, or (m - y) / (m -
    q_lo) below it. c is the ceil((n + 1) coverage)-th smallest of those n ratios (the largest when
    n is too small for that rank), clipped to ``bounds``: the stretched intervals then cover at
    least ``coverage`` of the n values, and, for windows from the same process, of new ones.

    The default lower bound 1 only ever widens: the validation windows a forecaster calibrates on
    also chose its epoch, so their errors are smaller than new ones, and intervals that look too
    wide there are not narrowed (on the development protocol of ``scripts/bench_forecast.py
    --origins 3 --head mixture`` this covers 0.922 of the new horizons against 0.893 when
    narrowing too, and 0.906 as trained). Pass ``bounds=(0.05, 20.0)`` for the two-sided stretch.

    Args:
        w, mu, s: (N, horizon, T, K) mixture parameters in original units, as trained (c = 1).
        y: (N, horizon, T) the true values.

    Returns:
        (T,) float64; 1 for a target without values.
    """
    w, mu, s, y = (np.asarray(a, np.float64) for a in (w, mu, s, y))
    K, T = w.shape[-1], y.shape[-1]
    out = np.ones(T)
    for t in range(T):
        wt, mt, st = (a[..., t, :].reshape(-1, K) for a in (w, mu, s))
        yt = y[..., t].reshape(-1)
        if not len(yt):
            continue
        mean = (wt * mt).sum(-1)
        lo, hi = quantile(wt, mt, st, (1 - coverage) / 2), quantile(wt, mt, st, (1 + coverage) / 2)
        above = yt >= mean
        gap = np.where(above, hi - mean, mean - lo)  # (n,) the interval's half on y's side
        dist = np.abs(yt - mean)
        # A half of zero width (a degenerate mixture) can only be reached by the largest stretch.
        need = np.divide(dist, gap, out=np.where(dist > 0, np.inf, 0.0), where=gap > 0)
        rank = min(len(need), math.ceil((len(need) + 1) * coverage))
        out[t] = float(np.clip(np.sort(need)[rank - 1], *bounds))
    return out


def probabilistic_metrics(w, mu, s, y, targets: list[str]) -> dict:
    """NLL, CRPS and central 50% / 90% interval coverage, in original units, overall and per target.

    Args:
        w, mu, s: (N, horizon, T, K) mixture parameters in original units.
        y: (N, horizon, T) true values.
    """

    def scores(wk, mk, sk, yk) -> dict:
        lo50, hi50 = quantile(wk, mk, sk, 0.25), quantile(wk, mk, sk, 0.75)
        lo90, hi90 = quantile(wk, mk, sk, 0.05), quantile(wk, mk, sk, 0.95)
        return {
            "nll": float(-log_likelihood(wk, mk, sk, yk).mean()),
            "crps": float(crps(wk, mk, sk, yk).mean()),
            "coverage50": float(((yk >= lo50) & (yk <= hi50)).mean()),
            "coverage90": float(((yk >= lo90) & (yk <= hi90)).mean()),
        }

    out = {"overall": scores(w, mu, s, y), "targets": {}}
    for k, name in enumerate(targets):
        out["targets"][name] = scores(w[:, :, k], mu[:, :, k], s[:, :, k], y[:, :, k])
    return out
