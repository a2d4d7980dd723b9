"""One small interface between a model kind and everything that exports, checks or wraps it.

Export, verify, golden vectors, Swift, compare and diagnose take an :class:`Adapter` and never
ask which kind of model it is. An adapter says:

    module()          the torch module that is traced and is the reference (inputs in order,
                      outputs in order: a tensor or a tuple of tensors)
    inputs            named inputs: shape (fixed sizes, ranges, or enumerated shapes), dtype
    outputs           named outputs
    states            Core ML states (iOS18+), if the module keeps its state in buffers
    carry             explicit state: {output name: the input it feeds on the next call}
    classes           labels, when the package is a Core ML classifier
    samples(n)        inputs to compare on: real validation data for the toolkit's own kinds,
                      random values inside every flexible range otherwise
    metadata(path)    the package's user-defined metadata
    swift(...)        the Swift wrapper for its packages

Everything else has a default. The kinds live beside the code they adapt:
:mod:`coreml_lstm.forecaster_adapter`, :mod:`coreml_lstm.classify.adapter` and
:mod:`coreml_lstm.user_model` (any torch module); :func:`load` and :func:`for_package` pick one
(the only place that asks which kind a model is).

This module imports numpy only: the shape and sampling helpers serve the executor-side
commands (``diagnose``) too. Torch is imported where a method needs it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError

FLOAT32, INT32 = np.dtype(np.float32), np.dtype(np.int32)
STREAM = 3  # calls per sample for a model with state: the state must carry from call to call
# The dtypes torch may take an integer input in (the package takes int32; a bool input holds 0/1).
TORCH_INTEGER_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64")
# The dtypes other than float32 torch may take a float input in (the package takes float32).
TORCH_FLOAT_DTYPES = ("float64", "float16", "bfloat16")
# An input's dtype as written (--input ids:1,32:int64): the package's dtype; a torch dtype other
# than int32 and float32 is what the module is fed (bfloat16 is left out: coremltools refuses it).
DTYPES = {"float32": FLOAT32, "fp32": FLOAT32, "float": FLOAT32, "int32": INT32, "int": INT32,
          **{name: INT32 for name in TORCH_INTEGER_DTYPES}, "float64": FLOAT32, "float16": FLOAT32}


# -- shapes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dim:
    """A flexible dimension: any size from ``lo`` to ``hi``. Dims with the same ``symbol`` (in
    one input or across inputs) always have the same size."""

    lo: int
    hi: int
    default: int | None = None
    symbol: str | None = None

    def __post_init__(self):
        if not (isinstance(self.lo, int) and isinstance(self.hi, int)) or self.lo < 1:
            raise ConfigError(f"range {self.lo}..{self.hi}: bounds must be integers >= 1")
        if self.hi < 0:  # ct.RangeDim() and ct.RangeDim(1, -1): coremltools' "unbounded"
            raise ConfigError(f"range {self.lo}..{self.hi}: no upper bound; give the largest size the model takes "
                              f"(ct.RangeDim({self.lo}, 512), or \"{self.lo}..512\"): the checks run at both ends of a range")
        if self.lo > self.hi:
            raise ConfigError(f"range {self.lo}..{self.hi}: the lower bound is above the upper bound")
        if self.default is not None and not self.lo <= self.default <= self.hi:
            raise ConfigError(f"range {self.lo}..{self.hi}: default {self.default} is outside it")

    def __str__(self) -> str:
        return (f"{self.symbol}=" if self.symbol and not self.symbol.startswith("_") else "") + f"{self.lo}..{self.hi}"


_DIM = re.compile(r"^(?:([A-Za-z_]\w*)=)?(\d+)\.\.(\d+)$")


def parse_dim(text) -> int | Dim:
    """One dimension: ``16``, ``"16"``, ``"1..64"`` or ``"T=1..64"`` (a named range, shared by name)."""
    if isinstance(text, (bool, np.bool_)):
        raise ConfigError(f"dimension {text!r}: expected a size or a range lo..hi")
    if isinstance(text, (int, np.integer)):
        if text < 1:
            raise ConfigError(f"dimension {text}: sizes must be >= 1")
        return int(text)
    if isinstance(text, Dim):
        return text
    if _is_range_dim(text):
        return Dim(int(text.lower_bound), int(text.upper_bound), _default(text), str(text.symbol))
    if not isinstance(text, str):
        raise ConfigError(f"dimension {text!r}: expected a size or a range lo..hi")
    s = text.strip()
    if s.isdigit():
        return parse_dim(int(s))
    m = _DIM.match(s)
    if not m:
        raise ConfigError(f"dimension {text!r}: expected a size (16) or a range (1..64)")
    return Dim(int(m.group(2)), int(m.group(3)), symbol=m.group(1))


def _coreml_symbol(name: str):
    """coremltools' shape symbol named ``name``: the one already made (by an earlier conversion,
    another input, or the user's own ``ct.RangeDim``), else a new one. coremltools refuses to make
    a second symbol of a name, so shared and repeated ranges must reuse it."""
    from coremltools.converters.mil.mil.program import Symbol, get_existing_symbol

    try:
        return get_existing_symbol(name)
    except ValueError:
        try:
            return Symbol(name)
        except ValueError as e:  # a name coremltools does not take (it starts with a digit, say)
            raise ConfigError(f"range symbol {name!r}: {e}") from None


def _is_range_dim(value) -> bool:
    return type(value).__name__ == "RangeDim" and hasattr(value, "lower_bound")


def _default(range_dim) -> int | None:
    d = getattr(range_dim, "default", None)
    return int(d) if d is not None else None


def parse_shape(spec) -> tuple[tuple, list[tuple] | None]:
    """A shape as coremltools users write it -> (dims, enumerated shapes or None).

    Accepted: a tuple/list of sizes, ranges (``"1..64"``, ``ct.RangeDim``) or both; a string
    ``"1..64,100,16"``; ``ct.Shape``; ``ct.EnumeratedShapes``; a list of two or more shapes of
    fixed sizes (enumerated shapes).
    """
    kind = type(spec).__name__
    if kind == "EnumeratedShapes":
        shapes = [tuple(int(d) for d in s.shape) for s in spec.shapes]
        return _enumerated(shapes)
    if kind == "Shape" and hasattr(spec, "shape"):
        spec = tuple(spec.shape)
    if isinstance(spec, str):
        parts = [p for p in spec.replace("(", "").replace(")", "").split(",") if p.strip()]
        if not parts:
            raise ConfigError(f"shape {spec!r}: expected sizes or ranges separated by commas, e.g. 1..64,100,16")
        return tuple(parse_dim(p) for p in parts), None
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(s, (list, tuple)) or type(s).__name__ == "Shape" for s in spec):
        shapes = []
        for s in spec:
            dims, _ = parse_shape(s)
            if any(isinstance(d, Dim) for d in dims):
                raise ConfigError(f"enumerated shapes: {s!r} has a range; each enumerated shape lists fixed sizes")
            shapes.append(tuple(dims))
        return _enumerated(shapes)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError("shape (): an input needs at least one dimension")
        return tuple(parse_dim(d) for d in spec), None
    raise ConfigError(f"shape {spec!r}: expected a tuple of sizes and ranges, a string such as '1..64,100,16', ct.Shape or ct.EnumeratedShapes")


def _enumerated(shapes: list[tuple]) -> tuple[tuple, list[tuple]]:
    if len(shapes) < 2:
        raise ConfigError("enumerated shapes: give two or more shapes (one shape is a fixed shape)")
    if len({len(s) for s in shapes}) != 1:
        raise ConfigError(f"enumerated shapes {shapes}: every shape needs the same number of dimensions")
    first = shapes[0]
    dims = tuple(d if all(s[i] == d for s in shapes) else Dim(min(s[i] for s in shapes), max(s[i] for s in shapes), d) for i, d in enumerate(first))
    return dims, [tuple(s) for s in shapes]


def cast_to(declared: dict, feeds: dict) -> dict:
    """``feeds`` with each array cast to the ``declared`` dtype (by name) of the same kind: numbers
    read from JSON or saved by numpy arrive as float64/int64. A float feed for an integer input
    is left alone, to be refused rather than truncated into token ids, and so is an integer feed
    outside the declared type's range (2**32 + 3 would wrap to 3: the executor refuses it)."""
    out = {}
    for name, value in feeds.items():
        value = np.asarray(value)
        want = np.dtype(declared[name]) if name in declared else None
        if want is not None and value.dtype != want:
            fits = want.kind not in "iu" or value.size == 0 or (np.iinfo(want).min <= value.min() and value.max() <= np.iinfo(want).max)
            if (want.kind == "f" and value.dtype.kind in "fiub") or (want.kind in "iu" and value.dtype.kind in "iub" and fits):
                value = value.astype(want)
        out[name] = value
    return out


def parse_dtype(text) -> np.dtype:
    if isinstance(text, str):
        if text.lower() not in DTYPES:
            raise ConfigError(f"dtype {text!r}: expected one of float32, int32, bool, int64, int16, int8, uint8, float64, float16")
        return DTYPES[text.lower()]
    dtype = np.dtype(text)
    if dtype.kind == "f":
        return FLOAT32  # Core ML inputs stay fp32 whatever the compute precision
    if dtype.kind in "iub":
        return INT32
    raise ConfigError(f"dtype {dtype.name}: inputs are float32 or int32")


# -- inputs, outputs, states, samples ----------------------------------------------------------


@dataclass
class Input:
    """A named model input.

    ``shape`` holds a size (int) or a :class:`Dim` per axis; ``enumerated`` lists the exact
    shapes allowed instead of ranges. Random samples draw float values from a normal
    distribution with ``stats`` (mean, std; default 0, 1) or uniformly from ``value_range``, and
    integers uniformly from ``value_range`` (inclusive; default 0..9, 0..1 for a bool input).
    ``torch_dtype`` is the dtype the torch module takes an integer input in ("bool", "int64",
    ...; one of :data:`TORCH_INTEGER_DTYPES`), where it is known: Core ML has int32 inputs only;
    for a float input, a dtype other than float32 (a ``.double()`` module: "float64"; one of
    :data:`TORCH_FLOAT_DTYPES`), the package's input being float32 whatever the module takes.
    """

    name: str
    shape: tuple
    dtype: np.dtype = FLOAT32
    enumerated: list[tuple] | None = None
    description: str = ""
    default: tuple | None = None  # the shape of the example the module is traced on
    value_range: tuple | None = None
    stats: tuple | None = None
    torch_dtype: str | None = None

    @property
    def flexible(self) -> bool:
        return bool(self.enumerated) or any(isinstance(d, Dim) for d in self.shape)

    def shape_text(self) -> str:
        if self.enumerated:
            return " or ".join(str(tuple(s)) for s in self.enumerated)
        return "(" + ", ".join(str(d) for d in self.shape) + ")"

    def default_shape(self) -> tuple:
        if self.default is not None:
            return tuple(self.default)
        if self.enumerated:
            return tuple(self.enumerated[0])
        return tuple(d if isinstance(d, int) else (d.default or d.lo) for d in self.shape)

    def accepts(self, shape) -> bool:
        shape = tuple(int(s) for s in shape)
        if self.enumerated:
            return shape in [tuple(s) for s in self.enumerated]
        return len(shape) == len(self.shape) and all(
            s == d if isinstance(d, int) else d.lo <= s <= d.hi for s, d in zip(shape, self.shape))

    def to_coreml(self):
        """The ``ct.TensorType`` of this input (fp32 or int32, never the converter's fp16 default)."""
        from ._coremltools import coremltools

        ct = coremltools()
        default = self.default_shape()
        if self.enumerated:
            shape = ct.EnumeratedShapes(shapes=[list(s) for s in self.enumerated], default=list(default))
        elif self.flexible:
            dims = []
            for d, size in zip(self.shape, default):
                if isinstance(d, int):
                    dims.append(d)
                else:
                    dim = ct.RangeDim(lower_bound=d.lo, upper_bound=d.hi, default=int(size))
                    if d.symbol:  # one coremltools symbol per name: its registry is global to the process
                        dim.symbol = _coreml_symbol(d.symbol)
                    dims.append(dim)
            shape = ct.Shape(dims)
        else:
            shape = tuple(self.shape)
        return ct.TensorType(name=self.name, shape=shape, dtype=np.int32 if self.dtype == INT32 else np.float32)

    def example(self, shape: tuple | None = None) -> np.ndarray:
        """A deterministic value of ``shape`` (default: the default shape): zeros, or the value
        range's bound nearest zero when zero lies outside it (lengths 1..8: ones)."""
        shape = self.default_shape() if shape is None else shape
        fill = 0
        if self.value_range is not None:
            lo, hi = self.value_range
            fill = 0 if lo <= 0 <= hi else lo if lo > 0 else hi
        return np.full(shape, fill, np.int32 if self.dtype == INT32 else np.float32)

    def random(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        if self.dtype == INT32:
            lo, hi = self.value_range or ((0, 1) if self.torch_dtype == "bool" else (0, 9))
            return rng.integers(int(lo), int(hi) + 1, size=shape).astype(np.int32)
        if self.value_range is not None:
            lo, hi = self.value_range
            return rng.uniform(lo, hi, size=shape).astype(np.float32)
        mean, std = self.stats or (0.0, 1.0)
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    def drawn_text(self) -> str:
        """How :meth:`random` draws this input's values, for a report: a reader sees what the
        check covered (values outside it were not compared)."""
        if self.dtype == INT32:
            lo, hi = self.value_range or ((0, 1) if self.torch_dtype == "bool" else (0, 9))
            return f"{self.name} integers {int(lo)}..{int(hi)}"
        if self.value_range is not None:
            return f"{self.name} uniform in [{self.value_range[0]:.4g}, {self.value_range[1]:.4g}]"
        mean, std = self.stats or (0.0, 1.0)
        return f"{self.name} normal(mean {mean:.4g}, std {std:.4g})"

    def sampling(self) -> dict:
        """What random samples of this input need beyond its declared shape, as JSON: each axis's
        shared-range symbol, the value range, the normal statistics, the torch dtype of an integer
        input (a package records it: a later check feeds a bool mask as bool, not int64)."""
        return {"name": self.name, "symbols": [d.symbol if isinstance(d, Dim) else None for d in self.shape],
                "value_range": list(self.value_range) if self.value_range is not None else None,
                "stats": list(self.stats) if self.stats is not None else None, "torch_dtype": self.torch_dtype}

    def with_sampling(self, record) -> "Input":
        """This input with a :meth:`sampling` record applied; a record that does not fit (from a
        package anyone may have written) is ignored, leaving the defaults."""
        if not isinstance(record, dict):
            return self
        symbols = record.get("symbols")
        if isinstance(symbols, list) and len(symbols) == len(self.shape) and not self.enumerated:
            if all(s is None or (isinstance(s, str) and 0 < len(s) <= 64) for s in symbols):
                self.shape = tuple(Dim(d.lo, d.hi, d.default, s) if isinstance(d, Dim) and s else d for d, s in zip(self.shape, symbols))

        def pair(key):
            value = record.get(key)
            if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                lo, hi = float(value[0]), float(value[1])
                if np.isfinite(lo) and np.isfinite(hi):
                    return value[0], value[1]
            return None

        value_range, stats = pair("value_range"), pair("stats")
        if value_range is not None and value_range[0] <= value_range[1]:
            self.value_range = value_range
        if stats is not None and stats[1] > 0:
            self.stats = stats
        torch_dtype = record.get("torch_dtype")
        if isinstance(torch_dtype, str) and torch_dtype in (TORCH_INTEGER_DTYPES if self.dtype == INT32 else TORCH_FLOAT_DTYPES):
            self.torch_dtype = torch_dtype
        return self

    @classmethod
    def from_spec(cls, spec) -> "Input":
        """The input a saved package declares (an executor :class:`TensorSpec`)."""
        dtype = INT32 if np.dtype(spec.dtype).kind in "iu" else FLOAT32
        if spec.enumerated_shapes:
            dims, enumerated = _enumerated([tuple(s) for s in spec.enumerated_shapes])
            return cls(spec.name, dims, dtype, enumerated, spec.description)
        if spec.shape_range:
            dims = tuple(int(lo) if lo == hi else Dim(int(lo), int(hi) if hi > 0 else int(lo)) for lo, hi in spec.shape_range)
            return cls(spec.name, dims, dtype, None, spec.description)
        return cls(spec.name, tuple(int(s) for s in spec.shape), dtype, None, spec.description)


def package_inputs(program, package=None) -> list[Input]:
    """The inputs a loaded package declares, with the sampling the conversion recorded in its
    metadata (:meth:`Input.sampling`: shared ranges, value ranges, statistics), where it did."""
    from .metadata import read_metadata

    recorded = read_metadata(program.metadata.get("user", {}), package).get("inputs")
    recorded = {r.get("name"): r for r in recorded if isinstance(r, dict)} if isinstance(recorded, list) else {}
    return [Input.from_spec(t).with_sampling(recorded.get(t.name)) for t in program.inputs]


@dataclass
class Output:
    name: str
    description: str = ""
    dtype: np.dtype = FLOAT32


@dataclass
class State:
    """A Core ML state (iOS18+): a registered buffer of the module that every call updates."""

    name: str
    shape: tuple
    description: str = ""


@dataclass
class Sample:
    """One check's inputs: the calls, run in order on one fresh state (explicit state carried
    from each call's outputs to the next call's inputs); the last call's outputs are compared.

    ``label`` is the group the sample is reported in ("length 12", "x (1, 64, 16)").
    """

    calls: list[dict]
    label: str = ""

    @classmethod
    def one(cls, feeds: dict, label: str = "") -> "Sample":
        return cls([dict(feeds)], label)


def shape_label(inputs: list[Input], feeds: dict) -> str:
    """The sizes of the flexible inputs in a feed: ``"x (1, 37, 16)"``; "" when nothing is flexible."""
    parts = [f"{i.name} {tuple(int(s) for s in np.shape(feeds[i.name]))}" for i in inputs if i.flexible and i.name in feeds]
    return ", ".join(parts)


def sample_shapes(inputs: list[Input], n: int, seed: int = 0) -> list[dict[str, tuple]]:
    """``n`` assignments of a shape to every input: the smallest sizes, the largest, then sizes in
    between (random, inclusive). Dims sharing a symbol get one size; enumerated inputs go through
    their shapes (first, last, then the others). However small ``n``, both ends of every range and
    every enumerated shape are drawn (a package that does not run at one of them passed a check
    of one sample at the default size)."""
    rng = np.random.default_rng(seed)
    keys = {}
    for inp in inputs:
        if inp.enumerated:
            continue
        for axis, d in enumerate(inp.shape):
            if isinstance(d, Dim):
                keys.setdefault(d.symbol or (inp.name, axis), d)
    n = max(n, 2 if keys else 1, *(len(i.enumerated) for i in inputs if i.enumerated))
    out = []
    for k in range(n):
        sizes = {}
        for key, d in keys.items():
            if k == 0:
                sizes[key] = d.lo
            elif k == 1:
                sizes[key] = d.hi
            else:
                sizes[key] = int(rng.integers(d.lo, d.hi + 1))
        shapes = {}
        for inp in inputs:
            if inp.enumerated:
                order = [inp.enumerated[0], inp.enumerated[-1], *inp.enumerated[1:-1]]
                shapes[inp.name] = tuple(order[k % len(order)])
            else:
                shapes[inp.name] = tuple(d if isinstance(d, int) else sizes[d.symbol or (inp.name, axis)] for axis, d in enumerate(inp.shape))
        out.append(shapes)
    return out


def random_samples(inputs: list[Input], n: int = 8, seed: int = 0) -> list[Sample]:
    """``n`` one-call samples of random values at the sizes of :func:`sample_shapes`."""
    from .executor import limits

    rng = np.random.default_rng(seed)
    samples = []
    for shapes in sample_shapes(inputs, n, seed):
        for name, shape in shapes.items():  # sizes a package declares may be anything: bound them before drawing
            try:
                limits.check_shape(shape, 4, f"input {name!r}")
            except ValueError as exc:
                raise ConfigError(f"{exc}: a size the model or package declares; give inputs of your own (--input {name}:SHAPE, or --inputs)") from None
        feeds = {i.name: i.random(shapes[i.name], rng) for i in inputs}
        samples.append(Sample.one(feeds, shape_label(inputs, feeds)))
    return samples


def group(samples: list[Sample]) -> dict[str, list[int]]:
    """Sample indices by label, in first-seen order."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        out.setdefault(s.label, []).append(i)
    return out


@dataclass
class Evaluation:
    """Labelled data for ``compare``: the samples, the output scored, and how (higher or lower)."""

    samples: list[Sample]
    output: str
    metric: str | None = None  # e.g. "RMSE", "accuracy"; None: errors only
    score: object = None  # (stacked output values) -> float


# -- the interface -----------------------------------------------------------------------------


class Adapter:
    """What export, verify, golden vectors, Swift, compare and diagnose need to know of a model.

    Subclasses set ``inputs``, ``outputs`` (and ``states``, ``carry``, ``classes`` when they
    apply) and implement :meth:`module`; the other methods have defaults that fit any module.
    """

    kind = "module"  # recorded as the package's "task" metadata
    inputs: list[Input]
    outputs: list[Output]
    states: list[State] = []
    carry: dict[str, str] = {}
    classes: list | None = None
    modes: tuple | None = None  # executor numerics verify runs by default (None: the program's own)
    # The torch module itself computes in fp16 (a .half() module): its outputs are a reference to
    # fp16's bar only, whatever the package computes in.
    fp16_reference: bool = False
    # Entries of metadata() that readers of the package act on (predict's columns and window,
    # the Swift wrapper's names): verify fails a package whose entry says otherwise.
    checked_metadata: tuple[str, ...] = ()
    # Names of submodules whose ops an fp16 export keeps in fp32 (they compute on raw values).
    fp32_scopes: tuple[str, ...] = ()
    description = ""
    extra_metadata: dict = {}  # user-defined metadata written as given (not under the toolkit's prefix)

    def module(self):  # pragma: no cover - every adapter implements it
        """The torch module: takes the inputs in order, returns the outputs in order."""
        raise NotImplementedError

    def traced(self):
        """A module already in TorchScript (a loaded archive) is converted as it is; None: trace :meth:`module`."""
        return None

    def examples(self) -> tuple:
        """Example tensors for tracing, one per input (default: :meth:`Input.example` of each)."""
        import torch

        return tuple(torch.as_tensor(i.example()) for i in self.inputs)

    def samples(self, n: int = 8, seed: int = 0) -> list[Sample]:
        """Inputs to compare on (default: random values inside every flexible range; a model
        with state gets streams of :data:`STREAM` calls, each stream on a fresh state)."""
        if not (self.states or self.carry):
            return random_samples(self.inputs, n, seed)
        calls = random_samples(self.inputs, n * STREAM, seed)
        streams = [calls[k : k + STREAM] for k in range(0, len(calls), STREAM)]

        def label(part):
            shapes = [c.label for c in part if c.label]
            return f"{len(part)} calls" + (": " + "; ".join(shapes) if shapes else "")

        return [Sample([c.calls[0] for c in part], label(part)) for part in streams]

    def drawn(self) -> str:
        """What :meth:`samples` feeds, in one line for a report."""
        return "random values: " + "; ".join(i.drawn_text() for i in self.inputs)

    def sample_of(self, feeds: dict) -> Sample:
        """A one-call sample of given feeds (cast to the declared dtypes), labelled with the sizes
        of the flexible inputs; every input needs a value (the first call carries no state)."""
        missing = [i.name for i in self.inputs if i.name not in feeds]
        if missing:
            raise ConfigError(f"no value for input {missing[0]!r}; the package's inputs are {', '.join(sorted(i.name for i in self.inputs))}")
        feeds = cast_to({i.name: i.dtype for i in self.inputs}, feeds)
        for i in self.inputs:
            if i.dtype.kind in "iu" and np.asarray(feeds[i.name]).dtype.kind == "f":
                what = "a bool mask (0 or 1, or bools)" if i.torch_dtype == "bool" else f"integers ({i.dtype})"
                raise ConfigError(f"input {i.name!r} takes {what}; the feed is {np.asarray(feeds[i.name]).dtype}: give integer "
                                  "values (they are not rounded)")
        return Sample.one(feeds, shape_label(self.inputs, feeds))

    def samples_from_table(self, table, limit: int = 64) -> list[Sample]:
        """Samples from a table (``verify --csv``); only the toolkit's own kinds read tables."""
        raise ConfigError("--csv: only the toolkit's own checkpoints read tables; give the inputs as --inputs FEEDS.npz")

    def run_torch(self, sample: Sample) -> list[tuple[dict, dict]]:
        """Torch on a sample's calls: (the feeds used, the outputs by name) per call.

        Explicit state is carried from torch's own outputs; the buffers that are Core ML states
        start from zero, as ``MLModel.makeState()`` allocates them (whatever an earlier forward
        left in them), and every buffer is restored after the sample.
        """
        import torch

        module = eval_mode(self.module())
        saved = {k: v.detach().clone() for k, v in module.named_buffers()}
        names = [o.name for o in self.outputs]
        records, carried = [], {}
        try:
            with torch.no_grad():
                state_names = {s.name for s in self.states}
                for k, v in module.named_buffers():
                    if k in state_names:
                        v.zero_()
                for call in sample.calls:
                    feeds = {**call, **carried}
                    args = [self.torch_input(i.name, feeds[i.name]) for i in self.inputs]
                    out = module(*args)
                    out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
                    if len(out) != len(names):
                        raise ConfigError(f"the module returns {len(out)} outputs but {len(names)} are named ({', '.join(names)}): "
                                          f"name every output, in the order the module returns them (--output NAME for each)")
                    # Core ML has no rank-0 arrays: a scalar output is a (1,) MLMultiArray.
                    result = {n: np.atleast_1d(o.detach().numpy()) for n, o in zip(names, out)}
                    records.append((feeds, result))
                    carried = {inp: result[o] for o, inp in self.carry.items()}
        finally:
            buffers = dict(module.named_buffers())
            with torch.no_grad():
                for k, v in saved.items():
                    buffers[k].copy_(v)
        return records

    def torch_input(self, name: str, value):
        """A feed as the torch module takes it."""
        return _tensor(value)

    def output_units(self) -> dict[str, np.ndarray]:
        """{output name: its natural scale}, a number or an array broadcasting to the output:
        verify's absolute tolerance is in these units (an output in raw units of a series whose
        spread is 400 is held to 0.05 x 400 in fp16, as one of spread 1 to 0.05). Default: 1."""
        return {}

    def sample_units(self, sample: Sample) -> dict[str, np.ndarray]:
        """{output name: its scale in this sample}, where it differs from sample to sample (a
        forecaster scaling each window by its own spread), overriding :meth:`output_units`."""
        return {}

    def reference(self, sample: Sample) -> dict:
        """Torch's outputs for the sample's last call, by name."""
        return self.run_torch(sample)[-1][1]

    def metadata(self, path: Path | None = None) -> dict:
        """The package's user-defined metadata (JSON values); ``task`` names the kind."""
        return {"task": self.kind}

    def descriptions(self) -> dict[str, str]:
        """Feature descriptions for the package: {input, output or state name: text}."""
        return {t.name: t.description for t in [*self.inputs, *self.outputs, *self.states] if t.description}

    def write_companions(self, path: Path) -> None:
        """Files that go beside the package (a text classifier's vocabulary), written before the
        package itself: an interrupted export never leaves a package without them."""

    def golden_samples(self, calls: int) -> list[Sample]:
        """The samples golden vectors are made of (an app's test bundle carries them): :meth:`samples`."""
        return self.samples(calls)

    def golden_extras(self) -> dict:
        """Entries added to the golden-vector file (class names, tokenizer probes)."""
        return {}

    def evaluation(self) -> Evaluation:
        """What ``compare`` scores; by default the errors of the first output on :meth:`samples`."""
        return Evaluation(self.samples(), self.outputs[0].name)

    @staticmethod
    def swift(name: str, program, meta: dict) -> str:
        """The Swift wrapper for a package of this kind."""
        from .swift import module_wrapper

        return module_wrapper(name, program, meta)

    @staticmethod
    def predict_table(package, table, **options):
        """Predictions for the rows of a table (``predict --csv``): a :class:`~coreml_lstm.predict.Prediction`."""
        raise ConfigError(f"{package}: predict --csv reads tables for the toolkit's own packages; run any package on named arrays with "
                          "coreml-lstm run --inputs FEEDS.npz")


@contextlib.contextmanager
def training_kept(module):
    """Every submodule's training flag as the caller set it, after a block that puts ``module``
    in eval mode (convert and verify do, to trace and check it), also when the block raises."""
    flags = [(m, m.training) for m in module.modules()] if hasattr(module, "modules") else []
    try:
        yield module
    finally:
        for m, flag in flags:
            m.training = flag


def eval_mode(module):
    """``module.eval()``; a ``torch.export`` module (which refuses eval()) is already fixed in its mode."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


def _tensor(value):
    """A torch tensor of an array (copied when numpy holds it read-only, as torch requires)."""
    import torch

    a = np.asarray(value)
    return torch.as_tensor(a if a.flags.writeable else a.copy())


# -- choosing the kind (the one place that asks) ----------------------------------------------


def load(path, *, package=None, inputs=None, outputs=None, **options) -> Adapter:
    """The adapter for a model on disk: a forecaster or classifier checkpoint directory, or a
    TorchScript archive / ``torch.export`` program (``.pt2``) of any module.

    Args:
        path: the checkpoint directory or model file.
        package: the package it was exported to, when verifying (a forecaster reads its
            streaming style from it; a module reads its input shapes from it).
        inputs, outputs: a module's inputs (``{name: shape}`` or ``"NAME:SHAPE[:DTYPE]"`` strings)
            and output names.
        options: kind-specific settings (forecaster streaming checks: ``chunk``, ``chunks``).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory")
    if path.is_dir():
        from .classify.adapter import ClassifierAdapter, is_classifier_checkpoint

        if inputs or outputs:
            raise ConfigError(f"--input / --output: {path} is a checkpoint, whose inputs and outputs are known")
        if is_classifier_checkpoint(path):
            return ClassifierAdapter.load(path, package=package, streaming=options.get("streaming"))
        from .forecaster_adapter import ForecasterAdapter

        return ForecasterAdapter.load(path, package=package, **options)
    from .user_model import ModuleAdapter

    return ModuleAdapter.load(path, package=package, inputs=inputs, outputs=outputs)


def for_package(package) -> type[Adapter]:
    """The adapter class of a saved package, from the task its metadata records (any other
    package: a plain module)."""
    from .metadata import read_metadata
    from .verify import load_declared

    program, _ = load_declared(package)
    return kind_class(read_metadata(program.metadata.get("user", {}), package).get("task"))


def kind_class(task: str | None) -> type[Adapter]:
    if task == "forecast":
        from .forecaster_adapter import ForecasterAdapter

        return ForecasterAdapter
    if task in ("classify", "text-classify"):
        from .classify.adapter import ClassifierAdapter

        return ClassifierAdapter
    from .user_model import ModuleAdapter

    return ModuleAdapter


__all__ = ["Adapter", "Dim", "Evaluation", "Input", "Output", "Sample", "State", "for_package", "load", "parse_dim", "parse_shape",
           "random_samples", "sample_shapes", "shape_label"]
