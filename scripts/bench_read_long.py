"""Reading a long classification table: ``read_sequences`` on a CSV of many short series.

Writes a long table (id, t, two channels, label; rows shuffled, so the reader sorts each series
by time) of --series series of --rows rows each, and times ``read_sequences`` on it (the read
train, predict and evaluate do), the CSV parse included. Prints the median of --repeats runs
for each size.

    python scripts/bench_read_long.py [--sizes 8000x5,2000x50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def table(series: int, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = series * rows
    frame = pd.DataFrame({"id": np.repeat([f"s{i}" for i in range(series)], rows), "t": np.tile(np.arange(rows), series),
                          "a": rng.normal(size=n).round(4), "b": rng.normal(size=n).round(4),
                          "label": np.repeat(rng.choice(["up", "down", "flat"], size=series), rows)})
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8000x5,2000x50", help="series x rows, comma separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from coreml_lstm.classify.data import SequenceDataConfig, read_sequences

    config = SequenceDataConfig(series_id="id", time="t")
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes.split(","):
            series, rows = (int(v) for v in size.split("x"))
            path = Path(scratch) / f"long_{size}.csv"
            table(series, rows).to_csv(path, index=False)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                samples, _ = read_sequences(path, config)
                times.append(time.perf_counter() - start)
            assert len(samples) == series and all(len(x) == rows for x in samples.x)
            m = statistics.median(times)
            print(f"{series} series x {rows} rows: {m:7.2f} s, {1000 * m / series:6.3f} ms a series (median of {args.repeats})")


if __name__ == "__main__":
    main()
