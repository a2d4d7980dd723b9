"""Training loop (after nanoGPT: one loop that reads top to bottom, no trainer framework).

seed -> process group (under torchrun) -> optimizer -> epochs (train, evaluate, early stop) -> best
weights restored.

Batches are raw windows cut from the dataset's series on the fly (``dataset.train.gather``) and
``loss_fn(model, x, y)`` takes them raw: normalisation is the model's business. Launched by
``torchrun`` (WORLD_SIZE > 1) the loop trains with DistributedDataParallel: every process takes
its shard of each epoch's permutation (torch's DistributedSampler order), DDP averages the
gradients, the validation loss is summed over the processes' shards, and rank 0 decides the best
epoch and early stopping and broadcasts its decision. Without torchrun nothing of that runs.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from .errors import ConfigError, DistributedError, TrainingError

SCHEDULES = ("none", "plateau", "cosine")
SELECTS = ("validation", "network")
DEVICES = ("cpu", "cuda", "mps", "auto")


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 32  # per process under torchrun: the global batch is batch_size x world size
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 20  # epochs without a better validation loss before stopping
    schedule: str = "none"  # none | plateau (halve on a stall) | cosine
    grad_clip: float = 1.0  # recurrent nets on raw-ish data spike early; clipping keeps the seed runs tame
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None keeps torch's default

    SCHEDULES: ClassVar[tuple[str, ...]] = SCHEDULES

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {getattr(self, name)!r}")
        if self.patience < 0:
            raise ConfigError(f"patience: must be >= 0, got {self.patience!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr!r}")
        if self.schedule not in self.SCHEDULES:
            raise ConfigError(f"schedule: {self.schedule!r} is not one of {', '.join(self.SCHEDULES)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)


@dataclass
class ForecastTrainConfig(TrainConfig):
    """The forecaster's settings: the loop's, plus what happens after it (see Forecaster.fit)."""

    # A window-scaled point forecaster ships whichever of the trained network, each classical
    # baseline and the network blended with the best of them has the lowest validation MAE
    # ("validation"), or the network as trained ("network").
    select: str = "validation"
    calibrate: bool = True  # mixture head: widen the mixtures until validation's 90% intervals cover 90%

    def __post_init__(self):
        super().__post_init__()
        if self.select not in SELECTS:
            raise ConfigError(f"select: {self.select!r} is not one of {', '.join(SELECTS)}")


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped_early: bool = False
    # The untrained model's validation loss: with window scaling it is the seasonal-naive
    # forecast, kept (best_epoch -1) when no epoch beats it.
    initial_val_loss: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Make a CPU run repeat exactly: seed torch and numpy.

    The CPU kernels a recurrent model trains with (LSTM/GRU, linear, gather) are deterministic, so
    torch's global deterministic mode is not switched on: it would stay on in the caller's process
    after training, and its first call imports torch's compiler stack (~1.5 s).
    """
    torch.manual_seed(seed)
    np.random.seed(seed)


# -- processes and devices -------------------------------------------------------------------


def rank_and_world() -> tuple[int, int]:
    """(rank, world size): the process group's if one is up, else torchrun's environment, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """True in a plain process and on rank 0 of a distributed job: the one that writes files."""
    return rank_and_world()[0] == 0


def check_device(device: str, dist_timeout: float = 300.0) -> None:
    """Raise ConfigError for a device name or timeout that cannot be (before any work is done)."""
    if device not in DEVICES:
        raise ConfigError(f"device: {device!r} is not one of {', '.join(DEVICES)}")
    if not dist_timeout > 0:
        raise ConfigError(f"dist_timeout: must be > 0 seconds, got {dist_timeout!r}")


def resolve_device(name: str, *, distributed: bool = False) -> torch.device:
    """The torch device for ``--device``; "auto" picks cuda, then mps (single process), then cpu."""
    check_device(name)
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else ("mps" if mps and not distributed else "cpu")
    if name == "cuda" and not cuda:
        raise ConfigError("device: cuda is not available here (no CUDA device, or a CPU build of torch); use cpu or auto")
    if name == "mps" and distributed:
        raise ConfigError("device: mps trains in one process only; under torchrun use cpu (gloo) or cuda (nccl)")
    if name == "mps" and not mps:
        raise ConfigError("device: mps is not available here (Apple GPUs on macOS only); use cpu or auto")
    if name == "cuda" and distributed:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


@dataclass
class _Group:
    """This process's place in the job: rank 0 of 1 without torchrun."""

    device: torch.device
    rank: int = 0
    world: int = 1
    timeout: float = 0.0
    owned: bool = False  # we started the process group, so we end it

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def _tensor(self, values) -> torch.Tensor:
        # nccl reduces tensors on the GPU, gloo on the CPU
        return torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes."""
        if not self.distributed:
            return list(values)
        t = self._tensor(values)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def from_rank0(self, *values: float) -> list[float]:
        """Rank 0's values, on every process."""
        if not self.distributed:
            return list(values)
        t = self._tensor(values)
        torch.distributed.broadcast(t, src=0)
        return t.tolist()

    def close(self) -> None:
        if self.owned and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _join(device: str, timeout: float) -> _Group:
    """The process group torchrun asked for (WORLD_SIZE > 1), or a plain single process."""
    dist = torch.distributed
    started = dist.is_available() and dist.is_initialized()
    if not started and int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return _Group(resolve_device(device))
    if not dist.is_available():
        raise ConfigError("torch.distributed is not available in this build of torch; train without torchrun")
    device = resolve_device(device, distributed=True)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owned = False
    if not started:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT", "RANK") if k not in os.environ]
        if missing:
            raise ConfigError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} are not set; launch with torchrun")
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"distributed training: could not join the job's process group ({_first_line(exc)})") from None
        owned = True
    group = _Group(device, dist.get_rank(), dist.get_world_size(), timeout, owned)
    print(f"rank {group.rank} of {group.world}: pid {os.getpid()}, {dist.get_backend()} on {device}", file=sys.stderr, flush=True)
    return group


def _first_line(exc: BaseException) -> str:
    """The gist of a backend's error: its first sentence, without gloo's source-file prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text.split(". ")[0].rstrip(".")


def _collective_failed(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch.distributed, "DistError", ())):
        return True
    text = str(exc)
    return any(s in text for s in ("gloo", "NCCL", "Timed out", "timed out", "Connection closed", "Connection reset", "Broken pipe"))


class ShardSampler(DistributedSampler):
    """torch's DistributedSampler (shuffled with ``seed + epoch``, padded to a multiple of the
    world size, every ``world``-th position from ``rank``), giving each epoch's order as one int64
    tensor: iterating the base class builds a Python list, ~36 bytes per window.
    """

    def __init__(self, n: int, num_replicas: int = 1, rank: int = 0, seed: int = 0):
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)

    def order(self) -> torch.Tensor:
        """This rank's window positions for the current epoch, (num_samples,) int64."""
        n = len(self.dataset)
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        perm = torch.randperm(n, generator=g)  # (n,)
        mine = perm[self.rank :: self.num_replicas]  # a view: positions rank, rank + world, ... below n
        if len(mine) < self.num_samples:  # padded positions wrap around to the start of perm
            wrapped = torch.arange(self.rank + len(mine) * self.num_replicas, self.total_size, self.num_replicas) % n
            mine = torch.cat([mine, perm[wrapped]])
        return mine


class _Loss(nn.Module):
    """``loss_fn(model, x, y)`` as a module, so DDP can wrap the whole loss: a loss may call any
    of the model's methods, not only ``forward``, and DDP syncs what runs inside its forward."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x, y):
        return self.loss_fn(self.model, x, y)


# -- the loop --------------------------------------------------------------------------------


def mse_loss(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error in the model's frame, of raw windows x (B, W, F) against raw targets y (B, horizon, T).

    With window scaling each window has its own frame (level and scale), so its targets are
    expressed in it: the loss is measured in units of each window's scale.
    """
    z, ctx = model.frame(x)  # (B, W, F)
    return nn.functional.mse_loss(model.forward_normalized(z), model.target_frame(y, ctx))


@torch.no_grad()
def _loss_sum(model: nn.Module, loss_fn, windows, start: int, stop: int, device, batch_size: int = 1024) -> tuple[float, int]:
    """(sum of per-window losses, windows) over windows start..stop, the batch losses weighted by size."""
    model.eval()
    total, count = 0.0, 0
    for xb, yb in windows.batches(batch_size, start, stop):
        x, y = torch.from_numpy(xb).to(device), torch.from_numpy(yb).to(device)
        total += float(loss_fn(model, x, y)) * len(xb)
        count += len(xb)
    return total, count


def evaluate(model: nn.Module, loss_fn, windows, batch_size: int = 1024, device="cpu") -> float:
    """Mean loss over all of ``windows`` (a :class:`coreml_lstm.data.Windows`), in normalised units."""
    total, count = _loss_sum(model, loss_fn, windows, 0, len(windows), device, batch_size)
    return total / max(count, 1)


def fit(model: nn.Module, dataset, config: TrainConfig, *, loss_fn=mse_loss, progress: bool = True, device: str = "cpu",
        dist_timeout: float = 300.0) -> History:
    """Train ``model`` on ``dataset.train``, early-stopping on ``dataset.validation``.

    Under torchrun every process runs this with the same arguments; each trains on its shard of
    the windows and all of them end with the same weights.

    Args:
        model: a :class:`coreml_lstm.model.Forecaster` whose normaliser is already set.
        dataset: a :class:`coreml_lstm.data.Dataset`.
        config: optimisation settings.
        loss_fn: ``(model, x, y) -> scalar`` on raw windows x (B, W, F) and targets y (B, horizon, T).
        progress: show a progress bar with the losses on stderr (rank 0 only).
        device: cpu, cuda, mps or auto (cuda, then mps, then cpu); under torchrun cpu trains over
            gloo and cuda over nccl, one GPU per process (LOCAL_RANK).
        dist_timeout: under torchrun, the seconds a collective waits for the other processes.

    Returns:
        The loss history; the model holds the weights of the best validation epoch, on the device
        it came on.

    Raises:
        DistributedError: another process of the job died, hung or lost its connection.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    check_device(device, dist_timeout)
    seed_everything(config.seed)
    group = _join(device, dist_timeout)
    try:
        history = _fit(model, dataset, config, loss_fn, progress and group.rank == 0, group)
    except (RuntimeError, OSError) as exc:
        if group.distributed and _collective_failed(exc):
            raise DistributedError(
                f"distributed training, rank {group.rank} of {group.world}: a collective operation failed ({_first_line(exc)}); "
                f"another process of the job stopped, was killed or lost its connection (collectives wait {group.timeout:g} s: --dist-timeout)"
            ) from None
        raise
    group.close()
    return history


def _fit(model: nn.Module, dataset, config: TrainConfig, loss_fn, progress: bool, group: _Group) -> History:
    home = next(model.parameters()).device
    model.to(group.device)
    train, val = dataset.train, dataset.validation
    trained = _Loss(model, loss_fn)
    if group.distributed:
        # The normaliser buffers never change: synced once at the start, not before every step.
        trained = nn.parallel.DistributedDataParallel(trained, device_ids=[group.device.index] if group.device.type == "cuda" else None, forward_sync_buffers=False)
        step = trained
    else:
        step = trained.forward  # the same call without nn.Module's hooks, ~1% of a small model's step

    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel updates every tensor (torch's CPU default is a Python loop over tensors,
    # which dominates the step of a small recurrent model).
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=group.device.type in ("cpu", "cuda"))
    scheduler = None
    if config.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(config.patience // 3, 1))
    elif config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    sampler = ShardSampler(len(train), group.world, group.rank, config.seed)
    # This rank's contiguous share of the validation windows.
    val_lo, val_hi = group.rank * len(val) // group.world, (group.rank + 1) * len(val) // group.world

    history = History()
    best_state = _snapshot(model)
    if getattr(model, "windowed", False):  # the start is a real forecast (seasonal naive): a candidate
        val_total, val_count = group.sum(*_loss_sum(model, loss_fn, val, val_lo, val_hi, group.device))
        history.initial_val_loss = val_total / max(val_count, 1)
        check_finite(None, validation=history.initial_val_loss)
        history.best_val_loss, history.best_epoch = history.initial_val_loss, -1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, desc="train", unit="epoch", file=sys.stderr, leave=False, dynamic_ncols=True)

    for epoch in range(config.epochs):
        trained.train()
        sampler.set_epoch(epoch)
        order = sampler.order().numpy()  # (windows of this rank,)
        # Summed on the device, read once per epoch: no sync per step. (Keeping every step's loss
        # tensor instead would pin small blocks between each step's temporaries: the heap grows.)
        running = torch.zeros((), dtype=torch.float64, device=group.device)
        for i in range(0, len(order), config.batch_size):
            xb, yb = train.gather(order[i : i + config.batch_size])  # (B, W, F), (B, horizon, T) raw
            x, y = torch.from_numpy(xb).to(group.device), torch.from_numpy(yb).to(group.device)
            loss = step(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            if config.grad_clip:
                nn.utils.clip_grad_norm_(params, config.grad_clip, foreach=True)
            optimizer.step()
            running += loss.detach() * len(xb)
        total, count = group.sum(float(running), len(order))
        train_loss = total / max(count, 1)
        val_total, val_count = group.sum(*_loss_sum(model, loss_fn, val, val_lo, val_hi, group.device))
        val_loss = val_total / max(val_count, 1)
        check_finite(epoch, training=train_loss, validation=val_loss)  # the same numbers on every rank: all stop together

        # Rank 0 decides; every process follows its decision, so all stop at the same epoch.
        improved = val_loss < history.best_val_loss
        stop = epoch - (epoch if improved else history.best_epoch) >= config.patience
        val_loss, improved, stop = group.from_rank0(val_loss, float(improved), float(stop))
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        if improved:
            history.best_val_loss, history.best_epoch = val_loss, epoch
            best_state = _snapshot(model)
        if scheduler is not None:
            scheduler.step(val_loss) if config.schedule == "plateau" else scheduler.step()
        if bar is not None:
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=f"{history.best_val_loss:.4f}")
            bar.update(1)
        if stop:
            history.stopped_early = True
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    check_weights(best_state)
    model.to(home)
    model.eval()
    return history


def check_finite(epoch: int | None, **losses: float) -> None:
    """A loss that is not finite stops training: the weights it leaves would be NaN in every
    package made from them. ``epoch`` None: the loss of the untrained start."""
    for name, value in losses.items():
        if not math.isfinite(value):
            at = "before the first epoch" if epoch is None else f"at epoch {epoch + 1}"
            raise TrainingError(f"training diverged {at}: the {name} loss is {value}")


def check_weights(state_dict: dict) -> None:
    """Every weight and buffer finite, or a TrainingError naming the first that is not."""
    for name, tensor in state_dict.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingError(f"training diverged: weight {name!r} is not finite")


def _snapshot(model: nn.Module) -> dict:
    """A copy of the weights (and buffers) to restore the best epoch from."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, targets: list[str]) -> dict:
    """RMSE, MAE and MAPE per target and horizon step, in original units.

    Args:
        y_true, y_pred: (N, horizon, T) arrays in original units.
        targets: the T target names.

    Returns:
        ``{"overall": {...}, "targets": {name: {"overall": {...}, "steps": [{...} per step]}}}``.
        MAPE skips true values of zero (it is undefined there) and is None when all are zero.
    """

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)  # lazy windows become arrays here: (N, horizon, T) is small

    def scores(t: np.ndarray, p: np.ndarray) -> dict:
        err = p.astype(np.float64) - t.astype(np.float64)
        nonzero = t != 0
        mape = float(np.mean(np.abs(err[nonzero] / t[nonzero])) * 100) if nonzero.any() else None
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "mape": mape,
            "n": int(t.size),
            "mape_zeros": int(t.size - nonzero.sum()),  # true values MAPE leaves out
        }

    out = {"overall": scores(y_true, y_pred), "targets": {}}
    for k, name in enumerate(targets):
        out["targets"][name] = {
            "overall": scores(y_true[:, :, k], y_pred[:, :, k]),
            "steps": [scores(y_true[:, h, k], y_pred[:, h, k]) for h in range(y_true.shape[1])],
        }
    return out
