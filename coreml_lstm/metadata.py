"""The toolkit's entries of a package's metadata, and the names of a forecaster's input and output.

Torch-free, as everything that reads a saved package (the executor, ``inspect``, ``run``,
``predict``) must be.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import PackageError

INPUT_NAME, OUTPUT_NAME = "window", "forecast"
# Windows a window package takes in one call (its first axis, 1..MAX_BATCH): an app feeds one,
# ``predict`` a table's windows this many at a time (the executor's cost is per op, not per window).
MAX_BATCH = 256
METADATA_PREFIX = "coreml_lstm."


def read_metadata(user_defined: dict, package: str | Path | None = None) -> dict:
    """The toolkit's entries of a package's user-defined metadata, JSON-decoded (an entry that is
    not JSON is kept as its text).

    Raises:
        PackageError: an entry is JSON no reader should have to take (nested past Python's
            recursion limit, an integer of more than 4300 digits), naming ``package`` and the entry.
    """
    out = {}
    for key, value in user_defined.items():
        if key.startswith(METADATA_PREFIX):
            try:
                out[key[len(METADATA_PREFIX) :]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(METADATA_PREFIX) :]] = value
            except (RecursionError, ValueError) as exc:
                detail = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())[:120]
                raise PackageError(f"{package or 'the package'}: metadata entry {key!r} is malformed JSON ({detail})") from None
    return out
