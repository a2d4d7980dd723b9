"""Golden vectors: inputs and the outputs PyTorch gives for them, for a test on the device.

A golden file is JSON an XCTest (see :mod:`.swift`) or any other runtime can replay:

    {"format": "coreml-lstm golden 1", "package": "Model.mlpackage", "precision": "fp32",
     "tolerance": {"atol": 1e-4, "rtol": 1e-4}, "stateful": false,
     "calls": [{"inputs": {"window": {"shape": [1, 24, 1], "data": [...]}},
                "outputs": {"forecast": {"shape": [1, 1, 1], "data": [...]}}}, ...]}

``data`` is row-major. For a package with Core ML states (``stateful``), the calls run in order
on one fresh state; otherwise each call stands alone (an explicit-state package's calls carry
the state PyTorch produced in the call before as inputs). A value passes when
``|got - want| <= atol + rtol * |want|``, as in ``verify``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import ConfigError, CoreMLLSTMError, FeedError, PackageError, first_line
from .fsutil import write_text
from .verify import DEFAULT_TOLERANCES, Report, Tolerance, compare_many, fp16_bar, program_precision, scales

FORMAT = "coreml-lstm golden 1"


def _array(a) -> dict:
    a = np.asarray(a)
    kind = "float32" if a.dtype.kind == "f" else "int32"
    return {"shape": list(a.shape), "dtype": kind, "data": a.astype(np.float64 if kind == "float32" else np.int64).ravel().tolist()}


def golden(adapter, package: str | Path, *, calls: int = 3) -> dict:
    """Golden calls for ``package`` from the adapter's torch module.

    A sample of several calls (a stream) gives its calls, in order, with the state carried by
    PyTorch; otherwise each of ``adapter.golden_samples(calls)`` gives one call. The adapter may add
    entries (a classifier's class names and tokenizer probes).
    """
    from . import executor

    from .adapter import Sample

    program = executor.load(package)
    stateful = bool(program.states)
    samples = adapter.golden_samples(calls)
    streams = [s for s in samples if len(s.calls) > 1]
    if stateful and not streams:  # the device replays the calls in order on one state: torch must too
        streams = [Sample([c for s in samples for c in s.calls])]
    try:
        records = adapter.run_torch(streams[0]) if streams else [adapter.run_torch(s)[-1] for s in samples]
    except CoreMLLSTMError:
        raise
    except Exception as exc:  # the module refuses the samples: one line, as verify says it
        raise ConfigError(f"golden vectors: the torch module fails on the samples: {type(exc).__name__}: {first_line(exc)}") from None
    precision = program_precision(program)
    tol = DEFAULT_TOLERANCES["fp16" if fp16_bar(program) else precision]
    names = {k for _, outs in records for k in outs}
    # verify's units: the adapter's, else each output's root mean square (floored by the inputs');
    # a call's own where the adapter gives them per sample (a forecaster's window scale).
    units = {k: float(np.max(u)) for k, u in scales(adapter, [Sample([feeds]) for feeds, _ in records], [outs for _, outs in records], names).items()}
    # A stream's call k forecasts from the rows of its calls 0..k.
    parts = [Sample(streams[0].calls[: k + 1]) for k in range(len(records))] if streams else samples
    per_call = [{k: float(np.max(u)) for k, u in adapter.sample_units(s).items() if k in names} for s in parts]
    return {
        "format": FORMAT,
        "package": Path(package).name,
        "precision": precision,
        "tolerance": {"atol": tol.atol, "rtol": tol.rtol},
        "units": units,  # per output, the scale of the absolute tolerance (verify's units; 1 if absent)
        "stateful": stateful,
        "calls": [
            {"inputs": {k: _array(np.asarray(v)) for k, v in feeds.items()}, "outputs": {k: _array(np.asarray(v)) for k, v in outs.items()},
             **({"units": per_call[i]} if i < len(per_call) and per_call[i] else {})}
            for i, (feeds, outs) in enumerate(records)
        ],
        **adapter.golden_extras(),
    }


def golden_vectors(checkpoint, package: str | Path, *, calls: int = 3, chunk: int = 10) -> dict:
    """Golden calls for a forecaster ``package`` from the PyTorch model of ``checkpoint``.

    Window packages get the last ``calls`` validation windows; streaming packages get ``calls``
    chunks of ``chunk`` consecutive validation rows, the state carried from a zero start.
    """
    from .forecaster_adapter import ForecasterAdapter

    if checkpoint.validation_x is None or not len(checkpoint.validation_x):
        raise ConfigError("golden vectors: the checkpoint holds no validation windows")
    adapter = ForecasterAdapter.load_for(checkpoint, package, chunk=chunk, chunks=calls)
    return golden(adapter, package, calls=calls)


# Strings whose tokens test the written rules: case, punctuation, apostrophes, digits, accents
# (composed and decomposed), non-Latin scripts, symbols, and words no vocabulary holds.
TOKENIZER_PROBES = (
    "Don't STOP -- rock-n-roll!",
    "snake_case, CamelCase & 42 numbers: 3.14",
    "Cafe\u0301 vs Caf\u00e9, na\u00efve \u00dcber",
    "\u0395\u039b\u039b\u0391\u0394\u0391 \u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627",
    "emoji \U0001f600 and tabs\tand\nnewlines",
    "zzyzx qwxv",
    "?! \U0001f44d\U0001f3fd",
)


def classifier_golden(clf, package: str | Path, *, calls: int = 3) -> dict:
    """Golden calls for a classifier package: validation samples at two or more lengths, each
    with PyTorch's class probabilities; for a text classifier also the token ids of a few texts
    (the vocabulary's first words and :data:`TOKENIZER_PROBES`), so the app's tokenizer is
    checked against the one that trained the model."""
    from .classify.adapter import ClassifierAdapter

    return golden(ClassifierAdapter(clf, package), package, calls=calls)


def write_golden(path: str | Path, golden: dict) -> Path:
    write_text(path, json.dumps(golden, indent=1) + "\n")
    return Path(path)


def read_golden(path: str | Path) -> dict:
    """A golden file, every entry :func:`check_golden` reads checked: the file may come from
    anyone, so a damaged one is one PackageError naming the file and the entry (``calls[1].
    outputs.forecast.data[3]``); its size and its arrays' are bounded as a feed file's are."""
    from .runner import read_json

    path = Path(path)
    golden = read_json(path, PackageError, "a golden file")
    _Golden(golden, str(path)).entries()
    return golden


def _kind(value) -> str:
    """What a JSON value is, in JSON's words."""
    from .runner import BigInt

    if isinstance(value, BigInt):
        return "an integer beyond int64"
    if isinstance(value, bool) or value is None:
        return _text(value)
    return {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _text(value) -> str:
    """A value of the file, short, for a message."""
    from .runner import BigInt

    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, BigInt):
        return repr(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


class _Golden:
    """The entries of a golden dict, each checked as it is read; ``where`` names the file."""

    def __init__(self, golden, where: str):
        if not isinstance(golden, dict):
            raise PackageError(f"{where}: not a golden-vector file (a JSON object is expected, got {_kind(golden)})")
        if golden.get("format") != FORMAT:
            raise PackageError(f"{where}: format {_text(golden.get('format'))}, expected {FORMAT!r}")
        self.golden, self.where = golden, where

    def entries(self) -> tuple:
        """(precision, tolerance, stateful, units, calls): every entry check_golden reads."""
        return self.precision(), self.tolerance(), self.stateful(), self.units(), self.calls()

    def fail(self, entry: str, problem: str):
        raise PackageError(f"{self.where}: {entry!r} {problem}" if entry else f"{self.where}: {problem}")

    def get(self, parent: dict, key: str, entry: str):
        if not isinstance(parent, dict) or key not in parent:
            self.fail(entry, "is missing")
        return parent[key]

    def typed(self, value, types: tuple, entry: str, expected: str):
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            self.fail(entry, f"is {_kind(value)}, not {expected}")
        return value

    def number(self, value, entry: str, *, positive: bool = False) -> float:
        self.typed(value, (int, float), entry, "a number")
        ok = np.isfinite(float(value)) and (value > 0 if positive else value >= 0)
        if not ok:
            self.fail(entry, f"is {_text(value)}, not a finite number {'>' if positive else '>='} 0")
        return float(value)

    def precision(self) -> str:
        value = self.get(self.golden, "precision", "precision")
        if value not in ("fp32", "fp16"):
            self.fail("precision", f"is {_text(value)}, not one of fp32, fp16")
        return value

    def tolerance(self) -> Tolerance:
        tol = self.typed(self.get(self.golden, "tolerance", "tolerance"), (dict,), "tolerance", "an object with atol and rtol")
        extra = sorted(set(tol) - {"atol", "rtol"})
        if extra:
            self.fail("tolerance", f"has {extra[0]!r}; it holds atol and rtol only")
        return Tolerance(*(self.number(self.get(tol, k, f"tolerance.{k}"), f"tolerance.{k}") for k in ("atol", "rtol")))

    def stateful(self) -> bool:
        return self.typed(self.get(self.golden, "stateful", "stateful"), (bool,), "stateful", "true or false")

    def units(self) -> dict:
        units = self.typed(self.golden.get("units", {}), (dict,), "units", "an object of output names and numbers")
        return {k: self.number(v, f"units.{k}", positive=True) for k, v in units.items()}

    def call_units(self) -> list[dict]:
        """Each call's own ``units`` (optional), checked as the file's are."""
        out = []
        for i, call in enumerate(self.get(self.golden, "calls", "calls")):
            units = self.typed(call.get("units", {}), (dict,), f"calls[{i}].units", "an object of output names and numbers")
            out.append({k: self.number(v, f"calls[{i}].units.{k}", positive=True) for k, v in units.items()})
        return out

    def calls(self) -> list[tuple[dict, dict]]:
        """[(inputs, outputs)] of every call, as arrays: floats as float64, int32 entries as int64."""
        from .executor import limits

        calls = self.typed(self.get(self.golden, "calls", "calls"), (list,), "calls", "an array")
        out, total = [], 0
        for i, call in enumerate(calls):
            entry = f"calls[{i}]"
            self.typed(call, (dict,), entry, "an object with inputs and outputs")
            pair = []
            for side in ("inputs", "outputs"):
                arrays = self.typed(self.get(call, side, f"{entry}.{side}"), (dict,), f"{entry}.{side}", "an object of named arrays")
                converted = {}
                for name, value in arrays.items():
                    converted[name] = array = self.array(value, f"{entry}.{side}.{name}")
                    total += array.nbytes
                    if total > limits.MAX_LIVE_BYTES:
                        self.fail(f"{entry}.{side}.{name}", f"takes the arrays to {limits.size_text(total)}, more than the "
                                                           f"{limits.size_text(limits.MAX_LIVE_BYTES)} a run may hold (COREML_LSTM_MAX_LIVE_BYTES raises it)")
                pair.append(converted)
            out.append(tuple(pair))
        return out

    def array(self, value, entry: str) -> np.ndarray:
        from .executor import limits

        self.typed(value, (dict,), entry, "an object with shape and data")
        shape = self.get(value, "shape", f"{entry}.shape")
        if not isinstance(shape, list) or len(shape) > 32 or not all(type(d) is int and d >= 0 for d in shape):
            self.fail(f"{entry}.shape", f"is {_text(shape)}, not an array of sizes")
        kind = value.get("dtype", "float32")
        if kind not in ("float32", "int32"):
            self.fail(f"{entry}.dtype", f"is {_text(kind)}, not one of float32, int32")
        try:
            limits.check_shape(shape, 8, repr(entry))
        except ValueError as exc:
            raise PackageError(f"{self.where}: {exc}") from None
        data = self.typed(self.get(value, "data", f"{entry}.data"), (list,), f"{entry}.data", "an array of numbers")
        if len(data) != math.prod(shape):
            self.fail(f"{entry}.data", f"holds {len(data)} values for shape {tuple(shape)}")
        allowed = (int,) if kind == "int32" else (int, float)
        for k, v in enumerate(data):
            if type(v) not in allowed:
                from .runner import BigInt

                problem = (f"is the integer {v!r}, beyond int64" if isinstance(v, BigInt)
                           else f"is {_text(v)}, not {'an integer' if kind == 'int32' else 'a number'}")
                self.fail(f"{entry}.data[{k}]", problem)
        return np.asarray(data, dtype=np.int64 if kind == "int32" else np.float64).reshape(shape)


def check_golden(package: str | Path, golden: dict | str | Path, *, mode: str | None = None) -> Report:
    """Replay the golden calls through the executor and compare every output.

    ``golden``: a golden file (read with :func:`read_golden`) or its dict; either way a malformed
    entry is one PackageError naming the file (or "golden vectors") and the entry. An output the
    file gives as int32 is compared exactly, as ``verify`` compares torch's integer outputs."""
    from . import executor

    if isinstance(golden, (str, Path)):
        where = str(golden)
        golden = read_golden(golden)
    else:
        where = "golden vectors"
    entries = _Golden(golden, where)
    precision, tol, stateful, units, calls = entries.entries()
    program = executor.load(package)
    mode = mode or precision
    if stateful != bool(program.states):
        entries.fail("stateful", f"is {_text(stateful)} but the package has {'states' if program.states else 'no states'}")
    outputs = [o.name for o in program.outputs]
    state = program.make_state() if stateful else None
    got, want = {}, {}
    for i, (feeds, expected) in enumerate(calls):
        for name in expected:
            if name not in outputs:
                entries.fail(f"calls[{i}].outputs.{name}", f"is not an output of the package (its outputs: {', '.join(outputs)})")
        try:
            result = program.predict(feeds, mode=mode, state=state)
        except FeedError as exc:
            raise FeedError(f"{where}: calls[{i}].inputs: {exc}") from None
        for name, value in expected.items():
            got.setdefault(name, []).append(np.asarray(result[name]))
            want.setdefault(name, []).append(value)
    report = Report(package=str(package), samples=len(calls))
    per_call = entries.call_units()  # a call's own scales (a forecaster's window), where the file gives them
    for name in want:  # calls may differ in shape (a flexible length): compared call by call
        unit = [per_call[i].get(name, units.get(name)) for i, (_, expected) in enumerate(calls) if name in expected]
        report.checks.append(compare_many(name, got[name], want[name], tol, backend="executor:golden", mode=mode, unit=unit))
    return report

