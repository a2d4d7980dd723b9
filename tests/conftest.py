"""Shared fixtures: small tables that train in seconds; the hypothesis profiles."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles. "ci" (the default): each property's own small example count (tests pass
# ``examples(n)`` from tests/strategies.py), no deadline (a first call imports and warms up).
# "long" (HYPOTHESIS_PROFILE=long): 10,000 examples per property, for a local run.
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example]
settings.register_profile("ci", deadline=None, suppress_health_check=_SLOW, print_blob=True, max_examples=30)
settings.register_profile("long", deadline=None, suppress_health_check=_SLOW, print_blob=True, max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


def heavy_imports(*args) -> list[str]:
    """Which of torch and coremltools a fresh interpreter has imported after running the CLI
    with ``args`` (which must succeed)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from coreml_lstm.cli import main\n"
            "try:\n    main(sys.argv[1:], standalone_mode=False)\nexcept SystemExit as e:\n    assert not e.code, e\n"
            "print(sorted(m for m in ('torch', 'coremltools') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    return ast.literal_eval(r.stdout.strip().splitlines()[-1])
