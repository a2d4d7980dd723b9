"""Training throughput of the toolkit's loop against a minimal hand-written PyTorch loop.

Both train the same model (same initial weights) on the same windows of the embedded sunspots
data for the same number of epochs; the script prints windows per second for each as the median
of several alternating repeats, and the ratio toolkit / minimal (target: >= 0.9).

    python scripts/bench_train.py [--epochs 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from coreml_lstm.data import DataConfig, prepare
from coreml_lstm.datasets import DEFAULT, load_sunspots
from coreml_lstm.model import ModelConfig, RecurrentModel
from coreml_lstm.train import TrainConfig, fit


def minimal_loop(model, z, t, epochs, batch_size, lr):
    """The baseline: the shortest correct loop a person would write by hand."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(z)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = nn.functional.mse_loss(model.forward_normalized(z[idx]), t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    dataset = prepare(load_sunspots(), None, DataConfig(target=DEFAULT["target"], time=DEFAULT["time"], window=24))
    torch.manual_seed(0)
    base = RecurrentModel(ModelConfig(), len(dataset.input_columns), len(dataset.target_columns), 1)
    base.set_normalizer(dataset.normalizer)
    z = base.normalize_inputs(torch.as_tensor(dataset.train.x)).detach()
    t = ((torch.as_tensor(dataset.train.y) - base.target_mean) / base.target_std).detach()
    n = len(z)
    # patience = epochs: both loops run every epoch, so the work is the same.
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.epochs, seed=0)

    toolkit, minimal = [], []
    for _ in range(args.repeats):
        m = copy.deepcopy(base)
        start = time.perf_counter()
        fit(m, dataset, config, progress=False)
        toolkit.append(n * args.epochs / (time.perf_counter() - start))

        m = copy.deepcopy(base)
        start = time.perf_counter()
        minimal_loop(m, z, t, args.epochs, args.batch_size, config.lr)
        minimal.append(n * args.epochs / (time.perf_counter() - start))

    tk, mn = statistics.median(toolkit), statistics.median(minimal)
    print(f"data: sunspots, {n} training windows of 24 steps; model: 2-layer LSTM, hidden 32; batch {args.batch_size}; {args.epochs} epochs; median of {args.repeats}")
    print(f"toolkit fit()     {tk:10.0f} windows/s  (includes validation each epoch, grad clipping, best-weight copies)")
    print(f"minimal loop      {mn:10.0f} windows/s")
    print(f"ratio toolkit/minimal: {tk / mn:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
