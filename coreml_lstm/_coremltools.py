"""Import coremltools without its import-time noise, keeping its real warnings.

On Linux, importing coremltools logs one "Failed to load _ML...Proxy" line per runtime class
(the runtime ships for macOS only) and a warning that this torch release is newer than the
ones it was tested with. Both are expected here and say nothing about the user's model (nor
does the note that a tuple of outputs will be flattened, which every multi-output export of
the toolkit triggers on purpose, nor the "Torch Script Models is experimental" warning, which
coremltools gives for every loaded archive, traced ones included: it cannot tell them apart);
everything else the converter logs is kept.
"""

from __future__ import annotations

import contextlib
import functools
import logging

# The third: the toolkit's modules return tuples on purpose (one tensor per named output), and the
# converter says it flattens them on every multi-output conversion.
# The fourth: given for any torch.jit.load-ed archive, and "use a traced model" misleads for the
# traced archives the README asks for.
_NOISE = ("Failed to load _ML", "has not been tested with coremltools", "Tuple detected at graph output",
          "Support for converting Torch Script Models is experimental")


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


# Where coremltools 9 makes its per-pass progress bars: (module, attribute holding tqdm).
_PROGRESS_BARS = (
    ("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
    ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
    ("coremltools.optimize.coreml._quantization_passes", "tqdm"),
    ("coremltools.optimize.coreml._post_training_quantization", "tqdm"),
)


@contextlib.contextmanager
def no_converter_progress():
    """Hide the converter's per-pass progress bars (ours stay on) while converting.

    A progress bar per MIL pass says nothing to a user of this toolkit; if a coremltools
    release moves them, they simply show again.
    """
    import importlib

    from tqdm import tqdm

    quiet = functools.partial(tqdm, disable=True)
    patched = []
    try:
        for module_name, attr in _PROGRESS_BARS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            if hasattr(module, attr):
                patched.append((module, attr, getattr(module, attr)))
                setattr(module, attr, quiet)
        yield
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)
