"""Executor time over torch eager time for a 2-layer LSTM (input 8, hidden 64, sequence 100).

Both run the same model on the same batch, interleaved run by run; the executor runs the saved
package from disk. The script prints medians of --repeats runs per batch size and mode, the
ratio executor / torch (targets in fp32 mode: <= 1.5 at batch 64 and 1024, <= 3 at batch 1), and the executor's import
time in a fresh interpreter without torch (target < 0.3 s).

    python scripts/bench_executor.py [--repeats 7]
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


def median_times(fns, repeats: int) -> list[float]:
    """Median wall time of each function, run interleaved so that both see the same noise."""
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import coreml_lstm.executor as ex

    print(f"2-layer LSTM, input 8, hidden 64, sequence 100; median of {args.repeats}; torch threads {torch.get_num_threads()}")
    print(f"{'batch':>6} {'mode':>5} {'torch ms':>10} {'executor ms':>12} {'ratio':>7} {'target':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 64, 1024):
            for precision in ("fp32", "fp16"):
                case = Case(f"bench-b{batch}-{precision}", lstm(2, inputs=8, hidden=64), "iOS17", precision)
                module, _, path, _ = convert(case, tmp)
                x = np.random.default_rng(0).standard_normal((batch, 100, 8)).astype(np.float32)
                # The zoo converts at its example shape; re-convert at this batch and length.
                case.build = _builder(module, x)
                module, feeds, path, _ = convert(case, tmp)
                program = ex.load(path)
                xt = torch.as_tensor(x)
                with torch.no_grad():
                    t_torch, t_exec = median_times([lambda: module(xt), lambda: program.predict(feeds, mode=precision)], args.repeats)
                target = {1: 3.0, 64: 1.5, 1024: 1.5}[batch] if precision == "fp32" else float("nan")
                print(f"{batch:>6} {precision:>5} {t_torch * 1e3:>10.2f} {t_exec * 1e3:>12.2f} {t_exec / t_torch:>7.2f} {target:>7.1f}", flush=True)
    seconds, torch_loaded = import_time()
    print(f"executor import time: {seconds:.3f} s (median of 5 fresh interpreters; target < 0.3 s); torch imported: {torch_loaded}")


def _builder(module, x):
    return lambda: (module, {"x": x})


if __name__ == "__main__":
    main()
