"""Property-based tests of the classifiers' table readers: long and wide sequences, texts, and
the prediction path (tables without labels, channels fixed by a trained model).

The reader either gives finite samples whose labels are JSON-native values of one type (so a
checkpoint can be saved), or raises the toolkit's one-line error naming the file and the column
or row. HYPOTHESIS_PROFILE=long runs 10,000 examples per property.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from coreml_lstm.classify.data import (Normalizer, SequenceDataConfig, TextDataConfig, class_list, encode, label_type, read_sequences,
                                       read_texts)
from coreml_lstm.classify.tokenizer import Tokenizer
from coreml_lstm.data import canonical_int, typed_keys
from coreml_lstm.errors import CoreMLLSTMError

from .strategies import Table, cell, check_error, dates, distinct_names, examples, files, finite, hostility, kind_of, names, role_name, text_cells

LABEL_KINDS = {
    "int": st.sampled_from(["1", "2", "3", "-1", "0", "10"]),
    "float": st.sampled_from(["0.5", "1.5", "2.25", "-0.0", "1e-3"]),
    "str": st.sampled_from(["up", "down", "Flat", " up", "日本", "a,b", "1"]),
    "mixed": st.sampled_from(["1", "2.5", "x", "True", "inf", "1e400", "nan"]),
}
HOSTILE_LABELS = st.sampled_from(["", " ", "NA", "nan", "inf", "-inf", "1e308", "9" * 30, "True", "None"])


@st.composite
def labels_of(draw, percent: int):
    kind = draw(st.sampled_from([k for k in LABEL_KINDS if percent or k != "mixed"]))
    usual = LABEL_KINDS[kind]
    return lambda: cell(draw, percent, HOSTILE_LABELS, usual)


@st.composite
def long_tables(draw, clean: bool = False):
    """series_id, optional time, one or two channels, label: one row per step, rows maybe shuffled
    (``clean``: ordinary values, distinct names and ids, one label per series, UTF-8)."""
    percent = 0 if clean else draw(hostility)
    label = draw(labels_of(percent))
    kinds = draw(st.permutations(["id", "label"] + ["channel"] * draw(st.integers(1, 2)) + (["time"] if draw(st.booleans()) else [])
                                 + (["text"] if draw(st.integers(0, 4)) == 0 else [])))
    header = distinct_names(len(kinds), draw) if clean else [draw(names) for _ in kinds]
    if not clean and draw(st.integers(0, 4)):
        header = [f"{h}{j}" if h.strip() in [g.strip() for g in header[:j]] or not h.strip() else h for j, h in enumerate(header)]
    time_kind = draw(st.sampled_from(["int", "date"] if clean else ["int", "date", "messy"]))
    rows = []
    for s in range(draw(st.integers(4, 8) if clean else st.integers(0, 6))):
        sid = cell(draw, percent, st.sampled_from(["", " s", "1.0"]), st.sampled_from([f"s{s}", str(s), f"{s}.5"]))
        y = label()
        n = draw(st.integers(1, 8))
        stamps = {"int": [str(t) for t in range(n)], "date": dates(n, draw),
                  "messy": [cell(draw, 30, st.sampled_from(["", "x", "0", "2020-13-01"]), st.integers(0, n).map(str)) for _ in range(n)]}[time_kind]
        for t in range(n):
            row = []
            for k in kinds:
                row.append({"id": lambda: sid, "label": lambda: y if clean or draw(st.integers(0, 300)) else label(), "time": lambda: stamps[t],
                            "channel": lambda: cell(draw, percent), "text": lambda: draw(text_cells)}[k]())
            rows.append(row)
    if draw(st.booleans()):
        rows = draw(st.permutations(rows))
    table = Table(header, rows)
    table.roles = {"label": role_name(header, kinds.index("label"), draw), "series_id": role_name(header, kinds.index("id"), draw),
                   "time": role_name(header, kinds.index("time"), draw) if "time" in kinds else None}
    if draw(st.integers(0, 3)) == 0:
        table.roles["channels"] = [role_name(header, j, draw) for j, k in enumerate(kinds) if k == "channel"]
    return draw(files(table, clean))


@st.composite
def wide_tables(draw, clean: bool = False):
    """label, t0 ... tk: one row per sample; trailing empty cells make shorter sequences."""
    percent = 0 if clean else draw(hostility)
    label = draw(labels_of(percent))
    steps = draw(st.integers(2, 6) if clean else st.integers(0, 6))
    at = draw(st.integers(0, steps))
    header = [f"t{i}" for i in range(steps)]
    label_name = draw(st.sampled_from(["label", "class", " label", "ラベル"]))
    header.insert(at, label_name)
    if not clean and draw(st.integers(0, 9)) == 0:
        header[draw(st.integers(0, len(header) - 1))] = draw(names)
    rows = []
    for _ in range(draw(st.integers(4, 10) if clean else st.integers(0, 10))):
        n = draw(st.integers(0, steps)) if not clean and draw(st.integers(0, 9)) == 0 else steps - draw(st.integers(0, min(steps - 1, 2) if clean else min(steps, 2)))
        values = [cell(draw, percent) for _ in range(n)] + [""] * (steps - n)
        values.insert(at, label())
        rows.append(values)
    table = Table(header, rows)
    table.roles = {"label": label_name.strip()}
    return draw(files(table, clean))


@st.composite
def text_tables(draw, clean: bool = False):
    percent = 0 if clean else draw(hostility)
    label = draw(labels_of(percent))
    kinds = draw(st.permutations(["text", "label"] + (["other"] if draw(st.booleans()) else [])))
    header = draw(st.permutations(["text", "label", "message", "note", "é"]))[: len(kinds)]
    if draw(st.integers(0, 4)) == 0:
        header[draw(st.integers(0, len(header) - 1))] = draw(names)
    texts = st.one_of(st.text(min_size=1, max_size=30).filter(str.strip), st.sampled_from(["NA", "null", "Don't stop", "ÉCOLE école", "İstanbul", "a\nb", "😀 ok", "1 2 3"]))
    if clean:
        texts = st.lists(st.sampled_from(["good", "bad", "très", "bien", "don't", "日本", "ok", "no"]), min_size=1, max_size=5).map(" ".join)
    empty = st.sampled_from(["", " ", "\t", "...", "😀"])  # blank, or no word tokens
    rows = [[cell(draw, percent, empty, texts) if k == "text" else label() if k == "label" else draw(text_cells) for k in kinds]
            for _ in range(draw(st.integers(4, 12) if clean else st.integers(0, 12)))]
    table = Table(header, rows)
    table.roles = {"text": role_name(header, kinds.index("text"), draw), "label": role_name(header, kinds.index("label"), draw)}
    return draw(files(table, clean))


def check_samples(samples, labelled: bool) -> None:
    """Finite (L, C) float32 sequences of at least one step; labels JSON-native, of one type."""
    assert len(samples.x) == len(samples.labels) == len(samples.keys) == len(samples.rows) > 0
    for x in samples.x:
        x = np.asarray(x)
        assert x.dtype == np.float32 and x.ndim == 2 and len(x) >= 1 and finite(x)
    if labelled:
        classes = class_list(samples.labels, samples.source, "label")
        json.dumps({"classes": classes, "label_type": label_type(classes)}, allow_nan=False)  # what a checkpoint saves
        assert all(type(c) is type(classes[0]) for c in classes)
        y = encode(samples.labels, classes, samples.source, "label", samples.rows)
        assert y.min() >= 0 and y.max() < len(classes)
        n = Normalizer.fit(samples.x)
        assert finite(n.mean, n.std) and (n.std > 0).all()


def _sequence_config(table, layout):
    roles = table.roles
    try:
        if layout == "wide":
            return SequenceDataConfig(layout="wide", label=roles["label"])
        return SequenceDataConfig(layout="long", label=roles["label"], series_id=roles["series_id"], time=roles["time"], channels=roles.get("channels"))
    except CoreMLLSTMError:  # the drawn roles make no config (an empty series id name): not a table the reader sees
        assume(False)


def _read_then_predict(table, layout):
    config = _sequence_config(table, layout)
    with tempfile.TemporaryDirectory() as tmp:
        source = table.write(tmp)
        if source is None:
            return
        try:
            samples, channels = read_sequences(source, config)
            check_samples(samples, labelled=True)
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
            check_error(exc, source)
            return
        # The prediction path: the same table, labels optional, the trained channels.
        try:
            again, _ = read_sequences(source, config, role="input", channels=channels, labelled=False)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, source)
            return
        check_samples(again, labelled=False)
        assert [a.tobytes() for a in again.x] == [a.tobytes() for a in samples.x]
        event(f"ok: {label_type(class_list(samples.labels, samples.source, 'label'))} labels")


@settings(max_examples=examples(50))
@given(table=long_tables())
def test_long_sequences_read_finite_with_typed_labels_or_one_line_error(table):
    _read_then_predict(table, "long")


@settings(max_examples=examples(50))
@given(table=wide_tables())
def test_wide_sequences_read_finite_with_typed_labels_or_one_line_error(table):
    _read_then_predict(table, "wide")


@settings(max_examples=examples(40))
@given(table=text_tables(), level=st.sampled_from(["word", "char"]))
def test_texts_read_and_tokenize_or_one_line_error(table, level):
    config = TextDataConfig(text=table.roles["text"], label=table.roles["label"])
    with tempfile.TemporaryDirectory() as tmp:
        source = table.write(tmp)
        if source is None:
            return
        try:
            samples = read_texts(source, config)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, source)
            return
        assert samples.x and all(isinstance(t, str) and t.strip() for t in samples.x)
        classes = class_list(samples.labels, samples.source, "label") if len(set(samples.labels)) > 1 else None
        if classes:
            json.dumps(classes, allow_nan=False)
        tok = Tokenizer(level=level).fit(samples.x)
        for text in samples.x:
            ids = tok.encode(text)
            assert all(isinstance(i, int) and 0 < i < tok.vocab_size for i in ids)
        try:
            again = read_texts(source, config, role="input", labelled=False)
        except Exception as exc:  # noqa: BLE001
            check_error(exc, source)
            return
        assert again.x == samples.x
        event("ok: texts tokenized")


# -- the long reader against a row-by-row reference ------------------------------------------


@st.composite
def long_cases(draw):
    """(rows, channels, has_time, csv): series of random lengths, rows shuffled, one to three
    channels, an optional time column; now and then a repeated time, a NaN, a missing time or a
    second label in one series."""
    channels = [f"c{j}" for j in range(draw(st.integers(1, 3)))]
    has_time = draw(st.booleans())
    ids = draw(st.lists(st.sampled_from(["s0", "s1", "7", "007", "x y", "8", "-2", "日本"]), min_size=1, max_size=5, unique=True))
    csv = draw(st.booleans())
    if not csv and all(canonical_int(i) for i in ids):
        ids = [int(i) for i in ids]  # a DataFrame's integer ids
    kinds = draw(st.sampled_from(["word", "int"]))
    rows = []
    for sid in ids:
        n = draw(st.integers(1, 6))
        times = draw(st.permutations(range(0, 3 * n, 3)))
        y = draw(st.sampled_from(["up", "down", "Flat"] if kinds == "word" else [1, 2, -3]))
        for t in times:
            rows.append({"id": sid, "t": float(t), **{c: draw(st.integers(-40, 40)) / 4 for c in channels}, "label": y})
    rows = draw(st.permutations(rows))
    for _ in range(draw(st.integers(0, 2))):  # the error cases
        row = rows[draw(st.integers(0, len(rows) - 1))]
        what = draw(st.sampled_from(["time", "time", "nan", "missing time", "label", "label"]))
        others = [r["t"] for r in rows if r["id"] == row["id"] and r is not row]
        if what == "time" and has_time and others:
            row["t"] = draw(st.sampled_from(others))
        elif what == "nan":
            row[draw(st.sampled_from(channels))] = float("nan")
        elif what == "missing time" and has_time:
            row["t"] = float("nan")
        elif what == "label":
            row["label"] = draw(st.sampled_from(["up", "down", "Flat"] if kinds == "word" else [1, 2, -3]))
    return rows, channels, has_time, csv


def _reference_long(rows, channels, has_time, source, csv):
    """What the long reader gives, row by row in plain Python: (keys, labels, first rows, arrays)
    or the one-line error (the checks in the reader's order: channels, labels, times, then series
    by first appearance, a repeated time before a second label)."""
    for c in channels:
        for r, row in enumerate(rows, 1):
            if np.isnan(row[c]):
                return f"{source}: column {c!r}, row {r}: missing value"
    if has_time:
        for r, row in enumerate(rows, 1):
            if np.isnan(row["t"]):
                return f"{source}: column 't', row {r}: missing time"
    series = {}
    for r, row in enumerate(rows, 1):
        series.setdefault(row["id"], []).append(r)
    keys = typed_keys(list(series)) if csv else list(series)
    labels, firsts, arrays = [], [], []
    for sid, members in series.items():
        ordered = sorted(members, key=lambda r: rows[r - 1]["t"]) if has_time else members  # sorted() is stable
        for a, b in zip(ordered, ordered[1:]):
            if has_time and rows[a - 1]["t"] == rows[b - 1]["t"]:
                return f"{source}: column 't', row {b}: duplicate time in series {sid!r}"
        first = rows[members[0] - 1]["label"]
        for r in members:
            if rows[r - 1]["label"] != first:
                return f"{source}: column 'label', row {r}: series {sid!r} has label {rows[r - 1]['label']!r} here but {first!r} in row {members[0]}"
        labels.append(first)
        firsts.append(members[0])
        arrays.append(np.asarray([[rows[r - 1][c] for c in channels] for r in ordered], np.float32))
    return keys, labels, firsts, arrays


@settings(max_examples=examples(60), deadline=None)
@given(case=long_cases())
def test_long_reader_matches_a_row_by_row_reference(case):
    rows, channels, has_time, csv = case
    frame = pd.DataFrame(rows)[["id"] + (["t"] if has_time else []) + channels + ["label"]]
    config = SequenceDataConfig(series_id="id", time="t" if has_time else None)
    with tempfile.TemporaryDirectory() as tmp:
        source = frame
        if csv:
            source = Path(tmp) / "long.csv"
            frame.to_csv(source, index=False)
        want = _reference_long(rows, channels, has_time, source if csv else "training data", csv)
        try:
            samples, got_channels = read_sequences(source, config)
        except CoreMLLSTMError as exc:
            assert str(exc) == want
            event("error: " + kind_of(str(exc)))
            return
    assert not isinstance(want, str), f"read, but the reference says {want!r}"
    keys, labels, firsts, arrays = want
    assert got_channels == channels
    assert samples.keys == keys and samples.labels == labels and samples.rows == firsts
    assert [type(k) for k in samples.keys] == [type(k) for k in keys] and [type(v) for v in samples.labels] == [type(v) for v in labels]
    assert len(samples.x) == len(arrays)
    for x, a in zip(samples.x, arrays):
        assert x.dtype == np.float32 and x.shape == a.shape and x.tobytes() == a.tobytes()
    event("ok")


@settings(max_examples=examples(40), deadline=None)
@given(lines=st.lists(st.one_of(st.sampled_from(["", " ", "  \t"]), st.sampled_from(["good", "bad one", "très bien", "ok"])), min_size=1, max_size=8),
       trailing=st.lists(st.sampled_from(["", " ", "\t"]), max_size=3), two_columns=st.booleans(), line_end=st.sampled_from(["\n", "\r\n", "\r"]))
def test_text_rows_are_the_files_data_rows(lines, trailing, two_columns, line_end):
    """A blank or whitespace-only line is a blank text named by the file's data row (blank lines
    were skipped and the rows after them renumbered); blank lines after the last row are none."""
    rows = [f"{t},{('a', 'b')[i % 2]}" if two_columns and t.strip() else t for i, t in enumerate(lines)]
    blank = [r for r, t in enumerate(lines, 1) if not t.strip()]
    last = max((r for r, t in enumerate(lines, 1) if t.strip()), default=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(line_end.join(["text,label" if two_columns else "text"] + rows + trailing) + line_end, encoding="utf-8")
        try:
            samples = read_texts(path, TextDataConfig(), labelled=False)
        except CoreMLLSTMError as exc:
            want = f"{path}: has a header but no data rows" if last == 0 else f"{path}: column 'text', row {blank[0]}: empty text"
            assert str(exc) == want
            return
    assert not [r for r in blank if r < last]
    assert samples.keys == samples.rows == list(range(1, last + 1)) and samples.x == [t for t in lines if t.strip()]
