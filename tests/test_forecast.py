"""Forecasting out of the box: window scaling, seasons, defaults from the data, baselines, backtests."""

import json
import warnings
import re

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coreml_lstm import Forecaster
from coreml_lstm.baselines import compare, mase_scale, naive_forecast, seasonal_naive_forecast, window_forecasts
from coreml_lstm.cli import format_selection, main
from coreml_lstm.data import DataConfig, prepare
from coreml_lstm.errors import ConfigError, DataError, DataWarning
from coreml_lstm.model import ModelConfig, RecurrentModel
from coreml_lstm.season import infer_season

from .strategies import examples

TINY = dict(hidden_size=8, num_layers=1, epochs=3, batch_size=16, progress=False)


def seasonal_trend(n, *, start="2000-01-01", freq="MS", season=12, slope=1.0, seed=0):
    """A positive series with a linear trend, a season and a little noise, with a date column."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 100 + slope * t + 10 * np.sin(2 * np.pi * t / season) + rng.normal(0, 0.5, n)
    return pd.DataFrame({"date": pd.date_range(start, periods=n, freq=freq), "y": y})


# -- seasons and defaults -------------------------------------------------------------------


@pytest.mark.parametrize("freq, season", [("h", 24), ("30min", 48), ("D", 7), ("B", 5), ("W-SUN", 52), ("MS", 12), ("ME", 12), ("QS", 4), ("YS", 1)])
def test_season_from_the_time_column(freq, season):
    assert infer_season(pd.Series(pd.date_range("2001-01-01", periods=40, freq=freq))) == season


def test_no_season_from_numbers_or_irregular_times():
    assert infer_season(pd.Series(np.arange(1700, 1800))) == 1
    assert infer_season(pd.to_datetime(pd.Series(["2020-01-01", "2020-01-02", "2020-01-09", "2020-03-01"]))) == 1


def test_defaults_follow_the_season_and_can_be_overridden():
    frame = seasonal_trend(120)
    ds = prepare(frame, config=DataConfig(target="y", time="date"))
    assert (ds.config.season, ds.config.horizon, ds.config.window) == (12, 12, 24)
    ds = prepare(frame, config=DataConfig(target="y", time="date", season=4, horizon=2, window=10))
    assert (ds.config.season, ds.config.horizon, ds.config.window) == (4, 2, 10)


def test_a_small_series_trains_and_an_impossible_one_says_what_to_change(tmp_path):
    frame = seasonal_trend(30)  # 30 monthly points, 6 ahead: the window shrinks, validation is one horizon
    f = Forecaster("y", time="date", horizon=6, **TINY).fit(frame)
    cfg = f.checkpoint_.data_config
    assert cfg.window + cfg.horizon <= 30 - 6 and len(f.dataset_.train) >= 8 and len(f.dataset_.validation) >= 1
    path = tmp_path / "short.csv"
    frame.head(10).to_csv(path, index=False)
    with pytest.raises(DataError) as e:
        Forecaster("y", time="date", horizon=6, window=4, **TINY).fit(path)
    assert str(e.value) == (f"{path}: the table has 10 rows; window 4 + horizon 6 with a 0.2 validation split needs at least 16 "
                            "(use a smaller window or horizon, or give a separate validation table)")


def test_one_short_series_that_sets_every_series_window_is_named(tmp_path):
    long = [seasonal_trend(n, seed=n).assign(store=name) for n, name in ((96, "north"), (120, "south"))]
    short = seasonal_trend(30).assign(store="east")
    path = tmp_path / "stores.csv"
    pd.concat(long + [short]).to_csv(path, index=False)
    f = Forecaster("y", time="date", series_id="store", horizon=6, **TINY).fit(path)
    window = f.checkpoint_.data_config.window
    (warning,) = [w for w in f.metrics_["warnings"] if "limits the default window" in w]
    assert warning.startswith(f"{path}: series 'east' (30 rows) limits the default window to {window} for every series "
                              "(a series of the median length, 96 rows, allows 24)")
    # Series of one length, or a window given: nothing to say.
    even = pd.concat([seasonal_trend(96, seed=k).assign(store=str(k)) for k in range(2)])
    assert not [w for w in Forecaster("y", time="date", series_id="store", horizon=6, **TINY).fit(even).metrics_["warnings"] if "limits" in w]
    given = Forecaster("y", time="date", series_id="store", horizon=6, window=window, **TINY).fit(path)
    assert not [w for w in given.metrics_["warnings"] if "limits" in w]


def test_one_short_series_that_shrinks_every_series_horizon_is_named(tmp_path):
    """Series of 300, 300 and 40 daily rows got horizon 4, not the season's 7, and only the
    window's shrink was said: the horizon's is said too, naming the series and the rows the
    default needs (a tenth of the shortest series: 70)."""
    frames = [seasonal_trend(n, freq="D", season=7, seed=k).assign(store=name) for k, (n, name) in enumerate(((300, "a"), (300, "b"), (40, "c")))]
    path = tmp_path / "stores.csv"
    pd.concat(frames).to_csv(path, index=False)
    f = Forecaster("y", time="date", series_id="store", **TINY).fit(path)
    assert f.checkpoint_.data_config.horizon == 4 and f.checkpoint_.data_config.season == 7
    (warning,) = [w for w in f.metrics_["warnings"] if "default horizon" in w]
    assert warning == (f"{path}: series 'c' (40 rows) limits the default horizon to 4 for every series (the default, one season of 7, "
                       "needs every series to have 70 rows: the horizon is at most a tenth of the shortest series); give --horizon, "
                       "or train without the shortest series")
    long = pd.concat(frames[:2])  # every series long enough, or a horizon given: nothing to say
    assert not [w for w in Forecaster("y", time="date", series_id="store", **TINY).fit(long).metrics_["warnings"] if "default horizon" in w]
    assert not [w for w in Forecaster("y", time="date", series_id="store", horizon=4, **TINY).fit(path).metrics_["warnings"] if "default horizon" in w]


def test_log_needs_positive_targets_and_says_where(tmp_path):
    frame = seasonal_trend(60)
    frame.loc[41, "y"] = 0.0
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as e:
        Forecaster("y", time="date", log=True, **TINY).fit(path)
    assert str(e.value) == f"{path}: column 'y', row 42: value 0.0 is not positive; log scaling needs every target value > 0 (train without --log)"
    # Rows out of time order, two series: the row named is still the file's (was the sorted position).
    two = pd.concat([seasonal_trend(60).assign(store="a"), frame.assign(store="b")]).sample(frac=1, random_state=0).reset_index(drop=True)
    two.to_csv(path, index=False)
    row = int(np.flatnonzero(two["y"].to_numpy() <= 0)[0]) + 1
    for source in (path, two):
        with pytest.raises(DataError, match=f"column 'y', row {row}: value 0.0 is not positive"):
            Forecaster("y", time="date", series_id="store", log=True, **TINY).fit(source)
    with pytest.raises(ConfigError, match="log: a mixture head"):
        Forecaster("y", log=True, head="mixture")


def test_old_checkpoints_hold_globally_scaled_models():
    old = {k: v for k, v in ModelConfig().to_dict().items() if k not in ("scaling", "log")}
    assert ModelConfig.from_dict(old).scaling == "global"


# -- the model's frame and its start ----------------------------------------------------------


def _model(window, horizon, season, kind, n_features=1):
    model = RecurrentModel(ModelConfig(hidden_size=4, num_layers=1), n_features, 1, horizon, window)
    weights = model.baseline_weights(kind, season)
    if weights is None:
        return None
    model.start_from_baseline(season)  # zeroes the head
    with torch.no_grad():
        model.highway.weight.copy_(weights)
    return model.eval()


@settings(max_examples=25, deadline=None)
@given(
    window=st.integers(3, 20), horizon=st.integers(1, 8), season=st.integers(2, 8), seed=st.integers(0, 10_000),
    level=st.floats(-1e3, 1e3), spread=st.floats(1e-2, 1e2),
    kind=st.sampled_from(["naive", "seasonal naive", "naive with drift", "naive with damped drift", "seasonal naive with drift"]),
)
def test_the_start_is_the_classical_forecast_in_raw_units(window, horizon, season, seed, level, spread, kind):
    model = _model(window, horizon, season, kind)
    if model is None:  # the window is too short for it: a season (seasonal naive), more with drift
        assert kind.startswith("seasonal") and (season > window if kind == "seasonal naive" else season >= window)
        return
    x = level + spread * np.random.default_rng(seed).standard_normal(window)
    h = np.arange(horizon)
    expected = {
        "naive": np.full(horizon, x[-1]),
        "seasonal naive": x[window - season + h % season] if season <= window else None,
        "naive with drift": x[-1] + (h + 1) * (x[-1] - x[0]) / max(window - 1, 1),
        "naive with damped drift": x[-1] + np.array([sum(0.9**i for i in range(1, k + 2)) for k in h]) * (x[-1] - x[0]) / max(window - 1, 1),
        "seasonal naive with drift": (x[window - season + h % season] + (1 + h // season) * np.mean(x[season:] - x[:-season])) if season < window else None,
    }[kind]
    with torch.no_grad():
        got = model(torch.as_tensor(x, dtype=torch.float32)[None, :, None])[0, :, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * spread + 1e-4 * abs(level))


@settings(max_examples=40, deadline=None)
@given(window=st.integers(1, 16), horizon=st.integers(1, 20), season=st.integers(1, 20), seed=st.integers(0, 10_000), targets=st.integers(1, 2))
@example(window=7, horizon=7, season=7, seed=0, targets=1)  # a window of one season (the default for 1000 series of 20 days)
@example(window=7, horizon=10, season=8, seed=0, targets=1)  # a season longer than the window
def test_the_classical_starts_are_the_baselines_forecasts(window, horizon, season, seed, targets):
    """Naive and seasonal naive through the model's frame equal baselines.py's numpy forecasts
    from the same window, for every window, season and horizon; seasonal naive is among the
    starts exactly when a window holds a season (baselines.py falls back to naive otherwise),
    and no start reads outside the window."""
    model = RecurrentModel(ModelConfig(hidden_size=4, num_layers=1), targets, targets, horizon, window)
    x = (5 + np.random.default_rng(seed).standard_normal((3, window, targets))).astype(np.float32)
    starts = model.baselines(season)
    assert ("seasonal naive" in starts) == (1 < season <= window)
    assert ("seasonal naive with drift" in starts) == (1 < season < window)
    assert all(w.shape == (horizon, window) for w in starts.values())
    got = model.baseline_forecasts(season, x)
    for i in range(len(x)):
        np.testing.assert_allclose(got["naive"][i].numpy(), naive_forecast(x[i], window, horizon), rtol=1e-5, atol=1e-5)
        want = seasonal_naive_forecast(x[i], window, horizon, season)
        np.testing.assert_allclose(got.get("seasonal naive", got["naive"])[i].numpy(), want, rtol=1e-5, atol=1e-5)


def test_a_window_of_one_season_starts_from_and_can_ship_seasonal_naive():
    """Window 7 on daily data (season 7): seasonal naive was left out of the start and of what ships."""
    n = 200
    t = np.arange(n)
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=n, freq="D"),
                          "y": 10 + 3 * np.sin(2 * np.pi * t / 7) + np.random.default_rng(0).normal(0, 0.1, n)})
    f = Forecaster("y", time="date", window=7, **{**TINY, "epochs": 1}).fit(frame)
    assert f.checkpoint_.data_config.season == 7 and f.metrics_["start"] == "seasonal naive"
    mae = f.metrics_["selection"]["mae"]
    assert "seasonal naive" in mae and "seasonal naive with drift" not in mae and mae["seasonal naive"] < mae["naive"]


def _walks(rng, n, window, horizon, level, spread, drift, targets=1):
    """n random-walk windows (n, window, targets) with drift and the horizon after each (n, horizon, targets)."""
    steps = drift + spread * rng.standard_normal((n, window + horizon, targets))
    path = level + np.cumsum(steps, axis=1)
    return path[:, :window].astype(np.float32), path[:, window:].astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(
    window=st.integers(2, 20), horizon=st.integers(1, 8), season=st.integers(2, 8), mixtures=st.integers(1, 4),
    targets=st.integers(1, 3), seed=st.integers(0, 10_000), level=st.floats(-1e4, 1e4), spread=st.floats(1e-2, 1e3),
    drift=st.floats(-5, 5),
)
def test_a_mixture_starts_with_the_spread_of_its_start_s_own_errors(window, horizon, season, mixtures, targets, seed, level, spread, drift):
    rng = np.random.default_rng(seed)
    x, y = _walks(rng, 64, window, horizon, level, spread, drift * spread, targets)
    torch.manual_seed(seed)
    model = RecurrentModel(ModelConfig(hidden_size=4, num_layers=1, head="mixture", mixtures=mixtures), targets, targets, horizon, window)
    chosen = model.start_from_baseline(season, x, y)
    # The spread each step's start error has, in the frame: the window minus its last value over
    # its mean absolute deviation (plus the floor: target_std is 1 here).
    d = x.astype(np.float64) - x[:, -1:]
    frame_scale = np.abs(d - d.mean(1, keepdims=True)).mean(1, keepdims=True) + 1e-3  # (n, 1, T)
    start = model.baseline_forecasts(season, x)[chosen].numpy().astype(np.float64)  # (n, horizon, T)
    rms = np.sqrt((((y - start) / frame_scale) ** 2).mean(0))  # (horizon, T)
    with torch.no_grad():
        model.head.weight.zero_()  # the recurrent output's share: the bias alone is the start
        scales = model(torch.as_tensor(x))[2].numpy()  # (n, horizon, T, K) raw units
    expected = (np.maximum(rms, 2e-3)[None] * frame_scale)[..., None]
    # Both sides round the start's raw values to float32: a level of 4096 is kept to ~5e-4.
    rounding = 4 * np.finfo(np.float32).eps * float(np.abs(x).max())
    np.testing.assert_allclose(scales, np.broadcast_to(expected, scales.shape), rtol=2e-3, atol=rounding)


def test_the_untrained_mixture_covers_its_start_s_errors_about_as_stated():
    # The start is a Gaussian per step with the start's own root mean square error: on Gaussian
    # random walks its central 90% interval covers about 90% of the targets at every step (the
    # softplus(0) start it replaced covered whatever one frame unit happened to cover).
    from coreml_lstm.mixture import quantile

    x, y = _walks(np.random.default_rng(3), 4000, 24, 6, 500.0, 10.0, 2.0)  # one target
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig(hidden_size=8, num_layers=1, head="mixture", mixtures=3), 1, 1, 6, 24)
    model.start_from_baseline(1, x, y)
    with torch.no_grad():
        w, mu, s = (t.double().numpy()[..., 0, :] for t in model(torch.as_tensor(x))[:3])
    lo, hi = quantile(w, mu, s, 0.05), quantile(w, mu, s, 0.95)
    covered = ((y[..., 0] >= lo) & (y[..., 0] <= hi)).mean(0)  # per step
    assert ((covered > 0.86) & (covered < 0.94)).all(), covered


def test_window_scaling_is_equivariant_and_a_constant_window_is_finite():
    model = RecurrentModel(ModelConfig(hidden_size=8, num_layers=1), 1, 1, 3, 12).eval()
    x = torch.randn(4, 12, 1)
    with torch.no_grad():
        base = model(x)
        # The same shape at another level and scale: the forecast moves and stretches with it.
        torch.testing.assert_close(model(1000.0 + 50.0 * x), 1000.0 + 50.0 * base, rtol=1e-4, atol=1e-2)
        flat = model(torch.full((1, 12, 1), 7.0))
    assert torch.isfinite(flat).all()


def test_a_blend_with_a_baseline_is_exactly_the_average_of_the_two():
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig(hidden_size=8, num_layers=1), 2, 1, 4, 10).eval()
    x = 20 + 3 * torch.randn(5, 10, 2)
    with torch.no_grad():
        net = model(x)
        base = model.baseline_forecasts(3, x)["seasonal naive"]
        model.blend_with_baseline("seasonal naive", 3, 0.25)
        torch.testing.assert_close(model(x), 0.75 * net + 0.25 * base, rtol=1e-5, atol=1e-4)


def test_a_series_nothing_improves_on_ships_exactly_its_seasonal_naive(tmp_path):
    import coreml_lstm.executor as ex

    pattern = np.array([3.0, 7, 1, 9, 4, 6, 2, 8, 5, 10, 0, 11])
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=96, freq="MS"), "y": 100 + np.tile(pattern, 8)})
    f = Forecaster("y", time="date", horizon=6, **TINY).fit(frame)
    sel = f.metrics_["selection"]
    assert sel["shipped"] in ("seasonal naive", "seasonal naive with drift"), sel
    assert sel["mae"][sel["shipped"]] == min(sel["mae"].values())
    assert ("network" in sel["mae"]) == (f.history_["best_epoch"] >= 0)  # early stopping kept the start: no network
    assert f.metrics_["overall"]["mae"] == pytest.approx(sel["mae"][sel["shipped"]], rel=1e-6, abs=1e-9)
    W = f.checkpoint_.window
    y = frame["y"].to_numpy()
    path = f.export(tmp_path / "m.mlpackage")
    got = ex.load(path).predict({"window": y[None, -W:, None].astype(np.float32)}, mode="fp32")["forecast"][0, :, 0]
    np.testing.assert_allclose(got, y[-12:-6], rtol=1e-5)  # one season back
    kept = Forecaster("y", time="date", horizon=6, select="network", **TINY).fit(frame)
    assert "selection" not in kept.metrics_
    with pytest.raises(ConfigError, match=r"^select: 'best' is not one of validation, network$"):
        Forecaster("y", select="best")


def test_with_series_of_different_scales_the_choice_is_on_errors_scaled_per_series():
    """A random walk near 1e7 and an exact monthly pattern near 10: on raw MAE the large series
    alone chose what ships for both (naive: the pattern's forecasts off by its whole swing)."""
    rng = np.random.default_rng(0)
    t = pd.date_range("2000-01-01", periods=120, freq="MS")
    big = pd.DataFrame({"date": t, "y": 1e7 + 1e5 * np.cumsum(rng.normal(0, 1, 120)), "s": "big"})
    small = pd.DataFrame({"date": t, "y": 10 + np.tile([3.0, 7, 1, 9, 4, 6, 2, 8, 5, 10, 0, 11], 10), "s": "small"})
    f = Forecaster("y", time="date", series_id="s", horizon=6, **TINY).fit(pd.concat([big, small]))
    sel = f.metrics_["selection"]
    assert sel["shipped"] == min(sel["scaled"], key=sel["scaled"].get) != min(sel["mae"], key=sel["mae"].get), sel
    assert format_selection(sel).startswith(f"shipped: {sel['shipped']} (validation MAE ")
    assert "scaled per series and target" in format_selection(sel)
    one = Forecaster("y", time="date", horizon=6, **TINY).fit(small.drop(columns="s"))
    assert "scaled" not in one.metrics_["selection"]  # one series, one target: the MAE decides alone
    # A series constant through training (no seasonal, naive or spread scale) is scaled by its level,
    # not counted in raw units: at 1e7 it chose naive for the pattern.
    still = big.assign(y=np.r_[np.full(96, 1e7), 1e7 + np.cumsum(rng.normal(0, 1000, 24))])
    g = Forecaster("y", time="date", series_id="s", horizon=6, **TINY).fit(pd.concat([still, small]))
    assert g.metrics_["selection"]["shipped"].startswith("seasonal naive"), g.metrics_["selection"]


def test_cli_train_says_what_shipped_and_can_keep_the_network(tmp_path):
    pattern = np.array([3.0, 7, 1, 9, 4, 6, 2, 8, 5, 10, 0, 11])
    csv = tmp_path / "periodic.csv"
    pd.DataFrame({"date": pd.date_range("2000-01-01", periods=96, freq="MS"), "y": 100 + np.tile(pattern, 8)}).to_csv(csv, index=False)
    args = ["train", str(csv), "--target", "y", "--time", "date", "--horizon", "6", "--hidden-size", "4", "--epochs", "2", "--quiet"]
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert re.search(r"^shipped: seasonal naive( with drift)? \(validation MAE [0-9.e+-]+; naive [0-9.]+", r.stdout, flags=re.M), r.stdout
    r = CliRunner().invoke(main, args + ["--select", "network", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0 and "shipped:" not in r.stdout, r.output
    # The one candidate there was (window 1, the untrained start kept): nothing else to list.
    assert format_selection({"shipped": "naive", "mae": {"naive": 18.119}}) == "shipped: naive (validation MAE 18.12)"
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["train"]["select"] == "network"
    r = CliRunner().invoke(main, ["train", str(csv), "--task", "classify", "--no-calibrate"])
    assert r.exit_code == 2 and "--no-calibrate: only with --task forecast" in r.output


# -- a trend continued far outside the training range ------------------------------------------


@pytest.fixture(scope="module")
def trend_model():
    frame = seasonal_trend(150, slope=2.0)
    return Forecaster("y", time="date", horizon=6, **{**TINY, "epochs": 8}).fit(frame)


@pytest.mark.parametrize("precision, target", [("fp32", "iOS16"), ("fp16", "iOS17")])
def test_the_package_follows_a_trend_far_outside_the_training_range(tmp_path, trend_model, precision, target):
    import coreml_lstm.executor as ex

    f = trend_model
    W = f.checkpoint_.window
    far = seasonal_trend(1000 + W, slope=2.0, seed=1)["y"].to_numpy(np.float32)[-W - 6 :]  # levels ~2100 vs training 100-400
    window, truth = far[:W], far[W:]
    path = f.export(tmp_path / "m.mlpackage", precision=precision, target=target)
    got = ex.load(path).predict({"window": window[None, :, None]}, mode=precision)["forecast"][0, :, 0]
    want = f.predict_windows(window[None, :, None])[0, :, 0]
    tol = 1e-4 if precision == "fp32" else 5e-2
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # Sensible: near the continued trend (its season is +-10), not stuck at the training range.
    assert np.abs(want - truth).max() < 30, (want, truth)
    assert want.min() > 1.5 * f.dataset_.train.y.max()


@pytest.fixture(scope="module")
def huge_models():
    """Series in the tens of millions, far beyond float16's largest value (65504)."""
    frame = seasonal_trend(150, slope=2.0)
    frame["y"] *= 1e5
    return {head: Forecaster("y", time="date", horizon=6, head=head, **TINY).fit(frame) for head in ("point", "mixture")}


@pytest.mark.parametrize("head", ["point", "mixture"])
@pytest.mark.parametrize("streaming", [None, "explicit"])
def test_an_fp16_package_takes_and_returns_values_beyond_float16s_range(tmp_path, huge_models, head, streaming):
    """The network computes in fp16; the frame, its inverse and the streamed window rows in fp32.
    All in fp16, the raw values (and a mixture's variance, scale squared) overflow to inf."""
    import coreml_lstm.executor as ex
    from coreml_lstm.export import INPUT_NAME
    from coreml_lstm.verify import verify_program, verify_streaming

    f = huge_models[head]
    W = f.checkpoint_.window
    far = (seasonal_trend(400 + W, slope=2.0, seed=1)["y"].to_numpy(np.float32) * 1e5)[-W - 6 :, None]  # a trend continued
    path = f.export(tmp_path / "m.mlpackage", precision="fp16", target="iOS17", streaming=streaming, max_chunk=16)
    dtypes = {}
    for op in ex.load(path).block.ops:
        dtypes.setdefault(op.type, set()).update(np.dtype(o.dtype).name for o in op.outputs if o.dtype is not None)
    assert dtypes["lstm"] == {"float16"} and dtypes["abs"] == {"float32"}  # the network / the window's spread
    if streaming is None:
        report = verify_program(str(path), f.model_, [{INPUT_NAME: far[None, :W]}, {INPUT_NAME: far[None, 6:]}])
    else:
        report = verify_streaming(str(path), f.model_, far, chunk=W // 2 + 1)
    for check in report.checks:
        print(check.line())
    assert report.status == "passed" and all(np.isfinite(c.max_abs) for c in report.ran)
    want = f.predict_windows(far[None, :W])[0, :, 0]
    assert want.min() > 1.2 * f.dataset_.train.y.max()  # really outside the training range


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("factor", [1e5, 1e-7])
def test_a_core_ml_window_state_streams_values_far_outside_fp16_s_range(tmp_path, precision, factor):
    """Core ML states are fp16 only: the window state keeps each value over a power of two set
    from the training data, so levels of ~1e7 do not overflow and ~1e-5 do not fall into fp16's
    subnormals (in the CLI too)."""
    from coreml_lstm.verify import verify_streaming

    frame = seasonal_trend(150, slope=2.0)
    frame["y"] *= factor
    f = Forecaster("y", time="date", horizon=6, **TINY).fit(frame)
    W = f.checkpoint_.window
    far = (seasonal_trend(400 + W, slope=2.0, seed=1)["y"].to_numpy(np.float32) * factor)[-2 * W :, None]  # a trend continued
    path = f.export(tmp_path / "s.mlpackage", streaming="states", target="iOS18", precision=precision, max_chunk=16)
    report = verify_streaming(str(path), f.model_, far, chunk=W // 2 + 1)
    for check in report.checks:
        print(check.line())
    assert report.status == "passed" and report.ran
    worst = max(c.max_abs for c in report.ran if c.output == "forecast")
    assert worst < (1e-4 if precision == "fp32" else 5e-3) * float(np.abs(far).max()), worst  # relative to the values
    r = CliRunner().invoke(main, ["export", str(f.save(tmp_path / "ckpt")), str(tmp_path / "c.mlpackage"), "--streaming", "states", "--target", "iOS18"])
    assert r.exit_code == 0, r.output


def test_global_scaling_is_kept_as_an_option(trend_model):
    frame = seasonal_trend(150, slope=2.0)
    g = Forecaster("y", time="date", horizon=6, scaling="global", **{**TINY, "epochs": 8}).fit(frame)
    assert g.checkpoint_.model_config.scaling == "global" and not hasattr(g.model_, "highway")
    W = g.checkpoint_.window
    far = seasonal_trend(1000 + W, slope=2.0, seed=1)["y"].to_numpy(np.float32)[-W - 6 : -6]
    # Global z-scores saturate the recurrent net far from the training range: the reason for window scaling.
    assert np.abs(g.predict_windows(far[None, :, None]) - trend_model.predict_windows(far[None, :, None])).max() > 100


# -- baselines -------------------------------------------------------------------------------


def test_baselines_by_hand():
    frame = pd.DataFrame({"t": range(12), "y": [1.0, 2, 3, 4, 1, 2, 3, 5, 1, 2, 3, 6]})
    ds = prepare(frame, config=DataConfig(target="y", time="t", window=4, horizon=2, season=4, val_fraction=0.25))
    base = window_forecasts(ds.validation, 4, 2)
    # The first validation window's targets start at row 9 (0-based): naive repeats row 8's value,
    # seasonal naive rows 5 and 6.
    assert ds.validation.origin[0] == 9
    np.testing.assert_array_equal(base["naive"][0, :, 0], [1, 1])
    np.testing.assert_array_equal(base["seasonal_naive"][0, :, 0], [2, 3])
    # In-sample seasonal differences of rows 0-8: |1-1|, |2-2|, |3-3|, |5-4|, |1-1| -> 1/5.
    np.testing.assert_allclose(mase_scale(ds.insample, 4), [0.2])
    y = ds.validation.y
    report = compare(y, base["seasonal_naive"] + 1.0, base, mase_scale(ds.insample, 4), ["y"], 4)
    assert report["warning"] and "worse than seasonal naive" in report["warning"]
    assert report["skill"] < 0
    good = compare(y, y, base, mase_scale(ds.insample, 4), ["y"], 4)
    assert good["warning"] is None and good["mase"] == 0 and good["skill"] == 1
    # Seasonal naive shipped, computed in float32 through the network: a tie, not "do not ship it".
    shipped = (base["seasonal_naive"].astype(np.float32) * np.float32(1 + 3e-7)).astype(np.float64)
    tie = compare(y, shipped, base, mase_scale(ds.insample, 4), ["y"], 4)
    assert tie["mase"] > tie["baselines"]["seasonal_naive"]["mase"] and tie["warning"] is None


@settings(max_examples=examples(40), deadline=None)
@given(
    lengths=st.lists(st.integers(6, 40), min_size=1, max_size=5),
    targets=st.integers(1, 2),
    window=st.integers(1, 6),
    horizon=st.integers(1, 4),
    season=st.integers(1, 12),
    block=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)
def test_window_baselines_are_the_forecasts_from_each_window_s_series(lengths, targets, window, horizon, season, block, seed):
    """All windows at once, block by block, against the one-window forecasts over each series."""
    rng = np.random.default_rng(seed)
    frames = [pd.DataFrame({"sid": f"s{k}", "t": range(n), **{f"y{j}": rng.normal(size=n).round(3) for j in range(targets)}})
              for k, n in enumerate(lengths)]
    frame = pd.concat(frames, ignore_index=True)
    config = DataConfig(target=[f"y{j}" for j in range(targets)], time="t", series_id="sid", window=window, horizon=horizon, season=season, val_fraction=0.3)
    try:
        ds = prepare(frame, config=config)
    except DataError:  # a series too short for this window and horizon
        return
    for windows in (ds.train, ds.validation):
        got = window_forecasts(windows, season, horizon, block=block)
        series = {f"s{k}": f[[f"y{j}" for j in range(targets)]].to_numpy(np.float32) for k, f in enumerate(frames)}
        for i, (sid, origin) in enumerate(zip(windows.series, windows.origin)):
            np.testing.assert_array_equal(got["naive"][i], naive_forecast(series[sid], int(origin), horizon))
            np.testing.assert_array_equal(got["seasonal_naive"][i], seasonal_naive_forecast(series[sid], int(origin), horizon, season))


def test_train_reports_the_baselines_and_warns(tmp_path):
    # White noise around a level: nothing beats seasonal naive by much; 1 epoch of a tiny net with a
    # huge learning rate is worse than it, and says so.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=80, freq="MS"), "y": 50 + rng.normal(0, 1, 80)})
    csv = tmp_path / "noise.csv"
    frame.to_csv(csv, index=False)
    r = CliRunner().invoke(main, ["train", str(csv), "--target", "y", "--time", "date", "--horizon", "3", "--hidden-size", "4",
                                  "--epochs", "1", "--lr", "5", "--quiet", "--scaling", "global", "--out", str(tmp_path / "ckpt")])
    assert r.exit_code == 0, r.output
    assert "seasonal naive" in r.stdout and "MASE" in r.stdout and "skill vs seasonal naive" in r.stdout
    assert "warning: the model is worse than seasonal naive (season 12)" in r.stderr
    saved = json.loads((tmp_path / "ckpt" / "metrics.json").read_text())["metrics"]
    assert saved["warnings"] and saved["vs_baselines"]["baselines"]["seasonal_naive"]["mase"] > 0


def test_targets_in_different_units_get_a_scale_free_overall(tmp_path, monkeypatch):
    """The overall RMSE / MAE (and a mixture's NLL / CRPS) average over targets, so one in
    thousands drowns one in units; the overall row says it is pooled, and metrics.json and the
    package carry a scale-free overall: each target's errors over its series' in-sample
    seasonal-naive MAE (as selection scales them), the mean over targets. One target of one
    series: no scaled entry, the table as it was."""
    from coreml_lstm.metadata import read_metadata
    from coreml_lstm.runner import Backend

    frame = seasonal_trend(96).rename(columns={"y": "small"})
    frame["large"] = 1000 * seasonal_trend(96, seed=1)["y"]
    csv = tmp_path / "two.csv"
    frame.to_csv(csv, index=False)
    args = ["train", str(csv), "--target", "small", "--target", "large", "--time", "date", "--horizon", "6", "--hidden-size", "4", "--epochs", "2", "--quiet"]
    r = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a"), "--export", str(tmp_path / "a.mlpackage")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())["metrics"]
    scaled, per = m["scaled"], m["vs_baselines"]["targets"]
    # One series: each target's scaled MAE is its MASE.
    np.testing.assert_allclose(scaled["mae_targets"], [per["small"]["mase"], per["large"]["mase"]], rtol=1e-6)
    assert scaled["mae"] == pytest.approx(np.mean(scaled["mae_targets"])) and scaled["rmse"] == pytest.approx(np.mean(scaled["rmse_targets"]))
    assert m["overall"]["pooled_targets"] == ["small", "large"]
    assert m["overall"]["mae"] > 100 * scaled["mae"]  # the pooled MAE is the large target's, in thousands
    row = next(line for line in r.stdout.splitlines() if line.startswith("overall (pooled)*"))
    assert "overall (scaled)" in r.stdout and "(* pooled over 2 targets in their own, possibly different, units" in r.stdout, row
    meta = read_metadata(Backend(tmp_path / "a.mlpackage", "executor", "fp32").program.metadata["user"])
    assert meta["validation_metrics"]["pooled_targets"] == ["small", "large"]
    assert meta["validation_metrics_scaled"] == {"rmse": scaled["rmse"], "mae": scaled["mae"]}
    mixture = Forecaster(["small", "large"], time="date", horizon=6, head="mixture", **TINY).fit(frame)
    prob = mixture.metrics_["probabilistic"]["scaled"]
    assert 0 < prob["crps"] < 0.1 * mixture.metrics_["probabilistic"]["overall"]["crps"] and np.isfinite(prob["nll"])
    one = Forecaster("small", time="date", horizon=6, **TINY).fit(frame)
    assert "scaled" not in one.metrics_ and "pooled_targets" not in one.metrics_["overall"]


def test_train_s_mase_scales_each_series_by_its_own_error_as_backtest_does():
    """train divided every series' errors by one in-sample error pooled over the series, backtest
    each by its own: on a series around 1000 beside one around 10, naive's validation MASE was
    1.983 in train and 1.366 in backtest; scaled per series in both (M4's MASE), 1.391 and
    1.366 (their windows differ). One series: exactly the value it was."""
    t = pd.date_range("2020-01-01", periods=200, freq="D")

    def series(level, noise, seed):
        k = np.arange(200)
        return level * (10 + np.sin(2 * np.pi * k / 7)) + np.cumsum(np.random.default_rng(seed).normal(0, noise, 200))

    frame = pd.concat([pd.DataFrame({"store": "big", "date": t, "y": series(100, 30, 1)}), pd.DataFrame({"store": "small", "date": t, "y": series(1, 1, 2)})])
    f = Forecaster("y", time="date", series_id="store", horizon=7, **TINY).fit(frame)
    data = f.dataset_
    y = np.asarray(data.validation.y, np.float64)
    naive = window_forecasts(data.validation, 7, 7)["naive"]
    own = {sid: mase_scale({sid: v}, 7) for sid, v in data.insample.items()}
    by_hand = np.mean(np.abs(naive - y)[:, :, 0] / np.array([own[sid][0] for sid in data.validation.series])[:, None])
    got = f.metrics_["vs_baselines"]["baselines"]["naive"]["mase"]
    assert got == pytest.approx(by_hand, rel=1e-9)
    pooled = np.abs(naive - y).mean() / mase_scale(data.insample, 7)[0]  # what train reported before
    assert abs(got - pooled) > 0.3 * got
    # backtest's definition on the same numbers: each origin's errors over its series' scale, all values pooled
    bt = f.backtest(frame, origins=3)
    scaled = np.concatenate([np.abs(o["naive"] - o["y"]) / bt.scale[o["series"]] for o in bt.origins])
    assert bt.summary()["methods"]["naive"]["mase"] == pytest.approx(scaled.mean(), rel=1e-12)
    # One series: MAE over its own scale, unchanged.
    one = Forecaster("y", time="date", horizon=7, **TINY).fit(frame[frame.store == "big"])
    d1 = one.dataset_
    y1 = np.asarray(d1.validation.y, np.float64)
    n1 = window_forecasts(d1.validation, 7, 7)["naive"]
    assert one.metrics_["vs_baselines"]["baselines"]["naive"]["mase"] == float(np.abs(n1 - y1).mean(axis=(0, 1))[0] / mase_scale(d1.insample, 7)[0])


# -- backtest ----------------------------------------------------------------------------------


def test_backtest_origins_and_baselines(tmp_path, monkeypatch):
    frame = seasonal_trend(96)
    f = Forecaster("y", time="date", horizon=6, **TINY).fit(frame.head(72))
    bt = f.backtest(frame, origins=4, step=6)
    assert [o["origin"] for o in bt.origins] == [72, 78, 84, 90]
    o = bt.origins[-1]
    y = frame["y"].to_numpy()
    np.testing.assert_allclose(o["naive"][:, 0], np.repeat(y[89], 6))
    np.testing.assert_allclose(o["seasonal_naive"][:, 0], y[78:84])
    np.testing.assert_allclose(o["y"][:, 0], y[90:96])
    W = f.checkpoint_.window
    np.testing.assert_allclose(o["model"], f.predict_windows(y[None, 90 - W : 90, None].astype(np.float32))[0], rtol=1e-6)
    s = bt.summary()
    assert set(s["methods"]) == {"model", "naive", "seasonal_naive"} and s["methods"]["model"]["mase"] > 0
    assert bt.notes == []
    many = f.backtest(frame, origins=100, step=6)  # fewer fit: said, not silent
    fit_in = len(many.origins)
    assert fit_in < 100 and many.notes == [f"the table holds {fit_in} of the 100 origins asked (96 rows, window {W}, horizon 6, step 6)"]
    assert many.table().endswith("note: " + many.notes[0]) and many.to_dict()["notes"] == many.notes
    refit = f.backtest(frame, origins=1, refit=True)
    # The refitted forecast is that of a model with the same settings trained on the rows before the origin.
    again = Forecaster("y", time="date", horizon=6, window=W, season=12, **TINY).fit(frame.head(90))
    assert refit.refit and len(refit.origins) == 1
    np.testing.assert_allclose(refit.origins[0]["model"], again.predict_windows(y[None, 90 - W : 90, None].astype(np.float32))[0], rtol=1e-6)
    # Rows in any order: the refit trains on the rows before the origin in time (it took rows by
    # their place in the file, future ones included, when the file was not in time order).
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "shuffled.csv", index=False)
    seen = []
    fit = Forecaster.fit

    def spy(self, data, *args, **kwargs):
        seen.append(pd.to_datetime(data["date"]).max())
        return fit(self, data, *args, **kwargs)

    monkeypatch.setattr(Forecaster, "fit", spy)
    shuffled = f.backtest(tmp_path / "shuffled.csv", origins=1, refit=True)
    assert seen == [frame["date"].iloc[89]]  # the last row before the origin, never a later one
    np.testing.assert_allclose(shuffled.origins[0]["model"], refit.origins[0]["model"], rtol=1e-6)
    monkeypatch.undo()
    f.save(tmp_path / "ckpt")
    frame.to_csv(tmp_path / "all.csv", index=False)
    r = CliRunner().invoke(main, ["backtest", str(tmp_path / "ckpt"), str(tmp_path / "all.csv"), "--origins", "3", "--json", "--plot", str(tmp_path / "bt.png")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["origins"]) == 3 and out["summary"]["methods"]["seasonal_naive"]["mase"] is not None
    assert (tmp_path / "bt.png").stat().st_size > 10_000
    r = CliRunner().invoke(main, ["backtest", str(tmp_path / "ckpt"), str(tmp_path / "all.csv")])
    assert r.exit_code == 0 and "skill vs seasonal naive" in r.stdout
    r = CliRunner().invoke(main, ["plot", str(tmp_path / "ckpt"), "--backtest", str(tmp_path / "all.csv"), "--origins", "2"])
    assert r.exit_code == 0 and (tmp_path / "ckpt" / "backtest.png").is_file(), r.output
    frame.head(20).to_csv(tmp_path / "short.csv", index=False)
    r = CliRunner().invoke(main, ["backtest", str(tmp_path / "ckpt"), str(tmp_path / "short.csv")])
    assert r.exit_code == 1 and f"the table has 20 rows; a backtest with window {W} + horizon 6 needs at least {W + 6}" in r.output


def test_a_table_stepping_otherwise_than_the_training_data_is_warned_about(tmp_path):
    """predict and backtest compared no table's step with training's: an hourly table fed to a
    daily model ran silently (backtest reported "season 7" on hourly data). The step training
    read is in the checkpoint and the package; a table stepping otherwise gets one warning line,
    one too irregular to tell, or a model from before the step was recorded, none."""
    from coreml_lstm.metadata import read_metadata
    from coreml_lstm.predict import predict_table
    from coreml_lstm.runner import Backend

    daily = seasonal_trend(80, freq="D", season=7)
    f = Forecaster("y", time="date", horizon=3, window=12, **TINY).fit(daily)
    assert f.checkpoint_.data_config.step == "D" and f.checkpoint_.data_config.season == 7
    path = f.export(tmp_path / "m.mlpackage")
    assert read_metadata(Backend(path, "executor", "fp32").program.metadata["user"])["time_step"] == "D"
    hourly = daily.assign(date=pd.date_range("2021-01-01", periods=80, freq="h"))
    hourly.to_csv(tmp_path / "hourly.csv", index=False)
    want = ("hourly.csv: the table steps hourly ('h'), the model was trained on data stepping daily ('D'); the forecasts assume the "
            "training step (daily ('D')), one step per horizon step and per window row")
    warned = predict_table(path, tmp_path / "hourly.csv", backend="executor", last_only=True).warnings
    assert [w.endswith(want) for w in warned] == [True]
    assert predict_table(path, daily, backend="executor").warnings == []
    with pytest.warns(DataWarning) as caught:  # the Python API says so too
        f.predict(hourly, last_only=True)
    assert [str(w.message) for w in caught] == ["input data: " + want.split(": ", 1)[1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.predict(daily, last_only=True)
    irregular = daily.drop(index=[20, 21, 40, 55, 56, 57, 70]).assign(date=lambda d: d["date"] + pd.to_timedelta(np.arange(len(d)) % 5, "h"))
    assert predict_table(path, irregular, backend="executor").warnings == []
    r = CliRunner().invoke(main, ["predict", str(path), "--csv", str(tmp_path / "hourly.csv"), "--last", "--backend", "executor"])
    assert r.exit_code == 0 and [line for line in r.stderr.splitlines() if line.startswith("warning:")] == [f"warning: {tmp_path / 'hourly.csv'}: " + want.split(": ", 1)[1]]
    f.save(tmp_path / "ckpt")
    r = CliRunner().invoke(main, ["backtest", str(tmp_path / "ckpt"), str(tmp_path / "hourly.csv"), "--origins", "2", "--quiet"])
    assert r.exit_code == 0 and f"warning: {tmp_path / 'hourly.csv'}: " + want.split(": ", 1)[1] in r.stderr.splitlines()
    assert f.backtest(daily, origins=2).warnings == []
    # A checkpoint and a package from before the step was recorded: no check.
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del config["data"]["step"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    old = Forecaster.load(tmp_path / "ckpt")
    assert old.checkpoint_.data_config.step is None and old.backtest(hourly, origins=2).warnings == []
    old_path = old.export(tmp_path / "old.mlpackage")
    assert predict_table(old_path, hourly, backend="executor").warnings == []


def test_a_small_series_among_large_ones_keeps_its_own_scale(tmp_path):
    """The window scale's floor is a fraction of the least varying series' spread: with it a
    fraction of the whole table's (about 5e5 here), a series around 0.01 next to one around 1e7
    came out as -20.8 / 28.4 (flattened to its floor, then mapped back by it)."""
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-01-01", periods=150, freq="D")
    shape = 10 + np.sin(np.arange(150) * 2 * np.pi / 7)
    frame = pd.concat([pd.DataFrame({"store": sid, "date": t, "units": scale * (shape + rng.normal(0, 0.1, 150))})
                       for sid, scale in (("big", 1e6), ("small", 1e-3))])
    f = Forecaster("units", time="date", series_id="store", horizon=3, **TINY).fit(frame)
    small = frame[frame.store == "small"].units
    assert f.checkpoint_.normalizer.series_std[0] == pytest.approx(small.iloc[:120].std(ddof=0), rel=0.05)
    forecast = f.predict(frame, last_only=True).set_index("store")
    got = forecast.loc["small", [c for c in forecast.columns if c.startswith("units_t+")]].to_numpy(float)
    assert np.all((got > 0.5 * small.min()) & (got < 2 * small.max())), got
    # One series: the floor is a fraction of its own spread, as it always was.
    one = Forecaster("units", time="date", horizon=3, **TINY).fit(frame[frame.store == "big"])
    norm = one.checkpoint_.normalizer
    assert np.array_equal(norm.series_std, norm.target_std)
    assert torch.equal(one.model_.target_floor, torch.as_tensor(1e-3 * norm.target_std, dtype=torch.float32))


# -- batches -----------------------------------------------------------------------------------


def test_a_window_package_takes_a_batch_and_predict_feeds_it_batches(tmp_path):
    """A window package takes 1 to MAX_BATCH windows a call; ``predict`` feeds a table's windows
    that many at a time (one window a call spent milliseconds of op dispatch on each), with the
    forecasts torch gives window by window, across a batch boundary; verify checks both ends of
    the batch range. A package that takes one window (toolkit 0.1's) is still fed one at a time."""
    from coreml_lstm.adapter import Input
    from coreml_lstm.export import INPUT_NAME, export
    from coreml_lstm.forecaster_adapter import MAX_BATCH, ForecasterAdapter
    from coreml_lstm.predict import predict_table
    from coreml_lstm.verify import verify_package

    frame = seasonal_trend(MAX_BATCH + 60)
    f = Forecaster("y", time="date", horizon=3, window=12, **TINY).fit(frame)
    want = f.predict(frame)
    assert len(want) > MAX_BATCH
    path = f.export(tmp_path / "m.mlpackage")
    got, used, _, _ = predict_table(path, frame, backend="executor")
    assert used == "executor" and list(got.columns) == list(want.columns)
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(np.float64), want.iloc[:, 1:].to_numpy(np.float64), rtol=1e-5, atol=1e-4)
    adapter = ForecasterAdapter(f.checkpoint_)
    report = verify_package(adapter, path, backends=("executor",))
    sizes = {c.size: c.status for c in report.checks}
    assert sizes.pop(f"batch {MAX_BATCH}") == "passed" and report.status == "passed"
    assert any(s.startswith("batch ") for s in sizes), sizes  # the validation windows in one call

    adapter.inputs = [Input(INPUT_NAME, (1, 12, 1))]  # one window a call
    one = export(adapter, tmp_path / "one.mlpackage")
    got_one = predict_table(one, frame.tail(40), backend="executor").frame
    np.testing.assert_allclose(got_one.iloc[:, 1:].to_numpy(np.float64), want.tail(len(got_one)).iloc[:, 1:].to_numpy(np.float64), rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def scaling_log_models():
    """Tiny fits of every scaling x log x with/without an extra feature column."""
    frame = seasonal_trend(80)
    frame["temp"] = np.cos(np.arange(len(frame)) / 3.0)
    out = {}
    for scaling in ("window", "global"):
        for log in (False, True):
            for features in (None, ["temp"]):
                f = Forecaster("y", features or [], time="date", horizon=3, window=12, scaling=scaling, log=log, **{**TINY, "epochs": 1})
                out[scaling, log, bool(features)] = f.fit(frame if features else frame[["date", "y"]])
    return out


@pytest.mark.parametrize("features", [False, True])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("scaling", ["window", "global"])
def test_every_scaling_and_log_exports_a_package_the_executor_runs(tmp_path, scaling_log_models, scaling, log, features):
    """--log --scaling global with no feature columns concatenated the whole window to its logs
    where a fixed-shape trace converts the empty slice of the features (a package of one window,
    a stream's chunk): the package's lstm then took W + 1 columns and failed in the executor."""
    import coreml_lstm.executor as ex
    from coreml_lstm.adapter import Input
    from coreml_lstm.export import INPUT_NAME, export
    from coreml_lstm.forecaster_adapter import ForecasterAdapter
    from coreml_lstm.verify import verify_streaming

    f = scaling_log_models[scaling, log, features]
    x = np.asarray(f.dataset_.validation.x[:3], np.float32)
    want = f.predict_windows(x)
    tol = dict(rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    got = ex.load(f.export(tmp_path / "m.mlpackage")).predict({"window": x}, mode="fp32")["forecast"]
    np.testing.assert_allclose(got, want, **tol)
    adapter = ForecasterAdapter(f.checkpoint_)
    adapter.inputs = [Input(INPUT_NAME, (1,) + x.shape[1:])]  # one window a call: a fixed shape
    one = ex.load(export(adapter, tmp_path / "one.mlpackage"))
    np.testing.assert_allclose(one.predict({"window": x[:1]}, mode="fp32")["forecast"], want[:1], **tol)
    stream = f.export(tmp_path / "s.mlpackage", streaming="explicit", max_chunk=8)
    report = verify_streaming(str(stream), f.model_, x[0], chunk=5)
    assert report.status == "passed", [c.line() for c in report.checks]


def test_tiny_errors_print_in_significant_digits_not_as_zero():
    """A series around 1e-12 errs by ~1e-13: four decimals printed 0.0000."""
    from coreml_lstm.baselines import format_report, format_value
    from coreml_lstm.cli import format_metrics

    assert [format_value(v) for v in (3.21e-13, 0.0, 12.34567, 0.004)] == ["3.21e-13", "0.0000", "12.3457", "0.0040"]
    step = {"rmse": 4.5e-13, "mae": 3.21e-13, "mape": 1.0}
    text = format_metrics({"targets": {"y": {"steps": [step]}}, "overall": {**step, "mape_zeros": 0, "n": 1}})
    assert "4.5e-13" in text and "3.21e-13" in text and "0.0000" not in text
    report = {"season": 7, "mase": 0.5, "skill": 0.1, "model": {"mae": 2e-13, "rmse": 3e-13}, "baselines": {"naive": {"mae": 4e-13, "rmse": 5e-13, "mase": 1.0}}}
    assert "2e-13" in format_report(report) and "0.0000" not in format_report(report)
