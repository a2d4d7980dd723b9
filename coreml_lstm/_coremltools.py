"""Import coremltools without its import-time noise, keeping its real warnings.

On Linux, importing coremltools logs one "Failed to load _ML...Proxy" line per runtime class
(the runtime ships for macOS only) and a warning that this torch release is newer than the
ones it was tested with. Both are expected here and say nothing about the user's model;
everything else the converter logs is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os

_NOISE = ("Failed to load _ML", "has not been tested with coremltools")


class _DropImportNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in _NOISE)


def coremltools():
    """The coremltools module, imported quietly."""
    logger = logging.getLogger("coremltools")
    if not any(isinstance(f, _DropImportNoise) for f in logger.filters):
        logger.addFilter(_DropImportNoise())
    import coremltools as ct

    return ct


@contextlib.contextmanager
def no_converter_progress():
    """Hide the converter's per-pass progress bars (ours stay on) while converting."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old
