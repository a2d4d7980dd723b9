"""Decoding helpers shared by kernels: MIL hands constants over as 0-d arrays, str or lists."""

from __future__ import annotations

import numpy as np

from ..limits import check_broadcast, check_count, check_shape  # noqa: F401  (re-exported for kernels)


def ints(v) -> list[int]:
    """A scalar, vector or list of integers as a Python list."""
    return [int(i) for i in np.asarray(v).reshape(-1)]


def text(v) -> str:
    """A MIL string (str, or a 0-d array when it came out of a const op)."""
    return str(np.asarray(v).reshape(-1)[0]) if isinstance(v, np.ndarray) else str(v)


def flag(v) -> bool:
    return bool(np.asarray(v).reshape(-1)[0]) if isinstance(v, np.ndarray) else bool(v)


def flags(v, n: int) -> list[bool]:
    """A bool mask of length ``n``; None means all False."""
    return [False] * n if v is None else [bool(b) for b in np.asarray(v).reshape(-1)]


def axis(a, rank: int, what: str = "axis") -> int:
    """A possibly negative axis normalised to [0, rank); out of range is a ValueError."""
    a = int(np.asarray(a).reshape(-1)[0]) if isinstance(a, np.ndarray) else int(a)
    if not -rank <= a < rank:
        raise ValueError(f"{what} {a} is out of range for rank {rank}")
    return a % rank


def as_float(x) -> np.ndarray:
    """x as a floating array (float32 unless it already is floating)."""
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)
