"""Where an fp16 package departs from its fp32 maths: the first ops, in program order.

The executor runs the saved program twice on the same inputs, in fp32 mode (reference maths)
and in fp16 mode (every value the program declares fp16 rounded after the op that makes it),
keeping every intermediate value. Each op's outputs are compared; the first ops whose fp16 value
differs from the fp32 value by more than the tolerance (``|fp16 - fp32| <= atol + rtol * |fp32|``
elementwise) are where the precision is lost, and the layers to keep in fp32. Later ops inherit
the error, so the first is the one to read.

Given the torch module (:func:`diagnose` with ``module=``), each submodule's output (a forward
hook) is also compared with the program value computed from it: found by the name the converter
kept, else by value (the fp32 program value of the same size closest to torch's); submodules
whose outputs the converter fused away are listed as not matched.

Imports numpy and the executor only, unless a torch module is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import ConfigError
from .verify import DEFAULT_TOLERANCES, Tolerance

SKIPPED_OPS = ("const",)  # weights, not computation (and every constexpr_* op)
FP16_MAX = float(np.finfo(np.float16).max)


@dataclass
class OpDiff:
    """One op output: fp16-mode value against the fp32-mode value, worst over the samples."""

    index: int  # position of the op in the program's main block
    op: str  # op type
    name: str  # the value's name
    shape: tuple
    max_abs: float
    max_rel: float
    max_value: float  # largest |fp32 value|
    exceeds: bool

    @property
    def note(self) -> str:
        if not np.isfinite(self.max_abs) and self.max_value > FP16_MAX:
            return f"overflows fp16: |values| reach {self.max_value:.3g} > {FP16_MAX:g}"
        if not np.isfinite(self.max_abs):
            return "not finite in fp16"
        return ""

    def line(self) -> str:
        return (f"#{self.index:<4} {self.op:<22} {self.name:<32} {str(self.shape):<16} max abs {self.max_abs:.3g}, "
                f"max rel {self.max_rel:.3g}, max |fp32| {self.max_value:.3g}" + (f"  ({self.note})" if self.note else ""))


@dataclass
class TorchMatch:
    """A submodule's output (torch) against the program value computed from it."""

    module: str  # path in the module, e.g. "encoder.attn"
    kind: str  # the submodule's class
    shape: tuple
    value: str | None = None  # the program value it matched
    op: str | None = None
    how: str = ""  # "name" | "value" | "" (not matched)
    max_abs: float | None = None  # torch vs the fp32 program value
    fp16_abs: float | None = None  # fp16 vs fp32 program value there
    reason: str = ""

    def line(self) -> str:
        if self.value is None:
            return f"{self.module:<24} {self.kind:<14} {str(self.shape):<16} not matched: {self.reason}"
        return (f"{self.module:<24} {self.kind:<14} {str(self.shape):<16} = {self.value} ({self.op}, by {self.how}): "
                f"torch vs fp32 {self.max_abs:.3g}, fp16 vs fp32 {self.fp16_abs:.3g}")


@dataclass
class Diagnosis:
    package: str
    samples: int
    tolerance: Tolerance
    precision: str
    ops: list[OpDiff] = field(default_factory=list)  # every compared op output, in program order
    torch: list[TorchMatch] | None = None

    @property
    def departures(self) -> list[OpDiff]:
        return [d for d in self.ops if d.exceeds]

    def first(self, limit: int = 5) -> list[OpDiff]:
        return self.departures[:limit]

    def to_dict(self, limit: int = 5) -> dict:
        return {
            "package": self.package, "samples": self.samples, "precision": self.precision, "tolerance": asdict(self.tolerance),
            "compared": len(self.ops), "departing": len(self.departures),
            "first": [{**asdict(d), "note": d.note} for d in self.first(limit)],
            "torch": [asdict(m) for m in self.torch] if self.torch is not None else None,
        }

    def lines(self, limit: int = 5) -> list[str]:
        tol = self.tolerance
        out = [f"diagnose {self.package}: fp16 vs fp32 mode on {self.samples} sample(s), {len(self.ops)} op outputs compared "
               f"(atol {tol.atol:g}, rtol {tol.rtol:g})"]
        if self.precision == "fp32":
            out.append("the program computes in fp32 everywhere: fp16 mode changes nothing (convert with precision fp16 to see what it costs)")
        first = self.first(limit)
        if not first:
            out.append("no op departs beyond the tolerance")
        else:
            out.append(f"first {len(first)} of {len(self.departures)} op(s) where fp16 departs (program order):")
            out += ["  " + d.line() for d in first]
            out.append(f"the error starts at {first[0].op} {first[0].name!r}: keep that layer in fp32 (convert --fp32-module NAME) or scale its values")
        if self.torch is not None:
            out.append("torch submodules against the program (fp32 mode):")
            out += ["  " + m.line() for m in self.torch]
        return out


def diagnose(package, feeds=None, *, module=None, samples: int = 3, atol: float | None = None, rtol: float | None = None,
             seed: int = 0) -> Diagnosis:
    """Compare every op of the program in fp16 mode with fp32 mode (and with torch, given the module).

    Args:
        package: the .mlpackage.
        feeds: ``{input name: array}`` or a list of them; default: ``samples`` random draws inside
            the package's declared input shapes (smallest, largest, in between).
        module: the torch module the package came from (optional): its submodules' outputs are
            compared with the program's values where they can be matched.
        atol, rtol: the bar (default: the fp16 tolerance of :data:`coreml_lstm.verify.DEFAULT_TOLERANCES`).

    Returns:
        A :class:`Diagnosis`; ``first()`` gives the first departing ops in program order.
    """
    from . import executor
    from .adapter import package_inputs, random_samples
    from .verify import program_precision

    program = executor.load(package)
    base = DEFAULT_TOLERANCES["fp16"]
    tol = Tolerance(base.atol if atol is None else atol, base.rtol if rtol is None else rtol)
    if feeds is None:
        if samples < 1:
            raise ConfigError(f"samples: must be >= 1, got {samples}")
        runs = [s.calls[0] for s in random_samples(package_inputs(program, package), samples, seed)]
    else:
        runs = [feeds] if isinstance(feeds, dict) else list(feeds)
        if not runs:
            raise ConfigError("diagnose: no inputs")
    order = [(k, op) for k, op in enumerate(program.block.ops) if op.type not in SKIPPED_OPS and not op.type.startswith("constexpr_")]
    worst: dict[str, list] = {}
    envs32 = []
    for run in runs:
        env32 = program.run(run, mode="fp32", state=program.make_state() if program.states else None, intermediate=True)
        env16 = program.run(run, mode="fp16", state=program.make_state() if program.states else None, intermediate=True)
        envs32.append(env32)
        for k, op in order:
            for out in op.outputs:
                a, b = env32.get(out.name), env16.get(out.name)
                if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.dtype.kind != "f" or a.shape != b.shape:
                    continue
                a64, b64 = a.astype(np.float64), b.astype(np.float64)
                err = np.abs(b64 - a64)
                err = np.where(np.isfinite(b64) | ~np.isfinite(a64), np.nan_to_num(err, nan=np.inf), np.inf)
                rel = err / np.maximum(np.abs(a64), np.finfo(np.float32).tiny)
                excess = err - (tol.atol + tol.rtol * np.abs(a64))
                entry = worst.setdefault(out.name, [k, op.type, out.name, tuple(a.shape), 0.0, 0.0, 0.0, False])
                entry[4] = max(entry[4], float(err.max(initial=0.0)))
                entry[5] = max(entry[5], float(rel.max(initial=0.0)))
                entry[6] = max(entry[6], float(np.abs(a64[np.isfinite(a64)]).max(initial=0.0)))
                entry[7] = entry[7] or bool((excess > 0).any())
    result = Diagnosis(str(package), len(runs), tol, program_precision(program), [OpDiff(*v) for v in worst.values()])
    if module is not None:
        result.torch = match_torch(module, program, package, runs[0], envs32[0], worst)
    return result


def match_torch(module, program, package, feeds: dict, env32: dict, fp16: dict) -> list[TorchMatch]:
    """Each submodule's output (a forward hook on one call) against the program's fp32 values.

    A program value matches by name when the converter kept the TorchScript name of the value
    the submodule returned (``input.5`` -> ``input_5``), else by value: the first fp32 value in
    program order with the same number of elements whose values equal torch's within 1e-3
    (relative to its largest magnitude), in the same or transposed layout.
    """
    import torch

    from .adapter import eval_mode
    from .user_model import ModuleAdapter

    adapter = ModuleAdapter.for_package(module, package)
    args = [adapter.torch_input(i.name, feeds[i.name]) for i in adapter.inputs]
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    modules = [(n, m) for n, m in module.named_modules() if n]
    for name, sub in modules:
        def hook(_m, _inp, out, name=name):
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            if isinstance(first, torch.Tensor):
                captured[name] = first.detach().float()
        hooks.append(sub.register_forward_hook(hook))
    saved = {k: v.detach().clone() for k, v in module.named_buffers()}
    try:
        eval_mode(module)
        with torch.no_grad():
            module(*args)
    finally:
        for h in hooks:
            h.remove()
        buffers = dict(module.named_buffers())
        with torch.no_grad():
            for k, v in saved.items():
                buffers[k].copy_(v)
    names = _traced_names(module, args)
    ordered = [(o.name, op.type) for op in program.block.ops if op.type not in SKIPPED_OPS and not op.type.startswith("constexpr_")
               for o in op.outputs if isinstance(env32.get(o.name), np.ndarray) and env32[o.name].dtype.kind == "f"]
    out = []
    for name, sub in modules:
        kind = type(sub).__name__
        if name not in captured:
            if not list(sub.children()):
                out.append(TorchMatch(name, kind, (), reason="the submodule did not run or returned no tensor"))
            continue
        want = captured[name].numpy().astype(np.float64)
        match = TorchMatch(name, kind, tuple(want.shape))
        candidate = names.get(name)
        sanitized = candidate.replace(".", "_") if candidate else None
        found = None
        if sanitized and sanitized in env32 and np.size(env32[sanitized]) == want.size:
            found = (sanitized, "name")
        else:
            for value, _op in ordered:
                got = env32[value]
                if got.size == want.size and _close(got, want):
                    found = (value, "value")
                    break
        if found is None:
            match.reason = "no program value holds this output (the converter fused or renamed it)"
        else:
            value, how = found
            got = np.asarray(env32[value], np.float64)
            match.value, match.how = value, how
            match.op = dict(ordered).get(value, "?")
            match.max_abs = _layout_error(got, want)
            match.fp16_abs = fp16[value][4] if value in fp16 else None
        out.append(match)
    return out


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return _layout_error(np.asarray(got, np.float64), want) <= 1e-3 * max(1.0, float(np.abs(want).max(initial=0.0)))


def _layout_error(got: np.ndarray, want: np.ndarray) -> float:
    """Max abs error in the best of: the same layout, the reverse axes order, last two axes swapped."""
    best = np.inf
    candidates = [got.reshape(want.shape)] if got.size == want.size else []
    if got.ndim == want.ndim and got.ndim >= 2 and got.shape[::-1] == want.shape:
        candidates.append(got.transpose())
    if got.ndim == want.ndim and got.ndim >= 2 and got.shape[:-2] + got.shape[-2:][::-1] == want.shape:
        candidates.append(np.swapaxes(got, -1, -2))
    for c in candidates:
        if c.shape == want.shape:
            best = min(best, float(np.abs(c - want).max(initial=0.0)))
    return best


def _traced_names(module, args) -> dict[str, str]:
    """{submodule path: the TorchScript name of the last value computed inside it}."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, tuple(args), check_trace=False)
        graph = traced.inlined_graph
    except Exception:
        return {}
    names = {}
    for node in graph.nodes():
        scope = node.scopeName()
        if not scope or node.kind() == "prim::Constant" or not list(node.outputs()):
            continue
        path = scope.split("/")[-1].removeprefix("__module.")
        names[path] = list(node.outputs())[0].debugName()
    return names
