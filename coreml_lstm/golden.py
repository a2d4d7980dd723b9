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
from pathlib import Path

import numpy as np

from .errors import ConfigError, CoreMLLSTMError, PackageError, first_line
from .fsutil import write_text
from .verify import DEFAULT_TOLERANCES, Report, Tolerance, compare_many, fp16_bar, input_floor, program_precision, reference_scale

FORMAT = "coreml-lstm golden 1"


def _array(a) -> dict:
    a = np.asarray(a)
    kind = "float32" if a.dtype.kind == "f" else "int32"
    return {"shape": list(a.shape), "dtype": kind, "data": a.astype(np.float64 if kind == "float32" else np.int64).ravel().tolist()}


def _unarray(d: dict, dtype) -> np.ndarray:
    return np.asarray(d["data"], dtype=dtype).reshape(d["shape"])


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
    floor = input_floor([Sample([feeds]) for feeds, _ in records])
    units = {k: reference_scale([outs[k] for _, outs in records if k in outs], floor) for k in names}
    units |= {k: float(np.max(u)) for k, u in adapter.output_units().items() if k in names}
    per_call = [{k: float(np.max(u)) for k, u in adapter.sample_units(s).items() if k in names} for s in samples] if not streams else []
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
    path = Path(path)
    try:
        golden = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path}: not a golden-vector file ({exc})") from None
    if golden.get("format") != FORMAT:
        raise PackageError(f"{path}: format {golden.get('format')!r}, expected {FORMAT!r}")
    return golden


def check_golden(package: str | Path, golden: dict, *, mode: str | None = None) -> Report:
    """Replay the golden calls through the executor and compare every output."""
    from . import executor

    program = executor.load(package)
    mode = mode or golden["precision"]
    tol = Tolerance(**golden["tolerance"])
    dtypes = {t.name: t.dtype for t in program.inputs}
    state = program.make_state() if golden["stateful"] else None
    got, want = {}, {}
    for call in golden["calls"]:
        feeds = {k: _unarray(v, dtypes.get(k, np.float32)) for k, v in call["inputs"].items()}
        result = program.predict(feeds, mode=mode, state=state)
        for name, expected in call["outputs"].items():
            got.setdefault(name, []).append(np.asarray(result[name]))
            want.setdefault(name, []).append(_unarray(expected, np.float64))
    report = Report(package=str(package), samples=len(golden["calls"]))
    units = _units(golden)
    for name in want:  # calls may differ in shape (a flexible length): compared call by call
        per_call = [_units(call).get(name, units.get(name)) for call in golden["calls"] if name in call["outputs"]]
        report.checks.append(compare_many(name, got[name], want[name], tol, backend="executor:golden", mode=mode, unit=per_call))
    return report


def _units(entry) -> dict:
    """The ``units`` of a golden file or call, as {name: number}: anything else in a file anyone
    may have written counts as no unit (1)."""
    units = entry.get("units") if isinstance(entry, dict) else None
    if not isinstance(units, dict):
        return {}
    return {k: float(v) for k, v in units.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
