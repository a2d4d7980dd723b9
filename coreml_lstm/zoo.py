"""The conversion matrix: small torch models, how each is converted, and its parity bar.

One definition serves the fast subset in the tests and the whole matrix in
``scripts/parity_matrix.py``. Each :class:`Case` converts a module with coremltools (explicit
dtypes for every input and output), saves the package, loads it back from disk with the executor
and compares with torch. This module imports torch and coremltools; the executor does not.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._coremltools import coremltools, no_converter_progress
from .export import compress, trace

# Executor vs torch, max abs error (fp32) / abs and rel (fp16): the bars of the parity promise.
FP32_BAR = 1e-5
FP16_BAR = 5e-2
# Compressed weights are checked twice: (1) every decompressed tensor must equal coremltools' own
# materialisation of the op exactly (the executor's kernels are right), and (2) the program's
# outputs against torch with the ORIGINAL weights, within a bar for the compression's own error
# on these models' outputs (|y| ~ 0.3): 8-bit and 6-bit lose ~1e-3, 4-bit ~1e-2, and pruning half
# the weights moves outputs by ~0.1. (2) is a sanity bar on the method, (1) is the exact check.
COMPRESSED_BARS = {"int8": 2e-2, "palettize6": 5e-2, "palettize4": 0.2, "prune50": 1.0}
# Relative errors are taken against max(|torch|, REL_FLOOR). fp16 rounds the recurrent state (of
# order 1) to ~5e-4 at every step, so an output that happens to lie near zero carries that absolute
# error: below |y| = 1e-2 a relative error measures fp16's resolution, not the executor.
REL_FLOOR = 1e-2


class Head(nn.Module):
    """Recurrent layer + linear head on the last step (optionally softmax)."""

    def __init__(self, rnn: nn.Module, width: int, out: int = 3, softmax: bool = False, embed: int | None = None):
        super().__init__()
        self.embed = nn.Embedding(embed, rnn.input_size) if embed else None
        self.rnn, self.fc, self.softmax = rnn, nn.Linear(width, out), softmax
        self.batch_first = rnn.batch_first

    def forward(self, x):
        if self.embed is not None:
            x = self.embed(x)
        y, _ = self.rnn(x)
        last = y[:, -1] if self.batch_first else y[-1]
        z = self.fc(last)
        return torch.softmax(z, dim=-1) if self.softmax else z


class WithState(nn.Module):
    """nn.LSTM with explicit initial state in and final state out."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x, h0, c0):
        y, (h, c) = self.lstm(x, (h0, c0))
        return y, h, c


class Stateful(nn.Module):
    """A 1-layer LSTM whose state lives in registered buffers (Core ML states, iOS18)."""

    def __init__(self, inputs: int = 4, hidden: int = 16):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.register_buffer("h", torch.zeros(1, 1, hidden))
        self.register_buffer("c", torch.zeros(1, 1, hidden))

    def forward(self, x):
        y, (h, c) = self.lstm(x, (self.h, self.c))
        self.h[:] = h  # slice assignment: copy_ fails under TorchScript conversion
        self.c[:] = c
        return y


@dataclass
class Case:
    name: str
    build: callable  # () -> (module, {input name: example array})
    target: str = "iOS17"
    precision: str = "fp32"
    outputs: tuple = ("y",)
    flexible: str | None = None  # "range" | "enumerated": flexible axes of the first input
    lengths: tuple = ()  # extra sizes to check when flexible: ints (one axis), tuples (one per flexible axis)
    flex_axes: tuple | None = None  # the flexible axes of the first input; None: the sequence axis
    compress: str | None = None  # int8 | palettize4 | palettize6 | prune50
    stateful: bool = False
    fast: bool = False  # part of the CI subset
    seq_axis: int = 1
    tags: list = field(default_factory=list)

    @property
    def axes(self) -> tuple:
        return self.flex_axes if self.flex_axes is not None else (self.seq_axis,)

    def shapes(self, example: tuple) -> list[tuple]:
        """The example's shape, then one shape per entry of ``lengths`` (flexible axes replaced)."""
        out = [tuple(example)]
        for sizes in self.lengths:
            sizes = sizes if isinstance(sizes, tuple) else (sizes,)
            shape = list(example)
            for axis, n in zip(self.axes, sizes, strict=True):
                shape[axis] = n
            out.append(tuple(shape))
        return out

    @property
    def bar(self) -> float:
        if self.compress:
            return COMPRESSED_BARS[self.compress]
        return FP16_BAR if self.precision == "fp16" else FP32_BAR


def _seed(n: int = 0):
    torch.manual_seed(n)
    return np.random.default_rng(n)


def lstm(layers=1, bidirectional=False, batch_first=True, inputs=5, hidden=16):
    def build():
        rng = _seed()
        rnn = nn.LSTM(inputs, hidden, layers, batch_first=batch_first, bidirectional=bidirectional)
        x = rng.standard_normal((2, 7, inputs) if batch_first else (7, 2, inputs)).astype(np.float32)
        return Head(rnn, hidden * (2 if bidirectional else 1)), {"x": x}

    return build


def gru(layers=1, bidirectional=False, batch_first=True, inputs=5, hidden=16):
    def build():
        rng = _seed(1)
        rnn = nn.GRU(inputs, hidden, layers, batch_first=batch_first, bidirectional=bidirectional)
        x = rng.standard_normal((2, 7, inputs) if batch_first else (7, 2, inputs)).astype(np.float32)
        return Head(rnn, hidden * (2 if bidirectional else 1)), {"x": x}

    return build


def rnn(layers=1, nonlinearity="tanh", batch_first=True, inputs=5, hidden=16):
    def build():
        rng = _seed(2)
        net = nn.RNN(inputs, hidden, layers, nonlinearity=nonlinearity, batch_first=batch_first)
        x = rng.standard_normal((2, 7, inputs) if batch_first else (7, 2, inputs)).astype(np.float32)
        return Head(net, hidden), {"x": x}

    return build


def lstm_state(layers=2, inputs=5, hidden=16):
    def build():
        rng = _seed(3)
        m = WithState(nn.LSTM(inputs, hidden, layers, batch_first=True))
        feeds = {
            "x": rng.standard_normal((1, 6, inputs)).astype(np.float32),
            "h0": rng.standard_normal((layers, 1, hidden)).astype(np.float32) * 0.5,
            "c0": rng.standard_normal((layers, 1, hidden)).astype(np.float32) * 0.5,
        }
        return m, feeds

    return build


def embedding_lstm(vocab=5000, dim=8, hidden=16):
    def build():
        rng = _seed(4)
        m = Head(nn.LSTM(dim, hidden, batch_first=True), hidden, out=4, embed=vocab)
        # Ids above 2048 on purpose: an fp16 input would corrupt them.
        return m, {"tokens": rng.integers(0, vocab, size=(1, 9)).astype(np.int32)}

    return build


def softmax_head():
    def build():
        rng = _seed(5)
        return Head(nn.LSTM(5, 16, 2, batch_first=True), 16, out=6, softmax=True), {"x": rng.standard_normal((1, 7, 5)).astype(np.float32)}

    return build


def big_lstm():
    """Layers large enough (>= 2048 weights) for coremltools' compression to touch them."""

    def build():
        rng = _seed(6)
        return Head(nn.LSTM(32, 64, 2, batch_first=True), 64, out=8), {"x": rng.standard_normal((1, 10, 32)).astype(np.float32)}

    return build


def stateful_lstm():
    def build():
        rng = _seed(7)
        return Stateful(), {"x": rng.standard_normal((1, 5, 4)).astype(np.float32)}

    return build


def cases() -> list[Case]:
    """The whole matrix; ``fast`` marks the CI subset (every axis at least once)."""
    out: list[Case] = []
    for target in ("iOS15", "iOS16", "iOS17", "iOS18"):
        for precision in ("fp32", "fp16"):
            fast = (target, precision) in {("iOS15", "fp16"), ("iOS16", "fp32"), ("iOS17", "fp16"), ("iOS18", "fp32")}
            out.append(Case(f"lstm2-{target}-{precision}", lstm(2), target, precision, fast=fast))
            out.append(Case(f"gru2-{target}-{precision}", gru(2), target, precision, fast=fast and target != "iOS15"))
            out.append(Case(f"rnn-tanh-{target}-{precision}", rnn(1), target, precision, fast=(target, precision) == ("iOS16", "fp32")))
    for precision in ("fp32", "fp16"):
        fast = precision == "fp32"
        out += [
            Case(f"lstm1-{precision}", lstm(1), precision=precision, fast=fast),
            Case(f"lstm2-seqmajor-{precision}", lstm(2, batch_first=False), precision=precision, fast=fast, seq_axis=0),
            Case(f"bilstm2-{precision}", lstm(2, bidirectional=True), precision=precision, fast=True),
            Case(f"bigru1-{precision}", gru(1, bidirectional=True), precision=precision, fast=fast),
            Case(f"gru1-seqmajor-{precision}", gru(1, batch_first=False), precision=precision, seq_axis=0),
            Case(f"rnn2-relu-{precision}", rnn(2, "relu"), precision=precision, fast=fast),
            Case(f"rnn1-relu-{precision}", rnn(1, "relu"), precision=precision),
            Case(f"lstm-h0c0-{precision}", lstm_state(), precision=precision, outputs=("y", "h", "c"), fast=fast),
            Case(f"embedding-lstm-{precision}", embedding_lstm(), precision=precision, fast=fast),
            Case(f"softmax-head-{precision}", softmax_head(), precision=precision, fast=not fast),
            Case(f"lstm2-range-{precision}", lstm(2), precision=precision, flexible="range", lengths=(1, 4, 12, 30), fast=fast),
            Case(f"gru1-range-{precision}", gru(1), precision=precision, flexible="range", lengths=(2, 9, 20)),
            Case(f"lstm2-enumerated-{precision}", lstm(2), precision=precision, flexible="enumerated", lengths=(3, 7, 16), fast=not fast),
        ]
        # Flexible batch (how most apps export): the program builds its zero state at run time from
        # the input's shape (shape, gather, concat of rank-0 sizes, fill).
        for kind, build in (("lstm2", lstm(2)), ("gru2", gru(2)), ("rnn2", rnn(2))):
            out += [
                Case(f"{kind}-batch-{precision}", build, precision=precision, flexible="range", flex_axes=(0,),
                     lengths=(1, 5, 33), fast=(kind, precision) in {("lstm2", "fp32"), ("gru2", "fp16")}),
                Case(f"{kind}-batch-length-{precision}", build, precision=precision, flexible="range", flex_axes=(0, 1),
                     lengths=((1, 1), (4, 12), (9, 30)), fast=(kind, precision) in {("rnn2", "fp32"), ("lstm2", "fp16")}),
                Case(f"{kind}-enumerated-batch-length-{precision}", build, precision=precision, flexible="enumerated", flex_axes=(0, 1),
                     lengths=((1, 7), (4, 3), (8, 16)), fast=(kind, precision) == ("gru2", "fp32")),
            ]
    for target in ("iOS16", "iOS18"):
        for method in ("int8", "palettize4", "palettize6", "prune50"):
            fast = (target, method) in {("iOS16", "int8"), ("iOS18", "palettize4"), ("iOS16", "prune50"), ("iOS18", "palettize6")}
            out.append(Case(f"compressed-{method}-{target}", big_lstm(), target, "fp32", compress=method, fast=fast))
    out.append(Case("stateful-lstm-iOS18-fp16", stateful_lstm(), "iOS18", "fp16", stateful=True, fast=True))
    return out


# -- conversion ----------------------------------------------------------------------------


def _input_types(case: Case, feeds: dict):
    ct = coremltools()
    types = []
    for i, (name, arr) in enumerate(feeds.items()):
        shape = list(arr.shape)
        dtype = np.int32 if arr.dtype.kind in "iu" else np.float32
        if i == 0 and case.flexible == "range":
            for axis in case.axes:
                shape[axis] = ct.RangeDim(lower_bound=1, upper_bound=64, default=shape[axis])
            types.append(ct.TensorType(name=name, shape=ct.Shape(shape), dtype=dtype))
        elif i == 0 and case.flexible == "enumerated":
            options = list(dict.fromkeys(case.shapes(arr.shape)))
            types.append(ct.TensorType(name=name, shape=ct.EnumeratedShapes(shapes=options, default=tuple(arr.shape)), dtype=dtype))
        else:
            types.append(ct.TensorType(name=name, shape=tuple(shape), dtype=dtype))
    return types


def convert(case: Case, directory: str | Path):
    """Build, trace, convert (and compress) a case; save it under ``directory``.

    Returns:
        (module, feeds, package path, mlmodel).
    """
    ct = coremltools()
    module, feeds = case.build()
    module.eval()
    examples = tuple(torch.as_tensor(v) for v in feeds.values())
    if case.stateful:
        # Tracing runs forward once: keep the buffers as they were (zeros).
        saved = {k: v.clone() for k, v in module.named_buffers()}
    with torch.no_grad():
        traced = trace(module, examples if len(examples) > 1 else examples[0])
    if case.stateful:
        for k, v in saved.items():
            dict(module.named_buffers())[k].copy_(v)
    kwargs = dict(
        inputs=_input_types(case, feeds),
        outputs=[ct.TensorType(name=n, dtype=np.float32) for n in case.outputs],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT16 if case.precision == "fp16" else ct.precision.FLOAT32,
        minimum_deployment_target=getattr(ct.target, case.target),
    )
    if case.stateful:
        kwargs["states"] = [
            ct.StateType(wrapped_type=ct.TensorType(shape=tuple(v.shape), dtype=np.float16), name=k)
            for k, v in module.named_buffers()
        ]
    with no_converter_progress():
        mlmodel = ct.convert(traced, **kwargs)
        if case.compress:
            mlmodel = compress(mlmodel, case.compress)
    path = Path(directory) / f"{case.name}.mlpackage"
    mlmodel.save(str(path))
    return module, feeds, path, mlmodel


def decompressed_weights(mlmodel) -> dict[str, np.ndarray]:
    """coremltools' own materialisation of every constexpr op: the reference for our kernels."""
    out = {}
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type.startswith("constexpr_"):
            value = op.materialized_val_inference() if hasattr(op, "materialized_val_inference") else op.value_inference()
            out[op.outputs[0].name] = np.asarray(value)
    return out


def _lengths_feeds(case: Case, feeds: dict, rng) -> list[dict]:
    first = next(iter(feeds))
    batches = [feeds]
    for shape in case.shapes(feeds[first].shape)[1:]:
        batches.append({first: rng.standard_normal(shape).astype(np.float32), **{k: v for k, v in feeds.items() if k != first}})
    return batches


@dataclass
class Result:
    case: Case
    max_abs: float
    max_rel: float
    passed: bool
    detail: str = ""


def run_case(case: Case, directory: str | Path | None = None) -> Result:
    """Convert, load from disk with the executor, and compare with torch."""
    import coreml_lstm.executor as ex

    with tempfile.TemporaryDirectory() as tmp:
        module, feeds, path, mlmodel = convert(case, directory or tmp)
        program = ex.load(path)
        mode = case.precision
        detail = ""
        if case.compress:
            # Our kernels must reproduce coremltools' decompression; then torch runs those weights.
            reference = decompressed_weights(mlmodel)
            values = program.run(feeds, mode="fp32", intermediate=True)
            worst = max((float(np.max(np.abs(values[k] - v))) for k, v in reference.items() if k in values), default=None)
            if worst is None:
                return Result(case, float("nan"), float("nan"), False, "no constexpr op found: the compression did nothing")
            detail = f"{len(reference)} compressed tensors, decompression max diff {worst:.2g}"
            if worst > 0:
                return Result(case, worst, float("nan"), False, detail)
        batches = _lengths_feeds(case, feeds, np.random.default_rng(11)) if case.flexible else [feeds]
        if case.stateful:
            return _run_stateful(case, module, program, feeds)
        errs, rels = [], []
        for batch in batches:
            with torch.no_grad():
                want = module(*[torch.as_tensor(v) for v in batch.values()])
            want = want if isinstance(want, tuple) else (want,)
            got = program.predict(batch, mode=mode)
            for name, w in zip(case.outputs, want):
                w = w.numpy().astype(np.float64)
                g = np.asarray(got[name], dtype=np.float64)
                if g.shape != w.shape:
                    return Result(case, float("inf"), float("inf"), False, f"{name}: shape {g.shape} vs torch {w.shape}")
                err = np.abs(g - w)
                errs.append(float(err.max()))
                rels.append(float((err / np.maximum(np.abs(w), REL_FLOOR)).max()))
        max_abs, max_rel = max(errs), max(rels)
        if case.compress:
            passed = max_abs <= case.bar
        elif case.precision == "fp16":
            passed = _within(errs, rels, case.bar)
        else:
            passed = max_abs <= case.bar
        return Result(case, max_abs, max_rel, passed, detail)


def _within(errs, rels, bar):
    """fp16: within the bar both absolutely and relatively (relative to max(|torch|, REL_FLOOR))."""
    return max(errs) <= bar and max(rels) <= bar


def _run_stateful(case: Case, module, program, feeds) -> Result:
    rng = np.random.default_rng(5)
    state = program.make_state()
    errs, rels = [], []
    for _ in range(3):
        x = rng.standard_normal(next(iter(feeds.values())).shape).astype(np.float32)
        with torch.no_grad():
            want = module(torch.as_tensor(x)).numpy().astype(np.float64)
        got = np.asarray(program.predict({next(iter(feeds)): x}, mode=case.precision, state=state)[case.outputs[0]], np.float64)
        err = np.abs(got - want)
        errs.append(float(err.max()))
        rels.append(float((err / np.maximum(np.abs(want), REL_FLOOR)).max()))
    return Result(case, max(errs), max(rels), _within(errs, rels, case.bar), "3 calls with the state carried")
