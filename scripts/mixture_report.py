"""The mixture regressor on the embedded sunspots data, next to a K = 1 (plain Gaussian) model.

Both use the same network and data: 2-layer LSTM, hidden 16, window 24, weight decay 1e-3, global
scaling, the last 10% of the years (1978-2008) as validation. Prints NLL, CRPS, interval coverage, RMSE and
MAE in original units for each; the central 90% interval should cover 85-95% of the targets.

    python scripts/mixture_report.py [--mixtures 3] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics

from coreml_lstm import Forecaster
from coreml_lstm.datasets import DEFAULT, load_sunspots

# Global scaling: the README's numbers are this model's. (With window scaling, the default now, and
# its mixture starting from the classical start's error spread, seed 0 gives K = 3 NLL 3.958 against
# 4.185 for K = 1, and both cover all 31 targets.)
# Uncalibrated (calibrate=False): the report measures how well the trained mixture's own spreads
# fit the validation years; the default calibration would set the 90% coverage on these very
# years to 90% by construction.
SETTINGS = dict(time=DEFAULT["time"], window=24, hidden_size=16, num_layers=2, weight_decay=1e-3, val_fraction=0.1, head="mixture",
                scaling="global", calibrate=False, progress=False)


def fit(k: int, seed: int) -> Forecaster:
    return Forecaster(DEFAULT["target"], mixtures=k, seed=seed, **SETTINGS).fit(load_sunspots())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mixtures", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    print(f"{'model':<12} {'seed':>4} {'NLL':>7} {'CRPS':>7} {'cover50':>8} {'cover90':>8} {'RMSE':>7} {'MAE':>7}")
    cover = {}
    for k in (args.mixtures, 1):
        for seed in args.seeds:
            f = fit(k, seed)
            p, r = f.metrics_["probabilistic"]["overall"], f.metrics_["overall"]
            cover.setdefault(k, []).append(p["coverage90"])
            print(f"{'K=' + str(k):<12} {seed:>4} {p['nll']:>7.3f} {p['crps']:>7.2f} {p['coverage50']:>8.3f} {p['coverage90']:>8.3f} {r['rmse']:>7.2f} {r['mae']:>7.2f}", flush=True)
    for k, values in cover.items():
        print(f"K={k}: median 90% coverage {statistics.median(values):.3f} over {len(values)} seed(s) (target 0.85-0.95)")


if __name__ == "__main__":
    main()
