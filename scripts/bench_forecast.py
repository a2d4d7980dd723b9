"""The toolkit's default forecaster against naive, seasonal naive and ETS on public series.

Series (the rule, fixed before any result was seen): every regularly spaced, univariate
forecasting series with a time index in the data folder of the sktime wheel (Airline, Lynx,
PBS_dataset, ShampooSales, solar; sktime's other files are classification, annotation or
multivariate regression sets), plus, for the frequencies that folder lacks, the statsmodels
dataset with a regular time index at that frequency: co2 (weekly; its gaps filled by linear
interpolation, the usual treatment; its last 1000 weeks, to bound the run time) and macrodata
(quarterly; its first series, realgdp). That
covers yearly, quarterly, monthly, weekly and half-hourly series, with and without trend and
season. The files are read from the installed wheels (``pip install ".[bench]"`` for statsmodels,
``pip install --no-deps sktime==1.2.0`` for sktime's files: its dependencies pin an older pandas);
sktime is never imported.

Protocol: the horizon is M4's for the frequency (yearly 6, quarterly 8, monthly 18, weekly 13,
daily 14, sub-daily 48) capped at a sixth of the series; the last horizon is held out; each
method fits on the rest and forecasts the horizon at once from the end of it. The model is
``Forecaster(target, time=..., horizon=H)`` with nothing else set (``--head mixture`` adds that
one option): everything it chooses (window, season, its classical start, early stopping, whether
the network, a baseline or their blend ships, the mixture's interval stretch) it chooses on the
training part and its validation windows, and the rules behind those choices were picked on the
development protocol below, which never reads the held-out horizons (one was adopted after a
held-out table had been seen: the calibration's widening only; the README says so). ETS is statsmodels' ETSModel
with the AICc-best of additive errors x trend {none, additive, damped} x season {none, additive,
and multiplicative for positive series} (the AutoETS search), fitted on the same training part
(initial states by maximum likelihood; for seasons longer than 24, statsmodels' heuristic start).
MASE divides by the in-sample MAE of the one-step seasonal-naive forecast on the training part.

Each (series, seed, head) result is written to ``--results DIR`` as its own JSON file (written
whole, then renamed), so several processes can run different seeds at once; the table is made
from whatever files DIR holds for the requested seeds. ``--quick`` trains 1 seed with 40 epochs
on three short series: a smoke test, not the benchmark.

``--origins K`` is the development protocol, on which defaults are chosen: the held-out horizon
is dropped (never read) and each of the K horizons before it is held out in turn, the model
trained on what precedes it (seeds 0-1). With ``--head mixture`` it also prints the calibration
study: the coverage those horizons get under each way of stretching the trained mixtures, every
one chosen on the run's own validation windows (the same networks, calibrated after training).

    python scripts/bench_forecast.py                      # all series, seeds 0-2
    python scripts/bench_forecast.py --seeds 1 &          # parallel-safe: one process per seed
    python scripts/bench_forecast.py --head mixture       # + central 90% interval coverage
    python scripts/bench_forecast.py --origins 3 --head mixture   # development protocol
    python scripts/bench_forecast.py --quick
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from coreml_lstm.errors import DataError

MAX_POINTS = 1000  # longer series (co2) keep their last 1000 points, so that a run takes minutes
M4_HORIZON = {"yearly": 6, "quarterly": 8, "monthly": 18, "weekly": 13, "daily": 14, "sub-daily": 48}
SEASON = {"yearly": 1, "quarterly": 4, "monthly": 12, "weekly": 52, "daily": 7}


def _sktime_data() -> Path:
    spec = importlib.util.find_spec("sktime")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("sktime is not installed: pip install --no-deps sktime (the benchmark reads the CSV files in its wheel)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _sk(name: str, time_col: str | None, value_col: str, parse=None) -> pd.DataFrame:
    frame = pd.read_csv(_sktime_data() / name / f"{name}.csv")
    if time_col is None:
        time_col = frame.columns[0]
    times = pd.to_datetime(frame[time_col], format=parse) if parse else frame[time_col]
    return pd.DataFrame({"time": times, "value": frame[value_col].astype(float)})


def load_airline():
    return _sk("Airline", "Date", "Passengers", "%Y-%m")


def load_lynx():
    f = pd.read_csv(_sktime_data() / "Lynx" / "Lynx.csv")  # header ",0": year, count
    return pd.DataFrame({"time": pd.to_datetime(f.iloc[:, 0].astype(int).astype(str), format="%Y"), "value": f.iloc[:, 1].astype(float)})


def load_pbs():
    return _sk("PBS_dataset", "Month", "Scripts", "%Y %b")


def load_shampoo():
    return _sk("ShampooSales", "Time", "Sales", "%Y-%m")


def load_solar():
    f = _sk("solar", "datetime_gmt", "solar_gen")
    f["time"] = pd.to_datetime(f["time"], utc=True).dt.tz_localize(None)
    return f


def load_co2():
    import statsmodels.api as sm

    d = sm.datasets.co2.load_pandas().data["co2"].interpolate()
    return pd.DataFrame({"time": d.index, "value": d.to_numpy(float)})


def load_realgdp():
    import statsmodels.api as sm

    d = sm.datasets.macrodata.load_pandas().data
    times = pd.PeriodIndex.from_fields(year=d["year"].astype(int), quarter=d["quarter"].astype(int), freq="Q").to_timestamp()
    return pd.DataFrame({"time": times, "value": d["realgdp"].to_numpy(float)})


# name: (loader, frequency, what it shows)
SERIES = {
    "airline": (load_airline, "monthly", "trend, multiplicative season"),
    "co2": (load_co2, "weekly", "trend, season"),
    "lynx": (load_lynx, "yearly", "no trend, a ~10-year cycle, no calendar season"),
    "pbs": (load_pbs, "monthly", "intermittent counts (0-3), no trend"),
    "realgdp": (load_realgdp, "quarterly", "trend, seasonally adjusted"),
    "shampoo": (load_shampoo, "monthly", "trend, 36 points"),
    "solar": (load_solar, "sub-daily", "daily season (48 half-hours), no trend"),
}
QUICK = ("airline", "shampoo", "lynx")


def frequency_season(freq: str, frame: pd.DataFrame) -> int:
    if freq == "sub-daily":
        step = (frame["time"].iloc[1] - frame["time"].iloc[0]).total_seconds()
        return int(round(86400 / step))
    return SEASON[freq]


def split(name: str, origin: int = 0):
    """Training part, held-out horizon, horizon and season. ``origin`` k >= 1 is the development
    protocol: the held-out horizon is dropped and the k-th horizon before it is held out instead,
    so the training part ends k horizons earlier and nothing after it is seen."""
    loader, freq, _ = SERIES[name]
    frame = loader().reset_index(drop=True).iloc[-MAX_POINTS:].reset_index(drop=True)
    h = min(M4_HORIZON[freq], len(frame) // 6)
    m = frequency_season(freq, frame)
    frame = frame.iloc[: len(frame) - origin * h]
    return frame.iloc[:-h].reset_index(drop=True), frame.iloc[-h:].reset_index(drop=True), h, m


def mase(y, pred, train, m) -> float:
    y, pred, train = (np.asarray(a, np.float64) for a in (y, pred, train))
    lag = m if m < len(train) else 1
    scale = np.mean(np.abs(train[lag:] - train[:-lag]))
    return float(np.mean(np.abs(y - pred)) / scale)


def seasonal_naive(train, h, m):
    lag = m if m < len(train) else 1
    return np.asarray(train[-lag:])[np.arange(h) % lag]


def ets_forecast(train, h, m) -> tuple[np.ndarray, str]:
    """The AICc-best ETS model (AutoETS's search over additive-error models) and its name."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = np.asarray(train, np.float64)
    seasons = [None] + (["add"] + (["mul"] if (y > 0).all() else []) if 1 < m and 2 * m <= len(y) else [])
    # Estimating 52 (or 48) initial seasonal states by maximum likelihood takes statsmodels tens of
    # minutes per model: long seasons start from its heuristic (classical decomposition) instead.
    init = "estimated" if m <= 24 else "heuristic"
    best = None
    for trend, damped in ((None, False), ("add", False), ("add", True)):
        for season in seasons:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = ETSModel(y, error="add", trend=trend, damped_trend=damped, seasonal=season,
                                   seasonal_periods=m if season else None, initialization_method=init).fit(disp=False, maxiter=200)
                score = fit.aicc
            except Exception:  # a combination the data cannot support (too short for the season)
                continue
            if np.isfinite(score) and (best is None or score < best[0]):
                name = f"ETS(A,{'N' if trend is None else 'Ad' if damped else 'A'},{'N' if season is None else season[0].upper()})"
                best = (score, fit, name)
    return np.asarray(best[1].forecast(h)), best[2]


def run_model(name: str, seed: int, head: str, quick: bool, origin: int = 0) -> dict:
    import torch

    from coreml_lstm import Forecaster
    from coreml_lstm.data import prediction_windows
    from coreml_lstm.mixture import quantile

    torch.set_num_threads(1)  # one core per process: seeds run side by side
    train, test, h, m = split(name, origin)
    extra = {"head": head} if head != "point" else {}
    if quick:
        extra["epochs"] = 40
    start = time.perf_counter()
    f = Forecaster("value", time="time", horizon=h, seed=seed, progress=False, **extra).fit(train)
    seconds = time.perf_counter() - start
    x = prediction_windows(train, f.checkpoint_.data_config, f.checkpoint_.input_columns, last_only=True).x
    result = {
        "series": name, "seed": seed, "head": head, "quick": quick, "horizon": h, "season": m,
        "window": f.checkpoint_.window, "inferred_season": f.checkpoint_.data_config.season,
        "best_epoch": f.history_["best_epoch"] + 1, "seconds": seconds,
        "validation_mase": f.metrics_["vs_baselines"]["mase"],
        "validation_snaive_mase": f.metrics_["vs_baselines"]["baselines"]["seasonal_naive"]["mase"],
        "start": f.metrics_.get("start"),
        # what validation chose to ship (point head), and the mixture's calibration stretch
        "shipped": (f.metrics_.get("selection") or {}).get("shipped", "network"),
        "interval_scale": (f.metrics_.get("interval_scale") or [None])[0],
    }
    y = test["value"].to_numpy(np.float64)
    if head == "mixture":
        d = f.predict_distribution(x)
        pred = d["prediction"][0, :, 0]
        w, mu, s = d["weights"][0, :, 0], d["means"][0, :, 0], d["scales"][0, :, 0]
        lo, hi = quantile(w, mu, s, 0.05), quantile(w, mu, s, 0.95)
        result["coverage90"] = float(np.mean((y >= lo) & (y <= hi)))
        if origin:  # the trained mixture (stretch 1) on validation and here: for the calibration study
            scale = f.model_.interval_scale.clone()
            f.model_.interval_scale.fill_(1.0)
            val = dict(zip(("w", "mu", "s"), f._outputs(f.model_, f.dataset_.validation.x)[:3]))
            here = f.predict_distribution(x)
            f.model_.interval_scale.copy_(scale)
            result["raw"] = {"validation": {k: v[..., 0, :].tolist() for k, v in val.items()},
                             "validation_y": np.asarray(f.dataset_.validation.y)[..., 0].tolist(),
                             "test": {k: here[n][0, :, 0].tolist() for k, n in (("w", "weights"), ("mu", "means"), ("s", "scales"))},
                             "y": y.tolist()}
    else:
        pred = f.predict_windows(x)[0, :, 0]
    result["mase"] = mase(y, pred, train["value"], m)
    result["forecast"] = [float(v) for v in pred]
    return result


def baselines(name: str, origin: int = 0) -> dict:
    train, test, h, m = split(name, origin)
    y, tr = test["value"].to_numpy(np.float64), train["value"].to_numpy(np.float64)
    ets, ets_name = ets_forecast(tr, h, m)
    return {
        "naive": mase(y, np.repeat(tr[-1], h), tr, m),
        "seasonal_naive": mase(y, seasonal_naive(tr, h, m), tr, m),
        "ets": mase(y, ets, tr, m),
        "ets_model": ets_name,
        "n_train": len(tr), "horizon": h, "season": m,
    }


def _write(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", nargs="*", choices=sorted(SERIES), help="default: all (quick: airline, shampoo, lynx)")
    p.add_argument("--seeds", nargs="*", type=int, default=None, help="default 0 1 2 (quick: 0; --origins: 0 1)")
    p.add_argument("--head", choices=["point", "mixture"], default="point")
    p.add_argument("--origins", type=int, default=0, metavar="K",
                   help="development protocol: instead of the held-out horizon, the K horizons before it, one origin each, "
                        "each trained on what precedes it (the held-out horizon is never read); with --head mixture it adds "
                        "the calibration study")
    p.add_argument("--quick", action="store_true", help="1 seed, 40 epochs, three short series: a smoke test")
    p.add_argument("--results", type=Path, default=Path("/tmp/bench_forecast"), help="one JSON per (series, seed, head); reused if present")
    p.add_argument("--rerun", action="store_true", help="train again even when a result file exists")
    p.add_argument("--report-only", action="store_true", help="print the table from the result files; train nothing")
    args = p.parse_args(argv)
    names = args.series or (list(QUICK) if args.quick else list(SERIES))
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1] if args.origins else [0, 1, 2])
    origins = list(range(1, args.origins + 1)) or [0]
    tag = f"{args.head}{'-quick' if args.quick else ''}"
    args.results.mkdir(parents=True, exist_ok=True)
    suffix = lambda k: f".dev{k}" if k else ""

    base = {}
    for name in names:
        for k in origins:
            path = args.results / f"{name}{suffix(k)}.baselines.json"
            if path.exists() and not args.rerun:
                base[name, k] = json.loads(path.read_text())
            elif not args.report_only:
                base[name, k] = baselines(name, k)
                _write(path, base[name, k])
    runs: dict[tuple, dict] = {}
    for name in names:
        for k in origins:
            for seed in seeds:
                path = args.results / f"{name}{suffix(k)}.{tag}.seed{seed}.json"
                if path.exists() and not args.rerun:
                    runs[name, k, seed] = json.loads(path.read_text())
                    continue
                if args.report_only:
                    continue
                print(f"{name}{f' origin {k}' if k else ''} seed {seed} ({args.head}) ...", file=sys.stderr, flush=True)
                try:
                    runs[name, k, seed] = run_model(name, seed, args.head, args.quick, k)
                except DataError as exc:  # a development origin whose training part is too short for the defaults
                    if not k:
                        raise
                    runs[name, k, seed] = {"skipped": str(exc).splitlines()[0]}
                _write(path, runs[name, k, seed])
                r = runs[name, k, seed]
                print(f"  skipped: {r['skipped']}" if "skipped" in r else
                      f"  MASE {r['mase']:.3f} (window {r['window']}, best epoch {r['best_epoch']}, {r['seconds']:.0f} s)", file=sys.stderr, flush=True)

    print_table(names, seeds, origins, base, runs, args.head, args.quick)
    if args.head == "mixture" and args.origins:
        calibration_study(names, seeds, origins, runs)
    return 0


def stretched_coverage(raw: dict, c: np.ndarray, coverage: float = 0.9) -> float:
    """Coverage of the test values by the central interval of the mixture stretched by c about its
    mean (c per step, (horizon,))."""
    from coreml_lstm.mixture import quantile

    w, mu, s = (np.asarray(raw["test"][k], np.float64) for k in ("w", "mu", "s"))  # (horizon, K)
    mean = (w * mu).sum(-1, keepdims=True)
    c = np.asarray(c, np.float64).reshape(-1, 1)
    mu, s = mean + c * (mu - mean), c * s
    y = np.asarray(raw["y"], np.float64)
    lo, hi = quantile(w, mu, s, (1 - coverage) / 2), quantile(w, mu, s, (1 + coverage) / 2)
    return float(np.mean((y >= lo) & (y <= hi)))


CALIBRATIONS = ("none", "two-sided", "widen only (default)", "per step, widen only")


def calibrations(raw: dict) -> dict[str, float]:
    """Test coverage under each calibration variant, each chosen on the run's validation windows."""
    from coreml_lstm.mixture import interval_scale

    v = {k: np.asarray(a, np.float64)[..., None, :] for k, a in raw["validation"].items()}  # (N, horizon, 1, K)
    y = np.asarray(raw["validation_y"], np.float64)[..., None]
    h = len(raw["y"])
    both = float(interval_scale(v["w"], v["mu"], v["s"], y, bounds=(0.05, 20.0))[0])
    widen = float(interval_scale(v["w"], v["mu"], v["s"], y)[0])  # the default: bounds (1, 20)
    steps = np.array([interval_scale(v["w"][:, j : j + 1], v["mu"][:, j : j + 1], v["s"][:, j : j + 1], y[:, j : j + 1])[0] for j in range(h)])
    return {
        "none": stretched_coverage(raw, np.ones(h)),
        "two-sided": stretched_coverage(raw, np.full(h, both)),
        "widen only (default)": stretched_coverage(raw, np.full(h, widen)),
        "per step, widen only": stretched_coverage(raw, steps),
    }


def calibration_study(names, seeds, origins, runs) -> None:
    print("\ncentral 90% coverage of the development origins' horizons under each calibration (chosen on each run's validation windows)")
    print("| series | " + " | ".join(CALIBRATIONS) + " |")
    print("|" + " --- |" * (len(CALIBRATIONS) + 1))
    per = {c: [] for c in CALIBRATIONS}
    for name in names:
        got = [calibrations(r["raw"]) for k in origins for s in seeds if "raw" in (r := runs.get((name, k, s), {}))]
        if not got:
            continue
        print(f"| {name} | " + " | ".join(f"{np.mean([g[c] for g in got]):.3f}" for c in CALIBRATIONS) + " |")
        for c in CALIBRATIONS:
            per[c].append(np.mean([g[c] for g in got]))
    print("| mean | " + " | ".join(f"{np.mean(per[c]):.3f}" for c in CALIBRATIONS) + " |")


def print_table(names, seeds, origins, base, runs, head, quick) -> None:
    cover = head == "mixture"
    dev = origins != [0]
    where = f"the development origins {', '.join(map(str, origins))} (horizons before the held-out one)" if dev else "the held-out horizon"
    print(f"MASE on {where} (seeds {', '.join(map(str, seeds))}; model: mean +- half the range over seeds"
          f"{', means over origins' if dev else ''}){' [QUICK: not the benchmark]' if quick else ''}")
    cols = "| series | freq | n | h | model | naive | seasonal naive | ETS |" + (" 90% coverage | interval stretch |" if cover else " shipped |")
    print(cols)
    print("|" + " --- |" * (cols.count("|") - 1))
    means = {k: [] for k in ("model", "naive", "seasonal_naive", "ets", "coverage")}
    gaps = {}
    for name in names:
        ks = [k for k in origins if (name, k) in base and all("mase" in runs.get((name, k, s), {}) for s in seeds)]
        skipped = [k for k in origins if any("skipped" in runs.get((name, k, s), {}) for s in seeds)]
        if not ks:
            print(f"| {name} | (missing{'; skipped origins ' + ', '.join(map(str, skipped)) if skipped else ''}) |")
            continue
        v = np.array([np.mean([runs[name, k, s]["mase"] for k in ks]) for s in seeds])  # per seed, mean over origins
        half = (v.max() - v.min()) / 2
        b = {key: np.mean([base[name, k][key] for k in ks]) for key in ("naive", "seasonal_naive", "ets")}
        b0 = base[name, ks[0]]
        ets = f" ({b0['ets_model']})" if len(ks) == 1 else ""
        row = f"| {name} | {SERIES[name][1]} | {b0['n_train']} | {b0['horizon']} | {v.mean():.3f} +- {half:.3f} | {b['naive']:.3f} | {b['seasonal_naive']:.3f} | {b['ets']:.3f}{ets} |"
        got = [runs[name, k, s] for k in ks for s in seeds]
        if cover:
            c = np.array([r["coverage90"] for r in got])
            stretch = [r.get("interval_scale") for r in got if r.get("interval_scale") is not None]
            shown = f"{min(stretch):.2f}-{max(stretch):.2f}" if stretch else "-"
            row += f" {c.mean():.3f} | {shown} |"
            means["coverage"].append(c.mean())
        else:
            shipped = [r.get("shipped", "network") for r in got]
            row += " " + ", ".join(f"{k} x{shipped.count(k)}" for k in dict.fromkeys(shipped)) + " |"
        print(row + (f" (origins {', '.join(map(str, ks))}; skipped {', '.join(map(str, skipped))})" if skipped else ""))
        means["model"].append(v.mean())
        for k in ("naive", "seasonal_naive", "ets"):
            means[k].append(b[k])
        gaps[name] = v.mean() - b["seasonal_naive"]
    if means["model"]:
        row = f"| mean | | | | {np.mean(means['model']):.3f} | {np.mean(means['naive']):.3f} | {np.mean(means['seasonal_naive']):.3f} | {np.mean(means['ets']):.3f} |"
        print(row + (f" {np.mean(means['coverage']):.3f} | |" if cover else " |"))
        worse = [f"{n}{' (a tie)' if abs(g) < 5e-4 else ''}" for n, g in gaps.items() if g > -5e-4]
        print(f"targets: better than seasonal naive on every series: {'yes' if not worse else 'no: ' + ', '.join(worse)}; "
              f"mean MASE {np.mean(means['model']):.3f} vs ETS {np.mean(means['ets']):.3f}: {'at most' if np.mean(means['model']) <= np.mean(means['ets']) else 'above'}")


if __name__ == "__main__":
    sys.exit(main())
