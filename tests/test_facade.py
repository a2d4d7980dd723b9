"""The post's steps, one to one: construct, train with validation data, predict from input, export."""

import numpy as np
import pytest

from coreml_lstm.errors import ConfigError
from coreml_lstm.facade import ModelParameters, RecurrentGaussianMixtureRegressor

from .conftest import sine_table


def test_the_posts_steps(tmp_path):
    table = sine_table(200).drop(columns=["driver"])
    training, validation = table.iloc[:150], table.iloc[150:]
    training.to_csv(tmp_path / "training.csv", index=False)

    regressor = RecurrentGaussianMixtureRegressor(hidden_unit="lstm", num_layers=2, num_outputs=1, hidden_size=8)
    parameters = ModelParameters(validation_data=validation, time_column="t", window=8, max_iterations=6)
    regressor.train(str(tmp_path / "training.csv"), parameters)
    assert regressor.forecaster.target == ["y0"]  # the last numeric column
    assert np.isfinite(regressor.metrics["probabilistic"]["overall"]["nll"])

    prediction = regressor.prediction(from_input=validation)
    assert len(prediction) == 1 and prediction["t"].iloc[0] == 199
    assert prediction["y0_t+1_q05"].iloc[0] < prediction["y0_t+1"].iloc[0] < prediction["y0_t+1_q95"].iloc[0]

    path = regressor.export(tmp_path / "Regressor.mlpackage")
    import coreml_lstm.executor as ex

    prog = ex.load(path)
    # Window scaling (the default) carries the last window rows between calls.
    assert [t.name for t in prog.inputs] == ["x", "window_in"]
    assert [t.name for t in prog.outputs] == ["weights", "means", "scales", "prediction", "variance", "window_out"]


def test_facade_errors():
    with pytest.raises(ConfigError, match="num_outputs: must be an integer >= 1, got 0"):
        RecurrentGaussianMixtureRegressor(num_outputs=0)
    with pytest.raises(ConfigError, match="not trained yet"):
        RecurrentGaussianMixtureRegressor().prediction(from_input=None)
    with pytest.raises(ConfigError, match=r"num_outputs is 2 but the target columns are \['y0'\]"):
        RecurrentGaussianMixtureRegressor(num_outputs=2).train(sine_table(50), ModelParameters(target_columns=["y0"]))


# -- the Forecaster's Python API: inputs it cannot take are one line -----------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from coreml_lstm import Forecaster  # noqa: E402
from coreml_lstm.errors import CoreMLLSTMError, DataError, WriteError  # noqa: E402

QUICK = dict(time="t", window=8, horizon=2, epochs=2, hidden_size=8, num_layers=1, progress=False)


@pytest.fixture(scope="module")
def forecaster():
    return Forecaster("y0", **QUICK).fit(sine_table(120))


def one_line(fn, *args, kind=CoreMLLSTMError) -> str:
    with pytest.raises(kind) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 12), st.integers(0, 4)), bad=st.sampled_from([None, np.nan, np.inf, -np.inf, 1e39]),
       where=st.integers(0, 10**6))
def test_predict_windows_takes_finite_windows_of_its_shape_or_says_which(forecaster, shape, bad, where):
    x = np.full(shape, 10.0)
    expected = "expected shape (N, 8, 2): N windows of 8 steps of [y0, driver]"
    if shape[1:] != (8, 2):  # a wrong shape raised torch's RuntimeError (mat1 and mat2 shapes cannot be multiplied)
        assert one_line(forecaster.predict_windows, x, kind=DataError) == f"windows: {expected}, got shape {shape}"
        return
    if bad is None or shape[0] == 0:
        out = forecaster.predict_windows(x)
        assert out.shape == (shape[0], 2, 1) and np.isfinite(out).all()
        return
    n, t, c = np.unravel_index(where % x.size, x.shape)
    x[n, t, c] = bad  # NaN came back as NaN forecasts
    what = "value beyond the float32 range" if np.isfinite(bad) else "non-finite value"
    assert one_line(forecaster.predict_windows, x, kind=DataError) == f"windows: window {n}, step {t}, column {['y0', 'driver'][c]!r}: {what} {bad!r}"


def test_column_names_that_are_numbers_series_arrays_and_saving_over_a_file(forecaster, tmp_path):
    table = sine_table(120).rename(columns={"y0": 0})
    f = Forecaster(0, **QUICK).fit(table)  # TypeError: 'int' object is not iterable
    assert f.checkpoint_.target_columns == ["0"] and list(f.predict(table, last_only=True).columns) == ["t", "0_t+1", "0_t+2"]
    assert one_line(Forecaster, ["y0", None], kind=ConfigError) == "target: expected a column name or a list of them, got NoneType None"
    series = sine_table(120)["y0"]
    g = Forecaster("y0", window=8, horizon=2, epochs=2, hidden_size=8, num_layers=1, progress=False).fit(series)  # pathlib's TypeError
    assert g.checkpoint_.input_columns == ["y0"]
    assert one_line(Forecaster("y0", **QUICK).fit, series.rename(None), kind=DataError) == (
        "training data: a Series needs a name, its column's (series.rename('load'))")
    assert one_line(Forecaster("y0", **QUICK).fit, series.to_numpy()[:, None], kind=DataError) == (
        "training data: expected a DataFrame or a CSV or Parquet path, got numpy.ndarray")
    (tmp_path / "afile").write_text("")
    assert one_line(forecaster.save, tmp_path / "afile", kind=WriteError) == (  # NotADirectoryError
        f"{tmp_path / 'afile'}: exists and is not a directory; a checkpoint is a directory (give another path, or remove the file)")
