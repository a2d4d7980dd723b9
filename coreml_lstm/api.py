"""The sklearn-like Python API: ``Forecaster(...).fit(train, validation=...)``.

Example::

    from coreml_lstm import Forecaster
    from coreml_lstm.datasets import load_sunspots

    f = Forecaster(target="SUNACTIVITY", time="YEAR", window=12).fit(load_sunspots())
    f.predict(load_sunspots().tail(30))
    f.save("runs/sunspots")
    f.export("models/sunspots.mlpackage")
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data as data_mod
from .checkpoint import Checkpoint, from_model
from .errors import ConfigError, DataError, DataWarning, TrainingError
from .model import ModelConfig, RecurrentModel
from .mixture import mixture_nll, probabilistic_metrics
from .predict import distribution_frame, prediction_frame
from .train import ForecastTrainConfig, check_device, fit, is_main_process, mse_loss, regression_metrics

# The classical start is chosen on at most this many training windows, spread over the table: on
# a large table, all of them would be materialised at once (N x window x features floats).
START_WINDOWS = 16384


def _column(value, field: str) -> str:
    """A column name as the table readers hold it: pandas columns may be named by numbers (``0``),
    which :func:`coreml_lstm.data.read_table` reads as their text (``"0"``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, np.generic)):
        return str(value)
    raise ConfigError(f"{field}: expected a column name or a list of them, got {type(value).__name__} {value!r}")


def _as_list(value, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, (str, int, float, np.generic)):
        return [_column(value, field)]
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"{field}: expected a column name or a list of them, got {type(value).__name__} {value!r}") from None
    return [_column(v, field) for v in items]


class Forecaster:
    """A recurrent forecaster (LSTM, GRU or RNN) of one or more target columns.

    Args:
        target: target column(s); their own past is always an input.
        features: extra input columns (default: the other numeric columns).
        time, series_id: optional time column to sort by and series column.
        window, horizon: look-back length and number of steps predicted at once; None (the
            default) picks them from the season and the series length (see data.default_lengths).
        season: the season length (None: from the time column's frequency, 1 without one).
        val_fraction: the chronological validation split when no validation table is given (at
            least one horizon of each series).
        missing: "error" | "drop" | "ffill".
        scaling: "window" (each window in its own frame, the default) or "global" (z-scores from
            the training part): see :mod:`coreml_lstm.model`.
        log: model the targets' logarithms (multiplicative seasonality); every target must be > 0.
        cell, hidden_size, num_layers, dropout, bidirectional: the network.
        head, mixtures: "point" (one value per target and step, trained by MSE) or "mixture"
            (a Gaussian mixture of ``mixtures`` components per value, trained by NLL).
        epochs, batch_size, lr, weight_decay, patience, schedule, seed: the optimisation.
        select: "validation" (the default) ships, for a window-scaled point forecaster, whichever
            of the trained network, each classical baseline (naive, seasonal naive, drift, damped
            drift, seasonal drift) and the network averaged with the best baseline has the lowest
            MAE on the validation windows, so a series the network cannot improve on ships exactly
            that baseline; "network" ships the network as trained (early stopping aside).
        calibrate: mixture head: widen each target's mixtures about their means where the
            central 90% intervals cover less than 90% of the validation values (split-conformal;
            never narrowed); the package outputs the calibrated mixture.
        device, dist_timeout: where to train ("cpu", "cuda", "mps", "auto"); under torchrun, how
            long a collective waits for the other processes (see :func:`coreml_lstm.train.fit`).
        progress: show a progress bar on stderr while training.
    """

    def __init__(
        self,
        target=None,
        features=None,
        *,
        time: str | None = None,
        series_id: str | None = None,
        window: int | None = None,
        horizon: int | None = None,
        season: int | None = None,
        val_fraction: float = 0.2,
        missing: str = "error",
        scaling: str = "window",
        log: bool = False,
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 2,
        dropout: float = 0.0,
        bidirectional: bool = False,
        head: str = "point",
        mixtures: int = 3,
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        patience: int = 20,
        schedule: str = "none",
        seed: int = 0,
        select: str = "validation",
        calibrate: bool = True,
        device: str = "cpu",
        dist_timeout: float = 300.0,
        progress: bool = True,
    ):
        self.target = _as_list(target, "target")
        self.features = _as_list(features, "features")
        time = None if time is None else _column(time, "time")
        series_id = None if series_id is None else _column(series_id, "series_id")
        self.data_kwargs = dict(time=time, series_id=series_id, window=window, horizon=horizon, season=season, val_fraction=val_fraction, missing=missing, log=log)
        self.model_config = ModelConfig(cell=cell, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, bidirectional=bidirectional, head=head, mixtures=mixtures,
                                        scaling=scaling, log=log)
        self.train_config = ForecastTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience, schedule=schedule, seed=seed,
                                        select=select, calibrate=calibrate)
        check_device(device, dist_timeout)
        self.device, self.dist_timeout = device, dist_timeout
        self.progress = progress
        self.checkpoint_: Checkpoint | None = None
        self.model_: RecurrentModel | None = None

    # -- training ---------------------------------------------------------------------------

    def fit(self, train, validation=None) -> "Forecaster":
        """Train on a CSV path or DataFrame, validating on ``validation`` or a chronological split."""
        if not self.target:
            raise ConfigError("target: name at least one target column")
        config = data_mod.DataConfig(target=self.target, features=self.features, **self.data_kwargs)
        dataset = data_mod.prepare(train, validation, config)
        config = dataset.config  # window, horizon and season resolved from the data
        torch.manual_seed(self.train_config.seed)  # the initial weights repeat too
        model = RecurrentModel(self.model_config, len(dataset.input_columns), len(dataset.target_columns), config.horizon, config.window)
        model.set_normalizer(dataset.normalizer)
        start = model.start_from_baseline(config.season, *dataset.train.gather(_spread(len(dataset.train), START_WINDOWS)))
        loss_fn = mse_loss if self.model_config.head == "point" else mixture_nll
        try:
            history = fit(model, dataset, self.train_config, loss_fn=loss_fn, progress=self.progress, device=self.device, dist_timeout=self.dist_timeout)
        except TrainingError as exc:
            raise data_mod.diverged([dataset.train.table, dataset.validation.table], exc) from None
        # Every process holds the same weights and validation windows, so every process makes the
        # same choice here (under torchrun too).
        selection = scale = None
        y_val = np.asarray(dataset.validation.y)  # (N, horizon, T): the size of the predictions
        if start and self.model_config.head == "point" and self.train_config.select == "validation" and len(y_val):
            selection = select_on_validation(model, dataset, start, history.best_epoch < 0)
        if self.model_config.head == "mixture" and self.train_config.calibrate and len(y_val):
            scale = calibrate_intervals(model, dataset)
        metrics = None
        if is_main_process():  # under torchrun the other ranks hold the same weights and write nothing
            outputs = self._outputs(model, dataset.validation.x)
            point = outputs[0] if self.model_config.head == "point" else outputs[3]
            metrics = regression_metrics(y_val, point, dataset.target_columns)
            metrics.update(validation_baselines(dataset, point))
            weights = _series_weights(dataset) if len(y_val) else None
            if weights is not None:
                metrics["scaled"] = scaled_metrics(y_val, point, weights)
            if len(dataset.target_columns) > 1:
                metrics["overall"]["pooled_targets"] = list(dataset.target_columns)  # in their own units, maybe different ones
            metrics["warnings"] = dataset.warnings + metrics["warnings"]
            if start:
                metrics["start"] = start  # the classical forecast training started from
            if selection:
                metrics["selection"] = selection
            if scale is not None:
                metrics["interval_scale"] = [float(v) for v in scale]
            if self.model_config.head == "mixture":
                w, mu, s = outputs[:3]
                metrics["probabilistic"] = probabilistic_metrics(w, mu, s, y_val, dataset.target_columns)
                if weights is not None:
                    metrics["probabilistic"]["scaled"] = scaled_probabilistic_metrics(w, mu, s, y_val, weights)
        self.model_ = model
        self.checkpoint_ = from_model(model, dataset, self.model_config, self.train_config, metrics, history.to_dict())
        self.dataset_ = dataset
        return self

    @property
    def metrics_(self) -> dict:
        """Validation metrics in original units (RMSE, MAE, MAPE per target and step), the
        baselines on the same windows (``vs_baselines``: naive, seasonal naive, MASE, skill) and
        ``warnings`` (a sentence when the model is worse than seasonal naive)."""
        return self._fitted().metrics

    @property
    def history_(self) -> dict:
        return self._fitted().history

    # -- prediction -------------------------------------------------------------------------

    @staticmethod
    @torch.no_grad()
    def _outputs(model: RecurrentModel, x: np.ndarray, batch_size: int = 1024) -> list[np.ndarray]:
        """All of the model's raw outputs (see RecurrentModel.raw_outputs) for windows x (an array or
        a lazy :class:`coreml_lstm.data.WindowArray`, cut batch by batch)."""
        model.eval()
        parts = []
        for i in range(0, len(x), batch_size):
            parts.append([o.numpy() for o in model.outputs(torch.from_numpy(np.array(x[i : i + batch_size], dtype=np.float32)))])
        if not parts:
            with torch.no_grad():
                empty = model.outputs(torch.ones(1, model.window or 1, model.n_inputs))
            return [np.zeros((0,) + tuple(o.shape[1:]), np.float32) for o in empty]
        return [np.concatenate(p) for p in zip(*parts)]

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        """Raw windows (N, window, F) -> raw predictions (N, horizon, T) (the mixture mean for a mixture head)."""
        out = self._outputs(self.model_, self._windows(x))
        return out[0] if self.model_config.head == "point" else out[3]

    def predict_distribution(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Mixture head: raw windows -> weights, means, scales (N, horizon, T, K), prediction, variance."""
        self._fitted()
        if self.model_config.head != "mixture":
            raise ConfigError("predict_distribution needs a mixture head (head='mixture')")
        from .model import MIXTURE_OUTPUTS

        return dict(zip(MIXTURE_OUTPUTS, self._outputs(self.model_, self._windows(x))))

    def _windows(self, x):
        """Windows as given when lazy (cut and checked batch by batch later), else checked float32:
        shape (N, window, F) (a globally scaled model takes any length), finite, within float32."""
        ckpt = self._fitted()
        if isinstance(x, data_mod.WindowArray):
            return x
        columns = ckpt.input_columns
        steps = ckpt.window if ckpt.model_config.scaling == "window" else "L"
        expected = f"expected shape (N, {steps}, {len(columns)}): N windows of {steps} steps of [{', '.join(columns)}]"
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"windows: {expected}, got values that are not numbers") from None
        if x.ndim != 3 or x.shape[2] != len(columns) or (steps != "L" and x.shape[1] != steps) or x.shape[1] == 0:
            raise DataError(f"windows: {expected}, got shape {x.shape}")
        unheld = data_mod.first_unheld(x)
        if unheld is not None:
            (n, t, c), what = unheld
            raise DataError(f"windows: window {n}, step {t}, column {columns[c]!r}: {what}")
        return x.astype(np.float32)

    def predict(self, frame, *, last_only: bool = False) -> pd.DataFrame:
        """Forecast after every complete window of a table (CSV path or DataFrame).

        A table stepping otherwise than the training data (hourly rows to a daily model) is
        forecast as if it stepped as they did, with a :class:`~coreml_lstm.errors.DataWarning`.

        Returns:
            One row per window: the series id and time of the window's last row (when the
            table has them) and one column ``{target}_t+{h}`` per target and horizon step.
        """
        ckpt = self._fitted()
        x, keys, step, label = data_mod.prediction_windows(frame, ckpt.data_config, ckpt.input_columns, last_only=last_only)
        other = data_mod.step_warning(label, step, ckpt.data_config.step)
        if other:
            warnings.warn(other, DataWarning, stacklevel=2)
        if self.model_config.head == "mixture":
            return distribution_frame(keys, self.predict_distribution(x), ckpt.target_columns)
        return prediction_frame(keys, self.predict_windows(x), ckpt.target_columns)

    def backtest(self, data, *, origins: int = 5, step: int | None = None, refit: bool = False, progress: bool = False,
                 missing: str | None = None):
        """Rolling-origin evaluation over the last ``origins`` forecast origins of each series.

        From each origin the model forecasts ``horizon`` steps at once from the window before it,
        as the exported package does, next to naive and seasonal naive. ``refit`` trains a fresh
        model (these settings) on the rows before each origin; without it the fitted model is
        used as it is (honest only for origins after the data it was fitted on). ``missing``
        ("error" | "drop" | "ffill"): the table's empty cells (default: as in training).

        Returns:
            A :class:`coreml_lstm.backtest.Backtest` (``.table()``, ``.to_dict()``, ``.plot(path)``).
        """
        from .backtest import backtest

        self._fitted()
        return backtest(self, data, origins=origins, step=step, refit=refit, progress=progress, missing=missing)

    # -- persistence and export --------------------------------------------------------------

    def save(self, directory) -> Path:
        """Write the checkpoint (config.json, model.safetensors, metrics.json)."""
        return self._fitted().save(directory)

    @classmethod
    def load(cls, directory) -> "Forecaster":
        """Rebuild a fitted forecaster from :meth:`save`'s directory (no pickle involved)."""
        ckpt = Checkpoint.load(directory)
        self = cls(target=ckpt.data_config.target, features=ckpt.data_config.features, progress=False)
        self.model_config, self.train_config = ckpt.model_config, ckpt.train_config
        self.checkpoint_, self.model_ = ckpt, ckpt.build_model()
        return self

    def export(self, path, *, precision: str = "fp32", target: str = "iOS16", streaming: str | None = None, max_chunk: int = 64,
               compress: str | None = None, **metadata) -> Path:
        """Export as an .mlpackage taking raw inputs and returning raw predictions (see :mod:`.export`).

        ``streaming``: None (a window in, a forecast out), "explicit" (a chunk plus the recurrent
        state in, the state out) or "states" (iOS18+: the state lives in Core ML states).
        ``compress``: None or one of int8, palettize6, palettize4, prune50 (weights only).
        """
        from .export import ExportConfig, export_checkpoint

        config = ExportConfig(precision=precision, target=target, streaming=streaming, max_chunk=max_chunk, compress=compress, **metadata)
        return export_checkpoint(self._fitted(), path, config)

    def _fitted(self) -> Checkpoint:
        if self.checkpoint_ is None:
            raise ConfigError("this Forecaster is not fitted yet: call fit() or Forecaster.load()")
        return self.checkpoint_


def validation_baselines(dataset, point: np.ndarray) -> dict:
    """``vs_baselines`` (the model against naive and seasonal naive on the validation windows) and
    ``warnings`` for the metrics."""
    from .baselines import compare, mase_scale, window_forecasts, window_scales

    config = dataset.config
    base = window_forecasts(dataset.validation, config.season, config.horizon)
    # Several series: each scaled by its own in-sample error (M4's MASE, and backtest's); the
    # pooled scale let the series of the largest changes set every series' denominator.
    many = len(dataset.insample) > 1
    scale = window_scales(dataset.insample, dataset.validation.series, config.season) if many else mase_scale(dataset.insample, config.season)
    report = compare(dataset.validation.y, point, base, scale, dataset.target_columns, config.season)
    return {"vs_baselines": report, "warnings": [report["warning"]] if report["warning"] else []}


def select_on_validation(model: RecurrentModel, dataset, start: str, kept_start: bool) -> dict:
    """Make ``model`` the candidate with the lowest MAE on the validation windows (original units)
    and say which it is: each classical baseline, the trained network, and the network averaged
    with the best baseline (one model of the same shape: see :meth:`RecurrentModel.blend_with_baseline`).

    Ties go to the simpler candidate (a baseline, then the blend), so a series on which nothing
    improves on a baseline ships exactly that baseline. ``kept_start``: early stopping kept the
    untrained start, which is then the baseline ``start`` itself and no network candidate.

    With several series or targets the choice is by the MAE of each window scaled by its series'
    and target's in-sample seasonal-naive error (a per-series MASE), so a series in the millions
    does not decide for one in the tens, nor one target's units for another's; the scaled scores
    are reported beside the MAE (``"scaled"``).

    Returns:
        ``{"shipped": name, "mae": {candidate: validation MAE}}`` (+ ``"scaled"``: {candidate: scaled MAE}).
    """
    season = dataset.config.season
    x, y = dataset.validation.x, np.asarray(dataset.validation.y, np.float64)
    trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights = _series_weights(dataset)  # (N, 1, T), or None: one series and one target

    def errors(pred) -> tuple[float, float | None]:
        err = np.abs(np.asarray(pred, np.float64) - y)
        return float(err.mean()), (float((err * weights).mean()) if weights is not None else None)

    # straight from the frame, batch by batch; both scores from one pass
    raw, scaled = model.baseline_mae(season, x, y, weights=weights) if weights is not None else (model.baseline_mae(season, x, y), None)
    scores = scaled if scaled is not None else raw
    best = min(scores, key=scores.get)  # the first of STARTS among equals
    states = {}
    if not kept_start:
        model.blend_with_baseline(best, season)
        blend = f"network + {best}"
        raw[blend], s = errors(Forecaster._outputs(model, x)[0])
        if scaled is not None:
            scaled[blend] = s
        states[blend] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(trained)
        raw["network"], s = errors(Forecaster._outputs(model, x)[0])
        if scaled is not None:
            scaled["network"] = s
        states["network"] = trained
    shipped = min(scores, key=scores.get)  # dicts keep order: baselines, then the blend, then the network
    if shipped in states:
        model.load_state_dict(states[shipped])
    else:
        model.set_baseline(shipped, season)
    model.eval()
    return {"shipped": shipped, "mae": raw} | ({"scaled": scaled} if scaled is not None else {})


SCALED_BY = "each value's error over its series' and target's in-sample seasonal-naive MAE (as selection scales), averaged per target, then over targets"


def scaled_metrics(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray) -> dict:
    """Scale-free RMSE and MAE over several series or targets: each error times its window's
    ``weights`` (N, 1, T) (1 / the series' and target's in-sample seasonal-naive MAE: see
    :func:`_series_weights`), each target's RMSE and MAE of those, then their mean over the
    targets (MASE-style: the MAE of one series and one target is its MASE; the overall RMSE and
    MAE in original units pool targets whose units may differ)."""
    err = (np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)) * weights  # (N, H, T)
    rmse_t, mae_t = np.sqrt((err**2).mean(axis=(0, 1))), np.abs(err).mean(axis=(0, 1))  # (T,)
    return {"rmse": float(rmse_t.mean()), "mae": float(mae_t.mean()), "rmse_targets": rmse_t.tolist(), "mae_targets": mae_t.tolist(), "by": SCALED_BY}


def scaled_probabilistic_metrics(w, mu, s, y, weights: np.ndarray) -> dict:
    """Scale-free NLL and CRPS (mean over targets), on the values divided by their series' and
    target's scale as :func:`scaled_metrics`: CRPS times the weight, NLL plus its log (the density
    of y / scale)."""
    from .mixture import crps, log_likelihood

    nll = -log_likelihood(w, mu, s, y) + np.log(weights)  # (N, H, T)
    score = crps(w, mu, s, y) * weights
    return {"nll": float(nll.mean(axis=(0, 1)).mean()), "crps": float(score.mean(axis=(0, 1)).mean()), "by": SCALED_BY}


def _series_weights(dataset) -> np.ndarray | None:
    """(N, 1, T) 1 / (the in-sample seasonal-naive MAE of each validation window's series and
    target), for choosing across series and targets of different scales; None for one series
    and one target (the MAE decides alone). Where a series' seasonal-naive error is 0 (an exact
    pattern) its naive error, its spread, then its level stand in, in its own units; a series at
    zero throughout takes the others' (geometric mean), 1 when there are none."""
    from .baselines import mase_scale

    insample = dataset.insample
    n_targets = len(dataset.target_columns)
    if len(insample) < 2 and n_targets < 2:
        return None

    def scale_of(values) -> np.ndarray:  # (T,), NaN where nothing in the series gives a scale
        values = np.asarray(values, np.float64)
        out = np.full(n_targets, np.nan)
        if not len(values):
            return out
        for candidate in (np.nanmean(np.abs(values), axis=0), np.nanstd(values, axis=0), mase_scale({0: values}, 1), mase_scale({0: values}, dataset.config.season)):
            out = np.where(np.isfinite(candidate) & (candidate > 0), candidate, out)
        return out

    own = {sid: scale_of(values) for sid, values in insample.items()}
    stacked = np.stack(list(own.values())) if own else np.full((1, n_targets), np.nan)
    with np.errstate(all="ignore"):
        pooled = np.exp(np.nanmean(np.log(stacked), axis=0))  # for a series at zero throughout, or one only in validation
    pooled = np.where(np.isfinite(pooled), pooled, 1.0)
    own = {sid: np.where(np.isfinite(s), s, pooled) for sid, s in own.items()}
    series = dataset.validation.series
    scale = np.stack([own.get(sid, pooled) for sid in series]) if len(series) else np.zeros((0, n_targets))
    return (1.0 / scale)[:, None, :]


def calibrate_intervals(model: RecurrentModel, dataset) -> np.ndarray:
    """Set the mixture's ``interval_scale`` from the validation windows (see
    :func:`coreml_lstm.mixture.interval_scale`) and return it, (T,)."""
    from .mixture import interval_scale

    model.interval_scale.fill_(1.0)
    w, mu, s = Forecaster._outputs(model, dataset.validation.x)[:3]
    scale = interval_scale(w, mu, s, np.asarray(dataset.validation.y))
    model.interval_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
    return scale


def _spread(n: int, k: int) -> np.ndarray:
    """Up to ``k`` positions spread evenly over 0..n-1 (all of them when n <= k)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64)) if n else np.zeros(0, np.int64)
