"""coreml-lstm convert / verify / diagnose on a user's model file: a TorchScript archive and a
torch.export program (.pt2); bad input gives one exact line and leaves no package behind."""

import json
import re
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from coreml_lstm.cli import main

from .test_user_model_api import PassThrough, Recurrent


class ConvLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.lstm = nn.LSTM(8, 12, batch_first=True)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):  # (1, T, 4)
        y, _ = self.lstm(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))
        return self.fc(y[:, -1])


class ConvPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):  # (1, T, 4)
        return self.fc(torch.relu(self.conv(x.transpose(1, 2))).mean(-1))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    model = ConvLSTM().eval()
    x = torch.randn(1, 10, 4)
    torch.jit.save(torch.jit.trace(model, x), str(d / "m.pt"))
    # torch.export keeps nn.LSTM's sequence length fixed (the program records (1, 10, 4)); a
    # convolutional model keeps the dynamic T it was exported with.
    torch.export.save(torch.export.export(model, (x,)), str(d / "m.pt2"))
    T = torch.export.Dim("T", min=2, max=40)
    torch.export.save(torch.export.export(ConvPool().eval(), (x,), dynamic_shapes={"x": {1: T}}), str(d / "conv.pt2"))
    torch.save(model, str(d / "pickled.pt"))  # a whole-module pickle: never loaded
    (d / "raw.pkl").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return d, model


def test_convert_and_verify_a_torchscript_archive(files, tmp_path):
    d, model = files
    package = tmp_path / "ts.mlpackage"
    r = run("convert", d / "m.pt", package, "--input", "x:1,2..40,4", "--output", "logits", "--samples", "3")
    assert r.exit_code == 0, r.output
    assert f"package: {package} (fp32, iOS16)" in r.stdout and "result: passed" in r.stdout
    assert "PASSED logits (x (1, 2, 4)) [executor, fp32]" in r.stdout and "PASSED logits (x (1, 40, 4))" in r.stdout
    r = run("verify", d / "m.pt", package, "--json", "--samples", "4", "--junit", tmp_path / "v.xml")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    executor = [c for c in report["checks"] if c["backend"] == "executor"]
    assert report["status"] == "passed" and len(executor) == 4 and {c["output"] for c in executor} == {"logits"}
    assert re.fullmatch(r"random values: x normal\(mean -?[0-9.e-]+, std [0-9.e-]+\)", report["drawn"]), report["drawn"]
    assert max(c["max_abs"] for c in executor) < 1e-4
    from junitparser import JUnitXml

    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "v.xml"))))
    assert suite.tests == 5 and suite.failures == 0 and suite.skipped == 1
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones((1, 7, 4), np.float32))
    r = run("verify", d / "m.pt", package, "--inputs", feeds)
    assert r.exit_code == 0 and "PASSED logits (x (1, 7, 4))" in r.stdout and "on 1 samples" in r.stdout
    # numpy's float64 and JSON's numbers are cast to the package's float32, as `run` does.
    np.savez(tmp_path / "f64.npz", x=np.ones((1, 5, 4)))
    (tmp_path / "f.json").write_text(json.dumps({"x": np.linspace(-1, 1, 12).reshape(1, 3, 4).tolist()}))
    r = run("verify", d / "m.pt", package, "--inputs", tmp_path / "f64.npz", "--inputs", tmp_path / "f.json")
    assert r.exit_code == 0 and "PASSED logits (x (1, 5, 4))" in r.stdout and "PASSED logits (x (1, 3, 4))" in r.stdout, r.output
    (tmp_path / "ragged.json").write_text(json.dumps({"x": [[[1, 2, 3, 4]], [[1, 2]]]}))
    r = run("verify", d / "m.pt", package, "--inputs", tmp_path / "ragged.json")
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path / 'ragged.json'}: 'x' is not a rectangular array (its rows differ in length)\n"
    # The same archive against another model's package: exit 1, the output named.
    torch.manual_seed(1)
    torch.jit.save(torch.jit.trace(ConvLSTM().eval(), torch.randn(1, 10, 4)), str(tmp_path / "other.pt"))
    r = run("verify", tmp_path / "other.pt", package, "--samples", "2")
    assert r.exit_code == 1 and "FAILED logits (x (1, 2, 4)) [executor, fp32]" in r.stdout and "result: failed" in r.stdout


def test_convert_and_verify_a_torch_export_program(files, tmp_path):
    d, _ = files
    package = tmp_path / "ep.mlpackage"
    # The LSTM program: shapes as the program records them; an fp16 package for iOS17.
    r = run("convert", d / "m.pt2", package, "--precision", "fp16", "--target", "iOS17", "--samples", "2", "--json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["report"]["status"] == "passed" and result["precision"] == "fp16"
    info = json.loads(run("inspect", package, "--json").stdout)
    assert info["inputs"][0] == {**info["inputs"][0], "name": "x", "dtype": "float32", "shape": [1, 10, 4]}
    assert info["outputs"][0]["name"] == "output" and info["outputs"][0]["dtype"] == "float32"
    assert info["op_counts"]["lstm"] == 1
    r = run("verify", d / "m.pt2", package, "--samples", "2")
    assert r.exit_code == 0 and "[executor, fp16]" in r.stdout, r.output
    # The convolutional program: T in 2..40, as torch.export recorded it.
    package = tmp_path / "conv.mlpackage"
    r = run("convert", d / "conv.pt2", package, "--samples", "3", "--json")
    assert r.exit_code == 0, r.output
    sizes = [c["size"] for c in json.loads(r.stdout)["report"]["checks"] if c["backend"] == "executor"]
    assert sizes[:2] == ["x (1, 2, 4)", "x (1, 40, 4)"] and len(sizes) == 3
    assert json.loads(run("inspect", package, "--json").stdout)["inputs"][0]["shape_range"] == [[1, 1], [2, 40], [4, 4]]


class MeanOverTime(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):  # sizes read in forward: a mean by hand, positions from arange
        return self.fc(x.sum(1) / x.shape[1]) + torch.arange(x.shape[1]).float().mean()


def test_a_pt2_program_reading_its_input_sizes_is_warned_of(tmp_path):
    """Converting a .pt2 traces it, and the trace keeps the example's size where forward reads
    x.shape[1]: the package is wrong at other lengths. It was not said."""
    torch.manual_seed(0)
    T = torch.export.Dim("T", min=2, max=32)
    model = MeanOverTime().eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 6, 4),), dynamic_shapes={"x": {1: T}}), str(tmp_path / "m.pt2"))
    r = run("convert", tmp_path / "m.pt2", tmp_path / "m.mlpackage", "--samples", "3", "--json")
    result = json.loads(r.stdout)
    assert result["warnings"] == ["m.pt2: the program reads the size of x axis 1 in forward (x.shape[...]); converting a .pt2 traces it, "
                                  "which keeps the example's size there, so the package may be wrong at other sizes (the checks at both "
                                  "ends of the range say); save the module as TorchScript (torch.jit.save(torch.jit.trace(model, example))), "
                                  "whose trace keeps sizes"]
    assert r.exit_code == 1 and result["report"]["status"] == "failed"
    torch.jit.save(torch.jit.trace(model, torch.randn(1, 6, 4)), str(tmp_path / "m.pt"))
    r = run("convert", tmp_path / "m.pt", tmp_path / "ts.mlpackage", "--input", "x:1,2..32,4", "--samples", "3")
    assert r.exit_code == 0 and "warning" not in r.output, r.output


@pytest.mark.parametrize(
    "model, options, message",
    [
        ("missing.pt", ["--input", "x:1,10,4"], "{d}/missing.pt: no such file or directory"),
        ("pickled.pt", ["--input", "x:1,10,4"], "{d}/pickled.pt: a torch.save archive, not TorchScript: loading it would unpickle arbitrary "
                                                "objects; save the model with torch.jit.save(torch.jit.trace(model, example), path)"),
        ("raw.pkl", ["--input", "x:1,10,4"], "{d}/raw.pkl: not a TorchScript archive or a torch.export program (.pt2); save the model with "
                                             "torch.jit.save(torch.jit.trace(model, example), path) or torch.export.save"),
        ("m.pt", ["--input", "x:1,1..x,4"], "--input 'x:1,1..x,4': dimension '1..x': expected a size (16) or a range (1..64)"),
        ("m.pt", ["--input", "y:1,10,4"], "--input 'y': not an input of m.pt; its inputs are x"),
        ("m.pt", ["--input", "x:1,64..2,4"], "--input 'x:1,64..2,4': range 64..2: the lower bound is above the upper bound"),
        ("m.pt", [], "m.pt: input 'x' has no shape; give --input NAME:SHAPE (e.g. --input x:1,100,16)"),
        ("m.pt", ["--input", "x"], "--input 'x': expected NAME:SHAPE[:DTYPE[:LO..HI]], e.g. x:1..64,100,16 or ids:1,32:int32:0..999"),
        ("m.pt", ["--input", "x:1,10,4:complex64"],
         "--input 'x:1,10,4:complex64': dtype 'complex64': expected one of float32, int32, bool, int64, int16, int8, uint8, float64, float16"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_package(files, tmp_path, model, options, message):
    d, _ = files
    r = run("convert", d / model, tmp_path / "out.mlpackage", *options)
    assert r.exit_code == 1
    assert r.output == f"Error: {message.format(d=d)}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_refused_conversion_names_the_layer(tmp_path):
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

    torch.jit.save(torch.jit.trace(Net().eval(), torch.randn(1, 5, 4)), str(tmp_path / "n.pt"))
    r = run("convert", tmp_path / "n.pt", tmp_path / "n.mlpackage", "--input", "x:1,1..9,4")
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert r.output.startswith("Error: conversion failed: ")
    assert r.output == "Error: conversion failed: in Net.forward: torch op 'fmod' has no Core ML conversion in coremltools\n", r.output
    assert not (tmp_path / "n.mlpackage").exists()


def test_a_torch_export_dimension_without_an_upper_bound_needs_a_shape(tmp_path):
    T = torch.export.Dim("T")  # torch's default: no upper bound, which Core ML needs
    torch.export.save(torch.export.export(ConvPool().eval(), (torch.randn(1, 6, 4),), dynamic_shapes={"x": {1: T}}), str(tmp_path / "u.pt2"))
    r = run("convert", tmp_path / "u.pt2", tmp_path / "u.mlpackage")
    assert r.exit_code == 1
    assert r.output == ("Error: u.pt2: input 'x' has no shape (the range of its axis 1 has no upper bound); "
                        "give --input NAME:SHAPE (e.g. --input x:1,100,16)\n")
    r = run("convert", tmp_path / "u.pt2", tmp_path / "u.mlpackage", "--input", "x:1,2..32,4", "--samples", "2")
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output


def test_a_torchscript_failure_shows_the_error_not_the_interpreter_s_preamble(tmp_path):
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)

        def forward(self, ids):
            return self.embed(ids).mean(1)

    torch.jit.save(torch.jit.trace(Tagger().eval(), torch.randint(0, 50, (1, 12))), str(tmp_path / "t.pt"))
    r = run("convert", tmp_path / "t.pt", tmp_path / "t.mlpackage", "--input", "ids:1,2..32")  # not declared int32
    assert r.exit_code == 1 and r.output.startswith("Error: the model fails on inputs of shape ids (1, 2): RuntimeError: Expected tensor for argument #1 'indices'"), r.output
    assert "TorchScript interpreter" not in r.output and not (tmp_path / "t.mlpackage").exists()
    # int64, the dtype the archive takes, as the API takes an int64 example: an int32 input of the package (it was refused).
    r = run("convert", tmp_path / "t.pt", tmp_path / "t.mlpackage", "--input", "ids:1,2..32:int64:0..49", "--samples", "2")
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output
    info = json.loads(run("inspect", tmp_path / "t.mlpackage", "--json").stdout)
    assert info["inputs"][0]["dtype"] == "int32"
    r = run("verify", tmp_path / "t.pt", tmp_path / "t.mlpackage", "--samples", "2")
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output


class NotMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x, mask):  # mask: bool (1, T), True = keep
        return self.fc(x).masked_fill(~mask.unsqueeze(-1), -1e4).max(1).values


def test_a_torchscript_archive_with_a_bool_input(tmp_path, caplog):
    """``--input mask:1,10:bool``: an int32 package input of 0/1, fed to torch as bool, cast to bool
    in the program (``~mask`` works); bool was refused and int32 fed torch int64."""
    torch.manual_seed(0)
    archive, package = tmp_path / "mask.pt", tmp_path / "mask.mlpackage"
    torch.jit.save(torch.jit.trace(NotMask().eval(), (torch.randn(1, 10, 4), torch.rand(1, 10) > 0.5)), str(archive))
    r = run("convert", archive, package, "--input", "x:1,10,4", "--input", "mask:1,10:int32:0..1")
    assert r.exit_code == 1 and r.output.startswith("Error: the model fails on inputs of shape x (1, 10, 4), mask (1, 10): RuntimeError: ")
    assert r.output.endswith(" (a bool input is --input mask:1,10:bool)\n"), r.output
    r = run("convert", archive, package, "--input", "x:1,10,4", "--input", "mask:1,10:bool", "--samples", "3")
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output
    assert "experimental" not in r.output and "experimental" not in caplog.text  # said of every loaded archive, traced ones too
    info = json.loads(run("inspect", package, "--json").stdout)
    assert {i["name"]: i["dtype"] for i in info["inputs"]} == {"x": "float32", "mask": "int32"}
    r = run("verify", archive, package, "--samples", "3")
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output
    r = run("verify", archive, package, "--samples", "2", "--input", "mask:1,10:int32:0..1")  # the package says torch takes it as bool
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output


@pytest.mark.parametrize("layer, shape, message", [
    (nn.LSTM(4, 8, proj_size=2, batch_first=True), "1,5,4",
     "layer 'rnn': nn.LSTM with proj_size > 0 has no Core ML lstm equivalent; use proj_size=0 and an nn.Linear after the LSTM"),
    (nn.RNN(4, 8, bidirectional=True, batch_first=True), "1,5,4",
     "layer 'rnn': bidirectional nn.RNN does not convert; use a bidirectional nn.GRU or nn.LSTM, or two nn.RNN (one on the reversed sequence)"),
    (nn.GRUCell(4, 8), "2,4",
     "layer 'rnn': nn.GRUCell does not convert under TorchScript; use nn.GRU (a one-layer GRU over the sequence, or over one step for streaming)"),
])
@pytest.mark.parametrize("how", ["trace", "script"])
def test_a_torchscript_archive_gets_the_layer_advice_the_python_api_gives(tmp_path, layer, shape, message, how):
    """Archives skipped the preflight: coremltools' internals (Incorrect weights shape for lstm
    layer, Bidirectional simple RNN not supported, unsafe_chunk) instead of the advice."""
    model = Recurrent(layer).eval()
    example = torch.randn(*map(int, shape.split(",")))
    torch.jit.save(torch.jit.trace(model, example) if how == "trace" else torch.jit.script(model), str(tmp_path / "r.pt"))
    r = run("convert", tmp_path / "r.pt", tmp_path / "r.mlpackage", "--input", f"x:{shape}")
    assert r.exit_code == 1 and r.output == f"Error: {message}\n"
    assert not (tmp_path / "r.mlpackage").exists()


def test_an_archive_returning_an_input_unchanged_is_refused_in_one_line(tmp_path):
    torch.jit.save(torch.jit.trace(PassThrough().eval(), torch.randn(1, 4)), str(tmp_path / "p.pt"))
    r = run("convert", tmp_path / "p.pt", tmp_path / "p.mlpackage", "--input", "x:1,4", "--output", "y", "--output", "x_out")
    assert r.exit_code == 1 and r.output == ("Error: output 'x_out' is the input 'x' unchanged: a Core ML program cannot return an input as it is "
                                             "(coremltools drops a copy such as x.clone() too); return x + 0, or leave it out\n")
    assert not (tmp_path / "p.mlpackage").exists()


def test_a_value_the_trace_froze_is_one_warning_line(tmp_path, monkeypatch):
    """A TraceWarning (see test_user_model_api) prints as one line on stderr, not Python's two."""
    import warnings

    import coreml_lstm.export
    from coreml_lstm.errors import TraceWarning

    export = coreml_lstm.export.export

    def warning_export(*args, **kwargs):
        warnings.warn("model.py:7: the trace turned a tensor computed from the inputs into a Python boolean", TraceWarning)
        return export(*args, **kwargs)

    monkeypatch.setattr(coreml_lstm.export, "export", warning_export)
    torch.jit.save(torch.jit.trace(ConvPool().eval(), torch.randn(1, 6, 4)), str(tmp_path / "c.pt"))
    r = run("convert", tmp_path / "c.pt", tmp_path / "c.mlpackage", "--input", "x:1,6,4", "--samples", "1")
    assert r.exit_code == 0, r.output
    assert "warning: model.py:7: the trace turned a tensor computed from the inputs into a Python boolean\n" in r.stderr
    assert "TraceWarning" not in r.output
    # --json carries it too (it printed only on stderr, so a CI reading the JSON never saw it).
    r = run("convert", tmp_path / "c.pt", tmp_path / "c2.mlpackage", "--input", "x:1,6,4", "--samples", "1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["warnings"] == ["model.py:7: the trace turned a tensor computed from the inputs into a Python boolean"]


def test_an_archive_updating_a_buffer_is_refused_in_one_line(tmp_path):
    from .test_user_model_api import Counter

    torch.jit.save(torch.jit.trace(Counter(), torch.ones(1, 3), check_trace=False), str(tmp_path / "c.pt"))
    r = run("convert", tmp_path / "c.pt", tmp_path / "c.mlpackage", "--input", "x:1,3")
    assert r.exit_code == 1 and r.output == ("Error: forward updates buffer 'count': the package would keep it at its value at conversion; stop "
                                             "updating it in forward, or convert the module from Python with states=['count'] (target iOS18)\n")
    assert not (tmp_path / "c.mlpackage").exists()


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x)
        return y, y.argmax(-1)


def test_naming_fewer_outputs_than_the_module_returns_says_to_name_each(tmp_path):
    torch.jit.save(torch.jit.trace(TwoOutputs().eval(), torch.randn(1, 4)), str(tmp_path / "t.pt"))
    package = tmp_path / "t.mlpackage"
    r = run("convert", tmp_path / "t.pt", package, "--input", "x:1,4", "--output", "scores", "--output", "label", "--samples", "2")
    assert r.exit_code == 0 and "result: passed" in r.stdout, r.output
    r = run("verify", tmp_path / "t.pt", package, "--output", "label", "--samples", "2")
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.endswith("the module returns 2 outputs but 1 are named (label): "
                             "name every output, in the order the module returns them (--output NAME for each)\n"), r.output


def test_verify_of_a_fixed_size_program_against_a_flexible_package_says_sizes(files, tmp_path):
    """A .pt2 exported at a fixed length, verified against a package with a range, failed with
    torch.export's guard and advice to give value ranges; the sizes are the matter."""
    d, _ = files
    package = tmp_path / "flex.mlpackage"
    assert run("convert", d / "m.pt", package, "--input", "x:1,2..12,4", "--samples", "2").exit_code == 0
    r = run("verify", d / "m.pt2", package, "--samples", "2")
    assert r.exit_code == 1 and "Guard failed" in r.output and "the program was exported for other sizes than the package takes" in r.output, r.output
    assert len(r.output.splitlines()) == 1
