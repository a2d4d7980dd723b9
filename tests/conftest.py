"""Shared fixtures: small tables that train in seconds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def sine_table(n: int = 160, *, series: int = 1, targets: int = 1, seed: int = 0) -> pd.DataFrame:
    """Noisy sines with a driver column; several series stacked when ``series`` > 1."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(series):
        t = np.arange(n)
        driver = np.cos(t / 5.0 + s)
        frame = {"t": t, "driver": driver}
        for k in range(targets):
            frame[f"y{k}"] = 10 + 3 * np.sin(t / 4.0 + s + k) + 0.5 * driver + 0.05 * rng.standard_normal(n)
        frame = pd.DataFrame(frame)
        if series > 1:
            frame.insert(0, "sid", f"s{s}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def sine():
    return sine_table()


FAST = dict(window=8, hidden_size=8, num_layers=2, epochs=4, batch_size=16, progress=False)
