"""Predictions in original units from a package and a table, using the package's own metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .api import prediction_frame
from .data import DataConfig, prediction_windows
from .errors import ConfigError
from .export import INPUT_NAME, OUTPUT_NAME, read_metadata
from .runner import Backend


def package_data_config(meta: dict, path) -> DataConfig:
    """The data configuration a package was trained with, from its user-defined metadata."""
    needed = ("input_columns", "target_columns", "window", "horizon")
    missing = [k for k in needed if k not in meta]
    if missing:
        raise ConfigError(f"{path}: not a coreml-lstm forecaster package (metadata lacks {', '.join(missing)})")
    targets = list(meta["target_columns"])
    return DataConfig(
        target=targets,
        features=[c for c in meta["input_columns"] if c not in targets],
        time=meta.get("time_column"),
        series_id=meta.get("series_id_column"),
        window=int(meta["window"]),
        horizon=int(meta["horizon"]),
    )


def predict_table(package: str | Path, table, *, backend: str = "auto", mode: str = "fp32", last_only: bool = False) -> tuple[pd.DataFrame, str]:
    """Forecast after every complete window of ``table`` with the package.

    Returns:
        The prediction frame (key columns plus ``{target}_t+{h}``) and the backend used.
    """
    runner = Backend(package, backend, mode)
    meta = read_metadata(runner.program.metadata.get("user", {}))
    config = package_data_config(meta, package)
    x, keys = prediction_windows(table, config, list(meta["input_columns"]), last_only=last_only)
    y = np.stack([runner.predict({INPUT_NAME: x[i : i + 1]})[OUTPUT_NAME][0] for i in range(len(x))]) if len(x) else np.zeros((0, config.horizon, len(config.target)), np.float32)
    return prediction_frame(keys, y.astype(np.float32), list(config.target)), runner.name
