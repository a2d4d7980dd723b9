"""Training under torchrun: DDP over gloo on CPU, rank-0 writes, and a job that loses a process.

The torchrun tests launch real processes (``python -m torch.distributed.run``) on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from torch.utils.data import DistributedSampler

from coreml_lstm.checkpoint import Checkpoint
from coreml_lstm.cli import main
from coreml_lstm import Forecaster
from coreml_lstm.errors import ConfigError
from coreml_lstm.train import ShardSampler, _collective_failed, _first_line

from .conftest import sine_table

ROOT = Path(__file__).parents[1]
# Tiny and quick; dropout 0 so that two processes and one see the same arithmetic.
TRAIN = ["--target", "y0", "--time", "t", "--series-id", "sid", "--window", "8", "--hidden-size", "8", "--seed", "3", "-q"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "sine.csv"
    # 2 series x 120 rows, window 8: 2 x 88 = 176 training windows, an even number, so the two
    # shards of DistributedSampler's permutation need no padding.
    sine_table(120, series=2).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("n, world", [(10, 1), (10, 2), (11, 2), (7, 3), (2, 4)])
def test_shard_order_is_distributed_samplers(n, world):
    for rank in range(world):
        ours = ShardSampler(n, world, rank, seed=5)
        theirs = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=5, drop_last=False)
        for epoch in (0, 3):
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert ours.order().tolist() == list(theirs)


def test_two_processes_reach_the_weights_of_one_with_twice_the_batch(table, tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "coreml_lstm", "train", str(table), *TRAIN, "--epochs", "2", "--batch-size", "8", "--out", str(out / "two")]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 of 2" in done.stderr and "rank 1 of 2" in done.stderr
    # Rank 0 alone reports and writes: one checkpoint line, one checkpoint, nothing left beside it.
    assert done.stdout.count("checkpoint: ") == 1, done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["two"]
    assert sorted(p.name for p in (out / "two").iterdir()) == ["config.json", "metrics.json", "model.safetensors", "validation.safetensors"]

    runner = CliRunner()
    for name, batch in (("one", "16"), ("one-small-batch", "8")):
        result = runner.invoke(main, ["train", str(table), *TRAIN, "--epochs", "2", "--batch-size", batch, "--out", str(out / name)])
        assert result.exit_code == 0, result.output
    two, one, other = (load_file(str(out / n / "model.safetensors")) for n in ("two", "one", "one-small-batch"))
    assert two.keys() == one.keys()
    for k in two:
        np.testing.assert_allclose(two[k].numpy(), one[k].numpy(), rtol=1e-4, atol=2e-5, err_msg=k)
    # The comparison can fail: one process with the per-rank batch takes other steps.
    assert max(float((other[k] - two[k]).abs().max()) for k in two) > 1e-3
    h2, h1 = (json.loads((out / n / "metrics.json").read_text())["history"] for n in ("two", "one"))
    np.testing.assert_allclose(h2["train_loss"], h1["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-4)
    assert h2["best_epoch"] == h1["best_epoch"]


def test_a_killed_process_fails_the_job_with_a_clear_message(table, tmp_path):
    """Two nodes of one process each (two torchrun agents, as on two machines): killing node 1's
    process makes node 0's process fail its next collective, say so on one line and exit 1."""
    port = _free_port()
    out = tmp_path / "never"
    logs = [tmp_path / f"node{i}.log" for i in (0, 1)]
    procs = []
    try:
        for node, log in enumerate(logs):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
                   "--master-addr", "127.0.0.1", "--master-port", str(port),
                   "-m", "coreml_lstm", "train", str(table), *TRAIN, "--epochs", "100000", "--patience", "100000", "--batch-size", "8",
                   "--dist-timeout", "60", "--out", str(out)]
            with open(log, "w") as fh:
                procs.append(subprocess.Popen(cmd, env=_env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 180
        pid = None
        while pid is None and time.monotonic() < deadline:
            for line in logs[1].read_text().splitlines():
                if line.startswith("rank 1 of 2: pid "):
                    pid = int(line.split("pid ")[1].split(",")[0])
            assert procs[0].poll() is None, logs[0].read_text()[-2000:]
            time.sleep(0.2)
        assert pid is not None, logs[1].read_text()[-2000:]
        time.sleep(1.0)  # well inside the training loop
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        code = procs[0].wait(timeout=90)
        took = time.monotonic() - killed
        procs[1].wait(timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    text = logs[0].read_text()
    assert code != 0 and procs[1].returncode != 0
    assert took < 60, f"node 0 took {took:.0f} s to notice"
    errors = [line for line in text.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, text[-3000:]
    assert errors[0].startswith("Error: distributed training, rank 0 of 2: a collective operation failed (")
    assert errors[0].endswith("another process of the job stopped, was killed or lost its connection (collectives wait 60 s: --dist-timeout)")
    assert not out.exists()


def test_collective_failures_are_recognised():
    timeout = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 4000ms for recv operation to complete")
    assert _collective_failed(timeout) and _first_line(timeout) == "Timed out waiting 4000ms for recv operation to complete"
    closed = RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:8097. This is typically caused by a remote worker crashing.")
    assert _collective_failed(closed) and _first_line(closed) == "Connection closed by peer [127.0.0.1]:8097"
    assert not _collective_failed(RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 2x1)"))


def test_only_rank_0_saves(tmp_path, monkeypatch, sine):
    f = Forecaster("y0", time="t", window=4, hidden_size=4, epochs=1, progress=False).fit(sine)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert f.checkpoint_.save(tmp_path / "ckpt") == tmp_path / "ckpt"
    assert not (tmp_path / "ckpt").exists()
    monkeypatch.setenv("RANK", "0")
    f.checkpoint_.save(tmp_path / "ckpt")
    assert Checkpoint.load(tmp_path / "ckpt").state_dict.keys() == f.checkpoint_.state_dict.keys()


def test_device_and_task_errors(table, monkeypatch):
    runner = CliRunner()
    if not torch.cuda.is_available():
        result = runner.invoke(main, ["train", str(table), *TRAIN, "--epochs", "1", "--device", "cuda"])
        assert result.exit_code == 1
        assert result.output.strip().splitlines()[-1] == "Error: device: cuda is not available here (no CUDA device, or a CPU build of torch); use cpu or auto"
    result = runner.invoke(main, ["train", str(table), "--task", "classify", "--device", "auto", "--series-id", "sid"])
    assert result.exit_code == 2 and "--device: only with --task forecast" in result.output
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(main, ["train", str(table), "--task", "classify", "--series-id", "sid"])
    assert result.exit_code == 2 and "--task classify trains in one process; run it without torchrun" in result.output
    with pytest.raises(ConfigError) as e:
        Forecaster("y0", device="tpu")
    assert str(e.value) == "device: 'tpu' is not one of cpu, cuda, mps, auto"
