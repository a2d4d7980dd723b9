"""Peak memory and throughput of `train` (one epoch) and `predict` on generated tables of 1e5-1e7 rows.

For each size the script writes a CSV of many series (2,000 steps each; columns series, t, y and
x), runs `coreml-lstm train TABLE --epochs 1` and `coreml-lstm predict PACKAGE --csv TABLE --last`
in child processes and prints each one's peak resident memory (the child's ru_maxrss, from
wait4) above a constant (the same command's peak on a 1,000-row table: interpreter, torch,
pandas, pyarrow, the model), as a multiple of the table's float32 size (rows x columns x 4 bytes),
and the training windows per second (optimizer steps x batch over the time from the first step to
the last), and from one size to the next the memory added per float32 byte of table (the slope,
free of the working set that does not grow with the table). Targets: peak <= 3x the float32 table
plus a constant; windows/s not below 0.1's at 1e5.

The 0.1 implementation runs in the same invocation, from `git archive` of the baseline commit into
a temporary folder: at 1e5 rows its whole epoch; at 1e6 rows its first --old-steps batches only
(its epoch there takes over 25 minutes on 2 cores); its peak memory is reached before the first
batch (every window materialised, twice). Larger sizes run the new code only.

    python scripts/bench_scale.py [--sizes 1e5,1e6,1e7] [--columns 4] [--threads 1]

Numbers depend on the machine and its load; the printed table says what was run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "fd78a6e"  # version 0.1: every window materialised as a (windows, window, features) array
STEPS = 2000  # rows per series

# The child: count optimizer steps (a global post-step hook, the same for both versions), stop
# after --stop-after steps if asked, run the CLI in-process, write what it measured.
DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    from torch.optim.optimizer import register_optimizer_step_post_hook
    out, stop = sys.argv[1], int(sys.argv[2])
    seen = {"steps": 0, "first": None, "last": None, "stopped": False}
    def report():
        with open(out, "w") as fh:
            json.dump(seen, fh)
    def hook(optimizer, args, kwargs):
        seen["steps"] += 1
        seen["last"] = time.perf_counter()
        seen["first"] = seen["first"] or seen["last"]
        if stop and seen["steps"] >= stop:
            seen["stopped"] = True
            report()
            os._exit(0)
    register_optimizer_step_post_hook(hook)
    from coreml_lstm.cli import main
    try:
        main(sys.argv[3:], prog_name="coreml-lstm")
    finally:
        report()
    """
)


def write_table(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """``rows`` rows of ``rows / STEPS`` noisy seasonal series, one after another."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    n_series = max(1, rows // STEPS)
    steps = rows // n_series
    t = np.tile(np.arange(steps, dtype=np.int64), n_series)
    phase = np.repeat(rng.uniform(0, 2 * np.pi, n_series), steps)
    level = np.repeat(rng.uniform(5, 50, n_series), steps)
    data = {"series": np.repeat(np.array([f"s{i:05d}" for i in range(n_series)]), steps)}
    if columns >= 3:
        data["t"] = t
    data["y"] = np.round(level + 3 * np.sin(t / 24 * 2 * np.pi + phase) + rng.normal(0, 0.3, len(t)), 3)
    if columns >= 4:
        data["x"] = np.round(np.cos(t / 24 * 2 * np.pi + phase), 3)
    pacsv.write_csv(pa.table(data), path)


def run_child(work: Path, pythonpath: Path, argv: list[str], *, stop: int = 0, threads: int | None = None) -> dict:
    """Run the CLI in a child process; its peak RSS (MB), wall time and step counts."""
    out = work / "child.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(work / "driver.py"), str(out), str(stop), *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(argv)}\n{stderr.decode()[-2000:]}")
    seen = json.loads(out.read_text()) if out.exists() else {"steps": 0}
    return {"peak_mb": usage.ru_maxrss / 1024, "wall": wall, **seen}


def windows_per_second(r: dict, batch: int) -> float | None:
    if r.get("steps", 0) < 3 or not r.get("first"):
        return None
    return (r["steps"] - 1) * batch / (r["last"] - r["first"])  # intervals between steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7", help="Table rows, comma-separated.")
    ap.add_argument("--columns", type=int, choices=(2, 3, 4), default=4, help="2: series, y; 3: + t; 4: + x (a feature).")
    ap.add_argument("--batch-size", type=int, default=32, help="Batch of train for tables up to 1e6 rows (the default of train).")
    ap.add_argument("--large-batch", type=int, default=512, help="Batch for larger tables (the epoch stays minutes long; memory does not depend on it).")
    ap.add_argument("--old-steps", type=int, default=300, help="Batches of 0.1's training measured above 1e5 rows.")
    ap.add_argument("--repeats", type=int, default=3, help="Alternating whole-epoch runs of both versions at 1e5 rows.")
    ap.add_argument("--old-max-rows", type=float, default=1e6, help="Run 0.1 up to this size.")
    ap.add_argument("--threads", type=int, help="OMP_NUM_THREADS for every child (default: as set in the environment).")
    ap.add_argument("--baseline", default=BASELINE, help="Commit of the implementation compared against.")
    ap.add_argument("--work", type=Path, help="Keep tables and runs here (default: a temporary folder).")
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "driver.py").write_text(DRIVER)
        old = work / "old"
        if not old.exists():
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "coreml_lstm"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        names = ["series", "t", "y", "x"][: args.columns] if args.columns > 2 else ["series", "y"]
        keys = ["--series-id", "series"] + (["--time", "t"] if "t" in names else [])
        train = lambda table, batch, out: ["train", str(table), "--target", "y", *keys, "--epochs", "1", "--batch-size", str(batch), "--out", str(out), "-q"]
        predict = lambda table: ["predict", str(work / "model.mlpackage"), "--csv", str(table), "--last", "--out", str(work / "forecast.csv")]

        small = work / "t1e3.csv"
        write_table(small, 1000, args.columns)
        print(f"setting up: a package from the 1,000-row table, constants of both versions (threads: {args.threads or 'default'})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "coreml_lstm", *train(small, 32, work / "small-run")[:-1], "--export", str(work / "model.mlpackage"), "-q"],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, capture_output=True)
        # The constant of a train run is measured at its batch size: the network's activations
        # for a batch are part of the model's memory, not of the table's.
        const = {}
        batches = sorted({args.batch_size if n <= 1_000_000 else args.large_batch for n in sizes})
        for version, path in (("new", ROOT), ("old", old)):
            for batch in batches:
                const[version, "train", batch] = run_child(work, path, train(small, batch, work / "run"), threads=args.threads)["peak_mb"]
            const[version, "predict", None] = run_child(work, path, predict(small), threads=args.threads)["peak_mb"]

        rows_out = []
        for n in sizes:
            table = work / f"t{n:.0e}.csv".replace("+", "")
            if not table.exists():
                write_table(table, n, args.columns)
            f32 = n * len(names) * 4 / 2**20
            batch = args.batch_size if n <= 1_000_000 else args.large_batch
            r = {"n": n, "f32": f32, "batch": batch, "csv_mb": table.stat().st_size / 2**20}
            with_old = n <= args.old_max_rows
            stop = 0 if n <= 100_000 else args.old_steps
            # Up to 1e5 rows both versions train whole epochs, alternately, --repeats times: the
            # median windows/s of each, the highest peak of each.
            repeats = args.repeats if n <= 100_000 else 1
            news, olds = [], []
            for k in range(repeats):
                print(f"{n:.0e} rows: new train ({k + 1}/{repeats})", file=sys.stderr)
                news.append(run_child(work, ROOT, train(table, batch, work / "run"), threads=args.threads))
                if with_old:
                    print(f"{n:.0e} rows: 0.1 train ({k + 1}/{repeats})" + (f", first {stop} batches" if stop else ""), file=sys.stderr)
                    olds.append(run_child(work, old, train(table, batch, work / "run-old"), stop=stop, threads=args.threads))
            r["train"] = (max(t["peak_mb"] for t in news), statistics.median(windows_per_second(t, batch) or 0 for t in news), news[-1]["wall"])
            if with_old:
                r["old_train"] = (max(t["peak_mb"] for t in olds), statistics.median(windows_per_second(t, batch) or 0 for t in olds),
                                  any(t.get("stopped", False) for t in olds), olds[-1]["steps"])
            print(f"{n:.0e} rows: new predict", file=sys.stderr)
            p_new = run_child(work, ROOT, predict(table), threads=args.threads)
            r["predict"] = (p_new["peak_mb"], p_new["wall"])
            if with_old:
                print(f"{n:.0e} rows: 0.1 predict", file=sys.stderr)
                p_old = run_child(work, old, predict(table), threads=args.threads)
                r["old_predict"] = (p_old["peak_mb"], p_old["wall"])
            rows_out.append(r)

        def mult(peak, version, what, f32, batch=None):
            return f"{peak:7.0f} MB {(peak - const[version, what, batch]) / f32:6.2f}x"

        print(f"tables: {', '.join(names)}; {STEPS} rows per series; float32 size = rows x {len(names)} x 4 bytes; train: window 24, "
              f"2-layer LSTM 32, one epoch; predict: --last through the executor; threads: {args.threads or 'default'}")
        trains = ", ".join(f"batch {b} {const['new', 'train', b]:.0f} MB (0.1: {const['old', 'train', b]:.0f} MB)" for b in batches)
        print(f"constants (peak on a 1,000-row table): train {trains}; predict {const['new', 'predict', None]:.0f} MB "
              f"(0.1: {const['old', 'predict', None]:.0f} MB); 'x' = (peak - constant) / float32 size")
        head = f"{'rows':>6} {'float32':>9} {'batch':>5} | {'train peak':>18} {'windows/s':>10} | {'0.1 train peak':>18} {'windows/s':>10} | {'predict peak':>18} | {'0.1 predict peak':>18}"
        print(head)
        print("-" * len(head))
        for r in rows_out:
            peak, wps, _ = r["train"]
            line = f"{r['n']:>6.0e} {r['f32']:>6.1f} MB {r['batch']:>5} | {mult(peak, 'new', 'train', r['f32'], r['batch'])} {wps or 0:>10.0f} | "
            if "old_train" in r:
                opeak, owps, stopped, steps = r["old_train"]
                line += f"{mult(opeak, 'old', 'train', r['f32'], r['batch'])} {owps or 0:>10.0f}{'*' if stopped else ' '}| "
            else:
                line += f"{'not run':>18} {'':>10} | "
            line += f"{mult(r['predict'][0], 'new', 'predict', r['f32'])} | "
            line += mult(r["old_predict"][0], "old", "predict", r["f32"]) if "old_predict" in r else f"{'not run':>18}"
            print(line)
        # The slope: memory added per float32 byte of table from one size to the next (peaks net of
        # the constant of their batch). The multiple above folds in the working set that does not
        # grow with the table (evaluation batches of 1024 windows, the 16,384 windows the start is
        # chosen on, reader buffers), which the 1,000-row table is too small to reach.
        for (a, b) in zip(rows_out, rows_out[1:]):
            def slope(key, version, what):
                if key not in a or key not in b:
                    return "not run"
                batch_a, batch_b = (a["batch"], b["batch"]) if what == "train" else (None, None)
                grow = (b[key][0] - const[version, what, batch_b]) - (a[key][0] - const[version, what, batch_a])
                return f"{grow / (b['f32'] - a['f32']):.2f}x"
            print(f"{a['n']:.0e} -> {b['n']:.0e} rows, memory added per float32 byte: train {slope('train', 'new', 'train')} "
                  f"(0.1: {slope('old_train', 'old', 'train')}), predict {slope('predict', 'new', 'predict')} (0.1: {slope('old_predict', 'old', 'predict')})")
        if any(r.get("old_train", (0, 0, False))[2] for r in rows_out):
            print(f"* 0.1 stopped after {args.old_steps} batches: its windows/s over those batches; its peak (all windows materialised) comes before them")
        for r in rows_out:
            if "old_train" in r and r["old_train"][1] and r["train"][1]:
                print(f"{r['n']:.0e} rows: windows/s new / 0.1 = {r['train'][1] / r['old_train'][1]:.2f}")
        print("new train wall time (read, epoch, validation, metrics, save): " + ", ".join(f"{r['n']:.0e} {r['train'][2]:.0f} s" for r in rows_out))


if __name__ == "__main__":
    main()
