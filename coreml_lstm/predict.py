"""Predictions in original units from a package and a table, using the package's own metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .data import DataConfig, clean_table, index_keys, key_columns, prediction_windows, read_table, step_warning, table_step
from .errors import ConfigError, DataError, PackageError
from .metadata import INPUT_NAME, MAX_BATCH, OUTPUT_NAME, read_metadata
from .runner import Backend


def distribution_frame(keys: pd.DataFrame, dist: dict, targets: list[str]) -> pd.DataFrame:
    """Mixture predictions: per target and step the mean, standard deviation and 5/25/75/95% quantiles."""
    from .mixture import quantile

    out = keys.reset_index(drop=True).copy()
    w, mu, s = dist["weights"], dist["means"], dist["scales"]
    for h in range(w.shape[1]):
        for k, name in enumerate(targets):
            col = f"{name}_t+{h + 1}"
            out[col] = dist["prediction"][:, h, k]
            out[f"{col}_std"] = np.sqrt(dist["variance"][:, h, k])
            for q in (0.05, 0.25, 0.75, 0.95):
                out[f"{col}_q{int(q * 100):02d}"] = quantile(w[:, h, k], mu[:, h, k], s[:, h, k], q)
    return out


def prediction_frame(keys: pd.DataFrame, y: np.ndarray, targets: list[str]) -> pd.DataFrame:
    """Key columns plus one column per target and horizon step, from (N, horizon, T) predictions."""
    out = keys.reset_index(drop=True).copy()
    for h in range(y.shape[1]):
        for k, name in enumerate(targets):
            out[f"{name}_t+{h + 1}"] = y[:, h, k]
    return out


def records_json(frame: pd.DataFrame) -> str:
    """A prediction frame as a JSON list of records (``predict --json``): times as ISO-8601 text
    (a date alone when every time is a midnight without zone, as the CSV writes them; else
    ``2020-10-26T06:00:00``, an aware time with its offset), not pandas' epoch milliseconds;
    integer time steps stay integers."""
    out = frame.copy()
    for column in out.columns:
        times = out[column]
        if not pd.api.types.is_datetime64_any_dtype(times):
            continue
        dates = times.dt.tz is None and bool((times.dropna() == times.dropna().dt.normalize()).all())
        out[column] = pd.Series([None if pd.isna(t) else t.date().isoformat() if dates else t.isoformat() for t in times],
                                index=times.index, dtype=object)
    return out.to_json(orient="records", indent=2)


def clean_series(table, config: DataConfig, columns: list[str]):
    """The table's checked series, ``(series id, frame)``, and its time step (:func:`coreml_lstm.data.table_step`)."""
    frame = read_table(table, role="input", text=key_columns(config), keys=index_keys(config))
    held = clean_table(frame, config, columns)
    return held.frames(), (table_step(held) if config.time else None), frame.attrs.get("label", "the table")


def package_data_config(meta: dict, path, missing: str = "error") -> DataConfig:
    """The data configuration a package was trained with, from its user-defined metadata;
    ``missing`` ("error" | "drop" | "ffill") is what to do with the table's empty cells."""
    check_forecaster_entries(meta, path)
    targets = list(meta["target_columns"])
    try:
        return DataConfig(
            target=targets,
            features=[c for c in meta["input_columns"] if c not in targets],
            time=meta.get("time_column"),
            series_id=meta.get("series_id_column"),
            window=meta["window"],
            horizon=meta["horizon"],
            log=bool(meta.get("log", False)),  # the package takes the log of the target: values must be > 0
            missing=missing,
            step=meta.get("time_step") if isinstance(meta.get("time_step"), str) else None,  # None before it was recorded: no check
        )
    except DataError as exc:  # entries that disagree with each other (a column both target and time)
        raise PackageError(f"{path}: metadata {exc}; re-export the package from its checkpoint") from None


def check_forecaster_entries(meta: dict, path) -> None:
    """The entries predict acts on have the types the export writes, or a one-line PackageError
    naming the entry (a package is untrusted: an edited entry was a traceback); a ConfigError
    when the package lacks them (not a forecaster's)."""
    needed = ("input_columns", "target_columns", "window", "horizon")
    lacks = [k for k in needed if k not in meta]
    if lacks:
        raise ConfigError(f"{path}: not a coreml-lstm forecaster package (metadata lacks {', '.join(lacks)})")

    def bad(entry: str, expected: str):
        return PackageError(f"{path}: metadata entry {entry!r} is {json.dumps(meta.get(entry))[:60]}; expected {expected}; "
                            "re-export the package from its checkpoint")

    def names(value) -> bool:
        return isinstance(value, list) and bool(value) and all(isinstance(c, str) for c in value) and len(set(value)) == len(value)

    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    for entry in ("input_columns", "target_columns"):
        if not names(meta[entry]):
            raise bad(entry, "a list of distinct column names")
    if not set(meta["target_columns"]) <= set(meta["input_columns"]):
        raise bad("target_columns", "columns among input_columns (a target's past is an input)")
    for entry in ("window", "horizon"):
        if not count(meta[entry]):
            raise bad(entry, "an integer >= 1")
    for entry in ("time_column", "series_id_column"):
        if meta.get(entry) is not None and (not isinstance(meta[entry], str) or meta[entry] in meta["input_columns"]):
            raise bad(entry, "null or the name of a column that is not an input")
    if meta.get("log", False) not in (True, False):
        raise bad("log", "true or false")
    if meta.get("streaming") not in (None, "explicit", "states"):
        raise bad("streaming", "null, \"explicit\" or \"states\"")
    if meta.get("streaming") and not count(meta.get("max_chunk")):
        raise bad("max_chunk", "an integer >= 1 (the longest chunk a streaming package takes)")
    if meta.get("head", "point") not in ("point", "mixture"):
        raise bad("head", "\"point\" or \"mixture\"")


class Prediction(NamedTuple):
    """What a package predicted for a table (``predict_table``, the adapters' ``predict_table``)."""

    frame: pd.DataFrame  # key columns and one column per prediction
    backend: str  # the backend that ran the package
    what: str  # what the rows are, for the CLI's count line ("forecasts", "samples classified")
    warnings: list[str]  # sentences about the table the caller should see (a different time step, a short stream)


def predict_table(package: str | Path, table, *, backend: str = "auto", mode: str = "fp32", last_only: bool = False,
                  missing: str = "error") -> Prediction:
    """Forecasts from a table with the package, in original units.

    A window package forecasts after every complete window of the table (only the last per series
    with ``last_only``). A streaming package is fed each series from its start in chunks, the state
    carried, and forecasts after the series' last row. Mixture packages give the mean, standard
    deviation and 5/25/75/95% quantiles per target and step. Empty cells are an error, or, as in
    training, ``missing="drop"`` drops their rows and ``"ffill"`` carries each series' last value
    forward.

    Returns:
        A :class:`Prediction`: the frame, the backend used and the warnings about the table.
    """
    runner = Backend(package, backend, mode)
    meta = read_metadata(runner.program.metadata.get("user", {}), package)
    config = package_data_config(meta, package, missing)
    columns = list(meta["input_columns"])
    names = [o.name for o in runner.program.outputs]
    if meta.get("streaming"):
        outputs, keys, step, label, short = _stream_series(runner, meta, config, table, columns)
    else:
        x, keys, step, label = prediction_windows(table, config, columns, last_only=last_only)
        size = batch_size(runner.program)
        calls = [runner.predict({INPUT_NAME: np.asarray(x[i : i + size], np.float32)}) for i in range(0, len(x), size)]
        outputs = {n: np.concatenate([np.asarray(c[n], np.float32) for c in calls]) for n in names} if calls else {}
        short = None
    other = step_warning(label, step, config.step)
    if meta.get("head") == "mixture":
        frame = distribution_frame(keys, outputs, list(config.target))
    else:
        frame = prediction_frame(keys, outputs[OUTPUT_NAME], list(config.target))
    return Prediction(frame, runner.name, "forecasts", [w for w in (other, short) if w])


def batch_size(program) -> int:
    """Windows a window package takes in one call: the upper end of its first axis's range
    (packages of toolkit 0.1 take one; an unbounded range is taken MAX_BATCH at a time)."""
    spec = next((t for t in program.inputs if t.name == INPUT_NAME), None)
    if spec is None:
        raise PackageError(f"{program.path}: a forecaster window package takes an input {INPUT_NAME!r}; its inputs are "
                           f"{', '.join(t.name for t in program.inputs)}")
    if not spec.shape_range:
        return 1
    lo, hi = spec.shape_range[0]
    size = max(int(lo), MAX_BATCH if hi < 0 else int(hi))
    if size < 1:
        raise PackageError(f"{program.path}: input {INPUT_NAME!r} takes a batch of {lo}..{hi} windows; a window package takes 1 or more")
    return size


def _stream_series(runner: Backend, meta: dict, config: DataConfig, table, columns: list[str]):
    """Feed every series from its first row, max_chunk rows per call, carrying the state: the
    outputs, the key frame, the table's step and name, and a warning when a series is shorter
    than the window (or None)."""
    series, step, label = clean_series(table, config, columns)
    chunk = int(meta["max_chunk"])
    state_inputs = [t for t in runner.program.inputs if t.name.endswith("_in")]
    results, key_rows = [], []
    for sid, frame in series:
        rows = frame[columns].to_numpy(np.float32)
        if runner.program.states:
            state = runner.make_state()
        else:
            state = {t.name: np.zeros(t.shape, np.float32) for t in state_inputs}
        out = None
        for i in range(0, len(rows), chunk):
            feeds = {"x": rows[None, i : i + chunk]}
            if runner.program.states:
                out = runner.predict(feeds, state=state)
            else:
                out = runner.predict({**feeds, **state})
                state = {t.name: np.asarray(out[t.name[: -len("_in")] + "_out"], np.float32) for t in state_inputs}
        results.append(out)
        key = {config.series_id: sid} if config.series_id else {}
        key[config.time or "row"] = frame["__time__"].iloc[-1]
        key_rows.append(key)
    names = [o.name for o in runner.program.outputs if not o.name.endswith("_out")]
    outputs = {n: np.concatenate([np.asarray(r[n], np.float32) for r in results]) for n in names}
    keys = pd.DataFrame(key_rows)
    window = int(meta["window"])
    short = [(sid, len(frame)) for sid, frame in series if len(frame) < window]
    warning = None
    if short:  # a window package refuses these; a stream forecasts from what it was fed
        sid, n = short[0]
        who = f"series {sid!r}" if config.series_id else "the table"
        more = f" (and {len(short) - 1} other series)" if len(short) > 1 else ""
        fill = ("the rows not fed count as copies of the latest one" if meta.get("scaling") == "window"
                else "the recurrent state has seen only those")
        warning = (f"{who}{more}: the forecast rests on {n} of the window's {window} rows ({fill}); "
                   f"feed at least {window} rows for the forecast the model was trained to make")
    return outputs, keys, step, label, warning
