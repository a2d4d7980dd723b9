"""Training loop (after nanoGPT: one loop that reads top to bottom, no trainer framework).

seed -> tensors -> optimizer -> epochs (train, evaluate, early stop) -> best weights restored.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

SCHEDULES = ("none", "plateau", "cosine")


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 32
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


def _tensors(windows, model) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw windows -> normalised tensors in the model's frame, computed once rather than per batch.

    With window scaling each window has its own frame (level and scale), so its targets are
    expressed in it: the loss is measured in units of each window's scale.
    """
    x = torch.as_tensor(windows.x, dtype=torch.float32)  # (N, W, F)
    y = torch.as_tensor(windows.y, dtype=torch.float32)  # (N, horizon, T)
    with torch.no_grad():
        z, ctx = model.frame(x)  # (N, W, F)
        t = model.target_frame(y, ctx)  # (N, horizon, T)
    return z.contiguous(), t.contiguous()


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn, z: torch.Tensor, t: torch.Tensor, batch_size: int = 1024) -> float:
    """Mean loss over all windows, in normalised units."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(z), batch_size):
        zb, tb = z[i : i + batch_size], t[i : i + batch_size]
        total += float(loss_fn(model, zb, tb)) * len(zb)
        count += len(zb)
    return total / max(count, 1)


def mse_loss(model, z, t):
    return nn.functional.mse_loss(model.forward_normalized(z), t)


def fit(model: nn.Module, dataset, config: TrainConfig, *, loss_fn=mse_loss, progress: bool = True) -> History:
    """Train ``model`` on ``dataset.train``, early-stopping on ``dataset.validation``.

    Args:
        model: a :class:`coreml_lstm.model.Forecaster` whose normaliser is already set.
        dataset: a :class:`coreml_lstm.data.Dataset`.
        config: optimisation settings.
        loss_fn: ``(model, z, t) -> scalar`` on normalised tensors.
        progress: show a progress bar with the losses on stderr.

    Returns:
        The loss history; the model holds the weights of the best validation epoch.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    z_train, t_train = _tensors(dataset.train, model)
    z_val, t_val = _tensors(dataset.validation, model)
    generator = torch.Generator().manual_seed(config.seed)

    params = [p for p in model.parameters() if p.requires_grad]
    # fused: one kernel updates every tensor (torch's CPU default is a Python loop over tensors,
    # which dominates the step of a small recurrent model).
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    scheduler = None
    if config.schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(config.patience // 3, 1))
    elif config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)

    history = History()
    best_state = _snapshot(model)
    if getattr(model, "windowed", False):  # the start is a real forecast (seasonal naive): a candidate
        history.initial_val_loss = evaluate(model, loss_fn, z_val, t_val)
        history.best_val_loss, history.best_epoch = history.initial_val_loss, -1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, desc="train", unit="epoch", file=sys.stderr, leave=False, dynamic_ncols=True)

    n = len(z_train)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for i in range(0, n, config.batch_size):
            idx = order[i : i + config.batch_size]
            loss = loss_fn(model, z_train[idx], t_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(params, config.grad_clip, foreach=True)
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / n
        val_loss = evaluate(model, loss_fn, z_val, t_val)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)

        if val_loss < history.best_val_loss:
            history.best_val_loss, history.best_epoch = val_loss, epoch
            best_state = _snapshot(model)
        if scheduler is not None:
            scheduler.step(val_loss) if config.schedule == "plateau" else scheduler.step()
        if bar is not None:
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=f"{history.best_val_loss:.4f}")
            bar.update(1)
        if epoch - history.best_epoch >= config.patience:
            history.stopped_early = True
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return history


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

    def scores(t: np.ndarray, p: np.ndarray) -> dict:
        err = p.astype(np.float64) - t.astype(np.float64)
        nonzero = t != 0
        mape = float(np.mean(np.abs(err[nonzero] / t[nonzero])) * 100) if nonzero.any() else None
        return {
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "mape": mape,
            "n": int(t.size),
        }

    out = {"overall": scores(y_true, y_pred), "targets": {}}
    for k, name in enumerate(targets):
        out["targets"][name] = {
            "overall": scores(y_true[:, :, k], y_pred[:, :, k]),
            "steps": [scores(y_true[:, h, k], y_pred[:, h, k]) for h in range(y_true.shape[1])],
        }
    return out
