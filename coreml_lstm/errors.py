"""Every error the package raises on purpose.

The library raises these; the CLI prints ``Error: <message>`` on one line and exits 1.
Messages name what failed and where (file, column, row, argument, op) and what was
expected or available.
"""


class CoreMLLSTMError(Exception):
    """Base class: an error about the user's input or a failed check, never a bug.

    ``cli`` is the same message for a command-line user where the API's spelling of an option
    (``missing='drop'``) differs from the command line's (``--missing drop``); the CLI prints it
    instead of the message.
    """

    def __init__(self, message: str = "", *, cli: str | None = None):
        super().__init__(message)
        self.cli = cli

    def __reduce__(self):  # survives pickling (a worker process's error) with its CLI text
        return (_rebuild, (type(self), str(self), self.cli))


def _rebuild(cls, message, cli):
    return cls(message, cli=cli)


class DataError(CoreMLLSTMError):
    """A data table (CSV or DataFrame) is missing, malformed or unsuitable."""


class ConfigError(CoreMLLSTMError):
    """An option or a combination of options is invalid."""


class ExportError(CoreMLLSTMError):
    """The model cannot be converted or saved as a Core ML package."""


class WriteError(CoreMLLSTMError):
    """An output cannot be written: another process is writing it, or the file system refuses."""


class PackageError(CoreMLLSTMError):
    """A saved .mlpackage is malformed: manifest, protobuf or weight file."""


class UnsupportedOpError(PackageError):
    """A program uses an op (or an op variant) the executor has no kernel for."""


class FeedError(CoreMLLSTMError):
    """An input array given to a model has the wrong name, shape or dtype."""


class ParityError(CoreMLLSTMError):
    """An exported model does not compute what the PyTorch model computes."""


class TrainingError(CoreMLLSTMError):
    """Training went numerically wrong: a loss or a weight is not finite."""


class DistributedError(CoreMLLSTMError):
    """A process of a distributed training job died, hung or lost its connection."""


class TraceWarning(UserWarning):
    """Not an error: the trace kept a value the example gave where the module computes it from
    its inputs (a Python ``if`` on a tensor), so the package may differ from the module on other
    inputs although every check passes. The message names the model's source line."""


class StateWarning(UserWarning):
    """Not an error: a buffer kept as a Core ML state holds non-zero values in the module, but a
    package's state starts from zero (``MLModel.makeState()``), as verify starts it: a fresh
    state gives other outputs than the module as built unless the app writes the state first."""


class ConvertWarning(UserWarning):
    """Not an error: the conversion does other than a coremltools option asked, as the toolkit
    always does (a float16 input or output type: packages take and return float32)."""


class DataWarning(UserWarning):
    """Not an error: a table unlike the one the model was trained on (it steps otherwise: hourly
    rows fed to a daily model); the predictions are made, on the training step's assumptions."""


_TORCHSCRIPT = "The following operation failed in the TorchScript interpreter"


def printable(text) -> str:
    """Text from a package or a table as one line a terminal or an XML file shows as it is:
    control characters (newlines, carriage returns, terminal escapes), line separators and
    invisible format characters (bidi overrides) written as ``\\n``, ``\\x1b``, ``\\u202e``;
    letters of any script stay. A package's description cannot add lines to ``inspect``."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def first_line(exc: BaseException, default: str = "") -> str:
    """The gist of a foreign exception in one line: its first line, except that TorchScript's
    interpreter errors open with a generic sentence and a TorchScript traceback, and end with the
    error itself (``RuntimeError: Expected tensor for argument #1 'indices' ...``)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return default
    if lines[0].startswith(_TORCHSCRIPT) and len(lines) > 1:
        return lines[-1].removeprefix(f"{type(exc).__name__}: ")  # callers name the type
    return lines[0]
