"""The post's API, one to one: a persistent recurrent Gaussian-mixture regressor.

    from coreml_lstm.facade import RecurrentGaussianMixtureRegressor, ModelParameters

    regressor = RecurrentGaussianMixtureRegressor(hidden_unit="lstm", num_layers=2, num_outputs=1)
    parameters = ModelParameters(validation_data="validation.csv")
    regressor.train("training.csv", parameters)
    regressor.prediction(from_input="recent.csv")      # mean, std and quantiles per output
    regressor.export("Regressor.mlpackage")            # state carried between predictions

A thin layer over :class:`coreml_lstm.api.Forecaster` with a mixture head; the exported package
keeps its state between calls (explicit state inputs/outputs by default, Core ML states with
``streaming="states"`` for iOS18+): the last ``window`` rows with window scaling (the default),
the recurrent state with ``ModelParameters(scaling="global")`` (see :mod:`coreml_lstm.streaming`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .api import Forecaster
from .data import read_table
from .errors import ConfigError


@dataclass
class ModelParameters:
    """Training parameters; ``validation_data`` is the post's evaluation data table (CSV or DataFrame)."""

    validation_data: object = None
    target_columns: list[str] | None = None  # default: the last num_outputs numeric columns
    time_column: str | None = None
    series_id_column: str | None = None
    window: int = 24
    max_iterations: int = 200  # epochs
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 20
    validation_fraction: float = 0.2  # used only without validation_data
    seed: int = 0
    scaling: str = "window"  # window: each window in its own frame (the stream state is the last rows); global


class RecurrentGaussianMixtureRegressor:
    """An LSTM (or GRU / RNN) whose prediction is a Gaussian mixture per output and step."""

    def __init__(self, hidden_unit: str = "lstm", num_layers: int = 2, num_outputs: int = 1, *,
                 hidden_size: int = 32, mixtures: int = 3, progress: bool = False):
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise ConfigError(f"num_outputs: must be an integer >= 1, got {num_outputs!r}")
        self.hidden_unit, self.num_layers, self.num_outputs = hidden_unit, num_layers, num_outputs
        self.hidden_size, self.mixtures, self.progress = hidden_size, mixtures, progress
        self.forecaster: Forecaster | None = None

    def _targets(self, data, parameters: ModelParameters) -> list[str]:
        if parameters.target_columns:
            targets = list(parameters.target_columns)
        else:
            frame = read_table(data)
            skip = {parameters.time_column, parameters.series_id_column}
            numeric = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
            targets = numeric[-self.num_outputs :]
        if len(targets) != self.num_outputs:
            raise ConfigError(f"num_outputs is {self.num_outputs} but the target columns are {targets}")
        return targets

    def train(self, data, parameters: ModelParameters | None = None) -> "RecurrentGaussianMixtureRegressor":
        """Train on a data table (CSV path or DataFrame), validating on ``parameters.validation_data``."""
        p = parameters or ModelParameters()
        self.forecaster = Forecaster(
            self._targets(data, p), time=p.time_column, series_id=p.series_id_column, window=p.window,
            val_fraction=p.validation_fraction, cell=self.hidden_unit, hidden_size=self.hidden_size,
            num_layers=self.num_layers, head="mixture", mixtures=self.mixtures, epochs=p.max_iterations,
            batch_size=p.batch_size, lr=p.learning_rate, weight_decay=p.weight_decay, patience=p.patience,
            seed=p.seed, scaling=p.scaling, progress=self.progress,
        ).fit(data, p.validation_data)
        return self

    @property
    def metrics(self) -> dict:
        return self._fitted().metrics_

    def prediction(self, from_input) -> pd.DataFrame:
        """The distribution after the last window of each series of ``from_input``."""
        return self._fitted().predict(from_input, last_only=True)

    def export(self, path, *, streaming: str = "explicit", target: str | None = None, precision: str = "fp32", max_chunk: int = 64):
        """An .mlpackage whose recurrent state persists from one prediction to the next."""
        target = target or ("iOS18" if streaming == "states" else "iOS16")
        return self._fitted().export(path, streaming=streaming, target=target, precision=precision, max_chunk=max_chunk)

    def _fitted(self) -> Forecaster:
        if self.forecaster is None:
            raise ConfigError("the regressor is not trained yet: call train(data, parameters)")
        return self.forecaster
