"""Your own torch module: convert it to Core ML and check the package against it, on any machine.

    import coreml_lstm
    path, report = coreml_lstm.convert(model, torch.randn(1, 100, 6), "har.mlpackage",
                                       inputs={"x": ("1..8", "1..512", 6)}, outputs=["logits"])
    report = coreml_lstm.verify(model, "har.mlpackage")        # random inputs in every range

:class:`ModuleAdapter` is the adapter (see :mod:`.adapter`) of any module: named inputs with
their shapes (fixed, ranges, enumerated shapes) and dtypes, named outputs, optional Core ML
states, random samples drawn inside every flexible range. Model files are TorchScript archives
(``torch.jit.save``) or ``torch.export`` programs (``.pt2``), loaded without unpickling
arbitrary objects (:func:`load_model_file`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .adapter import FLOAT32, INT32, TORCH_FLOAT_DTYPES, TORCH_INTEGER_DTYPES, Adapter, Dim, Input, Output, Sample, State, eval_mode, package_inputs, parse_dtype, parse_shape, training_kept
from .errors import ConfigError, ConvertWarning, CoreMLLSTMError, StateWarning, first_line

__all__ = ["ModuleAdapter", "convert", "verify", "load_model_file", "parse_input_option"]


class ModuleAdapter(Adapter):
    """Any torch module (or a loaded TorchScript archive): inputs, outputs, states as given."""

    kind = "module"

    def __init__(self, module, inputs: list[Input], outputs: list[Output], *, examples: tuple | None = None,
                 states: list[State] = (), traced=None, torch_dtypes: dict | None = None, description: str = ""):
        self._module = module
        self.inputs, self.outputs, self.states = list(inputs), list(outputs), list(states)
        self._examples, self._traced = examples, traced
        self._torch_dtypes = torch_dtypes or {}
        self.description = description

    def module(self):
        return self._module

    @property
    def fp16_reference(self) -> bool:
        return any(i.torch_dtype in ("float16", "bfloat16") for i in self.inputs)

    def metadata(self, path=None) -> dict:
        """Besides the kind, how each input is sampled (shared ranges, value ranges, statistics),
        so a later check of the package draws what the check at conversion drew."""
        return {**super().metadata(path), "inputs": [i.sampling() for i in self.inputs]}

    def traced(self):
        return self._traced

    def examples(self) -> tuple:
        if self._examples is not None:
            return self._examples
        return tuple(self.torch_input(i.name, i.example()) for i in self.inputs)

    def torch_input(self, name: str, value):
        """A feed as the module takes it: in the dtype of the example it was traced on, else in
        the one the input records (a package's metadata, ``--input mask:1,10:bool``), else
        integers in int64 (torch's index type; the package takes int32) and floats as they are
        (float32, the package's)."""
        import torch

        from .adapter import _tensor

        tensor = _tensor(value)
        dtype = self._torch_dtypes.get(name)
        if dtype is None:
            recorded = next((i.torch_dtype for i in self.inputs if i.name == name), None)
            if tensor.is_floating_point():
                dtype = getattr(torch, recorded) if recorded in TORCH_FLOAT_DTYPES else tensor.dtype
            else:
                dtype = getattr(torch, recorded) if recorded in TORCH_INTEGER_DTYPES else torch.int64
        if tensor.is_floating_point() != dtype.is_floating_point:  # a float feed for an integer input: refused later, not truncated
            return tensor
        return tensor.to(dtype) if tensor.dtype != dtype else tensor

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def from_module(cls, module, example_inputs, *, inputs=None, outputs=None, states=None, value_ranges=None) -> "ModuleAdapter":
        """The adapter of ``module`` traced on ``example_inputs``, with the flexible shapes of ``inputs``.

        Args:
            module: an ``nn.Module`` (or a TorchScript module).
            example_inputs: a tensor, a tuple of tensors (one per ``forward`` argument) or
                ``{name: tensor}``.
            inputs: ``{name: shape}`` (sizes, ``"lo..hi"`` strings, ``ct.RangeDim``, ``ct.Shape``,
                ``ct.EnumeratedShapes``, a list of shapes, a string ``"1..64,100,16"``, or a
                ``ct.TensorType``), or a list of ``ct.TensorType`` in argument order. Inputs not
                named keep the example's shape.
            outputs: output names (or ``ct.TensorType`` list); default ``output`` / ``output_0``...
            states: buffer names (or ``ct.StateType`` list) kept as Core ML states (iOS18+).
            value_ranges: ``{name: (lo, hi)}``: the values random samples of that input draw from
                (inclusive integers for an integer input; uniform floats for a float one).
        """
        import torch

        module = uncompiled(module)
        names, tensors = _examples(module, example_inputs)
        specs: dict = {}
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != len(tensors):
                raise ConfigError(f"inputs: {len(inputs)} given for {len(tensors)} example inputs")
            names = [getattr(t, "name", None) or n for t, n in zip(inputs, names)]
            specs = dict(zip(names, inputs))
        elif isinstance(inputs, dict):
            unknown = [k for k in inputs if k not in names]
            if unknown:
                raise ConfigError(f"inputs: {unknown[0]!r} is not an input of the module; its inputs are {', '.join(names)}")
            specs = dict(inputs)
        elif inputs is not None:
            raise ConfigError("inputs: expected {name: shape} or a list of ct.TensorType")
        specs_in = [input_from_example(n, t, specs.get(n)) for n, t in zip(names, tensors)]
        _set_value_ranges(specs_in, value_ranges)
        torch_dtypes = {n: t.dtype for n, t in zip(names, tensors) if not t.is_floating_point() or t.dtype != torch.float32}
        kept = _states(module, states)
        eval_mode(module)
        try:
            with torch.no_grad(), _buffers_restored(module) as updated:
                out = module(*tensors)
        except Exception as exc:  # the user's model on the user's example: one line, as the CLI's
            if isinstance(exc, CoreMLLSTMError):
                raise
            shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, tensors))
            raise ConfigError(f"the model fails on its example inputs, of shape {shapes}: {type(exc).__name__}: {first_line(exc)}") from None
        _refuse_updated_buffers(updated, kept)
        out = _as_outputs(out)
        out_names = _output_names(outputs, len(out), {*names, *(k.name for k in kept)})
        same = next(((i, j) for j in range(len(out)) for i in range(j) if out[i] is out[j]), None)
        if same is not None:
            i, j = same
            raise ConfigError(f"outputs {out_names[i]!r} and {out_names[j]!r} are the same tensor: a Core ML program names a value once; return it once")
        _refuse_pass_through(out, out_names, tensors, names)
        outs = [Output(n, dtype=INT32 if not o.is_floating_point() else FLOAT32) for n, o in zip(out_names, out)]
        return cls(module, specs_in, outs, examples=tuple(tensors), states=kept, torch_dtypes=torch_dtypes,
                   description=f"{type(module).__name__} converted by coreml-lstm")

    @classmethod
    def for_package(cls, module, package, *, inputs=None, outputs=None) -> "ModuleAdapter":
        """The adapter of ``module`` with the inputs, outputs and states a saved package declares
        (``inputs``: CLI-style specs overriding them, e.g. to give value ranges)."""
        from .verify import load_declared

        module = uncompiled(module)
        program, _ = load_declared(package)  # the declarations, even where the executor lacks a kernel
        declared = package_inputs(program, package)
        if inputs:
            given = {i.name: i for i in inputs}
            unknown = [n for n in given if n not in {d.name for d in declared}]
            if unknown:
                raise ConfigError(f"--input {unknown[0]!r}: not an input of {package}; its inputs are {', '.join(d.name for d in declared)}")
            declared = [_keep_torch_dtype(_inside(given[d.name], d, package), d) if d.name in given else d for d in declared]
            _same_ranges(declared)
        names = outputs or [t.name for t in program.outputs]
        if outputs and any(n not in {t.name for t in program.outputs} for n in outputs):
            bad = next(n for n in outputs if n not in {t.name for t in program.outputs})
            raise ConfigError(f"--output {bad!r}: not an output of {package}; its outputs are {', '.join(t.name for t in program.outputs)}")
        states = [State(t.name, tuple(t.shape)) for t in program.states]
        return cls(module, declared, [Output(n) for n in names], states=states)

    @classmethod
    def load(cls, path, *, package=None, inputs=None, outputs=None, **_) -> "ModuleAdapter":
        """The adapter of a model file (TorchScript archive or ``.pt2``); shapes from ``inputs``
        (``"NAME:SHAPE[:DTYPE[:LO..HI]]"`` strings), else from ``package``, else from the program."""
        path = Path(path)
        loaded = load_model_file(path)
        parsed = [parse_input_option(s) if isinstance(s, str) else s for s in (inputs or [])]
        known = loaded.input_names
        for i in parsed:
            if known and i.name not in known:
                raise ConfigError(f"--input {i.name!r}: not an input of {path.name}; its inputs are {', '.join(known)}")
        if len({i.name for i in parsed}) != len(parsed):
            raise ConfigError("--input: each input may be given once")
        if package is not None:
            adapter = cls.for_package(loaded.module, package, inputs=parsed, outputs=list(outputs or []) or None)
            adapter._traced, adapter._torch_dtypes = loaded.traced, {**adapter._torch_dtypes, **loaded.torch_dtypes}
            return adapter
        by_name = {i.name: i for i in parsed}
        specs = []
        for k, name in enumerate(known or [i.name for i in parsed]):
            if name in by_name:
                specs.append(by_name[name])
            elif loaded.inputs and name in loaded.inputs:
                specs.append(loaded.inputs[name])
            else:
                example = "x:1..64,100,16" if not known else f"{name}:1,100,16"
                why = f" (the range of its axis {loaded.unbounded[name]} has no upper bound)" if name in loaded.unbounded else ""
                raise ConfigError(f"{path.name}: input {name!r} has no shape{why}; give --input NAME:SHAPE (e.g. --input {example})")
        adapter = cls(loaded.module, specs, [], traced=loaded.traced, torch_dtypes=loaded.torch_dtypes,
                      description=f"{path.name} converted by coreml-lstm")
        adapter.trace_notes = [
            f"{path.name}: the program reads the size of {where} in forward (x.shape[...]); converting a .pt2 traces it, which keeps the "
            "example's size there, so the package may be wrong at other sizes (the checks at both ends of the range say); "
            "save the module as TorchScript (torch.jit.save(torch.jit.trace(model, example))), whose trace keeps sizes"
            for where in getattr(loaded, "size_reads", [])]
        args = [adapter.torch_input(i.name, i.example()) for i in adapter.inputs]
        out = _as_outputs(adapter.call_once(args))
        names = _output_names(list(outputs or []) or None, len(out), {i.name for i in adapter.inputs})
        _refuse_pass_through(out, names, args, [i.name for i in adapter.inputs])
        adapter.outputs = [Output(n, dtype=INT32 if not o.is_floating_point() else FLOAT32) for n, o in zip(names, out)]
        return adapter

    def call_once(self, args=None):
        """The module's own return value on every input's example (zeros, or inside its value
        range) at its default shape, to count its outputs (``args``: those examples as tensors)."""
        import torch

        if args is None:
            args = [self.torch_input(i.name, i.example()) for i in self.inputs]
        try:
            with torch.no_grad(), warnings.catch_warnings(), _buffers_restored(self._module) as updated:
                warnings.simplefilter("ignore")  # torch's notes on its kernels ("LSTM with projections ... oneDNN"): not the user's to act on here
                out = self._module(*args)
        except Exception as exc:
            shapes = ", ".join(f"{i.name} {i.default_shape()}" for i in self.inputs)
            ints = [i for i in self.inputs if i.dtype == INT32 and i.torch_dtype is None and i.name not in self._torch_dtypes]
            hint = ""
            if ints and "bool" in str(exc).lower():  # fed int64 where the module takes a mask
                hint = f" (a bool input is --input {ints[0].name}:{','.join(map(str, ints[0].default_shape()))}:bool)"
            raise ConfigError(f"the model fails on inputs of shape {shapes}: {type(exc).__name__}: {first_line(exc)}{hint}") from None
        _refuse_updated_buffers(updated, self.states)
        return out


FixedAdapter = ModuleAdapter  # the toolkit's own conversions (export.convert) use the same adapter


def _inside(given: Input, declared: Input, package) -> Input:
    """An ``--input`` for a package input, checked to lie inside the shapes the package declares
    (a size beyond them is a feed the package refuses), keeping the package's shared-range
    names on the axes where the option names none (``mask:1,2..32`` for a mask sharing T with x
    stays linked to x)."""
    if len(given.shape) != len(declared.shape) or (declared.enumerated and not given.enumerated and not all(isinstance(d, int) for d in given.shape)):
        raise ConfigError(f"--input {given.name!r}: shape {given.shape_text()} does not fit {package}'s {declared.shape_text()}")
    shape = []
    for axis, (g, d) in enumerate(zip(given.shape, declared.shape)):
        lo, hi = (g, g) if isinstance(g, int) else (g.lo, g.hi)
        if declared.enumerated:
            shape.append(g)
            continue
        dlo, dhi = (d, d) if isinstance(d, int) else (d.lo, d.hi)
        if lo < dlo or hi > dhi:
            raise ConfigError(f"--input {given.name!r}: axis {axis} takes {lo}..{hi} but {package} declares {dlo}..{dhi} there")
        if isinstance(g, Dim) and isinstance(d, Dim) and g.symbol is None and d.symbol is not None:
            g = Dim(g.lo, g.hi, g.default, d.symbol)
        shape.append(g)
    given.shape = tuple(shape)
    return given


def _same_ranges(inputs: list[Input]) -> None:
    """Axes sharing a range name must have one range (the first one was drawn, silently)."""
    seen = {}
    for inp in inputs:
        for d in inp.shape:
            if isinstance(d, Dim) and d.symbol:
                first = seen.setdefault(d.symbol, (inp.name, d))
                if (first[1].lo, first[1].hi) != (d.lo, d.hi):
                    name = d.symbol if not d.symbol.startswith("_") else "the range they share"
                    raise ConfigError(f"--input {inp.name!r}: {name} is {d.lo}..{d.hi} here but {first[1].lo}..{first[1].hi} for {first[0]!r}; "
                                      "inputs sharing a range take one span: give it to each of them")


@contextlib.contextmanager
def _buffers_restored(module):
    """Every buffer of ``module`` back to its value after the block (a forward run to learn the
    outputs must leave the module as it was); yields the list, filled on exit, of the buffers the
    block changed."""
    import torch

    saved = {k: v.detach().clone() for k, v in module.named_buffers()}
    updated: list[str] = []
    try:
        yield updated
    finally:
        with torch.no_grad():
            for k, v in module.named_buffers():
                if k in saved and not _same(v, saved[k]):
                    updated.append(k)
                    if v.shape == saved[k].shape:
                        v.copy_(saved[k])
                    else:  # forward resized it
                        v.set_(saved[k])


def _same(a, b) -> bool:
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a, b) or (a.is_floating_point() and bool(((a == b) | (a.isnan() & b.isnan())).all()))


def _refuse_updated_buffers(updated: list[str], states) -> None:
    """A buffer forward updates in eval mode (a call counter, a running mean) is a constant in
    the package, frozen at its value at conversion, while torch changes it every call: refused,
    unless it is one of the Core ML ``states``."""
    kept = {s.name for s in states}
    for name in updated:
        if name not in kept:
            raise ConfigError(f"forward updates buffer {name!r}: the package would keep it at its value at conversion; declare it a Core ML state "
                              f"(states=[{name!r}], target iOS18) or stop updating it in forward",
                              cli=f"forward updates buffer {name!r}: the package would keep it at its value at conversion; stop updating it in "
                                  f"forward, or convert the module from Python with states=[{name!r}] (target iOS18)")


def _keep_torch_dtype(given: Input, declared: Input) -> Input:
    """An ``--input`` given for a package input, with the torch dtype the package records unless
    the option says one (``mask:1,10:int32:0..1`` for a package of a bool mask is still bool)."""
    if given.torch_dtype is None and given.dtype == declared.dtype:
        given.torch_dtype = declared.torch_dtype
    return given


def _refuse_pass_through(out, out_names, args, arg_names) -> None:
    """An output that is an input tensor unchanged (``return x, self.lin(x)``) fails inside
    coremltools (an assertion on the program's names, with an ERROR banner); refused first."""
    for o, out_name in zip(out, out_names):
        for a, name in zip(args, arg_names):
            if o is a:
                raise ConfigError(pass_through(out_name, name))


def pass_through(output: str, name: str) -> str:
    """The one line for an output that is the input ``name`` as it is (coremltools removes a
    clone, an nn.Identity, then fails on the program's names)."""
    return (f"output {output!r} is the input {name!r} unchanged: a Core ML program cannot return an input as it is "
            f"(coremltools drops a copy such as {name}.clone() too); return {name} + 0, or leave it out")


def _examples(module, example_inputs) -> tuple[list[str], list]:
    """(input names, example tensors) in ``forward``'s argument order: names from the dict, else
    from ``forward``'s signature.

    A dict whose keys are ``forward``'s argument names binds each tensor to its argument,
    whatever the dict's order (the trace and every check call the module positionally, so a
    ``{"skip": s, "x": x}`` example fed the input named ``x`` to ``skip``); keys that are not
    its names are the package's names for its arguments in the dict's order.
    """
    import torch

    if isinstance(example_inputs, dict):
        names, tensors = list(example_inputs), list(example_inputs.values())
        params = _forward_names(module, 0, every=True)
        named = [n for n in names if n in params]
        if named:
            first = params[: len(names)]
            if len(named) < len(names) or set(names) != set(first):
                others = [n for n in names if n not in first]
                raise ConfigError(f"example_inputs: {', '.join(map(repr, others))} {'is' if len(others) == 1 else 'are'} not among forward's first "
                                  f"{len(names)} arguments ({', '.join(first)}); name every tensor by its forward argument, or none of them")
            names, tensors = first, [example_inputs[n] for n in first]
    else:
        tensors = list(example_inputs) if isinstance(example_inputs, (tuple, list)) else [example_inputs]
        names = _forward_names(module, len(tensors))
    _refuse_keyword_only(module, len(tensors))
    out = []
    for n, t in zip(names, tensors):
        if isinstance(t, np.ndarray):
            t = torch.as_tensor(t)
        if not isinstance(t, torch.Tensor):
            raise ConfigError(f"example input {n!r}: expected a tensor, got {type(t).__name__}")
        out.append(t)
    return names, out


def _refuse_keyword_only(module, n: int) -> None:
    """``forward(self, *, x, y)`` cannot take ``n`` inputs by position, as the trace and Core ML
    pass them (it was a raw TypeError from inside the trace): one line saying what to change."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= n:
        return
    keyword = [p.name for p in params if p.kind == p.KEYWORD_ONLY] or ["**" + next((p.name for p in params if p.kind == p.VAR_KEYWORD), "kwargs")]
    raise ConfigError(f"forward takes {', '.join(keyword)} by keyword only, but the trace and Core ML pass inputs by position: "
                      f"give forward positional arguments (def forward(self, {', '.join(k.lstrip('*') for k in keyword)}))")


def _forward_names(module, n: int, every: bool = False) -> list[str]:
    """The names of ``forward``'s first ``n`` arguments (``input_0``... when it takes ``*args``);
    ``every``: all its positional argument names (none for ``*args``)."""
    names = []
    schema = getattr(getattr(module, "forward", None), "schema", None)
    if schema is not None:  # TorchScript
        names = [a.name for a in schema.arguments[1:]]
    else:
        try:
            params = inspect.signature(module.forward).parameters.values()
            names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            names = []
    if every:
        return names
    if len(names) < n:
        return [f"input_{i}" for i in range(n)]
    return names[:n]


def _set_value_ranges(specs: list[Input], ranges) -> None:
    """``value_ranges`` checked (names, pairs, lo <= hi) and set on the inputs they name."""
    if ranges is None:
        return
    if not isinstance(ranges, dict):
        raise ConfigError("value_ranges: expected {input name: (lo, hi)}")
    by_name = {i.name: i for i in specs}
    for name, pair in ranges.items():
        if name not in by_name:
            raise ConfigError(f"value_ranges: {name!r} is not an input of the module; its inputs are {', '.join(by_name)}")
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ConfigError(f"value_ranges: {name!r}: expected (lo, hi), got {pair!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise ConfigError(f"value_ranges: {name!r}: ({pair[0]}, {pair[1]}) is not a finite range with lo <= hi")
        inp = by_name[name]
        if inp.dtype == INT32 and not (-(2**31) <= lo and hi < 2**31):
            raise ConfigError(f"value_ranges: {name!r}: ({pair[0]}, {pair[1]}) goes beyond int32, the package's input type")
        inp.value_range = (int(np.ceil(lo)), int(np.floor(hi))) if inp.dtype == INT32 else (lo, hi)
        if inp.value_range[0] > inp.value_range[1]:
            raise ConfigError(f"value_ranges: {name!r}: ({pair[0]}, {pair[1]}) holds no integer")


def input_from_example(name: str, tensor, spec=None, description: str = "") -> Input:
    """An :class:`Input` for an example tensor: its dtype (int -> int32), its shape unless ``spec``
    gives flexible dims, and value statistics for random samples."""
    import torch

    if isinstance(tensor, np.ndarray):
        tensor = torch.as_tensor(tensor)
    if tensor.dim() == 0:  # coremltools: "Rank-0 (input None) is unsupported", after the trace
        raise ConfigError(f"example input {name!r} is a 0-d tensor (a scalar); Core ML inputs have at least one dimension: give it shape (1,) "
                          f"({name}.reshape(1))")
    if 0 in tensor.shape:  # every check would compare no values, and pass
        raise ConfigError(f"example input {name!r} has shape {tuple(tensor.shape)}: a size of 0 holds no values to convert or check; "
                          "give an example with every size >= 1 (and a range for the sizes that vary)")
    integer = not tensor.is_floating_point()
    dtype = INT32 if integer else FLOAT32
    shape_spec = spec
    if type(spec).__name__ == "TensorType":
        if spec.dtype is not None and np.dtype(_np_dtype(spec.dtype)).kind == "f" and integer:
            raise ConfigError(f"inputs: {name!r}: the example holds integers but the TensorType says float")
        if _is_fp16(spec.dtype):
            warnings.warn(ConvertWarning(f"inputs: {name!r}: the TensorType asks for float16; the package takes float32 (every package "
                                         "made here is float32 in and out; precision='fp16' computes in fp16 inside)"), stacklevel=4)
        shape_spec = spec.shape
    example_shape = tuple(int(s) for s in tensor.shape)
    if shape_spec is None:
        dims, enumerated = example_shape, None
    else:
        dims, enumerated = parse_shape(shape_spec)
    inp = Input(name, dims, dtype, enumerated, description, default=example_shape)
    inp.torch_dtype = _torch_dtype_name(tensor.dtype)
    if len(dims) != len(example_shape) or not inp.accepts(example_shape):
        raise ConfigError(f"inputs: {name!r}: the example's shape {example_shape} is not one of {inp.shape_text()}")
    values = tensor.detach().double().numpy()
    if values.size:
        if inp.torch_dtype == "bool":
            inp.value_range = (0, 1)
        elif integer:
            inp.value_range = _integer_range(int(values.min()), int(values.max()))
        else:
            std = float(values.std())
            inp.stats = (float(values.mean()), std if std > 0 else 1.0)
    return inp


def _integer_range(lo: int, hi: int) -> tuple[int, int]:
    """The values checks draw for an integer input whose example spans lo..hi: that range, or,
    for a constant example (zeros, the usual tracing dummy, says nothing of the values the model
    takes), 0..9 and the constant."""
    return (lo, hi) if lo < hi else (min(lo, 0), max(hi, 9))


def _torch_dtype_name(dtype) -> str | None:
    """``torch.bool`` -> "bool", ``torch.float64`` -> "float64" (as a package records them); None
    for float32 (the package's own) and a dtype no feed is cast to."""
    name = str(dtype).removeprefix("torch.")
    return name if name in TORCH_INTEGER_DTYPES + TORCH_FLOAT_DTYPES else None


def _is_fp16(dtype) -> bool:
    """Whether a coremltools or numpy dtype is 16-bit float (``np.float16``, ``ct.converters.mil.mil.types.fp16``)."""
    if dtype is None:
        return False
    if getattr(dtype, "__name__", "") == "fp16":
        return True
    try:
        return np.dtype(dtype) == np.float16
    except TypeError:
        return False


def _np_dtype(dtype):
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.float32


def _as_outputs(out) -> tuple:
    import torch

    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
        return tuple(out)
    if isinstance(out, (tuple, list)) and any(isinstance(o, (tuple, list)) for o in out):
        raise ConfigError("the module returns a nested tuple (a tuple inside its tuple of outputs); flatten it: return y, h, c rather than y, (h, c)")
    raise ConfigError(f"the module returns {type(out).__name__}; return a tensor or a tuple of tensors (one per output)")


def _output_names(outputs, n: int, taken=()) -> list[str]:
    """The outputs' names: given, or output / output_0, output_1, ...; ``taken``: the inputs'
    and states' names, which a Core ML program cannot give an output too."""
    if outputs is None:
        names = ["output"] if n == 1 else [f"output_{i}" for i in range(n)]
        out = []
        for name in names:
            while name in taken or name in out:
                name += "_"
            out.append(name)
        return out
    names = [getattr(o, "name", None) or o if not isinstance(o, str) else o for o in outputs]
    for o, name in zip(outputs, names):
        if not isinstance(o, str) and _is_fp16(getattr(o, "dtype", None)):
            warnings.warn(ConvertWarning(f"outputs: {name!r}: the TensorType asks for float16; the package returns float32 (every "
                                         "package made here is float32 in and out)"), stacklevel=4)
    if any(not isinstance(x, str) or not x for x in names):
        raise ConfigError("outputs: give a name (or a ct.TensorType with a name) for every output")
    if len(names) != n:
        raise ConfigError(f"outputs: {len(names)} names ({', '.join(names)}) for {n} outputs the module returns")
    if len(set(names)) != len(names):
        raise ConfigError(f"outputs: names must differ, got {', '.join(names)}")
    clash = next((x for x in names if x in taken), None)
    if clash is not None:
        raise ConfigError(f"outputs: {clash!r} is also the name of an input or a state; a Core ML program names a value once: "
                          "give the output another name")
    return names


def _states(module, states) -> list[State]:
    if not states:
        return []
    buffers = dict(module.named_buffers())
    out = []
    for s in states:
        name = s if isinstance(s, str) else getattr(s, "name", None)
        if name not in buffers:
            raise ConfigError(f"states: {name!r} is not a buffer of the module; its buffers are {', '.join(sorted(buffers)) or 'none'}")
        out.append(State(name, tuple(int(d) for d in buffers[name].shape)))
        value = buffers[name].detach()
        if value.numel() and bool((value != 0).any()):
            peak = float(value.double().abs().max())
            warnings.warn(StateWarning(
                f"state {name!r} holds non-zero values in the module (max |value| {peak:.4g}), but a package's state starts from zero "
                f"(MLModel.makeState()), and so does the check: a fresh state gives other outputs than the module as built; start the "
                f"buffer at zero (and add its initial value in forward), or write it in the app before the first prediction "
                f'(state.withMultiArray(for: "{name}"))'), stacklevel=4)
    return out


# -- model files --------------------------------------------------------------------------------


class Loaded:
    """A model file: the torch module, the TorchScript to convert (None: trace ``module``), the
    input names and the shapes the file records."""

    def __init__(self, module, traced, input_names, inputs=None, torch_dtypes=None, unbounded=None):
        self.module, self.traced, self.input_names = module, traced, list(input_names)
        self.inputs = inputs or {}
        self.torch_dtypes = torch_dtypes or {}
        self.unbounded = unbounded or {}  # input name -> an axis whose range has no upper bound


def load_model_file(path) -> Loaded:
    """A TorchScript archive (``torch.jit.save``) or a ``torch.export`` program (``.pt2``).

    Neither path unpickles arbitrary objects: TorchScript archives are read by TorchScript's own
    loader (which builds TorchScript values only), and ``.pt2`` programs are read with
    ``torch.load(weights_only=True)`` forced for every tensor and the format's plain-pickle
    fallback refused (:func:`_no_pickle`). A file that is neither (a pickle from ``torch.save``)
    is refused with a one-line error.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path}: not a TorchScript archive or a torch.export program (.pt2); save the model with "
                          "torch.jit.save(torch.jit.trace(model, example), path) or torch.export.save")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if path.suffix == ".pt2" or any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
        return _load_pt2(path)
    if not any(n.endswith("constants.pkl") for n in names) or not any(n.endswith("code/") or "/code/" in n for n in names):
        raise ConfigError(f"{path}: a torch.save archive, not TorchScript: loading it would unpickle arbitrary objects; save the model with "
                          "torch.jit.save(torch.jit.trace(model, example), path)")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable TorchScript archive ({type(exc).__name__}: {first_line(exc)})") from None
    return Loaded(module.eval(), module, [a.name for a in module.forward.schema.arguments[1:]])


@contextlib.contextmanager
def _no_pickle():
    """torch.load reads tensors only (weights_only=True whatever the caller asks) and the .pt2
    reader's plain ``pickle.loads`` of opaque objects is refused."""
    import torch

    original = torch.load

    def tensors_only(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    class _Refuse:
        @staticmethod
        def loads(*_a, **_k):
            raise ConfigError("the program holds a pickled Python object; coreml-lstm does not unpickle model files")

    packages = []
    try:
        from torch.export.pt2_archive import _package

        packages.append((_package, "pickle", _package.pickle))
    except ImportError:  # pragma: no cover - another torch layout
        pass
    torch.load = tensors_only
    for module, attr, _ in packages:
        setattr(module, attr, _Refuse)
    try:
        yield
    finally:
        torch.load = original
        for module, attr, value in packages:
            setattr(module, attr, value)


def _load_pt2(path: Path) -> Loaded:
    import torch

    try:
        with _no_pickle(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable torch.export program ({type(exc).__name__}: {first_line(exc)})") from None
    names = list(program.graph_signature.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    ranges = {str(k): v for k, v in program.range_constraints.items()}
    inputs, dtypes, unbounded = {}, {}, {}
    examples = program.example_inputs[0] if program.example_inputs else None
    for k, name in enumerate(names):
        val = placeholders[name].meta.get("val") if name in placeholders else None
        if val is None:
            continue
        dims = []
        bounded = True
        for axis, d in enumerate(val.shape):
            if isinstance(d, int):
                dims.append(d)
                continue
            r = ranges.get(str(d))
            lo, hi = (getattr(r, "lower", None), getattr(r, "upper", None)) if r is not None else (None, None)
            try:  # an unbounded range (torch's int_oo) does not convert: the input needs --input
                dims.append(Dim(max(1, int(lo)), int(hi), symbol=str(d)))
            except (TypeError, ValueError, OverflowError, AttributeError, ConfigError):
                bounded = False
                unbounded[name] = axis
                break
        if not bounded:
            continue
        integer = not val.dtype.is_floating_point
        default = tuple(int(s) for s in examples[k].shape) if examples is not None and k < len(examples) else None
        inp = Input(name, tuple(dims), INT32 if integer else FLOAT32, default=default)
        if not integer and _torch_dtype_name(val.dtype):  # a float64 program takes float64 feeds
            dtypes[name], inp.torch_dtype = val.dtype, _torch_dtype_name(val.dtype)
        if integer:
            dtypes[name] = val.dtype
            inp.torch_dtype = _torch_dtype_name(val.dtype)
            if inp.torch_dtype == "bool":
                inp.value_range = (0, 1)
            elif examples is not None and k < len(examples) and examples[k].numel():
                inp.value_range = _integer_range(int(examples[k].min()), int(examples[k].max()))
        inputs[name] = inp
    module = program.module()
    loaded = Loaded(module, None, names, inputs, dtypes, unbounded)
    loaded.size_reads = _size_reads(module, inputs)
    return loaded


def _size_reads(module, inputs: dict) -> list[str]:
    """Where a ``torch.export`` module reads the size of a flexible input axis in forward
    (``aten.sym_size.int``, from ``x.shape[1]``): ``"x axis 1"`` each. Converting traces the
    module, and under the trace such a read gives a plain int, the example's size."""
    import torch

    sym_size = getattr(getattr(torch.ops.aten, "sym_size", None), "int", None)
    graph = getattr(module, "graph", None)
    if graph is None or sym_size is None:
        return []
    found = []
    for node in graph.nodes:
        if node.op == "call_function" and node.target is sym_size and len(node.args) == 2:
            source, axis = node.args
            name = getattr(source, "target", None) if getattr(source, "op", None) == "placeholder" else None
            inp = inputs.get(name)
            if inp is not None and isinstance(axis, int) and -len(inp.shape) <= axis < len(inp.shape) and isinstance(inp.shape[axis], Dim):
                found.append(f"{name} axis {axis % len(inp.shape)}")
    return list(dict.fromkeys(found))


_OPTION = re.compile(r"^([A-Za-z_][\w.]*):([^:]+)(?::([A-Za-z0-9]+))?(?::(-?[\d.eE+-]+)\.\.(-?[\d.eE+-]+))?$")


def parse_input_option(text: str) -> Input:
    """``NAME:SHAPE[:DTYPE[:LO..HI]]``, e.g. ``x:1..64,100,16``, ``ids:1,1..32:int32:0..4999``
    (LO..HI: the values random samples draw from). DTYPE ``bool``: an int32 input of 0/1 (Core
    ML has no bool inputs) that torch takes as bool and the program casts to bool; ``int64``,
    ``int16``, ``int8``, ``uint8``: an int32 input fed to torch in that dtype; ``float64``,
    ``float16``: a float32 input fed to torch in that dtype."""
    m = _OPTION.match(text.strip())
    if not m:
        raise ConfigError(f"--input {text!r}: expected NAME:SHAPE[:DTYPE[:LO..HI]], e.g. x:1..64,100,16 or ids:1,32:int32:0..999")
    name, shape, dtype, lo, hi = m.groups()
    try:
        dims, _ = parse_shape(shape)
        inp = Input(name, dims, parse_dtype(dtype) if dtype else FLOAT32)
    except ConfigError as exc:
        raise ConfigError(f"--input {text!r}: {exc}") from None
    if dtype and dtype.lower() == "bool":
        inp.torch_dtype, inp.value_range = "bool", (0, 1)
    elif dtype and dtype.lower() in TORCH_INTEGER_DTYPES + TORCH_FLOAT_DTYPES and dtype.lower() != "int32":
        inp.torch_dtype = dtype.lower()  # ids:1,32:int64: an int32 input of the package, fed to torch as int64
    if lo is not None:
        low, high = float(lo), float(hi)
        if low > high:
            raise ConfigError(f"--input {text!r}: value range {lo}..{hi} has its lower bound above the upper bound")
        if inp.dtype == INT32 and not (-(2**31) <= low and high < 2**31):
            raise ConfigError(f"--input {text!r}: value range {lo}..{hi} goes beyond int32, the package's input type")
        inp.value_range = (math.ceil(low), math.floor(high)) if inp.dtype == INT32 else (low, high)  # inward, as value_ranges=
        if inp.value_range[0] > inp.value_range[1]:
            raise ConfigError(f"--input {text!r}: value range {lo}..{hi} holds no integer")
    return inp


# -- the public functions ---------------------------------------------------------------------------


def convert(module, example_inputs, path, *, inputs=None, outputs=None, precision: str = "fp32", target: str = "iOS16",
            compress: str | None = None, states=None, metadata: dict | None = None, samples: int = 8, fp32_modules=(),
            atol: float | None = None, rtol: float | None = None, value_ranges=None):
    """Convert a torch module to a Core ML package, save it atomically, and verify it.

    The module is traced (TorchScript; ``torch.export`` does not take ``nn.LSTM``) on
    ``example_inputs``, converted with explicit dtypes on every input and output (fp32; int32 for
    integer inputs), checked for layers Core ML cannot take first, saved, then run from disk
    by the executor against the module on random inputs inside every flexible range.

    Args:
        module: the ``nn.Module``.
        example_inputs: a tensor, a tuple of tensors or ``{name: tensor}``; names default to the
            ``forward`` argument names. A dict keyed by ``forward``'s argument names binds each
            tensor to its argument in any order; other keys name the arguments in order.
        path: destination ending in ``.mlpackage``.
        inputs: flexible shapes: ``{name: shape}`` with sizes and ranges (``"1..64"``,
            ``ct.RangeDim``), ``ct.EnumeratedShapes`` or a list of shapes; or ``ct.TensorType`` list.
        outputs: output names (default ``output`` / ``output_0``, ...).
        precision: "fp32" or "fp16" compute (inputs and outputs stay fp32), or ``ct.precision.FLOAT32`` / ``FLOAT16``.
        target: minimum deployment target (iOS15 ... iOS18, macOS12 ... macOS15), or ``ct.target.iOS17`` and the like.
        compress: None or int8, palettize6, palettize4, prune50 (weights only).
        states: buffer names kept as Core ML states (iOS18+; the module updates them by slice
            assignment, ``self.h[:] = h``).
        metadata: author, license, description, version, and any other key as the package's
            user-defined metadata.
        samples: how many random samples the check draws.
        fp32_modules: with precision fp16, submodules (dotted names, as ``named_modules`` gives
            them) whose ops stay fp32: a normalisation of raw inputs beyond float16's 65504, say.
        value_ranges: ``{name: (lo, hi)}``: the values the check's random samples of an input
            draw from (token ids below the vocabulary size, say); default: the example's range,
            0..9 for an integer example that is constant, N(mean, std) of a float one.
        atol, rtol: the check's tolerances (default: :data:`coreml_lstm.verify.DEFAULT_TOLERANCES`,
            the fp16 bar for fp16, compressed weights or states).

    Returns:
        ``(path, report)``: the package path and the :class:`~coreml_lstm.verify.Report`.

    Raises:
        ConfigError: a bad option (an unknown input name, a range with lo > hi, ...).
        ExportError: a layer or op Core ML cannot take, or a failed save (nothing is left at ``path``).
    """
    from .export import ExportConfig, export

    module = uncompiled(module)
    metadata = dict(metadata or {})
    standard = {k: str(metadata.pop(k)) for k in ("author", "license", "description", "version") if k in metadata}
    config = ExportConfig(precision=precision, target=target, compress=compress, **standard)
    from .export import OPSET_TARGET, check_destination

    check_destination(path)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples: expected a whole number >= 1, got {samples!r}")
    if states and OPSET_TARGET.get(config.target, config.target) != "iOS18":
        raise ConfigError(f"states: Core ML states need deployment target iOS18 or macOS15; got {config.target}")
    with training_kept(module):
        adapter = ModuleAdapter.from_module(module, example_inputs, inputs=inputs, outputs=outputs, states=states, value_ranges=value_ranges)
        adapter.extra_metadata = metadata
        adapter.fp32_scopes = fp32_submodules(module, fp32_modules, config.precision)
        path = export(adapter, path, config)
        try:
            return path, verify(module, path, samples=samples, adapter=adapter, atol=atol, rtol=rtol)
        except ConfigError as exc:  # the module fails on a sample it declares it takes
            raise ConfigError(f"{exc} (the package {path} is written; it was not checked)") from None


def uncompiled(module):
    """The module ``torch.compile`` wrapped, for a compiled one (an ``OptimizedModule``, which
    TorchScript cannot trace through dynamo): the same weights, run as written, which is what
    the compiled module computes; any other module as it is."""
    if type(module).__name__ == "OptimizedModule" and getattr(module, "_orig_mod", None) is not None:
        return module._orig_mod
    return module


def fp32_submodules(module, names, precision: str) -> tuple[str, ...]:
    """``names`` checked against the module's submodules (for an fp16 conversion only)."""
    names = (names,) if isinstance(names, str) else tuple(names or ())
    if not names:
        return ()
    if precision != "fp16":
        raise ConfigError(f"fp32 modules: only with precision fp16 (got {precision}); an fp32 program computes everything in fp32")
    known = [n for n, _ in module.named_modules() if n]
    for name in names:
        if name not in known:
            listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "") if known else "none"
            raise ConfigError(f"fp32 modules: {name!r} is not a submodule of {type(module).__name__} (its submodules: {listed})")
    return names


def verify(module, package, inputs=None, *, samples: int = 8, shapes=None, mode: str | None = None, atol: float | None = None,
           rtol: float | None = None, adapter: ModuleAdapter | None = None, backends=("executor", "coreml")):
    """Run a torch module and a saved package on the same inputs and compare every output.

    Args:
        module: the torch module the package was converted from.
        package: the ``.mlpackage``.
        inputs: feeds to compare on: ``{name: array}`` (one call), a list of them, or None for
            ``samples`` random draws inside every flexible range: the smallest sizes, the
            largest, and sizes in between.
        samples: how many random samples to draw.
        shapes: ``[{name: shape}, ...]``: draw one random sample at each of these shapes instead.
        mode: executor numerics, "fp32" or "fp16" (default: the package's precision).
        atol, rtol: tolerances (default per precision: :data:`coreml_lstm.verify.DEFAULT_TOLERANCES`).

    Returns:
        The :class:`~coreml_lstm.verify.Report`: per output and input size, max abs/rel error,
        tolerance, passed/failed/skipped, backend and mode.
    """
    from .verify import DEFAULT_TOLERANCES, Tolerance, verify_package

    module = uncompiled(module)
    if adapter is None:
        adapter = ModuleAdapter.for_package(module, package)
    if mode is not None and mode not in DEFAULT_TOLERANCES:
        raise ConfigError(f"mode: {mode!r} is not one of fp32, fp16")
    chosen = _samples(adapter, inputs, samples, shapes)
    tolerances = None
    if atol is not None or rtol is not None:
        tolerances = {m: Tolerance(t.atol if atol is None else atol, t.rtol if rtol is None else rtol) for m, t in DEFAULT_TOLERANCES.items()}
    with training_kept(module):
        report = verify_package(adapter, package, chosen, modes=(mode,) if mode else None, tolerances=tolerances, backends=backends)
    if inputs is None:
        report.drawn = adapter.drawn()
    return report


def _samples(adapter: Adapter, inputs, n: int, shapes) -> list[Sample]:
    from .adapter import shape_label

    if inputs is not None:
        feeds = [inputs] if isinstance(inputs, dict) else list(inputs)
        if not feeds:
            raise ConfigError("verify: no inputs to compare on")
        out = []
        for k, f in enumerate(feeds):
            if isinstance(f, Sample):
                out.append(f)
                continue
            if not isinstance(f, dict):
                raise ConfigError(f"inputs: sample {k}: expected {{name: array}}, got {type(f).__name__}")
            arrays = {name: _as_array(name, v) for name, v in f.items()}
            known = {i.name for i in adapter.inputs}
            unknown = [name for name in arrays if name not in known]
            if unknown:
                raise ConfigError(f"inputs: {unknown[0]!r} is not an input of the package; its inputs are {', '.join(sorted(known))}")
            missing = [i.name for i in adapter.inputs if i.name not in arrays]
            if missing:
                where = f" in sample {k}" if len(feeds) > 1 else ""
                raise ConfigError(f"inputs: no value for input {missing[0]!r}{where}; the package's inputs are {', '.join(sorted(known))}")
            for i in adapter.inputs:
                if i.dtype.kind in "iu" and arrays[i.name].dtype.kind == "f":
                    what = "a bool mask (0 or 1, or bools)" if i.torch_dtype == "bool" else f"integers ({i.dtype})"
                    raise ConfigError(f"inputs: {i.name!r} takes {what}; the value is {arrays[i.name].dtype}: give integer values "
                                      "(they are not rounded)")
            out.append(Sample.one(arrays, shape_label(adapter.inputs, arrays)))
        return out
    if shapes is not None:
        rng = np.random.default_rng(0)
        out = []
        for k, given in enumerate(shapes):
            feeds = {}
            for i in adapter.inputs:
                shape = tuple(int(d) for d in given.get(i.name, i.default_shape()))
                if not i.accepts(shape):
                    raise ConfigError(f"shapes: sample {k}: {i.name!r} shape {shape} is not one of {i.shape_text()}")
                feeds[i.name] = i.random(shape, rng)
            out.append(Sample.one(feeds, shape_label(adapter.inputs, feeds)))
        return out
    if n < 1:
        raise ConfigError(f"samples: must be >= 1, got {n}")
    return adapter.samples(n)


def _as_array(name, value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    return value.astype(np.float32) if value.dtype == np.float64 else value
