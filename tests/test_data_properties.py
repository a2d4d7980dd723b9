"""Property-based tests of the forecaster's table readers (training and prediction paths).

Random tables (see tests/strategies.py): the reader either gives windows and statistics that
are all finite, or raises the toolkit's one-line error naming the file and the column or row.
HYPOTHESIS_PROFILE=long runs 10,000 examples per property.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from coreml_lstm.data import DataConfig, load_series, prediction_windows, prepare
from coreml_lstm.errors import CoreMLLSTMError

from .strategies import Table, cell, check_error, dates, distinct_names, examples, files, finite, hostility, names, role_name, text_cells


@st.composite
def forecast_tables(draw, clean: bool = False):
    """A time-series table: a time column (numbers, dates, text or none), an optional series id,
    one or two targets, maybe features and text columns; cells from every kind (``clean``: ordinary
    numbers, distinct names, UTF-8, enough rows: a table that should train)."""
    n_rows = draw(st.integers(12, 40) if clean else st.integers(0, 40))
    percent = 0 if clean else draw(hostility)
    kinds = ["target"] * draw(st.integers(1, 2)) + draw(st.lists(st.sampled_from(["feature", "feature", "feature", "text"]), max_size=2))
    time_kind = draw(st.sampled_from(["int", "date", "float", None] if clean else ["int", "int", "date", "float", "messy", None]))
    if time_kind:
        kinds.append("time")
    series = draw(st.sampled_from([None, None, "text", "int"]))
    if series:
        kinds.append("series")
    kinds = draw(st.permutations(kinds))
    header = distinct_names(len(kinds), draw) if clean else [draw(names) for _ in kinds]
    if not clean and draw(st.integers(0, 4)):  # mostly distinct names, so that the reader gets past the header
        header = [f"{h}{j}" if h.strip() in [g.strip() for g in header[:j]] or not h.strip() else h for j, h in enumerate(header)]
    ids = [cell(draw, percent, st.sampled_from(["", " a", "a ", "1", "1.0", "é"]), st.sampled_from(["a", "b", "c"] if series == "text" else ["1", "2", "10"]))
           for _ in range(max(n_rows, 1))]
    times = {"int": [str(i) for i in draw(st.permutations(range(n_rows)))] if n_rows else [],
             "float": [repr(i * 0.5) for i in range(n_rows)],
             "date": dates(n_rows, draw) if n_rows else [],
             "messy": [cell(draw, max(percent, 10), st.sampled_from(["", "2020-01-01", "yesterday", "1", "1e400", "2020-02-30", "99999-01-01", "NaT"]),
                            st.integers(0, 3 * n_rows).map(str)) for _ in range(n_rows)],
             None: []}[time_kind]
    rows = []
    for i in range(n_rows):
        row = []
        for kind in kinds:
            if kind == "time":
                row.append(times[i])
            elif kind == "series":
                row.append(ids[i])
            elif kind == "text":
                row.append(draw(text_cells))
            else:
                row.append(cell(draw, percent))
        rows.append(row)
    table = Table(header, rows)
    roles = {"targets": [role_name(header, j, draw) for j, k in enumerate(kinds) if k == "target"]}
    if time_kind:
        roles["time"] = role_name(header, kinds.index("time"), draw)
    if series:
        roles["series_id"] = role_name(header, kinds.index("series"), draw)
    if draw(st.integers(0, 3)) == 0:  # features named (a text column among them now and then), else inferred
        roles["features"] = [role_name(header, j, draw) for j, k in enumerate(kinds) if k == "feature" or (k == "text" and draw(st.integers(0, 3)) == 0)]
    table.roles = roles
    return draw(files(table, clean))


def config_of(table: Table, draw) -> DataConfig:
    roles = table.roles
    try:
        return DataConfig(target=roles["targets"], features=roles.get("features"), time=roles.get("time"), series_id=roles.get("series_id"),
                          window=draw(st.sampled_from([None, 1, 2, 3, 5])), horizon=draw(st.sampled_from([None, 1, 2])),
                          missing=draw(st.sampled_from(["error", "drop", "ffill"])), log=draw(st.integers(0, 9)) == 0,
                          val_fraction=draw(st.sampled_from([0.2, 0.5])))
    except CoreMLLSTMError:  # the drawn roles clash (a name listed twice): not a table the reader sees
        assume(False)


@settings(max_examples=examples(60))
@given(table=forecast_tables(), data=st.data())
def test_prepare_gives_finite_windows_or_one_line_error(table, data):
    config = config_of(table, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        source = table.write(tmp)
        assume(source is not None)
        separate = data.draw(st.booleans())
        try:
            ds = prepare(source, source if separate else None, config)
        except Exception as exc:  # noqa: BLE001 - the property is about which exceptions escape
            check_error(exc, source)
            return
        n = ds.normalizer
        assert finite(n.input_mean, n.input_std, n.target_mean, n.target_std) and (n.input_std > 0).all()
        assert len(ds.train) > 0 and len(ds.validation) > 0
        assert finite(ds.train.x, ds.train.y, ds.validation.x, ds.validation.y)
        if config.log:
            assert (np.asarray(ds.train.y) > 0).all()
        # The prediction path reads the same table with the trained model's columns.
        try:
            x, keys, _, _ = prediction_windows(source, ds.config, ds.input_columns, last_only=data.draw(st.booleans()))
        except Exception as exc:  # noqa: BLE001
            check_error(exc, source)
            return
        assert len(x) == len(keys) > 0 and finite(x)
        event("ok: windows for training and prediction")


@settings(max_examples=examples(40))
@given(table=forecast_tables(), data=st.data())
def test_reading_a_table_twice_gives_the_same_series(table, data):
    """Block by block (pyarrow) or whole (pandas), the reader decides the same way on the same bytes."""
    config = config_of(table, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        source = table.write(tmp)
        assume(source is not None)
        outcomes = []
        for _ in range(2):
            try:
                t = load_series(source, config)
                outcomes.append(("ok", t.columns, np.asarray(t.values).tobytes(), t.offsets.tolist(), t.ids))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(("error", check_error(exc, source)))
        assert outcomes[0] == outcomes[1]


def test_the_property_catches_a_foreign_exception(tmp_path):
    """check_error fails on anything but the toolkit's one-line error (the property can fail)."""
    source = tmp_path / "t.csv"
    with pytest.raises(AssertionError, match="not the toolkit's error"):
        check_error(ValueError("could not convert"), source)
    from coreml_lstm.errors import DataError

    with pytest.raises(AssertionError, match="not one line"):
        check_error(DataError(f"{source}: column 'y'\nrow 2"), source)
    with pytest.raises(AssertionError, match="does not start with the file"):
        check_error(DataError("column 'y', row 2: bad"), source)
    assert check_error(DataError(f"{source}: column 'y', row 2: bad"), source)


@settings(max_examples=examples(60), deadline=None)
@given(start=st.dates(min_value=__import__("datetime").date(1990, 1, 1), max_value=__import__("datetime").date(2030, 1, 1)),
       n=st.integers(3, 60), freq=st.sampled_from(["D", "MS", "W-MON"]),
       fmt=st.sampled_from(["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%d-%m-%Y %H:%M"]))
def test_a_text_date_column_is_read_in_one_format(tmp_path_factory, start, n, freq, fmt):
    """Cell by cell, 02/01/2020 and 13/01/2020 are read month-first and day-first; the column is
    read in one format, so a table's dates are its own, or, where both orders give an evenly
    spaced series, the month-first reading (pandas' default)."""
    import pandas as pd

    from coreml_lstm.data import parse_dates
    from coreml_lstm.season import frequency

    truth = pd.date_range(pd.Timestamp(start), periods=n, freq=freq)
    text = pd.Series(truth.strftime(fmt))
    got, order = parse_dates(text)
    if not pd.DatetimeIndex(got).equals(truth):
        # Only a day-first column that reads as an evenly spaced series both ways may come out month-first.
        assert fmt.startswith("%d") and order == "month-first", (order, got.tolist()[:3])
        swapped = "%m" + fmt[2:3] + "%d" + fmt[5:]
        other = pd.to_datetime(text, format=swapped)
        assert pd.DatetimeIndex(other).equals(pd.DatetimeIndex(got))
        assert frequency(pd.DatetimeIndex(got)) is not None
    path = tmp_path_factory.mktemp("dates") / "t.csv"  # through the table reader
    pd.DataFrame({"t": text, "y": np.arange(n, dtype=float)}).to_csv(path, index=False)
    table = load_series(path, DataConfig(target=["y"], time="t"))
    assert pd.DatetimeIndex(table.times).equals(pd.DatetimeIndex(got).sort_values())


ID_TEXTS = ["7", "007", "8", "-3", "+3", "3.0", "1e3", "NA", "a b", "x", " 9", "0", "-0", "\u0663", "99999999999999999999"]


@settings(max_examples=examples(60), deadline=None)
@given(ids=st.lists(st.sampled_from(ID_TEXTS), min_size=1, max_size=5, unique=True), reader=st.sampled_from(["blocks", "whole"]),
       interleaved=st.booleans())
def test_csv_series_ids_are_their_text_or_all_canonical_integers(tmp_path_factory, ids, reader, interleaved):
    """A CSV's series ids are the file's text ("007" and "7" were one series 7, "3.0" came back as
    3, "NA" was a missing id on one reader), or ints when every id is a canonical integer; the
    block-by-block reader (training) and the whole-table one (predict, backtest) agree."""
    from coreml_lstm.data import clean, key_columns, read_table

    rows = [(sid, t) for t in range(3) for sid in ids] if interleaved else [(sid, t) for sid in ids for t in range(3)]
    path = tmp_path_factory.mktemp("ids") / "t.csv"
    path.write_text("id,t,y\n" + "".join(f"{sid},{t},{k}\n" for k, (sid, t) in enumerate(rows)))
    config = DataConfig(target=["y"], time="t", series_id="id")
    if reader == "blocks":
        table = load_series(path, config)
        got = list(table.ids)
        firsts = {sid: float(table.values[table.offsets[k], 0]) for k, sid in enumerate(got)}
    else:
        series = clean(read_table(path, role="input", text=key_columns(config)), config, ["y"])
        got = [sid for sid, _ in series]
        firsts = {sid: float(g["y"].iloc[0]) for sid, g in series}
    words = list(dict.fromkeys(w.strip() for w in ids))
    integers = all(w.lstrip("-").isdigit() and str(int(w)) == w and abs(int(w)) < 2**63 for w in words)
    assert got == ([int(w) for w in words] if integers else words)
    assert all(type(v) is (int if integers else str) for v in got)
    for j, w in enumerate(words):  # each id's rows are its own: its first value is the row it first appears in
        first = next(k for k, (sid, t) in enumerate(rows) if sid.strip() == w and t == 0)
        assert firsts[got[j]] == first
