"""Parity of an exported package with the PyTorch model it came from.

:func:`verify_package` runs a model's torch module (through its adapter, see :mod:`.adapter`)
and the saved package on the same inputs and returns a structured :class:`Report`: one
:class:`Check` per output, input size, backend and numerics with the shape, max absolute and
relative error, the tolerance, and passed / failed / skipped. The caller (the CLI) decides the
exit code. A backend that cannot run here (Core ML off macOS) is reported as skipped with the
reason, never as passed.

``coreml_lstm.verify(module, package)`` -- this module called as a function -- checks a user's
own torch module (see :func:`coreml_lstm.user_model.verify`).
"""

from __future__ import annotations

import json
import math
import platform
import sys
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError, PackageError, UnsupportedOpError, first_line, printable


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bar, as numpy.allclose: ``|package - torch| <= atol + rtol * |torch|``."""

    atol: float
    rtol: float


# The executor's fp32 mode is reference maths: differences are float32 rounding in a different
# summation order. fp16 programs round every value to 11 significant bits; 5e-2 is stricter
# than coremltools' own fp16 tests (atol 0.5, rtol 0.05).
DEFAULT_TOLERANCES = {"fp32": Tolerance(atol=1e-4, rtol=1e-4), "fp16": Tolerance(atol=5e-2, rtol=5e-2)}

# Integer and bool outputs: equal or not (see compare_many).
EXACT = Tolerance(atol=0.0, rtol=0.0)

STATUSES = ("passed", "failed", "skipped")


@dataclass
class Check:
    output: str
    backend: str  # "executor" | "coreml:<compute units>"
    mode: str  # "fp32" | "fp16" (executor) or the compute units' precision (Core ML)
    status: str  # passed | failed | skipped
    shape: tuple | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    tolerance: Tolerance | None = None
    worst_index: tuple | None = None
    reason: str = ""
    size: str = ""  # the input size the check ran at ("length 12", "x (1, 64, 16)"); "" when fixed
    unit: float = 1.0  # atol is in these units of the output (the largest, when they differ along an axis)

    @property
    def label(self) -> str:
        """The output and, when inputs are flexible, the input size: ``probabilities (length 12)``."""
        return f"{self.output} ({self.size})" if self.size else self.output

    def line(self) -> str:
        """The check as one line (text from the package, its output names, made printable)."""
        return printable(self._line())

    def _line(self) -> str:
        if self.status == "skipped":
            return f"SKIPPED {self.label} [{self.backend}]: {self.reason}"
        word = "PASSED " if self.status == "passed" else "FAILED "
        if self.max_abs is None or (self.shape is None and not math.isfinite(self.max_abs)):  # nothing compared: the package did not run
            return f"{word}{self.label} [{self.backend}, {self.mode}]: {self.reason}"
        tol = self.tolerance
        shape = f" shape {self.shape}" if self.shape is not None else ""  # None: the samples' outputs differ in shape (the reason says)
        return (
            f"{word}{self.label} [{self.backend}, {self.mode}]{shape}: max abs {self.max_abs:.3g}, "
            f"max rel {self.max_rel:.3g} (atol {tol.atol:g}{f' x {self.unit:.4g}' if self.unit != 1.0 else ''}, rtol {tol.rtol:g})"
            + (f" worst at {self.worst_index}" if self.status == "failed" and self.worst_index is not None else "")
            + (f"; {self.reason}" if self.reason else "")
        )


@dataclass
class Report:
    package: str
    samples: int
    checks: list[Check] = field(default_factory=list)
    drawn: str = ""  # what the samples were, when the check chose them (random values: their distribution)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    @property
    def ran(self) -> list[Check]:
        return [c for c in self.checks if c.status != "skipped"]

    @property
    def status(self) -> str:
        """failed if any check failed, skipped if none ran, else passed."""
        if self.failed:
            return "failed"
        return "passed" if self.ran else "skipped"

    def to_dict(self) -> dict:
        return {"package": self.package, "samples": self.samples, "status": self.status, "drawn": self.drawn,
                "checks": [asdict(c) for c in self.checks]}


def compare(name: str, got: np.ndarray, want: np.ndarray, tol: Tolerance, *, backend: str, mode: str, size: str = "", unit=None) -> Check:
    """One output's check: errors of ``got`` (package) against ``want`` (torch); ``unit``: as in :func:`compare_many`."""
    return compare_many(name, [got], [want], tol, backend=backend, mode=mode, size=size, stacked=False, unit=unit)


def compare_many(name: str, gots: list, wants: list, tol: Tolerance, *, backend: str, mode: str, size: str = "",
                 stacked: bool = True, unit=None) -> Check:
    """One output over several samples (each pair may have its own shape): the worst error of all.

    The worst index is ``(sample, *index)`` when ``stacked``; the shape is ``(samples, *shape)``
    when every sample has one shape. ``unit`` (a number, or an array broadcasting to the output;
    or a list of those, one per sample) is the output's natural scale: the absolute bar is
    ``atol * unit`` (see :meth:`coreml_lstm.adapter.Adapter.output_units` and ``sample_units``);
    a unit that is not finite or not positive counts as 1. The check's ``unit`` is the one at its
    worst index.

    An output torch computes as integers or bools (an argmax, a count, a mask) is compared
    exactly, whatever ``tol``: a class index off by one is another class, however close in
    value; the check says how many values differ.
    """
    exact = bool(wants) and all(np.asarray(w).dtype.kind in "iub" for w in wants)  # torch's own dtype: known to every check
    if exact:
        tol, unit = EXACT, None
    # One unit for every sample, or a list of one per sample (each window's own scale).
    units = [np.ones(()) if u is None else _finite_unit(u) for u in unit] if isinstance(unit, list) else None
    unit = np.ones(()) if unit is None or units is not None else _finite_unit(unit)
    gots = [np.asarray(g, dtype=np.float64) for g in gots]
    wants = [np.asarray(w, dtype=np.float64) for w in wants]
    for k, (g, w) in enumerate(zip(gots, wants)):
        if g.shape != w.shape:
            where = f"sample {k}: " if stacked else ""
            return Check(name, backend, mode, "failed", shape=g.shape, max_abs=float("inf"), max_rel=float("inf"), tolerance=tol,
                         reason=f"{where}shape {g.shape} differs from torch's {w.shape}", size=size)
    if all(np.asarray(w).size == 0 for w in wants):  # a zero-size output: no value was compared, nothing passed
        return Check(name, backend, mode, "skipped", tolerance=tol, size=size,
                     reason=f"torch's output holds no values (shape {wants[0].shape if wants else ()}): nothing to compare")
    worst_excess, worst, max_abs, max_rel, nonfinite, differ, worst_unit = -np.inf, (), 0.0, 0.0, 0, 0, None
    for k, (got, want) in enumerate(zip(gots, wants)):
        # A non-finite value on either side matches only the same value (NaN matches NaN): a
        # NaN from torch is no licence for any output of the package.
        finite = np.isfinite(got) & np.isfinite(want)
        nonfinite += int(want.size - np.isfinite(want).sum())
        with np.errstate(invalid="ignore"):
            same = (got == want) | (np.isnan(got) & np.isnan(want))
            err = np.where(finite, np.abs(got - want), np.where(same, 0.0, np.inf))
        magnitude = np.where(finite, np.abs(want), 0.0)
        rel = err / np.maximum(magnitude, np.finfo(np.float32).tiny)
        u = units[k] if units is not None else unit
        excess = err - (tol.atol * u + tol.rtol * magnitude)
        if excess.size:
            i = int(np.argmax(excess))
            if excess.flat[i] > worst_excess:
                worst_excess = float(excess.flat[i])
                worst_unit = float(np.broadcast_to(u, excess.shape).flat[i])
                index = tuple(int(j) for j in np.unravel_index(i, excess.shape))
                worst = (k, *index) if stacked else index
        differ += int(np.count_nonzero(err))
        max_abs = max(max_abs, float(err.max(initial=0.0)))
        max_rel = max(max_rel, float(rel.max(initial=0.0)))
    shapes = {g.shape for g in gots}
    shape = ((len(gots), *gots[0].shape) if stacked else gots[0].shape) if len(shapes) == 1 else None
    ok = worst_excess <= 0
    notes = ([] if len(shapes) == 1 else [f"{len(shapes)} output shapes"]) + ([f"torch gives {nonfinite} non-finite values"] if nonfinite else [])
    if exact:
        notes.append(f"{differ} of {sum(w.size for w in wants)} values differ (integer output, compared exactly)")
    return Check(name, backend, mode, "passed" if ok else "failed", shape=tuple(shape) if shape is not None else None,
                 max_abs=max_abs, max_rel=max_rel, tolerance=tol, worst_index=worst, size=size,
                 reason="; ".join(notes), unit=worst_unit if worst_unit is not None else _unit_shown(units if units is not None else [unit]))


def _finite_unit(unit) -> np.ndarray:
    """A unit as float64, 1 where it is not finite (a window holding inf has no scale: a NaN
    unit would pass any error)."""
    unit = np.asarray(unit, dtype=np.float64)
    return np.where(np.isfinite(unit) & (unit > 0), unit, 1.0)


def _unit_shown(units: list) -> float:
    """The unit a check line shows: the largest of its samples' (the loosest bar it applied)."""
    sizes = [u for u in units if u.size]
    return max(float(u.max()) for u in sizes) if sizes else 1.0


def _rms(values) -> float | None:
    """The root mean square of the finite values of some arrays, or None when there are none."""
    finite = [v[np.isfinite(v)] for v in (np.asarray(v, np.float64) for v in values)]
    count = sum(v.size for v in finite)
    return math.sqrt(sum(float(np.square(v).sum()) for v in finite) / count) if count else None


def reference_scale(values: list, floor: float = 0.0) -> float:
    """The unit an output's absolute tolerance is in when its model names none
    (:meth:`~coreml_lstm.adapter.Adapter.output_units`): the root mean square of torch's finite
    values, at most 1 and at least ``floor``. A softmax over 40 classes (values ~0.025) held to
    an atol of 0.05 passed the package of another model; in units of its values it does not.
    Outputs of scale 1 and above keep the absolute bar (``rtol`` covers their magnitude); an
    output torch gives as all zeros (or no finite value) keeps it too. ``floor``
    (:func:`input_floor`): rounding grows with the values an output is computed from, so a small
    output of large inputs (readings near 9.81, centred) is not held below their rounding."""
    rms = _rms(values)
    if rms is None or (rms == 0 and floor == 0):
        return 1.0
    return min(1.0, max(rms, floor))


def scales(adapter, samples, wants: list[dict], names) -> dict:
    """{output name: the unit of its absolute tolerance}: the adapter's (:meth:`output_units`),
    else :func:`reference_scale` of torch's values ``wants`` (one dict per sample), floored by
    the samples' inputs. verify and the golden vectors hold outputs to these."""
    floor = input_floor(samples)
    units = {n: reference_scale([w[n] for w in wants if n in w], floor) for n in names}
    return units | {k: u for k, u in adapter.output_units().items() if k in units}


def input_floor(samples) -> float:
    """A tenth of the root mean square of the samples' float feeds (integer ids are not magnitudes)."""
    rms = _rms([v for s in samples for call in s.calls for v in call.values() if np.asarray(v).dtype.kind == "f"])
    return 0.1 * rms if rms is not None else 0.0


def live_ops(program) -> list:
    """The ops of a loaded program whose results reach its outputs or its states (a
    ``write_state``), nested blocks included: what the program computes. A package is untrusted:
    an op nothing reads (an unused ``constexpr_*`` weight, an fp16 ``cast``) must not make verify
    hold it to a looser bar. Empty for a program the executor could not load."""
    block = getattr(program, "block", None)
    if block is None:
        return []

    def reads(op):
        for bindings in op.inputs.values():
            yield from (b.name for b in bindings if b.name is not None)

    def walk(ops, needed: set) -> list:
        live = []
        for op in reversed(ops):
            if op.type != "write_state" and not any(o.name in needed for o in op.outputs):
                continue
            live.append(op)
            needed.update(reads(op))
            for inner in op.blocks:
                inside = set(inner.outputs)
                live += walk(inner.ops, inside)
                needed.update(inside)  # what the block reads from outside it
        return live

    return walk(block.ops, set(block.outputs))


def program_precision(program) -> str:
    """fp16 when the program computes in fp16 (an op it runs declares an fp16 output), else fp32.
    The package's own word (its ``precision`` entry) counts only for a program the executor
    could not load, whose checks are skipped: a package cannot talk its way to a looser bar."""
    if getattr(program, "block", None) is not None:
        fp16 = any(o.dtype is not None and np.dtype(o.dtype) == np.float16 for op in live_ops(program) for o in op.outputs)
        return "fp16" if fp16 else "fp32"
    meta = program.metadata.get("user", {}).get("coreml_lstm.precision")
    return meta if meta in DEFAULT_TOLERANCES else "fp32"


def compressed_weights(program) -> bool:
    """Whether the program rebuilds weights it uses from a lossy encoding (``constexpr_*`` ops:
    int8 and other quantisations, palettes, pruning): such a package is not the module's
    weights to fp32's 1e-4, however exact the arithmetic."""
    return any(op.type.startswith("constexpr_") for op in live_ops(program))


def fp16_bar(program) -> bool:
    """Whether the package is held to the fp16 tolerance whatever the executor's mode: it keeps
    Core ML states (stored in fp16) that it reads or writes, or has compressed weights
    (:func:`compressed_weights`). :func:`tolerance_for` makes the exception of a forecaster's
    two-part window state."""
    uses_state = any(op.type in ("read_state", "write_state") for op in live_ops(program))
    return (bool(program.states) and uses_state) or compressed_weights(program)


def split_window_state(program) -> str | None:
    """The precision the network of a forecaster's Core ML window-state package computes in
    (its export's ``precision``), or None when the package is not one.

    That state holds each raw value as two fp16 parts (:class:`coreml_lstm.streaming.StatefulWindow`):
    ~22 significant bits, a relative error of at most ~2.4e-7 of the value, against fp32's 6e-8,
    where one fp16 per value (a recurrent h/c state, a user's own states) costs 4.9e-4."""
    user = program.metadata.get("user", {}) if hasattr(program, "metadata") else {}
    names = [s.name for s in program.states]
    if names != ["window_state"] or user.get("coreml_lstm.streaming") != "states" or user.get("coreml_lstm.scaling") != "window":
        return None
    precision = user.get("coreml_lstm.precision")
    return precision if precision in DEFAULT_TOLERANCES else None


def tolerance_for(program, precision: str, mode: str, tolerances: dict[str, "Tolerance"]) -> "Tolerance":
    """The bar a check of ``program`` run in executor ``mode`` is held to.

    fp16 when it runs in fp16 or the program computes in fp16 (``precision``), keeps Core ML
    states or has compressed weights (:func:`fp16_bar`); else fp32. A forecaster's two-part
    window state (:func:`split_window_state`; the executor emulates its fp16 storage, so its
    program reads as fp16) costs ~22-bit rounding of the raw values, which the fp32 bar holds:
    an fp32 network gets the fp32 bar, and an fp16 one the fp16 ``atol`` (the network's error, in
    the frame's units, scales with the window's spread: the target's standard deviation) with
    fp32's ``rtol``, since everything on raw values (the state, the frame, the map back) stays
    fp32 or 22 bits; with ``log`` the map back is an exp, and the network's error is relative:
    the fp16 bar, as for a mixture, whose variance squares the network's fp16 scales times the
    window's spread (a window spread far wider than the training one made it 1e-3 off relatively,
    over the fp32 rtol and past an atol in units of the training spread squared)."""
    network = split_window_state(program)
    if network is not None and not compressed_weights(program):
        if network == "fp32":  # executor mode fp16 rounds only what the program declares fp16: the state
            return tolerances["fp32"]
        user = program.metadata.get("user", {})
        squared = any(o.name == "variance" for o in program.outputs)  # a mixture's variance: (spread x fp16 scale)^2
        if user.get("coreml_lstm.log") not in ("true", True) and not squared:
            return Tolerance(atol=tolerances["fp16"].atol, rtol=tolerances["fp32"].rtol)
    return tolerances["fp16" if "fp16" in (mode, precision) or fp16_bar(program) else "fp32"]


def run_torch(module, feeds: list[dict], output_names: list[str]) -> list[dict]:
    """The reference: torch outputs for each feed dict, as numpy, by output name."""
    import torch

    from .adapter import eval_mode

    results = []
    eval_mode(module)
    with torch.no_grad():
        for feed in feeds:
            out = module(*[torch.as_tensor(v) for v in feed.values()])
            out = out if isinstance(out, (tuple, list)) else (out,)
            results.append({n: o.detach().numpy() for n, o in zip(output_names, out)})
    return results


def coreml_available() -> tuple[bool, str]:
    """Whether the Core ML runtime can run here, and why not."""
    if platform.system() != "Darwin":
        return False, f"the Core ML runtime needs macOS (this is {platform.system()})"
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError as exc:  # pragma: no cover - macOS only
        return False, f"coremltools has no Core ML runtime here ({exc})"
    return True, ""


COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
# The outputs coremltools' ClassifierConfig adds to a classifier.
LABEL_OUTPUT, DICT_OUTPUT = "classLabel", "classLabel_probs"


def run_sample(predict, sample, carry: dict, make_state=None) -> dict:
    """A sample's calls through ``predict(feeds, state)`` on one fresh state; the last call's outputs.

    Explicit state (``carry``: output -> input) goes from each call's outputs to the next call.
    """
    state = make_state() if make_state is not None else None
    carried, out = {}, {}
    for call in sample.calls:
        out = predict({**call, **carried}, state)
        carried = {inp: np.asarray(out[o], np.float32) for o, inp in carry.items()}
    return out


def verify_package(
    adapter,
    package,
    samples: list | None = None,
    *,
    modes: tuple | None = None,
    tolerances: dict[str, Tolerance] | None = None,
    backends: tuple[str, ...] = ("executor", "coreml"),
) -> Report:
    """Run the adapter's torch module and the package on the same samples; compare every output.

    Args:
        adapter: the model (see :class:`coreml_lstm.adapter.Adapter`).
        package: path to the .mlpackage.
        samples: :class:`~coreml_lstm.adapter.Sample` list (default: ``adapter.samples()``).
        modes: executor numerics to run (default: the adapter's, else the program's precision).
        tolerances: per precision; defaults to :data:`DEFAULT_TOLERANCES`. A check is held to the
            fp16 bar when it runs in fp16, when the program computes in fp16 (its weights are
            fp16 whatever the executor does), keeps Core ML states (stored in fp16; a forecaster's
            two-part window state excepted: :func:`tolerance_for`), has compressed weights
            (:func:`compressed_weights`), or when the torch module itself computes in fp16
            (``adapter.fp16_reference``: a ``.half()`` module).
        backends: "executor" (always runs) and/or "coreml" (skipped off macOS).

    Returns:
        The report, one check per output, input size, backend and mode; nothing is raised for a
        failed check.
    """
    from .adapter import group

    program, unsupported = load_declared(package)
    samples = adapter.samples() if samples is None else list(samples)
    if not samples:
        raise ConfigError("verify: no inputs to compare on")
    precision = program_precision(program)
    modes = tuple(modes or adapter.modes or (precision,))
    for m in modes:
        if m not in DEFAULT_TOLERANCES:
            raise ConfigError(f"mode: {m!r} is not one of fp32, fp16")
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    check_features(adapter, program, package)
    report_metadata = metadata_checks(adapter, program)
    names = [o.name for o in adapter.outputs]
    want = [_reference(adapter, s, k) for k, s in enumerate(samples)]
    units = scales(adapter, samples, want, names)
    per_sample = [adapter.sample_units(s) for s in samples]
    groups = group(samples)
    report = Report(package=str(package), samples=len(samples), checks=report_metadata)

    def add(results: list, backend: str, mode: str) -> None:
        # The executor's fp16 mode rounds what the program declares fp16: an fp32 program's
        # numbers are its fp32 mode's, and so is the bar. Core ML's GPU and Neural Engine compute
        # in fp16 whatever the program declares.
        numerics = precision if backend == "executor" else mode
        tol = tolerances["fp16"] if adapter.fp16_reference else tolerance_for(program, precision, numerics, tolerances)
        for size, idx in groups.items():
            refused = next((results[i] for i in idx if isinstance(results[i], Exception)), None)
            if refused is not None:  # the program does not run at a size it declares
                status = "skipped" if isinstance(refused, UnsupportedOpError) else "failed"
                for name in names:
                    report.checks.append(Check(name, backend, mode, status, tolerance=tol, size=size, max_abs=float("inf"), max_rel=float("inf"),
                                               reason=f"the package does not run at this size: {first_line(refused)}"))
                continue
            for name in names:
                unit = [per_sample[i].get(name, units.get(name)) for i in idx] if any(name in per_sample[i] for i in idx) else units.get(name)
                report.checks.append(compare_many(name, [results[i][name] for i in idx], [want[i][name] for i in idx], tol,
                                                  backend=backend, mode=mode, size=size, unit=unit))
            if adapter.classes is not None:
                probs = np.stack([np.asarray(want[i][names[0]], np.float64) for i in idx])
                got = [results[i] for i in idx]
                report.checks.append(label_check(LABEL_OUTPUT, got, probs, list(adapter.classes), tol, backend, mode, size))
                report.checks.append(dict_check(DICT_OUTPUT, got, list(adapter.classes), backend, mode, size, names[0]))

    carry = dict(adapter.carry)
    if "executor" in backends and unsupported:
        for name in names:
            report.checks.append(Check(name, "executor", "-", "skipped", reason=f"the executor cannot run this program: {unsupported}"))
    elif "executor" in backends:
        for mode in modes:
            def predict(feeds, state, mode=mode):
                return program.predict(feeds, mode=mode, state=state)

            add([_run_or_refusal(predict, s, carry, program.make_state if program.states else None) for s in samples], "executor", mode)
    if "coreml" in backends:
        ok, why = coreml_available()
        if not ok:
            for name in names + ([LABEL_OUTPUT, DICT_OUTPUT] if adapter.classes is not None else []):
                report.checks.append(Check(name, "coreml", "-", "skipped", reason=why))
        else:  # pragma: no cover - macOS only
            from ._coremltools import coremltools

            ct = coremltools()
            for units in COMPUTE_UNITS:
                model = ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, units))
                # GPU and Neural Engine compute in fp16 whatever the program says.
                run_mode = "fp32" if units == "CPU_ONLY" and precision == "fp32" else "fp16"

                def predict(feeds, state, model=model):
                    return model.predict(feeds, state=state) if state is not None else model.predict(feeds)

                add([run_sample(predict, s, carry, model.make_state if program.states else None) for s in samples], f"coreml:{units}", run_mode)
    return report


def check_export(adapter, package) -> Report:
    """The cheap check after an export (``train --export``, ``export``): the package's last
    validation window, and a full batch where it takes one, through the executor against torch,
    so a package the executor cannot run (or that computes something else) is not reported as
    written and fine. Skipped (the report says why) when the model holds no validation windows."""
    try:
        samples = adapter.samples(1)
    except ConfigError as exc:
        report = Report(package=str(package), samples=0)
        report.checks.append(Check(adapter.outputs[0].name, "executor", "-", "skipped", reason=first_line(exc)))
        return report
    return verify_package(adapter, package, samples, backends=("executor",))


def _run_or_refusal(predict, sample, carry: dict, make_state=None):
    """:func:`run_sample` through the executor, or the PackageError it raised (a kernel that
    refuses the sample's size, say), which its checks report."""
    try:
        return run_sample(predict, sample, carry, make_state)
    except PackageError as exc:
        return exc


def _independent_ranges(adapter) -> list[str]:
    """Inputs with a flexible axis whose range no other input shares (drawn independently)."""
    from .adapter import Dim

    symbols = [[d.symbol for d in i.shape if isinstance(d, Dim)] for i in adapter.inputs if not i.enumerated]
    names = [i.name for i in adapter.inputs if not i.enumerated]
    counts: dict = {}
    for syms in symbols:
        for sym in set(syms):
            if sym is not None:
                counts[sym] = counts.get(sym, 0) + 1
    return [n for n, syms in zip(names, symbols) if syms and any(sym is None or counts.get(sym, 0) < 2 for sym in syms)]


def _wants_integers(exc: Exception) -> bool:
    """A torch error saying an op needs integer tensors (an embedding's or index's indices)."""
    text = str(exc)
    return "Long, Int" in text or "scalar type Long" in text or "must be Long" in text or "tensors used as indices must be" in text


def _reference(adapter, sample, k: int) -> dict:
    """Torch's outputs for one sample; a module that fails on it is a one-line error naming the sample."""
    from .errors import CoreMLLSTMError

    try:
        return adapter.reference(sample)
    except CoreMLLSTMError:
        raise
    except Exception as exc:
        where = f" ({sample.label})" if sample.label else ""
        if "Guard failed" in str(exc) or "guard" in type(exc).__name__.lower():  # a torch.export program's fixed sizes
            hint = ("the program was exported for other sizes than the package takes: export it with dynamic_shapes for the "
                    "package's ranges, or give inputs of its sizes (--inputs FEEDS.npz, --input NAME:SHAPE)")
        elif "must match the size of tensor" in str(exc) and len(ranges := _independent_ranges(adapter)) >= 2:
            hint = (f"if inputs {' and '.join(repr(n) for n in ranges[:2])} share a length, name one range on both "
                    "(--input NAME:1,T=1..64 on each; in Python \"T=1..64\" or ct.RangeDim(symbol=\"T\")): each range is drawn on its own")
        elif _wants_integers(exc) and (floats := [i for i in adapter.inputs if i.dtype.kind == "f"]):
            shape = "SHAPE" if floats[0].enumerated else ",".join(str(d) for d in floats[0].shape)
            hint = (f"the module takes integers where the package declares floats ({', '.join(i.name for i in floats)}): give integer "
                    f"values, --input {floats[0].name}:{shape}:int32:LO..HI (in Python, inputs= of integer arrays); the package gets them as its floats")
        else:
            hint = "give inputs it takes (inputs= / --inputs FEEDS.npz, or value ranges: value_ranges= / --input NAME:SHAPE:DTYPE:LO..HI)"
        raise ConfigError(f"the torch module fails on sample {k}{where}: {type(exc).__name__}: {first_line(exc)}; {hint}") from None


class _Declared:
    """What a package declares (inputs, outputs, states, metadata) when the executor cannot load
    its program: the checks it cannot run are reported as skipped, Core ML still runs on macOS."""

    def __init__(self, package):
        from .executor.package import read_model
        from .executor.program import _description

        spec, _ = read_model(package)
        desc = spec.description
        self.inputs = [_description(f) for f in desc.input]
        self.outputs = [_description(f) for f in desc.output]
        self.states = [_description(f) for f in desc.state]
        self.metadata = {"user": dict(desc.metadata.userDefined)}

    def value_dtypes(self) -> dict:
        return {}


def load_declared(package):
    """(the program, None), or (what the package declares, why the executor cannot run it)."""
    from . import executor
    from .errors import UnsupportedOpError

    try:
        return executor.load(package), None
    except UnsupportedOpError as exc:
        return _Declared(package), str(exc)


def metadata_checks(adapter, program) -> list[Check]:
    """One failed check per entry of ``adapter.checked_metadata`` the package records otherwise
    than the model: the program can match torch while predict feeds it another column. An
    entry the package lacks reads as its reader's default (:data:`ABSENT_READS_AS`: no series
    column, no log) or, for the rest (toolkit 0.1's packages lack ``time_step``), is not checked."""
    if not adapter.checked_metadata:
        return []
    from .metadata import read_metadata

    recorded = {**ABSENT_READS_AS, **read_metadata(program.metadata.get("user", {}))}
    want = json.loads(json.dumps(adapter.metadata()))  # as the export wrote it: tuples as lists
    return [Check("metadata", "package", "-", "failed",
                  reason=f"entry {key!r} is {_short_json(recorded[key])}, the model's {_short_json(want[key])}: predict and the Swift "
                         "wrapper would act on the package's; re-export it from the checkpoint")
            for key in adapter.checked_metadata if key in recorded and key in want and recorded[key] != want[key]]


# What predict reads a forecaster package's missing entry as.
ABSENT_READS_AS = {"time_column": None, "series_id_column": None, "log": False, "streaming": None, "max_chunk": None}


def _short_json(value, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_features(adapter, program, package) -> None:
    """The adapter's inputs and outputs are the package's (same names), or a one-line error."""
    declared_in = sorted(t.name for t in program.inputs)
    declared_out = [t.name for t in program.outputs]
    given_in = sorted(i.name for i in adapter.inputs)
    if given_in != declared_in:
        raise ConfigError(f"{package}: its inputs are {', '.join(declared_in)}; the model's are {', '.join(given_in)}")
    missing = [o.name for o in adapter.outputs if o.name not in declared_out]
    if missing:
        raise ConfigError(f"{package}: has no output {missing[0]!r}; its outputs are {', '.join(declared_out)}")
    from .adapter import Input

    declared = {t.name: Input.from_spec(t) for t in program.inputs}
    for i in adapter.inputs:
        d = declared[i.name]
        if d.enumerated or i.enumerated:
            continue
        fixed = [(a, b) for a, b in zip(i.shape, d.shape) if isinstance(a, int) and isinstance(b, int)]
        if len(i.shape) != len(d.shape) or any(a != b for a, b in fixed):
            raise ConfigError(f"{package}: input {i.name!r} has shape {d.shape_text()}, the model's {i.shape_text()}: "
                              "the package was made from another model")


def _label(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.reshape(-1)[0]


def label_check(name, results, ref, classes, tol: Tolerance, backend, mode, size="") -> Check:
    """classLabel against torch's argmax; a flip inside a near-tie (top-2 gap within tolerance) is allowed."""
    flat = ref.reshape(len(ref), -1)
    want = flat.argmax(-1)
    top2 = -np.sort(-flat, axis=-1)[:, :2]
    gap = top2[:, 0] - (top2[:, 1] if flat.shape[1] > 1 else 0)
    wrong = ties = 0
    first_wrong = None
    for k, r in enumerate(results):
        got = _label(r[name])
        if str(got) != str(classes[want[k]]):
            if gap[k] <= 2 * (tol.atol + tol.rtol * top2[k, 0]):
                ties += 1
            else:
                wrong += 1
                first_wrong = (k,) if first_wrong is None else first_wrong
    reason = f"{wrong} of {len(results)} labels differ from torch's argmax" + (f"; {ties} near-tie flip(s) allowed" if ties else "")
    return Check(name, backend, mode, "failed" if wrong else "passed", shape=(len(results),), max_abs=float(wrong), max_rel=0.0,
                 tolerance=Tolerance(0.0, 0.0), worst_index=first_wrong, reason=reason, size=size)


def dict_check(name, results, classes, backend, mode, size="", probs_name="probabilities") -> Check:
    """The {class: probability} dictionary holds every class with the value of ``probabilities``."""
    worst, missing = 0.0, 0
    for r in results:
        d, p = r[name], np.asarray(r[probs_name], np.float64).reshape(-1)
        if isinstance(d, np.ndarray) and d.dtype == object and d.size == 1:  # a dictionary wrapped as a (1,) array
            d = d.reshape(-1)[0]
        keys = {str(k): v for k, v in d.items()}
        for c, v in zip(classes, p):
            if str(c) not in keys:
                missing += 1
            else:
                worst = max(worst, abs(float(keys[str(c)]) - v))
    ok = missing == 0 and worst <= 1e-6
    return Check(name, backend, mode, "passed" if ok else "failed", shape=(len(results), len(classes)), max_abs=worst, max_rel=0.0,
                 tolerance=Tolerance(1e-6, 0.0), reason=f"{missing} class(es) missing from the dictionary" if missing else "", size=size)


def verify_program(
    package: str,
    module,
    feeds: list[dict],
    *,
    mode: str | None = None,
    tolerances: dict[str, Tolerance] | None = None,
    backends: tuple[str, ...] = ("executor", "coreml"),
) -> Report:
    """Run torch and the package on ``feeds`` and compare every output.

    Args:
        package: path to the .mlpackage.
        module: the torch module the package was exported from (inputs in the package's order).
        feeds: list of ``{input name: raw array}``, each one call of the model.
        mode: executor numerics (default: the program's own precision).
        tolerances: per precision; defaults to :data:`DEFAULT_TOLERANCES`.
        backends: "executor" (always runs) and/or "coreml" (skipped off macOS).

    Returns:
        The report; nothing is raised for a failed check.
    """
    from .adapter import Sample
    from .user_model import ModuleAdapter

    if not feeds:
        raise ConfigError("verify: no inputs to compare on")
    adapter = ModuleAdapter.for_package(module, package)
    return verify_package(adapter, package, [Sample.one(f) for f in feeds], modes=(mode,) if mode else None,
                          tolerances=tolerances, backends=backends)


def verify_streaming(
    package: str,
    model,
    sequence: np.ndarray,
    *,
    chunk: int = 10,
    mode: str | None = None,
    tolerances: dict[str, Tolerance] | None = None,
) -> Report:
    """Feed a long sequence in chunks with the state carried and compare with one torch pass.

    Checks, per output: (1) after the last chunk, the package's outputs equal torch's outputs for
    the whole sequence in one pass; (2) a reset (zero state) before the last chunk equals torch on
    that chunk alone, a fresh start; (3) each shorter prefix of the chunks, carried the same way,
    equals torch on those rows. Explicit-state packages also compare the final state. Core ML
    stores states in fp16: see :func:`tolerance_for` for the bar each kind of state is held to.

    Args:
        package: a streaming .mlpackage ("explicit" or "states" style).
        model: the :class:`coreml_lstm.model.RecurrentModel` it came from.
        sequence: (L, F) raw inputs; L a multiple of ``chunk`` is fed in L / chunk calls.
    """
    from .forecaster_adapter import ForecasterAdapter

    adapter = ForecasterAdapter.for_model(model, package, chunk=chunk)
    return verify_package(adapter, package, adapter.stream_samples(sequence), modes=(mode,) if mode else None,
                          tolerances=tolerances, backends=("executor",))


def to_junit(report: Report, *, suite: str = "coreml-lstm verify") -> str:
    """The report as JUnit XML: one test case per check (output x backend x mode).

    Failed checks carry a ``<failure>`` with the errors and the tolerance; checks that did not
    run carry ``<skipped>`` with the reason, so a CI dashboard never counts them as passed.
    Text from the package (its output names) goes in :func:`~coreml_lstm.errors.printable`: a
    control character there made the file malformed XML, which a CI cannot read.
    """
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites")
    cases = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(report.checks)), failures=str(len(report.failed)),
        errors="0", skipped=str(len(report.checks) - len(report.ran)),
    )
    ET.SubElement(ET.SubElement(cases, "properties"), "property", name="package", value=printable(report.package))
    for check in report.checks:
        case = ET.SubElement(cases, "testcase", classname=printable(f"{Path(report.package).name}.{check.backend}.{check.mode}"),
                             name=printable(check.label))
        if check.status == "failed":
            ET.SubElement(case, "failure", message=printable(check.line()), type="ParityError").text = json.dumps(asdict(check), default=str)
        elif check.status == "skipped":
            ET.SubElement(case, "skipped", message=printable(check.reason))
        else:
            ET.SubElement(case, "system-out").text = printable(check.line())
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


class _VerifyModule(types.ModuleType):
    """``coreml_lstm.verify`` is this module and, called, the check of a user's own module: the
    top-level function the package promises shares the module's name."""

    def __call__(self, module, package, inputs=None, **options):
        from .user_model import verify

        return verify(module, package, inputs, **options)


sys.modules[__name__].__class__ = _VerifyModule
