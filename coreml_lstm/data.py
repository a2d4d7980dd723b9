"""Tables in, windows out: reading, checking and slicing time series for training and prediction.

A table is a CSV path or a DataFrame. Bad input raises :class:`DataError` with one line that
names the file (or "training data" / "validation data" for a DataFrame), the column and the
row. Rows are numbered as a person counts them in the file: the first data row below the
header is row 1, whatever order the table is sorted into later.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .season import infer_season

MISSING = ("error", "drop", "ffill")
CSV_SUFFIXES = (".csv", ".txt")


@dataclass
class DataConfig:
    target: list[str]  # one or more columns: the number of outputs
    features: list[str] | None = None  # None: numeric columns other than target, time and series_id
    time: str | None = None  # sort by this column (numbers or dates)
    series_id: str | None = None  # several series in one table; windows never cross two
    window: int | None = None  # look-back length; None: from the season, horizon and series length
    horizon: int | None = None  # steps ahead, predicted at once; None: one season (1 without a season)
    val_fraction: float = 0.2  # chronological split of each series when no validation table is given
    missing: str = "error"  # empty cells: error | drop | ffill
    season: int | None = None  # season length for baselines and defaults; None: from the time column
    log: bool = False  # the model sees log(target): every target value must be > 0

    def __post_init__(self):
        self.target = [self.target] if isinstance(self.target, str) else list(self.target or [])
        if self.features is not None:
            self.features = [self.features] if isinstance(self.features, str) else list(self.features)
        if not self.target:
            raise DataError("target: name at least one target column")
        for name in ("window", "horizon", "season"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise DataError(f"{name}: must be an integer >= 1, got {value!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise DataError(f"val_fraction: must be between 0 and 1 (exclusive), got {self.val_fraction!r}")
        if self.missing not in MISSING:
            raise DataError(f"missing: {self.missing!r} is not one of {', '.join(MISSING)}")
        dup = _first_duplicate(self.target)
        if dup is not None:
            raise DataError(f"target: column {dup!r} is listed twice")
        if self.features is not None:
            dup = _first_duplicate(self.features)
            if dup is not None:
                raise DataError(f"features: column {dup!r} is listed twice")
            both = [c for c in self.features if c in self.target]
            if both:
                raise DataError(f"features: column {both[0]!r} is also a target (a target's own past is always an input)")
        for role in ("time", "series_id"):
            col = getattr(self, role)
            if col is not None and (col in self.target or col in (self.features or [])):
                raise DataError(f"{role}: column {col!r} is also a target or feature")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        return cls(**d)


@dataclass
class Normalizer:
    """Per-column mean and standard deviation of the training part (std 0 becomes 1)."""

    input_mean: np.ndarray
    input_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    def to_dict(self) -> dict:
        return {k: [float(v) for v in getattr(self, k)] for k in ("input_mean", "input_std", "target_mean", "target_std")}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(**{k: np.asarray(d[k], dtype=np.float64) for k in ("input_mean", "input_std", "target_mean", "target_std")})


@dataclass
class Windows:
    x: np.ndarray  # (N, window, F) float32, raw units, input_columns order
    y: np.ndarray  # (N, horizon, T) float32, raw units
    series: np.ndarray  # (N,) series id of each window (None for a single series)
    time: np.ndarray  # (N,) time (or row number) of each window's first target step
    # Where each window's first target step lies in its series, and each series' raw target
    # values (n, T): the baselines look back further than the window (a season may be longer).
    origin: np.ndarray | None = None  # (N,) int
    history: dict | None = field(default=None, repr=False)  # {series id: (n, T) float64}

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Dataset:
    config: DataConfig
    input_columns: list[str]  # targets first (their own past is always an input), then features
    target_columns: list[str]
    train: Windows
    validation: Windows
    normalizer: Normalizer = field(repr=False)
    # The training part of each series' raw targets {series id: (n, T)}: the in-sample scale of MASE.
    insample: dict = field(default_factory=dict, repr=False)


# -- reading -------------------------------------------------------------------------------


def _first_duplicate(items) -> str | None:
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def read_table(source, *, role: str = "training") -> pd.DataFrame:
    """Read a CSV path or take a DataFrame, checking what a real file can get wrong.

    Handles a byte-order mark, CRLF line ends and quoted fields. The returned frame's index is
    the 1-based row number in the source, and ``frame.attrs["label"]`` names the source in errors.

    Raises:
        DataError: not a file, a directory, not a CSV, empty, header only, duplicate column names.
    """
    if isinstance(source, pd.DataFrame):
        label = f"{role} data"
        dup = _first_duplicate([str(c) for c in source.columns])
        if dup is not None:
            raise DataError(f"{label}: duplicate column {dup!r}")
        if len(source) == 0:
            raise DataError(f"{label}: the table has no rows")
        frame = source.copy()
        frame.columns = [str(c) for c in frame.columns]
    else:
        if source is None:
            raise DataError(f"{role} data: no table given")
        path = Path(source)
        label = str(source)
        if path.is_dir():
            raise DataError(f"{label}: is a directory, not a CSV file")
        if not path.exists():
            raise DataError(f"{label}: no such file")
        if path.suffix.lower() not in CSV_SUFFIXES:
            raise DataError(f"{label}: not a CSV file (expected a .csv file)")
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:
                header = next(csv.reader(fh), None)
        except UnicodeDecodeError:
            raise DataError(f"{label}: not a CSV file (not UTF-8 text)") from None
        if not header or not any(h.strip() for h in header):
            raise DataError(f"{label}: the file is empty")
        dup = _first_duplicate([h.strip() for h in header])
        if dup is not None:
            raise DataError(f"{label}: duplicate column {dup!r}")
        try:
            frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True)
        except pd.errors.ParserError as exc:
            raise DataError(f"{label}: malformed CSV ({str(exc).strip().splitlines()[-1]})") from None
        frame.columns = [str(c).strip() for c in frame.columns]
        if len(frame) == 0:
            raise DataError(f"{label}: has a header but no data rows")
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    frame.attrs["label"] = label
    return frame


def require_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(f"{frame.attrs['label']}: missing column{'s' if len(missing) > 1 else ''} {names}; columns are: {', '.join(frame.columns)}")


def numeric_column(frame: pd.DataFrame, column: str, *, allow_nan: bool) -> pd.Series:
    """The column as float64; a non-number or an infinity is an error naming its row."""
    label = frame.attrs["label"]
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw):
        raw = raw.astype(np.float64)
    values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
    bad = values.isna() & raw.notna()
    if bad.any():
        row = bad.idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: non-numeric value {str(raw[row])!r}")
    inf = np.isinf(values)
    if inf.any():
        row = inf.idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: infinite value")
    if not allow_nan and values.isna().any():
        row = values.isna().idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: missing value")
    return values


def _looks_numeric(series: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return True
    present = series.dropna()
    if len(present) == 0:
        return False
    # A numeric column with a stray bad cell is still a feature (and then an error naming the cell);
    # a text column (names, labels) is not a feature at all.
    return pd.to_numeric(present, errors="coerce").notna().mean() >= 0.5


def resolve_columns(frame: pd.DataFrame, config: DataConfig) -> tuple[list[str], list[str]]:
    """(input_columns, target_columns): targets first, then the features."""
    keys = [c for c in (config.time, config.series_id) if c]
    require_columns(frame, list(config.target) + list(config.features or []) + keys)
    if config.features is None:
        features = [c for c in frame.columns if c not in config.target and c not in keys and _looks_numeric(frame[c])]
    else:
        features = list(config.features)
    return list(config.target) + features, list(config.target)


def _time_values(frame: pd.DataFrame, column: str) -> pd.Series:
    label = frame.attrs["label"]
    raw = frame[column]
    if raw.isna().any():
        row = raw.isna().idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: missing time")
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
        return raw
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.notna().all():
        return numbers
    dates = pd.to_datetime(raw, errors="coerce", format="mixed")
    if dates.isna().any():
        row = dates.isna().idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: not a number or a date: {str(raw[row])!r}")
    return dates


def clean(frame: pd.DataFrame, config: DataConfig, columns: list[str]) -> list[tuple[object, pd.DataFrame]]:
    """Checked, sorted and gap-handled series: a list of ``(series id, frame of float columns)``.

    Each returned frame keeps the source row numbers as its index and has a ``__time__`` column.
    """
    label = frame.attrs["label"]
    values = pd.DataFrame({c: numeric_column(frame, c, allow_nan=True) for c in columns}, index=frame.index)
    values["__time__"] = _time_values(frame, config.time) if config.time else frame.index.to_series()
    sid_col = config.series_id
    if sid_col:
        sids = frame[sid_col]
        if sids.isna().any():
            raise DataError(f"{label}: column {sid_col!r}, row {sids.isna().idxmax()}: missing series id")
        groups = [(sid, values.loc[idx.index]) for sid, idx in sids.groupby(sids, sort=False)]
    else:
        groups = [(None, values)]

    out = []
    for sid, g in groups:
        if config.time:
            g = g.sort_values("__time__", kind="stable")
            dup = g["__time__"].duplicated()
            if dup.any():
                row = dup.idxmax()
                where = f" in series {sid!r}" if sid is not None else ""
                raise DataError(f"{label}: column {config.time!r}, row {row}: duplicate time {_plain(g.loc[row, '__time__'])!r}{where}")
        nan = g[columns].isna()
        if nan.any().any():
            if config.missing == "error":
                row = nan.any(axis=1).idxmax()
                col = nan.loc[row].idxmax()
                raise DataError(f"{label}: column {col!r}, row {row}: missing value (use missing 'drop' or 'ffill' to accept empty cells)")
            if config.missing == "drop":
                g = g[~nan.any(axis=1)]
            else:  # ffill, within this series only
                filled = g[columns].ffill()
                left = filled.isna()
                if left.any().any():
                    row = left.any(axis=1).idxmax()
                    col = left.loc[row].idxmax()
                    raise DataError(f"{label}: column {col!r}, row {row}: missing value with no earlier value to forward-fill")
                g = g.assign(**{c: filled[c] for c in columns})
        out.append((sid, g))
    return out


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def _too_short(label: str, sid, n: int, need: int, what: str, hint: str = "") -> DataError:
    who = f"series {sid!r}" if sid is not None else "the table"
    return DataError(f"{label}: {who} has {n} rows; {what} needs at least {need}" + (f" ({hint})" if hint else ""))


# -- windows -------------------------------------------------------------------------------


def _slide(a: np.ndarray, length: int) -> np.ndarray:
    """(n, C) -> (n - length + 1, length, C) overlapping windows."""
    return np.lib.stride_tricks.sliding_window_view(a, length, axis=0).transpose(0, 2, 1)


def _series_windows(g: pd.DataFrame, inputs: list[str], targets: list[str], window: int, horizon: int, sid, starts: range) -> Windows:
    a = g[inputs].to_numpy(np.float32)  # (n, F)
    t = g[targets].to_numpy(np.float32)  # (n, T)
    s = np.asarray(list(starts), dtype=np.int64)
    xs = _slide(a, window)[s] if len(s) else np.zeros((0, window, len(inputs)), np.float32)
    ys = _slide(t[window:], horizon)[s] if len(s) else np.zeros((0, horizon, len(targets)), np.float32)
    times = g["__time__"].to_numpy()[s + window] if len(s) else np.zeros(0)
    history = {sid: g[targets].to_numpy(np.float64)}
    return Windows(np.ascontiguousarray(xs), np.ascontiguousarray(ys), np.array([sid] * len(s), dtype=object), times, s + window, history)


def _concat(parts: list[Windows], window: int, horizon: int, n_in: int, n_out: int) -> Windows:
    if not parts:
        return Windows(np.zeros((0, window, n_in), np.float32), np.zeros((0, horizon, n_out), np.float32), np.zeros(0, object), np.zeros(0),
                       np.zeros(0, np.int64), {})
    return Windows(
        np.concatenate([p.x for p in parts]),
        np.concatenate([p.y for p in parts]),
        np.concatenate([p.series for p in parts]),
        np.concatenate([np.asarray(p.time, dtype=object) for p in parts]),
        np.concatenate([p.origin for p in parts]),
        {k: v for p in parts for k, v in p.history.items()},
    )


def check_positive(label: str, g: pd.DataFrame, columns: list[str]) -> None:
    """Log scaling: every value must be > 0; the first that is not is named by column and row."""
    for col in columns:
        bad = ~(g[col] > 0)
        if bad.any():
            row = bad.idxmax()
            raise DataError(f"{label}: column {col!r}, row {row}: value {_plain(g.loc[row, col])!r} is not positive; log scaling needs every target value > 0 (train without --log)")


def validation_rows(n: int, val_fraction: float, horizon: int) -> int:
    """Rows held out at the end of a series for validation: the fraction, and at least one horizon."""
    return max(1, int(math.ceil(n * val_fraction)), horizon)


def default_lengths(config: DataConfig, n: int, season: int, *, split: bool) -> tuple[int, int]:
    """(window, horizon) where the config leaves them None, from the season and the shortest series.

    Horizon: one season ahead (1 without a season), at most a tenth of the series. Window: two
    seasons or two horizons and at least 24 steps, shrunk until the training part of the shortest
    series (``n`` rows) still yields a third of its rows (and at least 8) as training windows.
    """
    horizon = config.horizon
    if horizon is None:
        horizon = max(1, min(season, n // 10)) if season > 1 else 1
    window = config.window
    if window is None:
        n_val = validation_rows(n, config.val_fraction, horizon) if split else 0
        rows = n - n_val
        fits = rows - horizon + 1 - max(8, rows // 3)  # the longest window leaving that many windows
        window = max(1, min(max(24, 2 * season, 2 * horizon), fits))
    return int(window), int(horizon)


def _stats(blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    data = np.concatenate(blocks).astype(np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def prepare(train, validation=None, config: DataConfig | None = None) -> Dataset:
    """Training and validation windows plus normalisation statistics from the training part.

    Args:
        train: CSV path or DataFrame.
        validation: a separate table with the same columns, or None for a chronological split
            (the last ``val_fraction`` of each series' rows are validation targets; their windows
            may look back into the rows before the split).
        config: columns, window, horizon and missing-value policy.
    """
    if config is None:
        raise DataError("prepare: a DataConfig naming the target column(s) is required")
    frame = read_table(train, role="training")
    inputs, targets = resolve_columns(frame, config)
    series = clean(frame, config, inputs)
    label = frame.attrs["label"]
    if config.log:
        for _, g in series:
            check_positive(label, g, targets)
    config = _resolved(config, series, split=validation is None)
    W, H = config.window, config.horizon
    train_parts, val_parts, stat_rows = [], [], []

    if validation is None:
        for sid, g in series:
            n = len(g)
            n_val = validation_rows(n, config.val_fraction, H)
            split = n - n_val  # rows [split, n) hold the validation targets
            # A training window's targets end before the split; a validation window's start at or after it.
            train_starts = range(0, split - W - H + 1)
            val_starts = range(max(split - W, 0), n - W - H + 1)
            if len(train_starts) == 0 or len(val_starts) == 0:
                need = next(m for m in range(W + H + 1, 10 * (W + H) + 100) if m - validation_rows(m, config.val_fraction, H) >= W + H)
                raise _too_short(label, sid, n, need, f"window {W} + horizon {H} with a {config.val_fraction:g} validation split",
                                 hint="use a smaller window or horizon, or give a separate validation table")
            train_parts.append(_series_windows(g, inputs, targets, W, H, sid, train_starts))
            val_parts.append(_series_windows(g, inputs, targets, W, H, sid, val_starts))
            stat_rows.append(g.iloc[:split])
    else:
        vframe = read_table(validation, role="validation")
        if list(vframe.columns) != list(frame.columns):
            lacking = [c for c in frame.columns if c not in vframe.columns]
            extra = [c for c in vframe.columns if c not in frame.columns]
            parts = ([f"missing {', '.join(map(repr, lacking))}"] if lacking else []) + ([f"extra {', '.join(map(repr, extra))}"] if extra else [])
            detail = "; ".join(parts) if parts else "same names in another order"
            raise DataError(f"{vframe.attrs['label']}: columns differ from the training data ({detail})")
        for sid, g in series:
            if len(g) < W + H:
                raise _too_short(label, sid, len(g), W + H, f"window {W} + horizon {H}")
            train_parts.append(_series_windows(g, inputs, targets, W, H, sid, range(len(g) - W - H + 1)))
            stat_rows.append(g)
        for sid, g in clean(vframe, config, inputs):
            if config.log:
                check_positive(vframe.attrs["label"], g, targets)
            if len(g) < W + H:
                raise _too_short(vframe.attrs["label"], sid, len(g), W + H, f"window {W} + horizon {H}")
            val_parts.append(_series_windows(g, inputs, targets, W, H, sid, range(len(g) - W - H + 1)))

    t_idx = [inputs.index(c) for c in targets]
    blocks = [g[inputs].to_numpy() for g in stat_rows]
    in_mean, in_std = _stats(blocks)
    if config.log:  # the model normalises log(target): its statistics are those of the logs
        t_mean, t_std = _stats([np.log(b[:, t_idx]) for b in blocks])
        in_mean[t_idx], in_std[t_idx] = t_mean, t_std
    normalizer = Normalizer(in_mean, in_std, in_mean[t_idx].copy(), in_std[t_idx].copy())
    return Dataset(
        config=config,
        input_columns=inputs,
        target_columns=targets,
        train=_concat(train_parts, W, H, len(inputs), len(targets)),
        validation=_concat(val_parts, W, H, len(inputs), len(targets)),
        normalizer=normalizer,
        insample={sid: g[targets].to_numpy(np.float64) for (sid, _), g in zip(series, stat_rows)},
    )


def _resolved(config: DataConfig, series: list, *, split: bool) -> DataConfig:
    """The config with season, window and horizon filled in from the data where they were None."""
    season = config.season
    if season is None:
        longest = max((g for _, g in series), key=len)
        season = infer_season(longest["__time__"]) if config.time else 1
    n = min(len(g) for _, g in series)
    window, horizon = default_lengths(config, n, season, split=split)
    return DataConfig(**{**config.to_dict(), "season": int(season), "window": window, "horizon": horizon})


def prediction_windows(frame, config: DataConfig, input_columns: list[str], *, last_only: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
    """Every complete window of a table, for prediction (no future values needed).

    Args:
        frame: CSV path or DataFrame holding ``input_columns`` (and the time / series columns).
        config: the training data configuration (window, time, series_id, missing policy).
        input_columns: the model's input columns, in order.
        last_only: only the last window of each series.

    Returns:
        ``x`` (N, window, F) float32 in raw units, and a key frame with the series id (if any)
        and the time (or row number) of each window's last input row.
    """
    table = read_table(frame, role="input")
    keys = [c for c in (config.time, config.series_id) if c]
    require_columns(table, list(input_columns) + keys)
    W = config.window
    xs, key_rows = [], []
    targets = [c for c in config.target if c in input_columns]
    for sid, g in clean(table, config, list(input_columns)):
        if config.log:
            check_positive(table.attrs["label"], g, targets)
        if len(g) < W:
            raise _too_short(table.attrs["label"], sid, len(g), W, f"window {W}")
        a = g[list(input_columns)].to_numpy(np.float32)
        x = _slide(a, W)  # (n - W + 1, W, F)
        last_times = g["__time__"].to_numpy()[W - 1 :]
        if last_only:
            x, last_times = x[-1:], last_times[-1:]
        xs.append(np.ascontiguousarray(x))
        rows = {config.series_id: [sid] * len(x)} if config.series_id else {}
        rows[config.time or "row"] = last_times
        key_rows.append(pd.DataFrame(rows))
    return np.concatenate(xs), pd.concat(key_rows, ignore_index=True)
