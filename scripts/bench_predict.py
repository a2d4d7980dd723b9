"""``predict`` through the executor: a table's windows fed in batches over one window a call.

Trains a small forecaster (2-layer LSTM, hidden 32, window 48, horizon 24) on a generated hourly
series of --rows rows, exports it twice, as the toolkit does (the first axis 1..256: predict
feeds 256 windows a call) and as toolkit 0.1 did (one window a call), and times
``predict_table`` on the whole table with each, interleaved run by run so that both see the same
load. Prints the median of --repeats runs of each, the ratio, the largest difference between the
two (the same forecasts), and the time a fresh interpreter takes to import the predict path
(which imports neither torch nor coremltools).

    python scripts/bench_predict.py [--rows 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from coreml_lstm import Forecaster
    from coreml_lstm.adapter import Input
    from coreml_lstm.export import INPUT_NAME, export
    from coreml_lstm.forecaster_adapter import ForecasterAdapter
    from coreml_lstm.predict import predict_table

    rng = np.random.default_rng(0)
    t = np.arange(args.rows)
    table = pd.DataFrame({"time": pd.date_range("2020-01-01", periods=args.rows, freq="h"),
                          "y": 10 + np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, args.rows)})
    f = Forecaster("y", time="time", window=48, horizon=24, epochs=2, progress=False).fit(table)
    with tempfile.TemporaryDirectory() as scratch:
        batched = f.export(Path(scratch) / "batched.mlpackage")
        adapter = ForecasterAdapter(f.checkpoint_)
        adapter.inputs = [Input(INPUT_NAME, (1, 48, 1))]
        single = export(adapter, Path(scratch) / "single.mlpackage")
        times = {"batches of 256": [], "one window a call": []}
        frames = {}
        for _ in range(args.repeats):
            for name, path in (("batches of 256", batched), ("one window a call", single)):
                start = time.perf_counter()
                frames[name] = predict_table(path, table, backend="executor").frame
                times[name].append(time.perf_counter() - start)
    n = len(frames["batches of 256"])
    diff = np.abs(frames["batches of 256"].iloc[:, 1:].to_numpy(np.float64) - frames["one window a call"].iloc[:, 1:].to_numpy(np.float64)).max()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"predict_table, {n} windows of 48 rows, executor fp32, median of {args.repeats}:")
    for name, m in med.items():
        print(f"  {name:<18} {m:8.2f} s  {1000 * m / n:7.3f} ms a window")
    print(f"  speed-up {med['one window a call'] / med['batches of 256']:.1f}x; largest difference between the two {diff:.3g}")
    code = "import sys, time; t = time.perf_counter(); import coreml_lstm.predict, coreml_lstm.cli; " \
           "print(time.perf_counter() - t, 'torch' in sys.modules, 'coremltools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    print(f"importing the predict path: {float(out[0]):.2f} s (torch imported: {out[1]}, coremltools imported: {out[2]})")


if __name__ == "__main__":
    main()
