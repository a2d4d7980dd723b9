"""Data sets shipped inside the package, so the demo and tests need no download."""

from __future__ import annotations

from importlib import resources

import pandas as pd

# The embedded default of `coreml-lstm train` with no CSV and of `coreml-lstm demo`.
DEFAULT = dict(name="sunspots", target=["SUNACTIVITY"], time="YEAR")


def load_sunspots() -> pd.DataFrame:
    """Yearly mean sunspot numbers 1700-2008 (309 rows; columns YEAR, SUNACTIVITY). Public domain."""
    with resources.files(__package__).joinpath("sunspots.csv").open("rb") as fh:
        return pd.read_csv(fh)
