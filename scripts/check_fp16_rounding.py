"""Exhaustive check of the executor's in-place fp16 rounding against numpy's float16 cast.

Every one of the 2^32 float32 bit patterns is rounded both ways, in chunks of 2^24; the values
must be bitwise equal (a NaN only needs to stay a NaN: the cast truncates its payload). Prints
the number of chunks with a difference (0 expected). Takes a few minutes.

    python scripts/check_fp16_rounding.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

from coreml_lstm.executor.fp16 import Rounder

CHUNK = 1 << 24


def main() -> int:
    start = time.perf_counter()
    rounder = Rounder()
    bad = 0
    for k in range(1 << 8):
        bits = np.arange(k * CHUNK, (k + 1) * CHUNK, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        with np.errstate(all="ignore"):
            want = x.astype(np.float16).astype(np.float32)
        got = rounder(x.copy())
        nan = np.isnan(want)
        diff = (got.view(np.uint32) != want.view(np.uint32)) & ~nan | (np.isnan(got) != nan)
        if diff.any():
            i = np.flatnonzero(diff)[:3]
            print(f"chunk {k}: {int(diff.sum())} differ, e.g. bits {bits[i]} -> {got[i]} (cast: {want[i]})", flush=True)
            bad += 1
    print(f"{bad} of 256 chunks differ; {time.perf_counter() - start:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
