"""Pictures of a trained model: validation forecasts with their bands, and the training curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fsutil import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_checkpoint(checkpoint, out_dir: str | Path) -> list[Path]:
    """Write ``forecast.png`` (validation targets, predicted mean, 50% / 90% bands for a mixture)
    and ``training.png`` (loss per epoch) into ``out_dir``; returns the paths."""
    import torch

    from .mixture import quantile

    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = checkpoint.build_model()
    x, y = checkpoint.validation_x, checkpoint.validation_y
    with torch.no_grad():
        outs = [o.numpy() for o in model.outputs(torch.as_tensor(np.array(x)))]
    mixture = checkpoint.model_config.head == "mixture"
    targets = checkpoint.target_columns
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3.2 * len(targets)), squeeze=False)
    steps = np.arange(len(y))
    for k, name in enumerate(targets):
        ax = axes[k, 0]
        if mixture:
            w, mu, s, mean = outs[0][:, 0, k], outs[1][:, 0, k], outs[2][:, 0, k], outs[3][:, 0, k]
            ax.fill_between(steps, quantile(w, mu, s, 0.05), quantile(w, mu, s, 0.95), alpha=0.2, color="C0", label="90% interval")
            ax.fill_between(steps, quantile(w, mu, s, 0.25), quantile(w, mu, s, 0.75), alpha=0.35, color="C0", label="50% interval")
        else:
            mean = outs[0][:, 0, k]
        ax.plot(steps, y[:, 0, k], color="black", lw=1.2, label="actual")
        ax.plot(steps, mean, color="C0", lw=1.5, label="predicted mean" if mixture else "predicted")
        ax.set_title(f"{name}: one step ahead on the validation windows")
        ax.set_xlabel("validation window")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    paths = []
    with atomic_path(out_dir / "forecast.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    paths.append(out_dir / "forecast.png")
    hist = checkpoint.history or {}
    if hist.get("train_loss"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(hist["train_loss"], label="training")
        ax.plot(hist["val_loss"], label="validation")
        ax.axvline(hist["best_epoch"], color="grey", ls="--", lw=1, label=f"best epoch {hist['best_epoch'] + 1}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("NLL (normalised)" if mixture else "MSE (normalised)")
        ax.legend()
        fig.tight_layout()
        with atomic_path(out_dir / "training.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        paths.append(out_dir / "training.png")
    return paths


def plot_backtest(result, path: str | Path, max_panels: int = 6) -> Path:
    """The truth and each origin's ``horizon``-step forecast (with seasonal naive, dashed), one
    panel per series and target (at most ``max_panels``); written atomically to ``path``."""
    plt = _pyplot()
    panels = [(sid, k, name) for sid in result.history for k, name in enumerate(result.targets)][:max_panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)), squeeze=False)
    for ax, (sid, k, name) in zip(axes[:, 0], panels):
        first_row, times, values = result.history[sid]
        ax.plot(times, values[:, k], color="black", lw=1.2, label="actual")
        first = True
        own = [o for o in result.origins if o["series"] == sid]
        for i, o in enumerate(own):
            start = o["origin"] - first_row
            span = times[start : start + result.horizon]
            color = f"C{i % 9 + 1}"
            ax.plot(span, np.asarray(o["model"])[: len(span), k], color=color, lw=1.6, label="model" if first else None)
            ax.plot(span, np.asarray(o["seasonal_naive"])[: len(span), k], color=color, lw=1.0, ls="--", label="seasonal naive" if first else None)
            ax.axvline(span[0], color=color, lw=0.6, alpha=0.5)
            first = False
        who = "" if sid is None else f"series {sid}, "
        ax.set_title(f"{who}{name}: {result.horizon}-step forecasts from {len(own)} origins ({'refit' if result.refit else 'no refit'})")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
