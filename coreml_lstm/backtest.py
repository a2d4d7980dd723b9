"""Rolling-origin evaluation: forecast ``horizon`` steps at once from each of the last k origins.

For each series, origin j (j = 0 .. k-1, oldest first) is the row ``n - horizon - (k-1-j) *
step``: the model sees the ``window`` rows before it, as the exported package would, and its
``horizon`` predictions are compared with the rows from the origin on, next to naive and
seasonal naive from the same history. MASE divides by the in-sample seasonal-naive MAE of the
rows before the series' first origin. With ``refit`` a fresh model with the same settings (the
same window, horizon and season) is trained on every series' rows before each origin; without it
the fitted model is used as it is, which is an honest test only for origins after the data it
was fitted on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import data as data_mod
from .baselines import naive_forecast, seasonal_naive_forecast, worse_than
from .errors import DataError
from .season import seasonal_lag

METHODS = ("model", "naive", "seasonal_naive")


@dataclass
class Backtest:
    """The forecasts of every origin, their errors and the summary (see :meth:`to_dict`)."""

    targets: list[str]
    window: int
    horizon: int
    season: int
    refit: bool
    origins: list[dict] = field(default_factory=list)  # series, origin row, time, y, model, naive, seasonal_naive
    scale: dict = field(default_factory=dict)  # series id -> (T,) MASE denominators
    history: dict = field(default_factory=dict)  # series id -> (first row, times, (n, T) values) for plots
    notes: list = field(default_factory=list)  # sentences: series that hold fewer origins than asked
    warnings: list = field(default_factory=list)  # sentences: a table stepping otherwise than the training data

    def summary(self) -> dict:
        """Pooled MAE, RMSE and MASE per method; the model's skill against seasonal naive; a warning."""
        out = {}
        for method in METHODS:
            err = np.concatenate([np.asarray(o[method]) - np.asarray(o["y"]) for o in self.origins])  # (k*H, T)
            scaled = np.concatenate([np.abs(np.asarray(o[method]) - np.asarray(o["y"])) / self.scale[o["series"]] for o in self.origins])
            mase = float(np.nanmean(scaled)) if np.isfinite(scaled).any() else None
            out[method] = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "mase": mase}
        m, s = out["model"]["mase"], out["seasonal_naive"]["mase"]
        skill = None if m is None or not s else 1.0 - m / s
        worse = worse_than(m, s) if (m is not None and s is not None) else worse_than(out["model"]["mae"], out["seasonal_naive"]["mae"])
        warning = None
        if worse:
            what = f"MASE {m:.3f} vs {s:.3f}" if m is not None and s is not None else f"MAE {out['model']['mae']:.4g} vs {out['seasonal_naive']['mae']:.4g}"
            warning = f"the model is worse than seasonal naive (season {self.season}) over the backtest origins ({what})"
        return {"methods": out, "skill": skill, "warning": warning}

    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, (np.generic,)):
                return v.item()
            return v if isinstance(v, (int, float, str, type(None), list)) else str(v)

        return {
            "targets": self.targets, "window": self.window, "horizon": self.horizon, "season": self.season, "refit": self.refit,
            "summary": self.summary(), "notes": list(self.notes), "warnings": list(self.warnings),
            "origins": [{k: plain(v) for k, v in o.items()} | {f"{m}_mae": float(np.abs(np.asarray(o[m]) - np.asarray(o["y"])).mean()) for m in METHODS}
                        for o in self.origins],
        }

    def table(self) -> str:
        """One line per origin (MAE of each method), then the pooled MAE / RMSE / MASE."""
        lines = [f"{'series':<12} {'origin':<22} {'model MAE':>12} {'naive MAE':>12} {'s.naive MAE':>12}"]
        for o in self.origins:
            maes = [float(np.abs(np.asarray(o[m]) - np.asarray(o["y"])).mean()) for m in METHODS]
            sid = "" if o["series"] is None else str(o["series"])
            lines.append(f"{sid:<12} {str(o['time']):<22} " + " ".join(f"{v:>12.4f}" for v in maes))
        summary = self.summary()
        lines.append(f"{'over ' + str(len(self.origins)) + ' origins':<35} {'MAE':>12} {'RMSE':>12} {'MASE':>8}")
        for method, r in summary["methods"].items():
            mase = "n/a" if r["mase"] is None else f"{r['mase']:.3f}"
            lines.append(f"{method.replace('_', ' '):<35} {r['mae']:>12.4f} {r['rmse']:>12.4f} {mase:>8}")
        skill = "n/a" if summary["skill"] is None else f"{summary['skill']:+.3f}"
        lines.append(f"skill vs seasonal naive: {skill}   (horizon {self.horizon}, season {self.season}, {'refit at each origin' if self.refit else 'no refit'})")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def plot(self, path):
        """Write a PNG of the truth and every origin's forecasts; returns its path."""
        from .plot import plot_backtest

        return plot_backtest(self, path)


def _plain_time(t):
    """A time as JSON and a table show it: a date string, or the number itself."""
    if isinstance(t, pd.Timestamp):
        return str(t.date()) if t == t.normalize() else str(t)
    return t.item() if hasattr(t, "item") else t


def _origins(n: int, window: int, horizon: int, k: int, step: int) -> list[int]:
    return [o for o in (n - horizon - j * step for j in range(k - 1, -1, -1)) if o >= window]


def _before(g: pd.DataFrame, sid, cut: int, config, inputs: list[str]) -> pd.DataFrame:
    """A series' rows before its origin ``cut`` (positions in time order, as the series is held),
    as a table ``fit`` reads: its value columns, its time and its id. (Taken from the sorted series
    itself, not by row label from the source table, whose order may be any.)"""
    part = g.iloc[:cut][inputs].copy()
    if config.time:
        part[config.time] = g["__time__"].iloc[:cut].to_numpy()
    if config.series_id:
        part[config.series_id] = sid
    return part


def backtest(forecaster, data, *, origins: int = 5, step: int | None = None, refit: bool = False, progress: bool = False,
             missing: str | None = None) -> Backtest:
    """See the module docstring; ``forecaster`` is a fitted :class:`coreml_lstm.api.Forecaster`;
    ``missing`` ("error" | "drop" | "ffill"): the table's empty cells (None: as in training)."""
    if not isinstance(origins, int) or origins < 1:
        raise DataError(f"origins: must be an integer >= 1, got {origins!r}")
    ckpt = forecaster._fitted()
    if missing is not None and missing not in data_mod.MISSING:
        raise DataError(f"missing: {missing!r} is not one of {', '.join(data_mod.MISSING)}")
    config = ckpt.data_config if missing is None else dataclasses.replace(ckpt.data_config, missing=missing)
    W, H, m = config.window, config.horizon, config.season or 1
    step = H if step is None else step
    if not isinstance(step, int) or step < 1:
        raise DataError(f"step: must be an integer >= 1, got {step!r}")
    frame = data_mod.read_table(data, role="backtest", text=data_mod.key_columns(config), keys=data_mod.index_keys(config))
    inputs, targets = list(ckpt.input_columns), list(ckpt.target_columns)
    data_mod.require_columns(frame, inputs + [c for c in (config.time, config.series_id) if c])
    held = data_mod.clean_table(frame, config, inputs)
    series = held.frames()
    result = Backtest(targets, W, H, m, refit)
    other = data_mod.step_warning(frame.attrs["label"], data_mod.table_step(held) if config.time else None, config.step)
    if other:
        result.warnings.append(other)
    plan = []  # (sid, g, origin positions)
    for sid, g in series:
        if config.log:
            data_mod.check_positive(frame.attrs["label"], g, targets)
        positions = _origins(len(g), W, H, origins, step)
        if not positions:
            who = f"series {sid!r}" if sid is not None else "the table"
            raise DataError(f"{frame.attrs['label']}: {who} has {len(g)} rows; a backtest with window {W} + horizon {H} needs at least {W + H}")
        plan.append((sid, g, positions))
        if len(positions) < origins:
            who = f"series {sid!r}" if sid is not None else "the table"
            result.notes.append(f"{who} holds {len(positions)} of the {origins} origins asked ({len(g)} rows, window {W}, horizon {H}, step {step})")
        values = g[targets].to_numpy(np.float64)
        before = values[: positions[0]]
        lag = seasonal_lag(m, len(before) - 1)
        scale = np.abs(before[lag:] - before[:-lag]).mean(axis=0) if len(before) > lag else np.full(len(targets), np.nan)
        result.scale[sid] = np.where(scale > 0, scale, np.nan)
        tail = max(0, positions[0] - 2 * W)
        result.history[sid] = (tail, g["__time__"].to_numpy()[tail:], values[tail:])

    forecasts = {}
    if refit:
        k = max(len(p) for _, _, p in plan)
        for j in range(k):
            # Origin j of every series (counted from the last), all series refitted together.
            cut = {sid: p[len(p) - k + j] for sid, _, p in plan if len(p) - k + j >= 0}
            rows = pd.concat([_before(g, sid, cut[sid], config, inputs) for sid, g, _ in plan if sid in cut], ignore_index=True)
            rows.attrs["label"] = frame.attrs["label"]
            fresh = _fresh(forecaster, ckpt, config, progress).fit(rows)
            for sid, g, _ in plan:
                if sid in cut:
                    o = cut[sid]
                    x = g[inputs].to_numpy(np.float32)[None, o - W : o]
                    forecasts[sid, o] = fresh.predict_windows(x)[0]
    else:
        xs, keys = [], []
        for sid, g, positions in plan:
            a = g[inputs].to_numpy(np.float32)
            for o in positions:
                xs.append(a[o - W : o])
                keys.append((sid, o))
        pred = forecaster.predict_windows(np.stack(xs))
        forecasts = dict(zip(keys, pred))

    for sid, g, positions in plan:
        values = g[targets].to_numpy(np.float64)
        times = g["__time__"]
        for o in positions:
            result.origins.append({
                "series": sid, "origin": int(o), "time": _plain_time(times.iloc[o]),
                "y": values[o : o + H], "model": np.asarray(forecasts[sid, o], np.float64),
                "naive": naive_forecast(values, o, H), "seasonal_naive": seasonal_naive_forecast(values, o, H, m),
            })
    return result


def _fresh(forecaster, ckpt, config, progress: bool):
    """An unfitted Forecaster with the fitted one's settings and its resolved window, horizon and
    season (``config``: its data configuration, as the backtest reads the table)."""
    from .api import Forecaster

    fresh = Forecaster(list(config.target), config.features, progress=progress)
    fresh.data_kwargs = dict(time=config.time, series_id=config.series_id, window=config.window, horizon=config.horizon, season=config.season,
                             val_fraction=config.val_fraction, missing=config.missing, log=config.log)
    fresh.model_config, fresh.train_config = ckpt.model_config, ckpt.train_config
    return fresh
