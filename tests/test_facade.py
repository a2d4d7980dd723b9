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
