"""Rounding float32 arrays to fp16 values, in place, several times faster than a float16 cast.

``x.astype(np.float16).astype(np.float32)`` converts element by element (~4 ns each here); fp16
mode rounds every fp16 value a program makes, and recurrent kernels their state at every step,
so that cast dominated fp16 runs. :func:`round_fp16` gives the same values with a few
vectorised integer and float passes over a uint32 view:

    M = 1.5 * 2^(E + 13), E the binary exponent of x clamped to [-14, 16]
    x + M     lies in [2^(E + 13), 2^(E + 14)) for either sign of x, where float32's spacing is
              2^(E - 10), fp16's spacing at exponent E (2^-24, the subnormal spacing, below
              2^-14); the float32 addition rounds x to it, ties to even (M is an even multiple)
    ... - M   exact, leaving x rounded to fp16
    * 2^112 * 2^-112   exact for results <= 65504 (fp16's max); 65536 and above overflow to inf
    | sign    puts back the sign of a result that rounded to zero (x - x is +0)

It equals the cast bit for bit on every float32 (``tests/executor/test_fp16.py`` checks every class
of bit pattern; ``scripts/check_fp16_rounding.py`` checks all 2^32 of them), except that a NaN
keeps its whole payload where the cast keeps its top 10 bits: it is a NaN either way.
"""

from __future__ import annotations

import numpy as np

SIGN, EXPONENT = np.uint32(0x80000000), np.uint32(0x7F800000)
MIN_EXP = np.uint32(0x38800000)  # 2^-14: fp16's smallest normal; below it the spacing stays 2^-24
MAX_EXP = np.uint32(0x47800000)  # 2^16: past fp16's range, so M stays finite
MAGIC = np.uint32((13 << 23) | 0x400000)  # times 1.5 * 2^13: float32 keeps 23 fraction bits, fp16 10
UP, DOWN = np.float32(2.0**112), np.float32(2.0**-112)
CHUNK = 1 << 16  # elements per pass: the scratch stays in cache


class Rounder:
    """In-place fp16 rounding of C-contiguous float32 arrays, with scratch reused across calls.

    Recurrent kernels keep one per state array and call it at every time step.
    """

    def __init__(self, size: int = CHUNK):
        self._e = np.empty(size, np.uint32)
        self._s = np.empty(size, np.uint32)

    def __call__(self, x: np.ndarray, bounded: bool = False, zero_sign: bool = True) -> np.ndarray:
        """Round x (float32, C-contiguous) to fp16 values in place and return it.

        Args:
            bounded: the caller guarantees |x| < 65520, i.e. nothing overflows; skips two passes.
            zero_sign: False lets a negative value that rounds to zero come back +0 instead of -0
                (the same number: only a sign test or a division by it could tell); skips two
                passes. Recurrent kernels round their state so: it only meets + and *.
        """
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            raise ValueError("fp16 rounding works in place on C-contiguous float32 arrays")
        flat = x.reshape(-1)
        step = self._e.size
        if bounded:
            for start in range(0, flat.size, step):
                self._round(flat[start : start + step], True, zero_sign)
            return x
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is meant; signalling NaNs stay NaN
            for start in range(0, flat.size, step):
                self._round(flat[start : start + step], False, zero_sign)
        return x

    def _round(self, x: np.ndarray, bounded: bool, zero_sign: bool) -> None:
        n = x.size
        u = x.view(np.uint32)
        e, s = self._e[:n], self._s[:n]
        if zero_sign:
            np.bitwise_and(u, SIGN, out=s)
        np.bitwise_and(u, EXPONENT, out=e)
        np.maximum(e, MIN_EXP, out=e)
        if not bounded:
            np.minimum(e, MAX_EXP, out=e)
        np.add(e, MAGIC, out=e)
        m = e.view(np.float32)
        np.add(x, m, out=x)
        np.subtract(x, m, out=x)
        if not bounded:
            np.multiply(x, UP, out=x)
            np.multiply(x, DOWN, out=x)
        if zero_sign:
            np.bitwise_or(u, s, out=u)


def round_in_range(x: np.ndarray, u: np.ndarray, e: np.ndarray, m: np.ndarray) -> None:
    """Round x to fp16 values in place, for a hot loop that has its views ready: the bounded pass
    of :class:`Rounder` (|x| < 65520 guaranteed by the caller; a -0 may come back +0), five ufuncs
    and no Python around them. u is x viewed as uint32, e a uint32 scratch of x's shape and m
    that scratch viewed as float32."""
    np.bitwise_and(u, EXPONENT, out=e)
    np.maximum(e, MIN_EXP, out=e)
    np.add(e, MAGIC, out=e)
    np.add(x, m, out=x)
    np.subtract(x, m, out=x)


def round_fp16(x) -> np.ndarray:
    """x rounded to the nearest fp16 values (ties to even): a new C-contiguous float32 array."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    return Rounder(max(min(out.size, CHUNK), 1))(out)
