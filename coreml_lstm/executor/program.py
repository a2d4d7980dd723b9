"""A loaded ML Program and its op-by-op runner.

Load time does everything that does not depend on the feeds: parse the protobuf, resolve a
kernel for every op (an op without one fails here, naming the op, the opset and the supported
list), decode immediate values and weight blobs, and fold constant ops (``const``,
``constexpr_*``). Run time walks the operations in order over a dict of named numpy values.

Numerics (``mode``):
    fp32  reference maths: values the program declares fp16 are held in float32, so a cast to
          fp16 is the identity. Use it to check the program's structure and weights.
    fp16  emulates the program's typing: every value the program declares fp16 is rounded to
          fp16 after the op that makes it, and recurrent ops round their state at every time step
          when they run in fp16 (see ``Kernel.round``). Use it to see what fp16 costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CoreMLLSTMError, FeedError, PackageError
from . import limits, registry
from .fp16 import round_fp16
from .package import WeightFile, inside, read_model_file
from .values import decode_value, tensor_type

MODES = ("fp32", "fp16")
FOLDABLE = ("const",)  # plus every op type starting with "constexpr_"


@dataclass
class TensorSpec:
    """A model input, output or state as the package declares it."""

    name: str
    shape: tuple  # -1 for a flexible dimension
    dtype: np.dtype
    shape_range: list | None = None  # per dimension (lo, hi), hi -1 for unbounded
    enumerated_shapes: list | None = None
    description: str = ""
    default_shape: tuple | None = None  # the description's shape: a flexible input's default


@dataclass
class Binding:
    name: str | None = None  # a named value of the program...
    value: object = None  # ...or an immediate / blob value decoded at load time


@dataclass
class Output:
    name: str
    dtype: np.dtype | None
    shape: tuple | None


@dataclass
class Block:
    inputs: list[Output]
    outputs: list[str]
    ops: list["Op"]


@dataclass
class Op:
    type: str
    name: str
    inputs: dict[str, list[Binding]]
    attributes: dict
    outputs: list[Output]
    blocks: list[Block] = field(default_factory=list)
    kernel: "Kernel | None" = None


class State:
    """The handle a state input binds to; its value lives in the caller's state dict."""

    def __init__(self, name: str):
        self.name = name


def _memory(value):
    """The object whose memory ``value`` uses, and its bytes: an array that views another is its
    base (numpy keeps a view's ``base`` the array it was made from, an array over a foreign
    buffer the last of the chain); a list value counts its elements; anything else is None."""
    if isinstance(value, np.ndarray):
        base = value.base
        while isinstance(base, np.ndarray):
            value, base = base, base.base
        return value, value.nbytes
    held = getattr(value, "held_bytes", None)  # a TensorList (ops/control_flow.py)
    return (value, held) if held else (None, 0)


class LiveBytes:
    """The bytes one run holds at once, held to :data:`limits.MAX_LIVE_BYTES`.

    Every value a run puts in a scope (a feed, an op's result, a nested block's input) is added;
    values sharing memory (a view and its base, an op that returns its input) are counted once,
    at the bytes of the memory, for as long as any of them is held. The program's constants are
    held whatever the run does: they start the count (``base``), and a value using their memory
    adds nothing (``constants``: the ids of their memory).

    The main block drops a value when it lets it go; a count per memory says when the last value
    using it goes. A nested block (cond, while_loop) lets go of nothing until it ends, when all
    its values go and the count returns to what it was when the block began. Loop bodies make
    most of a run's values, so a nested block's values are first counted each at the bytes of its
    memory, without looking for memory counted already (an upper bound: an addition a value);
    only when that passes the bound is the count made exact from the nested blocks' scopes
    (:meth:`exact`), and it stays exact for as long as nested blocks run, so the bound is passed
    only by memory really held.
    """

    __slots__ = ("held", "total", "scopes", "outside", "seen")

    def __init__(self, base: int, constants):
        # The main block's values: id of the memory -> [the memory, values using it, bytes];
        # None for a constant's memory.
        self.held: dict[int, list | None] = dict.fromkeys(constants)
        self.total = base
        self.scopes: list[dict] = []  # the scope (name -> value) of each nested block running, outermost first
        self.outside = 0  # the count when the outermost nested block began
        self.seen: dict | None = None  # counting exactly: id of the memory -> (the scope's level, the memory)

    # add, drop and add_nested run for every value of a run: _memory is written out in each (a call costs).
    def add(self, value) -> None:
        """A value of the main block."""
        if isinstance(value, np.ndarray):
            base = value.base
            while isinstance(base, np.ndarray):
                value, base = base, base.base
            nbytes = value.nbytes
        else:
            value, nbytes = _memory(value)
            if value is None:
                return
        key = id(value)
        held = self.held
        if key not in held:
            held[key] = [value, 1, nbytes]  # holds the memory: its id stays its own
            self.total += nbytes
        elif held[key] is not None:
            held[key][1] += 1

    def drop(self, value) -> None:
        """A value the main block lets go of."""
        if isinstance(value, np.ndarray):
            base = value.base
            while isinstance(base, np.ndarray):
                value, base = base, base.base
        else:
            value = _memory(value)[0]
        key = id(value)
        entry = self.held.get(key)
        if entry is not None:
            entry[1] -= 1
            if not entry[1]:
                del self.held[key]
                self.total -= entry[2]

    def enter(self, scope: dict) -> int:
        """A nested block begins, over ``scope`` (its names and values, its enclosing blocks'
        included); returns the count to come back to when it ends (:meth:`leave`)."""
        if not self.scopes:
            self.outside = self.total
        self.scopes.append(scope)
        return self.total

    def add_nested(self, value) -> None:
        """A value of the innermost nested block running (in its scope)."""
        if isinstance(value, np.ndarray):
            base = value.base
            while isinstance(base, np.ndarray):
                value, base = base, base.base
            nbytes = value.nbytes
        else:
            value, nbytes = _memory(value)
            if value is None:
                return
        if self.seen is None:
            self.total += nbytes
            return
        key = id(value)
        if key not in self.held and key not in self.seen:
            self.seen[key] = (len(self.scopes) - 1, value)  # holds the memory: its id stays its own
            self.total += nbytes

    def exact(self) -> None:
        """Count the memory the nested blocks' scopes hold exactly, each once and none the main
        block or the constants hold, and go on counting so while nested blocks run."""
        held, seen, total = self.held, {}, self.outside
        for level, scope in enumerate(self.scopes):
            for value in scope.values():
                memory, nbytes = _memory(value)
                if memory is not None and id(memory) not in held and id(memory) not in seen:
                    seen[id(memory)] = (level, memory)
                    total += nbytes
        self.seen, self.total = seen, total

    def leave(self, total: int) -> None:
        """The innermost nested block ends: its values go (``total``: what :meth:`enter` returned)."""
        self.scopes.pop()
        if self.seen is None:
            self.total = total
            return
        level, seen = len(self.scopes), self.seen  # counted exactly since the block began, perhaps: take off what it counted
        for key in [k for k, (at, _) in seen.items() if at == level]:
            self.total -= _memory(seen.pop(key)[1])[1]
        if not self.scopes:
            self.seen = None

    def check(self, op: "Op | None") -> None:
        """Past the bound (counted exactly), the error naming ``op`` (None: the feeds)."""
        if self.total > limits.MAX_LIVE_BYTES and self.scopes and self.seen is None:
            self.exact()
        if self.total > limits.MAX_LIVE_BYTES:
            where = "with the feeds" if op is None else f"op {op.name!r} ({op.type}):"
            raise PackageError(f"{where} the values this run holds at once reach {limits.size_text(self.total)}, more than "
                               f"the {limits.size_text(limits.MAX_LIVE_BYTES)} a run may hold (COREML_LSTM_MAX_LIVE_BYTES raises it)")


class RunContext:
    """What a kernel sees of the run it is part of."""

    def __init__(self, program: "Program", mode: str, state: dict | None):
        self.program, self.mode, self.state = program, mode, state
        self.intermediate: dict | None = None
        self.iterations = 0  # while_loop iterations so far, every loop of the run together
        # (A kernel run on its own, in the kernel tests, has no program: nothing is held before it.)
        self.live = LiveBytes(getattr(program, "constant_bytes", 0), getattr(program, "_constant_ids", frozenset()))

    def count_iteration(self, op: "Op") -> None:
        """One more loop iteration; past the run's bound, an error (a loop that never ends)."""
        self.iterations += 1
        if self.iterations > limits.MAX_LOOP_ITERATIONS:
            raise PackageError(
                f"op {op.name!r} ({op.type}): loops ran {limits.MAX_LOOP_ITERATIONS} iterations in this run without their condition "
                "turning false; a bound against a loop that never ends (COREML_LSTM_MAX_LOOP_ITERATIONS raises it)"
            )

    def run_block(self, block: Block, env: dict, inputs: list | tuple = ()) -> list:
        """Run a nested block over a child scope of ``env``; returns its outputs in order."""
        if len(block.inputs) != len(inputs):
            raise ValueError(f"a nested block takes {len(block.inputs)} inputs but is given {len(inputs)}")
        scope = dict(env)
        live = self.live
        start = live.enter(scope)  # what the block holds goes when it ends
        try:
            for spec, value in zip(block.inputs, inputs):
                scope[spec.name] = value
                live.add_nested(value)
            self.program._run_ops(block.ops, scope, self, nested=True)
            return [scope[name] for name in block.outputs]
        finally:
            live.leave(start)


class Kernel:
    """Base of every op kernel: ``compute(**inputs)`` returns one array or a tuple of arrays.

    Inputs arrive by their MIL names with the op's attributes, decoded to numpy (scalars as 0-d
    arrays, strings as str, variadic inputs listed in ``variadic`` as lists). Optional inputs the
    serializer omitted are absent: kernels give them MIL's default as a Python default.
    """

    variadic: tuple[str, ...] = ()  # inputs that always arrive as a list
    needs_env = False  # control flow: compute also receives env=<the scope dict>
    # In fp16 mode its fp16 outputs are fp16 values already (data movement of fp16 values, kernels
    # that round what they make): the runner skips rounding them again.
    keeps_fp16 = False

    def __init__(self, op: Op, program: "Program"):
        self.op, self.program = op, program
        self.ctx: RunContext | None = None

    def round(self, x: np.ndarray) -> np.ndarray:
        """Round to fp16 values when the op's outputs are fp16 and the run emulates fp16.

        Recurrent kernels call it on their state at every time step; values stay float32 arrays.
        """
        if self.ctx is not None and self.ctx.mode == "fp16" and self.op.outputs and self.op.outputs[0].dtype == np.float16:
            return round_fp16(x)
        return x

    def compute(self, **inputs):  # pragma: no cover - every kernel overrides it
        raise NotImplementedError


def _description(feature) -> TensorSpec:
    kind = feature.type.WhichOneof("Type")
    arr = feature.type.multiArrayType if kind == "multiArrayType" else feature.type.stateType.arrayType if kind == "stateType" else None
    if arr is None:
        return TensorSpec(feature.name, (), np.dtype(object), description=feature.shortDescription)
    dtype = {65568: np.float32, 65600: np.float64, 131104: np.int32, 131080: np.int8, 65552: np.float16}.get(arr.dataType, np.float32)
    shape = tuple(arr.shape)
    ranges = enumerated = None
    flex = arr.WhichOneof("ShapeFlexibility")
    if flex == "shapeRange":
        ranges = [(r.lowerBound, r.upperBound) for r in arr.shapeRange.sizeRanges]
        shape = tuple(lo if lo == hi else -1 for lo, hi in ranges)
    elif flex == "enumeratedShapes":
        enumerated = [tuple(s.shape) for s in arr.enumeratedShapes.shapes]
        shape = tuple(d if all(s[i] == d for s in enumerated) else -1 for i, d in enumerate(enumerated[0]))
    return TensorSpec(feature.name, shape, np.dtype(dtype), ranges, enumerated, feature.shortDescription, tuple(int(d) for d in arr.shape))


class Program:
    """An ML Program read from disk, ready to run. Build it with :func:`coreml_lstm.executor.load`."""

    def __init__(self, path: str | Path):
        spec, root, model_path = read_model_file(path)
        self.path = Path(path)
        self._where = "the model description"  # what is being read, for an error that escapes a check
        try:
            self._load(spec, root, model_path)
        except PackageError as exc:
            if str(exc).startswith(str(path)):
                raise
            raise type(exc)(f"{path}: {exc}") from None  # name the package: an op's error alone does not
        except CoreMLLSTMError:
            raise
        except RecursionError:
            raise PackageError(f"{path}: malformed program ({self._where}: values nested too deeply)") from None
        except Exception as exc:  # noqa: BLE001 - a malformed package must not end in a traceback
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise PackageError(f"{path}: malformed program ({self._where}: {detail})") from None

    def _load(self, spec, root: Path, model_path: Path) -> None:
        path = self.path
        self.spec_version = spec.specificationVersion
        desc = spec.description
        self.inputs = [_description(f) for f in desc.input]
        self.outputs = [_description(f) for f in desc.output]
        self.states = [_description(f) for f in desc.state]
        meta = desc.metadata
        self.metadata = {
            "author": meta.author,
            "license": meta.license,
            "short_description": meta.shortDescription,
            "version": meta.versionString,
            "user": dict(meta.userDefined),
        }
        program = spec.mlProgram
        if "main" not in program.functions:
            raise PackageError(f"{path}: the program has no 'main' function")
        function = program.functions["main"]
        self.opset = function.opset
        try:
            registry.opset_rank(self.opset)
        except Exception:
            raise PackageError(f"{path}: unsupported opset {self.opset!r}; supported: {', '.join(registry.OPSETS)}") from None
        if self.opset not in function.block_specializations:
            raise PackageError(f"{path}: the main function has no block for its opset {self.opset}")
        self._root = root
        self._model_dir = model_path.parent.relative_to(root).as_posix()  # what @model_path names
        self._weights: dict[str, WeightFile] = {}
        self._blobs: dict[tuple, np.ndarray] = {}  # (file, offset, dtype, shape) -> the one decoded copy
        self._as_float32: dict[int, tuple] = {}  # id of a folded fp16 array -> (it, its float32 copy)
        self._made: dict[int, object] = {}  # id of the memory of every constant made so far -> it
        self._made_bytes = 0  # their bytes, held to MAX_LIVE_BYTES as they are made
        self.function_inputs = {}
        for nvt in function.inputs:
            self._where = f"function input {nvt.name!r}"
            dtype, shape = tensor_type(nvt.type)
            self.function_inputs[nvt.name] = (dtype, shape, nvt.type.WhichOneof("type") == "stateType")
        described = {t.name for t in self.inputs} | {t.name for t in self.states}
        undescribed = sorted(set(self.function_inputs) - described)
        if undescribed:  # no feed could give it a value
            raise PackageError(f"{path}: function input {undescribed[0]!r} is not among the model description's inputs "
                               f"({', '.join(sorted(described)) or 'none'})")
        self.block = self._block(function.block_specializations[self.opset], set(self.function_inputs), 0)
        self._check_joined_inputs()
        produced = set(self.block.outputs)
        for o in self.outputs:  # matched by name, as Core ML does: not by position
            if o.name not in produced:
                raise PackageError(f"{path}: the model description declares output {o.name!r}, which the program does not produce "
                                   f"(its outputs: {', '.join(sorted(produced)) or 'none'})")
        self._weights.clear()  # every blob is decoded: let the file's bytes go
        self._blobs.clear()
        self._as_float32.clear()
        self._made.clear()
        self._where = "the model description"
        self._count_constants()

    def _count_constants(self) -> None:
        """``constant_bytes``: the memory the program's constants hold (folded results in both
        modes, immediate inputs and attributes of the other ops), each array's memory once; every
        run's count of the values it holds starts from it (see :class:`LiveBytes`)."""
        memories: dict[int, int] = {}

        def note(value):
            if isinstance(value, (list, tuple)):
                for v in value:
                    note(v)
                return
            memory, nbytes = _memory(value)
            if memory is not None:
                memories[id(memory)] = nbytes

        def walk(block: Block):
            for op in block.ops:
                for value in (*getattr(op, "folded", ()), *getattr(op, "folded16", ()), *op.attributes.values()):
                    note(value)
                for bindings in op.inputs.values():
                    note([b.value for b in bindings if b.name is None])
                for b in op.blocks:
                    walk(b)

        walk(self.block)
        self._constant_ids = frozenset(memories)  # the ops hold every one: an id stays its array's
        self.constant_bytes = sum(memories.values())

    def _check_joined_inputs(self) -> None:
        """Refuse a ``stack`` or ``concat`` that joins two or more function inputs whose default
        shapes (the model description's) differ where the op's definition requires them equal:
        every axis for stack (and for concat with ``interleave``), every axis but ``axis`` for
        concat. Core ML refuses such a program when it loads it, whatever shapes are fed later
        (Apple's TestStack::test_stack_dynamic_range_dim: a fixed (2, 3, 4) input stacked with a
        flexible (2, 3, 1..10) one is refused with the default 2, accepted with the default 4).
        Only inputs read directly, or through a ``cast`` (an fp16 program casts its fp32 inputs
        first), are compared: what other ops make from them has no declared default."""
        declared = {t.name: t.default_shape for t in self.inputs if t.default_shape is not None}
        defaults = {n: s for n, s in declared.items() if n in self.function_inputs}
        source = {n: n for n in defaults}  # value name -> the function input it is
        consts: dict[str, object] = {}

        def value(bindings):
            b = bindings[0]
            if b.name is None:
                return b.value
            return consts.get(b.name)

        def walk(block: Block):
            for op in block.ops:
                folded = getattr(op, "folded", None)
                if folded is not None:
                    for out, v in zip(op.outputs, folded):
                        consts[out.name] = v
                if op.type == "cast" and op.outputs and "x" in op.inputs and op.inputs["x"][0].name in source:
                    source[op.outputs[0].name] = source[op.inputs["x"][0].name]
                if op.type in ("stack", "concat") and "values" in op.inputs:
                    names = [source[b.name] for b in op.inputs["values"] if b.name in source]
                    if len(set(names)) >= 2:
                        self._compare_defaults(op, names, defaults, value)
                for b in op.blocks:
                    walk(b)

        walk(self.block)

    def _compare_defaults(self, op: Op, names: list[str], defaults: dict, value) -> None:
        shapes = [defaults[n] for n in names]
        if len({len(s) for s in shapes}) != 1 or not shapes[0]:
            return  # ranks differ or scalars: the kernel's own checks apply
        rank = len(shapes[0])
        skip = None
        if op.type == "concat":
            axis = value(op.inputs["axis"]) if "axis" in op.inputs else op.attributes.get("axis")
            interleave = value(op.inputs["interleave"]) if "interleave" in op.inputs else op.attributes.get("interleave", False)
            if axis is None or interleave is None:
                return  # not a constant: nothing to compare at load
            if not bool(np.asarray(interleave).reshape(-1)[0]):
                a = int(np.asarray(axis).reshape(-1)[0])
                if not -rank <= a < rank:
                    return
                skip = a % rank
        axes = [i for i in range(rank) if i != skip]
        first = shapes[0]
        for name, shape in zip(names[1:], shapes[1:]):
            if any(shape[i] != first[i] for i in axes):
                rule = "identical shapes" if skip is None else f"equal sizes on every axis but {skip}"
                raise PackageError(
                    f"{self.path}: op {op.name!r} ({op.type}) joins function inputs {names[0]!r} and {name!r}, whose default "
                    f"shapes {first} and {shape} differ: its definition requires {rule}, and Core ML refuses such a program "
                    "when loading it (whatever shapes are fed)"
                )

    @property
    def target(self) -> str:
        return registry.TARGET_OF_OPSET[self.opset]

    # -- loading -----------------------------------------------------------------------------

    def _weight_file(self, file_name: str) -> WeightFile:
        if not isinstance(file_name, str) or not file_name.startswith("@model_path/"):
            raise PackageError(f"{self.path}: weight file {file_name!r} is not a path inside the package (@model_path/...)")
        rel = file_name[len("@model_path/") :]
        if rel not in self._weights:
            self._weights[rel] = WeightFile(inside(self._root, rel, "weight file", base=self._model_dir), str(self.path))
        return self._weights[rel]

    # Constants, together, are held to MAX_LIVE_BYTES as they are made (each is held to
    # MAX_TENSOR_BYTES by its decoder or kernel): a few bytes of protobuf can declare a tensor of
    # zeros, and a package may declare thousands. What is to be decoded is checked first, from
    # its declared type; what a constant op makes, once made (a kernel's output is bounded).
    def _reserve(self, dtype, shape, where: str) -> None:
        """Refuse before decoding a tensor of ``dtype`` and ``shape`` that would take the
        constants past the bound (an unknown or absurd shape is the decoder's to refuse)."""
        if dtype is None or shape is None or any(d < 0 for d in shape):
            return
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes <= limits.MAX_TENSOR_BYTES:
            self._refuse_past_bound(self._made_bytes + nbytes, where)

    def _refuse_past_bound(self, total: int, where: str) -> None:
        if total > limits.MAX_LIVE_BYTES:
            raise PackageError(f"{self.path}: the program's constants reach {limits.size_text(total)} with {where}, more than the "
                               f"{limits.size_text(limits.MAX_LIVE_BYTES)} a run may hold (COREML_LSTM_MAX_LIVE_BYTES raises it)")

    def _made_constant(self, value, where: str):
        """``value`` (an array, or a list of them), counted with the constants made so far."""
        if isinstance(value, list):
            for v in value:
                self._made_constant(v, where)
            return value
        memory, nbytes = _memory(value)
        if memory is not None and id(memory) not in self._made:
            self._made[id(memory)] = memory  # holds it: its id stays its own until load ends
            self._made_bytes += nbytes
            self._refuse_past_bound(self._made_bytes, where)
        return value

    def _value(self, value, where: str):
        dtype, shape = tensor_type(value.type)
        if value.WhichOneof("value") != "blobFileValue":
            self._reserve(dtype, shape, where)
            return self._made_constant(decode_value(value, None, where), where)
        # Decoded once however many values name the blob (a package may name one 256 MiB blob from
        # every const), shared read-only.
        blob = value.blobFileValue
        key = (blob.fileName, blob.offset, value.type.tensorType.dataType, shape)
        if key not in self._blobs:
            self._reserve(dtype, shape, where)
            decoded = decode_value(value, self._weight_file(blob.fileName), where)
            decoded.flags.writeable = False
            self._blobs[key] = self._made_constant(decoded, where)
        return self._blobs[key]

    def _block(self, block, scope: set, depth: int) -> Block:
        """A block's ops, checking that every name it reads is defined before it (``scope``: the
        names of the enclosing blocks so far) and that blocks nest at most MAX_BLOCK_DEPTH deep."""
        if depth > limits.MAX_BLOCK_DEPTH:
            raise PackageError(f"{self.path}: blocks nested more than {limits.MAX_BLOCK_DEPTH} deep ({self._where})")
        scope = set(scope)
        inputs = []
        for nvt in block.inputs:
            dtype, shape = tensor_type(nvt.type)
            inputs.append(Output(nvt.name, dtype, shape))
            scope.add(nvt.name)
        ops = []
        for proto in block.operations:
            op = self._op(proto, scope, depth)
            ops.append(op)
            scope.update(o.name for o in op.outputs)
        for name in block.outputs:
            if name not in scope:
                raise PackageError(f"{self.path}: a block's output {name!r} is not defined by any op or input before it")
        return Block(inputs, list(block.outputs), ops)

    def _op(self, proto, scope: set, depth: int) -> Op:
        name = proto.outputs[0].name if proto.outputs else proto.type
        where = f"op {name!r} ({proto.type})"
        self._where = where
        inputs = {}
        for arg_name, arg in proto.inputs.items():
            bindings = []
            for b in arg.arguments:
                if b.WhichOneof("binding") == "name":
                    if b.name not in scope:
                        raise PackageError(f"{self.path}: {where} input {arg_name!r} reads {b.name!r}, which no earlier op or input defines")
                    bindings.append(Binding(name=b.name))
                else:
                    bindings.append(Binding(value=self._value(b.value, f"{where} input {arg_name!r}")))
            if not bindings:
                raise PackageError(f"{self.path}: {where} input {arg_name!r} is bound to nothing")
            inputs[arg_name] = bindings
        attributes = {k: self._value(v, f"{where} attribute {k!r}") for k, v in proto.attributes.items() if k != "name"}
        outputs = []
        for nvt in proto.outputs:
            dtype, shape = tensor_type(nvt.type)
            outputs.append(Output(nvt.name, dtype, shape))
        op = Op(proto.type, name, inputs, attributes, outputs)
        op.kernel = registry.lookup(proto.type, self.opset)(op, self)
        op.blocks = [self._block(b, scope, depth + 1) for b in proto.blocks]
        self._where = where
        if proto.type in FOLDABLE or proto.type.startswith("constexpr_"):
            self._fold(op)
        return op

    def _fold(self, op: Op) -> None:
        """Evaluate a constant op once, now; the runner then only copies its results."""
        kwargs = {}
        for arg_name, bindings in op.inputs.items():
            if any(b.name is not None for b in bindings):
                return  # depends on a run-time value after all
            values = [b.value for b in bindings]
            kwargs[arg_name] = values if arg_name in op.kernel.variadic else values[0]
        kwargs.update(op.attributes)
        where = f"op {op.name!r} ({op.type})"
        if op.type != "const":  # a const returns its decoded value; the others make new arrays
            for out in op.outputs:
                self._reserve(np.float32 if out.dtype == np.float16 else out.dtype, out.shape, where)
        result = _call(op, op.kernel, kwargs)
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(op.outputs):
            raise PackageError(f"op {op.name!r} ({op.type}) returned {len(results)} values for {len(op.outputs)} outputs")
        for r in results:
            self._made_constant(r, where)
        op.folded, op.folded16 = [], []
        for r, out in zip(results, op.outputs):
            if out.dtype == np.float16 and isinstance(r, np.ndarray) and r.dtype == np.float16:
                # fp16 values are exact in float32: fp16 mode's rounding leaves them as they are, so
                # both modes share one float32 copy.
                value = value16 = self._fold_float32(r, where)
            else:
                value = self._cast(r, out, "fp32")
                value16 = self._cast(r, out, "fp16") if out.dtype == np.float16 else value  # only fp16 outputs differ
            op.folded.append(self._made_constant(value, where))
            op.folded16.append(self._made_constant(value16, where))
        # The runner reads only the folded results: let the decoded inputs go (an fp16 blob's own copy).
        op.attributes = {}
        op.inputs = {name: [Binding(name=b.name) for b in bindings] for name, bindings in op.inputs.items()}

    def _fold_float32(self, value: np.ndarray, where: str) -> np.ndarray:
        """An fp16 constant as float32, one copy per decoded array (consts sharing a blob share it)."""
        key = id(value)
        if key not in self._as_float32:
            self._reserve(np.float32, value.shape, where)
            f32 = value.astype(np.float32)
            f32.flags.writeable = False
            self._as_float32[key] = (value, f32)  # holds value: its id stays its own until load ends
        return self._as_float32[key][1]

    # -- running -----------------------------------------------------------------------------

    @staticmethod
    def _cast(value, out: Output, mode: str):
        if not isinstance(value, np.ndarray) and not np.isscalar(value):
            return value
        value = np.asarray(value)
        dtype = out.dtype
        if dtype is None or value.dtype == object:
            return value
        if dtype == np.float16:
            # Held as float32 either way so kernels compute in fp32; fp16 mode rounds to fp16 values.
            if mode == "fp16":
                return round_fp16(value)
            return value.astype(np.float32, copy=False)
        if value.dtype != dtype:
            return value.astype(dtype)
        return value

    def _releases(self) -> dict[int, list[str]]:
        """For the main block: op index -> the values no later op reads (nested blocks' reads
        count as their op's), to let go of after it when only the outputs are wanted. A run then
        holds the values still to be read, not every value it made."""
        if getattr(self, "_release_plan", None) is None:
            def reads(op: Op):
                for bindings in op.inputs.values():
                    yield from (b.name for b in bindings if b.name is not None)
                for block in op.blocks:
                    for inner in block.ops:
                        yield from reads(inner)
                    yield from block.outputs

            last = {}
            for i, op in enumerate(self.block.ops):
                for name in reads(op):
                    last[name] = i
                for out in op.outputs:  # made and never read: gone at once
                    last.setdefault(out.name, i)
            kept = set(self.block.outputs)
            # A constant is held by the program whatever the run lets go of (and counted in every
            # run's base): nothing to release.
            kept.update(o.name for op in self.block.ops if getattr(op, "folded", None) is not None for o in op.outputs)
            plan: dict[int, list[str]] = {}
            for name, i in last.items():
                if name not in kept:
                    plan.setdefault(i, []).append(name)
            self._release_plan = plan
        return self._release_plan

    def _run_ops(self, ops: list[Op], env: dict, ctx: RunContext, releases: dict | None = None, nested: bool = False) -> None:
        """Run ``ops`` in ``env``, every value they make counted in ``ctx.live`` (held to
        :data:`limits.MAX_LIVE_BYTES`); ``releases`` (the main block): values to let go of after
        their last reader; ``nested``: the ops of a nested block (its values go when it ends)."""
        mode = ctx.mode
        live = ctx.live
        add = live.add_nested if nested else live.add
        bound = limits.MAX_LIVE_BYTES
        # A nested block's arrays of their own (most values of a loop body) are counted here, not
        # by a call each: their bytes in ``pending``, added to live.total before anything reads it
        # (a check, a block nested in this one); counting exactly, each goes through add_nested.
        fast = nested and live.seen is None
        ndarray = np.ndarray
        pending = 0
        for i, op in enumerate(ops):
            if releases and i - 1 in releases:
                for name in releases[i - 1]:
                    if not isinstance(env.get(name), State):
                        live.drop(env.pop(name, None))
            folded = getattr(op, "folded16" if mode == "fp16" else "folded", None)
            if folded is not None:
                for out, value in zip(op.outputs, folded):
                    env[out.name] = value  # a constant: counted in the run's base
                continue
            kernel = op.kernel
            kwargs = {}
            for arg_name, bindings in op.inputs.items():
                values = [env[b.name] if b.name is not None else b.value for b in bindings]
                kwargs[arg_name] = values if arg_name in kernel.variadic else values[0]
            if op.attributes:
                kwargs.update(op.attributes)
            if kernel.needs_env:
                kwargs["env"] = env
                live.total += pending  # its blocks start counting from here
                pending = 0
            kernel.ctx = ctx
            result = _call(op, kernel, kwargs)
            if kernel.needs_env and nested:
                fast = live.seen is None  # its blocks may have made the count exact
            results = result if isinstance(result, tuple) else (result,)
            if len(results) != len(op.outputs):
                raise PackageError(f"op {op.name!r} ({op.type}) returned {len(results)} values for {len(op.outputs)} outputs")
            keep = mode == "fp16" and kernel.keeps_fp16
            for out, value in zip(op.outputs, results):
                if not (keep and out.dtype == np.float16 and isinstance(value, np.ndarray) and value.dtype == np.float32):
                    try:
                        value = self._cast(value, out, mode)
                    except (ValueError, TypeError, OverflowError) as exc:  # a string value declared fp32, say
                        detail = " ".join(str(exc).split())[:200]
                        raise PackageError(f"op {op.name!r} ({op.type}): its output {out.name!r} cannot be held as the declared "
                                           f"{np.dtype(out.dtype).name} ({detail})") from None
                env[out.name] = value
                if fast and type(value) is ndarray and value.base is None:
                    pending += value.nbytes
                else:
                    add(value)
            if live.total + pending > bound:
                live.total += pending
                pending = 0
                live.check(op)
                fast = nested and live.seen is None

    def check_feeds(self, feeds: dict) -> dict:
        """Validated, dtype-converted feeds; a FeedError names the input and what was expected."""
        known = {t.name: t for t in self.inputs}
        unknown = sorted(set(feeds) - set(known))
        if unknown:
            raise FeedError(f"unknown input {unknown[0]!r}; the model's inputs are {', '.join(sorted(known))}")
        out = {}
        for name, spec in known.items():
            if name not in feeds:
                raise FeedError(f"missing input {name!r} (expected {spec.dtype.name} of shape {_shape_text(spec)})")
            value = np.asarray(feeds[name])
            if spec.dtype.kind in "iu" and value.dtype.kind not in "iub":
                raise FeedError(f"input {name!r}: expected {spec.dtype.name}, got {value.dtype.name}")
            if spec.dtype.kind == "f" and value.dtype.kind not in "fiub":
                raise FeedError(f"input {name!r}: expected {spec.dtype.name}, got {value.dtype.name}")
            if spec.dtype.kind in "iu" and value.size and (value.min() < np.iinfo(spec.dtype).min or value.max() > np.iinfo(spec.dtype).max):
                raise FeedError(f"input {name!r}: values outside the {spec.dtype.name} range")
            if not _shape_ok(spec, value.shape):
                raise FeedError(f"input {name!r}: expected shape {_shape_text(spec)}, got {tuple(value.shape)}")
            mil_dtype = self.function_inputs.get(name, (None,))[0] or spec.dtype
            out[name] = value.astype(mil_dtype if mil_dtype != np.float16 else np.float32, copy=False)
        return out

    def make_state(self) -> dict:
        """Zero-filled states, like ``MLModel.make_state()``; predict updates them in place."""
        for s in self.states:
            try:
                limits.check_shape(s.shape, np.dtype(s.dtype).itemsize, f"state {s.name!r}")
            except ValueError as exc:
                raise PackageError(f"{self.path}: {exc}") from None
        return {s.name: np.zeros(s.shape, dtype=np.float16 if s.dtype == np.float16 else s.dtype) for s in self.states}

    def run(self, feeds: dict, mode: str = "fp32", state: dict | None = None, intermediate: bool = True) -> dict:
        """Run the program; every named value with ``intermediate``, else the outputs only."""
        if mode not in MODES:
            raise FeedError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        env = self.check_feeds(feeds)
        if mode == "fp16":
            for name, (dtype, _, _) in self.function_inputs.items():
                if dtype == np.float16 and name in env:
                    env[name] = round_fp16(env[name])
        if self.states:
            if state is None:
                raise FeedError(f"this model is stateful: pass state=program.make_state() (states: {', '.join(s.name for s in self.states)})")
            for s in self.states:
                if s.name not in state:
                    raise FeedError(f"state {s.name!r} is missing from the state dict")
                if tuple(np.shape(state[s.name])) != tuple(s.shape):
                    raise FeedError(f"state {s.name!r}: expected shape {tuple(s.shape)}, got {tuple(np.shape(state[s.name]))}")
                env[s.name] = State(s.name)
        ctx = RunContext(self, mode, state)
        try:
            for value in env.values():  # the feeds
                ctx.live.add(value)
            ctx.live.check(None)
            self._run_ops(self.block.ops, env, ctx, releases=None if intermediate else self._releases())
        except PackageError as exc:
            if str(exc).startswith(str(self.path)):
                raise
            raise type(exc)(f"{self.path}: {exc}") from None
        if intermediate:
            return {k: v for k, v in env.items() if not isinstance(v, State)}
        declared = {o.name: o.dtype for o in self.block_output_types()}
        out = {}
        for o in self.outputs:
            name = o.name  # checked at load: the program produces every declared output
            value = env[name]
            # Core ML has no rank-0 multi-arrays: a scalar tensor output comes back with shape (1,).
            # (Classifier outputs, a label and a dictionary, are not multi-arrays.)
            if o.dtype != np.dtype(object) and isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.reshape(1)
            fp16 = mode == "fp16" and declared.get(name) == np.float16 and isinstance(value, np.ndarray)
            out[o.name] = value.astype(np.float16) if fp16 else value
        return out

    def class_labels(self) -> list | None:
        """The class labels of the main block's ``classify`` op (str, or int for int64 labels), in
        probability order: what a classifier package names its classes by; None without one."""
        from .ops.reduction import _plain

        consts = {o.name: op for op in self.block.ops if getattr(op, "folded", None) is not None for o in op.outputs}
        for op in self.block.ops:
            if op.type != "classify" or not op.inputs.get("classes"):
                continue
            (binding,) = op.inputs["classes"][:1]
            if binding.name is None:
                value = binding.value
            elif binding.name in consts:
                source = consts[binding.name]
                value = source.folded[[o.name for o in source.outputs].index(binding.name)]
            else:
                return None  # computed at run time: nothing a loader can read
            return [_plain(c) for c in (value.tolist() if isinstance(value, np.ndarray) else value)]
        return None

    def block_output_types(self) -> list[Output]:
        """Declared types of the main block's outputs (the op outputs they name)."""
        if not hasattr(self, "_block_outputs"):
            by_name = {o.name: o for op in self.block.ops for o in op.outputs}
            self._block_outputs = [by_name.get(n, Output(n, None, None)) for n in self.block.outputs]
        return self._block_outputs

    def predict(self, feeds: dict, mode: str = "fp32", state: dict | None = None) -> dict:
        """Outputs by name. fp16-declared outputs come back float16 in fp16 mode, float32 in fp32 mode."""
        out = self.run(feeds, mode=mode, state=state, intermediate=False)
        return out

    def op_counts(self) -> dict:
        counts: dict[str, int] = {}

        def walk(block: Block):
            for op in block.ops:
                counts[op.type] = counts.get(op.type, 0) + 1
                for b in op.blocks:
                    walk(b)

        walk(self.block)
        return counts

    def value_dtypes(self) -> dict:
        """Declared dtype of every op output (nested blocks included)."""
        out = {}

        def walk(block: Block):
            for op in block.ops:
                for o in op.outputs:
                    out[o.name] = o.dtype
                for b in op.blocks:
                    walk(b)

        walk(self.block)
        return out


def _call(op: Op, kernel: Kernel, kwargs: dict):
    """``kernel.compute(**kwargs)``; anything but the toolkit's own errors becomes a one-line
    PackageError naming the op (a kernel given values no valid program holds may fail anyhow)."""
    try:
        with np.errstate(all="ignore"):  # inf and nan are values here, as they are in Core ML
            return kernel.compute(**kwargs)
    except CoreMLLSTMError:
        raise
    except MemoryError as exc:
        raise PackageError(f"op {op.name!r} ({op.type}) failed: out of memory ({' '.join(str(exc).split())[:200]})") from None
    except RecursionError:
        raise PackageError(f"op {op.name!r} ({op.type}) failed: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise PackageError(f"op {op.name!r} ({op.type}) failed: {detail}") from exc


def _shape_text(spec: TensorSpec) -> str:
    if spec.enumerated_shapes:
        return " or ".join(str(tuple(s)) for s in spec.enumerated_shapes)
    if spec.shape_range:
        return "(" + ", ".join(str(lo) if lo == hi else f"{lo}..{'inf' if hi < 0 else hi}" for lo, hi in spec.shape_range) + ")"
    return str(tuple(spec.shape))


def _shape_ok(spec: TensorSpec, shape: tuple) -> bool:
    shape = tuple(int(s) for s in shape)
    if spec.enumerated_shapes:
        return shape in [tuple(s) for s in spec.enumerated_shapes]
    if len(shape) != len(spec.shape):
        return False
    if spec.shape_range:
        return all(lo <= s and (hi < 0 or s <= hi) for s, (lo, hi) in zip(shape, spec.shape_range))
    return shape == tuple(spec.shape)
