import numpy as np
import pytest
import torch

from coreml_lstm import Forecaster
from coreml_lstm.errors import ConfigError
from coreml_lstm.train import TrainConfig, regression_metrics

from .conftest import FAST, sine_table


def test_fit_reports_metrics_in_original_units(sine):
    f = Forecaster("y0", time="t", **FAST).fit(sine)
    m = f.metrics_
    # Recompute from the validation windows: the reported numbers are these, in raw units.
    pred = f.predict_windows(f.dataset_.validation.x)
    err = pred - f.dataset_.validation.y
    assert m["overall"]["rmse"] == pytest.approx(float(np.sqrt(np.mean(err.astype(np.float64) ** 2))), rel=1e-6)
    assert m["overall"]["mae"] == pytest.approx(float(np.mean(np.abs(err))), rel=1e-5)
    assert set(m["targets"]) == {"y0"}
    assert len(f.history_["val_loss"]) == 4


def test_same_seed_repeats_exactly_and_other_seed_differs(sine):
    a = Forecaster("y0", time="t", seed=3, **FAST).fit(sine)
    b = Forecaster("y0", time="t", seed=3, **FAST).fit(sine)
    c = Forecaster("y0", time="t", seed=4, **FAST).fit(sine)
    for k, v in a.checkpoint_.state_dict.items():
        assert torch.equal(v, b.checkpoint_.state_dict[k]), k
    assert a.history_["val_loss"] == b.history_["val_loss"]
    assert a.history_["val_loss"] != c.history_["val_loss"]


def test_early_stopping_restores_the_best_weights(sine):
    f = Forecaster("y0", time="t", **{**FAST, "epochs": 30}, patience=2, lr=0.05).fit(sine)
    h = f.history_
    assert h["stopped_early"] and len(h["val_loss"]) == h["best_epoch"] + 3
    # The kept model's validation loss is the best epoch's, not the last one's.
    from coreml_lstm.train import evaluate, mse_loss

    assert evaluate(f.model_, mse_loss, f.dataset_.validation) == pytest.approx(h["best_val_loss"], rel=1e-5)
    assert h["best_val_loss"] == min(h["val_loss"])


def test_training_learns_a_sine():
    # Long enough to beat predicting the mean by a clear margin: the loop really optimises.
    table = sine_table(240)
    f = Forecaster("y0", time="t", window=8, hidden_size=16, epochs=40, batch_size=16, progress=False).fit(table)
    y = f.dataset_.validation.y
    baseline = float(np.sqrt(np.mean((y - y.mean()) ** 2)))
    assert f.metrics_["overall"]["rmse"] < 0.5 * baseline


def test_two_series_multi_target_and_horizon():
    table = sine_table(80, series=2, targets=2)
    f = Forecaster(["y0", "y1"], time="t", series_id="sid", horizon=3, **FAST).fit(table)
    assert f.dataset_.input_columns[:2] == ["y0", "y1"]
    assert set(f.metrics_["targets"]) == {"y0", "y1"}
    assert len(f.metrics_["targets"]["y1"]["steps"]) == 3
    out = f.predict(table, last_only=True)
    assert list(out["sid"]) == ["s0", "s1"]
    assert [c for c in out.columns if "_t+" in c] == ["y0_t+1", "y1_t+1", "y0_t+2", "y1_t+2", "y0_t+3", "y1_t+3"]


def test_save_load_round_trip_predicts_the_same(tmp_path, sine):
    f = Forecaster("y0", time="t", **FAST).fit(sine)
    f.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "metrics.json", "model.safetensors", "validation.safetensors"]
    g = Forecaster.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(f.predict(sine).to_numpy(), g.predict(sine).to_numpy())
    assert g.metrics_ == f.metrics_


def test_regression_metrics_by_hand():
    y = np.array([[[1.0]], [[2.0]], [[0.0]]])  # (N=3, horizon=1, T=1)
    p = np.array([[[2.0]], [[2.0]], [[1.0]]])
    m = regression_metrics(y, p, ["a"])
    assert m["overall"]["rmse"] == pytest.approx(np.sqrt(2 / 3))
    assert m["overall"]["mae"] == pytest.approx(2 / 3)
    assert m["overall"]["mape"] == pytest.approx(50.0)  # the zero true value is skipped


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "epochs: must be an integer >= 1, got 0"),
        (dict(schedule="warm"), "schedule: 'warm' is not one of none, plateau, cosine"),
        (dict(lr=0.0), "lr: must be > 0, got 0.0"),
    ],
)
def test_bad_train_config(kwargs, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**kwargs)
    assert str(e.value) == message


def test_unfitted_forecaster_says_so():
    with pytest.raises(ConfigError, match="not fitted yet"):
        Forecaster("y").predict(None)


@pytest.mark.parametrize("schedule", ["plateau", "cosine"])
def test_schedules_run(sine, schedule):
    f = Forecaster("y0", time="t", schedule=schedule, **FAST).fit(sine)
    assert np.isfinite(f.history_["val_loss"]).all()


def test_mape_says_how_many_zeros_it_leaves_out():
    from coreml_lstm.cli import format_metrics
    from coreml_lstm.train import regression_metrics

    y = np.array([0.0, 2.0, 0.0, 4.0]).reshape(4, 1, 1)
    m = regression_metrics(y, y + 1.0, ["count"])
    assert m["overall"]["mape"] == pytest.approx(37.5) and m["overall"]["mape_zeros"] == 2
    assert format_metrics(m).endswith("(MAPE leaves out the 2 of 4 true values that are 0)")
    assert "leaves out" not in format_metrics(regression_metrics(y + 1, y + 2, ["count"]))
