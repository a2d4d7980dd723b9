"""Run a saved package on named arrays through Core ML (macOS) or the executor (anywhere).

Also the file formats of ``coreml-lstm run``: feeds and results as .npz or .json
(``{name: nested lists}``), states likewise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import ConfigError, FeedError
from .fsutil import atomic_path

BACKENDS = ("auto", "coreml", "executor")


class Backend:
    """A loaded package with one ``predict(feeds, state=None)``; ``name`` says which runtime."""

    def __init__(self, path: str | Path, backend: str = "auto", mode: str = "fp32"):
        from . import executor
        from .verify import coreml_available

        if backend not in BACKENDS:
            raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.program = executor.load(path)  # validates the package whichever backend runs it
        ok, why = coreml_available()
        if backend == "coreml" and not ok:
            raise ConfigError(f"backend coreml: {why}; use --backend executor")
        self.name = "coreml" if (backend == "coreml" or (backend == "auto" and ok)) else "executor"
        self.mode = mode
        if self.name == "coreml":  # pragma: no cover - macOS only
            from ._coremltools import coremltools

            self.model = coremltools().models.MLModel(str(path))

    def make_state(self):
        if self.name == "coreml":  # pragma: no cover - macOS only
            return self.model.make_state()
        return self.program.make_state()

    def predict(self, feeds: dict, state=None, intermediate: bool = False) -> dict:
        if self.name == "coreml":  # pragma: no cover - macOS only
            if intermediate:
                raise ConfigError("--intermediate needs the executor backend (Core ML shows only the outputs)")
            return self.model.predict(feeds, state=state) if state is not None else self.model.predict(feeds)
        if intermediate:
            return self.program.run(feeds, mode=self.mode, state=state, intermediate=True)
        return self.program.predict(feeds, mode=self.mode, state=state)


def read_arrays(path: str | Path, what: str = "inputs") -> dict[str, np.ndarray]:
    """Named arrays from .npz (no pickle) or .json ``{name: nested list}``.

    The file may come from anyone: each array is held to ``limits.MAX_TENSOR_BYTES`` and all of
    them to ``limits.MAX_LIVE_BYTES`` (the feeds are values a run holds) before it is made, and
    anything wrong is one FeedError naming the file and the entry. An .npz member's header is read
    first (numpy would allocate the shape it declares before reading a byte of data); object and
    structured dtypes and members that are not .npy arrays are refused. JSON is UTF-8, integers
    within int64 (never rounded through float64), arrays rectangular and at most 32 deep.
    """
    path = Path(path)
    if not path.is_file():
        raise FeedError(f"{path}: no such {what} file")
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.suffix == ".json":
        return _read_json_arrays(path)
    raise FeedError(f"{path}: {what} must be .npz or .json")


MAX_DIMENSIONS = 32  # a nested JSON list deeper than this is not a feed (numpy stops at 64)
JSON_BYTES_PER_BYTE = 32  # Python objects a parse makes, per byte of JSON: "[]," is a 56-byte list


class _Feeds:
    """The running total of the feeds read, held to MAX_LIVE_BYTES."""

    def __init__(self, path: Path):
        self.path, self.total = path, 0

    def add(self, key: str, shape, itemsize: int) -> None:
        from .executor import limits

        try:
            dims = limits.check_shape(shape, itemsize, repr(key))
        except ValueError as exc:  # TooLarge, or a negative dimension
            raise FeedError(f"{self.path}: {exc}") from None
        self.total += math.prod(dims) * itemsize
        if self.total > limits.MAX_LIVE_BYTES:
            raise FeedError(f"{self.path}: {key!r} takes the feeds to {limits.size_text(self.total)}, more than the "
                            f"{limits.size_text(limits.MAX_LIVE_BYTES)} a run may hold (COREML_LSTM_MAX_LIVE_BYTES raises it)")


def _detail(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    from numpy.lib import format as npy

    feeds = _Feeds(path)
    arrays = {}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        # NotImplementedError: a zip version or compression zipfile lacks; RuntimeError: encrypted
        raise FeedError(f"{path}: not a readable .npz file ({_detail(exc)})") from None
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise FeedError(f"{path}: member {name!r} is not a .npy array; a feed file holds arrays only")
            key = name[: -len(".npy")]
            try:
                with archive.open(info) as fh:  # the header alone: its shape and dtype, checked first
                    version = npy.read_magic(fh)
                    if version not in ((1, 0), (2, 0)):  # 3.0 exists for structured dtypes' unicode names only
                        raise ValueError(f".npy format version {version[0]}.{version[1]}")
                    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                    shape, _, dtype = read_header(fh)
                    data_offset = fh.tell()
            except Exception as exc:  # noqa: BLE001 - zlib, zipfile, the header's own checks: a damaged member
                raise FeedError(f"{path}: {key!r} is not a readable .npy array ({_detail(exc)})") from None
            if dtype.hasobject:
                raise FeedError(f"{path}: {key!r} holds Python objects (dtype {dtype}), which a feed file may not (they are read by unpickling)")
            if dtype.fields is not None or dtype.subdtype is not None or dtype.kind == "V":
                raise FeedError(f"{path}: {key!r} has a structured dtype ({dtype}); a feed is an array of numbers")
            feeds.add(key, shape, dtype.itemsize)
            nbytes = math.prod(shape) * dtype.itemsize
            if data_offset + nbytes > info.file_size:  # the member's declared size: numpy would allocate first
                raise FeedError(f"{path}: {key!r} declares shape {tuple(shape)} of {dtype} ({nbytes} bytes) but holds "
                                f"{max(info.file_size - data_offset, 0)} bytes of data; truncated?")
            try:
                with archive.open(info) as fh:
                    arrays[key] = npy.read_array(fh, allow_pickle=False)
            except Exception as exc:  # noqa: BLE001
                raise FeedError(f"{path}: {key!r} is not a readable .npy array ({_detail(exc)})") from None
    return arrays


class BigInt:
    """An integer literal beyond int64, kept as its text (numpy would round it into a float64
    array or make an object array, and Python refuses to parse one of more than 4,300 digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text if len(self.text) <= 32 else self.text[:32] + "..."


def _int64(text: str):
    if len(text.lstrip("-")) <= 19:
        value = int(text)
        if -(1 << 63) <= value < 1 << 63:
            return value
    return BigInt(text)


def read_json(path: Path, error=FeedError, what: str = "a feed file"):
    """The JSON value of a file from anyone: one ``error`` line naming the file for a file too
    large to parse within ``limits.MAX_LIVE_BYTES`` (a parse holds a Python object for every few
    bytes), not UTF-8, not JSON, or nested too deeply; an integer beyond int64 comes back as a
    :class:`BigInt` (which no array of numbers takes)."""
    from .executor import limits

    path = Path(path)
    try:
        size = path.stat().st_size
        limit = limits.MAX_LIVE_BYTES // JSON_BYTES_PER_BYTE
        if size > limit:
            raise error(f"{path}: {size} bytes of JSON, more than the {limit} {what} may be (1/{JSON_BYTES_PER_BYTE} of "
                        "COREML_LSTM_MAX_LIVE_BYTES: a parse holds a Python object for every few bytes); use .npz for large arrays")
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line})") from None
    try:
        return json.loads(text, parse_int=_int64)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to read") from None
    except ValueError as exc:  # pragma: no cover - the decoder's others
        raise error(f"{path}: invalid JSON ({_detail(exc)})") from None


def _nested_shape(value, path: Path, key: str) -> list[int]:
    """The shape a nested list declares by its first elements (rows that differ are found by numpy)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_DIMENSIONS:
            depth = 0
            while isinstance(value, list) and value:
                value, depth = value[0], depth + 1
            raise FeedError(f"{path}: {key!r} is nested {len(shape) - 1 + depth} deep; an array has at most {MAX_DIMENSIONS} dimensions")
        if not value:
            break
        value = value[0]
    return shape


def _big_int_in(array: np.ndarray):
    for v in array.flat:
        if isinstance(v, BigInt):
            return v
    return None


def _read_json_arrays(path: Path) -> dict[str, np.ndarray]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise FeedError(f"{path}: expected a JSON object of named arrays")
    feeds = _Feeds(path)
    arrays = {}
    for k, v in data.items():
        feeds.add(k, _nested_shape(v, path, k), 8)  # JSON's numbers arrive as int64 or float64
        try:
            arrays[k] = np.asarray(v)
        except ValueError:  # ragged nesting
            raise FeedError(f"{path}: {k!r} is not a rectangular array (its rows differ in length)") from None
        if arrays[k].dtype.kind not in "biuf":
            big = _big_int_in(arrays[k]) if arrays[k].dtype == object else None
            if big is not None:
                raise FeedError(f"{path}: {k!r} holds the integer {big!r}, beyond int64")
            raise FeedError(f"{path}: {k!r} is not an array of numbers")
    return arrays


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays atomically as .npz or .json (by the suffix).

    An .npz holds numbers and strings only, never pickled objects (it is read back with
    ``allow_pickle=False``, here and by anyone who follows numpy's advice): an output that is not
    an array of either (a dictionary of class probabilities) is refused there, with the .json
    that can hold it named."""
    path = Path(path)
    if path.suffix not in (".npz", ".json"):
        raise ConfigError(f"{path}: outputs must be .npz or .json")
    if path.suffix == ".npz":
        plain = {}
        for name, value in arrays.items():
            a = np.asarray(value)
            if a.dtype == object and all(isinstance(v, str) for v in a.flat):
                a = a.astype(np.str_)
            if a.dtype.hasobject:
                raise ConfigError(f"{path}: output {name!r} is a {type(value).__name__}, not an array of numbers or strings; write .json instead")
            plain[name] = a
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, allow_pickle=False, **plain)
        else:
            tmp.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in arrays.items()}) + "\n")


def cast_feeds(program, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Numbers from JSON arrive as float64/int64: cast them to the declared dtype of the same kind.

    A float feed for an integer input is left alone, so the executor rejects it with a FeedError
    rather than truncating token ids silently.
    """
    from .adapter import cast_to

    return cast_to({t.name: t.dtype for t in program.inputs}, feeds)
