"""The classical baselines every validation report carries next to the model.

naive           every step ahead repeats the last observed value.
seasonal naive  step h repeats the value one season before it: y[t0 - m + (h mod m)] for the
                forecast starting at t0 (the naive forecast when the season m is 1 or longer than
                the history).
MASE            mean absolute error divided by the in-sample mean absolute error of the one-step
                seasonal-naive forecast on the training part (Hyndman & Koehler 2006): below 1
                beats that in-sample benchmark; comparable across series. With several series
                each error is divided by its own series' in-sample error (as M4 scales each
                series), then the mean is over every value: the mean of the series' MASEs, each
                weighted by its number of values (``train`` on the validation windows and
                ``backtest`` on its origins alike); one series: its MAE over its scale.
skill           1 - MASE(model) / MASE(seasonal naive) on the same windows: above 0 beats it.
"""

from __future__ import annotations

import numpy as np

from .season import seasonal_lag


def naive_forecast(history: np.ndarray, origin: int, horizon: int) -> np.ndarray:
    """(horizon, T): the last value before ``origin`` repeated."""
    return np.repeat(history[origin - 1 : origin], horizon, axis=0)


def seasonal_naive_forecast(history: np.ndarray, origin: int, horizon: int, season: int) -> np.ndarray:
    """(horizon, T): the last season before ``origin`` repeated (naive when it is not all there)."""
    m = seasonal_lag(season, origin)
    idx = origin - m + (np.arange(horizon) % m)
    return history[idx]


def window_forecasts(windows, season: int, horizon: int, block: int = 1 << 16) -> dict[str, np.ndarray]:
    """Baseline forecasts (N, horizon, T) for each window, gathered from its series in the table
    (the baselines look back further than the window: a season may be longer), ``block`` windows
    at a time: :func:`naive_forecast` and :func:`seasonal_naive_forecast` for every window at once."""
    table, n_t = windows.table, windows.y.shape[2]
    out = {k: np.zeros((len(windows), horizon, n_t), table.values.dtype) for k in ("naive", "seasonal_naive")}
    steps = np.arange(horizon)
    origins = windows.origin  # (N,) each window's first target step within its series
    for lo in range(0, len(windows), block):
        i = np.arange(lo, min(lo + block, len(windows)))
        first = windows.starts(i) + windows.window  # (B,) the same step as a row of the table
        m = seasonal_lag(season, origins[i])
        out["naive"][lo : lo + len(i)] = table.values[first - 1, :n_t][:, None, :]
        out["seasonal_naive"][lo : lo + len(i)] = table.values[(first - m)[:, None] + steps % m[:, None], :n_t]
    return out


def mase_scale(insample: dict, season: int) -> np.ndarray:
    """(T,) in-sample mean |y_t - y_{t-m}| pooled over the series; NaN where it is 0 or undefined."""
    diffs = []
    for values in insample.values():
        m = seasonal_lag(season, len(values) - 1)
        if len(values) > m:
            diffs.append(np.abs(np.asarray(values[m:], np.float64) - values[:-m]))
    if not diffs:
        n_t = next(iter(insample.values())).shape[1] if insample else 1
        return np.full(n_t, np.nan)
    scale = np.concatenate(diffs).mean(axis=0)
    return np.where(scale > 0, scale, np.nan)


def window_scales(insample: dict, series, season: int) -> np.ndarray:
    """(N, 1, T) each window's MASE denominator: its own series' in-sample seasonal-naive MAE
    (:func:`mase_scale` of that series alone); NaN where it is 0, or the series has no in-sample part."""
    own = {sid: mase_scale({sid: values}, season) for sid, values in insample.items()}
    n_t = next(iter(insample.values())).shape[1] if insample else 1
    none = np.full(n_t, np.nan)
    return np.stack([own.get(sid, none) for sid in series]).reshape(len(series), 1, n_t) if len(series) else np.zeros((0, 1, n_t))


def _scores(y, p, scale) -> dict:
    err = np.asarray(p, np.float64) - np.asarray(y, np.float64)  # (N, H, T)
    mae_t = np.abs(err).mean(axis=(0, 1)) if err.size else np.full(err.shape[2], np.nan)
    if np.ndim(scale) == 1:  # one scale per target: one series
        mase_t = mae_t / scale
    else:  # (N, 1, T): each window's own series' scale
        scaled = np.abs(err) / scale
        held = np.isfinite(scaled).sum(axis=(0, 1))
        mase_t = np.where(held > 0, np.nansum(scaled, axis=(0, 1)) / np.maximum(held, 1), np.nan)
    return {
        "mae": float(np.abs(err).mean()) if err.size else None,
        "rmse": float(np.sqrt((err**2).mean())) if err.size else None,
        "mase": _finite(np.mean(mase_t)),
        "mase_targets": [_finite(v) for v in mase_t],
    }


def _finite(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def compare(y_true: np.ndarray, y_pred: np.ndarray, baseline: dict[str, np.ndarray], scale: np.ndarray, targets: list[str], season: int) -> dict:
    """The model against the baselines on the same windows.

    Args:
        y_true, y_pred: (N, horizon, T) in original units.
        baseline: ``{"naive": (N, horizon, T), "seasonal_naive": ...}``.
        scale: (T,) MASE denominators (:func:`mase_scale`), or (N, 1, T) each window's own
            series' (:func:`window_scales`, several series).

    Returns:
        ``{"season", "mase", "skill", "model": {mae, rmse, mase}, "baselines": {name: {mae, rmse, mase}}, "targets": {name:
        {"mase", "skill", "naive_mase", "seasonal_naive_mase"}}, "warning"}``; ``warning`` is a
        sentence when the model is worse than seasonal naive (overall MASE), else None.
    """
    model = _scores(y_true, y_pred, scale)
    base = {name: _scores(y_true, p, scale) for name, p in baseline.items()}
    snaive = base["seasonal_naive"]

    def skill(a, b):
        return None if a is None or b is None or b == 0 else 1.0 - a / b

    per_target = {}
    for k, name in enumerate(targets):
        m, s = model["mase_targets"][k], snaive["mase_targets"][k]
        per_target[name] = {"mase": m, "skill": skill(m, s), "naive_mase": base["naive"]["mase_targets"][k], "seasonal_naive_mase": s}
    out = {
        "season": int(season),
        "mase": model["mase"],
        "skill": skill(model["mase"], snaive["mase"]),
        "model": {k: v for k, v in model.items() if k != "mase_targets"},
        "baselines": {name: {k: v for k, v in b.items() if k != "mase_targets"} for name, b in base.items()},
        "targets": per_target,
        "warning": None,
    }
    worse = model["mase"] is not None and snaive["mase"] is not None and worse_than(model["mase"], snaive["mase"])
    if model["mase"] is None and model["mae"] is not None and snaive["mae"] is not None:
        worse = worse_than(model["mae"], snaive["mae"])  # no MASE (a constant training part): compare the MAE
    if worse:
        what = f"MASE {model['mase']:.3f} vs {snaive['mase']:.3f}" if model["mase"] is not None else f"MAE {model['mae']:.4g} vs {snaive['mae']:.4g}"
        out["warning"] = (
            f"the model is worse than seasonal naive (season {season}) on the validation windows ({what}): "
            "do not ship it; try --season, --log, a longer --window, or more data"
        )
    return out


def worse_than(error: float, baseline: float) -> bool:
    """Whether ``error`` is worse than ``baseline``'s beyond float32 rounding: a seasonal naive
    that ships (computed in float32 through the network) ties its own baseline, not loses to it."""
    return error > baseline * (1 + 1e-5) + 1e-12


def format_value(v: float, spec: str = ".4f") -> str:
    """``v`` in ``spec``, or in 4 significant digits where fixed decimals would show a tiny
    nonzero error as 0.0000 (a series around 1e-12)."""
    if spec.endswith("f") and v != 0 and abs(v) < 0.5 * 10.0 ** -int(spec[-2]):
        return format(v, spec[:-2].rstrip(".") + ".4g")
    return format(v, spec)


def format_report(report: dict) -> str:
    """The model and the baselines as lines of text (MAE, RMSE, MASE, skill vs seasonal naive)."""

    def f(v, spec=".4f"):
        return "n/a" if v is None else format_value(v, spec)

    m = report
    lines = [f"{'forecast':<20} {'MAE':>12} {'RMSE':>12} {'MASE':>8}   (season {m['season']}; MASE scaled by the in-sample seasonal-naive MAE)"]
    model_row = m.get("model", {})
    lines.append(f"{'model':<20} {f(model_row.get('mae')):>12} {f(model_row.get('rmse')):>12} {f(m['mase'], '.3f'):>8}")
    for name, b in m["baselines"].items():
        lines.append(f"{name.replace('_', ' '):<20} {f(b['mae']):>12} {f(b['rmse']):>12} {f(b['mase'], '.3f'):>8}")
    lines.append(f"skill vs seasonal naive: {f(m['skill'], '+.3f')}")
    return "\n".join(lines)
