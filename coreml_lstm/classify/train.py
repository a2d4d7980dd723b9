"""Training loop for classifiers (the same shape as coreml_lstm.train: seed, data, model,
optimizer, epochs, evaluate, early stopping), plus accuracy, macro F1 and the confusion matrix.

Batches are right-padded to their longest sample and carry the lengths; samples are bucketed by
length (shuffled within near-equal lengths) so little padding is computed.
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

from ..errors import ConfigError
from ..train import TrainConfig, check_finite, check_weights, seed_everything
from .data import pad

@dataclass
class ClassifyTrainConfig(TrainConfig):
    """The forecaster's training settings, with a classifier's defaults and two more options."""

    patience: int = 40  # epochs without a better validation score before stopping
    threads: int | None = 1  # small recurrent nets train several times faster on one thread than two
    label_smoothing: float = 0.0
    refit: bool = False  # after early stopping, train again on train + validation for the best epoch count

    # cosine: the learning rate annealed to 0 over the epochs, a calm finish
    SCHEDULES: ClassVar[tuple[str, ...]] = ("none", "cosine")

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing!r}")


@dataclass
class ClassifyHistory:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    refit_epochs: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def batches(x: list, y: np.ndarray | None, batch_size: int, *, dtype, generator: torch.Generator | None = None):
    """Yield (padded x, lengths, y, sample indices) batches; shuffled when a generator is given.

    With shuffling, samples are sorted by length plus a random jitter of under one step, cut into
    batches, and the batches are shuffled: each batch holds similar lengths, yet its members vary
    from epoch to epoch.
    """
    lengths = np.asarray([len(s) for s in x], dtype=np.float64)
    if generator is not None:
        jitter = torch.rand(len(x), generator=generator, dtype=torch.float64).numpy()
        order = np.argsort(lengths + jitter, kind="stable")
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        chunks = [chunks[int(i)] for i in torch.randperm(len(chunks), generator=generator)]
    else:
        order = np.argsort(lengths, kind="stable")
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in chunks:
        xb, lb = pad([x[i] for i in idx], dtype=dtype)
        yb = torch.as_tensor(y[idx]) if y is not None else None
        yield torch.as_tensor(xb), torch.as_tensor(lb), yb, idx


@torch.no_grad()
def predict_logits(model: nn.Module, x: list, batch_size: int = 256) -> np.ndarray:
    """Logits (N, classes) for variable-length samples, in their given order."""
    model.eval()
    dtype = np.int64 if getattr(model, "text", False) else np.float32
    out = np.zeros((len(x), model.n_classes), dtype=np.float32)
    for xb, lb, _, idx in batches(x, None, batch_size, dtype=dtype):
        out[idx] = model.logits(xb, lb).numpy()
    return out


def _evaluate(model, x, y, loss_fn) -> tuple[float, float]:
    if len(x) == 0:
        return math.nan, math.nan
    logits = torch.as_tensor(predict_logits(model, x))
    target = torch.as_tensor(y)
    return float(loss_fn(logits, target)), float((logits.argmax(-1) == target).float().mean())


def fit_classifier(model: nn.Module, x_train: list, y_train: np.ndarray, x_val: list, y_val: np.ndarray,
                   config: ClassifyTrainConfig, *, progress: bool = True, rebuild=None) -> ClassifyHistory:
    """Train with Adam and cross-entropy, early-stopping on the validation split.

    The best epoch has the highest validation accuracy, ties going to the lower validation loss
    (accuracy on a few dozen samples moves in coarse steps; the loss breaks the ties).

    Args:
        model: a :class:`SequenceNet` with its normaliser set.
        x_train, x_val: lists of (L_i, C) float arrays or (L_i,) token id arrays.
        y_train, y_val: class indices.
        config: optimisation settings.
        progress: a progress bar on stderr.
        rebuild: ``() -> fresh model`` for ``config.refit`` (same initial weights as ``model`` had).

    Returns:
        The history; ``model`` holds the best weights (or the refit's final weights).
    """
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _fit(model, x_train, y_train, x_val, y_val, config, progress, rebuild)
    finally:
        torch.set_num_threads(threads)  # the setting is process-wide: leave it as it was


def _fit(model, x_train, y_train, x_val, y_val, config, progress, rebuild) -> ClassifyHistory:
    seed_everything(config.seed)
    history = ClassifyHistory()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    eval_loss = nn.CrossEntropyLoss()
    best = (-math.inf, math.inf)
    best_state = copy.deepcopy(model.state_dict())
    if len(x_val) == 0:  # nothing to stop on: train for every epoch
        _train(model, x_train, y_train, config, config.epochs, loss_fn, progress, on_epoch=None)
        check_weights(model.state_dict())
        model.eval()
        return history

    def on_epoch(epoch, train_loss):
        nonlocal best, best_state
        val_loss, val_acc = _evaluate(model, x_val, y_val, eval_loss)
        check_finite(epoch, validation=val_loss)
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_acc)
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best, history.best_epoch = (val_acc, val_loss), epoch
            best_state = copy.deepcopy(model.state_dict())
        history.stopped_early = epoch - history.best_epoch >= config.patience
        return history.stopped_early, f"val acc {val_acc:.3f} loss {val_loss:.4f}"

    _train(model, x_train, y_train, config, config.epochs, loss_fn, progress, on_epoch=on_epoch)
    model.load_state_dict(best_state)
    if config.refit and rebuild is not None:
        model.load_state_dict(rebuild().state_dict())
        history.refit_epochs = history.best_epoch + 1
        seed_everything(config.seed + 1)
        _train(model, list(x_train) + list(x_val), np.concatenate([y_train, y_val]), config, history.refit_epochs, loss_fn, progress, on_epoch=None)
    check_weights(model.state_dict())
    model.eval()
    return history


def _train(model, x, y, config, epochs, loss_fn, progress, on_epoch):
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs) if config.schedule == "cosine" else None
    dtype = np.int64 if getattr(model, "text", False) else np.float32
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="train", unit="epoch", file=sys.stderr, leave=False, dynamic_ncols=True)
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for xb, lb, yb, _ in batches(x, y, config.batch_size, dtype=dtype, generator=generator):
            if getattr(model, "conv", None) is not None and xb.shape[0] * xb.shape[1] == 1:  # (1, 1, C)
                raise ConfigError(f"batch_size: a training batch of one sample of length 1 gives the conv branch's BatchNorm one value "
                                  f"per channel; use a batch size of 2 or more (batch_size is {config.batch_size}) or no conv branch",
                                  cli="--batch-size: a training batch of one sample of length 1 gives --conv's BatchNorm one value "
                                      f"per channel; use --batch-size 2 or more (it is {config.batch_size}) or drop --conv")
            loss = loss_fn(model.logits(xb, lb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * len(yb)
        train_loss = total / max(len(x), 1)
        check_finite(epoch, training=train_loss)
        if scheduler is not None:
            scheduler.step()
        stop, note = (False, "") if on_epoch is None else on_epoch(epoch, train_loss)
        if bar is not None:
            bar.set_postfix_str(f"loss {train_loss:.4f} {note}")
            bar.update(1)
        if stop:
            break
    if bar is not None:
        bar.close()
    return epochs


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list) -> dict:
    """Accuracy, macro F1 and the confusion matrix (rows: true class, columns: predicted class, in
    ``classes`` order).

    Macro F1 is the mean of per-class F1 over the classes that occur among the true or the
    predicted labels (scikit-learn's default label set): a class with no samples that the model
    never predicts has no F1 (precision and recall are both 0/0) and is left out rather than
    counted 0, which would mark the model down for what the data cannot test; one predicted
    without samples counts 0. ``no_samples`` lists the classes without samples and ``warnings``
    says so, so a macro F1 over fewer classes is never silent.
    """
    k = len(classes)
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = (actual > 0) | (predicted > 0)
    absent = [c for c, n in zip(classes, actual) if n == 0]
    warnings = []
    if absent and len(y_true):
        left_out = [str(c) for c, n, p in zip(classes, actual, predicted) if n == 0 and p == 0]
        warnings.append(f"no validation samples of class{'es' if len(absent) > 1 else ''} {', '.join(map(repr, map(str, absent)))}"
                        + (f"; macro F1 leaves out {', '.join(map(repr, left_out))} (never predicted either)" if left_out else ""))
    return {
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_f1": {str(c): float(v) for c, v in zip(classes, f1)},
        "confusion": confusion.tolist(),
        "classes": list(classes),
        "n": int(len(y_true)),
        "no_samples": absent,
        "warnings": warnings,
    }
