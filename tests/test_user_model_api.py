"""coreml_lstm.convert / verify for a user's module: shape spellings, sampling, errors, metadata."""

import inspect
import io
import json
import math
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

import coreml_lstm
from coreml_lstm._coremltools import coremltools
from coreml_lstm.adapter import Dim, Input, parse_shape, sample_shapes
from coreml_lstm.errors import ConfigError, ExportError, StateWarning, TraceWarning
from coreml_lstm.testing import format_report
from coreml_lstm.user_model import _no_pickle, parse_input_option


def test_shapes_as_coremltools_users_write_them():
    ct = coremltools()
    assert parse_shape((1, "1..64", 16)) == ((1, Dim(1, 64), 16), None)
    assert parse_shape("1..64,100,16") == ((Dim(1, 64), 100, 16), None)
    assert parse_shape(("B=1..8", "T=2..512", 6)) == ((Dim(1, 8, symbol="B"), Dim(2, 512, symbol="T"), 6), None)
    dims, _ = parse_shape(ct.Shape((1, ct.RangeDim(2, 30, default=5), 4)))
    assert dims[0] == 1 and dims[2] == 4 and (dims[1].lo, dims[1].hi, dims[1].default) == (2, 30, 5)
    dims, enumerated = parse_shape(ct.EnumeratedShapes(shapes=[(1, 10, 4), (2, 20, 4)]))
    assert enumerated == [(1, 10, 4), (2, 20, 4)] and dims == (Dim(1, 2, 1), Dim(10, 20, 10), 4)
    assert parse_shape([(1, 10, 4), (2, 20, 4)])[1] == [(1, 10, 4), (2, 20, 4)]


@pytest.mark.parametrize("spec, message", [
    ((1, "64..1", 4), "range 64..1: the lower bound is above the upper bound"),
    ((1, "0..4", 4), "range 0..4: bounds must be integers >= 1"),
    ((1, "a", 4), "dimension 'a': expected a size (16) or a range (1..64)"),
    ((1, 0, 4), "dimension 0: sizes must be >= 1"),
    ([(1, 10, 4)], "enumerated shapes: give two or more shapes (one shape is a fixed shape)"),
    ([(1, 10, 4), (1, 10)], "enumerated shapes [(1, 10, 4), (1, 10)]: every shape needs the same number of dimensions"),
])
def test_bad_shapes_are_one_line(spec, message):
    with pytest.raises(ConfigError) as err:
        parse_shape(spec)
    assert str(err.value) == message


def test_input_options():
    i = parse_input_option("mask:1,1..32:bool")  # an int32 input of 0/1 that torch takes as bool
    assert (i.dtype, i.torch_dtype, i.value_range) == (np.int32, "bool", (0, 1))
    i = parse_input_option("ids:1,1..32:int32:0..4999")
    assert (i.name, i.shape, i.dtype, i.value_range) == ("ids", (1, Dim(1, 32)), np.int32, (0, 4999))
    i = parse_input_option("x:1..64,100,16")
    assert i.shape == (Dim(1, 64), 100, 16) and i.dtype == np.float32 and i.value_range is None
    i = parse_input_option("ids:1,8:int64:0..99")  # the package takes int32; torch is fed int64
    assert (i.dtype, i.torch_dtype, i.value_range) == (np.int32, "int64", (0, 99))
    assert (parse_input_option("x:1,8:float64").dtype, parse_input_option("x:1,8:float64").torch_dtype) == (np.float32, "float64")
    assert parse_input_option("ids:1,8:int32").torch_dtype is None
    with pytest.raises(ConfigError, match=r"value range 5..1 has its lower bound above the upper bound"):
        parse_input_option("x:1,4:float32:5..1")


dims = st.builds(lambda lo, span, sym: Dim(lo, lo + span, symbol=sym), st.integers(1, 50), st.integers(0, 50), st.sampled_from([None, "T", "B"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.integers(1, 9), dims), min_size=1, max_size=4), min_size=1, max_size=3), st.integers(1, 9))
def test_sampled_shapes_stay_inside_every_range_and_reach_both_ends(shapes, n):
    # One Dim per symbol (a symbol names one range), as parse_shape builds them.
    by_symbol = {}
    shapes = [[by_symbol.setdefault(d.symbol, d) if isinstance(d, Dim) and d.symbol else d for d in s] for s in shapes]
    inputs = [Input(f"in{k}", tuple(s)) for k, s in enumerate(shapes)]
    drawn = sample_shapes(inputs, n, seed=1)
    flexible = any(isinstance(d, Dim) for s in shapes for d in s)
    assert len(drawn) == max(n, 2 if flexible else 1)  # both ends, even when one sample is asked for
    for assignment in drawn:
        for inp in inputs:
            assert inp.accepts(assignment[inp.name])
        sizes = {}
        for inp in inputs:  # a symbol has one size across inputs
            for d, size in zip(inp.shape, assignment[inp.name]):
                if isinstance(d, Dim) and d.symbol:
                    assert sizes.setdefault(d.symbol, size) == size
    if flexible:
        for inp in inputs:
            for axis, d in enumerate(inp.shape):
                if isinstance(d, Dim):
                    assert drawn[0][inp.name][axis] == d.lo and drawn[1][inp.name][axis] == d.hi


class Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x, scale):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1]) * scale, y


def test_convert_errors_name_what_is_wrong(tmp_path):
    m, x, s = Two().eval(), torch.randn(1, 5, 3), torch.ones(1, 1)
    dest = tmp_path / "t.mlpackage"
    cases = [
        (dict(inputs={"z": (1, "1..9", 3)}), "inputs: 'z' is not an input of the module; its inputs are x, scale"),
        (dict(inputs={"x": (1, "6..9", 3)}), "inputs: 'x': the example's shape (1, 5, 3) is not one of (1, 6..9, 3)"),
        (dict(outputs=["a"]), "outputs: 1 names (a) for 2 outputs the module returns"),
        (dict(states=["h"], target="iOS17"), "states: Core ML states need deployment target iOS18 or macOS15; got iOS17"),
        (dict(precision="int4"), "precision: 'int4' is not one of fp32, fp16"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError) as err:
            coreml_lstm.convert(m, (x, s), dest, **options)
        assert str(err.value) == message
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(m, (x, s), dest, states=["h"], target="iOS18")
    assert str(err.value) == "states: 'h' is not a buffer of the module; its buffers are none"
    assert list(tmp_path.iterdir()) == []


def test_targets_and_precisions_as_coremltools_names_them(tmp_path):
    """ct.target.iOS17 was refused as 'target: <AvailableTarget.iOS17: 8> is not one of ..., iOS17, ...'."""
    ct = coremltools()
    path, report = coreml_lstm.convert(nn.Linear(3, 2).eval(), torch.randn(1, 3), tmp_path / "t.mlpackage", target=ct.target.iOS17,
                                       precision=ct.precision.FLOAT16, samples=1)
    assert report.status == "passed" and {c.mode for c in report.ran} == {"fp16"}
    assert ct.models.MLModel(str(path), skip_model_load=True).get_spec().specificationVersion == 8  # iOS17's
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(nn.Linear(3, 2).eval(), torch.randn(1, 3), tmp_path / "u.mlpackage", target=ct.target.iOS26)
    assert str(err.value) == "target: ct.target.iOS26 is not one of iOS15, iOS16, iOS17, iOS18, macOS12, macOS13, macOS14, macOS15"
    with pytest.raises(ConfigError, match=r"^states: Core ML states need deployment target iOS18 or macOS15; got iOS17$"):
        coreml_lstm.convert(Accumulate().eval(), torch.randn(1, 4), tmp_path / "v.mlpackage", target=ct.target.iOS17, states=["acc"])


def test_convert_and_verify_leave_the_callers_training_flags_alone(tmp_path):
    """A module mid-training came back from convert in eval mode (its dropout off from then on)."""
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    m[0].eval()  # a mix, as with a frozen part
    flags = [s.training for s in m.modules()]
    path, report = coreml_lstm.convert(m, torch.randn(3, 4), tmp_path / "d.mlpackage", samples=1)
    assert report.status == "passed", format_report(report)  # checked in eval mode: no dropout
    assert [s.training for s in m.modules()] == flags == [True, False, True]
    assert coreml_lstm.verify(m, path, samples=1).status == "passed"
    assert [s.training for s in m.modules()] == flags
    with pytest.raises(ConfigError, match="^outputs: 2 names"):  # refused after the module ran in eval mode
        coreml_lstm.convert(m, torch.randn(3, 4), tmp_path / "e.mlpackage", outputs=["a", "b"])
    assert [s.training for s in m.modules()] == flags


class Scale(nn.Module):
    def forward(self, x, t):
        return x * t


def test_an_example_the_module_fails_on_or_a_scalar_example_is_one_line(tmp_path):
    """Both were a traceback: torch's own from the first call, coremltools' "Rank-0 (input None) is unsupported"."""
    with pytest.raises(ConfigError, match=r"^the model fails on its example inputs, of shape x \(2, 1, 5\): RuntimeError: [^\n]+$"):
        coreml_lstm.convert(Recurrent(nn.LSTM(3, 4)), torch.randn(2, 1, 5), tmp_path / "z.mlpackage")  # 5 features, the LSTM takes 3
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(Scale(), (torch.randn(2, 3), torch.tensor(2.0)), tmp_path / "s.mlpackage")
    assert str(err.value) == "example input 't' is a 0-d tensor (a scalar); Core ML inputs have at least one dimension: give it shape (1,) (t.reshape(1))"
    assert list(tmp_path.iterdir()) == []
    _, report = coreml_lstm.convert(Scale(), (torch.randn(2, 3), torch.tensor([2.0])), tmp_path / "s.mlpackage", samples=1)
    assert report.status == "passed", format_report(report)


def test_a_compiled_module_converts_as_the_module_it_compiles(tmp_path):
    """torch.compile's wrapper failed to trace ("using FX to torch.jit.trace a dynamo-optimized function")."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).eval()
    compiled = torch.compile(model)
    path, report = coreml_lstm.convert(compiled, torch.randn(3, 4), tmp_path / "c.mlpackage", samples=1, fp32_modules=["0"], precision="fp16")
    assert report.status == "passed", format_report(report)  # fp32_modules names the module's own submodules
    assert coreml_lstm.verify(compiled, path, samples=1).status == coreml_lstm.verify(model, path, samples=1).status == "passed"


class Raw(nn.Module):
    """Sensor readings around 3e6 normalised inside the model: beyond float16's 65504."""

    def __init__(self):
        super().__init__()
        self.norm = Norm()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        h, _ = self.lstm(self.norm(x))
        return self.out(h[:, -1])


class Norm(nn.Module):
    def forward(self, x):
        return (x - 3e6) / 1e5


def test_fp32_modules_keep_a_normalisation_of_raw_values_out_of_fp16(tmp_path):
    import coreml_lstm.executor as ex
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    torch.manual_seed(0)
    m, x = Raw().eval(), 3e6 + 1e5 * torch.randn(1, 10, 3)
    feeds = [{"x": (3e6 + 1e5 * torch.randn(1, n, 3)).numpy()} for n in (1, 7, 20)]
    shape = {"x": (1, "1..20", 3)}
    _, plain = coreml_lstm.convert(m, x, tmp_path / "a.mlpackage", precision="fp16", target="iOS17", inputs=shape)
    assert plain.status == "failed"  # x - 3e6 in fp16: inf
    path, report = coreml_lstm.convert(m, x, tmp_path / "b.mlpackage", precision="fp16", target="iOS17", inputs=shape, fp32_modules=["norm"])
    assert report.status == "passed", [c.line() for c in report.failed]
    assert coreml_lstm.verify(m, path, feeds).status == "passed"
    ops = ex.load(path).block.ops
    assert {np.dtype(o.outputs[0].dtype).name for o in ops if o.type == "lstm"} == {"float16"}
    for options, message in [
        (dict(fp32_modules=["nrm"]), "fp32 modules: 'nrm' is not a submodule of Raw (its submodules: norm, lstm, out)"),
        (dict(fp32_modules=["norm"], precision="fp32"), "fp32 modules: only with precision fp16 (got fp32); an fp32 program computes everything in fp32"),
    ]:
        with pytest.raises(ConfigError) as err:
            coreml_lstm.convert(m, x, tmp_path / "c.mlpackage", **{"precision": "fp16", **options})
        assert str(err.value) == message
    unused = Raw().eval()
    unused.spare = Norm()  # a submodule forward never calls: no op could stay fp32
    with pytest.raises(ConfigError, match=r"^fp32 modules: no op of the program comes from 'spare'"):
        coreml_lstm.convert(unused, x, tmp_path / "c.mlpackage", precision="fp16", target="iOS17", fp32_modules=["spare"])
    assert not (tmp_path / "c.mlpackage").exists()
    # The CLI, from a TorchScript archive (its module names survive torch.jit.save).
    torch.jit.save(torch.jit.trace(m, x), str(tmp_path / "raw.pt"))
    args = ["convert", str(tmp_path / "raw.pt"), str(tmp_path / "d.mlpackage"), "--input", "x:1,1..20,3:float32:2.9e6..3.1e6",
            "--precision", "fp16", "--target", "iOS17", "--fp32-module", "norm"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output


def test_a_refused_conversion_names_the_layer_and_the_op(tmp_path):
    class Heads(nn.Module):
        def forward(self, x):
            return torch.fmod(x, 0.5)  # no Core ML conversion in coremltools 9

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 4, batch_first=True)
            self.heads = Heads()

        def forward(self, x):
            return self.heads(self.lstm(x)[0])

    with pytest.raises(ExportError) as err:
        coreml_lstm.convert(Net().eval(), torch.randn(1, 5, 4), tmp_path / "n.mlpackage", inputs={"x": (1, "1..9", 4)})
    assert str(err.value) == "conversion failed: layer 'heads' (Heads): torch op 'fmod' has no Core ML conversion in coremltools"
    assert list(tmp_path.iterdir()) == []


def test_metadata_names_and_dtypes_of_a_converted_module(tmp_path):
    m = Two().eval()
    ids_model = nn.Sequential(nn.Embedding(5000, 4), nn.Flatten(), nn.Linear(12, 2)).eval()
    path, report = coreml_lstm.convert(ids_model, torch.tensor([[4999, 3, 2048]]), tmp_path / "ids.mlpackage", precision="fp16",
                                       target="iOS17", outputs=["score"], metadata={"author": "Ada", "labels": ["a", "b"]}, samples=2)
    assert report.status == "passed", [c.line() for c in report.checks]
    spec = coremltools().models.MLModel(str(path), skip_model_load=True).get_spec()
    ft = coremltools().proto.FeatureTypes_pb2.ArrayFeatureType
    (inp,) = spec.description.input
    assert inp.name == "input" and inp.type.multiArrayType.dataType == ft.INT32  # ids above 2048 stay exact
    assert spec.description.output[0].name == "score" and spec.description.output[0].type.multiArrayType.dataType == ft.FLOAT32
    assert spec.description.metadata.author == "Ada"
    user = dict(spec.description.metadata.userDefined)
    assert json.loads(user["labels"]) == ["a", "b"] and user["coreml_lstm.task"] == "module"
    del m


def test_a_package_the_executor_cannot_run_is_skipped_never_passed(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import coreml_lstm.executor
    from coreml_lstm.cli import main
    from coreml_lstm.errors import UnsupportedOpError

    model = nn.Sequential(nn.Linear(4, 3)).eval()
    path, report = coreml_lstm.convert(model, torch.randn(1, 4), tmp_path / "l.mlpackage", samples=1)
    assert report.status == "passed"
    torch.jit.save(torch.jit.trace(model, torch.randn(1, 4)), str(tmp_path / "l.pt"))

    def no_kernel(package):
        raise UnsupportedOpError("op 'linear' has no executor kernel for opset CoreML6 (iOS16)")

    monkeypatch.setattr(coreml_lstm.executor, "load", no_kernel)
    report = coreml_lstm.verify(model, path, samples=2)
    assert report.status == "skipped" and not report.ran
    assert report.checks[0].reason == "the executor cannot run this program: op 'linear' has no executor kernel for opset CoreML6 (iOS16)"
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "l.pt"), str(path)])
    assert r.exit_code == 1 and r.stdout.endswith("result: skipped\n")
    assert "SKIPPED output [executor]: the executor cannot run this program: op 'linear'" in r.stdout


def test_model_files_are_never_unpickled():
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer)
    buffer.seek(0)
    with _no_pickle(), pytest.raises(pickle.UnpicklingError):
        torch.load(buffer, weights_only=False)  # what torch.export.load asks for; refused inside the guard
    from torch.export.pt2_archive import _package

    with _no_pickle(), pytest.raises(ConfigError, match="does not unpickle model files"):
        _package.pickle.loads(pickle.dumps(1))
    assert _package.pickle is pickle


def test_the_top_level_stays_lazy():
    code = ("import sys, coreml_lstm, coreml_lstm.executor, coreml_lstm.adapter, coreml_lstm.diagnose, coreml_lstm.pytest_plugin;"
            "print('torch' in sys.modules, 'coremltools' in sys.modules, callable(coreml_lstm.verify))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]


class Pair(nn.Module):
    """Two inputs of one flexible batch."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, a, b):
        return self.fc(a) + b


def test_a_named_range_is_shared_by_inputs_and_reused_by_later_conversions(tmp_path):
    ct = coremltools()
    import coreml_lstm.executor as ex

    m, example = Pair().eval(), (torch.randn(2, 4), torch.randn(2, 4))
    batch = ct.RangeDim(1, 8, symbol="batch_of_pair")  # coremltools makes a symbol of a name once
    anonymous = ct.RangeDim(1, 8)
    spellings = [
        {"a": ("B=1..8", 4), "b": ("B=1..8", 4)},
        {"a": ("B=1..8", 4), "b": ("B=1..8", 4)},  # the same symbol again, in the same process
        {"a": (batch, 4), "b": (batch, 4)},
        {"a": (anonymous, 4), "b": (anonymous, 4)},  # a symbol coremltools named
    ]
    for k, inputs in enumerate(spellings):
        path, report = coreml_lstm.convert(m, example, tmp_path / f"p{k}.mlpackage", inputs=inputs, samples=3)
        assert report.status == "passed", format_report(report)
        assert [[tuple(r) for r in t.shape_range] for t in ex.load(path).inputs] == [[(1, 8), (4, 4)]] * 2


def test_a_feed_missing_an_input_is_one_line_naming_it(tmp_path):
    """It was "the torch module fails on sample 0: KeyError: 'b'", advising value ranges."""
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    m, example = Pair().eval(), (torch.randn(2, 4), torch.randn(2, 4))
    path, _ = coreml_lstm.convert(m, example, tmp_path / "p.mlpackage", samples=1)
    with pytest.raises(ConfigError) as err:
        coreml_lstm.verify(m, path, {"a": np.ones((2, 4), np.float32)})
    assert str(err.value) == "inputs: no value for input 'b'; the package's inputs are a, b"
    with pytest.raises(ConfigError) as err:
        coreml_lstm.verify(m, path, [{"a": np.ones((2, 4)), "b": np.ones((2, 4))}, {"b": np.ones((2, 4))}])
    assert str(err.value) == "inputs: no value for input 'a' in sample 1; the package's inputs are a, b"
    torch.jit.save(torch.jit.trace(m, example), str(tmp_path / "p.pt"))
    np.savez(tmp_path / "a.npz", a=np.ones((2, 4), np.float32))
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "p.pt"), str(path), "--inputs", str(tmp_path / "a.npz")])
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path / 'a.npz'}: no value for input 'b'; the package's inputs are a, b\n"


class Accumulate(nn.Module):
    """Adds every call's output to a buffer kept as a Core ML state."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("acc", torch.zeros(1, 4))

    def forward(self, x):
        y = self.fc(x) + self.acc
        self.acc[:] = y
        return y


def test_a_state_buffer_starts_from_zero_as_core_ml_makes_it_and_conversion_leaves_it_alone(tmp_path, caplog):
    import logging

    torch.manual_seed(0)
    m = Accumulate().eval()
    with torch.no_grad():
        m(torch.ones(1, 4) * 5)  # a forward before conversion leaves a non-zero buffer
    before = m.acc.clone()
    # The package's state starts from zero, not from the module's: said, since the check starts there too.
    with caplog.at_level(logging.WARNING, logger="coremltools"), pytest.warns(StateWarning, match=r"^state 'acc' holds non-zero values in the module"):
        path, report = coreml_lstm.convert(m, torch.randn(1, 4), tmp_path / "acc.mlpackage", states=["acc"], target="iOS18")
    assert report.status == "passed", format_report(report)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StateWarning)  # a buffer at zero is what a fresh state holds: no warning
        coreml_lstm.convert(Accumulate().eval(), torch.randn(1, 4), tmp_path / "zero.mlpackage", states=["acc"], target="iOS18", samples=1)
    assert not [r for r in caplog.records if "is added again" in r.getMessage()]  # the converter's note on every state, kept off stderr
    assert torch.equal(m.acc, before) and m.acc.grad_fn is None  # tracing's forward is undone
    assert coreml_lstm.verify(m, path).status == "passed"
    assert torch.equal(m.acc, before)
    # Each sample is a stream of calls on one state, so the state's carry is what is compared.
    checks = [c for c in report.checks if c.backend == "executor"]
    assert checks and all("3 calls" in c.size for c in checks)


class Counter(nn.Module):
    """Counts its calls in a buffer: torch gives 1, 2, 3; a package would keep the count it had."""

    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(1))

    def forward(self, x):
        self.count += 1
        return x * self.count


def test_a_buffer_forward_updates_is_refused_unless_it_is_a_state(tmp_path):
    """The counter was frozen into a constant and convert said passed (every check restores the
    buffers before each sample, so torch gave 1 each time too)."""
    m = Counter()
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(m, torch.ones(1, 3), tmp_path / "c.mlpackage")
    assert str(err.value) == ("forward updates buffer 'count': the package would keep it at its value at conversion; declare it a Core ML "
                              "state (states=['count'], target iOS18) or stop updating it in forward")
    assert m.count.item() == 0 and list(tmp_path.iterdir()) == []
    # BatchNorm updates its running statistics in training mode only: converted in eval mode, it is not refused.
    norm = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    _, report = coreml_lstm.convert(norm, torch.randn(5, 3), tmp_path / "bn.mlpackage", samples=1)
    assert report.status == "passed", format_report(report)
    # A buffer declared a state is what a state is for: test_a_state_buffer_starts_from_zero_... converts one.


class Dup(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x)
        return y, y


class Total(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x).sum()


def test_outputs_core_ml_cannot_name_or_shape_as_torch_does(tmp_path):
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(Dup().eval(), torch.randn(2, 4), tmp_path / "d.mlpackage", outputs=["a", "b"])
    assert str(err.value) == "outputs 'a' and 'b' are the same tensor: a Core ML program names a value once; return it once"
    assert list(tmp_path.iterdir()) == []
    # A 0-d output is a (1,) array in Core ML: compared as such, not failed on its shape.
    path, report = coreml_lstm.convert(Total().eval(), torch.randn(2, 4), tmp_path / "t.mlpackage")
    assert report.status == "passed", format_report(report)
    [check] = [c for c in report.checks if c.backend == "executor"]
    assert check.max_abs < 1e-5


def test_compressed_weights_are_held_to_the_fp16_bar_and_need_ios16(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 4)).eval()
    x = torch.randn(1, 8)
    with pytest.raises(ConfigError, match=r"^compress int8: compressed weights need deployment target iOS16 or macOS13 or later"):
        coreml_lstm.convert(m, x, tmp_path / "a.mlpackage", target="iOS15", compress="int8")
    path, report = coreml_lstm.convert(m, x, tmp_path / "int8.mlpackage", compress="int8")
    assert report.status == "passed", format_report(report)
    [check] = [c for c in report.checks if c.backend == "executor"]
    assert check.mode == "fp32" and check.tolerance.atol == 5e-2 and check.max_abs > 1e-6  # lossy, yet within the bar
    # The bar is in units of the outputs' root mean square (~0.17 here), not 0.05 absolute.
    assert check.unit == pytest.approx(float(np.sqrt(np.mean(np.square(m(x).detach().numpy().astype(np.float64))))), rel=0.5)
    # Held to the fp32 bar on request, int8 weights are not the module's to 1e-7.
    assert coreml_lstm.verify(m, path, atol=1e-7, rtol=1e-7).status == "failed"
    # 16 values per weight tensor move the outputs ~20% of their scale: not what the module
    # computes at the fp16 bar, and accepted when asked for.
    path, report = coreml_lstm.convert(m, x, tmp_path / "p4.mlpackage", compress="palettize4")
    assert report.status == "failed" and path.exists(), format_report(report)
    assert coreml_lstm.verify(m, path, atol=0.5).status == "passed"
    with pytest.raises(ConfigError, match=r"^samples: expected a whole number >= 1, got 0$"):
        coreml_lstm.convert(m, x, tmp_path / "s.mlpackage", samples=0)
    assert not (tmp_path / "s.mlpackage").exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=12), st.data())
def test_a_non_finite_value_matches_only_itself(values, data):
    from coreml_lstm.verify import DEFAULT_TOLERANCES, compare

    want = np.array(values, np.float32)
    k = data.draw(st.integers(0, len(values) - 1))
    special = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    tol = DEFAULT_TOLERANCES["fp32"]
    assert compare("y", want.copy(), want, tol, backend="executor", mode="fp32").status == "passed"
    bad = want.copy()
    bad[k] = special
    # torch non-finite where the package is finite, and the other way round: failed, never passed
    assert compare("y", want, bad, tol, backend="executor", mode="fp32").status == "failed"
    assert compare("y", bad, want, tol, backend="executor", mode="fp32").status == "failed"
    same = compare("y", bad.copy(), bad, tol, backend="executor", mode="fp32")
    assert same.status == "passed" and "torch gives 1 non-finite values" in same.line()


def test_an_integer_output_is_compared_exactly():
    """Integer outputs were held to the float bar: in fp16 an index within 5% of torch's passed."""
    from coreml_lstm.verify import DEFAULT_TOLERANCES, compare

    tol = DEFAULT_TOLERANCES["fp16"]
    want = np.array([[40, 41, 7, 0]], np.int64)
    check = compare("bucket", np.array([[40, 42, 7, 0]], np.int32), want, tol, backend="executor", mode="fp16")
    assert check.status == "failed" and check.max_abs == 1.0 and check.worst_index == (0, 1)
    assert check.line() == ("FAILED bucket [executor, fp16] shape (1, 4): max abs 1, max rel 0.0244 (atol 0, rtol 0) worst at (0, 1); "
                            "1 of 4 values differ (integer output, compared exactly)")
    assert compare("bucket", want.astype(np.int32), want, tol, backend="executor", mode="fp16").status == "passed"
    mask = np.array([True, False, True])
    assert compare("mask", np.array([1, 0, 0], np.int32), mask, tol, backend="executor", mode="fp16").reason == (
        "1 of 3 values differ (integer output, compared exactly)")
    # A float output keeps its tolerance.
    assert compare("y", np.array([40.0, 42.0]), np.array([40.0, 41.0]), tol, backend="executor", mode="fp16").status == "passed"


class Nearest(nn.Module):
    """The index of the nearest of 50 centres in 0..10: an fp16 program picks neighbours."""

    def __init__(self):
        super().__init__()
        centres = torch.linspace(0, 10, 50)
        self.score = nn.Linear(1, 50)
        with torch.no_grad():
            self.score.weight.copy_(2 * centres[:, None])
            self.score.bias.copy_(-centres**2)

    def forward(self, x):
        return self.score(x).argmax(-1)


def test_an_argmax_of_an_fp16_package_fails_where_an_index_differs(tmp_path):
    torch.manual_seed(0)
    path, report = coreml_lstm.convert(Nearest(), 5 + 5 * torch.rand(64, 1), tmp_path / "n.mlpackage", precision="fp16", target="iOS17",
                                       value_ranges={"x": (5, 10)}, samples=2)
    assert report.status == "failed", format_report(report)  # it passed with indices wrong
    [check] = [c for c in report.checks if c.backend == "executor"]
    assert check.tolerance.atol == 0 and re.search(r"; [1-9]\d* of 128 values differ \(integer output, compared exactly\)$", check.line())
    later = coreml_lstm.verify(Nearest(), path, samples=2)  # a later check knows the output is integer too
    assert later.status == "failed" and later.failed[0].reason == check.reason


class Squares(nn.Module):
    """Readings around 300 squared: beyond float16's 65504 on real inputs, harmless on N(0, 1)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x * x * 1e-4 - 9)


def test_a_later_check_draws_what_the_conversion_drew(tmp_path):
    torch.manual_seed(0)
    readings = 300 + torch.randn(1, 6, 3)
    squares = Squares().eval()
    path, report = coreml_lstm.convert(squares, readings, tmp_path / "sq.mlpackage", inputs={"x": (1, "2..12", 3)}, precision="fp16", samples=3)
    assert report.status == "failed"  # inf in fp16 on values like the example's
    # The package records the example's statistics, so a check of it later fails too (N(0, 1) passed).
    assert coreml_lstm.verify(squares, path, samples=3).status == "failed"
    # Inputs sharing a range are drawn at one length later as at conversion.
    shared, pair = {"a": (1, "T=2..16", 4), "b": (1, "T=2..16", 4)}, Pair().eval()
    path, report = coreml_lstm.convert(pair, (torch.randn(1, 5, 4), torch.randn(1, 5, 4)), tmp_path / "p.mlpackage", inputs=shared)
    later = coreml_lstm.verify(pair, path)  # as many samples as the conversion drew
    assert report.status == later.status == "passed", format_report(later)
    assert {c.size for c in later.ran if c.backend == "executor"} == {c.size for c in report.ran if c.backend == "executor"}


def test_an_existing_folder_that_is_not_a_package_is_not_replaced(tmp_path):
    folder = tmp_path / "notes.mlpackage"
    folder.mkdir()
    (folder / "important.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"exists and is not a package \(no Manifest.json\) but holds files"):
        coreml_lstm.convert(Total().eval(), torch.randn(2, 4), folder)
    assert (folder / "important.txt").read_text() == "keep me"


def test_golden_vectors_of_an_output_whose_shape_follows_a_flexible_length(tmp_path):
    from coreml_lstm.golden import check_golden, read_golden
    from coreml_lstm.swift import write

    class PerStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(3, 8, batch_first=True)

        def forward(self, x):
            return self.gru(x)[0]  # (1, T, 8)

    torch.manual_seed(0)
    m = PerStep().eval()
    path, report = coreml_lstm.convert(m, torch.randn(1, 5, 3), tmp_path / "g.mlpackage", inputs={"x": (1, "2..20", 3)})
    written = write(path, tmp_path / "ios", module=m)
    golden = read_golden(next(p for p in written if p.name.endswith(".golden.json")))
    shapes = {tuple(c["outputs"]["output"]["shape"]) for c in golden["calls"]}
    assert len(shapes) > 1  # calls of several lengths, each replayed and compared as it is
    assert check_golden(path, golden).status == "passed"


def test_pack_padded_sequence_is_refused_before_conversion(tmp_path):
    from torch.nn.utils.rnn import pack_padded_sequence

    class Packed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 8, batch_first=True)

        def forward(self, x, lengths):
            _, (h, _) = self.lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            return h[-1]

    with pytest.raises(ExportError, match=r"^torch op '_pack_padded_sequence': pack_padded_sequence converts to a program that runs every step"):
        coreml_lstm.convert(Packed().eval(), (torch.randn(2, 8, 3), torch.tensor([8, 5])), tmp_path / "p.mlpackage")
    assert list(tmp_path.iterdir()) == []


class Listed(nn.Module):
    """The normalisation inside a ModuleList (TorchScript scopes its ops "0", not "pre.0")."""

    def __init__(self):
        super().__init__()
        self.pre = nn.ModuleList([Norm(), nn.Identity()])
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        for layer in self.pre:
            x = layer(x)
        h, _ = self.lstm(x)
        return self.out(h[:, -1])


@pytest.mark.parametrize("name", ["pre.0", "pre"])
def test_fp32_modules_name_a_module_list_s_children_or_the_list(tmp_path, name):
    torch.manual_seed(0)
    m, x = Listed().eval(), 3e6 + 1e5 * torch.randn(1, 6, 3)
    path, report = coreml_lstm.convert(m, x, tmp_path / "l.mlpackage", precision="fp16", target="iOS17", fp32_modules=[name])
    assert report.status == "passed", format_report(report)


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, skip):
        return self.lin(x) + 0.5 * skip


def test_a_dict_example_binds_each_tensor_to_the_forward_argument_it_names(tmp_path):
    """{"skip": s, "x": x} traced positionally fed the input named 'x' to forward's skip, and every
    check made the same swap: passed on a package wrong for anyone feeding it by name."""
    import coreml_lstm.executor as ex

    torch.manual_seed(0)
    model, x, skip = Skip().eval(), torch.randn(1, 4), torch.randn(1, 4)
    path, report = coreml_lstm.convert(model, {"skip": skip, "x": x}, tmp_path / "s.mlpackage")
    assert report.status == "passed"
    got = ex.load(path).predict({"x": x.numpy(), "skip": skip.numpy()})["output"]
    np.testing.assert_allclose(got, model(x=x, skip=skip).detach().numpy(), atol=1e-5)
    assert coreml_lstm.verify(model, path, {"x": x.numpy(), "skip": skip.numpy()}).status == "passed"
    # The package's inputs are in forward's order, so a later check calls the module alike; a
    # TensorType list names the arguments in order, whatever the names (here forward's, swapped).
    assert [i.name for i in coreml_lstm.user_model.ModuleAdapter.for_package(model, path).inputs] == ["x", "skip"]
    swapped, report = coreml_lstm.convert(model, (x, skip), tmp_path / "w.mlpackage", inputs=[
        coremltools().TensorType(name="skip", shape=(1, 4)), coremltools().TensorType(name="x", shape=(1, 4))])
    assert report.status == coreml_lstm.verify(model, swapped, samples=2).status == "passed"
    with pytest.raises(ConfigError, match=r"'y' is not among forward's first 2 arguments \(x, skip\)"):
        coreml_lstm.convert(model, {"x": x, "y": skip}, tmp_path / "t.mlpackage")
    # Names that are not forward's are the package's names for its arguments, in the dict's order.
    path, report = coreml_lstm.convert(model, {"a": x, "b": skip}, tmp_path / "u.mlpackage")
    got = ex.load(path).predict({"a": x.numpy(), "b": skip.numpy()})["output"]
    np.testing.assert_allclose(got, model(x, skip).detach().numpy(), atol=1e-5)


class HashedBigrams(nn.Module):
    """Integer arithmetic that overflows int32 (Core ML) where torch's int64 does not."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5003, 3)

    def forward(self, ids):
        prev = torch.cat([torch.zeros_like(ids[:, :1]), ids[:, :-1]], 1)
        return self.emb((prev * 1_000_003 + ids) % 5003)


def test_an_integer_input_traced_on_a_constant_is_checked_on_other_values(tmp_path):
    """Traced on zeros, the ids were drawn from zeros only: passed on a package wrong on every
    real input. A constant example now draws from 0..9; value_ranges= gives the range."""
    from coreml_lstm.adapter import package_inputs
    from coreml_lstm.verify import load_declared

    def drawn(path):
        return package_inputs(load_declared(path)[0], path)[0].value_range

    model, zeros = HashedBigrams().eval(), torch.zeros(1, 16, dtype=torch.long)
    path, report = coreml_lstm.convert(model, zeros, tmp_path / "h.mlpackage")
    assert report.status == "passed" and tuple(drawn(path)) == (0, 9)  # right for ids 0..9: no overflow there
    path, report = coreml_lstm.convert(model, zeros, tmp_path / "r.mlpackage", value_ranges={"ids": (0, 5002)})
    assert report.status == "failed" and tuple(drawn(path)) == (0, 5002)
    assert coreml_lstm.verify(model, path, samples=2).status == "failed"  # the package records the range
    small = nn.Embedding(4, 2).eval()  # ids past its table: the torch failure names the way out
    with pytest.raises(ConfigError, match="value_ranges="):
        coreml_lstm.convert(small, zeros, tmp_path / "s.mlpackage")
    path, report = coreml_lstm.convert(small, zeros, tmp_path / "t.mlpackage", value_ranges={"input": (0, 3)})
    assert report.status == "passed" and tuple(drawn(path)) == (0, 3)
    for bad, message in (({"nope": (0, 1)}, "'nope' is not an input"), ({"input": (3, 1)}, "lo <= hi"), ({"input": 5}, "expected \\(lo, hi\\)")):
        with pytest.raises(ConfigError, match=message):
            coreml_lstm.convert(small, zeros, tmp_path / "u.mlpackage", value_ranges=bad)


class ReplicateCausal(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 9)

    def forward(self, x):  # (batch, channels, time)
        return self.conv(torch.nn.functional.pad(x, (8, 0), mode="replicate"))


def test_a_size_the_program_does_not_run_at_is_a_failed_check_naming_the_size(tmp_path):
    """MIL's replicate pad takes at most the axis' size: below 8 steps the program does not run.
    The check raised the executor's error (no report, no size); it is now that size's FAILED line."""
    path, report = coreml_lstm.convert(ReplicateCausal().eval(), torch.randn(1, 2, 30), tmp_path / "c.mlpackage",
                                       inputs={"x": (1, 2, "1..100")})
    assert report.status == "failed"
    refused = [c for c in report.failed]
    assert refused and all("does not run at this size" in c.reason and "replicate pad" in c.reason for c in refused)
    assert all(int(c.size.split(", ")[-1].rstrip(")")) < 8 for c in refused), [c.size for c in refused]
    assert any(c.status == "passed" for c in report.checks)  # the sizes it runs at are still compared
    assert refused[0].line().startswith("FAILED output (x (1, 2, ")
    _, report = coreml_lstm.convert(ReplicateCausal().eval(), torch.randn(1, 2, 30), tmp_path / "d.mlpackage", inputs={"x": (1, 2, "8..100")})
    assert report.status == "passed", format_report(report)
    # One sample asked for still reaches every declared shape (it checked the default only: passed).
    _, report = coreml_lstm.convert(ReplicateCausal().eval(), torch.randn(1, 2, 30), tmp_path / "e.mlpackage",
                                    inputs={"x": [(1, 2, 30), (1, 2, 16), (1, 2, 3)]}, samples=1)
    assert report.status == "failed" and any("(1, 2, 3)" in c.size for c in report.failed), format_report(report)


class SizesAsNumbers(nn.Module):
    """Sizes read from the tensor, as most real models do (and nn.MultiheadAttention inside)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x):
        b, t, c = x.shape
        y, _ = self.attn(x, x, x)
        return y.reshape(b, -1) + x.new_zeros(t * c)


def test_sizes_read_from_a_tensor_convert():
    """coremltools 9 calls int() on a one-element array for every size a model reads from a
    tensor; NumPy 2.4 refuses that, so such models failed to convert (numpy is held below 2.4)."""
    import tempfile

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        _, report = coreml_lstm.convert(SizesAsNumbers().eval(), torch.randn(2, 5, 4), f"{tmp}/s.mlpackage")
    assert report.status == "passed", format_report(report)


class NotMask(nn.Module):
    """A bool mask (True: keep) negated with ``~``, as padding masks are."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def forward(self, x, mask):
        return self.lin(x).masked_fill(~mask.unsqueeze(-1), -1e4).max(1).values


class WhereMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def forward(self, x, mask):
        z = self.lin(x)
        return torch.where(mask.unsqueeze(-1), z, torch.zeros_like(z)).sum(1)


class PaddedAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)

    def forward(self, x, mask):  # mask: True where a step is padding
        return self.attn(x, x, x, key_padding_mask=mask, need_weights=False)[0].mean(1)


@pytest.mark.parametrize("cls", [NotMask, WhereMask, PaddedAttention])
def test_a_bool_input_is_int32_in_the_package_cast_to_bool_in_the_program_and_bool_for_later_checks(tmp_path, cls):
    """A bool input is an int32 input of 0/1 cast to bool at the top of the program (``~mask`` on
    the int32 input was ``-(mask + 1)``, never 0: a wrong package), and the package records that
    torch takes it as bool (every later verify fed it int64, which torch.where refuses)."""
    from coreml_lstm import executor
    from coreml_lstm.adapter import package_inputs
    from coreml_lstm.verify import load_declared

    torch.manual_seed(0)
    model = cls().eval()
    x, mask = torch.randn(1, 10, 6), torch.rand(1, 10) > 0.3
    mask[0, 0] = not isinstance(model, PaddedAttention)  # attention: never every key padding
    path, report = coreml_lstm.convert(model, (x, mask), tmp_path / "m.mlpackage", samples=3)
    assert report.status == "passed", format_report(report)
    declared = {i.name: i for i in package_inputs(load_declared(path)[0], path)}
    assert (declared["mask"].dtype, declared["mask"].torch_dtype, declared["mask"].value_range) == (np.int32, "bool", (0, 1))
    assert declared["x"].torch_dtype is None
    got = executor.load(path).predict({"x": x.numpy(), "mask": mask.numpy().astype(np.int32)})["output"]
    np.testing.assert_allclose(got, model(x, mask).detach().numpy(), atol=1e-4)
    later = coreml_lstm.verify(model, path, samples=3)
    assert later.status == "passed", format_report(later)
    assert coreml_lstm.verify(model, path, {"x": x.numpy(), "mask": mask.numpy()}).status == "passed"


@pytest.mark.parametrize("dtype, bar", [(torch.float64, 1e-4), (torch.float16, 5e-2)])
def test_a_double_or_half_module_is_fed_its_own_float_dtype(tmp_path, dtype, bar):
    """The checks fed a .double() module float32 (torch: mat1 and mat2 must have the same dtype,
    advising value ranges) and left the package on disk. The package's input stays float32; the
    module is fed its dtype, which the package records for later checks. A half module rounds to
    fp16 itself, so it is held to the fp16 bar."""
    from coreml_lstm.adapter import package_inputs
    from coreml_lstm.verify import load_declared

    torch.manual_seed(0)
    m = nn.Linear(3, 2).to(dtype).eval()
    path, report = coreml_lstm.convert(m, torch.randn(2, 3, dtype=dtype), tmp_path / "d.mlpackage", samples=2)
    assert report.status == "passed", format_report(report)
    assert {c.tolerance.atol for c in report.ran} == {bar}
    [declared] = package_inputs(load_declared(path)[0], path)
    assert declared.dtype == np.float32 and declared.torch_dtype == str(dtype).removeprefix("torch.")
    assert coreml_lstm.verify(m, path, samples=2).status == "passed"
    assert coreml_lstm.verify(m, path, {"input": np.ones((2, 3))}).status == "passed"


def test_a_recorded_torch_dtype_is_read_only_when_it_is_one_torch_takes():
    def read(record, dtype=np.int32):
        return Input("m", (1, 4), dtype).with_sampling({"name": "m", **record}).torch_dtype

    assert read({"torch_dtype": "bool"}) == "bool" and read({"torch_dtype": "int64"}) == "int64"
    for bad in ("float32", "os.system", "Tensor", 3, None, ["bool"], "bool" * 100):
        assert read({"torch_dtype": bad}) is None
    assert read({"torch_dtype": "bool"}, np.float32) is None  # a float input is fed as float
    assert read({"torch_dtype": "float64"}, np.float32) == "float64" and read({"torch_dtype": "float64"}) is None
    assert Input("m", (1, 4), np.int32).with_sampling("junk").torch_dtype is None


class PassThrough(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x), x


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x)


class ClonedThrough(PassThrough):
    def forward(self, x):
        return self.lin(x), x.clone()


class CopiedThrough(PassThrough):
    def forward(self, x):
        return self.lin(x), x + 0


def test_an_output_that_is_an_input_unchanged_or_a_nested_tuple_is_refused_in_one_line(tmp_path, capfd, caplog):
    """coremltools failed on a pass-through output with an AssertionError on the program's names
    and an ERROR banner on stderr; it removes a clone first, so x.clone() fails alike."""
    message = ("output 'x_out' is the input 'x' unchanged: a Core ML program cannot return an input as it is "
               "(coremltools drops a copy such as x.clone() too); return x + 0, or leave it out")
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(PassThrough().eval(), torch.randn(1, 4), tmp_path / "p.mlpackage", outputs=["y", "x_out"])
    assert str(err.value) == message
    with pytest.raises(ExportError) as err:
        coreml_lstm.convert(ClonedThrough().eval(), torch.randn(1, 4), tmp_path / "c.mlpackage", outputs=["y", "x_out"])
    assert str(err.value) == message
    assert "graph pass" not in caplog.text and "ERROR" not in capfd.readouterr().err
    with pytest.raises(ConfigError) as err:
        coreml_lstm.convert(Nested().eval(), torch.randn(1, 3, 4), tmp_path / "n.mlpackage")
    assert str(err.value) == ("the module returns a nested tuple (a tuple inside its tuple of outputs); "
                              "flatten it: return y, h, c rather than y, (h, c)")
    assert list(tmp_path.iterdir()) == []
    _, report = coreml_lstm.convert(CopiedThrough().eval(), torch.randn(1, 4), tmp_path / "ok.mlpackage", outputs=["y", "x_out"], samples=2)
    assert report.status == "passed", format_report(report)  # the copy the message suggests converts


class KeywordOnly(nn.Module):
    def forward(self, *, x, y):
        return x + 2 * y


class MaskOr(nn.Module):
    def forward(self, x, a, b):
        return torch.where(a | b, x, -x)


def test_more_inputs_a_user_writes_get_one_line_or_the_values_they_mean(tmp_path):
    from coreml_lstm.user_model import ModuleAdapter

    with pytest.raises(ConfigError, match=r"^forward takes x, y by keyword only, .* \(def forward\(self, x, y\)\)$"):
        coreml_lstm.convert(KeywordOnly(), {"x": torch.randn(1, 3), "y": torch.randn(1, 3)}, tmp_path / "k.mlpackage")
    masks = (torch.randn(1, 6), torch.rand(1, 6) > 0.5, torch.rand(1, 6) > 0.5)
    with pytest.raises(ExportError, match=r"torch op '__or__' has no Core ML conversion in coremltools; on bool masks use torch.logical_or"):
        coreml_lstm.convert(MaskOr(), masks, tmp_path / "o.mlpackage")
    # --input bounds round inward, as value_ranges= does; beyond int32 (the package's type) is refused.
    assert parse_input_option("ids:1,8:int32:0.5..4.5").value_range == (1, 4)
    for text in ("ids:1,8:int32:0..4294967296", "ids:1,8:int32:0.2..0.8"):
        with pytest.raises(ConfigError, match="beyond int32|holds no integer"):
            parse_input_option(text)
    with pytest.raises(ConfigError, match="beyond int32"):
        ModuleAdapter.from_module(nn.Embedding(4, 2), torch.zeros(1, 3, dtype=torch.long), value_ranges={"input": (0, 2**40)})
    # A torch.export program traced on a constant integer example draws 0..9 too (was its one value).
    torch.export.save(torch.export.export(nn.Embedding(100, 4).eval(), (torch.zeros(1, 8, dtype=torch.long),)), str(tmp_path / "e.pt2"))
    assert ModuleAdapter.load(tmp_path / "e.pt2").inputs[0].value_range == (0, 9)


def test_a_later_checks_input_options_stay_inside_the_package_and_linked(tmp_path):
    """--input for a package: a range beyond the package's was drawn and refused as a feed; one
    without the shared name unlinked two inputs (a torch shape error advising value ranges); two
    spans of one shared range drew the first silently."""
    from coreml_lstm.user_model import ModuleAdapter

    path, report = coreml_lstm.convert(Pair().eval(), (torch.randn(1, 5, 4), torch.randn(1, 5, 4)), tmp_path / "p.mlpackage",
                                       inputs={"a": (1, "T=2..16", 4), "b": (1, "T=2..16", 4)}, samples=2)
    assert report.status == "passed"
    linked = ModuleAdapter.for_package(Pair().eval(), path, inputs=[parse_input_option("a:1,2..16,4")])
    for sample in linked.samples(4):
        assert sample.calls[0]["a"].shape == sample.calls[0]["b"].shape
    with pytest.raises(ConfigError, match=r"axis 1 takes 2\.\.40 but .* declares 2\.\.16 there"):
        ModuleAdapter.for_package(Pair().eval(), path, inputs=[parse_input_option("a:1,2..40,4")])
    with pytest.raises(ConfigError, match=r"T is 2\.\.16 here but 2\.\.8 for 'a'; inputs sharing a range take one span"):
        ModuleAdapter.for_package(Pair().eval(), path, inputs=[parse_input_option("a:1,T=2..8,4")])
    both = ModuleAdapter.for_package(Pair().eval(), path, inputs=[parse_input_option("a:1,T=2..8,4"), parse_input_option("b:1,T=2..8,4")])
    assert max(s.calls[0]["a"].shape[1] for s in both.samples(4)) <= 8


class Recurrent(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.rnn = layer

    def forward(self, x):
        return self.rnn(x)[0]


class Gate(nn.Module):
    """A Python branch on a tensor's values: the trace keeps the branch the example takes."""

    def forward(self, x):
        if x.mean() > 0:
            return x * 2
        return -x


class Rows(nn.Module):
    def forward(self, x):
        return torch.stack([row * k for k, row in enumerate(x)])  # as many rows as the example's


class Sizes(nn.Module):
    """Python numbers read from sizes only, as attention scales are: nothing frozen but sizes."""

    def forward(self, x):
        return x / math.sqrt(x.shape[-1]) + int(x.shape[1])


def test_a_value_the_trace_froze_is_a_warning_naming_the_model_line(tmp_path):
    """Every TracerWarning was silenced: a package that always took the example's branch passed
    every check (they draw like the example) with no word. The froze-a-value ones are now a
    TraceWarning naming the model's line; sizes, weights and torch's own notes stay quiet."""
    with pytest.warns(TraceWarning) as caught:
        _, report = coreml_lstm.convert(Gate(), torch.randn(1, 8, 3) + 0.5, tmp_path / "g.mlpackage", samples=2)
    assert report.status == "passed"  # the checks cannot see it: the warning is the only sign
    [w] = [w for w in caught if w.category is TraceWarning]
    line = inspect.getsourcelines(Gate.forward)[1] + 1
    assert str(w.message) == (f"{__file__}:{line}: the trace turned a tensor computed from the inputs into a Python boolean: the package "
                              "keeps the example's value there (an if on a tensor takes the example's branch for every input), and checks "
                              "drawn like the example pass; compute it with tensor ops (torch.where, masks) instead")
    assert w.filename == __file__  # Python shows it at the convert call
    with pytest.warns(TraceWarning, match=r"test_user_model_api.py:\d+: the trace unrolled a loop over a tensor computed from the inputs"):
        coreml_lstm.convert(Rows(), torch.randn(3, 4), tmp_path / "r.mlpackage", samples=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceWarning)
        _, report = coreml_lstm.convert(Sizes(), torch.randn(1, 5, 4), tmp_path / "s.mlpackage", samples=1)
        assert report.status == "passed"
        gru = nn.GRU(3, 4, num_layers=2, dropout=0.2, batch_first=True)  # torch's notes on dropout and its shape checks
        coreml_lstm.convert(Recurrent(gru), torch.randn(1, 5, 3), tmp_path / "gru.mlpackage", samples=1)


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=6))
def test_int64_feeds_are_cast_to_int32_only_when_they_fit(values):
    """run and verify --inputs cast int64 feeds to the declared int32 unchecked: id 2**32 + 3
    wrapped to 3, and both reported on ids the file does not hold; the executor's own range check
    never saw them. A feed that does not fit stays int64, for the executor to refuse."""
    from coreml_lstm.adapter import cast_to

    feed = np.array(values, np.int64)
    got = cast_to({"ids": np.int32}, {"ids": feed})["ids"]
    fits = all(-(2**31) <= v < 2**31 for v in values)
    assert got.dtype == (np.int32 if fits else np.int64) and got.tolist() == values


def test_a_zero_size_example_is_refused_and_an_empty_output_is_never_passed(tmp_path):
    """An example of shape (1, 0, 3) converted and every check 'passed' on no values at all."""
    from coreml_lstm.verify import DEFAULT_TOLERANCES, compare_many

    with pytest.raises(ConfigError, match=r"example input 'x' has shape \(1, 0, 3\): a size of 0 holds no values"):
        coreml_lstm.convert(torch.nn.Linear(3, 3).eval(), {"x": torch.randn(1, 0, 3)}, tmp_path / "z.mlpackage")
    assert not (tmp_path / "z.mlpackage").exists()
    empty = np.zeros((1, 0, 3), np.float32)
    check = compare_many("y", [empty, empty], [empty, empty], DEFAULT_TOLERANCES["fp32"], backend="executor", mode="fp32")
    assert check.status == "skipped" and "nothing to compare" in check.reason
    assert compare_many("y", [np.zeros((1, 2))], [empty], DEFAULT_TOLERANCES["fp32"], backend="executor", mode="fp32").status == "failed"


@pytest.mark.parametrize("bounds", [(), (1, -1)])
def test_an_unbounded_range_says_it_needs_an_upper_bound(tmp_path, bounds):
    """ct.RangeDim() (coremltools' unbounded) read as 'the lower bound is above the upper bound'."""
    import coremltools as ct

    with pytest.raises(ConfigError, match=r"range 1\.\.-1: no upper bound; give the largest size the model takes"):
        coreml_lstm.convert(torch.nn.Linear(3, 3).eval(), torch.randn(1, 4, 3), tmp_path / "r.mlpackage",
                            inputs={"input": (1, ct.RangeDim(*bounds), 3)})


def test_a_report_says_what_its_random_samples_were(tmp_path):
    """A check covers the values it drew, no more: the report says which (from the example at
    conversion, from the package's record later), so a reader sees a narrow or shifted draw."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    example = 1000 + 5 * torch.randn(16, 4)
    path, report = coreml_lstm.convert(model, example, tmp_path / "m.mlpackage", samples=1)
    mean, std = float(example.double().mean()), float(example.double().std(unbiased=False))
    assert report.drawn == f"random values: input normal(mean {mean:.4g}, std {std:.4g})"
    later = coreml_lstm.verify(model, path, samples=1)
    assert later.drawn == report.drawn and later.to_dict()["drawn"] == report.drawn
    assert coreml_lstm.verify(model, path, {"input": example.numpy()}).drawn == ""  # the caller's own values


class Ids(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.head = nn.Embedding(50, 8), nn.Linear(8, 2)

    def forward(self, ids):
        return self.head(self.emb(ids))


def test_an_output_named_like_an_input_is_refused_in_one_line(tmp_path):
    """coremltools' graph pass said 'Var names ['scale'] is used both as function's input and output'."""
    with pytest.raises(ConfigError, match=r"^outputs: 'x' is also the name of an input or a state; a Core ML program names a value once"):
        coreml_lstm.convert(Scale(), (torch.randn(2, 3), torch.randn(2, 3)), tmp_path / "n.mlpackage", outputs=["x"])
    assert list(tmp_path.iterdir()) == []
    class Named(nn.Module):
        def forward(self, output):
            return output * 2
    path, report = coreml_lstm.convert(Named(), torch.randn(2, 3), tmp_path / "o.mlpackage", samples=1)  # default name moves aside
    assert report.status == "passed" and [c.output for c in report.checks if c.backend == "executor"] == ["output_"]


def test_a_package_taking_ids_as_floats_is_checked_on_integers(tmp_path):
    """A package converted with a float16 ids input (ct.TensorType(dtype=np.float16)) drew
    random floats the embedding refused, and the advice (--inputs, value ranges) did not help."""
    ct = coremltools()
    torch.manual_seed(0)
    model = Ids().eval()
    traced = torch.jit.trace(model, torch.randint(0, 50, (1, 5)))
    package = tmp_path / "ids.mlpackage"
    ct.convert(traced, inputs=[ct.TensorType(name="ids", shape=(1, 5), dtype=np.float16)], convert_to="mlprogram",
               minimum_deployment_target=ct.target.iOS16).save(str(package))
    with pytest.raises(ConfigError, match=r"the module takes integers where the package declares floats \(ids\): give integer values, "
                                          r"--input ids:1,5:int32:LO\.\.HI \(in Python, inputs= of integer arrays\)"):
        coreml_lstm.verify(model, package, samples=1)
    report = coreml_lstm.verify(model, package, {"ids": np.arange(5, dtype=np.int32)[None] * 9})
    assert report.status == "passed", format_report(report)
    int_path, _ = coreml_lstm.convert(model, torch.randint(0, 50, (1, 5)), tmp_path / "int.mlpackage", samples=1)
    with pytest.raises(ConfigError, match=r"^inputs: 'ids' takes integers \(int32\); the value is float32: give integer values \(they are not rounded\)"):
        coreml_lstm.verify(model, int_path, {"ids": np.arange(5.0)[None]})  # was torch's 'Expected tensor ... Long, Int'


def test_a_half_or_bfloat16_module_the_converter_refuses_is_told_what_converts(tmp_path):
    """The converter's dtype mismatch (half LSTM) and 'Got unsupported ScalarType BFloat16' named no cause."""
    with pytest.raises(ExportError, match=r"the module's weights are float16: convert model\.float\(\) with precision='fp16'"):
        coreml_lstm.convert(Recurrent(nn.LSTM(3, 4)).half().eval(), torch.randn(5, 1, 3).half(), tmp_path / "h.mlpackage")
    with pytest.raises(ExportError, match=r"the module's weights are bfloat16: convert model\.float\(\) with precision='fp16'"):
        coreml_lstm.convert(nn.Linear(3, 2).to(torch.bfloat16).eval(), torch.randn(2, 3).to(torch.bfloat16), tmp_path / "b.mlpackage")
    assert list(tmp_path.iterdir()) == []


class Masked(nn.Module):
    def forward(self, x, mask):
        return x.sum(-1) * mask


def test_inputs_that_must_share_a_length_drawn_apart_are_told_to_name_one_range(tmp_path):
    """The advice was value ranges, and the package left behind was not said to be unchecked."""
    example = (torch.randn(1, 5, 3), torch.ones(1, 5))
    with pytest.raises(ConfigError, match=r"if inputs 'x' and 'mask' share a length, name one range on both .* "
                                          r"\(the package .*m\.mlpackage is written; it was not checked\)$"):
        coreml_lstm.convert(Masked(), example, tmp_path / "m.mlpackage", inputs={"x": (1, "1..8", 3), "mask": (1, "1..8")}, samples=4)
    path, report = coreml_lstm.convert(Masked(), example, tmp_path / "t.mlpackage", inputs={"x": (1, "T=1..8", 3), "mask": (1, "T=1..8")}, samples=4)
    assert report.status == "passed", format_report(report)


class Centre(nn.Module):
    def forward(self, x):
        return x - x.mean(1, keepdim=True)


def test_a_small_output_of_large_inputs_is_not_held_below_their_rounding(tmp_path):
    """Readings near 9.81 (a phone lying still), centred: the outputs' root mean square (1e-3)
    made the bar 1e-7 and a package equal to torch up to float32 rounding of 9.81 failed."""
    torch.manual_seed(0)
    example = 9.81 + 1e-3 * torch.randn(1, 50, 3)
    path, report = coreml_lstm.convert(Centre(), example, tmp_path / "c.mlpackage", samples=4)
    assert report.status == "passed", format_report(report)
    [check, *_] = [c for c in report.checks if c.backend == "executor"]
    assert check.unit == pytest.approx(0.981, rel=1e-3)  # a tenth of the inputs' root mean square


def test_a_float16_input_or_output_type_asked_for_is_said_to_be_float32(tmp_path):
    """ct.TensorType(dtype=np.float16) on an input or output was made float32 without a word."""
    from coreml_lstm.errors import ConvertWarning

    ct = coremltools()
    model = nn.Sequential(nn.Linear(4, 3)).eval()
    with pytest.warns(ConvertWarning) as caught:
        path, report = coreml_lstm.convert(model, torch.randn(2, 4), tmp_path / "h.mlpackage", samples=1,
                                           inputs=[ct.TensorType(name="input", shape=(2, 4), dtype=np.float16)],
                                           outputs=[ct.TensorType(name="y", dtype=np.float16)])
    assert sorted(str(w.message).split(":")[0] for w in caught if issubclass(w.category, ConvertWarning)) == ["inputs", "outputs"]
    assert report.status == "passed"
