"""The mixture head: its maths against independent references, its outputs, training and export."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from coreml_lstm import Forecaster
from coreml_lstm.errors import ConfigError
from coreml_lstm.mixture import crps, log_likelihood, quantile
from coreml_lstm.model import ModelConfig, RecurrentModel

from .conftest import FAST, sine_table


def test_single_gaussian_closed_forms():
    w, mu, s = np.array([[1.0, 0.0]]), np.array([[0.0, 9.0]]), np.array([[1.0, 1.0]])
    # CRPS of N(0, 1) at 0 is 2 phi(0) - 1 / sqrt(pi); the 95% quantile is 1.6449; log pdf at 0.
    assert crps(w, mu, s, np.array([0.0]))[0] == pytest.approx(2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi))
    assert quantile(w, mu, s, 0.95)[0] == pytest.approx(1.6448536, abs=1e-6)
    assert log_likelihood(w, mu, s, np.array([0.0]))[0] == pytest.approx(-0.5 * math.log(2 * math.pi))


def test_mixture_crps_matches_monte_carlo():
    rng = np.random.default_rng(0)
    w, mu, s, y = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.5, 1.5]), 0.4
    pick = lambda n: rng.choice(2, size=n, p=w)  # noqa: E731
    a, b = pick(400_000), pick(400_000)
    x1, x2 = rng.normal(mu[a], s[a]), rng.normal(mu[b], s[b])
    mc = np.mean(np.abs(x1 - y)) - 0.5 * np.mean(np.abs(x1 - x2))
    assert crps(w[None], mu[None], s[None], np.array([y]))[0] == pytest.approx(mc, abs=5e-3)


def test_outputs_are_a_valid_distribution_in_original_units():
    torch.manual_seed(0)
    # Global scaling: the frame is the fixed (target_mean, target_std) set here.
    m = RecurrentModel(ModelConfig(head="mixture", mixtures=4, hidden_size=8, scaling="global"), n_inputs=2, n_targets=2, horizon=3).eval()
    m.target_mean.copy_(torch.tensor([100.0, -5.0]))
    m.target_std.copy_(torch.tensor([10.0, 0.5]))
    w, mu, s, mean, var = m(torch.randn(5, 6, 2))
    assert w.shape == mu.shape == s.shape == (5, 3, 2, 4) and mean.shape == var.shape == (5, 3, 2)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 3, 2))
    assert (s > 0).all() and (s[..., 0, :] >= 10 * 1e-3).all()
    torch.testing.assert_close(mean, (w * mu).sum(-1))
    # Law of total variance, computed the naive way in float64.
    w64, mu64, s64 = w.double(), mu.double(), s.double()
    naive = (w64 * (s64**2 + mu64**2)).sum(-1) - ((w64 * mu64).sum(-1)) ** 2
    torch.testing.assert_close(var.double(), naive, rtol=1e-4, atol=1e-6)


def test_k_below_one_is_refused():
    with pytest.raises(ConfigError, match=r"^mixtures: must be an integer >= 1, got 0$"):
        Forecaster("y0", head="mixture", mixtures=0)


def test_training_reports_probabilistic_metrics_next_to_k1(sine):
    runs = {k: Forecaster("y0", time="t", head="mixture", mixtures=k, **{**FAST, "epochs": 8}).fit(sine) for k in (1, 3)}
    for k, f in runs.items():
        p = f.metrics_["probabilistic"]["overall"]
        assert np.isfinite(p["nll"]) and p["crps"] > 0 and 0 <= p["coverage50"] <= p["coverage90"] <= 1
    frame = runs[3].predict(sine, last_only=True)
    row = frame.iloc[0]
    assert row["y0_t+1_q05"] < row["y0_t+1_q25"] < row["y0_t+1_q75"] < row["y0_t+1_q95"]
    assert row["y0_t+1_std"] > 0


def test_mixture_nll_decreases_while_training():
    f = Forecaster("y0", time="t", head="mixture", mixtures=2, window=8, hidden_size=8, epochs=15, progress=False).fit(sine_table(200))
    h = f.history_["train_loss"]
    assert h[-1] < h[0]


@pytest.mark.parametrize("precision, target", [("fp32", "iOS16"), ("fp16", "iOS17")])
def test_mixture_export_passes_verify(tmp_path, precision, target):
    from coreml_lstm.export import INPUT_NAME
    from coreml_lstm.verify import verify_program

    f = Forecaster("y0", time="t", head="mixture", mixtures=3, **FAST).fit(sine_table())
    # A calibration far from 1, so that a package ignoring it could not pass.
    f.checkpoint_.state_dict["interval_scale"] = torch.tensor([3.0])
    f.model_ = f.checkpoint_.build_model()
    path = f.export(tmp_path / "m.mlpackage", precision=precision, target=target)
    x = f.checkpoint_.validation_x
    report = verify_program(str(path), f.model_, [{INPUT_NAME: x[i : i + 1]} for i in range(len(x))])
    assert {c.output for c in report.ran} == {"weights", "means", "scales", "prediction", "variance"}
    assert report.status == "passed", [c.line() for c in report.checks]


def test_sunspots_mixture_is_calibrated_and_beats_k1_on_nll():
    """The acceptance bar on the embedded data (seed 0, settings of scripts/mixture_report.py)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    from mixture_report import fit

    k3, k1 = fit(3, 0).metrics_["probabilistic"]["overall"], fit(1, 0).metrics_["probabilistic"]["overall"]
    print(f"K=3: NLL {k3['nll']:.3f}, 90% coverage {k3['coverage90']:.3f}; K=1: NLL {k1['nll']:.3f}, 90% coverage {k1['coverage90']:.3f}")
    assert 0.85 <= k3["coverage90"] <= 0.95
    assert k3["nll"] < k1["nll"]


# -- interval calibration ---------------------------------------------------------------------


@pytest.mark.parametrize("spread", [0.5, 2.0])
def test_interval_scale_recovers_a_wrong_spread(spread):
    """A N(0, 1) forecast of values drawn from N(0, spread^2) needs the stretch ``spread``."""
    from coreml_lstm.mixture import interval_scale

    rng = np.random.default_rng(0)
    n, k = 4000, 2
    w = np.full((n, 1, 1, k), 0.5)
    mu, s = np.zeros((n, 1, 1, k)), np.ones((n, 1, 1, k))
    y = spread * rng.standard_normal((n, 1, 1))
    c = interval_scale(w, mu, s, y, bounds=(0.05, 20.0))
    assert c.shape == (1,) and c[0] == pytest.approx(spread, rel=0.06)
    # The conformal rank: at least 90% of the values are inside the stretched interval, and not many more.
    half = c[0] * 1.6448536
    inside = np.mean(np.abs(y) <= half)
    assert 0.9 <= inside <= 0.9 + 2 / n
    # The default only widens: intervals too wide on these values stay as trained.
    assert interval_scale(w, mu, s, y)[0] == (1.0 if spread < 1 else c[0])


def test_calibrated_mixture_is_the_trained_one_stretched_about_its_mean():
    torch.manual_seed(0)
    m = RecurrentModel(ModelConfig(head="mixture", mixtures=3, hidden_size=8, scaling="global"), n_inputs=1, n_targets=2, horizon=2).eval()
    m.target_mean.copy_(torch.tensor([50.0, -3.0]))
    m.target_std.copy_(torch.tensor([5.0, 0.2]))
    x = torch.randn(4, 6, 1)
    with torch.no_grad():
        w0, mu0, s0, mean0, var0 = (t.double().numpy() for t in m(x))
        m.interval_scale.copy_(torch.tensor([2.5, 0.4]))
        w1, mu1, s1, mean1, var1 = (t.double().numpy() for t in m(x))
    c = np.array([2.5, 0.4])
    np.testing.assert_allclose(w1, w0, rtol=1e-6)
    np.testing.assert_allclose(mean1, mean0, rtol=1e-5, atol=1e-5)  # the point forecast does not move
    np.testing.assert_allclose(var1, var0 * c**2, rtol=1e-4)
    for q in (0.05, 0.95):
        np.testing.assert_allclose(quantile(w1, mu1, s1, q), mean0 + c * (quantile(w0, mu0, s0, q) - mean0), rtol=1e-4, atol=1e-4)


def _noisier(table, seed: int, sd: float = 0.6):
    """The same process with more noise: intervals trained on ``table`` are too narrow for it."""
    out = table.copy()
    out["y0"] = out["y0"] + sd * np.random.default_rng(seed).standard_normal(len(out))
    return out


def test_fit_widens_too_narrow_intervals_on_validation_and_they_hold_on_new_windows():
    from coreml_lstm.data import prediction_windows

    table = sine_table(400, seed=1)
    validation = _noisier(sine_table(200, seed=2), seed=3)
    settings = dict(time="t", head="mixture", mixtures=2, **{**FAST, "epochs": 6})
    raw = Forecaster("y0", calibrate=False, **settings).fit(table, validation)
    cal = Forecaster("y0", **settings).fit(table, validation)
    assert "interval_scale" not in raw.metrics_ and len(cal.metrics_["interval_scale"]) == 1
    assert raw.metrics_["probabilistic"]["overall"]["coverage90"] < 0.85  # trained on the quieter table: too narrow
    assert cal.metrics_["interval_scale"][0] > 1.2
    assert cal.metrics_["probabilistic"]["overall"]["coverage90"] >= 0.9
    assert cal.checkpoint_.state_dict["interval_scale"][0] == pytest.approx(cal.metrics_["interval_scale"][0])
    # Windows the calibration never saw: the noisier process, other noise.
    new = _noisier(sine_table(400, seed=7), seed=8)
    x = prediction_windows(new, cal.checkpoint_.data_config, cal.checkpoint_.input_columns).x
    W, H = cal.checkpoint_.window, cal.checkpoint_.horizon
    x = np.asarray(x)[: len(new) - W - H + 1]
    y = np.stack([new["y0"].to_numpy()[i + W : i + W + H] for i in range(len(x))])
    d = cal.predict_distribution(x)
    w, mu, s = (d[k][:, :, 0] for k in ("weights", "means", "scales"))
    covered = np.mean((y >= quantile(w, mu, s, 0.05)) & (y <= quantile(w, mu, s, 0.95)))
    assert 0.8 <= covered <= 0.98, covered


def test_fit_never_narrows_intervals():
    """Trained on the noisier table and validated on the quieter one, the intervals are too wide
    there: they ship as trained."""
    settings = dict(time="t", head="mixture", mixtures=2, **{**FAST, "epochs": 6})
    f = Forecaster("y0", **settings).fit(_noisier(sine_table(400, seed=1), seed=4), sine_table(200, seed=2))
    assert f.metrics_["probabilistic"]["overall"]["coverage90"] > 0.95
    assert f.metrics_["interval_scale"] == [1.0]


def test_checkpoints_from_before_calibration_load_uncalibrated(tmp_path):
    f = Forecaster("y0", time="t", head="mixture", mixtures=2, **FAST).fit(sine_table())
    f.checkpoint_.state_dict.pop("interval_scale")
    f.save(tmp_path / "old")
    old = Forecaster.load(tmp_path / "old")
    assert old.model_.interval_scale.tolist() == [1.0]


def test_an_fp16_mixture_variance_stays_finite_when_a_window_is_nearly_constant(tmp_path):
    """Runs of zeros make a window's scale the floor (1e-3 of the series' spread), so spreads in
    frame units pass 256 and their fp16 squares overflow: the variance is squared in raw units, in fp32."""
    from coreml_lstm.export import INPUT_NAME
    from coreml_lstm.verify import verify_program

    values = [7, 26, 9, 0, -22, 27, 34, 0, 0, 1, 0, 0, 6, 948.4, 1, 2, 28, 668.4, -46, 5, -22, 824.6]
    ids = ["a"] * 16 + ["b"] * 3 + ["c"] * 3
    frame = pd.DataFrame({"y": values, "id": ids})
    f = Forecaster("y", series_id="id", head="mixture", mixtures=2, hidden_size=2, num_layers=1, epochs=1, batch_size=8, progress=False).fit(frame)
    x = f.checkpoint_.validation_x
    with torch.no_grad():
        z, _ = f.model_.frame(torch.as_tensor(x))
        _, _, s = f.model_.forward_normalized(z)
    assert float(s.max()) > 256  # s * s > 65504: inf in fp16
    path = f.export(tmp_path / "m.mlpackage", precision="fp16", target="iOS17")
    report = verify_program(str(path), f.model_, [{INPUT_NAME: x[i : i + 1]} for i in range(len(x))])
    assert report.status == "passed", [c.line() for c in report.failed]
