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

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import data as data_mod
from .checkpoint import Checkpoint, from_model
from .errors import ConfigError
from .model import ModelConfig, RecurrentModel
from .train import TrainConfig, fit, regression_metrics


def _as_list(value) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class Forecaster:
    """A recurrent forecaster (LSTM, GRU or RNN) of one or more target columns.

    Args:
        target: target column(s); their own past is always an input.
        features: extra input columns (default: the other numeric columns).
        time, series_id: optional time column to sort by and series column.
        window, horizon: look-back length and number of steps predicted at once.
        val_fraction: the chronological validation split when no validation table is given.
        missing: "error" | "drop" | "ffill".
        cell, hidden_size, num_layers, dropout, bidirectional: the network.
        epochs, batch_size, lr, patience, schedule, seed: the optimisation.
        progress: show a progress bar on stderr while training.
    """

    def __init__(
        self,
        target=None,
        features=None,
        *,
        time: str | None = None,
        series_id: str | None = None,
        window: int = 24,
        horizon: int = 1,
        val_fraction: float = 0.2,
        missing: str = "error",
        cell: str = "lstm",
        hidden_size: int = 32,
        num_layers: int = 2,
        dropout: float = 0.0,
        bidirectional: bool = False,
        epochs: int = 200,
        batch_size: int = 32,
        lr: float = 3e-3,
        patience: int = 20,
        schedule: str = "none",
        seed: int = 0,
        progress: bool = True,
    ):
        self.target = _as_list(target)
        self.features = _as_list(features)
        self.data_kwargs = dict(time=time, series_id=series_id, window=window, horizon=horizon, val_fraction=val_fraction, missing=missing)
        self.model_config = ModelConfig(cell=cell, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, bidirectional=bidirectional)
        self.train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, schedule=schedule, seed=seed)
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
        torch.manual_seed(self.train_config.seed)  # the initial weights repeat too
        model = RecurrentModel(self.model_config, len(dataset.input_columns), len(dataset.target_columns), config.horizon)
        model.set_normalizer(dataset.normalizer)
        history = fit(model, dataset, self.train_config, progress=self.progress)
        metrics = regression_metrics(dataset.validation.y, self._predict_array(model, dataset.validation.x), dataset.target_columns)
        self.model_ = model
        self.checkpoint_ = from_model(model, dataset, self.model_config, self.train_config, metrics, history.to_dict())
        self.dataset_ = dataset
        return self

    @property
    def metrics_(self) -> dict:
        """Validation metrics in original units (RMSE, MAE, MAPE per target and step)."""
        return self._fitted().metrics

    @property
    def history_(self) -> dict:
        return self._fitted().history

    # -- prediction -------------------------------------------------------------------------

    @staticmethod
    @torch.no_grad()
    def _predict_array(model: RecurrentModel, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        model.eval()
        out = [model(torch.as_tensor(x[i : i + batch_size], dtype=torch.float32)).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, model.horizon, model.n_targets), np.float32)

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        """Raw windows (N, window, F) -> raw predictions (N, horizon, T)."""
        self._fitted()
        return self._predict_array(self.model_, np.asarray(x, dtype=np.float32))

    def predict(self, frame, *, last_only: bool = False) -> pd.DataFrame:
        """Forecast after every complete window of a table (CSV path or DataFrame).

        Returns:
            One row per window: the series id and time of the window's last row (when the
            table has them) and one column ``{target}_t+{h}`` per target and horizon step.
        """
        ckpt = self._fitted()
        x, keys = data_mod.prediction_windows(frame, ckpt.data_config, ckpt.input_columns, last_only=last_only)
        y = self.predict_windows(x)  # (N, horizon, T)
        return prediction_frame(keys, y, ckpt.target_columns)

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

    def export(self, path, *, precision: str = "fp32", target: str = "iOS16", **metadata) -> Path:
        """Export as an .mlpackage taking raw inputs and returning raw predictions (see :mod:`.export`)."""
        from .export import ExportConfig, export_checkpoint

        return export_checkpoint(self._fitted(), path, ExportConfig(precision=precision, target=target, **metadata))

    def _fitted(self) -> Checkpoint:
        if self.checkpoint_ is None:
            raise ConfigError("this Forecaster is not fitted yet: call fit() or Forecaster.load()")
        return self.checkpoint_


def prediction_frame(keys: pd.DataFrame, y: np.ndarray, targets: list[str]) -> pd.DataFrame:
    """Key columns plus one column per target and horizon step, from (N, horizon, T) predictions."""
    out = keys.reset_index(drop=True).copy()
    for h in range(y.shape[1]):
        for k, name in enumerate(targets):
            out[f"{name}_t+{h + 1}"] = y[:, h, k]
    return out
