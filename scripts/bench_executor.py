"""Executor time over torch eager fp32 time for a 2-layer LSTM (input 8, hidden 64, sequence 100).

For each batch size (1, 64, 1024) the script converts the model twice at that batch, an fp32 and
an fp16 package (iOS17: the recurrence itself runs in fp16), and times three things interleaved
run by run so that they see the same load: torch eager fp32, the executor on the fp32 package in
fp32 mode, and the executor on the fp16 package in fp16 mode (every fp16 value rounded as the
program makes it). It prints the median of --repeats runs of each and the ratios executor / torch
against the targets (fp32: <= 3 at batch 1, <= 1.5 at 64 and 1024; fp16: <= 1.5 at 64 and 1024),
then the executor's import time in a fresh interpreter without torch (target < 0.3 s).

    python scripts/bench_executor.py [--repeats 15] [--batches 1 64 1024]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from coreml_lstm.zoo import Case, convert, lstm

TARGETS = {("fp32", 1): 3.0, ("fp32", 64): 1.5, ("fp32", 1024): 1.5, ("fp16", 64): 1.5, ("fp16", 1024): 1.5}


def median_times(fns, repeats: int) -> list[float]:
    """Median wall time of each function, run interleaved so that all see the same noise."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]


def import_time() -> tuple[float, bool]:
    code = "import sys,time;t=time.perf_counter();import coreml_lstm.executor;print(time.perf_counter()-t,'torch' in sys.modules)"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() for _ in range(5)]
    return statistics.median(float(r[0]) for r in runs), any(r[1] == "True" for r in runs)


def package(batch: int, precision: str, directory: str):
    """(torch module, feeds, executor program) for the benchmark model converted at ``batch``."""
    import coreml_lstm.executor as ex

    case = Case(f"bench-b{batch}-{precision}", lstm(2, inputs=8, hidden=64), "iOS17", precision)
    module, _, _, _ = convert(case, directory)  # the zoo builds the model at its example shape...
    x = np.random.default_rng(0).standard_normal((batch, 100, 8)).astype(np.float32)
    case.build = lambda: (module, {"x": x})  # ...re-converted at this batch and length
    module, feeds, path, _ = convert(case, directory)
    return module, feeds, ex.load(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    args = ap.parse_args()

    print(f"2-layer LSTM, input 8, hidden 64, sequence 100; median of {args.repeats} interleaved runs; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'batch':>6} {'mode':>5} {'torch ms':>10} {'executor ms':>12} {'ratio':>7} {'target':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:
            module, feeds, p32 = package(batch, "fp32", tmp)
            _, feeds16, p16 = package(batch, "fp16", tmp)
            xt = torch.as_tensor(feeds["x"])
            with torch.no_grad():
                t_torch, t32, t16 = median_times(
                    [lambda: module(xt), lambda: p32.predict(feeds, mode="fp32"), lambda: p16.predict(feeds16, mode="fp16")], args.repeats
                )
            for mode, t in (("fp32", t32), ("fp16", t16)):
                target = TARGETS.get((mode, batch))
                print(f"{batch:>6} {mode:>5} {t_torch * 1e3:>10.2f} {t * 1e3:>12.2f} {t / t_torch:>7.2f} "
                      f"{'-' if target is None else f'{target:.1f}':>7}", flush=True)
    seconds, torch_loaded = import_time()
    print(f"executor import time: {seconds:.3f} s (median of 5 fresh interpreters; target < 0.3 s); torch imported: {torch_loaded}")


if __name__ == "__main__":
    main()
