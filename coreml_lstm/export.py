"""A model (through its adapter, see :mod:`.adapter`) -> Core ML ML Program (.mlpackage), written atomically.

Inputs and outputs always get explicit dtypes (fp32, int32 for integer inputs: never the
converter's silent fp16 I/O), the compute precision is chosen separately, flexible shapes come
from the adapter's inputs, and a failed or interrupted save leaves nothing behind. A forecaster
package takes raw feature values and returns predictions in original units (normalisation is
traced into the graph).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from ._coremltools import coremltools, no_converter_progress
from .errors import ConfigError, ExportError, TraceWarning, first_line
from .fsutil import atomic_path, destination_lock
from .metadata import INPUT_NAME, METADATA_PREFIX, OUTPUT_NAME, read_metadata  # noqa: F401 (names of the package format)

PRECISIONS = ("fp32", "fp16")
TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
# Deployment target -> the iOS release with the same ML Program opset.
OPSET_TARGET = {"macOS12": "iOS15", "macOS13": "iOS16", "macOS14": "iOS17", "macOS15": "iOS18"}

# Weight compression (coremltools.optimize.coreml), applied to the converted program.
COMPRESSIONS = ("int8", "palettize6", "palettize4", "prune50")



@dataclass
class ExportConfig:
    precision: str = "fp32"  # compute precision; I/O stays fp32 either way
    target: str = "iOS16"  # minimum deployment target
    author: str = ""
    license: str = ""
    description: str = ""
    version: str = ""
    streaming: str | None = None  # None: window in, forecast out; "explicit" | "states": see streaming.py
    max_chunk: int = 64  # streaming: the longest chunk one call takes (Core ML needs a finite bound)
    compress: str | None = None  # None or one of COMPRESSIONS

    def __post_init__(self):
        self.precision, self.target = _precision_name(self.precision), _target_name(self.target)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.target not in TARGETS:
            shown = f"ct.target.{self.target.name}" if type(self.target).__name__ == "AvailableTarget" else repr(self.target)
            raise ConfigError(f"target: {shown} is not one of {', '.join(TARGETS)}")
        if self.streaming not in (None, "explicit", "states"):
            raise ConfigError(f"streaming: {self.streaming!r} is not one of explicit, states")
        if self.streaming == "states" and OPSET_TARGET.get(self.target, self.target) != "iOS18":
            raise ConfigError(f"streaming states: Core ML states need deployment target iOS18 or macOS15; got {self.target} (use --streaming explicit for earlier targets)")
        if self.compress not in (None, *COMPRESSIONS):
            raise ConfigError(f"compress: {self.compress!r} is not one of {', '.join(COMPRESSIONS)}")
        if self.compress and OPSET_TARGET.get(self.target, self.target) == "iOS15":
            raise ConfigError(f"compress {self.compress}: compressed weights need deployment target iOS16 or macOS13 or later "
                              f"(their constexpr ops came with it); got {self.target}")
        if not isinstance(self.max_chunk, int) or self.max_chunk < 1:
            raise ConfigError(f"max_chunk: must be an integer >= 1, got {self.max_chunk!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _precision_name(value):
    """``ct.precision.FLOAT16`` -> "fp16", as coremltools users write it; anything else as given."""
    if type(value).__name__ == "ComputePrecision":
        return {"float16": "fp16", "float32": "fp32"}.get(getattr(value, "value", None), value)
    return value


def _target_name(value):
    """``ct.target.iOS17`` -> "iOS17". coremltools' macOS targets are aliases of the iOS ones of
    the same opset (``ct.target.macOS14`` is ``ct.target.iOS17``), which convert alike."""
    if type(value).__name__ == "AvailableTarget" and getattr(value, "name", None) in TARGETS:
        return value.name
    return value


def check_destination(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ConfigError(f"{path}: the output path must end in .mlpackage")
    parent = next((p for p in path.parents if p.exists() or p.is_symlink()), None)  # the nearest that exists
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{path}: {parent} is a file, not a folder to write the package in")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a package directory")
    if path.is_dir() and not (path / "Manifest.json").is_file() and any(path.iterdir()):
        # A package is replaced whole; a folder of other files is not ours to delete.
        raise ConfigError(f"{path}: exists and is not a package (no Manifest.json) but holds files; remove it or choose another path")
    return path


def trace(module: torch.nn.Module, example):
    """TorchScript trace in eval mode (``example``: a tensor or a tuple of them). Tracing runs
    the forward once; buffers it updates (states) get their values back afterwards.

    Where the trace froze a value the module computes from its inputs (a Python ``if`` on a
    tensor, ``.item()``, a loop over a tensor), a :class:`~coreml_lstm.errors.TraceWarning`
    names the model's source line: the package keeps the example's value there, and checks
    drawn like the example pass.
    """
    from .adapter import eval_mode

    saved = {k: v.detach().clone() for k, v in module.named_buffers()}
    frozen: dict[tuple, str] = {}
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, torch.jit.TracerWarning):
            return original(message, category, filename, lineno, file, line)
        kind = _FROZE.match(str(message))
        if kind and _from_inputs(kind.group(0)):
            frozen.setdefault((filename, lineno), _frozen_line(kind.group(0), filename, lineno))

    try:
        with warnings.catch_warnings():
            # TorchScript warns that an RNN traced in eval mode ignores dropout, and that nn.RNN's
            # shape checks become constants: both intended, the shapes come from the export (and
            # a size frozen where the input is flexible fails the checks at other sizes). Only a
            # value frozen from the inputs' data (see _FROZE) is the user's to hear of.
            warnings.simplefilter("default", torch.jit.TracerWarning)
            torch.jit.TracerWarning.ignore_lib_warnings()  # torch's own (nn's shape checks)
            warnings.filterwarnings("ignore", message=".*dropout.*")
            warnings.showwarning = show
            traced = torch.jit.trace(eval_mode(module), example, check_trace=False)
        # A torch.export module keeps training=True (it refuses eval(); its mode was fixed when
        # exported), which the trace copies and the converter warns of; the traced graph is the same.
        traced.eval()
    finally:
        with torch.no_grad():
            for k, v in module.named_buffers():
                if k in saved:
                    if v.grad_fn is not None and v._base is None:
                        v.detach_()  # the traced forward wrote into it with autograd on
                    v.copy_(saved[k])
    for text in frozen.values():
        warnings.warn(text, TraceWarning, stacklevel=_caller_level())
    return traced


# The TracerWarnings that mean the trace kept a Python value the forward computed from a tensor.
_FROZE = re.compile(r"^(?:Converting a tensor to a Python (boolean|number|index|integer|float)|Iterating over a tensor)")
# Ops that read a tensor's shape, not its values: a value computed from these alone is a size,
# which the export declares (fixed, or a range the checks run at both ends of).
_SHAPE_OPS = {"aten::size", "aten::sizes", "aten::numel", "aten::dim", "aten::len"}


def _from_inputs(kind: str) -> bool:
    """Whether the tensor torch is warning about is computed from the traced inputs' values (not
    from sizes, weights or constants only), judged while the trace is being recorded: the value
    converted is the output of the last op recorded; the tensor iterated over is ``Tensor.__iter__``'s
    own. When that cannot be told, True: the warning is not dropped."""
    state = torch._C._get_tracing_state()
    if state is None:
        return True
    try:
        if kind.startswith("Iterating"):
            frame = sys._getframe(1)
            while frame is not None and frame.f_code is not torch.Tensor.__iter__.__code__:
                frame = frame.f_back
            values = [torch._C._get_value_trace(frame.f_locals["self"])]
        else:
            nodes = list(state.graph().nodes())
            if not nodes:
                return True
            values = list(nodes[-1].outputs())
    except Exception:  # another torch's tracer internals
        return True
    seen, stack = set(), values
    while stack:
        value = stack.pop()
        if value.unique() in seen:
            continue
        seen.add(value.unique())
        node = value.node()
        if node.kind() == "prim::Param":  # a graph input: the module itself, or an input tensor
            if value.type().kind() != "ClassType":
                return True
        elif node.kind() not in _SHAPE_OPS:
            stack.extend(node.inputs())
    return False


def _frozen_line(kind: str, filename: str, lineno: int) -> str:
    where = f"{filename}:{lineno}"
    if kind.startswith("Iterating"):
        return (f"{where}: the trace unrolled a loop over a tensor computed from the inputs: the package always runs the example's number "
                "of iterations, whatever the inputs; loop over a fixed range or use tensor ops")
    what = _FROZE.match(kind).group(1)
    branch = " (an if on a tensor takes the example's branch for every input)" if what == "boolean" else ""
    return (f"{where}: the trace turned a tensor computed from the inputs into a Python {what}: the package keeps the example's value "
            f"there{branch}, and checks drawn like the example pass; compute it with tensor ops (torch.where, masks) instead")


def _caller_level() -> int:
    """The ``stacklevel`` of the first caller outside the toolkit (a warning points at the
    user's ``convert`` call, not at the toolkit's code)."""
    frame, level = sys._getframe(2), 2  # above _caller_level's caller, which warns
    while frame is not None and frame.f_globals.get("__name__", "").startswith("coreml_lstm"):
        frame, level = frame.f_back, level + 1
    return level


# The recurrent layers the preflight knows, by the class name a TorchScript module keeps.
_RECURRENT = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN,
              "LSTMCell": torch.nn.LSTMCell, "GRUCell": torch.nn.GRUCell, "RNNCell": torch.nn.RNNCell}


def _layer_kind(module) -> str | None:
    """Which torch recurrent layer ``module`` is ("LSTM", "GRUCell", ...), or None: by class for
    a torch module, by ``original_name`` for a TorchScript one (a loaded archive's submodules
    are RecursiveScriptModules that keep their class's name)."""
    if isinstance(module, torch.jit.ScriptModule):
        name = getattr(module, "original_name", None)
        return name if name in _RECURRENT else None
    return next((kind for kind, cls in _RECURRENT.items() if isinstance(module, cls)), None)


def _layer_flag(module, attribute: str, parameter) -> bool:
    """A layer's ``proj_size`` / ``bidirectional``: the attribute where the module has it (torch,
    scripted), else from its parameter names (a traced archive keeps only the parameters:
    ``weight_hr_l0`` for a projection, ``*_reverse`` for a backward direction)."""
    value = getattr(module, attribute, None)
    if value is not None and not isinstance(value, torch.Tensor):
        return bool(value)
    return any(parameter(name) for name, _ in module.named_parameters(recurse=False))


# Layers Core ML cannot take, found before tracing: the message says what to use instead.
def _unsupported(module: torch.nn.Module) -> str | None:
    kind = _layer_kind(module)
    if kind == "LSTM" and _layer_flag(module, "proj_size", lambda n: n.startswith("weight_hr_l")):
        return "nn.LSTM with proj_size > 0 has no Core ML lstm equivalent; use proj_size=0 and an nn.Linear after the LSTM"
    if kind == "RNN" and _layer_flag(module, "bidirectional", lambda n: n.endswith("_reverse")):
        return "bidirectional nn.RNN does not convert; use a bidirectional nn.GRU or nn.LSTM, or two nn.RNN (one on the reversed sequence)"
    if kind in ("LSTMCell", "GRUCell", "RNNCell"):
        return f"nn.{kind} does not convert under TorchScript; use nn.{kind[:-4]} (a one-layer {kind[:-4]} over the sequence, or over one step for streaming)"
    return None


# Torch ops that convert but not to what torch computes: refused before conversion.
_MISCONVERTED = {
    "aten::_pack_padded_sequence": "pack_padded_sequence converts to a program that runs every step of the padded batch "
                                   "(coremltools sizes the state by the longest length); run the RNN on the padded batch and pick "
                                   "each sequence's last valid step with its length (gather at lengths - 1), or mask",
}


def preflight_graph(traced) -> None:
    """Raise ExportError for a torch op in the trace that coremltools converts wrongly."""
    try:
        kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    except (AttributeError, RuntimeError):  # not a TorchScript module (a torch.export program)
        return
    for kind, problem in _MISCONVERTED.items():
        if kind in kinds:
            raise ExportError(f"torch op {kind.split('::')[1]!r}: {problem}")


def preflight(module: torch.nn.Module) -> None:
    """Raise ExportError naming the first layer Core ML cannot take, and what to use instead
    (a torch module, or a loaded TorchScript archive: the same advice from the CLI as from Python)."""
    for name, sub in module.named_modules():
        problem = _unsupported(sub)
        if problem:
            raise ExportError(f"layer {name or getattr(module, 'original_name', type(module).__name__)!r}: {problem}")


def cast_bool_inputs(traced, inputs, *, copy: bool = False):
    """The trace with each bool input (``Input.torch_dtype == "bool"``) cast to bool at the top
    of its graph.

    Core ML has no bool inputs: the package takes int32 0/1. Without the cast every op on the
    input sees an integer (``~mask`` converts to a bitwise ``-(mask + 1)``, never 0: a mask that
    keeps everything); with it ``~``, where, masked_fill and logical ops work on bools, as in
    torch. coremltools converts from ``traced.forward.graph`` (its passes edit that graph in
    place too). ``copy``: cast in a copy, for a loaded archive that is also the reference.
    """
    positions = [k for k, i in enumerate(inputs) if i.torch_dtype == "bool"]
    if not positions:
        return traced
    name = inputs[positions[0]].name
    try:
        if copy:
            traced = _script_copy(traced)
        graph = traced.forward.graph
        args = list(graph.inputs())[1:]  # after self
        if len(args) != len(inputs):
            raise ValueError(f"the program takes {len(args)} inputs, not {len(inputs)}")
        first = next(iter(graph.nodes()), graph.return_node())
        constants = [graph.insertConstant(v) for v in (torch.bool, False, False, None)]
        for c in constants:
            c.node().moveBefore(first)
        for k in positions:
            cast = graph.create("aten::to", [args[k], *constants])
            cast.insertBefore(first)
            cast.output().setType(args[k].type())
            args[k].replaceAllUsesAfterNodeWith(cast, cast.output())
    except Exception as exc:  # a torch release without this graph API, or a graph of another form
        raise ExportError(f"input {name!r}: a bool input, which Core ML inputs cannot be, and casting it in the program failed "
                          f"({type(exc).__name__}: {first_line(exc)}); take an int32 input and cast it in forward: mask = mask.bool()") from None
    return traced


def _script_copy(module):
    """A TorchScript module with graphs of its own (a deepcopy shares them), by a round trip
    through TorchScript's own serialisation."""
    import io

    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer, map_location="cpu").eval()


def compress(mlmodel, method: str, *, threshold: int = 16):
    """Compress the weights of a converted program with coremltools.optimize.coreml.

    int8: linear symmetric per-channel quantization; palettize6 / palettize4: a uniform
    6- / 4-bit look-up table per weight; prune50: magnitude pruning to 50% sparsity. Every weight
    with at least 16 elements is compressed (coremltools' default skips small tensors, which
    would leave a small recurrent model uncompressed).
    """
    from coremltools.optimize import coreml as cto

    if method not in COMPRESSIONS:
        raise ConfigError(f"compress: {method!r} is not one of {', '.join(COMPRESSIONS)}")
    if method == "int8":
        op, run = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=threshold), cto.linear_quantize_weights
    elif method.startswith("palettize"):
        op, run = cto.OpPalettizerConfig(mode="uniform", nbits=int(method[len("palettize") :]), weight_threshold=threshold), cto.palettize_weights
    else:
        op, run = cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=threshold), cto.prune_weights
    # coremltools divides by a zero range for all-zero channels (then handles the NaN itself):
    # its numpy warning says nothing about the user's model.
    with no_converter_progress(), np.errstate(divide="ignore", invalid="ignore"):
        return run(mlmodel, cto.OptimizationConfig(global_config=op))


def convert(module, inputs, outputs, config: ExportConfig, *, states=None, shapes=None):
    """Trace ``module`` on example tensors and convert it to an ML Program in memory.

    Args:
        module: a torch module in eval mode.
        inputs: list of ``(name, example_tensor, description)``; dtypes are taken from the tensors.
        outputs: list of ``(name, description)``.
        config: precision and deployment target.
        states: optional list of ``ct.StateType`` for iOS18 stateful models.
        shapes: optional ``{input name: shape}`` (sizes, ranges, ``ct.Shape``) overriding the example's.

    Returns:
        A ``coremltools.models.MLModel`` (not yet saved).
    """
    from .adapter import Output, State
    from .user_model import FixedAdapter, input_from_example

    shapes = shapes or {}
    specs = [input_from_example(name, t, shapes.get(name), description) for name, t, description in inputs]
    adapter = FixedAdapter(module, specs, [Output(n, d) for n, d in outputs], examples=tuple(t for _, t, _ in inputs))
    adapter.states = [State(s.name, tuple(s.wrapped_type.shape.shape)) for s in states or ()]
    return convert_adapter(adapter, config)


class _DropPaddingIdxNote(logging.Filter):
    """The converter warns that nn.Embedding's padding_idx is ignored. It only zeroes the pad row's
    gradient in training; the row's values are in the weights, so the export computes the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "embedding (gather) layer does not support any inputs" not in record.getMessage()


@contextlib.contextmanager
def _quiet_embedding_note():
    logger = logging.getLogger("coremltools")  # the torch frontend logs through the package logger
    note = _DropPaddingIdxNote()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


class _OpErrors(logging.Filter):
    """Keeps the torch frontend's "converting '<op>' op (located at: '<where>')" error, and the
    pass pipeline's "ERROR - '<pass>' graph pass produces the following error" banner, for the
    one-line message (and out of stderr: the ExportError says them). The frontend's "Torch var
    <state> is added again" for a Core ML state (``states``), which it logs for every state buffer
    it reads back, is dropped: it says nothing wrong, and the check would fail a state lost."""

    PATTERN = re.compile(r"converting '([^']+)' op \(located at: '([^']*)'\)")
    PASS = re.compile(r"'([^']+)' graph pass produces the following error")
    AGAIN = re.compile(r"^Torch var (\S+) is added again\.$")

    def __init__(self, states=()):
        super().__init__()
        self.failed: tuple[str, str] | None = None
        self.failed_pass: str | None = None
        self.states = set(states)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        m = self.AGAIN.match(message)
        if m and m.group(1) in self.states:
            return False
        m = self.PATTERN.search(message)
        if m:
            self.failed = self.failed or (m.group(1), m.group(2))
            return False
        m = self.PASS.search(message)
        if m:
            self.failed_pass = self.failed_pass or m.group(1)
            return False
        return True


@contextlib.contextmanager
def _op_errors(states=()):
    logger = logging.getLogger("coremltools")  # the torch frontend logs through the package logger
    errors = _OpErrors(states)
    logger.addFilter(errors)
    try:
        yield errors
    finally:
        logger.removeFilter(errors)


_CONTAINERS = ("ModuleList", "ModuleDict")  # TorchScript scopes name their children, not them


def scope_paths(module, dotted: str) -> list[tuple[str, ...]]:
    """The TorchScript module-scope prefixes of the submodule ``dotted``: its path without the
    names of ModuleList / ModuleDict containers (their children's ops are scoped ``0``, ``1``, not
    ``norms.0``); a container itself, each child's."""
    def kind(m) -> str:  # a TorchScript module keeps its class's name as original_name
        return getattr(m, "original_name", type(m).__name__)

    def children(m) -> dict:
        return dict(m.named_children()) if hasattr(m, "named_children") else {}

    path, current = [], module
    for segment in dotted.split("."):
        current = children(current).get(segment) if current is not None else None
        if kind(current) not in _CONTAINERS:
            path.append(segment)
    if current is not None and kind(current) in _CONTAINERS:
        return [(*path, child) for child in children(current)]
    return [tuple(path)]


def _fp16_precision(ct, fp32_scopes: tuple[str, ...], module=None):
    """(compute precision, ops kept in fp32 per scope): fp16 compute, except the ops traced inside
    a submodule named in ``fp32_scopes`` (dotted paths from the converted ``module``, as
    ``named_modules`` gives them), so raw values beyond float16's 65504, and spreads squared,
    stay exact there. The counts fill in during conversion."""
    kept = dict.fromkeys(fp32_scopes, 0)
    if not fp32_scopes:
        return ct.precision.FLOAT16, kept
    from coremltools.converters.mil.mil.scope import ScopeSource

    paths = {s: scope_paths(module, s) if module is not None else [tuple(s.split("."))] for s in fp32_scopes}

    def to_fp16(op) -> bool:
        # The scope is the module path of the call that made the op, then the torch value's name.
        names = tuple((getattr(op, "scopes", None) or {}).get(ScopeSource.TORCHSCRIPT_MODULE_NAME, [])[:-1])
        for scope, prefixes in paths.items():
            if any(p and names[: len(p)] == p for p in prefixes):
                kept[scope] += 1
                return False
        return True

    return ct.transform.FP16ComputePrecision(op_selector=to_fp16), kept


def convert_adapter(adapter, config: ExportConfig):
    """Trace the adapter's module and convert it to an ML Program in memory (not yet saved).

    Every input and output gets an explicit dtype (fp32, int32 for integer inputs); flexible
    shapes come from the adapter's inputs; a classifier (``adapter.classes``) is a Core ML
    classifier that keeps its ``probabilities`` output. A conversion coremltools refuses raises
    one ExportError naming the layer (module path) and the torch op where they are known.

    Returns:
        A ``coremltools.models.MLModel``.
    """
    ct = coremltools()
    module = adapter.module()
    traced = adapter.traced()
    preflight(module)
    if traced is None:
        for note in getattr(adapter, "trace_notes", ()):
            warnings.warn(note, TraceWarning, stacklevel=2)
        try:
            traced = trace(module, _example_arg(adapter.examples()))
        except Exception as exc:
            raise ExportError(f"tracing the module failed: {type(exc).__name__}: {first_line(exc, type(exc).__name__)}") from exc
        traced = cast_bool_inputs(traced, adapter.inputs)
    else:  # a loaded archive: the module is also the reference the package is checked against
        traced = cast_bool_inputs(traced, adapter.inputs, copy=True)
    preflight_graph(traced)
    inputs = [i.to_coreml() for i in adapter.inputs]
    states = [ct.StateType(wrapped_type=ct.TensorType(shape=tuple(s.shape), dtype=np.float16), name=s.name) for s in adapter.states] or None
    kwargs = {}
    if adapter.classes is not None:
        # Core ML class labels are int64 or text: integers outside int64 (and other numbers) go as text.
        ints = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and -(2**63) <= int(c) < 2**63 for c in adapter.classes)
        labels = [int(c) for c in adapter.classes] if ints else [str(c) for c in adapter.classes]
        kwargs["classifier_config"] = ct.ClassifierConfig(labels)
    outputs = [ct.TensorType(name=o.name, dtype=np.int32 if np.dtype(o.dtype).kind in "iu" else np.float32) for o in adapter.outputs]
    precision, kept = (ct.precision.FLOAT32, {}) if config.precision == "fp32" else _fp16_precision(ct, adapter.fp32_scopes, traced)
    errors = _OpErrors()
    try:
        with no_converter_progress(), _quiet_embedding_note(), _op_errors([s.name for s in adapter.states]) as errors:
            mlmodel = ct.convert(
                traced,
                inputs=inputs,
                outputs=outputs,
                states=states,
                convert_to="mlprogram",
                compute_precision=precision,
                minimum_deployment_target=getattr(ct.target, config.target),
                **kwargs,
            )
        missing = [scope for scope, n in kept.items() if not n]
        if missing:
            raise ConfigError(f"fp32 modules: no op of the program comes from {missing[0]!r}, so none could stay fp32 "
                              "(a TorchScript-traced submodule's dotted name, as named_modules gives it)")
        if adapter.classes is not None:
            mlmodel = keep_probabilities(mlmodel, outputs[0].name, len(adapter.classes))
        if config.compress:
            mlmodel = compress(mlmodel, config.compress)
    except (ExportError, ConfigError):
        raise
    except Exception as exc:
        raise ExportError(refusal(exc, traced, errors.failed, failed_pass=errors.failed_pass) + _half_hint(traced)) from exc
    descriptions = adapter.descriptions()
    input_names = {i.name for i in adapter.inputs}
    output_names = {o.name for o in mlmodel.get_spec().description.output}
    for name, text in descriptions.items():
        if name in input_names:
            mlmodel.input_description[name] = text
        elif name in output_names:
            mlmodel.output_description[name] = text
    return mlmodel


def _example_arg(examples: tuple):
    return examples if len(examples) != 1 else examples[0]


# coremltools' assertion when an output is an input as it is (a clone or nn.Identity it removed).
_PASS_THROUGH = re.compile(r"Main block's input name, '([^']+)', is different from its corresponding var's name, '([^']+)'")


# Ops without a conversion that have one spelled another way (bool masks: a | b, a ^ b).
_INSTEAD = {"or": "on bool masks use torch.logical_or(a, b), which converts", "xor": "on bool masks use torch.logical_xor(a, b), which converts",
            "bitwise_or": "on bool masks use torch.logical_or(a, b), which converts", "bitwise_xor": "on bool masks use torch.logical_xor(a, b), which converts"}


def _half_hint(traced) -> str:
    """For a refused conversion of a module whose weights are float16 or bfloat16 (``.half()``):
    what converts instead. coremltools takes fp16 weights op by op (a Linear, elementwise ops)
    but not in an LSTM, a convolution or a norm against fp32 inputs, and no bfloat16 at all."""
    import torch

    try:
        dtypes = {t.dtype for t in [*traced.parameters(), *traced.buffers()]}
    except Exception:  # not a module with parameters: no hint
        return ""
    half = sorted(str(d).replace("torch.", "") for d in dtypes & {torch.float16, torch.bfloat16})
    if not half:
        return ""
    return (f" (the module's weights are {' and '.join(half)}: convert model.float() with precision='fp16', "
            "which computes in fp16 and is checked against the float module)")


def refusal(exc: Exception, traced=None, failed: tuple[str, str] | None = None, failed_pass: str | None = None) -> str:
    """One line for a conversion coremltools refused: the torch op and, where the trace records
    it, the layer (module path) the op belongs to.

    ``failed`` is the (op, location) the torch frontend logged; otherwise the op is read from the
    message (``convert function for op 'x' not implemented``). ``failed_pass``: the MIL graph
    pass whose error banner coremltools logged, if any.
    """
    text = str(exc).strip()
    first = first_line(exc, type(exc).__name__)
    m = _PASS_THROUGH.search(text)
    if m:
        from .user_model import pass_through

        return pass_through(m.group(2), m.group(1))
    op, where = (failed or (None, None))
    if op is None:
        for pattern in (r"convert function for op '([\w:.]+)' not implemented", r"[Uu]nsupported (?:fx node|op) '?([\w:.]+)'?"):
            m = re.search(pattern, text)
            if m:
                op = m.group(1)
                break
    if op is None:
        stage = f"coremltools' graph pass {failed_pass!r}: " if failed_pass else ""
        return f"conversion failed: {stage}{type(exc).__name__}: {first}"
    layer = layer_of(traced, op, where) if traced is not None else None
    named = "" if not layer else f"in {layer[1]}.forward: " if layer[0] == "forward" else f"layer {layer[0]!r} ({layer[1]}): "
    hint = ""
    if "only 0-dimensional arrays can be converted to Python scalars" in text:  # the converter, not the model
        import numpy

        hint = f" (coremltools 9 needs numpy below 2.4, which turned this into an error; this is numpy {numpy.__version__}: pip install 'numpy<2.4')"
    if "not implemented" in text:
        instead = _INSTEAD.get(op.split("::")[-1].rstrip("_").lstrip("_"))
        return f"conversion failed: {named}torch op {op!r} has no Core ML conversion in coremltools" + (f"; {instead}" if instead else "")
    return f"conversion failed: {named}torch op {op!r} does not convert{hint}: {type(exc).__name__}: {first}"


def layer_of(traced, op: str, where: str | None = None):
    """(module path, module type) of a failing torch op in a TorchScript trace.

    ``where`` is the converter's location: a module path, or the name of the value the op makes;
    without it, the first node of that op kind.
    """
    try:
        graph = traced.inlined_graph
    except Exception:
        return None

    def module_at(path: str):
        sub = traced
        for part in path.split("."):
            sub = getattr(sub, part, None) if part else sub
            if sub is None:
                return None
        return sub

    def kind_of(sub) -> str:
        return getattr(sub, "original_name", None) or type(sub).__name__

    if where and "/" not in where and module_at(where) is not None and where.split(".")[0] in dict(traced.named_children()):
        return (where, kind_of(module_at(where)))
    short = op.split("::")[-1]
    for node in graph.nodes():
        names = [o.debugName() for o in node.outputs()]
        if (where and where.split("/")[-1] in names) or (not where and node.kind().split("::")[-1] == short):
            scope = node.scopeName()
            if not scope:
                return ("forward", kind_of(traced))
            path = scope.split("/")[-1].removeprefix("__module.")
            sub = module_at(path)
            return (path, kind_of(sub) if sub is not None else "?")
    return None


def _rename_value(block, old: str, new: str) -> None:
    """Rename a named value of a MIL block: the op output that makes it and every use of it."""
    for op in block.operations:
        for out in op.outputs:
            if out.name == old:
                out.name = new
        for arg in op.inputs.values():
            for binding in arg.arguments:
                if binding.WhichOneof("binding") == "name" and binding.name == old:
                    binding.name = new
    for i, name in enumerate(block.outputs):
        if name == old:
            block.outputs[i] = new


def keep_probabilities(mlmodel, name: str, n_classes: int):
    """A converted classifier with the classify op's fp32 input kept as output ``name``.

    coremltools' ClassifierConfig turns the probabilities into the classify op's input and drops
    them from the outputs; an app (and the parity check) wants the array too.
    """
    ct = coremltools()
    spec = mlmodel.get_spec()
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    ops = [op for op in block.operations if op.type == "classify"]
    if len(ops) != 1:
        raise ExportError(f"expected one classify op in the converted program, found {len(ops)}")
    source = ops[0].inputs["probabilities"].arguments[0].name
    if source != name:  # fp16 programs feed classify through a cast named "<x>_cast_to_fp32"
        _rename_value(block, source, name)
    block.outputs.append(name)
    out = spec.description.output.add()
    out.name = name
    array = out.type.multiArrayType
    array.shape.extend([1, n_classes])
    array.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def export(adapter, path: str | Path, config: ExportConfig | None = None) -> Path:
    """Convert the adapter's module and save the package atomically, with its metadata.

    Returns:
        The path written.
    """
    config = config or ExportConfig()
    path = check_destination(path)
    with destination_lock(path):  # from the start: a second export to the same path is refused at once
        mlmodel = convert_adapter(adapter, config)
        if not config.description and adapter.description:
            config = ExportConfig(**{**config.to_dict(), "description": adapter.description})
        set_metadata(mlmodel, config, {**adapter.metadata(path), "precision": config.precision, "compression": config.compress})
        for key, value in adapter.extra_metadata.items():
            mlmodel.user_defined_metadata[str(key)] = value if isinstance(value, str) else json.dumps(value)
        adapter.write_companions(path)
        save(mlmodel, path)
    return path


def set_metadata(mlmodel, config: ExportConfig, user: dict) -> None:
    """Author, license, description, version and the toolkit's user-defined metadata (JSON values)."""
    mlmodel.author = config.author or "coreml-lstm"
    mlmodel.license = config.license or "unspecified"
    mlmodel.short_description = config.description
    mlmodel.version = config.version or __version__
    entries = {"toolkit_version": __version__, **user}
    for key, value in entries.items():
        mlmodel.user_defined_metadata[METADATA_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)


def save(mlmodel, path: str | Path) -> Path:
    """Save atomically: a failed or interrupted save leaves nothing at ``path``. The same model
    saved twice gives the same bytes (see :func:`make_reproducible`)."""
    path = check_destination(path)
    with atomic_path(path) as tmp:
        try:
            mlmodel.save(str(tmp))
        except Exception as exc:
            raise ExportError(f"{path}: saving the package failed: {exc}") from exc
        make_reproducible(tmp)
    return path


CONVERSION_DATE = "com.github.apple.coremltools.conversion_date"


def make_reproducible(package: Path) -> None:
    """Rewrite what coremltools makes differ between two saves of one model: the conversion date
    in the metadata (dropped), the order of protobuf map entries (sorted) and the random item
    identifiers of Manifest.json (UUIDs derived from each item's path and content instead)."""
    import hashlib
    import uuid

    from .executor import _proto

    package = Path(package)
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    root_id = manifest["rootModelIdentifier"]
    model_path = package / "Data" / manifest["itemInfoEntries"][root_id]["path"]
    spec = _proto.model_pb2().Model()
    spec.ParseFromString(model_path.read_bytes())
    if CONVERSION_DATE in spec.description.metadata.userDefined:
        del spec.description.metadata.userDefined[CONVERSION_DATE]
    model_path.write_bytes(spec.SerializeToString(deterministic=True))

    def digest(item: Path) -> str:
        h = hashlib.sha256()
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for f in files:
            h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes())
        return h.hexdigest()

    ids = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, f"coreml-lstm:{entry['path']}:{digest(package / 'Data' / entry['path'])}"))
           for old, entry in manifest["itemInfoEntries"].items()}
    manifest["itemInfoEntries"] = {ids[k]: v for k, v in manifest["itemInfoEntries"].items()}
    manifest["rootModelIdentifier"] = ids[root_id]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def export_checkpoint(checkpoint, path: str | Path, config: ExportConfig | None = None) -> Path:
    """Export a forecaster checkpoint as an .mlpackage taking raw inputs and returning raw predictions.

    Args:
        checkpoint: a :class:`coreml_lstm.checkpoint.Checkpoint`.
        path: destination ending in ``.mlpackage``.
        config: precision, target, streaming style and descriptive metadata.

    Returns:
        The path written.
    """
    from .forecaster_adapter import ForecasterAdapter

    config = config or ExportConfig()
    return export(ForecasterAdapter(checkpoint, streaming=config.streaming, max_chunk=config.max_chunk), path, config)
