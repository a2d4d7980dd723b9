"""Labelled sequences and texts in, class indices out: reading, checking and splitting tables.

Two layouts for sequences (numbers per time step, one or more channels):

    long   one row per time step: a series id column, an optional time column to sort by, one
           or more channel columns and a label column (the same label on every row of a series).
    wide   one row per sample: a label column and the values t0 ... tn of one channel in the
           other columns, left to right; trailing empty cells make a shorter sequence.

Texts: a text column and a label column, one row per sample.

Labels can be integers, other numbers or strings; they are kept as JSON-native Python values of
one type (``label_type``, recorded with the model so predictions come back typed as the labels
were), classes are sorted (numbers numerically, strings by code point) and a class's index is
its position in that list. A CSV's label column is read as text and each label kept as its
exact string (surrounding spaces trimmed; only an empty cell is missing), so "007" and "7", or
"1.0" and "1", stay two classes; a column whose every label is a canonical integer
(``str(int(s)) == s``: "0", "-3", "42", not "007", "+1" or "1.0") within int64 becomes int. A
DataFrame's (or Parquet file's) labels keep their own dtype: integral numbers int, other
numbers float, anything else str. Bad input raises
:class:`coreml_lstm.errors.DataError` with one line naming the file (or "training data" for a
DataFrame), the column and the row, rows counted as in :func:`coreml_lstm.data.read_table`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import (CSV_SUFFIXES, _first_duplicate, _looks_numeric, _time_values, not_utf8, numeric_column, read_table, require_columns,
                    trailing_blank_lines, typed_keys)
from ..errors import DataError

LAYOUTS = ("long", "wide")
CLI_OPTIONS = {"val_fraction": "--val-fraction", "max_length": "--max-length", "layout": "--layout", "series_id": "--series-id", "time": "--time",
               "channels": "--channel"}


def _option_error(field: str, message: str) -> DataError:
    """An error about a configuration field, spelt as the API spells it and as the CLI does."""
    return DataError(f"{field}: {message}", cli=f"{CLI_OPTIONS.get(field, field)}: {message}")


@dataclass
class _ClassifyData:
    """What sequence and text tables share: the split fraction, the maximum length, (de)serialising."""

    def __post_init__(self):
        if not 0.0 < float(self.val_fraction) < 1.0:
            raise _option_error("val_fraction", f"must be between 0 and 1 (exclusive), got {self.val_fraction!r}")
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 1):
            raise _option_error("max_length", f"must be an integer >= 1, got {self.max_length!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**d)


@dataclass
class SequenceDataConfig(_ClassifyData):
    label: str = "label"
    layout: str = "long"  # long | wide (see the module docstring)
    series_id: str | None = "id"  # long layout: the column naming each sample
    time: str | None = None  # long layout: sort each series by this column (else file order)
    channels: list[str] | None = None  # long layout: None = every numeric column but id, time, label
    max_length: int | None = None  # None: the longest training sequence
    val_fraction: float = 0.2  # stratified split of the training table when no validation table is given

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise _option_error("layout", f"{self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if isinstance(self.channels, str):
            self.channels = [self.channels]
        if self.layout == "long" and not self.series_id:
            raise _option_error("series_id", "the long layout needs a series id column")
        if self.layout == "long":  # one column in two roles: one class per sample, or a time that is the id
            roles = [("series_id", self.series_id), ("time", self.time)]
            for role, column in roles:
                if column is not None and column == self.label:
                    raise _option_error(role, f"column {column!r} is also the label column")
            if self.time is not None and self.time == self.series_id:
                raise _option_error("time", f"column {self.time!r} is also the series id column")
        if self.channels is not None:
            self.channels = list(self.channels)
            dup = _first_duplicate(self.channels)
            if dup is not None:
                raise _option_error("channels", f"column {dup!r} is listed twice")
            for role in ("label", "series_id", "time"):
                if getattr(self, role) is not None and getattr(self, role) in self.channels:
                    raise _option_error("channels", f"column {getattr(self, role)!r} is also the {role.replace('_', ' ')} column")
        super().__post_init__()


@dataclass
class TextDataConfig(_ClassifyData):
    text: str = "text"
    label: str = "label"
    max_length: int | None = None  # in tokens; None: the longest training text
    val_fraction: float = 0.2


@dataclass
class Samples:
    """Variable-length samples with their labels (as read, before class indices)."""

    x: list  # (L_i, C) float32 arrays, or lists of token strings / (L_i,) int arrays for text
    labels: list  # one per sample, original values (None when the table has no label column)
    keys: list  # sample name: series id (long), row number (wide, text)
    rows: list  # first source row of each sample, for error messages
    source: str = "training data"
    columns: list | None = None  # wide layout: the step columns read, in order

    def __len__(self) -> int:
        return len(self.x)

    def lengths(self) -> np.ndarray:
        return np.asarray([len(v) for v in self.x], dtype=np.int64)

    def subset(self, index) -> "Samples":
        return Samples([self.x[i] for i in index], [self.labels[i] for i in index], [self.keys[i] for i in index], [self.rows[i] for i in index], self.source,
                       self.columns)


@dataclass
class Normalizer:
    """Per-channel mean and standard deviation over every real time step of the training part."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64))

    @classmethod
    def fit(cls, sequences: list[np.ndarray]) -> "Normalizer":
        data = np.concatenate(sequences).astype(np.float64)  # (sum L_i, C)
        std = data.std(axis=0)
        return cls(data.mean(axis=0), np.where(std > 0, std, 1.0))


# -- labels ----------------------------------------------------------------------------------


LABEL_TYPES = ("int", "float", "str")  # how a classifier's classes (and so its predictions) are typed
EXACT = 2**53  # integral floats up to here are ints exactly; Core ML class labels are int64 or text


def _plain(value):
    """A value as a JSON-native Python scalar: integral numbers become int, other finite numbers
    float, the rest (text, booleans, infinities) str."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer() and abs(v) <= EXACT:
            return int(v)
        return v if math.isfinite(v) else str(v)
    return str(value).strip() if isinstance(value, str) else str(value)


def label_type(labels) -> str:
    """"int", "float" or "str": the one type every label of ``labels`` has (see :func:`label_values`)."""
    kinds = {type(v) for v in labels}
    if kinds <= {int}:
        return "int"
    if kinds <= {int, float}:
        return "float"
    return "str"


def typed_classes(classes: list, kind: str | None) -> list:
    """Classes read back from JSON (a checkpoint or package metadata) as ``kind``; without a
    recorded kind (older files), as JSON gave them."""
    if kind is None:
        return list(classes)
    if kind not in LABEL_TYPES:
        raise DataError(f"label_type: {kind!r} is not one of {', '.join(LABEL_TYPES)}")
    cast = {"int": int, "float": float, "str": str}[kind]
    return [cast(c) for c in classes]


def label_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """The label column as JSON-native Python values of one type (an object Series); an empty cell
    is an error naming its row.

    A CSV's labels (read as text: ``read_table(..., text=[label])``) are their text, or int when
    every one is a canonical integer (:func:`typed_keys`). Otherwise (a DataFrame's own dtype) integers stay int, numbers with a
    fraction float (integers among them then become float too), anything else str (numbers
    among text then become their text).
    """
    label = frame.attrs["label"]
    raw = frame[column]
    missing = raw.isna() | raw.map(lambda v: isinstance(v, str) and not v.strip())
    if missing.any():
        raise DataError(f"{label}: column {column!r}, row {missing.idxmax()}: missing label")
    if column in frame.attrs.get("text_columns", ()):
        return pd.Series(typed_keys([str(v).strip() for v in raw.tolist()]), index=raw.index, dtype=object)
    values = [_plain(v) for v in raw.tolist()]
    kind = label_type(values)
    if kind == "float":
        values = [float(v) for v in values]
    elif kind == "str":  # "3" and 3 are the same class only if every label reads as text
        values = [str(v) for v in values]
    return pd.Series(values, index=raw.index, dtype=object)  # object: pandas would make ints numpy int64


def class_list(labels: list, source: str, column: str) -> list:
    """Sorted distinct labels (plain Python values); fewer than two is an error."""
    classes = sorted(set(_plain(v) if not isinstance(v, (int, float, str)) else v for v in labels))
    if len(classes) < 2:
        only = repr(classes[0]) if classes else "none"
        raise DataError(f"{source}: column {column!r}: only one class ({only}); a classifier needs at least two")
    return classes


def encode(labels: list, classes: list, source: str, column: str, rows: list) -> np.ndarray:
    """Class indices of ``labels``; a label the classes lack is an error naming its row."""
    index = {c: i for i, c in enumerate(classes)}
    # The same label as text: a CSV's "1" for a DataFrame's (or an older checkpoint's) 1, or its
    # "0.5" for 0.5; an int 7 of an all-integer table for the class "7" of text labels.
    as_text = {str(c): i for i, c in enumerate(classes)}
    out = np.empty(len(labels), dtype=np.int64)
    for k, value in enumerate(labels):
        if value not in index:
            if str(value) in as_text:
                value = classes[as_text[str(value)]]
            else:
                raise DataError(f"{source}: column {column!r}, row {rows[k]}: label {value!r} is not a training class; classes are: {', '.join(map(str, classes))}")
        out[k] = index[value]
    return out


# -- sequences -------------------------------------------------------------------------------


def read_sequences(source, config: SequenceDataConfig, *, role: str = "training", channels: list[str] | None = None, labelled: bool = True,
                   steps: list[str] | None = None) -> tuple[Samples, list[str]]:
    """Samples of a long or wide table, and the channel names.

    Args:
        source: CSV path or DataFrame.
        config: layout and column names.
        role: "training", "validation" or "input" (names a DataFrame in errors).
        channels: the channels a trained model expects (prediction, validation); None to resolve.
        labelled: the label column is required (training, verify) or optional (prediction).
        steps: wide layout: the step columns a trained model reads, by name (other columns are
            ignored); None: every column but the label, left to right (``samples.columns``).
    """
    frame = read_table(source, role=role, text=[config.label] + ([config.series_id] if config.layout == "long" and config.series_id else []))
    if config.layout == "wide":
        return _read_wide(frame, config, labelled, steps), ["value"]
    return _read_long(frame, config, channels, labelled)


def _read_long(frame: pd.DataFrame, config: SequenceDataConfig, channels, labelled: bool) -> tuple[Samples, list[str]]:
    label = frame.attrs["label"]
    keys = [config.series_id] + ([config.time] if config.time else [])
    has_label = config.label in frame.columns
    if channels is None:
        channels = config.channels
    if channels is None:
        require_columns(frame, keys + [config.label])
        skip = set(keys) | {config.label}
        channels = [c for c in frame.columns if c not in skip and _looks_numeric(frame[c])]  # as the forecaster picks its features
        if not channels:
            raise DataError(f"{label}: no numeric channel columns besides {', '.join(repr(c) for c in keys + [config.label])}")
    require_columns(frame, keys + list(channels) + ([config.label] if labelled else []))
    values = {c: numeric_column(frame, c, allow_nan=True) for c in channels}
    for c in channels:
        if values[c].isna().any():
            raise DataError(f"{label}: column {c!r}, row {values[c].isna().idxmax()}: missing value")
    sids = frame[config.series_id]
    if sids.isna().any():
        raise DataError(f"{label}: column {config.series_id!r}, row {sids.isna().idxmax()}: missing series id")
    labels = label_values(frame, config.label) if has_label else None
    if config.time:
        times, _ = _time_values(frame, config.time)  # as the forecaster reads its time column
    # One stable sort by (series, time) for the whole table (file order within a series without
    # a time column); series in order of first appearance, as a groupby with sort=False gives them.
    group, uniques = pd.factorize(sids, sort=False)  # (N,) series codes 0..S-1 in order of first appearance
    by_series = np.argsort(group, kind="stable")  # (N,) file order within each series
    counts = np.bincount(group, minlength=len(uniques))  # (S,)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])  # (S,) each series' first position in by_series
    source_rows = frame.index.to_numpy()
    first_rows = source_rows[by_series[starts]]  # (S,) first source row of each series
    # The first series (by first appearance) with a bad row is named, a repeated time before a
    # second label in the same series, as a series-by-series loop would find them.
    error_at, error = len(uniques), None
    if config.time:
        rank, _ = pd.factorize(times, sort=True)  # (N,) time as dense ranks: equal times equal ranks
        order = np.lexsort((rank, group))  # stable: equal (series, time) keep file order
        same = (group[order[1:]] == group[order[:-1]]) & (rank[order[1:]] == rank[order[:-1]])  # (N-1,) a time seen before in its series
        if same.any():
            at = order[1 + int(np.argmax(same))]
            error_at, error = int(group[at]), f"column {config.time!r}, row {source_rows[at]}: duplicate time in series {_plain(uniques[group[at]])!r}"
    else:
        order = by_series
    if labels is not None:
        codes, label_uniques = pd.factorize(labels.to_numpy(dtype=object), sort=False)  # (N,)
        own = codes[by_series]
        first = np.repeat(own[starts], counts)  # (N,) each row's series' first label, in by_series order
        differ = own != first
        if differ.any():
            p = int(np.argmax(differ))  # the first series with two labels (series are contiguous in by_series), its first odd row
            at, g = by_series[p], int(group[by_series[p]])
            if g < error_at:
                first_label, other_label = label_uniques[own[starts[g]]], label_uniques[codes[at]]
                error_at, error = g, (f"column {config.label!r}, row {source_rows[at]}: series {_plain(uniques[g])!r} has label {other_label!r} here "
                                      f"but {first_label!r} in row {first_rows[g]}")
        ys = [label_uniques[c] for c in own[starts]]
    else:
        ys = [None] * len(uniques)
    if error is not None:
        raise DataError(f"{label}: {error}")
    stacked = np.column_stack([values[c].to_numpy() for c in channels]).astype(np.float32)[order]  # (N, C) series after series
    xs = np.split(stacked, np.cumsum(counts)[:-1])  # views of one array: (L_i, C) each
    names = [_plain(sid) for sid in uniques]
    rows = [int(r) for r in first_rows]
    if config.series_id in frame.attrs.get("text_columns", ()):
        names = typed_keys(names)  # a CSV's ids: "007" and "7" are two samples
    return Samples(xs, ys, names, rows, label), list(channels)


def _read_wide(frame: pd.DataFrame, config: SequenceDataConfig, labelled: bool, steps: list[str] | None = None) -> Samples:
    label = frame.attrs["label"]
    if labelled:
        require_columns(frame, [config.label])
    has_label = config.label in frame.columns
    if steps is not None:  # a trained model's columns, by name: a swapped header or an extra id column is no shift
        require_columns(frame, list(steps))
        steps = list(steps)
    else:
        steps = [c for c in frame.columns if c != config.label]
    if not steps:
        raise DataError(f"{label}: no value columns besides {config.label!r}")
    values = np.column_stack([numeric_column(frame, c, allow_nan=True).to_numpy() for c in steps])  # (N, T)
    labels = label_values(frame, config.label) if has_label else None
    xs = []
    for r, row in enumerate(values):
        present = ~np.isnan(row)
        n = int(present.sum())
        if n == 0:
            raise DataError(f"{label}: row {frame.index[r]}: empty sequence (no values)")
        if not present[:n].all():  # a gap: an empty cell before the last value
            gap = int(np.argmin(present))
            raise DataError(f"{label}: column {steps[gap]!r}, row {frame.index[r]}: missing value inside the sequence (only trailing cells may be empty)")
        xs.append(row[:n, None].astype(np.float32))  # (L, 1)
    ys = list(labels) if labels is not None else [None] * len(xs)
    rows = [int(i) for i in frame.index]
    return Samples(xs, ys, list(rows), rows, label, steps)


def check_lengths(samples: Samples, max_length: int, what: str = "sequence", longest: int | None = None) -> None:
    """A sample longer than the model's maximum length (steps, or tokens for text) is an error
    naming it; at training (``longest``: the longest sample of every split), the error names the
    max_length option that set the bound and the length that takes every sample."""
    unit = "tokens" if what == "text" else "steps"
    for x, key, row in zip(samples.x, samples.keys, samples.rows):
        if len(x) > max_length:
            who = f"{what} {key!r}" if key != row else what
            at = f"{samples.source}: row {row}: {who} has {len(x)} {unit}; the model takes at most {max_length}"
            if longest is None:
                raise DataError(at)
            fix = f"raise it to {longest}, the longest sample's, or leave it out to take the longest"
            raise DataError(f"{at} (max_length: {fix})", cli=f"{at} (--max-length: {fix})")


# -- text ------------------------------------------------------------------------------------


def read_texts(source, config: TextDataConfig, *, role: str = "training", labelled: bool = True) -> Samples:
    """Texts (raw strings) and labels; a blank (empty or whitespace-only) text is an error naming its row.

    A CSV's texts are read as text, so "NA" or "null" stay words rather than becoming missing
    values; its labels as the sequence reader reads a CSV's (see :func:`label_values`), a word
    such as "NA" staying a label. A CSV's blank lines are rows with a blank text (skipped, they
    made every later row number, predict's ``row`` key, differ from the file's); blank lines
    after the last row are ignored.
    """
    frame = read_table(source, role=role, keep_blank_lines=True)  # the checks of a real file (encoding, header, duplicates)
    if isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in CSV_SUFFIXES:
        typed = frame
        try:
            # Parsed as read_table parses (skipinitialspace: `pos, "good, great"` is one quoted
            # field; blank lines kept), only every cell kept as its text; spaces inside quotes stay.
            raw = pd.read_csv(source, encoding="utf-8-sig", dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False)
        except UnicodeDecodeError:
            raise not_utf8(Path(source), frame.attrs["label"]) from None
        raw = raw.iloc[: len(raw) - trailing_blank_lines(Path(source))]
        raw.columns = [str(c).strip() for c in raw.columns]
        if len(raw) != len(typed):  # the same parser read both: never expected
            raise DataError(f"{typed.attrs['label']}: read {len(raw)} rows of text for {len(typed)} rows of the table")
        frame = raw.set_axis(typed.index).copy()
        if config.label in frame.columns:
            frame[config.label] = frame[config.label].where(frame[config.label].str.strip() != "")
            frame.attrs["text_columns"] = [config.label]
        frame.attrs["label"] = str(source)
    label = frame.attrs["label"]
    require_columns(frame, [config.text] + ([config.label] if labelled else []))
    texts = []
    for row, value in frame[config.text].items():
        if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
            raise DataError(f"{label}: column {config.text!r}, row {row}: empty text")
        texts.append(str(value))
    has_label = config.label in frame.columns
    labels = list(label_values(frame, config.label)) if has_label else [None] * len(texts)
    rows = [int(i) for i in frame.index]
    return Samples(texts, labels, list(rows), rows, label)


# -- splits ----------------------------------------------------------------------------------


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: ``fraction`` of each class (rounded, at least one when the class
    has two or more samples) goes to validation, chosen by a seeded shuffle; order is kept."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) < 2:
            continue
        k = min(max(1, int(round(len(members) * fraction))), len(members) - 1)
        val.extend(rng.permutation(members)[:k].tolist())
    val = np.sort(np.asarray(val, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def pad(sequences: list[np.ndarray], dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded batch (N, L_max, ...) with zeros, and the lengths (N,)."""
    lengths = np.asarray([len(s) for s in sequences], dtype=np.int64)
    shape = (len(sequences), int(lengths.max(initial=1))) + tuple(np.shape(sequences[0])[1:])
    out = np.zeros(shape, dtype=dtype)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out, lengths
