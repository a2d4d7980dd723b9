"""Parity of an exported package with the PyTorch model it came from.

``verify`` runs the checkpoint's torch module and the saved package on the same raw inputs and
returns a structured :class:`Report`: one :class:`Check` per output and backend with the shape,
max absolute and relative error, the tolerance, and passed / failed / skipped. The caller (the
CLI) decides the exit code. A backend that cannot run here (Core ML off macOS) is reported as
skipped with the reason, never as passed.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bar, as numpy.allclose: ``|package - torch| <= atol + rtol * |torch|``."""

    atol: float
    rtol: float


# The executor's fp32 mode is reference maths: differences are float32 rounding in a different
# summation order. fp16 programs round every value to 11 significant bits; 5e-2 is stricter
# than coremltools' own fp16 tests (atol 0.5, rtol 0.05).
DEFAULT_TOLERANCES = {"fp32": Tolerance(atol=1e-4, rtol=1e-4), "fp16": Tolerance(atol=5e-2, rtol=5e-2)}

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

    def line(self) -> str:
        if self.status == "skipped":
            return f"SKIPPED {self.output} [{self.backend}]: {self.reason}"
        tol = self.tolerance
        word = "PASSED " if self.status == "passed" else "FAILED "
        return (
            f"{word}{self.output} [{self.backend}, {self.mode}] shape {self.shape}: max abs {self.max_abs:.3g}, "
            f"max rel {self.max_rel:.3g} (atol {tol.atol:g}, rtol {tol.rtol:g})"
            + (f" worst at {self.worst_index}" if self.status == "failed" else "")
        )


@dataclass
class Report:
    package: str
    samples: int
    checks: list[Check] = field(default_factory=list)

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
        return {"package": self.package, "samples": self.samples, "status": self.status, "checks": [asdict(c) for c in self.checks]}


def compare(name: str, got: np.ndarray, want: np.ndarray, tol: Tolerance, *, backend: str, mode: str) -> Check:
    """One output's check: errors of ``got`` (package) against ``want`` (torch)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return Check(name, backend, mode, "failed", shape=got.shape, max_abs=float("inf"), max_rel=float("inf"), tolerance=tol,
                     reason=f"shape {got.shape} differs from torch's {want.shape}")
    err = np.abs(got - want)
    if not np.isfinite(got).all():
        err = np.where(np.isfinite(got), err, np.inf)
    rel = err / np.maximum(np.abs(want), np.finfo(np.float32).tiny)
    excess = err - (tol.atol + tol.rtol * np.abs(want))
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else ()
    ok = bool((excess <= 0).all())
    return Check(
        name, backend, mode, "passed" if ok else "failed", shape=tuple(got.shape),
        max_abs=float(err.max(initial=0.0)), max_rel=float(rel.max(initial=0.0)), tolerance=tol,
        worst_index=tuple(int(i) for i in worst),
    )


def program_precision(program) -> str:
    """fp16 when the program computes in fp16 anywhere (any op output declared fp16), else fp32."""
    for dtype in program.value_dtypes().values() if hasattr(program, "value_dtypes") else ():
        if np.dtype(dtype) == np.float16:
            return "fp16"
    meta = program.metadata.get("user", {}).get("coreml_lstm.precision")
    return meta if meta in DEFAULT_TOLERANCES else "fp32"


def run_torch(module, feeds: list[dict], output_names: list[str]) -> list[dict]:
    """The reference: torch outputs for each feed dict, as numpy, by output name."""
    import torch

    results = []
    module.eval()
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
        module: the torch module the package was exported from.
        feeds: list of ``{input name: raw array}``, each one call of the model.
        mode: executor numerics (default: the program's own precision).
        tolerances: per precision; defaults to :data:`DEFAULT_TOLERANCES`.
        backends: "executor" (always runs) and/or "coreml" (skipped off macOS).

    Returns:
        The report; nothing is raised for a failed check.
    """
    from . import executor

    if not feeds:
        raise ConfigError("verify: no inputs to compare on")
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    program = executor.load(package)
    mode = mode or program_precision(program)
    if mode not in DEFAULT_TOLERANCES:
        raise ConfigError(f"mode: {mode!r} is not one of fp32, fp16")
    names = [o.name for o in program.outputs]
    want = run_torch(module, feeds, names)
    report = Report(package=str(package), samples=len(feeds))

    def add(results: list[dict], backend: str, run_mode: str) -> None:
        for name in names:
            got = np.stack([r[name] for r in results])
            ref = np.stack([w[name] for w in want])
            report.checks.append(compare(name, got, ref, tolerances[run_mode], backend=backend, mode=run_mode))

    if "executor" in backends:
        add([program.predict(f, mode=mode) for f in feeds], "executor", mode)
    if "coreml" in backends:
        ok, why = coreml_available()
        if not ok:
            for name in names:
                report.checks.append(Check(name, "coreml", "-", "skipped", reason=why))
        else:  # pragma: no cover - macOS only
            from ._coremltools import coremltools

            ct = coremltools()
            for units in COMPUTE_UNITS:
                model = ct.models.MLModel(str(package), compute_units=getattr(ct.ComputeUnit, units))
                # GPU and Neural Engine compute in fp16 whatever the program says.
                run_mode = "fp32" if units == "CPU_ONLY" and mode == "fp32" else "fp16"
                add([model.predict(f) for f in feeds], f"coreml:{units}", run_mode)
    return report


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
    that chunk alone, a fresh start. Explicit-state packages also compare the final state.
    States are stored in fp16 by Core ML, so a stateful package is held to the fp16 tolerance.

    Args:
        package: a streaming .mlpackage ("explicit" or "states" style).
        model: the :class:`coreml_lstm.model.RecurrentModel` it came from.
        sequence: (L, F) raw inputs; L a multiple of ``chunk`` is fed in L / chunk calls.
    """
    from . import executor
    from .streaming import one_pass, state_names, state_shape

    program = executor.load(package)
    stateful = bool(program.states)
    mode = mode or program_precision(program)
    tol = {**DEFAULT_TOLERANCES, **(tolerances or {})}["fp16" if stateful else mode]
    sequence = np.asarray(sequence, np.float32)
    chunks = [sequence[i : i + chunk] for i in range(0, len(sequence), chunk)]
    names = state_names(model)
    out_names = [o.name for o in program.outputs if not o.name.endswith("_out")]

    def stream(parts):
        state = program.make_state() if stateful else {f"{n}_in": np.zeros(state_shape(model), np.float32) for n in names}
        result = None
        for part in parts:
            feeds = {"x": part[None]}
            if stateful:
                result = program.predict(feeds, mode=mode, state=state)
            else:
                result = program.predict({**feeds, **state}, mode=mode)
                state = {f"{n}_in": np.asarray(result[f"{n}_out"], np.float32) for n in names}
        return result

    def reference(x):
        outs, finals = one_pass(model, x)
        return dict(zip(out_names, outs)) | {f"{n}_out": f for n, f in zip(names, finals)}

    report = Report(package=str(package), samples=len(chunks))
    backend = f"executor:{'states' if stateful else 'explicit'}"
    got, want = stream(chunks), reference(sequence)
    for name in out_names + ([] if stateful else [f"{n}_out" for n in names]):
        check = compare(name, got[name], want[name], tol, backend=f"{backend} {len(chunks)}x{chunk} vs one pass", mode=mode)
        report.checks.append(check)
    got, want = stream(chunks[-1:]), reference(chunks[-1])
    for name in out_names:
        report.checks.append(compare(name, got[name], want[name], tol, backend=f"{backend} reset vs fresh start", mode=mode))
    return report


def to_junit(report: Report, *, suite: str = "coreml-lstm verify") -> str:
    """The report as JUnit XML: one test case per check (output x backend x mode).

    Failed checks carry a ``<failure>`` with the errors and the tolerance; checks that did not
    run carry ``<skipped>`` with the reason, so a CI dashboard never counts them as passed.
    """
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites")
    cases = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(report.checks)), failures=str(len(report.failed)),
        errors="0", skipped=str(len(report.checks) - len(report.ran)),
    )
    ET.SubElement(ET.SubElement(cases, "properties"), "property", name="package", value=report.package)
    for check in report.checks:
        case = ET.SubElement(cases, "testcase", classname=f"{Path(report.package).name}.{check.backend}.{check.mode}", name=check.output)
        if check.status == "failed":
            ET.SubElement(case, "failure", message=check.line(), type="ParityError").text = json.dumps(asdict(check), default=str)
        elif check.status == "skipped":
            ET.SubElement(case, "skipped", message=check.reason)
        else:
            ET.SubElement(case, "system-out").text = check.line()
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
