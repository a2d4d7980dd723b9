"""Hypothesis strategies for hostile tables, and the property every reader keeps.

A table is drawn as a header and rows of cell strings, then written as a real file would be: a
CSV in some encoding with some line end (or a Parquet file, or a DataFrame). Column names may be
unicode, padded with spaces, empty or duplicated; cells may be empty, text, infinite, beyond
float32, negative zero or ordinary numbers.

The property (:func:`check_error`): a reader either succeeds or raises the toolkit's own error,
whose message is one line, starts with the file it read and names a column, a row (a CSV line),
a series, or a whole-file problem. Anything else (a traceback from pandas, pyarrow, numpy, json)
fails the test.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import event
from hypothesis.control import currently_in_test_context
from hypothesis import strategies as st

from coreml_lstm.errors import CoreMLLSTMError

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def examples(ci: int, long: int = 10_000) -> int:
    """Examples per property: ``ci`` in the default profile, ``long`` (10,000) with
    HYPOTHESIS_PROFILE=long; HYPOTHESIS_EXAMPLES=n sets any other count."""
    if os.environ.get("HYPOTHESIS_EXAMPLES"):
        return int(os.environ["HYPOTHESIS_EXAMPLES"])
    return long if PROFILE == "long" else ci


# -- cells -----------------------------------------------------------------------------------

SPECIAL_NUMBERS = ["", "", "inf", "-inf", "Infinity", "nan", "NaN", "NA", "null", "-0.0", "-0", "0", "1e308", "-1e308", "3.4e38",
                   "3.5e38", "1e38", "1e19", "-1e20", "1e-45", "5e-324", "1e+05", " 2.5", "2.5 ", "1,5", "0x10", "1_000", "TRUE", "false",
                   "١٢", "½", "9" * 40]
WORDS = ["a", "b", "x y", "é", "日本", "💥", '"quoted"', "com,ma", "line\nbreak", " ", "-", "?", "None", "#"]

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.3f}"),
    st.integers(-10**6, 10**6).map(str),
    st.integers(-(2**70), 2**70).map(str),
)
ordinary = st.one_of(st.integers(-50, 50).map(lambda v: repr(float(v))), st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: f"{v:.4g}"),
                     st.integers(1, 9).map(str))
number_cells = st.one_of(numbers, st.sampled_from(SPECIAL_NUMBERS))
hostility = st.sampled_from([0, 0, 0, 0, 1, 5, 20])  # percent of cells drawn from the hostile kinds


def cell(draw, percent: int, hostile=number_cells, usual=ordinary) -> str:
    return draw(hostile) if percent and draw(st.integers(0, 99)) < percent else draw(usual)
text_cells = st.one_of(st.sampled_from(WORDS), st.text(max_size=6), numbers, st.just(""))
names = st.one_of(
    st.sampled_from(["y", "x", "t", "id", "label", "text", "value", " y", "y ", "Y", "ünï", "名前", "a b", "", "Unnamed: 0", "#", "1"]),
    st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), min_size=0, max_size=6),
)


def dates(n: int, draw) -> list[str]:
    start = draw(st.sampled_from(["2020-01-01", "1999-12-31", "2021-03-27 23:00", "1677-09-22"]))
    freq = draw(st.sampled_from(["D", "h", "MS", "W"]))
    try:
        stamps = pd.date_range(start, periods=n, freq=freq)
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
        stamps = pd.date_range("2020-01-01", periods=n, freq="D")
    return [str(s) for s in stamps]


# -- files -----------------------------------------------------------------------------------

ENCODINGS = ["utf-8"] * 12 + ["utf-8-sig"] * 3 + ["latin-1", "cp1252", "utf-16"]
LINE_ENDS = ["\n", "\r\n", "\r"]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    encoding: str = "utf-8"
    line_end: str = "\n"
    fmt: str = "csv"  # csv | parquet | frame
    roles: dict = field(default_factory=dict)  # role -> column name as the config names it

    def text(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator=self.line_end)
        w.writerow(self.header)
        w.writerows(self.rows)
        return buf.getvalue()

    def frame(self) -> pd.DataFrame:
        """The cells as pandas would hold them: a column of numbers as numbers, else text (None for empty)."""
        columns = {}
        for j, name in enumerate(self.header):
            cells = [r[j] if j < len(r) else "" for r in self.rows]
            numeric = pd.to_numeric(pd.Series(cells, dtype=object).replace("", None), errors="coerce")
            if all(c == "" or not np.isnan(v) for c, v in zip(cells, numeric)):
                columns[j] = numeric.astype(np.float64)
            else:
                columns[j] = pd.Series([c if c != "" else None for c in cells], dtype=object)
        frame = pd.DataFrame(columns)
        frame.columns = list(self.header)
        return frame

    def write(self, directory: Path, name: str = "table"):
        """The table as the reader's input: a path (CSV, Parquet) or a DataFrame."""
        if self.fmt == "frame":
            return self.frame()
        if self.fmt == "parquet":
            path = Path(directory) / f"{name}.parquet"
            frame = self.frame()
            if len(set(frame.columns)) != len(frame.columns):
                return None  # Parquet cannot hold duplicate names; the CSV case covers them
            frame.columns = [str(c) for c in frame.columns]
            frame.to_parquet(path)
            return path
        path = Path(directory) / f"{name}.csv"
        path.write_bytes(self.text().encode(self.encoding, errors="replace"))
        return path


@st.composite
def files(draw, table: Table, clean: bool = False) -> Table:
    """The same table in a random file format, encoding and line end (``clean``: UTF-8 only)."""
    table.fmt = draw(st.sampled_from(["csv", "csv", "csv", "parquet", "frame"]))
    table.encoding = draw(st.sampled_from(["utf-8", "utf-8-sig"] if clean else ENCODINGS))
    table.line_end = draw(st.sampled_from(LINE_ENDS))
    return table


def distinct_names(n: int, draw) -> list[str]:
    """``n`` different column names, unicode and spaces inside them included (the clean tables' header)."""
    return [f"{draw(st.sampled_from(['c', 'é', '名', 'a b', 'X']))}{j}" for j in range(n)]


def role_name(header: list[str], j: int, draw) -> str:
    """How the config names column ``j``: as the reader sees it (stripped), rarely as written."""
    return header[j] if draw(st.integers(0, 9)) == 0 else header[j].strip()


# -- the property ----------------------------------------------------------------------------

WHOLE_FILE = ("the file is empty", "not a CSV file", "no data rows", "has no rows", "not a Parquet file", "unreadable Parquet file",
              "malformed CSV", "duplicate column", "missing column", "no channel columns", "no value columns", "only one class",
              "columns differ from the training data", "is not one of", "too large to train on", "training diverged")
WHERE = ("column ", "row ", "line ", "series ", "the table has")


def check_error(exc: BaseException, source) -> str:
    """Fail unless ``exc`` is the toolkit's own error: one line naming the source and what is wrong."""
    assert isinstance(exc, CoreMLLSTMError), f"not the toolkit's error: {type(exc).__name__}: {exc}"
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    label = str(source) if isinstance(source, (str, Path)) else None
    if label is not None:
        assert message.startswith(label + ": "), f"does not start with the file {label!r}: {message!r}"
    else:
        assert message.split(":")[0].endswith(" data"), f"does not name the table: {message!r}"
    assert any(w in message for w in WHERE + WHOLE_FILE), f"names no column, row or file-level problem: {message!r}"
    note("error: " + kind_of(message))
    return message


def note(text: str) -> None:
    """A hypothesis event (shown by --hypothesis-show-statistics), outside a test a no-op."""
    if currently_in_test_context():
        event(text)


def kind_of(message: str) -> str:
    """The kind of an error message, its names and numbers blanked (for hypothesis' statistics)."""
    text = message.split(": ", 1)[1] if ": " in message else message
    text = text.split("; columns are:")[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"|-?\d[\d.e+-]*", "_", text)
    return re.sub(r"(column _, |row _: |line _: )", "", text)[:60]


def finite(*arrays) -> bool:
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)
