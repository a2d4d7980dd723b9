"""kill -9 at random moments of train's checkpoint save, export, swift and compare --keep.

Each command runs in a child forked from a process that has imported the toolkit already
(tests/zygote.py), so a run starts in milliseconds and a kill point costs little more than the
work before it. Most kill points fall inside the writing itself: the test watches for the
writer's temporary directory (``.<name>.tmp-*``) to appear and kills after a random part of a
save's duration; the others fall anywhere in the run.

After every kill the destination is absent or byte-identical to an uninterrupted run's (the
commands are deterministic, see test_reproducible.py), never half written. The next run starts
from whatever the kill left (temporary directories, a lock file) and must not fail because of
it; after the last kill a run completes and leaves nothing stray behind. Two exports racing to
one destination: one wins whole, the other exits 1 with a one-line error.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coreml_lstm.compare import VARIANTS

from .conftest import sine_table

KILLS = int(os.environ.get("COREML_LSTM_KILL_POINTS", "20"))  # per command
HANG = 120  # seconds: far more than any of these runs takes
SEED = int(os.environ.get("COREML_LSTM_KILL_SEED", "12"))
TINY = ["--window", "4", "--hidden-size", "4", "--num-layers", "1", "--epochs", "1", "--quiet", "--scaling", "global", "--seed", "0"]
ROOT = Path(__file__).resolve().parents[1]


class Zygote:
    """The forking server of tests/zygote.py."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}
        self.runs = 0

    def _ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def spawn(self, args: list) -> tuple[int, Path]:
        self.runs += 1
        log = self.cwd / f"run{self.runs}.log"
        return self._ask({"spawn": [str(a) for a in args], "cwd": str(self.cwd), "log": str(log)})["pid"], log

    def wait(self, pid: int, timeout: float = 300) -> dict:
        """The child's exit status; a child still running after ``timeout`` s is killed and the test fails."""
        end = time.monotonic() + timeout
        while not finished(pid):
            if time.monotonic() > end:
                os.kill(pid, signal.SIGKILL)
                self._ask({"wait": pid})
                raise AssertionError(f"child {pid} still ran after {timeout} s (a hang): killed")
            time.sleep(0.01)
        return self._ask({"wait": pid})

    def warm(self, args: list) -> int:
        """Run a command in the server itself, once: its children then skip the first-call costs."""
        log = self.cwd / "warm.log"
        return self._ask({"warm": [str(a) for a in args], "cwd": str(self.cwd), "log": str(log)})["code"], log.read_text()

    def run(self, args: list) -> tuple[dict, str]:
        pid, log = self.spawn(args)
        status = self.wait(pid)
        return status, log.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"quit": true}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)


def finished(pid: int) -> bool:
    """The child has exited (a zombie until the zygote waits for it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def temporaries(directory: Path, names: list[str]) -> list[str]:
    prefixes = tuple(f".{n}.tmp-" for n in names)
    try:
        return [e.name for e in os.scandir(directory) if e.name.startswith(prefixes)]
    except FileNotFoundError:
        return []


def snapshot(path: Path) -> dict | None:
    """Every file of a destination (a file or a directory) by relative path, or None if absent."""
    if not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _leftover(relative: str) -> bool:
    """A lock file or temporary of the atomic writer, by its path relative to a destination."""
    name = relative.rsplit("/", 1)[-1]
    return name.endswith(".lock") or ".tmp-" in relative


def stray(directory: Path) -> list[str]:
    """Temporary directories and lock files of the atomic writer."""
    return sorted(e.name for e in os.scandir(directory) if ".tmp-" in e.name or e.name.endswith(".lock"))


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill")
    sine_table(80).to_csv(d / "s.csv", index=False)
    z = Zygote(d)
    # Warm the server itself once per command: the children then skip every first-call cost.
    for args in (["train", "s.csv", "--target", "y0", "--time", "t", *TINY, "--out", "warm"], ["export", "warm", "warm.mlpackage"],
                 ["swift", "warm.mlpackage", "--out", "warm-swift", "--checkpoint", "warm"], ["compare", "warm", "--keep", "warm-keep"]):
        code, log = z.warm(args)
        assert code == 0, log
    yield z
    z.close()


COMMANDS = {
    # name: (args, the directory it writes in, the destinations it writes there)
    "train": (["train", "s.csv", "--target", "y0", "--time", "t", *TINY, "--out", "ck"], ".", ["ck"]),
    "export": (["export", "ref-ck", "m.mlpackage"], ".", ["m.mlpackage"]),
    "swift": (["swift", "ref.mlpackage", "--out", "sw", "--checkpoint", "ref-ck"], ".", ["sw"]),
    "compare": (["compare", "ref-ck", "--keep", "keep"], "keep", [f"{v}.mlpackage" for v, _, _ in VARIANTS]),
}


def _reference(z: Zygote, name: str) -> tuple[dict, list[str], float, float]:
    """An uninterrupted run: (snapshot of each destination, their names, run time, longest save)."""
    d = z.cwd
    if not (d / "ref-ck").exists():
        status, log = z.run(["train", "s.csv", "--target", "y0", "--time", "t", *TINY, "--out", "ref-ck", "--export", "ref.mlpackage"])
        assert status["code"] == 0, log
    args, watched, names = COMMANDS[name]
    watch = d / watched
    start = time.perf_counter()
    pid, log = z.spawn(args)
    seen: dict[str, list[float]] = {}
    while not finished(pid):
        now = time.perf_counter()
        assert now - start < HANG, f"{name}: the run took more than {HANG} s (a hang)"
        for t in temporaries(watch, names):
            seen.setdefault(t, [now, now])[1] = now
        time.sleep(0.0005)
    total = time.perf_counter() - start
    status = z.wait(pid)
    assert status["code"] == 0, log.read_text()
    assert seen, f"{name}: no temporary directory was seen: the writes are not atomic, or too fast to watch"
    save = max([b - a for a, b in seen.values()] or [0.001])  # how long a temporary lived: a save's duration
    return {n: snapshot(watch / n) for n in names}, names, total, save


@pytest.mark.parametrize("name", list(COMMANDS))
def test_kill_9_never_leaves_a_half_written_destination(zygote, name):
    z, rng = zygote, random.Random(f"{SEED}-{name}")
    reference, names, total, save = _reference(z, name)
    args, watched, _ = COMMANDS[name]
    watch = z.cwd / watched
    outcomes = {"killed once writing had begun": 0, "killed at a random moment": 0, "finished first": 0}
    for k in range(KILLS):
        if rng.random() < 0.5:  # start from nothing, or replace a complete destination
            for n in names:
                shutil.rmtree(watch / n, ignore_errors=True)
        if name == "swift" and rng.random() < 0.5 and not (watch / "sw").exists():
            (watch / "sw").mkdir()  # an existing directory: its files are replaced one by one, each whole
            (watch / "sw" / "README").write_text("the app's own file\n")
        pid, log = z.spawn(args)
        targeted = rng.random() < 0.75
        if targeted:  # wait for the n-th save to begin, then kill within a save's duration
            nth, seen = 1 + int(rng.random() ** 3 * len(names)), set()  # mostly the first saves: a later one costs a conversion each
            began = time.monotonic()
            while len(seen) < nth and not finished(pid):
                if time.monotonic() - began > HANG:
                    z.wait(pid, timeout=0)  # kills it and fails: a hang
                seen.update(temporaries(watch, names))
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.8 * save))  # the temporary was seen up to a poll late
        else:
            time.sleep(rng.uniform(0, total))
        os.kill(pid, signal.SIGKILL)  # a child that has exited already is a zombie: the kill does nothing
        status = z.wait(pid)
        if status["signal"] is None:  # it ended before the kill: then it must have succeeded
            assert status["code"] == 0, log.read_text()
            outcomes["finished first"] += 1
        else:
            outcomes["killed once writing had begun" if targeted else "killed at a random moment"] += 1
        for n in names:
            state = snapshot(watch / n)
            if state is not None and "README" in state:  # swift into an existing directory: each file whole
                del state["README"]
                # A kill while one file was being written leaves its writer's lock (and temporary)
                # beside it, as beside any destination: the next run clears them; every file is whole.
                files = [f for f in state if not _leftover(f)]
                assert all(state[f] == reference[n][f] for f in files), f"kill {k}: {sorted(f for f in files if state[f] != reference[n][f])} half written"
            else:
                assert state is None or state == reference[n], f"kill {k} (status {status}): {watch / n} is half written"
    # A run after the last kill completes from whatever was left, and leaves nothing stray.
    status, log = z.run(args)
    assert status["code"] == 0, log
    for n in names:
        state = snapshot(watch / n)
        state.pop("README", None)
        assert state == reference[n]
    assert not stray(watch), stray(watch)
    # Timing decides where a kill lands; on a loaded machine a save may end before the kill. At
    # least a quarter must land once a write has begun, or the test would test nothing.
    assert outcomes["killed once writing had begun"] >= KILLS // 4, outcomes
    print(f"{name}: {KILLS} kill points {outcomes}; a save takes up to {save * 1000:.1f} ms of a {total:.2f} s run")


def test_two_exports_racing_to_one_destination(zygote):
    z = zygote
    _reference(z, "export")  # makes ref-ck
    reference = snapshot(z.cwd / "m.mlpackage")
    shutil.rmtree(z.cwd / "m.mlpackage")
    (a, log_a), (b, log_b) = z.spawn(COMMANDS["export"][0]), z.spawn(COMMANDS["export"][0])
    results = [z.wait(a), z.wait(b)]
    codes = sorted(r["code"] for r in results)
    assert codes == [0, 1], (results, log_a.read_text(), log_b.read_text())
    loser = (log_a if results[0]["code"] == 1 else log_b).read_text()
    assert loser == f"Error: {z.cwd / 'm.mlpackage'}: another process is writing it now; wait for it to finish or write elsewhere\n"
    assert snapshot(z.cwd / "m.mlpackage") == reference
    assert not stray(z.cwd)
