"""The season length of a series, from the frequency of its time column.

A regular calendar time column implies a season: hourly 24 (a day), daily 7 (a week), business
daily 5, weekly 52, monthly 12, quarterly 4, yearly 1 (none); other sub-daily steps that divide a
day give the steps per day (half-hourly 48). Numbers (a year as 1700, a step counter) and
irregular times imply no season (1): the user says ``season=`` then.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY_SECONDS = 86400


def frequency(times) -> str | None:
    """pandas' name for the step of a sorted datetime sequence (e.g. 'MS', 'W-SUN', '30min'), or
    None; 'B' also for business days with a few holidays missing (see :func:`business_steps`)."""
    values = pd.DatetimeIndex(pd.Series(times).dropna().drop_duplicates().sort_values())
    if len(values) < 3:
        return None
    try:
        freq = _infer_freq(values)
    except (TypeError, ValueError):
        return None
    return "B" if freq is None and business_steps(values) is not None else freq


def _infer_freq(values) -> str | None:
    """``pd.infer_freq`` as a string: pandas 3.1 warns that it will return an offset, and takes
    an option to return one now; earlier versions lack the option and return the string."""
    try:
        future = pd.option_context("future.infer_freq_returns_offset", True)
        future.__enter__()
    except (KeyError, AttributeError):  # pandas.errors.OptionError is both
        return pd.infer_freq(values)
    try:
        freq = pd.infer_freq(values)
    finally:
        future.__exit__(None, None, None)
    return None if freq is None else freq.freqstr


def business_steps(times) -> np.ndarray | None:
    """The steps, in business days, of sorted times that are business-daily: weekdays only, one
    time of day, at least 80% of the steps one business day and some of them over a weekend (so
    a few days of data are not read as business days). Holidays are the steps above 1. None
    when the times are not so."""
    values = pd.DatetimeIndex(pd.Series(times).dropna())
    if len(values) < 3:
        return None
    if values.tz is not None:
        values = values.tz_localize(None)
    if (values.day_of_week >= 5).any() or len(set((values - values.normalize()).asi8)) != 1:
        return None
    days = values.normalize().to_numpy("datetime64[D]")
    steps = np.busday_count(days[:-1], days[1:])
    calendar = np.diff(days).astype(np.int64)
    if (steps < 1).any() or (steps == 1).mean() < 0.8 or not ((steps == 1) & (calendar == 3)).any():
        return None
    return steps


def season_of_frequency(freq: str | None) -> int:
    """The season length a pandas frequency implies (1 for yearly, unknown or irregular)."""
    if not freq:
        return 1
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return 1
    off = pd.offsets
    n = max(int(offset.n), 1)
    if isinstance(offset, (off.YearBegin, off.YearEnd, off.BYearBegin, off.BYearEnd)):
        return 1
    if isinstance(offset, (off.QuarterBegin, off.QuarterEnd, off.BQuarterBegin, off.BQuarterEnd)):
        return 4 // n if 4 % n == 0 else 1
    if isinstance(offset, (off.MonthBegin, off.MonthEnd, off.BusinessMonthBegin, off.BusinessMonthEnd, off.SemiMonthBegin, off.SemiMonthEnd)):
        per_year = 24 if isinstance(offset, (off.SemiMonthBegin, off.SemiMonthEnd)) else 12
        return per_year // n if per_year % n == 0 else 1
    if isinstance(offset, off.Week):
        return 52 if n == 1 else 1
    if isinstance(offset, off.BusinessDay):
        return 5 if n == 1 else 1
    try:
        seconds = offset.nanos / 1e9
    except ValueError:  # a calendar offset with no fixed length that is none of the above
        return 1
    if seconds == DAY_SECONDS:
        return 7
    if 0 < seconds < DAY_SECONDS and DAY_SECONDS % seconds == 0:
        return int(DAY_SECONDS // seconds)  # steps per day
    return 1


def infer_season(times) -> int:
    """The season length of a time column's values: see the module docstring. 1 when unknown."""
    series = pd.Series(times)
    if not pd.api.types.is_datetime64_any_dtype(series):
        return 1
    return season_of_frequency(frequency(series))


def seasonal_lag(season: int, available):
    """The lag the seasonal-naive forecast uses: the season, or 1 when the history is shorter.
    ``available`` may be an array of history lengths: then an array of lags, one for each."""
    if np.ndim(available):
        return np.where((1 < season) & (season <= np.asarray(available)), season, 1)
    return season if 1 < season <= available else 1



def _step_key(freq: str):
    """What two frequencies must share to step alike: the kind of calendar step and its multiple
    (a weekly step on Sundays steps as one on Mondays, month starts as month ends), else the
    fixed length in nanoseconds; the text itself when pandas does not read it."""
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return freq
    off, n = pd.offsets, int(offset.n)
    kinds = {"year": (off.YearBegin, off.YearEnd, off.BYearBegin, off.BYearEnd),
             "quarter": (off.QuarterBegin, off.QuarterEnd, off.BQuarterBegin, off.BQuarterEnd),
             "month": (off.MonthBegin, off.MonthEnd, off.BusinessMonthBegin, off.BusinessMonthEnd),
             "semi-month": (off.SemiMonthBegin, off.SemiMonthEnd), "week": (off.Week,), "business day": (off.BusinessDay,)}
    for kind, types in kinds.items():
        if isinstance(offset, types):
            return kind, n
    try:
        return "fixed", int(offset.nanos)
    except ValueError:
        return freq


def same_step(a: str, b: str) -> bool:
    """Whether two pandas frequencies (as :func:`frequency` names them) step alike."""
    return a == b or _step_key(a) == _step_key(b)


def step_name(freq: str) -> str:
    """A frequency as a message names it: ``hourly ('h')``, ``daily ('D')``, or ``'15min'``."""
    names = {("fixed", 3600 * 10**9): "hourly", ("fixed", DAY_SECONDS * 10**9): "daily", ("business day", 1): "business daily",
             ("week", 1): "weekly", ("month", 1): "monthly", ("quarter", 1): "quarterly", ("year", 1): "yearly"}
    name = names.get(_step_key(freq))
    return f"{name} ({freq!r})" if name else f"by {freq!r}"
