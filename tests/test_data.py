"""The data layer: real-file quirks, windows, splits, and every bad input with its exact line."""

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coreml_lstm.data import DataConfig, prediction_windows, prepare, read_table
from coreml_lstm.datasets import load_sunspots
from coreml_lstm.errors import DataError
from coreml_lstm.season import infer_season


def write(tmp_path, text, name="d.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def err(fn, *a, **k) -> str:
    with pytest.raises(DataError) as e:
        fn(*a, **k)
    assert "\n" not in str(e.value)
    return str(e.value)


def series_csv(n=12, extra=""):
    rows = ["t,y,x" + (",note" if extra else "")]
    for i in range(n):
        rows.append(f"{i},{i * 1.5},{i % 3}" + (f",{extra}" if extra else ""))
    return "\n".join(rows) + "\n"


# -- real files ----------------------------------------------------------------------------


def test_bom_crlf_and_quoted_fields(tmp_path):
    text = '\ufefft,y,"x"\r\n0,1.0,"2"\r\n1,"1,5",3\r\n'.replace('"1,5"', '"1.5"')
    p = write(tmp_path, text)
    frame = read_table(p)
    assert list(frame.columns) == ["t", "y", "x"]
    assert frame["y"].tolist() == [1.0, 1.5]
    assert list(frame.index) == [1, 2]


def test_quoted_text_with_commas_is_not_a_feature(tmp_path):
    p = write(tmp_path, series_csv(12, extra='"a, b"'))
    ds = prepare(p, config=DataConfig(target=["y"], time="t", window=3))
    assert ds.input_columns == ["y", "x"]


def test_unsorted_time_is_sorted_and_windows_follow_time(tmp_path):
    frame = pd.DataFrame({"t": [3, 1, 0, 2, 5, 4, 7, 6, 9, 8], "y": [30, 10, 0, 20, 50, 40, 70, 60, 90, 80]})
    ds = prepare(frame, config=DataConfig(target="y", time="t", window=2, val_fraction=0.3))
    np.testing.assert_array_equal(ds.train.x[0, :, 0], [0, 10])
    np.testing.assert_array_equal(ds.train.y[0, :, 0], [20])


def test_missing_values_drop_and_ffill(tmp_path):
    frame = pd.DataFrame({"t": range(10), "y": [0, 1, np.nan, 3, 4, 5, 6, 7, 8, 9.0]})
    assert err(prepare, frame, config=DataConfig(target="y", time="t", window=2)) == (
        "training data: column 'y', row 3: missing value (use missing 'drop' or 'ffill' to accept empty cells)"
    )
    dropped = prepare(frame, config=DataConfig(target="y", time="t", window=2, missing="drop"))
    filled = prepare(frame, config=DataConfig(target="y", time="t", window=2, missing="ffill"))
    assert len(filled.train) == len(dropped.train) + 1
    np.testing.assert_array_equal(filled.train.x[1, :, 0], [1, 1])


def test_ffill_never_crosses_series():
    frame = pd.DataFrame({"sid": ["a"] * 6 + ["b"] * 6, "t": list(range(6)) * 2, "y": [1, 2, 3, 4, 5, 6, np.nan, 2, 3, 4, 5, 6.0]})
    assert err(prepare, frame, config=DataConfig(target="y", time="t", series_id="sid", window=2, missing="ffill")) == (
        "training data: column 'y', row 7: missing value with no earlier value to forward-fill"
    )


# -- windows and splits ----------------------------------------------------------------------


def test_windows_equal_naive_slicing():
    y = np.arange(20, dtype=np.float32)
    frame = pd.DataFrame({"y": y, "x": y * 10})
    ds = prepare(frame, config=DataConfig(target="y", window=4, horizon=2, val_fraction=0.25))
    # split at 15: training targets end before row 15, validation targets start at or after it.
    assert len(ds.train) == 15 - 4 - 2 + 1 and len(ds.validation) == (20 - 4 - 2) - (15 - 4) + 1
    for k in range(len(ds.train)):
        np.testing.assert_array_equal(ds.train.x[k], np.stack([y[k : k + 4], y[k : k + 4] * 10], axis=1))
        np.testing.assert_array_equal(ds.train.y[k, :, 0], y[k + 4 : k + 6])
    assert ds.validation.y[0, 0, 0] == 15  # the first validation target is the first row after the split
    # Statistics from the training rows only (0..14), not the validation rows.
    assert ds.normalizer.target_mean[0] == pytest.approx(7.0)
    assert ds.normalizer.input_std[1] == pytest.approx(np.std(np.arange(15) * 10.0))


def test_two_series_windows_never_cross():
    frame = pd.DataFrame({"sid": ["a"] * 10 + ["b"] * 10, "y": np.r_[np.arange(10), 100 + np.arange(10)].astype(float)})
    ds = prepare(frame, config=DataConfig(target="y", series_id="sid", window=3, val_fraction=0.2))
    for x, y, s in zip(ds.train.x, ds.train.y, ds.train.series):
        values = np.r_[x[:, 0], y[:, 0]]
        assert (values < 100).all() if s == "a" else (values >= 100).all()
    assert set(ds.validation.series) == {"a", "b"}


def test_multi_target_and_separate_validation(tmp_path):
    train = pd.DataFrame({"a": np.arange(12.0), "b": np.arange(12.0) * 2, "c": np.ones(12)})
    valid = train.copy() + 100
    ds = prepare(train, valid, DataConfig(target=["a", "b"], window=3, horizon=2))
    assert ds.input_columns == ["a", "b", "c"] and ds.target_columns == ["a", "b"]
    assert ds.train.y.shape == (8, 2, 2) and ds.validation.y.shape == (8, 2, 2)
    assert ds.validation.x.min() >= 100
    assert ds.normalizer.input_std[2] == 1.0  # a constant column: std 0 becomes 1
    assert ds.normalizer.input_mean[0] == pytest.approx(5.5)  # from the training table only


def test_prediction_windows_keys():
    frame = pd.DataFrame({"sid": ["a"] * 5 + ["b"] * 4, "t": list(range(5)) + list(range(4)), "y": np.arange(9.0)})
    cfg = DataConfig(target="y", time="t", series_id="sid", window=3)
    x, keys, _, _ = prediction_windows(frame, cfg, ["y"])
    assert x.shape == (5, 3, 1) and keys["sid"].tolist() == ["a", "a", "a", "b", "b"] and keys["t"].tolist() == [2, 3, 4, 2, 3]
    x, keys, _, _ = prediction_windows(frame, cfg, ["y"], last_only=True)
    np.testing.assert_array_equal(x[:, :, 0], [[2, 3, 4], [6, 7, 8]])


def test_sunspots():
    frame = load_sunspots()
    assert list(frame.columns) == ["YEAR", "SUNACTIVITY"]
    assert len(frame) == 309 and frame["YEAR"].iloc[0] == 1700 and frame["YEAR"].iloc[-1] == 2008


# -- bad input, exact lines ------------------------------------------------------------------


def test_path_errors(tmp_path):
    assert err(read_table, tmp_path) == f"{tmp_path}: is a directory, not a CSV file"
    assert err(read_table, tmp_path / "nope.csv") == f"{tmp_path / 'nope.csv'}: no such file"
    p = write(tmp_path, "a,b\n1,2\n", name="d.xlsx")
    assert err(read_table, p) == f"{p}: not a CSV or Parquet file (expected a .csv or .parquet file)"
    p = write(tmp_path, "")
    assert err(read_table, p) == f"{p}: the file is empty"
    p = write(tmp_path, "t,y\r\n")
    assert err(read_table, p) == f"{p}: has a header but no data rows"
    p = write(tmp_path, "t,y,t\n1,2,3\n")
    assert err(read_table, p) == f"{p}: duplicate column 't'"
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x01garbage")
    assert err(read_table, p) == f"{p}: not a CSV file (UTF-16 text; save it as UTF-8)"
    p.write_bytes("t,caf\u00e9\n1,2\n".encode("latin-1"))
    assert err(read_table, p) == f"{p}: line 1: not UTF-8 text (byte 0xE9); save the file as UTF-8"


def test_column_errors(tmp_path):
    p = write(tmp_path, series_csv())
    assert err(prepare, p, config=DataConfig(target="load", time="t")) == f"{p}: missing column 'load'; columns are: t, y, x"
    bad = write(tmp_path, series_csv().replace("\n4,6.0,", "\n4,abc,"), name="bad.csv")
    assert err(prepare, bad, config=DataConfig(target="y", time="t", window=2)) == f"{bad}: column 'y', row 5: non-numeric value 'abc'"
    inf = write(tmp_path, series_csv().replace("\n4,6.0,", "\n4,inf,"), name="inf.csv")
    assert err(prepare, inf, config=DataConfig(target="y", time="t", window=2)) == f"{inf}: column 'y', row 5: infinite value"
    dup = write(tmp_path, series_csv().replace("\n4,6.0,", "\n3,6.0,"), name="dup.csv")
    assert err(prepare, dup, config=DataConfig(target="y", time="t", window=2)) == f"{dup}: column 't', row 5: duplicate time 3"


def test_short_series_and_validation_columns(tmp_path):
    p = write(tmp_path, series_csv(6))
    assert err(prepare, p, config=DataConfig(target="y", time="t", window=4)) == (
        f"{p}: the table has 6 rows; window 4 + horizon 1 with a 0.2 validation split needs at least 7 (the split leaves 4 training rows, "
        "fewer than the window and horizon (5): use val_fraction 0.16 or less, a smaller window or horizon, or give a separate validation table)"
    )
    two = pd.DataFrame({"sid": ["a"] * 20 + ["b"] * 3, "y": np.arange(23.0)})
    assert err(prepare, two, None, DataConfig(target="y", series_id="sid", window=2), ) .startswith("training data: series 'b' has 3 rows")
    v = write(tmp_path, "t,y,z\n0,1,2\n", name="v.csv")
    assert err(prepare, p, v, DataConfig(target="y", time="t", window=2)) == f"{v}: columns differ from the training data (missing 'x'; extra 'z')"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target=[]), "target: name at least one target column"),
        (dict(target="y", window=0), "window: must be an integer >= 1, got 0"),
        (dict(target="y", horizon=0), "horizon: must be an integer >= 1, got 0"),
        (dict(target="y", val_fraction=1.0), "val_fraction: must be between 0 and 1 (exclusive), got 1.0"),
        (dict(target="y", missing="zero"), "missing: 'zero' is not one of error, drop, ffill"),
        (dict(target=["y", "y"]), "target: column 'y' is listed twice"),
        (dict(target="y", features=["y"]), "features: column 'y' is also a target (a target's own past is always an input)"),
    ],
)
def test_config_errors(kwargs, message):
    assert err(DataConfig, **kwargs) == message


def test_non_numeric_feature_named_explicitly(tmp_path):
    p = write(tmp_path, series_csv(12, extra="north"))
    assert err(prepare, p, config=DataConfig(target="y", features=["note"], time="t", window=2)) == (
        f"{p}: column 'note', row 1: non-numeric value 'north'"
    )


# -- large tables: lazy windows, blocks, Parquet ---------------------------------------------


def shuffled_table(seed: int, series: int = 3, rows: int = 40, nan: float = 0.0) -> pd.DataFrame:
    """Several series with unique, shuffled times, their rows interleaved; some x cells empty."""
    rng = np.random.default_rng(seed)
    parts = []
    for s in range(series):
        n = int(rng.integers(rows // 2, rows))
        part = pd.DataFrame({"sid": f"s{s}", "t": rng.permutation(n) * 3 + 100, "y": rng.normal(size=n).round(3), "x": rng.normal(size=n).round(3)})
        if nan:
            part.loc[(rng.random(n) < nan) & (part["t"] > 100), "x"] = np.nan  # never the first row: ffill has a value to carry
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def naive_series(frame, missing: str):
    """The reference: series in order of first appearance, each sorted by time and gap-handled."""
    out = []
    for sid, g in frame.groupby("sid", sort=False):
        g = g.sort_values("t", kind="stable")
        if missing == "drop":
            g = g.dropna(subset=["y", "x"])
        elif missing == "ffill":
            g = g.ffill()
        out.append((sid, g["t"].to_numpy(), g[["y", "x"]].to_numpy(np.float32)))
    return out


@pytest.mark.parametrize("seed, missing", [(0, "error"), (1, "drop"), (2, "ffill")])
def test_windows_equal_naive_slicing_across_csv_blocks(tmp_path, monkeypatch, seed, missing):
    import coreml_lstm.data as data

    frame = shuffled_table(seed, nan=0.0 if missing == "error" else 0.15)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    monkeypatch.setattr(data, "BLOCK_BYTES", 256)  # dozens of blocks: the chunks must stitch exactly
    W, H, vf = 4, 2, 0.25
    config = DataConfig(target="y", time="t", series_id="sid", window=W, horizon=H, val_fraction=vf, missing=missing)
    series = naive_series(frame, missing)

    x, keys, _, _ = prediction_windows(path, config, ["y", "x"])
    want = [a[s : s + W] for _, _, a in series for s in range(len(a) - W + 1)]
    np.testing.assert_array_equal(np.asarray(x), np.array(want))
    assert keys["sid"].tolist() == [sid for sid, _, a in series for _ in range(len(a) - W + 1)]
    assert keys["t"].tolist() == [t[s + W - 1] for _, t, a in series for s in range(len(a) - W + 1)]
    x_frame = prediction_windows(frame, config, ["y", "x"]).x  # the DataFrame path agrees
    np.testing.assert_array_equal(np.asarray(x_frame), np.asarray(x))

    ds = prepare(path, config=config)
    tx, ty, vx, vy, train_rows = [], [], [], [], []
    for _, _, a in series:
        n = len(a)
        split = n - max(1, math.ceil(n * vf))
        tx += [a[s : s + W] for s in range(split - W - H + 1)]
        ty += [a[s + W : s + W + H, :1] for s in range(split - W - H + 1)]
        vx += [a[s : s + W] for s in range(max(split - W, 0), n - W - H + 1)]
        vy += [a[s + W : s + W + H, :1] for s in range(max(split - W, 0), n - W - H + 1)]
        train_rows.append(a[:split])
    for got, expected in ((ds.train.x, tx), (ds.train.y, ty), (ds.validation.x, vx), (ds.validation.y, vy)):
        np.testing.assert_array_equal(np.asarray(got), np.array(expected))
    assert ds.train.series.tolist() == [sid for sid, _, a in series for _ in range(len(a) - max(1, math.ceil(len(a) * vf)) - W - H + 1)]
    rows = np.concatenate(train_rows).astype(np.float64)
    np.testing.assert_allclose(ds.normalizer.input_mean, rows.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds.normalizer.input_std, rows.std(axis=0), rtol=1e-12)
    sid, start = ds.validation.items([0])
    assert sid[0] == series[0][0] and start[0] == max(len(series[0][2]) - max(1, math.ceil(len(series[0][2]) * vf)) - W, 0)


def test_errors_in_later_blocks_name_the_source_row(tmp_path, monkeypatch):
    import coreml_lstm.data as data

    monkeypatch.setattr(data, "BLOCK_BYTES", 256)
    lines = ["sid,t,y"] + [f"{'ab'[i % 2]},{i},{i}" for i in range(300)]  # two interleaved series, integer y
    cfg = DataConfig(target="y", time="t", series_id="sid", window=2)

    def table(edit=None):
        rows = list(lines)
        if edit:
            edit(rows)
        p = tmp_path / "t.csv"
        p.write_text("\n".join(rows) + "\n")
        return p

    p = table(lambda r: r.__setitem__(250, "b,249,abc"))
    assert err(prepare, p, config=cfg) == f"{p}: column 'y', row 250: non-numeric value 'abc'"
    p = table(lambda r: r.__setitem__(260, "b,259,"))
    assert err(prepare, p, config=cfg) == f"{p}: column 'y', row 260: missing value (use missing 'drop' or 'ffill' to accept empty cells)"
    p = table(lambda r: r.__setitem__(271, "a,268,1"))
    assert err(prepare, p, config=cfg) == f"{p}: column 't', row 271: duplicate time 268 in series 'a'"
    p = table(lambda r: r.__setitem__(290, "a,289,1,2"))  # pyarrow stops; the whole-table read names the row
    assert err(prepare, p, config=cfg) == f"{p}: row 290 has 4 fields, the header has 3"
    p = table(lambda r: r.__setitem__(280, "b,279,1.5"))  # a float after blocks of integers
    x = prediction_windows(p, cfg, ["y"]).x
    assert (np.asarray(x) == 1.5).sum() == 2 and np.asarray(x).max() == 299


@pytest.mark.parametrize("body, row, fields", [
    ("s0,0,1.0,2.0,7\ns0,1,1.5,2.5,7\n", 1, 5),  # was read with the ids as an index: every column shifted, exit 0
    ("s0,0,1.0,2.0,\ns0,1,1.5,2.5,\n", 1, 5),  # a trailing comma: was "missing value"
    ("s0,0,1.0,2.0\n\n\"s,0\",1,1.5,2.5\ns0,2,1,2,3,4\n", 3, 6),  # blank lines skipped, a quoted comma is no field
])
def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path, body, row, fields):
    from coreml_lstm.data import load_series

    p = tmp_path / "t.csv"
    p.write_text("id,t,c0,c1\n" + body)
    line = f"{p}: row {row} has {fields} fields, the header has 4"
    assert err(read_table, p) == line
    assert err(load_series, p, DataConfig(target="c0", time="t", series_id="id")) == line  # pyarrow's block read, then pandas


def test_parquet_and_csv_give_the_same_model(tmp_path):
    from coreml_lstm import Forecaster

    from .conftest import FAST, sine_table

    frame = sine_table(90, series=3)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    models = [Forecaster("y0", time="t", series_id="sid", **FAST).fit(tmp_path / name) for name in ("t.csv", "t.parquet")]
    a, b = (m.checkpoint_ for m in models)
    assert a.input_columns == b.input_columns == ["y0", "driver"]
    assert a.normalizer.to_dict() == b.normalizer.to_dict()
    for k, v in a.state_dict.items():
        assert torch.equal(v, b.state_dict[k]), k
    assert a.metrics == b.metrics
    np.testing.assert_array_equal(models[0].predict(tmp_path / "t.parquet").to_numpy(), models[1].predict(tmp_path / "t.csv").to_numpy())


def test_parquet_errors(tmp_path):
    p = write(tmp_path, "not parquet at all", name="x.parquet")
    assert err(read_table, p).startswith(f"{p}: not a Parquet file (")
    q = tmp_path / "t.parquet"
    pd.DataFrame({"t": [0, 1, 2, 3], "y": ["1", "2", "abc", "4"]}).to_parquet(q, index=False)
    assert err(prepare, q, config=DataConfig(target="y", time="t", window=2)) == f"{q}: column 'y', row 3: non-numeric value 'abc'"
    assert err(prepare, q, config=DataConfig(target="load", time="t")) == f"{q}: missing column 'load'; columns are: t, y"
    pd.DataFrame({"t": pd.Series([], dtype=int), "y": pd.Series([], dtype=float)}).to_parquet(q, index=False)
    assert err(read_table, q) == f"{q}: the table has no rows"


@pytest.mark.parametrize("key", [0, -1, 5, slice(2, 7), slice(None, None, 3), slice(-4, None), [3, 1, 4, 1], np.array([-2, 0]),
                                 (2, slice(None), 0), (slice(1, 5), -1), (slice(None), slice(1, 3), 1), Ellipsis])
def test_window_array_indexes_like_numpy(key):
    ds = prepare(pd.DataFrame({"sid": ["a"] * 9 + ["b"] * 7, "y": np.arange(16.0), "x": -np.arange(16.0)}),
                 config=DataConfig(target="y", series_id="sid", window=3, val_fraction=0.2))
    x = ds.train.x
    a = np.asarray(x)
    assert a.shape == x.shape == (len(ds.train), 3, 2)
    np.testing.assert_array_equal(x[key], a[key])
    mask = np.arange(len(x)) % 2 == 0
    np.testing.assert_array_equal(x[mask], a[mask])
    np.testing.assert_array_equal(np.stack(list(x)), a)
    assert float(x.mean()) == pytest.approx(float(a.mean())) and (x - 1).shape == a.shape
    with pytest.raises(IndexError):
        x[len(x)]


def test_statistics_in_one_pass_keep_the_variance_of_a_large_mean(monkeypatch):
    import coreml_lstm.data as data

    monkeypatch.setattr(data, "STATS_ROWS", 7)  # many merged blocks
    rng = np.random.default_rng(0)
    values = (1e4 + rng.normal(size=(100, 2))).astype(np.float32)
    offsets = np.array([0, 40, 100])
    mean, std = data._stats(values, offsets, np.array([30, 50]))
    rows = np.concatenate([values[:30], values[40:90]]).astype(np.float64)
    np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(std, rows.std(axis=0), rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 25), min_size=1, max_size=4), window=st.integers(1, 6), seed=st.integers(0, 2**16),
       missing=st.sampled_from(["drop", "ffill"]), last=st.booleans())
def test_prediction_windows_are_the_naive_windows(lengths, window, seed, missing, last):
    rng = np.random.default_rng(seed)
    parts = []
    for s, n in enumerate(lengths):
        x = rng.normal(size=n).round(2)
        x[1:][rng.random(n - 1) < 0.2] = np.nan  # the first row (time 0) keeps a value for ffill
        parts.append(pd.DataFrame({"sid": s * 7, "t": rng.permutation(n), "y": rng.normal(size=n).round(2), "x": x}))
    frame = pd.concat(parts).iloc[rng.permutation(sum(lengths))]
    frame.loc[frame["t"] == 0, "x"] = 1.0
    config = DataConfig(target="y", time="t", series_id="sid", window=window, missing=missing)
    series = naive_series(frame, missing)
    if any(len(a) < window for _, _, a in series):
        with pytest.raises(DataError, match=f"has .* rows; window {window} needs at least {window}"):
            prediction_windows(frame, config, ["y", "x"], last_only=last)
        return
    x, keys, _, _ = prediction_windows(frame, config, ["y", "x"], last_only=last)
    starts = [(sid, t, a, s) for sid, t, a in series for s in (range(len(a) - window, len(a) - window + 1) if last else range(len(a) - window + 1))]
    np.testing.assert_array_equal(np.asarray(x).reshape(-1, window, 2), np.array([a[s : s + window] for _, _, a, s in starts]).reshape(-1, window, 2))
    assert keys["sid"].tolist() == [sid for sid, _, _, _ in starts]
    assert keys["t"].tolist() == [t[s + window - 1] for _, t, _, s in starts]


# -- values beyond float32 ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("value", ["1e308", "-1e308", "3.5e38"])
def test_a_value_beyond_float32_is_refused_naming_file_column_and_row(tmp_path, monkeypatch, fmt, value):
    import coreml_lstm.data as data

    monkeypatch.setattr(data, "BLOCK_BYTES", 256)  # the bad cell in a later block of the pyarrow read
    rows = [f"{i},{i % 7}.5,{i % 3}" for i in range(300)]
    rows[200] = f"200,{value},1"
    text = "t,y,x\n" + "\n".join(rows) + "\n"
    p = write(tmp_path, text)
    if fmt == "parquet":
        frame = pd.read_csv(p)
        p = tmp_path / "d.parquet"
        frame.to_parquet(p)
    want = f"{p}: column 'y', row 201: value {float(value)!r} is beyond the float32 range (largest magnitude 3.403e+38)"
    assert err(prepare, p, config=DataConfig(target="y", time="t", window=3)) == want
    assert err(prediction_windows, p, DataConfig(target="y", time="t", window=3), ["y", "x"]) == want
    rows[200] = "200,1.5,-1e300"  # a feature column too
    p2 = write(tmp_path, "t,y,x\n" + "\n".join(rows) + "\n", name="f.csv")
    assert err(prepare, p2, config=DataConfig(target="y", time="t", window=3)) == (
        f"{p2}: column 'x', row 201: value -1e+300 is beyond the float32 range (largest magnitude 3.403e+38)")


def test_values_too_large_for_float32_arithmetic_stop_training_naming_the_column(tmp_path):
    from coreml_lstm import Forecaster

    p = write(tmp_path, "t,y\n" + "".join(f"{i},{3e38 * (-1) ** i}\n" for i in range(40)))
    with pytest.raises(DataError) as e:
        Forecaster("y", time="t", window=4, hidden_size=4, epochs=2, progress=False).fit(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}: column 'y', row ") and "is too large to train on in float32 (training diverged" in msg


def test_the_missing_value_hint_speaks_the_api_and_the_cli(tmp_path):
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    p = write(tmp_path, "t,y\n" + "".join(f"{i},{'' if i == 20 else i}\n" for i in range(40)))
    assert err(prepare, p, config=DataConfig(target="y", time="t", window=3)) == (
        f"{p}: column 'y', row 21: missing value (use missing 'drop' or 'ffill' to accept empty cells)")
    r = CliRunner().invoke(main, ["train", str(p), "--target", "y", "--time", "t", "--quiet"])
    assert r.exit_code == 1
    assert r.output == f"Error: {p}: column 'y', row 21: missing value (use --missing drop or --missing ffill to accept empty cells)\n"


def test_a_byte_that_is_not_utf8_is_named_by_its_line_when_its_column_is_read(tmp_path, monkeypatch):
    import coreml_lstm.data as data

    monkeypatch.setattr(data, "BLOCK_BYTES", 256)  # the bad byte in a later block of the pyarrow read
    rows = ["t,y,x"] + [f"{i},{i % 5}.5,{i % 3}" for i in range(300)]
    rows[250] = "249,1.5,2\xe9"
    p = tmp_path / "latin.csv"
    p.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    cfg = DataConfig(target="y", time="t", window=3, features=[])
    assert len(prepare(p, config=cfg).train) > 0  # the column holding it is never read (inferring features would read it)
    want = f"{p}: line 251: not UTF-8 text (byte 0xE9); save the file as UTF-8"
    assert err(prepare, p, config=DataConfig(target="y", time="t", window=3, features=["x"])) == want
    rows[250] = "249,1.5\xe9,2"
    p.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    assert err(prepare, p, config=cfg) == want


def test_a_column_of_time_steps_with_one_bad_cell_names_that_cell(tmp_path):
    from coreml_lstm.data import load_series

    path = tmp_path / "steps.csv"
    t = [str(i) for i in range(300)]
    t[99] = "x"  # source row 100
    pd.DataFrame({"t": t, "y": np.arange(300.0)}).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_series(path, DataConfig(target=["y"], time="t"))
    assert str(err.value) == f"{path}: column 't', row 100: not a number like the rest of the column: 'x'"


def test_values_float32_rounds_beyond_their_changes_are_named(tmp_path):
    """A meter near 1.2345e8 rising 0-3 a row: float32 keeps every 8th integer there, silently."""
    rng = np.random.default_rng(0)
    meter = pd.DataFrame({"t": range(300), "y": 1.2345e8 + np.cumsum(rng.uniform(0, 3, 300)), "x": rng.integers(0, 2**24, 300)})
    meter.to_csv(tmp_path / "m.csv", index=False)
    for source in (tmp_path / "m.csv", meter):
        [warning] = [w for w in prepare(source, config=DataConfig(target=["y"], time="t")).warnings if "float32" in w]
        assert "column 'y' holds values near 1.235e+08, which float32" in warning and "rounds by up to 4," in warning
        assert "subtract an offset" in warning  # 'x': integers below 2**24 are held exactly, not named
    fine = meter.assign(y=meter["y"] - 1.2345e8)
    assert not [w for w in prepare(fine, config=DataConfig(target=["y"], time="t")).warnings if "float32" in w]
    # Near 1e9 a swing of +-10 is gone in float32 (every value the same): named above all.
    flat = pd.DataFrame({"t": range(100), "y": 1e9 + 10 * np.sin(np.arange(100) * 2 * np.pi / 7)})
    assert len(np.unique(flat["y"].to_numpy(np.float32))) < 4
    assert [w for w in prepare(flat, config=DataConfig(target=["y"], time="t")).warnings if "float32" in w]


def test_a_default_window_shorter_than_the_season_is_named_with_the_rows_it_needs():
    """2000 minutes, daily season 1440: the default window (868) cannot see a season back, so the
    model can neither learn nor ship seasonal naive, which the report compares it with."""
    for n, freq in ((2000, "min"), (100, "W")):
        frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=n, freq=freq), "y": np.sin(np.arange(n) / 7.0)})
        ds = prepare(frame, config=DataConfig(target=["y"], time="t"))
        W, m = ds.config.window, ds.config.season
        assert W < m
        [warning] = [w for w in ds.warnings if "shorter than the season" in w]
        need = int(warning.split("a series of ")[1].split(" rows")[0])
        more = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=need, freq=freq), "y": np.sin(np.arange(need) / 7.0)})
        assert prepare(more, config=DataConfig(target=["y"], time="t")).config.window >= m  # the rows named are enough
        fewer = more.iloc[:-1]
        assert prepare(fewer, config=DataConfig(target=["y"], time="t")).config.window < m  # and the fewest
    assert not [w for w in prepare(frame, config=DataConfig(target=["y"], time="t", season=4)).warnings if "season" in w]


def test_columns_left_out_of_the_default_features_are_named(tmp_path):
    """Numbers written with a decimal comma are text: the column was silently no feature."""
    n = 60
    frame = pd.DataFrame({"t": range(n), "y": np.sin(np.arange(n) / 3.0), "lead": [f"{v:.3f}".replace(".", ",") for v in np.cos(np.arange(n))],
                          "x": np.arange(n, dtype=float)})
    frame.to_csv(tmp_path / "f.csv", index=False)
    for source, label in ((tmp_path / "f.csv", str(tmp_path / "f.csv")), (frame, "training data")):
        ds = prepare(source, config=DataConfig(target=["y"], time="t"))
        assert ds.input_columns == ["y", "x"]
        assert [w for w in ds.warnings if "not used as features" in w] == [
            f"{label}: column 'lead' is not numeric and not used as features; to use one, make its cells numbers (--feature NAME names the first cell that is not)"]
    assert not [w for w in prepare(frame, config=DataConfig(target=["y"], time="t", features=["x"])).warnings if "features" in w]


def test_missing_time_steps_are_named_and_a_calendar_step_is_not_a_gap():
    t = pd.date_range("2022-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"d": t, "y": np.sin(np.arange(200.0))}).drop(index=[20, 50, 51, 90])
    [warning] = prepare(frame, config=DataConfig(target=["y"], time="d")).warnings
    assert warning.startswith("training data: the series misses 4 time steps in 3 gaps, the first after 2022-01-20")
    assert "add a row per missing step" in warning
    business = pd.DataFrame({"d": pd.bdate_range("2022-01-03", periods=200), "y": np.sin(np.arange(200.0))})
    assert prepare(business, config=DataConfig(target=["y"], time="d")).warnings == []  # weekends are no gap
    steps = pd.DataFrame({"t": np.r_[0:50, 60:150], "y": np.arange(140.0)})  # integer time steps, 10 missing
    [warning] = prepare(steps, config=DataConfig(target=["y"], time="t")).warnings
    assert "misses 10 time steps in 1 gaps, the first after 49" in warning
    hourly = pd.DataFrame({"d": pd.date_range("2021-01-01", periods=200, freq="h").astype("datetime64[ns]"), "y": np.arange(200.0)}).drop(index=[100])
    [warning] = prepare(hourly, config=DataConfig(target=["y"], time="d")).warnings
    assert "the first after 2021-01-05 03:00:00;" in warning  # was nanoseconds since 1970


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), window=st.integers(1, 40), horizon=st.integers(1, 10), fraction=st.sampled_from([0.05, 0.2, 0.5, 0.9, 0.95, 0.99, 0.999999]))
def test_a_validation_fraction_that_leaves_too_few_rows_says_what_to_change(n, window, horizon, fraction):
    """--val-fraction 0.99 on a short series raised StopIteration (the search for the rows
    needed stopped at 10 (W + H) + 100): one line, and the fraction it suggests trains."""
    frame = pd.DataFrame({"t": np.arange(n), "y": np.sin(np.arange(n) / 3.0)})
    config = DataConfig(target="y", time="t", window=window, horizon=horizon, val_fraction=fraction)
    try:
        prepare(frame, None, config)
        return
    except DataError as exc:
        message, cli = str(exc), exc.cli
    assert "\n" not in message and message.startswith(f"training data: the table has {n} rows; window {window} + horizon {horizon} with a {fraction:g} validation split")
    need = int(re.search(r"needs at least (\d+)", message).group(1))
    assert n < need
    if need < 10_000:
        longer = pd.DataFrame({"t": np.arange(need), "y": np.sin(np.arange(need) / 3.0)})
        prepare(longer, None, config)  # the rows it names are enough
    suggested = re.search(r"use val_fraction ([0-9.]+) or less", message)
    if suggested is None:  # the rows are not there whatever the fraction
        assert cli is None and n < window + 2 * horizon
        return
    assert f"--val-fraction {suggested.group(1)} or less" in cli and "--window" in cli
    prepare(frame, None, DataConfig(target="y", time="t", window=window, horizon=horizon, val_fraction=float(suggested.group(1))))


# -- time columns: zones, mixed offsets, business days, a bad cell in a long column ------------


def _daily(n, *, tz=None, freq="D", start="2024-01-01"):
    t = pd.date_range(start, periods=n, freq=freq, tz=tz)
    return pd.DataFrame({"date": t, "y": 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 7)})


def test_daily_times_written_with_their_dst_offsets_keep_their_season(tmp_path):
    """A named zone's daily times written to CSV carry +01:00, then +02:00: read as UTC, local
    midnights became 23:00 and 22:00 and the season was lost (1 from the CSV, 7 from Parquet).
    Hourly data steps evenly in UTC (the local clock skips an hour): it keeps its 24."""
    frame = _daily(400, tz="Europe/Berlin")
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    assert "+01:00" in (tmp_path / "d.csv").read_text() and "+02:00" in (tmp_path / "d.csv").read_text()
    for source in (tmp_path / "d.csv", tmp_path / "d.parquet", frame):
        ds = prepare(source, None, DataConfig(target="y", time="date"))
        assert ds.config.season == 7 and not ds.warnings, (source, ds.warnings)
    hourly = _daily(24 * 40, tz="Europe/Berlin", freq="h", start="2024-03-10")
    hourly.to_csv(tmp_path / "h.csv", index=False)
    ds = prepare(tmp_path / "h.csv", None, DataConfig(target="y", time="date", window=48))
    assert ds.config.season == 24 and not ds.warnings


def test_a_time_column_mixing_naive_and_aware_times_is_refused(tmp_path):
    rows = ["t,y"] + [f"2024-01-{d:02d} 00:00:00{'+01:00' if d > 3 else ''},{d}" for d in range(1, 21)]
    p = write(tmp_path, "\n".join(rows) + "\n")
    assert err(prepare, p, None, DataConfig(target="y", time="t")) == (
        f"{p}: column 't', row 1: '2024-01-01 00:00:00' has no UTC offset where the others have one (like '2024-01-04 00:00:00+01:00'); "
        "write every time with its offset, or every time without")
    rows = ["t,y"] + [f"2024-01-{d:02d} 00:00:00{'+01:00' if d == 5 else ''},{d}" for d in range(1, 21)]
    p = write(tmp_path, "\n".join(rows) + "\n", name="one.csv")
    assert err(prepare, p, None, DataConfig(target="y", time="t")).startswith(f"{p}: column 't', row 5: '2024-01-05 00:00:00+01:00' has a UTC offset where the others have none")


def test_business_days_with_holidays_are_season_5_and_only_the_holidays_are_gaps():
    """Weekday data with a few holidays: pandas names no frequency, so the season fell to 1 and the
    gap warning counted every weekend as two missing steps."""
    days = pd.bdate_range("2022-01-03", periods=400)
    holidays = [days[70], days[150], days[300]]
    frame = pd.DataFrame({"date": days, "y": np.sin(np.arange(400) / 2.0)})
    frame = frame[~frame["date"].isin(holidays)]
    ds = prepare(frame, None, DataConfig(target="y", time="date"))
    assert ds.config.season == 5 and len(ds.warnings) == 1
    assert (f"training data: the series is business-daily (season 5) but misses 3 business days (holidays, say) in 3 gaps, the first after "
            f"{days[69]}") in ds.warnings[0] and "weekend" not in ds.warnings[0]
    assert infer_season(frame["date"]) == 5
    daily = _daily(60)
    assert infer_season(daily["date"].drop(index=[10, 30])) == 1  # daily data with gaps stays irregular


@settings(max_examples=20, deadline=None)
@given(n=st.integers(50, 3000), bad=st.data(), cell=st.sampled_from(["2027-13-45", "not a date", "2020-02-30", "31/12/2020x"]))
def test_a_bad_cell_in_a_long_iso_column_is_named_without_cell_by_cell_reads(n, bad, cell):
    """An ISO column with a bad cell went through month-first, day-first, mixed (cell by cell)
    and coerced reads before the bad cell was named (75 s on 500,000 rows): the vectorised ISO
    read finds it, and names the same row."""
    row = bad.draw(st.integers(0, n - 1))
    times = pd.date_range("2020-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S").tolist()
    times[row] = cell
    frame = pd.DataFrame({"t": times, "y": np.arange(n, dtype=float)})
    frame.index = pd.RangeIndex(1, n + 1)
    calls = []
    real = pd.to_datetime

    def counting(values, *a, **k):
        calls.append((len(values), k.get("format")))
        return real(values, *a, **k)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(pd, "to_datetime", counting)
        message = err(prepare, frame, None, DataConfig(target="y", time="t", window=4))
    assert message == f"training data: column 't', row {row + 1}: not a number or a date like the column's first ({times[0]!r}): {cell!r}"
    assert not [c for c in calls if c[1] == "mixed" and c[0] > 1]  # no cell-by-cell read of the whole column


def test_a_semicolon_delimited_csv_s_missing_column_error_hints_at_the_delimiter(tmp_path):
    hint = "the header is one cell with ';' in it: is the file semicolon-delimited? Save it with commas"
    p = write(tmp_path, "t;y\n1;2.5\n2;3.5\n3;4.5\n")
    assert err(prepare, p, None, DataConfig(target="y", time="t")) == f"{p}: missing columns 'y', 't'; columns are: t;y; {hint}"
    p = write(tmp_path, "t;y\n1;2,5\n2;3,5\n3;4,5\n")  # decimal commas: more fields than the header
    assert err(prepare, p, None, DataConfig(target="y", time="t")) == f"{p}: row 1 has 2 fields, the header has 1; {hint}"


def test_validation_series_ids_are_read_as_the_training_tables(tmp_path):
    """Ids 1, 2, x (text) in the training CSV and 1, 2 (integers, read alone) in the validation
    CSV matched no series: every MASE was n/a and the scaled error used the pooled scale, unsaid."""
    rng = np.random.default_rng(0)

    def table(ids, n):
        return pd.DataFrame({"store": np.repeat(ids, n), "t": np.tile(np.arange(n), len(ids)), "y": rng.normal(10, 1, n * len(ids))})

    table(["1", "2", "x"], 30).to_csv(tmp_path / "train.csv", index=False)
    table(["1", "2"], 12).to_csv(tmp_path / "val.csv", index=False)
    config = DataConfig(target="y", time="t", series_id="store", window=4, horizon=2)
    ds = prepare(tmp_path / "train.csv", tmp_path / "val.csv", config)
    assert set(ds.validation.series) == {"1", "2"} and set(ds.validation.series) <= set(ds.insample) and ds.warnings == []
    table(["1", "z"], 12).to_csv(tmp_path / "val2.csv", index=False)
    ds = prepare(tmp_path / "train.csv", tmp_path / "val2.csv", config)
    assert [w for w in ds.warnings if "validation series 'z' has no rows in the training table" in w]


@pytest.mark.parametrize("options, message", [
    (dict(series_id="row"), "series_id: column 'row' is the name predict gives the row of each window when there is no time column"),
    (dict(time="y_t+1"), "time: column 'y_t+1' is named as a predict output column"),
    (dict(time="t", series_id="y_t+2_q05"), "series_id: column 'y_t+2_q05' is named as a predict output column"),
])
def test_a_key_column_named_like_a_predict_output_is_refused(options, message):
    """predict writes the keys, then y_t+1, y_t+1_std, ...: a key named alike was overwritten
    (store names became row numbers; times became forecasts)."""
    frame = pd.DataFrame({"y": np.arange(30.0), "t": np.arange(30), "row": "a", "y_t+1": np.arange(30), "y_t+2_q05": "b"})
    config = DataConfig(target="y", features=[], window=4, horizon=2, **options)  # a checkpoint's config still loads
    with pytest.raises(DataError, match="^" + re.escape(message)):
        prepare(frame, config=config)
    prepare(frame.drop(columns="row").rename(columns={"t": "row"}), config=DataConfig(target="y", features=[], time="row", window=4, horizon=2))


def test_times_kept_as_a_dataframes_index_are_read_where_named():
    """statsmodels ships co2 with its weeks as a DatetimeIndex: time="date" said the column was
    missing. An index no option names stays out of the data (it is not a feature)."""
    frame = pd.DataFrame({"y": np.arange(40.0)}, index=pd.date_range("2000-01-02", periods=40, freq="W", name="date"))
    ds = prepare(frame, config=DataConfig(target="y", time="date", window=4, horizon=2))
    assert ds.config.step == "W-SUN" and ds.config.season == 52 and ds.input_columns == ["y"]
    assert prepare(frame, config=DataConfig(target="y", window=4, horizon=2)).input_columns == ["y"]
    assert frame.columns.tolist() == ["y"]  # the caller's frame is left as it was
    two = pd.concat([frame.assign(store="a"), frame.assign(store="b")]).set_index("store", append=True)  # (date, store)
    ds = prepare(two, config=DataConfig(target="y", time="date", series_id="store", window=4, horizon=2))
    assert set(ds.validation.series) == {"a", "b"} and ds.input_columns == ["y"]


def test_a_series_emptied_by_dropping_empty_cells_is_named():
    """The error spoke of window 1 + horizon 1 (the default window shrunk to the empty series)."""
    frame = pd.DataFrame({"s": ["a"] * 30 + ["c"] * 5, "t": list(range(30)) + list(range(5)), "y": [1.0] * 30 + [np.nan] * 5})
    with pytest.raises(DataError, match=r"^training data: series 'c' has no rows left once the rows with empty cells are dropped \(missing 'drop'\)"):
        prepare(frame, config=DataConfig(target="y", time="t", series_id="s", missing="drop"))


def test_series_stepping_otherwise_than_the_longest_are_warned_of_and_gaps_say_where_the_season_comes_from():
    """A daily and an hourly series trained on the daily step and season unsaid; a gap in a
    shorter series said 'no season is inferred' while the longest one's season was used."""
    daily = pd.DataFrame({"s": "daily", "t": pd.date_range("2021-01-01", periods=60, freq="D"), "y": np.arange(60.0)})
    hourly = pd.DataFrame({"s": "hourly", "t": pd.date_range("2021-01-01", periods=40, freq="h"), "y": np.arange(40.0)})
    ds = prepare(pd.concat([daily, hourly], ignore_index=True), config=DataConfig(target="y", time="t", series_id="s", window=4, horizon=2))
    assert ds.config.season == 7
    assert [w for w in ds.warnings if w.startswith("training data: series 'hourly' steps hourly ('h'), the longest series ('daily') daily ('D')")]
    gapped = daily.assign(s="b").iloc[:40].drop(index=[10, 11])
    ds = prepare(pd.concat([daily, gapped], ignore_index=True), config=DataConfig(target="y", time="t", series_id="s", window=4, horizon=2))
    [gap] = [w for w in ds.warnings if "misses 2 time steps" in w]
    assert ds.config.season == 7 and "no season is inferred" not in gap
    ds = prepare(gapped, config=DataConfig(target="y", time="t", window=4, horizon=2))
    [gap] = [w for w in ds.warnings if "misses 2 time steps" in w]
    assert "no season is inferred" in gap and ds.config.season == 1


@pytest.mark.parametrize("form", ["{y}Q{q}", "{y} Q{q}", "{y}-Q{q}", "Q{q} {y}", "{y} q{q}"])
def test_quarters_written_with_the_year_are_a_quarterly_time(tmp_path, form):
    """'1960 Q1' and 'Q1 1960' were 'not a number or a date'."""
    times = [form.format(y=1960 + i // 4, q=i % 4 + 1) for i in range(40)]
    pd.DataFrame({"t": times, "y": np.arange(40.0)}).to_csv(tmp_path / "q.csv", index=False)
    ds = prepare(tmp_path / "q.csv", config=DataConfig(target="y", time="t", window=4, horizon=2))
    assert ds.config.step == "QS-JAN" and ds.config.season == 4
