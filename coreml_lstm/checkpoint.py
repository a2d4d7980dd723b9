"""A trained model on disk: everything needed to rebuild it and its preprocessing.

Layout of a checkpoint directory::

    config.json        data, model and training configuration, columns, normaliser, version
    model.safetensors  the weights (no pickle anywhere)
    metrics.json       validation metrics and the loss history
    validation.safetensors  up to MAX_VALIDATION raw validation windows (x, y), so that
                            `verify` can compare a package with this model on real inputs
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file, save_file

from . import __version__
from .data import DataConfig, Normalizer
from .errors import ConfigError, CoreMLLSTMError, first_line
from .fsutil import atomic_path, directory_destination
from .model import ModelConfig, RecurrentModel
from .train import ForecastTrainConfig, is_main_process

CONFIG, WEIGHTS, METRICS, VALIDATION = "config.json", "model.safetensors", "metrics.json", "validation.safetensors"
MAX_VALIDATION = 256  # enough windows to exercise a model; bounded so checkpoints stay small


@dataclass
class Checkpoint:
    data_config: DataConfig
    model_config: ModelConfig
    train_config: ForecastTrainConfig
    input_columns: list[str]
    target_columns: list[str]
    normalizer: Normalizer
    state_dict: dict = field(repr=False)
    metrics: dict | None = None
    history: dict | None = None
    validation_x: np.ndarray | None = field(default=None, repr=False)  # (N, window, F) raw
    validation_y: np.ndarray | None = field(default=None, repr=False)  # (N, horizon, T) raw
    version: str = __version__

    @property
    def window(self) -> int:
        return self.data_config.window

    @property
    def horizon(self) -> int:
        return self.data_config.horizon

    def build_model(self) -> RecurrentModel:
        """A fresh module with the stored weights, in eval mode."""
        model = RecurrentModel(self.model_config, len(self.input_columns), len(self.target_columns), self.horizon, self.window)
        state = dict(self.state_dict)
        if "interval_scale" in model.state_dict() and "interval_scale" not in state:
            state["interval_scale"] = torch.ones(len(self.target_columns))  # written before interval calibration: as trained
        model.load_state_dict(state)
        return model.eval()

    def config_dict(self) -> dict:
        return {
            "format": "coreml-lstm-checkpoint/1",
            "toolkit_version": self.version,
            "data": self.data_config.to_dict(),
            "model": self.model_config.to_dict(),
            "train": self.train_config.to_dict(),
            "input_columns": list(self.input_columns),
            "target_columns": list(self.target_columns),
            "normalizer": self.normalizer.to_dict(),
        }

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint directory atomically and return its path.

        Under torchrun only rank 0 writes (every rank holds the same weights); the others return
        the path without touching it.
        """
        directory = directory_destination(directory)
        if not is_main_process():
            return directory
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            (tmp / CONFIG).write_text(json.dumps(self.config_dict(), indent=2) + "\n")
            save_file({k: v.detach().contiguous() for k, v in self.state_dict.items()}, str(tmp / WEIGHTS))
            (tmp / METRICS).write_text(json.dumps({"metrics": self.metrics, "history": self.history}, indent=2) + "\n")
            if self.validation_x is not None:
                arrays = {"x": np.ascontiguousarray(self.validation_x, dtype=np.float32)}
                if self.validation_y is not None:
                    arrays["y"] = np.ascontiguousarray(self.validation_y, dtype=np.float32)
                save_numpy(arrays, str(tmp / VALIDATION))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Checkpoint":
        """Read a checkpoint directory written by :meth:`save`.

        Raises:
            ConfigError: the directory or one of its files is missing or unreadable.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise ConfigError(f"{directory}: not a checkpoint directory (expected {CONFIG} and {WEIGHTS} inside)")
        for name in (CONFIG, WEIGHTS):
            if not (directory / name).is_file():
                raise ConfigError(f"{directory}: missing {name}; not a checkpoint directory")
        from .classify.adapter import is_classifier_checkpoint

        if is_classifier_checkpoint(directory):
            raise ConfigError(f"{directory}: is a classifier checkpoint, not a forecaster's; load it with coreml_lstm.classify.load_classifier "
                              "(its predict, evaluate and export work on it)",
                              cli=f"{directory}: is a classifier checkpoint; plot and backtest are for forecasters "
                                  "(a classifier checkpoint takes export, verify, compare and swift; predict takes its package)")
        try:
            config = json.loads((directory / CONFIG).read_text())
            state = load_file(str(directory / WEIGHTS))
        except Exception as exc:  # a damaged file: say which, not how the parser failed inside
            raise ConfigError(f"{directory}: unreadable checkpoint ({type(exc).__name__}: {first_line(exc)})") from None
        metrics = history = val_x = val_y = None
        where = directory / VALIDATION
        try:
            if where.is_file():
                arrays = load_numpy(str(where))
                val_x, val_y = arrays.get("x"), arrays.get("y")
            where = directory / METRICS
            if where.is_file():
                extra = json.loads(where.read_text())
                metrics, history = extra.get("metrics"), extra.get("history")
            where = directory / CONFIG
            return cls(
                data_config=DataConfig.from_dict(config["data"]),
                model_config=ModelConfig.from_dict(config["model"]),
                train_config=ForecastTrainConfig.from_dict(config["train"]),
                input_columns=list(config["input_columns"]),
                target_columns=list(config["target_columns"]),
                normalizer=Normalizer.from_dict(config["normalizer"]),
                state_dict=state,
                metrics=metrics,
                history=history,
                validation_x=val_x,
                validation_y=val_y,
                version=config.get("toolkit_version", "unknown"),
            )
        except CoreMLLSTMError as exc:  # a value no option of train gives: name the file, not the option
            raise ConfigError(f"{where}: {exc}") from None
        except KeyError as exc:
            raise ConfigError(f"{where}: no entry {exc}; not a checkpoint this toolkit wrote") from None
        except Exception as exc:
            raise ConfigError(f"{where}: unreadable checkpoint file ({type(exc).__name__}: {first_line(exc)})") from None


def from_model(model: RecurrentModel, dataset, model_config, train_config, metrics=None, history=None) -> Checkpoint:
    """Bundle a trained module with the dataset description it was trained on."""
    return Checkpoint(
        data_config=dataset.config,
        model_config=model_config,
        train_config=train_config,
        input_columns=list(dataset.input_columns),
        target_columns=list(dataset.target_columns),
        normalizer=dataset.normalizer,
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        metrics=metrics,
        history=history,
        validation_x=dataset.validation.x[-MAX_VALIDATION:],
        validation_y=dataset.validation.y[-MAX_VALIDATION:],
    )
