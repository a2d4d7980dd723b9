"""A process that imports the toolkit once, then forks a child per command: ``coreml-lstm``
commands that start in milliseconds, so that a test can kill -9 many of them at chosen moments.

Run as ``python -m tests.zygote``; speaks JSON lines on stdin/stdout:

    {"spawn": [args...], "cwd": dir, "log": file}  ->  {"pid": n}
    {"warm": [args...], "cwd": dir, "log": file}   ->  {"code": exit code}   (runs here: later children skip first-call costs)
    {"wait": n}                                       ->  {"pid": n, "code": exit code, "signal": signal or null}
    {"quit": true}

torch runs on one thread here, before any fork: a forked child of a process whose OpenMP pool
has threads can hang in its first parallel region. Each child takes locks of its own where the
children would otherwise share one across processes (tqdm's multiprocessing write lock): a child
killed while holding it would leave every later child waiting for it forever.
"""

from __future__ import annotations

import json
import os
import sys


def _warm_up() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    import coreml_lstm.cli  # noqa: F401
    from coreml_lstm import api, compare, export, swift, verify  # noqa: F401
    from coreml_lstm._coremltools import coremltools

    coremltools()  # the converter's import: seconds, paid once here


def _command(args: list[str], cwd: str, log: str) -> int:
    """Run one command with stdout and stderr in ``log``; its exit code."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(cwd)
    code = 0
    try:
        from coreml_lstm.cli import main

        main.main(args, prog_name="coreml-lstm")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is a result the test reports
        import traceback

        traceback.print_exc()
        code = 70
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _own_locks() -> None:
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not the inherited multiprocessing semaphore, shared with every sibling


def serve() -> None:
    _warm_up()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "spawn" in request:
            pid = os.fork()
            if pid == 0:
                _own_locks()
                os._exit(_command(request["spawn"], request["cwd"], request["log"]))
            print(json.dumps({"pid": pid}), flush=True)
        elif "warm" in request:
            saved = os.dup(1), os.dup(2), os.getcwd()
            try:
                code = _command(request["warm"], request["cwd"], request["log"])
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.chdir(saved[2])
            print(json.dumps({"code": code}), flush=True)
        elif "wait" in request:
            _, status = os.waitpid(request["wait"], 0)
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            print(json.dumps({"pid": request["wait"], "code": code, "signal": sig}), flush=True)
        else:
            break


if __name__ == "__main__":
    serve()
