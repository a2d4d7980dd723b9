"""The data layer: real-file quirks, windows, splits, and every bad input with its exact line."""

import numpy as np
import pandas as pd
import pytest

from coreml_lstm.data import DataConfig, prediction_windows, prepare, read_table
from coreml_lstm.datasets import load_sunspots
from coreml_lstm.errors import DataError


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
    x, keys = prediction_windows(frame, cfg, ["y"])
    assert x.shape == (5, 3, 1) and keys["sid"].tolist() == ["a", "a", "a", "b", "b"] and keys["t"].tolist() == [2, 3, 4, 2, 3]
    x, keys = prediction_windows(frame, cfg, ["y"], last_only=True)
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
    assert err(read_table, p) == f"{p}: not a CSV file (expected a .csv file)"
    p = write(tmp_path, "")
    assert err(read_table, p) == f"{p}: the file is empty"
    p = write(tmp_path, "t,y\r\n")
    assert err(read_table, p) == f"{p}: has a header but no data rows"
    p = write(tmp_path, "t,y,t\n1,2,3\n")
    assert err(read_table, p) == f"{p}: duplicate column 't'"
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x01garbage")
    assert err(read_table, p) == f"{p}: not a CSV file (not UTF-8 text)"


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
        f"{p}: the table has 6 rows; window 4 + horizon 1 with a 0.2 validation split needs at least 7 (use a smaller window or horizon, or give a separate validation table)"
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
