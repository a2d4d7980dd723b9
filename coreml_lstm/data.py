"""Tables in, windows out: reading, checking and slicing time series for training and prediction.

A table is a CSV or Parquet path or a DataFrame. Bad input raises :class:`DataError` with one
line that names the file (or "training data" / "validation data" for a DataFrame), the column
and the row. Rows are numbered as a person counts them in the file: the first data row below the
header is row 1, whatever order the table is sorted into later.

Memory grows with the rows of a table, not with rows x window: a table becomes a
:class:`SeriesTable` (every series once, back to back, as one float32 array) and windows are cut
from it on the fly (:class:`Windows`, :class:`WindowArray`). Files are read through pyarrow in
blocks, only the columns needed; a file pyarrow cannot take block by block (a cell that does not
fit the type inferred from the first block, a malformed line) is read again through pandas,
which names the row and column at fault.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .errors import DataError, TrainingError
from .season import business_steps, frequency, same_step, season_of_frequency, step_name

MISSING = ("error", "drop", "ffill")
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
BLOCK_BYTES = 1 << 16  # CSV bytes per block: pyarrow's working memory grows with the block (~40x it)
BATCH_ROWS = 1 << 17  # Parquet rows per batch
STATS_ROWS = 1 << 20  # rows per block of the statistics pass
FLOAT32_MAX = float(np.finfo(np.float32).max)  # tables are held in float32


def first_unheld(values: np.ndarray) -> tuple[tuple[int, ...], str] | None:
    """The index of the first value float32 cannot hold as a number (NaN, inf, or beyond its
    range) and what it is, e.g. ``((0, 3, 1), "non-finite value nan")``; None when every value fits."""
    bad = ~np.isfinite(values) | (np.abs(np.nan_to_num(values)) > FLOAT32_MAX)
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    value = float(values[index])
    return index, f"{'non-finite value' if not np.isfinite(value) else 'value beyond the float32 range'} {value!r}"


# The command line's spelling of a DataConfig field, for errors a CLI user reads.
CLI_OPTIONS = {"target": "--target", "features": "--feature", "time": "--time", "series_id": "--series-id", "window": "--window",
               "horizon": "--horizon", "season": "--season", "val_fraction": "--val-fraction", "missing": "--missing", "log": "--log"}


def _option_error(field: str, message: str) -> DataError:
    """An error about a configuration field, spelt as the API spells it and as the CLI does."""
    return DataError(f"{field}: {message}", cli=f"{CLI_OPTIONS.get(field, field)}: {message}")


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
    step: str | None = None  # the time column's regular step as training read it (pandas' name: 'D', 'h', 'B', 'MS'); None: unknown

    def __post_init__(self):
        self.target = [self.target] if isinstance(self.target, str) else list(self.target or [])
        if self.features is not None:
            self.features = [self.features] if isinstance(self.features, str) else list(self.features)
        if not self.target:
            raise _option_error("target", "name at least one target column")
        for name in ("window", "horizon", "season"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise _option_error(name, f"must be an integer >= 1, got {value!r}")
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise _option_error("val_fraction", f"must be between 0 and 1 (exclusive), got {self.val_fraction!r}")
        if self.missing not in MISSING:
            raise _option_error("missing", f"{self.missing!r} is not one of {', '.join(MISSING)}")
        dup = _first_duplicate(self.target)
        if dup is not None:
            raise _option_error("target", f"column {dup!r} is listed twice")
        if self.features is not None:
            dup = _first_duplicate(self.features)
            if dup is not None:
                raise _option_error("features", f"column {dup!r} is listed twice")
            both = [c for c in self.features if c in self.target]
            if both:
                raise _option_error("features", f"column {both[0]!r} is also a target (a target's own past is always an input)")
        for role in ("time", "series_id"):
            col = getattr(self, role)
            if col is not None and (col in self.target or col in (self.features or [])):
                raise _option_error(role, f"column {col!r} is also a target or feature")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        return cls(**d)


@dataclass
class Normalizer:
    """Per-column mean and standard deviation of the training part (std 0 becomes 1), and per
    target the smallest standard deviation of one series (``series_std``: the scale a window-scaled
    model's floor is a fraction of; the table's own with one series, None in older checkpoints)."""

    input_mean: np.ndarray
    input_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    series_std: np.ndarray | None = None

    def to_dict(self) -> dict:
        keys = ("input_mean", "input_std", "target_mean", "target_std") + (("series_std",) if self.series_std is not None else ())
        return {k: [float(v) for v in getattr(self, k)] for k in keys}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        keys = [k for k in ("input_mean", "input_std", "target_mean", "target_std", "series_std") if k in d]
        return cls(**{k: np.asarray(d[k], dtype=np.float64) for k in keys})


# -- series and windows ----------------------------------------------------------------------


@dataclass
class SeriesTable:
    """Every series of a table once, back to back, checked, sorted by time and gap-handled.

    Series ``k`` is ``values[offsets[k]:offsets[k + 1]]``; windows are cut from here on the fly.
    """

    label: str  # names the source in errors
    table_columns: list[str]  # every column of the source (a validation table must match them)
    columns: list[str]  # the columns of ``values``
    values: np.ndarray = field(repr=False)  # (n, F) float32, raw units
    offsets: np.ndarray = field(repr=False)  # (S + 1,) int64
    ids: list = field(repr=False)  # (S,) series ids in order of first appearance; [None] for one series
    times: np.ndarray | None = field(default=None, repr=False)  # (n,) the time column, sorted; None without one
    rows: np.ndarray | None = field(default=None, repr=False)  # (n,) source row numbers when not simply 1..n
    tz: str | None = None  # the time zone of an aware time column (times hold UTC)
    rounding: np.ndarray | None = field(default=None, repr=False)  # (F,) the largest change float32 made to a value of each column
    change: np.ndarray | None = field(default=None, repr=False)  # (F,) mean |change| from row to row as written (float64, before float32)
    wall: np.ndarray | None = field(default=None, repr=False)  # (n,) int32 UTC offsets in seconds of text times whose offset varies (DST), else None

    def calendar_times(self, a: int, b: int) -> np.ndarray | None:
        """Rows a..b-1's times as their step and season are read: as held (UTC for aware times),
        unless the UTC offsets vary and only the clock they were written in steps evenly (daily
        data across daylight saving time: local midnights are 23:00, then 22:00 UTC); hourly
        data steps evenly in UTC, where the local clock skips an hour."""
        t = self.times[a:b] if self.times is not None else None
        if self.wall is None or t is None or frequency(t) is not None:
            return t  # UTC (a named zone's season: time_at, in the zone)
        local = self.local_times(a, b)
        return local if frequency(local) is not None else t

    def local_times(self, a: int, b: int) -> np.ndarray | None:
        """Rows a..b-1's times on the clock they were written in (naive datetime64): the UTC
        offsets of a text column whose offset varies added back (local midnights stay midnights
        across daylight saving time), a named zone's wall clock, else the times as held."""
        if self.times is None:
            return None
        t = self.times[a:b]
        if self.wall is not None:
            return t + self.wall[a:b].astype("timedelta64[s]")
        if self.tz is not None and np.issubdtype(t.dtype, np.datetime64):
            return pd.DatetimeIndex(t).tz_localize("UTC").tz_convert(self.tz).tz_localize(None).to_numpy("datetime64[ns]")
        return t

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def time_at(self, positions: np.ndarray) -> np.ndarray:
        """The time (or, without a time column, the source row number) of rows at ``positions``."""
        positions = np.asarray(positions, dtype=np.int64)
        if self.times is not None:
            t = self.times[positions]
            if self.tz is not None:
                return pd.DatetimeIndex(t).tz_localize("UTC").tz_convert(self.tz).to_numpy(dtype=object)
            return t
        return self.rows[positions].astype(np.int64) if self.rows is not None else positions + 1

    def where(self, p: int) -> str:
        """How an error names the row at position ``p``: by its row in the source."""
        return f"row {int(self.rows[p]) if self.rows is not None else p + 1}"

    def targets(self, n_targets: int, limit: np.ndarray | None = None) -> dict:
        """{series id: (n, T) view of its first ``n_targets`` columns (the targets)}, each series cut
        to its first ``limit[k]`` rows when given."""
        out = {}
        for k, sid in enumerate(self.ids):
            a, b = int(self.offsets[k]), int(self.offsets[k + 1])
            out[sid] = self.values[a : b if limit is None else a + int(limit[k]), :n_targets]
        return out

    def frames(self) -> list[tuple[object, pd.DataFrame]]:
        """``(series id, frame of the value columns and ``__time__``)`` per series (small tables)."""
        out = []
        for k, sid in enumerate(self.ids):
            a, b = int(self.offsets[k]), int(self.offsets[k + 1])
            rows = self.rows[a:b].astype(np.int64) if self.rows is not None else np.arange(a + 1, b + 1)
            frame = pd.DataFrame(self.values[a:b].astype(np.float64), columns=self.columns, index=rows)  # indexed by source row
            frame["__time__"] = self.time_at(np.arange(a, b))
            out.append((sid, frame))
        return out


class _Starts:
    """Window ``i`` of a set -> its first row in the table's ``values``.

    The set is a few segments of consecutive starts (one or two per series), so a window is a
    (series, start) pair found by a binary search over the segments: no array per window.
    """

    def __init__(self, first: np.ndarray, count: np.ndarray, series: np.ndarray):
        self.first = np.asarray(first, dtype=np.int64)  # (K,) first row of each segment's first window
        self.count = np.asarray(count, dtype=np.int64)  # (K,) windows per segment
        self.series = np.asarray(series, dtype=np.int64)  # (K,) series index of each segment
        self.cum = np.concatenate([[0], np.cumsum(self.count)])  # (K + 1,)
        self._shift = self.first - self.cum[:-1]  # window i of segment k starts at row i + shift[k]

    def __len__(self) -> int:
        return int(self.cum[-1])

    def segment(self, i: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.cum, i, side="right") - 1

    def __call__(self, i: np.ndarray) -> np.ndarray:
        if len(self._shift) == 1:
            return i + self._shift[0]
        return i + self._shift[self.segment(i)]


def _objects(items) -> np.ndarray:
    """A 1-D object array of ``items`` (np.asarray would turn a list of tuples into a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _positions(key, n: int) -> np.ndarray:
    """Window numbers selected by an int, slice, int array or boolean mask (numpy's rules)."""
    if isinstance(key, slice):
        return np.arange(*key.indices(n), dtype=np.int64)
    idx = np.asarray(key)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean index of shape {idx.shape} for {n} windows")
        return np.flatnonzero(idx)
    if idx.dtype.kind not in "iu":
        raise IndexError(f"windows are indexed by integers, slices or a boolean mask, not {idx.dtype}")
    idx = idx.astype(np.int64).reshape(-1)
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"window index out of range for {n} windows")
    return idx


def _materialised(value):
    if isinstance(value, WindowArray):
        return np.asarray(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_materialised(v) for v in value)
    return value


class WindowArray(np.lib.mixins.NDArrayOperatorsMixin):
    """A read-only (N, length, C) float32 array of windows, cut from a table when indexed.

    Indexing (ints, slices, index arrays, masks, and further axes after the first) gathers just
    the windows asked for, with one vectorised fancy index, and iteration goes block by block.
    Anything else an ndarray does (arithmetic, ``np.mean(a)``, ``a.max()``, ``np.asarray(a)``)
    works on all the windows materialised: N x length x C floats, so mind the size of ``x`` on a
    large table (``y``, horizon x targets per window, is the size of the predictions).
    """

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, starts: _Starts, values: np.ndarray, offset: int, length: int, ncols: int):
        self._starts, self._values = starts, values
        self._offset, self._length, self._ncols = int(offset), int(length), int(ncols)
        self._steps = np.arange(self._offset, self._offset + self._length)  # (length,) rows after a start

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self._starts), self._length, self._ncols)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return getattr(ufunc, method)(*_materialised(inputs), **{k: _materialised(v) for k, v in kwargs.items()})

    def __array_function__(self, func, types, args, kwargs):
        return func(*_materialised(args), **{k: _materialised(v) for k, v in kwargs.items()})

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(np.asarray(self), name)  # ndarray methods (mean, max, astype, ...) on all windows

    def __len__(self) -> int:
        return len(self._starts)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Windows at ``positions`` (B,) as a new (B, length, C) array."""
        return self.cut(self._starts(np.asarray(positions, dtype=np.int64)))

    def cut(self, starts: np.ndarray) -> np.ndarray:
        """Windows whose first rows (before the offset) are ``starts`` (B,): (B, length, C)."""
        rows = starts[:, None] + self._steps  # (B, length)
        out = np.take(self._values, rows, axis=0)  # (B, length, all columns); np.take is several times faster than values[rows]
        return out if self._ncols == out.shape[2] else np.ascontiguousarray(out[:, :, : self._ncols])

    def __getitem__(self, key):
        head, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if head is Ellipsis or any(k is Ellipsis or k is None for k in rest):
            return np.asarray(self)[key]
        if isinstance(head, (int, np.integer)):
            out = self.take(_positions([head], len(self)))[0]  # (length, C)
            return out[rest] if rest else out
        out = self.take(_positions(head, len(self)))
        return out[(slice(None),) + rest] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for lo in range(0, len(self), 4096):
            yield from self.take(np.arange(lo, min(lo + 4096, len(self))))

    def __repr__(self) -> str:
        return f"WindowArray(shape={self.shape}, dtype=float32)"


class Windows:
    """The training or validation windows of a table: item ``i`` is a (series, start) pair.

    ``x`` (N, window, F) and ``y`` (N, horizon, T) are :class:`WindowArray` views in raw units;
    ``gather`` cuts a batch of both at once, ``batches`` walks them in order.
    """

    def __init__(self, table: SeriesTable, starts: _Starts, window: int, horizon: int, n_targets: int):
        self.table, self.starts = table, starts
        self.window, self.horizon = window, horizon
        self.x = WindowArray(starts, table.values, 0, window, table.values.shape[1])
        self.y = WindowArray(starts, table.values, window, horizon, n_targets)  # targets are the first columns

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def gather(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """Windows at ``positions`` (B,): x (B, window, F) and y (B, horizon, T), float32."""
        starts = self.starts(np.asarray(positions, dtype=np.int64))
        return self.x.cut(starts), self.y.cut(starts)

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None):
        """(x, y) for windows start..stop in order, ``batch_size`` at a time."""
        stop = len(self) if stop is None else stop
        for lo in range(start, stop, batch_size):
            yield self.gather(np.arange(lo, min(lo + batch_size, stop)))

    def items(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """(series id, start row within its series) of the windows at ``positions``."""
        positions = _positions(positions, len(self))
        k = self.starts.segment(positions)
        series = self.starts.series[k]
        start = self.starts(positions) - self.table.offsets[series]
        return _objects(self.table.ids)[series], start

    @property
    def series(self) -> np.ndarray:
        """(N,) series id of each window (None for a single series)."""
        return np.repeat(_objects(self.table.ids)[self.starts.series], self.starts.count)

    @property
    def time(self) -> np.ndarray:
        """(N,) time (or row number) of each window's first target step."""
        return self.table.time_at(self.starts(np.arange(len(self))) + self.window)

    @property
    def origin(self) -> np.ndarray:
        """(N,) where each window's first target step lies in its series (the baselines' origin)."""
        return np.concatenate([np.arange(c, dtype=np.int64) + (f - self.table.offsets[k]) + self.window
                               for f, c, k in zip(self.starts.first, self.starts.count, self.starts.series)] or [np.zeros(0, np.int64)])


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
    # Sentences for the report (``metrics.json`` ``warnings``): what the defaults had to give up.
    warnings: list = field(default_factory=list)


# -- reading -------------------------------------------------------------------------------


def _first_duplicate(items) -> str | None:
    seen = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _check_path(source) -> tuple[Path, str, str]:
    """(path, label, "csv" | "parquet") of a table file, or the one-line error of what is wrong."""
    path = Path(source)
    label = str(source)
    if path.is_dir():
        raise DataError(f"{label}: is a directory, not a CSV file")
    if not path.exists():
        raise DataError(f"{label}: no such file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return path, label, "parquet"
    if suffix not in CSV_SUFFIXES:
        raise DataError(f"{label}: not a CSV or Parquet file (expected a .csv or .parquet file)")
    with open(path, "rb") as fh:
        head = fh.read(HEADER_BYTES)
    # Only the header must decode here: a byte that is not UTF-8 further down is named by its line
    # when a column that holds it is read (a column never read may hold anything).
    header = next(csv.reader(io.StringIO(head.decode("utf-8-sig", errors="surrogateescape"), newline="")), None)
    if header and any(_SURROGATE.search(h) for h in header):
        raise not_utf8(path, label)
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{label}: the file is empty")
    dup = _first_duplicate([h.strip() for h in header])
    if dup is not None:
        raise DataError(f"{label}: duplicate column {dup!r}")
    return path, label, "csv"


HEADER_BYTES = 1 << 16  # the bytes read to check a CSV's header
_SURROGATE = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8, after surrogateescape


def not_utf8(path: Path, label: str) -> DataError:
    """The one-line error for a file that is not UTF-8 text, naming the line of its first bad byte."""
    with open(path, "rb") as fh:
        if fh.read(2) in (b"\xff\xfe", b"\xfe\xff"):
            return DataError(f"{label}: not a CSV file (UTF-16 text; save it as UTF-8)")
        fh.seek(0)
        line, pending = 1, b""
        for block in iter(lambda: fh.read(1 << 20), b""):
            data = pending + block
            try:
                data.decode("utf-8")
                pending = b""
            except UnicodeDecodeError as exc:
                if exc.end == len(data) and len(data) - exc.start < 4 and "unexpected end" in exc.reason:
                    pending = data[exc.start :]  # a character split between two blocks
                    data = data[: exc.start]
                else:
                    line += data.count(b"\n", 0, exc.start)
                    return DataError(f"{label}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02X}); save the file as UTF-8")
            line += data.count(b"\n")
    if pending:
        return DataError(f"{label}: line {line}: not UTF-8 text (the file ends inside a character); save the file as UTF-8")
    return DataError(f"{label}: not UTF-8 text; save the file as UTF-8")


def _parquet_file(path: Path, label: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{label}: not a Parquet file ({str(exc).strip().splitlines()[0]})") from None
    dup = _first_duplicate(pf.schema_arrow.names)
    if dup is not None:
        raise DataError(f"{label}: duplicate column {dup!r}")
    if pf.metadata.num_rows == 0:
        raise DataError(f"{label}: the table has no rows")
    return pf


def table_source(source, role: str = "training"):
    """``source`` as a table reader takes it: a DataFrame (a named Series becomes its one column;
    its index is not read), a path (str or os.PathLike) or None; anything else is one line."""
    if isinstance(source, pd.Series):
        if source.name is None:
            raise DataError(f"{role} data: a Series needs a name, its column's (series.rename('load'))")
        return source.to_frame()
    if source is None or isinstance(source, (pd.DataFrame, str, os.PathLike)):
        return source
    kind = type(source)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    raise DataError(f"{role} data: expected a DataFrame or a CSV or Parquet path, got {name}")


def read_table(source, *, role: str = "training", text=(), keys=(), keep_blank_lines: bool = False) -> pd.DataFrame:
    """Read a CSV or Parquet path or take a DataFrame, checking what a real file can get wrong.

    Handles a byte-order mark, CRLF line ends and quoted fields. The returned frame's index is
    the 1-based row number in the source, and ``frame.attrs["label"]`` names the source in errors.
    This reads the whole table through pandas; the forecaster's own paths read only the columns
    they need, block by block (:func:`load_series`).

    ``text`` names key columns (series ids, labels) that a CSV file gives as their text, stripped,
    empty cells missing, instead of as pandas infers them (which would make "007" and "7" one
    key); ``frame.attrs["text_columns"]`` lists those read so (:func:`typed_keys` types them).
    A DataFrame's or a Parquet file's columns keep their own types.

    A CSV's blank lines are skipped, rows counted without them; ``keep_blank_lines`` reads each
    as a row of empty cells, so rows are the file's data rows (blank lines after the last row
    are dropped).

    Raises:
        DataError: not a file, a directory, not a CSV or Parquet file, empty, header only,
            duplicate column names.
    """
    source = table_source(source, role)
    if isinstance(source, pd.DataFrame):
        label = f"{role} data"
        dup = _first_duplicate([str(c) for c in source.columns])
        if dup is not None:
            raise DataError(f"{label}: duplicate column {dup!r}")
        if len(source) == 0:
            raise DataError(f"{label}: the table has no rows")
        frame = source.set_axis([str(c) for c in source.columns], axis=1)  # copy-on-write: the caller's frame is not copied or changed
        # Times or ids kept as the index (statsmodels ships its datasets' dates there): read where
        # the caller names them (time="date"), and only then: an index is not data otherwise.
        levels = [str(n) for n in frame.index.names]
        named = [k for k in dict.fromkeys(keys) if k and k not in frame.columns and k in levels]
        if named:
            frame = frame.reset_index(level=[levels.index(k) for k in named])
            frame.columns = [str(c) for c in frame.columns]
    else:
        if source is None:
            raise DataError(f"{role} data: no table given")
        path, label, kind = _check_path(source)
        if kind == "parquet":
            import pyarrow as pa

            try:
                frame = _parquet_file(path, label).read().to_pandas()
            except pa.ArrowException as exc:
                raise DataError(f"{label}: unreadable Parquet file ({str(exc).strip().splitlines()[0]})") from None
        else:
            first = too_many_fields(path, label, first_only=True, blank_lines=keep_blank_lines)  # pandas would read its extra field as an index
            if first is not None:
                raise first
            try:
                with warnings.catch_warnings():
                    # index_col=False: a row with a field more than the header is not an index
                    # column; pandas then warns that it drops the field, an error here.
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    frame = pd.read_csv(path, encoding="utf-8-sig", skipinitialspace=True, index_col=False, skip_blank_lines=not keep_blank_lines)
            except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
                raise too_many_fields(path, label, blank_lines=keep_blank_lines) or DataError(f"{label}: malformed CSV ({str(exc).strip().splitlines()[-1]})") from None
            except UnicodeDecodeError:
                raise not_utf8(path, label) from None
            if keep_blank_lines:
                frame = frame.iloc[: len(frame) - trailing_blank_lines(path)]
            frame.columns = [str(c).strip() for c in frame.columns]
            if len(frame) == 0:
                raise DataError(f"{label}: has a header but no data rows")
            frame = _with_text(frame, path, label, [c for c in text if c in frame.columns])
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    frame.attrs["label"] = label
    return frame


def too_many_fields(path: Path, label: str, *, first_only: bool = False, blank_lines: bool = False) -> DataError | None:
    """The one-line error for the first data row with more fields than the header (a trailing
    comma, an unquoted comma in a cell), rows counted as :func:`read_table` counts them (blank
    lines skipped; ``blank_lines``: counted, as ``keep_blank_lines`` reads them); None if none
    has (``first_only``: if the first data row has not)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = next(reader, [])
        row = 0
        for fields in reader:
            if not blank_lines and (not fields or (len(fields) == 1 and not fields[0].strip())):
                continue  # a blank line: pandas skips it
            row += 1
            if len(fields) > len(header):
                return DataError(f"{label}: row {row} has {len(fields)} fields, the header has {len(header)}{_semicolon_hint(header)}")
            if first_only:
                break
    return None


_BLANK = b" \t\r\n\f\v"


def trailing_blank_lines(path: Path) -> int:
    """How many blank (empty or whitespace-only) lines follow a CSV file's last row: the rows of
    empty cells pandas reads there when it keeps blank lines."""
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        tail = b""
        while end > 0:  # back from the end, block by block, to the last byte that is not white space
            start = max(0, end - (1 << 16))
            fh.seek(start)
            block = fh.read(end - start)
            tail = block + tail
            end = start
            if block.strip(_BLANK):
                break
    rest = tail[len(tail.rstrip(_BLANK)):].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = rest.split(b"\n")  # the end of the last row's line, then the blank lines
    return max(0, len(lines) - 1 - (lines[-1] == b""))


def _with_text(frame: pd.DataFrame, path: Path, label: str, columns: list[str]) -> pd.DataFrame:
    """``frame`` with ``columns`` as the CSV file's text (a second read of those columns only)."""
    if not columns:
        return frame
    try:
        raw = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False, skipinitialspace=True,
                          usecols=lambda c: str(c).strip() in columns)
    except UnicodeDecodeError:
        raise not_utf8(path, label) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if len(raw) != len(frame):  # the same parser read both: never expected
        raise DataError(f"{label}: read {len(raw)} rows of {', '.join(map(repr, columns))} for {len(frame)} rows")
    frame = frame.copy()
    for c in columns:
        words = raw[c].str.strip()
        frame[c] = words.where(words != "").set_axis(frame.index).astype(object)
    frame.attrs["text_columns"] = list(columns)
    return frame


def canonical_int(text: str) -> bool:
    """Whether ``text`` is an integer as Python writes it ("-3", not "007", "+3", "3.0" or "٣"), within int64."""
    try:
        value = int(text)
    except ValueError:
        return False
    return str(value) == text and -(2**63) <= value < 2**63


def ids_as_in(ids: list, known: list) -> list:
    """``ids`` (a second table's series ids, typed from that table alone: ``1``, ``2``) as the
    ``known`` ones are (``"1"``, ``"2"``, ``"x"`` from the training table) where their text is
    the same; others as they are."""
    if set(map(type, ids)) == set(map(type, known)):
        return list(ids)
    by_text = {str(k): k for k in known}
    return [by_text.get(str(i), i) for i in ids]


def typed_keys(words: list) -> list:
    """Keys read as text (series ids, labels): ints when every one is a canonical integer, else
    the text itself, so "007" and "7" stay two keys and "7" and "8" come back as 7 and 8."""
    return [int(w) for w in words] if all(canonical_int(w) for w in words) else list(words)


def require_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    _require(frame.attrs["label"], list(frame.columns), columns)


def _require(label: str, have: list[str], columns: list[str]) -> None:
    missing = [c for c in columns if c not in have]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(f"{label}: missing column{'s' if len(missing) > 1 else ''} {names}; columns are: {', '.join(have)}{_semicolon_hint(have)}")


def _semicolon_hint(header: list[str]) -> str:
    """A hint when one header cell holds them all, split by ';': another delimiter (with decimal
    commas, the rows then have more fields than the header)."""
    if len(header) == 1 and ";" in header[0]:
        return "; the header is one cell with ';' in it: is the file semicolon-delimited? Save it with commas"
    return ""


def numeric_column(frame: pd.DataFrame, column: str, *, allow_nan: bool) -> pd.Series:
    """The column as float64; a non-number, an infinity or a value beyond float32's range is an
    error naming its row."""
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
    # Values are held and trained on in float32: a finite float64 beyond its range would be inf there.
    big = np.abs(values) > FLOAT32_MAX
    if big.any():
        row = big.idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: value {float(values[row])!r} is beyond the float32 range (largest magnitude {FLOAT32_MAX:.4g})")
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


def _time_values(frame: pd.DataFrame, column: str) -> tuple[pd.Series, str | None]:
    """A time column as numbers or dates, and the date format's order (see :func:`parse_dates`)."""
    label = frame.attrs["label"]
    raw = frame[column]
    if raw.isna().any():
        row = raw.isna().idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: missing time")
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
        return raw, None
    numbers = pd.to_numeric(raw, errors="coerce")
    if numbers.notna().all():
        return numbers, None
    if numbers.notna().mean() > 0.5:  # a column of numbers with a bad cell: name that cell
        row = numbers.isna().idxmax()
        raise DataError(f"{label}: column {column!r}, row {row}: not a number like the rest of the column: {str(raw[row])!r}")
    _check_offsets_agree(raw, label, column)
    dates, order = parse_dates(raw)
    if dates.isna().any():
        row = dates.isna().idxmax()
        first = str(raw.iloc[0])
        like = f" like the column's first ({first!r})" if dates.notna().any() else ""
        raise DataError(f"{label}: column {column!r}, row {row}: not a number or a date{like}: {str(raw[row])!r}")
    return dates, order


def _check_offsets_agree(raw: pd.Series, label: str, column: str) -> None:
    """Refuse a text time column in which some times carry a UTC offset and others none (they
    were read as UTC: a local time silently shifted): name the first cell of the fewer kind."""
    text = raw.astype(str)
    has = text.str.contains(_OFFSET, regex=True).to_numpy()
    looks = text.str.match(r"\s*\d{4}-\d{2}-\d{2}[T ]\d").to_numpy()  # only times of day carry offsets
    if not looks.any() or has[looks].all() or not has[looks].any():
        return
    fewer = has & looks if (has & looks).sum() <= (~has & looks).sum() else ~has & looks
    i = int(np.argmax(fewer))
    other = text.iloc[int(np.argmax(looks & (has != has[i])))]
    what = "has a UTC offset where the others have none" if has[i] else "has no UTC offset where the others have one"
    raise DataError(f"{label}: column {column!r}, row {raw.index[i]}: {text.iloc[i]!r} {what} (like {other!r}); "
                    "write every time with its offset, or every time without")


_QUARTER = re.compile(r"^\s*(?:(\d{4})\s*[-/ ]?\s*[Qq]([1-4])|[Qq]([1-4])\s*[-/ ]?\s*(\d{4}))\s*$")


def _quarters(raw: pd.Series) -> pd.Series | None:
    """Quarters written "1960 Q1", "1960-Q1", "Q1 1960" (every cell): the first day of each, or
    None (pandas reads "1960Q1" itself, but neither of the others)."""
    present = raw.dropna()
    if not len(present) or not _QUARTER.match(str(present.iloc[0])):  # the usual case, at the cost of one match
        return None
    found = raw.astype(str).str.extract(_QUARTER)
    if found.isna().all(axis=1).any():
        return None
    year = found[0].fillna(found[3]).astype(int)
    quarter = found[1].fillna(found[2]).astype(int)
    return pd.Series(pd.to_datetime({"year": year, "month": 3 * quarter - 2, "day": 1}).to_numpy(), index=raw.index)


def parse_dates(raw: pd.Series) -> tuple[pd.Series, str]:
    """Text dates read in one format for the whole column, and which (``iso``, ``month-first``,
    ``day-first``, ``mixed``); cells that do not parse are NaT.

    Element by element, "02/01/2020" and "13/01/2020" would be 1 February and 13 January: a
    column is read as ISO 8601 if it all is, else in the format of its first date month-first
    or day-first, whichever reads every cell (both: the one whose dates are evenly spaced, as a
    series' times are; a tie: month-first, pandas' default). Several formats in one column
    are read cell by cell only where the order of day and month changes no date.
    """
    def read(**options):
        return _to_datetime(raw, **options)

    quarters = _quarters(raw)
    if quarters is not None:
        return quarters, "iso"
    iso = read(format="ISO8601")
    if iso is None:
        iso = read(format="ISO8601", utc=True)  # offsets that change (daylight saving time): as UTC
    if iso is not None:
        return iso, "iso"
    bad = _unreadable_iso_cells(raw)
    if bad is not None:  # ISO but for cells no format reads: those NaT, found without the cell-by-cell reads below
        return bad, "iso"
    first = str(raw.dropna().iloc[0]) if raw.notna().any() else ""
    year_first = re.match(r"\s*\d{4}\D", first) is not None  # 2020-01-02: never year-day-month
    orders = ("month-first",) if year_first else ("month-first", "day-first")
    whole = {order: read(dayfirst=order == "day-first") for order in orders}
    whole = {order: v for order, v in whole.items() if v is not None}
    if len(whole) == 2 and not whole["month-first"].equals(whole["day-first"]):
        order = max(whole, key=lambda o: (frequency(whole[o]) is not None, o == "month-first"))
        return whole[order], order
    if whole:
        order = next(iter(whole))
        return whole[order], order
    mixed = [read(format="mixed", dayfirst=d, errors="coerce") for d in (False, True)]
    if all(m is not None for m in mixed) and mixed[0].equals(mixed[1]) and mixed[0].notna().all():
        return mixed[0], "mixed"
    # Some cell fits neither order: NaT where the first date's format (either order) fails.
    coerced = [read(dayfirst=order == "day-first", errors="coerce") for order in orders]
    coerced = [c for c in coerced if c is not None] or [pd.Series(pd.NaT, index=raw.index)]
    best = min(coerced, key=lambda c: int(c.isna().sum()))
    return best, "month-first"


def _to_datetime(raw: pd.Series, **options) -> pd.Series | None:
    """pandas.to_datetime, or None where a cell is off the format or out of range."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' "could not infer format" notices
            return pd.to_datetime(raw, **options)
    except (ValueError, TypeError, OverflowError):
        return None


def _unreadable_iso_cells(raw: pd.Series) -> pd.Series | None:
    """A column of ISO 8601 dates but for a few cells (at most 1%) that no reading of
    :func:`parse_dates` takes: the dates, NaT at those cells (the first is the error's); None
    when the column is not so, or a cell that fails ISO reads in another order (then the full
    search decides, as before). On 500,000 rows with one bad cell: a second, where the
    cell-by-cell reads of a whole column took over a minute."""
    coerced = _to_datetime(raw, format="ISO8601", errors="coerce")
    if coerced is None:
        coerced = _to_datetime(raw, format="ISO8601", errors="coerce", utc=True)
    if coerced is None:
        return None
    failed = coerced.isna() & raw.notna()
    if not failed.any() or failed.sum() > max(1, len(raw) // 100):
        return None
    cells = raw[failed]
    for options in ({"dayfirst": False}, {"dayfirst": True}, {"format": "mixed", "dayfirst": False, "errors": "coerce"}, {"format": "mixed", "dayfirst": True, "errors": "coerce"}):
        got = _to_datetime(cells, **options)
        if got is not None and got.notna().any():
            return None  # some cell reads another way: leave it to the full search
    return coerced


# -- tables as series ------------------------------------------------------------------------


class _Retry(Exception):
    """The block-by-block read cannot go on: read the whole table through pandas instead."""


class _FrameSource:
    """A table already in memory (a DataFrame, or a file pandas read whole): one chunk."""

    def __init__(self, frame: pd.DataFrame):
        self.frame, self.label, self.columns = frame, frame.attrs["label"], list(frame.columns)

    def reads_text(self, column: str) -> bool:
        """Whether ``column`` holds the file's text (a CSV's key column; see :func:`read_table`)."""
        return column in self.frame.attrs.get("text_columns", ())

    def resolve(self, config: DataConfig) -> list[str]:
        return resolve_columns(self.frame, config)[0]

    def rows_hint(self, first: int) -> int:
        return len(self.frame)

    def chunks(self, columns: list[str], values: list[str], text=()):
        yield _FrameChunk(self.frame)


class _FrameChunk:
    """Rows of a DataFrame (indexed by source row numbers): each column checked as a whole-table read checks it."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def values(self, column: str) -> np.ndarray:
        """The column as float64 (the table keeps float32; :func:`_build` measures the rounding)."""
        return numeric_column(self.frame, column, allow_nan=True).to_numpy(np.float64)

    def times(self, column: str):
        return _time_chunk(self.frame, column)

    def ids(self, column: str) -> tuple[np.ndarray, list]:
        sids = self.frame[column]
        if sids.isna().any():
            raise DataError(f"{self.frame.attrs['label']}: column {column!r}, row {sids.isna().idxmax()}: missing series id")
        local, uniques = pd.factorize(sids, sort=False)
        return local, uniques.tolist()


class _ArrowChunk:
    """A pyarrow record batch of a file: numbers, times and ids converted without a DataFrame
    (a block's worth of Python objects per column costs more than the block). A column that needs
    more than that (text to parse, a bad cell to name) goes through :class:`_FrameChunk`."""

    def __init__(self, batch, offset: int, label: str, raw: dict[str, str], strip: bool):
        self.batch, self.offset, self.label, self.raw, self.strip = batch, offset, label, raw, strip

    def __len__(self) -> int:
        return self.batch.num_rows

    def _frame(self, column: str) -> _FrameChunk:
        s = self.batch.column(self.raw[column]).to_pandas()
        if self.strip and _kind(self.batch.schema.field(self.raw[column]).type) == "text":
            s = s.str.lstrip(" ")  # pandas' skipinitialspace
        frame = pd.DataFrame({column: s.to_numpy()}, index=pd.RangeIndex(self.offset + 1, self.offset + 1 + len(s)))
        frame.attrs["label"] = self.label
        return _FrameChunk(frame)

    def _first_null(self, array) -> int | None:
        if not array.null_count:
            return None
        import pyarrow.compute as pc

        return self.offset + int(pc.index(pc.is_null(array, memory_pool=_pool()), True).as_py()) + 1

    def values(self, column: str) -> np.ndarray:
        import pyarrow as pa

        array = self.batch.column(self.raw[column])
        t = array.type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            return self._frame(column).values(column)
        a = array.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # nulls become NaN
        # The checks of numeric_column, run only where a cell might fail them, so its message is the one raised.
        if not np.isfinite(a[~np.isnan(a)]).all() or (np.abs(a) > FLOAT32_MAX).any():
            return self._frame(column).values(column)
        return a

    def times(self, column: str):
        import pyarrow as pa

        array = self.batch.column(self.raw[column])
        t = array.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t)) or array.null_count:
            return self._frame(column).times(column)  # text to parse, or a missing time to name
        values = array.to_numpy(zero_copy_only=False)
        if pa.types.is_timestamp(t):
            return values.astype("datetime64[ns]"), "date", t.tz, None, None  # aware times come out as naive UTC
        return values, "number", None, None, None

    def ids(self, column: str) -> tuple[np.ndarray, list]:
        import pyarrow as pa
        import pyarrow.compute as pc

        array = self.batch.column(self.raw[column])
        row = self._first_null(array)
        if row is not None:
            if self.strip:  # pyarrow reads "NA" and the like as missing, where a CSV id read as text is "NA"
                raise _Retry
            raise DataError(f"{self.label}: column {column!r}, row {row}: missing series id")
        try:
            encoded = pc.dictionary_encode(array, memory_pool=_pool())
        except pa.ArrowNotImplementedError:
            return self._frame(column).ids(column)
        uniques = encoded.dictionary.to_pylist()
        local = encoded.indices.to_numpy(zero_copy_only=False)
        if self.strip and _kind(array.type) == "text":  # a CSV's ids, read as text: as read_table reads them
            uniques = [u.strip() for u in uniques]
            if "" in uniques:
                row = self.offset + int(np.argmax(local == uniques.index(""))) + 1
                raise DataError(f"{self.label}: column {column!r}, row {row}: missing series id")
        return local, uniques


def _pool():
    """The C allocator's pool: it gives freed blocks back, where pyarrow's default (mimalloc) keeps them."""
    import pyarrow as pa

    return pa.system_memory_pool()


def _kind(arrow_type) -> str:
    import pyarrow as pa

    t = pa.types
    if t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_decimal(arrow_type) or t.is_null(arrow_type):
        return "number"  # an all-empty column too, as pandas reads it: float NaN
    if t.is_boolean(arrow_type):
        return "bool"
    if t.is_string(arrow_type) or t.is_large_string(arrow_type) or getattr(t, "is_string_view", lambda _: False)(arrow_type):
        return "text"
    return "other"


class _ArrowSource:
    """A CSV or Parquet file read through pyarrow, block by block and only the columns asked for.

    Chunks are DataFrames indexed by source row numbers, so the checks that run on them name the
    same rows and columns as a whole-table read. CSV text cells lose their leading spaces, as
    pandas' ``skipinitialspace`` does.
    """

    def __init__(self, path: Path, label: str, kind: str):
        import pyarrow as pa

        self.path, self.label, self.kind = path, label, kind
        if kind == "parquet":
            self.parquet = _parquet_file(path, label)
            schema = self.parquet.schema_arrow
        else:
            try:
                reader = self._csv([], {})  # infers the types from the first block
            except pa.ArrowInvalid:
                raise _Retry from None
            schema = reader.schema
            reader.close()
        self.raw = {name.strip(): name for name in schema.names}
        self.columns = list(self.raw)
        self.kinds = {name.strip(): _kind(schema.field(name).type) for name in schema.names}
        # pyarrow types a CSV column that is not valid UTF-8 as binary: such a column is named when read.
        self.binary = {name.strip() for name in schema.names if kind == "csv" and pa.types.is_binary(schema.field(name).type)}
        # pyarrow reads a CSV's "2024-03-31 00:00:00+02:00" as UTC and drops the offset each time
        # was written with: such a column is read as text (see _time_chunk: the local clock's season).
        self.aware = {name.strip() for name in schema.names
                      if kind == "csv" and pa.types.is_timestamp(schema.field(name).type) and schema.field(name).type.tz is not None}

    def _csv(self, columns: list[str], types: dict):
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(
            include_columns=[self.raw[c] for c in columns], column_types={self.raw[c]: t for c, t in types.items()}, strings_can_be_null=True
        )
        return pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=convert,
            memory_pool=_pool(),
        )

    def _batches(self, columns: list[str], types: dict):
        import pyarrow as pa

        if self.binary.intersection(columns):
            raise not_utf8(self.path, self.label)
        offset = 0
        try:
            if self.kind == "parquet":
                batches = self.parquet.iter_batches(batch_size=BATCH_ROWS, columns=[self.raw[c] for c in columns])
            else:
                batches = self._csv(columns, types)
            for batch in batches:
                yield _ArrowChunk(batch, offset, self.label, self.raw, strip=self.kind == "csv")
                offset += batch.num_rows
        except pa.ArrowInvalid as exc:
            if self.kind == "parquet":
                raise DataError(f"{self.label}: unreadable Parquet file ({str(exc).strip().splitlines()[0]})") from None
            raise _Retry from None

    def rows_hint(self, first: int) -> int:
        """Rows to make room for, given the rows of the first block: exact for Parquet; for CSV
        the file's size over the first block's bytes per row, with a quarter to spare."""
        if self.kind == "parquet":
            return self.parquet.metadata.num_rows
        size = self.path.stat().st_size
        return int(size / (min(BLOCK_BYTES, size) / max(first, 1)) * 1.25) + 1024

    def resolve(self, config: DataConfig) -> list[str]:
        """The input columns: targets, then the features (given, or every numeric column left)."""
        keys = [c for c in (config.time, config.series_id) if c]
        _require(self.label, self.columns, list(config.target) + list(config.features or []) + keys)
        if config.features is not None:
            return list(config.target) + list(config.features)
        candidates = [c for c in self.columns if c not in config.target and c not in keys]
        text = [c for c in candidates if self.kinds[c] == "text"]
        numeric = self._numeric_share(text) if text else {}
        return list(config.target) + [c for c in candidates if self.kinds[c] in ("number", "bool") or numeric.get(c, False)]

    def _numeric_share(self, columns: list[str]) -> dict[str, bool]:
        """Per text column: do at least half of its cells read as numbers (see ``_looks_numeric``)?"""
        import pyarrow as pa

        present = dict.fromkeys(columns, 0)
        numbers = dict.fromkeys(columns, 0)
        for chunk in self._batches(columns, {c: pa.string() for c in columns}):
            for c in columns:
                cells = chunk.batch.column(self.raw[c]).to_pandas().dropna()
                present[c] += len(cells)
                numbers[c] += int(pd.to_numeric(cells, errors="coerce").notna().sum())
        return {c: present[c] > 0 and numbers[c] / present[c] >= 0.5 for c in columns}

    def reads_text(self, column: str) -> bool:
        """Whether ``column`` is read as text when named in ``chunks(text=...)``: a CSV's are."""
        return self.kind == "csv"

    def chunks(self, columns: list[str], values: list[str], text=()):
        import pyarrow as pa

        # Value columns inferred as integers from the first block become float64, so a later 1.5
        # is no type change; text stays text, and the per-chunk checks name any bad cell. A CSV's
        # key columns (``text``) are read as text whatever they look like ("007" is not 7).
        types = {c: pa.float64() for c in values if self.kinds[c] == "number"}
        types.update({c: pa.string() for c in values if self.kinds[c] == "text"})
        if self.kind == "csv":
            types.update({c: pa.string() for c in list(text) + [c for c in columns if c in self.aware]})
        return self._batches(columns, types)


def _open(source, role: str, text=(), keys=()):
    source = table_source(source, role)
    if isinstance(source, pd.DataFrame) or source is None:
        return _FrameSource(read_table(source, role=role, keys=keys))
    path, label, kind = _check_path(source)
    try:
        return _ArrowSource(path, label, kind)
    except _Retry:
        return _FrameSource(read_table(source, role=role, text=text))


def check_key_names(config: DataConfig) -> None:
    """At training: a time or series id column named like a column predict writes after the keys
    (``y_t+1``, ``y_t+1_std``, ``y_t+1_q05``; ``row``, the key without a time column), which
    predict would overwrite (store names became row numbers). Checkpoints and packages of such
    a model still load."""
    for role in ("time", "series_id"):
        col = getattr(config, role)
        if col is not None and re.fullmatch(rf"(?:{'|'.join(map(re.escape, map(str, config.target)))})_t\+\d+(?:_std|_q\d\d)?", str(col)):
            raise _option_error(role, f"column {col!r} is named as a predict output column ({config.target[0]}_t+1, {config.target[0]}_t+1_std, "
                                      "...), which would overwrite it; rename the column")
    if config.series_id == "row" and config.time is None:
        raise _option_error("series_id", "column 'row' is the name predict gives the row of each window when there is no time "
                                         "column, which would overwrite the series ids; rename the column")


def key_columns(config: DataConfig) -> list[str]:
    """The columns a CSV file gives as text (:func:`read_table`): the series id's."""
    return [config.series_id] if config.series_id else []


def index_keys(config: DataConfig) -> list[str]:
    """The columns a DataFrame may hold as its index instead (:func:`read_table`'s ``keys``)."""
    return [c for c in (config.time, config.series_id) if c]


def load_series(source, config: DataConfig, *, role: str = "training", columns: list[str] | None = None, like: SeriesTable | None = None) -> SeriesTable:
    """Read a table into a :class:`SeriesTable`: only the columns needed, checked, sorted, gap-handled.

    Args:
        source: CSV or Parquet path, or DataFrame.
        config: time and series columns, missing-value policy, and the columns to resolve.
        role: "training", "validation" or "input" (names a DataFrame in errors).
        columns: the value columns (a trained model's inputs); None to resolve them from config.
        like: a table whose columns this one must have, in the same order (a validation table).
    """
    src = _open(source, role, key_columns(config), index_keys(config))
    if like is not None:
        _same_columns(src.label, src.columns, like.table_columns)
    return _load(src, source, config, role, columns)


def _load(src, source, config: DataConfig, role: str, columns: list[str] | None) -> SeriesTable:
    keys = [c for c in (config.time, config.series_id) if c]
    for _ in range(2):
        try:
            if columns is None:
                inputs = src.resolve(config)
            else:
                _require(src.label, src.columns, list(columns) + keys)
                inputs = list(columns)
            return _build(src, config, inputs)
        except _Retry:
            src = _FrameSource(read_table(source, role=role, text=key_columns(config), keys=index_keys(config)))
    raise AssertionError("a whole-table read never retries")  # pragma: no cover


def _same_columns(label: str, have: list[str], want: list[str]) -> None:
    if list(have) != list(want):
        lacking = [c for c in want if c not in have]
        extra = [c for c in have if c not in want]
        parts = ([f"missing {', '.join(map(repr, lacking))}"] if lacking else []) + ([f"extra {', '.join(map(repr, extra))}"] if extra else [])
        detail = "; ".join(parts) if parts else "same names in another order"
        raise DataError(f"{label}: columns differ from the training data ({detail})")


def _time_chunk(chunk: pd.DataFrame, column: str):
    """(values, kind, time zone, date order, UTC offsets) of a chunk's time column; aware times as
    naive UTC. The offsets (int32 seconds per row) come with text times read as UTC because their
    offset varies (+01:00, then +02:00: daylight saving time), else None."""
    values, order = _time_values(chunk, column)
    if pd.api.types.is_datetime64_any_dtype(values):
        tz = getattr(values.dt, "tz", None)
        if tz is not None:
            wall = _text_offsets(chunk[column]) if order == "iso" and str(tz) == "UTC" else None
            return values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]"), "date", str(tz), order, wall
        return values.to_numpy(), "date", None, order, None
    return values.to_numpy(), "number", None, None, None


_OFFSET_PARTS = r"(?:Z|([+-])(\d{2}):?(\d{2})?)\s*$"
_OFFSET = r"(?:Z|[+-]\d{2}:?(?:\d{2})?)\s*$"


def _text_offsets(raw: pd.Series) -> np.ndarray | None:
    """Each text time's UTC offset in seconds (Z: 0), or None when they are all one (nothing to
    add back) or a cell has none."""
    if raw.dtype != object and not pd.api.types.is_string_dtype(raw):
        return None
    parts = raw.astype(str).str.extract(_OFFSET_PARTS)
    has = raw.astype(str).str.contains(_OFFSET, regex=True)
    if not has.all():
        return None
    sign = np.where(parts[0].to_numpy() == "-", -1, 1)
    hours = pd.to_numeric(parts[1], errors="coerce").fillna(0).to_numpy()
    minutes = pd.to_numeric(parts[2], errors="coerce").fillna(0).to_numpy()
    seconds = (sign * (hours * 3600 + minutes * 60)).astype(np.int32)
    return seconds if len(np.unique(seconds)) > 1 else None


class _Rows:
    """Blocks of rows appended into one preallocated array.

    The capacity is an estimate with room to spare: pages past the rows written are never
    touched, so they cost no memory, and there are no per-block arrays to concatenate (freed,
    those would stay in the heap beside the whole). Outgrowing the capacity doubles it.
    """

    def __init__(self, capacity: int, width: int | None = None, dtype=None):
        self.capacity, self.width, self.dtype, self.n = max(int(capacity), 1), width, dtype, 0
        self.data = None if dtype is None else self._empty(self.capacity, dtype)

    def _empty(self, rows: int, dtype) -> np.ndarray:
        return np.empty((rows,) if self.width is None else (rows, self.width), dtype)

    def append(self, block: np.ndarray) -> None:
        if self.data is None:
            self.data = self._empty(self.capacity, block.dtype)
        elif np.result_type(self.data.dtype, block.dtype) != self.data.dtype:  # integer times, then a float block
            self.data = self.data.astype(np.result_type(self.data.dtype, block.dtype))
        if self.n + len(block) > len(self.data):
            grown = self._empty(max(2 * len(self.data), self.n + len(block)), self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + len(block)] = block
        self.n += len(block)

    def array(self) -> np.ndarray:
        return self.data[: self.n] if self.data is not None else np.zeros(0)


def _build(src, config: DataConfig, inputs: list[str]) -> SeriesTable:
    label = src.label
    tcol, scol = config.time, config.series_id
    needed = list(dict.fromkeys(list(inputs) + [c for c in (tcol, scol) if c]))
    chunks = iter(src.chunks(needed, inputs, text=[scol] if scol else []))
    first = next(chunks, None)
    if first is None:
        raise DataError(f"{label}: has a header but no data rows")
    capacity = src.rows_hint(len(first))
    values = _Rows(capacity, len(inputs), np.float32)  # (n, F)
    times = _Rows(capacity) if tcol else None
    walls, walled = (_Rows(capacity, dtype=np.int32) if tcol else None), False
    codes = _Rows(capacity, dtype=np.int32) if scol else None
    ids, time_kind = {}, None
    rounding = np.zeros(len(inputs))  # (F,) the largest change float32 made to a value of each column
    steps, counted = np.zeros(len(inputs)), np.zeros(len(inputs))  # (F,) |row-to-row change| as written, summed and counted
    for chunk in itertools.chain([first], chunks):
        local, uniques = chunk.ids(scol) if scol else (None, None)
        block = np.stack([chunk.values(c) for c in inputs], axis=1)  # (rows, F) float64
        stored = block.astype(np.float32)
        with np.errstate(invalid="ignore"):
            lost = np.abs(block - stored)
            change = np.abs(np.diff(block, axis=0))
        if scol:  # only between rows of one series (in file order: the mean change of a typical table)
            change = change[local[1:] == local[:-1]]
        finite = np.isfinite(change)
        steps += np.where(finite, change, 0.0).sum(axis=0)
        counted += finite.sum(axis=0)
        rounding = np.fmax(rounding, np.nanmax(lost, axis=0, initial=0.0))
        del block, lost, change, finite
        values.append(stored)
        if tcol:
            t, kind, tz, order, wall = chunk.times(tcol)
            if time_kind is None:
                time_kind = (kind, tz, order)
            elif time_kind != (kind, tz, order):
                raise _Retry  # numbers in one block, dates in another, or day-first and month-first: decide on the whole column
            times.append(t)
            walled = walled or wall is not None
            walls.append(wall if wall is not None else np.zeros(len(t), np.int32))
        if scol:
            mapping = np.array([ids.setdefault(u, len(ids)) for u in uniques], dtype=np.int32)
            codes.append(mapping[local])
    n = values.n
    if n == 0:
        raise DataError(f"{label}: has a header but no data rows")
    values = values.array()
    times = times.array() if tcol else None
    wall = walls.array() if walled else None
    codes = codes.array() if scol else None
    tz = time_kind[1] if time_kind else None

    # Sort by (series in order of first appearance, time), stably; a table in that order already
    # (the usual case) is not copied.
    same = codes[1:] == codes[:-1] if codes is not None else None  # (n - 1,) row i + 1 continues row i's series
    ordered = codes is None or bool((codes[1:] >= codes[:-1]).all())
    if ordered and times is not None:
        rising = times[1:] > times[:-1]
        ordered = bool((rising | ~same).all()) if same is not None else bool(rising.all())
        del rising
    rows = None
    if not ordered:
        if times is None:
            perm = np.argsort(codes, kind="stable")
        elif codes is None:
            perm = np.argsort(times, kind="stable")
        else:
            perm = np.lexsort((times, codes))
        values = values[perm]
        if times is not None:
            times = times[perm]
            wall = wall[perm] if wall is not None else None
        if codes is not None:
            codes = codes[perm]
            same = codes[1:] == codes[:-1]
        perm += 1
        rows = perm  # source row numbers, now in sorted order

    def row(p: int) -> int:
        return int(rows[p]) if rows is not None else p + 1

    def series_of(p: int) -> int:
        return int(codes[p]) if codes is not None else 0

    id_list = (typed_keys(list(ids)) if src.reads_text(scol) else list(ids)) if scol else [None]
    problems = []  # (series index, check order, message, its CLI spelling or None): the first series' first problem is raised
    if times is not None:
        dup = times[1:] == times[:-1]
        if same is not None:
            dup &= same
        if dup.any():
            p = int(np.argmax(dup)) + 1
            where = f" in series {id_list[series_of(p)]!r}" if scol else ""
            value = _plain(pd.Timestamp(times[p]).tz_localize("UTC").tz_convert(tz) if tz else (pd.Timestamp(times[p]) if time_kind[0] == "date" else times[p]))
            problems.append((series_of(p), 0, f"{label}: column {tcol!r}, row {row(p)}: duplicate time {value!r}{where}", None))
        del dup

    nan = np.isnan(values)  # (n, F)
    bad = nan.any(axis=1)
    keep = None
    if bad.any():
        if config.missing == "error":
            p = int(np.argmax(bad))
            col = inputs[int(np.argmax(nan[p]))]
            at = f"{label}: column {col!r}, row {row(p)}: missing value"
            problems.append((series_of(p), 1, f"{at} (use missing 'drop' or 'ffill' to accept empty cells)",
                             f"{at} (use --missing drop or --missing ffill to accept empty cells)"))
        elif config.missing == "drop":
            keep = ~bad
        else:  # ffill, within each series only
            first = np.zeros(n, np.int64)  # first row of each row's series
            if same is not None:
                starts = np.concatenate([[True], ~same])
                first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
            lefts = {}
            for j in range(len(inputs)):
                if not nan[:, j].any():
                    continue
                src_row = np.where(nan[:, j], -1, np.arange(n))
                np.maximum.accumulate(src_row, out=src_row)
                left = src_row < first  # nothing earlier in the series to carry forward
                if left.any():
                    lefts[j] = int(np.argmax(left))
                else:
                    values[:, j] = values[src_row, j]
            if lefts:
                p = min(lefts.values())
                col = inputs[min(j for j, q in lefts.items() if q == p)]
                problems.append((series_of(p), 1, f"{label}: column {col!r}, row {row(p)}: missing value with no earlier value to forward-fill", None))
    del nan, bad
    if problems:
        _, _, message, cli = min(problems, key=lambda p: p[:2])
        raise DataError(message, cli=cli)
    if keep is not None:
        values = values[keep]
        codes = codes[keep] if codes is not None else None
        times = times[keep] if times is not None else None
        wall = wall[keep] if wall is not None else None
        rows = (rows if rows is not None else np.arange(1, n + 1))[keep]
    if rows is not None and len(rows) and rows.max() < 2**31:
        rows = rows.astype(np.int32)
    counts = np.bincount(codes, minlength=len(id_list)) if codes is not None else np.array([len(values)])
    if keep is not None and not counts.all():  # every row of a series had an empty cell
        k = int(np.argmin(counts))
        which = f"series {id_list[k]!r}" if scol else "the table"
        raise DataError(f"{label}: {which} has no rows left once the rows with empty cells are dropped (missing 'drop'); "
                        "fill them, or leave the series out",
                        cli=f"{label}: {which} has no rows left once the rows with empty cells are dropped (--missing drop); "
                            "fill them, or leave the series out")
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    mean_change = np.where(counted > 0, steps / np.maximum(counted, 1), np.nan)
    return SeriesTable(label, list(src.columns), list(inputs), values, offsets, id_list, times, rows, tz, rounding, mean_change, wall)


def clean(frame: pd.DataFrame, config: DataConfig, columns: list[str]) -> list[tuple[object, pd.DataFrame]]:
    """Checked, sorted and gap-handled series of a frame from :func:`read_table`: ``(series id, frame)``.

    Each frame holds ``columns`` and a ``__time__`` column. Meant for small tables (one frame per
    series); large ones go through :func:`load_series`.
    """
    return clean_table(frame, config, columns).frames()


def clean_table(frame: pd.DataFrame, config: DataConfig, columns: list[str]) -> SeriesTable:
    """:func:`clean`'s series as one :class:`SeriesTable` (its ``frames()``, and its step: :func:`table_step`)."""
    return _build(_FrameSource(frame), config, list(columns))


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)


def _too_short(label: str, sid, n: int, need: int, what: str, hint: str = "") -> DataError:
    who = f"series {sid!r}" if sid is not None else "the table"
    return DataError(f"{label}: {who} has {n} rows; {what} needs at least {need}" + (f" ({hint})" if hint else ""))


def check_positive(label: str, g: pd.DataFrame, columns: list[str]) -> None:
    """Log scaling: every value must be > 0; the first that is not is named by column and row."""
    for col in columns:
        bad = ~(g[col] > 0)
        if bad.any():
            row = bad.idxmax()
            raise DataError(f"{label}: column {col!r}, row {row}: value {_plain(g.loc[row, col])!r} is not positive; log scaling needs every target value > 0 (train without --log)")


def _check_positive_table(table: SeriesTable, n_targets: int) -> None:
    """:func:`check_positive` over the target columns of a whole table, without a frame per series."""
    bad = ~(table.values[:, :n_targets] > 0)  # (n, T)
    if bad.any():
        p, k = map(int, np.argwhere(bad)[0])
        raise DataError(f"{table.label}: column {table.columns[k]!r}, {table.where(p)}: value {_plain(table.values[p, k])!r} is not positive; "
                        "log scaling needs every target value > 0 (train without --log)")


LARGE = 1e18  # about the square root of float32's largest value: beyond it, squares and spreads overflow


def diverged(tables: list[SeriesTable], exc: Exception) -> Exception:
    """The error to raise when training on ``tables`` (training, then validation) diverged
    (``exc``, a TrainingError): a value too large for float32 arithmetic, named by file, column and
    row (or time), if a table holds one; else the divergence, with the learning rate to lower."""
    for i, table in enumerate(tables):
        if any(table is t for t in tables[:i]):
            continue  # a chronological split: one table for both
        magnitude = np.abs(table.values)  # (n, F)
        if magnitude.size and magnitude.max() > LARGE:
            p, k = np.unravel_index(int(np.argmax(magnitude)), magnitude.shape)
            return DataError(f"{table.label}: column {table.columns[k]!r}, {table.where(int(p))}: value {float(table.values[p, k]):.4g} is too large to train on "
                             f"in float32 ({exc}); rescale the column")
    label = tables[0].label
    return TrainingError(f"{label}: {exc}; try a smaller learning rate (lr)", cli=f"{label}: {exc}; try a smaller --lr")


def validation_rows(n, val_fraction: float, horizon: int):
    """Rows held out at the end of a series for validation: the fraction, and at least one horizon."""
    return np.maximum(np.maximum(1, np.ceil(np.asarray(n) * val_fraction).astype(np.int64)), horizon)


def split_rows_needed(window: int, horizon: int, val_fraction: float) -> int:
    """The fewest rows a series needs for one training and one validation window under a
    chronological split: m - validation_rows(m) >= window + horizon (nondecreasing in m, so a
    binary search; at val_fraction near 1 it is ~ (window + horizon) / (1 - val_fraction))."""
    k = window + horizon
    lo, hi = k + 1, int(np.ceil((k + 1) / (1.0 - val_fraction))) + k + 2 * horizon + 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if mid - int(validation_rows(mid, val_fraction, horizon)) < k else (lo, mid)
    return lo


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
        n_val = int(validation_rows(n, config.val_fraction, horizon)) if split else 0
        rows = n - n_val
        fits = rows - horizon + 1 - max(8, rows // 3)  # the longest window leaving that many windows
        window = max(1, min(max(24, 2 * season, 2 * horizon), fits))
    return int(window), int(horizon)


def _resolved(config: DataConfig, table: SeriesTable, *, split: bool) -> DataConfig:
    """The config with season, window and horizon filled in from the data where they were None."""
    season = config.season
    lengths = table.lengths
    step = table_step(table) if config.time else None
    if season is None:
        season = season_of_frequency(step)
    window, horizon = default_lengths(config, int(lengths.min()), season, split=split)
    return DataConfig(**{**config.to_dict(), "season": int(season), "window": window, "horizon": horizon, "step": step})


def table_step(table: SeriesTable) -> str | None:
    """pandas' name for the regular step of the longest series' times, read as its season is (on
    the clock the times were written in where only that one steps evenly); None without a
    datetime time column, or when the series is too short or irregular to tell."""
    if table.times is None or not np.issubdtype(np.asarray(table.times).dtype, np.datetime64):
        return None
    k = int(np.argmax(table.lengths))  # the longest series
    a, b = int(table.offsets[k]), int(table.offsets[k + 1])
    times = pd.Series(table.calendar_times(a, b) if table.wall is not None else table.time_at(np.arange(a, b)))
    return frequency(times) if pd.api.types.is_datetime64_any_dtype(times) else None


def step_warning(label: str, step: str | None, trained: str | None) -> str | None:
    """A sentence when a table's step differs from the one the model was trained on (both known)."""
    if step is None or trained is None or same_step(step, trained):
        return None
    return (f"{label}: the table steps {step_name(step)}, the model was trained on data stepping {step_name(trained)}; "
            f"the forecasts assume the training step ({step_name(trained)}), one step per horizon step and per window row")


# -- windows -------------------------------------------------------------------------------


def _stats(values: np.ndarray, offsets: np.ndarray, limit: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (std 0 becomes 1) in one streaming pass.

    Only the first ``limit[k]`` rows of series ``k`` count (None: every row). Blocks of rows are
    merged with Chan et al.'s pairwise update, in float64, so the memory is one block and a large
    mean does not cancel the variance.
    """
    count, mean, m2 = 0, np.zeros(values.shape[1]), np.zeros(values.shape[1])
    for lo in range(0, len(values), STATS_ROWS):
        block = values[lo : lo + STATS_ROWS]
        if limit is not None:
            rows = np.arange(lo, lo + len(block))
            k = np.searchsorted(offsets, rows, side="right") - 1
            block = block[rows - offsets[k] < limit[k]]
        if not len(block):
            continue
        block = block.astype(np.float64)
        nb, mb = len(block), block.mean(axis=0)
        m2b = ((block - mb) ** 2).sum(axis=0)
        total = count + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (count * nb / total)
        count = total
    std = np.sqrt(m2 / max(count, 1))
    return mean, np.where(std > 0, std, 1.0)


def _smallest_series_std(y: np.ndarray, offsets: np.ndarray, limit: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    """Per column of ``y`` (n, T), the smallest standard deviation of one series' first
    ``limit[k]`` rows among the series that vary (``default`` where none does)."""
    lengths = np.diff(offsets)
    series = np.repeat(np.arange(len(lengths)), lengths)
    keep = np.arange(len(y)) - offsets[series] < (lengths if limit is None else limit)[series]
    series, y = series[keep], y[keep].astype(np.float64)
    count = np.bincount(series, minlength=len(lengths))
    out = np.array(default, dtype=np.float64)
    for j in range(y.shape[1]):
        mean = np.bincount(series, weights=y[:, j], minlength=len(lengths)) / np.maximum(count, 1)
        std = np.sqrt(np.bincount(series, weights=(y[:, j] - mean[series]) ** 2, minlength=len(lengths)) / np.maximum(count, 1))
        varying = std[(count > 1) & (std > 0)]
        if varying.size:
            out[j] = varying.min()
    return out


def prepare(train, validation=None, config: DataConfig | None = None) -> Dataset:
    """Training and validation windows plus normalisation statistics from the training part.

    Args:
        train: CSV or Parquet path, or DataFrame.
        validation: a separate table with the same columns, or None for a chronological split
            (the last ``val_fraction`` of each series' rows are validation targets; their windows
            may look back into the rows before the split).
        config: columns, window, horizon and missing-value policy.

    Returns:
        A :class:`Dataset` whose windows are cut on the fly from the tables' series.
    """
    if config is None:
        raise DataError("prepare: a DataConfig naming the target column(s) is required")
    check_key_names(config)
    table = load_series(train, config, role="training")
    inputs, targets = table.columns, list(config.target)
    if config.log:
        _check_positive_table(table, len(targets))
    given = config
    chronological = validation is None  # the validation rows are each series' last
    config = _resolved(config, table, split=chronological)
    W, H = config.window, config.horizon
    lengths, first = table.lengths, table.offsets[:-1]
    warnings = (_short_series_horizon_warning(given, config, table) + _short_series_warning(given, config, table, split=chronological)
                + _season_window_warning(given, config, table, split=chronological)
                + _gap_warning(table) + _mixed_step_warning(table) + _unused_columns_warning(given, table) + _precision_warning(table))
    everyone = np.arange(len(table.ids))

    if validation is None:
        n_val = validation_rows(lengths, config.val_fraction, H)
        split = lengths - n_val  # rows [split, n) of a series hold its validation targets
        # A training window's targets end before the split; a validation window's start at or after it.
        train_count = split - W - H + 1
        val_first = np.maximum(split - W, 0)
        val_count = lengths - W - H + 1 - val_first
        short = np.flatnonzero((train_count <= 0) | (val_count <= 0))
        if len(short):
            k = int(short[0])
            n, f = int(lengths[k]), float(config.val_fraction)
            need = split_rows_needed(W, H, f)
            what = f"window {W} + horizon {H} with a {f:g} validation split"
            hint = "use a smaller window or horizon, or give a separate validation table"
            left = max(n - int(validation_rows(n, f, H)), 0)
            if n >= W + 2 * H and left < W + H:  # the rows are there: the fraction takes them
                fits = np.floor(100 * (n - W - H) / n) / 100  # the largest fraction in hundredths leaving them
                while fits > 0.01 and n - int(validation_rows(n, fits, H)) < W + H:  # float rounding in the ceil
                    fits = round(fits - 0.01, 2)
                say = f"the split leaves {left} training rows, fewer than the window and horizon ({W + H}): use "
                short = _too_short(table.label, table.ids[k], n, need, what, hint=f"{say}val_fraction {fits:g} or less, a smaller window or horizon, or give a separate validation table")
                cli = str(_too_short(table.label, table.ids[k], n, need, what, hint=f"{say}--val-fraction {fits:g} or less, a smaller --window or --horizon, or give --validation"))
                raise DataError(str(short), cli=cli)
            raise _too_short(table.label, table.ids[k], n, need, what, hint=hint)
        train_windows = Windows(table, _Starts(first, train_count, everyone), W, H, len(targets))
        val_windows = Windows(table, _Starts(first + val_first, val_count, everyone), W, H, len(targets))
        limit = split
    else:
        vsrc = _open(validation, "validation", keys=index_keys(config))
        _same_columns(vsrc.label, vsrc.columns, table.table_columns)
        _check_long_enough(table, W + H, f"window {W} + horizon {H}")
        vtable = _load(vsrc, validation, config, "validation", table.columns)
        vtable.ids = ids_as_in(vtable.ids, table.ids)
        known = set(table.ids)
        strangers = [i for i in vtable.ids if i not in known] if table.ids != [None] else []
        if strangers:
            warnings.append(f"{vsrc.label}: validation series {strangers[0]!r}" + (f" (and {len(strangers) - 1} more)" if len(strangers) > 1 else "")
                            + " has no rows in the training table: its MASE and skill have no in-sample scale (n/a), and the pooled "
                            "scale weighs it in the scaled error")
        if config.log:
            _check_positive_table(vtable, len(targets))
        _check_long_enough(vtable, W + H, f"window {W} + horizon {H}")
        train_windows = Windows(table, _Starts(first, lengths - W - H + 1, everyone), W, H, len(targets))
        vlen = vtable.lengths
        val_windows = Windows(vtable, _Starts(vtable.offsets[:-1], vlen - W - H + 1, np.arange(len(vtable.ids))), W, H, len(targets))
        limit = None

    in_mean, in_std = _stats(table.values, table.offsets, limit)
    t_idx = [inputs.index(c) for c in targets]  # the first columns
    if config.log:  # the model normalises log(target): its statistics are those of the logs
        in_mean[t_idx], in_std[t_idx] = _stats(np.log(table.values[:, t_idx]), table.offsets, limit)
    target_std = in_std[t_idx].copy()
    series_std = target_std
    if len(table.ids) > 1:
        y = table.values[:, t_idx]
        series_std = _smallest_series_std(np.log(y) if config.log else y, table.offsets, limit, target_std)
    normalizer = Normalizer(in_mean, in_std, in_mean[t_idx].copy(), target_std, series_std)
    return Dataset(config=config, input_columns=inputs, target_columns=targets, train=train_windows, validation=val_windows,
                   normalizer=normalizer, insample=table.targets(len(targets), limit), warnings=warnings)


def _short_series_warning(given: DataConfig, config: DataConfig, table: SeriesTable, *, split: bool) -> list[str]:
    """A sentence when the default window was shrunk for the shortest series of several below
    what the median-length series allows (one short series sets every series' window)."""
    lengths = table.lengths
    if given.window is not None or len(lengths) < 2:
        return []
    k = int(np.argmin(lengths))
    median = int(np.median(lengths))
    typical, _ = default_lengths(DataConfig(**{**config.to_dict(), "window": None}), median, config.season, split=split)
    if config.window >= typical:
        return []
    return [f"{table.label}: series {table.ids[k]!r} ({int(lengths[k])} rows) limits the default window to {config.window} for every "
            f"series (a series of the median length, {median} rows, allows {typical}); give --window, or train without the shortest series"]


def _short_series_horizon_warning(given: DataConfig, config: DataConfig, table: SeriesTable) -> list[str]:
    """A sentence when the default horizon (one season, at most a tenth of the shortest series)
    was shrunk below the season by the shortest series of several (one short series sets every
    series' horizon), with the rows a series needs for the default."""
    lengths, m = table.lengths, int(config.season or 1)
    if given.horizon is not None or len(lengths) < 2 or m <= 1 or config.horizon >= m:
        return []
    k = int(np.argmin(lengths))
    return [f"{table.label}: series {table.ids[k]!r} ({int(lengths[k])} rows) limits the default horizon to {config.horizon} for every "
            f"series (the default, one season of {m}, needs every series to have {10 * m} rows: the horizon is at most a tenth of the "
            f"shortest series); give --horizon, or train without the shortest series"]


def _season_window_warning(given: DataConfig, config: DataConfig, table: SeriesTable, *, split: bool) -> list[str]:
    """A sentence when the default window is shorter than the season (minute data with a daily
    season of 1440, weekly data with 52, on a series too short for a window of a season): the
    model cannot look a season back, so it can neither learn nor ship seasonal naive, which the
    report still compares it with."""
    m, W = int(config.season or 1), int(config.window)
    if given.window is not None or m <= 1 or W >= m:
        return []
    lo, hi = int(table.lengths.min()), max(int(table.lengths.min()), 1) * 2
    probe = DataConfig(**{**config.to_dict(), "window": None, "horizon": given.horizon})
    while default_lengths(probe, hi, m, split=split)[0] < m and hi < 2**40:
        hi *= 2
    while lo < hi:  # the fewest rows whose default window holds a season
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if default_lengths(probe, mid, m, split=split)[0] < m else (lo, mid)
    source = "given" if given.season is not None else "from the time column's step"
    return [f"{table.label}: the default window ({W}) is shorter than the season ({m}, {source}), so the model cannot look a season back "
            f"and cannot learn seasonal naive; give a shorter --season, or more rows (a series of {lo} rows gets a window of a season)"]


def _precision_warning(table: SeriesTable) -> list[str]:
    """Columns that float32 (the table, training and Core ML's inputs) rounds by more than a
    hundredth of their mean change a row: a meter reading near 1.2e8 that rises 1.5 a row is
    kept in steps of 8, and every metric and forecast sees the rounding. Named with what to do."""
    if table.rounding is None or table.change is None or not (table.rounding > 0).any():
        return []  # integers below 2^24, and most measurements, are held as written
    out = []
    for k in np.flatnonzero(table.rounding > 0):
        change = float(table.change[k])  # as written: float32 may have flattened the column to one value
        if np.isfinite(change) and change > 0 and table.rounding[k] > 0.01 * change:
            largest = float(np.nanmax(np.abs(table.values[:, k])))
            out.append(f"{table.label}: column {table.columns[k]!r} holds values near {largest:.4g}, which float32 (the precision of training "
                       f"and of Core ML's inputs) rounds by up to {float(table.rounding[k]):.3g}, against a mean change of {change:.3g} a row: "
                       "subtract an offset from the column (or difference it) before training")
    return out


def _unused_columns_warning(config: DataConfig, table: SeriesTable) -> list[str]:
    """When the features are the table's numeric columns (none given), the columns left out
    (text; numbers written as text, "12,279", among them), named: silence would hide a feature."""
    if config.features is not None:
        return []
    keys = {config.time, config.series_id}
    unused = [c for c in table.table_columns if c not in table.columns and c not in keys]
    if not unused:
        return []
    named = ", ".join(map(repr, unused[:5])) + (f" and {len(unused) - 5} more" if len(unused) > 5 else "")
    return [f"{table.label}: column{'s' if len(unused) > 1 else ''} {named} {'are' if len(unused) > 1 else 'is'} not numeric and not used as "
            "features; to use one, make its cells numbers (--feature NAME names the first cell that is not)"]


def _gap_warning(table: SeriesTable) -> list[str]:
    """A sentence when series step evenly but for missing steps (at least 80% of a series' steps
    are its most common one, the others whole multiples of it): windows then run across the
    gaps as if the rows were consecutive, and no season is inferred from such times."""
    if table.times is None or len(table.times) < 3:
        return []
    dates = np.issubdtype(table.times.dtype, np.datetime64)
    if not dates and not np.issubdtype(np.asarray(table.times).dtype, np.integer):
        return []
    found = {"steps": [0, None], "business": [0, None]}  # kind -> [series with gaps, the first's (id, missing, gaps, after)]
    longest, longest_gapped = int(np.argmax(table.lengths)), False  # the season is read from the longest series
    for k in range(len(table.ids)):
        a, b = int(table.offsets[k]), int(table.offsets[k + 1])
        t = table.calendar_times(a, b) if dates else table.times[a:b]  # the clock the times step evenly on
        business = business_steps(t) if dates else None
        if business is not None:  # weekdays: weekends are no gap, a holiday is one business day missing
            steps, step, kind = business, 1, "business"
        else:
            steps = np.diff(np.asarray(t.view(np.int64) if dates else t, np.int64))
            if len(steps) < 2:
                continue
            values, counts = np.unique(steps, return_counts=True)
            step, kind = int(values[np.argmax(counts)]), "steps"
            if step <= 0 or counts.max() < 0.8 * len(steps):
                continue
        longer = steps[steps > step]
        if not len(longer) or np.any(longer % step):
            continue
        if kind == "steps" and dates and frequency(t) is not None:  # a calendar step pandas names (month ends, say)
            continue
        found[kind][0] += 1
        longest_gapped |= kind == "steps" and k == longest
        if found[kind][1] is None:
            missing = int((longer // step - 1).sum())
            at = a + int(np.flatnonzero(steps > step)[0])
            after = table.time_at(np.array([at]))[0]
            found[kind][1] = (table.ids[k], missing, len(longer), pd.Timestamp(after) if isinstance(after, np.datetime64) else _plain(after))
    out = []
    for kind, (count, first) in found.items():
        if not count:
            continue
        sid, missing, gaps, after = first
        who = f"series {sid!r}" if sid is not None else "the series"
        more = f" (and {count - 1} other series)" if count > 1 else ""
        if kind == "steps":
            season = (", and no season is inferred: add a row per missing step (empty values, then --missing ffill) or give --season"
                      if longest_gapped else ": add a row per missing step (empty values, then --missing ffill)")
            out.append(f"{table.label}: {who}{more} misses {missing} time steps in {gaps} gaps, the first after {after}; windows run across "
                       f"them as if the rows were consecutive{season}")
        else:
            out.append(f"{table.label}: {who}{more} is business-daily (season 5) but misses {missing} business days (holidays, say) in {gaps} gaps, "
                       f"the first after {after}; windows run across them as if the rows were consecutive: add a row per missing business day "
                       "(empty values, then --missing ffill), or leave them out if the series does not run on holidays")
    return out


def _mixed_step_warning(table: SeriesTable) -> list[str]:
    """A sentence when a series steps otherwise than the longest one (daily and hourly series in
    one table): the step and season are the longest series' (:func:`table_step`), for every series."""
    if table.times is None or len(table.ids) < 2 or not np.issubdtype(np.asarray(table.times).dtype, np.datetime64):
        return []
    trained = table_step(table)
    if trained is None:
        return []
    longest = int(np.argmax(table.lengths))
    picked = range(len(table.ids)) if len(table.ids) <= 64 else np.unique(np.linspace(0, len(table.ids) - 1, 64).astype(int))
    for k in picked:
        a, b = int(table.offsets[k]), int(table.offsets[k + 1])
        if k == longest or b - a < 3:
            continue
        times = pd.Series(table.calendar_times(a, b) if table.wall is not None else table.time_at(np.arange(a, b)))
        step = frequency(times) if pd.api.types.is_datetime64_any_dtype(times) else None
        if step is not None and not same_step(step, trained):
            return [f"{table.label}: series {table.ids[k]!r} steps {step_name(step)}, the longest series ({table.ids[longest]!r}) "
                    f"{step_name(trained)}: the step and season are the longest series', for every series; train series of one step together"]
    return []


def _check_long_enough(table: SeriesTable, need: int, what: str) -> None:
    short = np.flatnonzero(table.lengths < need)
    if len(short):
        k = int(short[0])
        raise _too_short(table.label, table.ids[k], int(table.lengths[k]), need, what)


class PredictionWindows(NamedTuple):
    """A table's windows for prediction (:func:`prediction_windows`)."""

    x: WindowArray  # (N, window, F) float32 in raw units, cut when indexed
    keys: pd.DataFrame  # the series id (if any) and the time (or row number) of each window's last input row
    step: str | None  # the table's time step (:func:`table_step`), None without a time column
    label: str  # the table's name in messages


def prediction_windows(frame, config: DataConfig, input_columns: list[str], *, last_only: bool = False) -> PredictionWindows:
    """Every complete window of a table, for prediction (no future values needed).

    Args:
        frame: CSV or Parquet path or DataFrame holding ``input_columns`` (and the time / series columns).
        config: the training data configuration (window, time, series_id, missing policy).
        input_columns: the model's input columns, in order.
        last_only: only the last window of each series.

    Returns:
        A :class:`PredictionWindows`: the windows, their keys, and the table's step and name.
    """
    W = config.window
    table = load_series(frame, config, role="input", columns=list(input_columns))
    if config.log:
        _check_positive_table(table, len([c for c in config.target if c in input_columns]))
    _check_long_enough(table, W, f"window {W}")
    lengths, first = table.lengths, table.offsets[:-1]
    if last_only:
        starts = _Starts(first + lengths - W, np.ones_like(lengths), np.arange(len(table.ids)))
    else:
        starts = _Starts(first, lengths - W + 1, np.arange(len(table.ids)))
    x = WindowArray(starts, table.values, 0, W, len(table.columns))
    keys = {}
    if config.series_id:
        keys[config.series_id] = np.repeat(_objects(table.ids), starts.count)
    keys[config.time or "row"] = table.time_at(starts(np.arange(len(starts))) + W - 1)
    return PredictionWindows(x, pd.DataFrame(keys), table_step(table) if config.time else None, table.label)
