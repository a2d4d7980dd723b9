
import numpy as np
import torch
import pytest

from coreml_lstm import Forecaster
from coreml_lstm._coremltools import coremltools
from coreml_lstm.errors import ConfigError, ExportError
from coreml_lstm.export import read_metadata

from .conftest import FAST


@pytest.fixture(scope="module")
def fitted():
    from .conftest import sine_table

    return Forecaster("y0", time="t", **FAST).fit(sine_table())


def spec_of(path):
    ct = coremltools()
    return ct.models.MLModel(str(path), skip_model_load=True).get_spec()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_io_is_fp32_with_the_window_shape(tmp_path, fitted, precision):
    path = fitted.export(tmp_path / "m.mlpackage", precision=precision, target="iOS17")
    spec = spec_of(path)
    ft = coremltools().proto.FeatureTypes_pb2.ArrayFeatureType
    (inp,) = spec.description.input
    (out,) = spec.description.output
    assert inp.name == "window" and out.name == "forecast"
    assert inp.type.multiArrayType.dataType == ft.FLOAT32
    assert out.type.multiArrayType.dataType == ft.FLOAT32
    assert list(inp.type.multiArrayType.shape) == [1, 8, 2]  # (batch, window, [y0, driver])
    assert "window" in inp.shortDescription.lower() or "rows" in inp.shortDescription
    ops = [op.type for op in spec.mlProgram.functions["main"].block_specializations[spec.mlProgram.functions["main"].opset].operations]
    assert "lstm" in ops
    # fp16 compute really computes in fp16 from iOS17 on (the casts are in the program).
    assert ("cast" in ops) == (precision == "fp16")


def test_metadata_carries_columns_window_normaliser_and_metrics(tmp_path, fitted):
    path = fitted.export(tmp_path / "m.mlpackage", author="Ada", license="MIT", version="1.2")
    spec = spec_of(path)
    assert spec.description.metadata.author == "Ada"
    assert spec.description.metadata.license == "MIT"
    assert spec.description.metadata.versionString == "1.2"
    meta = read_metadata(dict(spec.description.metadata.userDefined))
    assert meta["input_columns"] == ["y0", "driver"] and meta["target_columns"] == ["y0"]
    assert meta["window"] == 8 and meta["horizon"] == 1
    np.testing.assert_allclose(meta["normalizer"]["input_mean"], fitted.checkpoint_.normalizer.input_mean)
    assert meta["validation_metrics"]["rmse"] == pytest.approx(fitted.metrics_["overall"]["rmse"])
    assert meta["toolkit_version"]


def test_deployment_target_sets_the_spec_version(tmp_path, fitted):
    assert spec_of(fitted.export(tmp_path / "a.mlpackage", target="iOS15")).specificationVersion == 6
    assert spec_of(fitted.export(tmp_path / "b.mlpackage", target="macOS14")).specificationVersion == 8


def test_a_failed_save_leaves_nothing_behind(tmp_path, fitted, monkeypatch):
    ct = coremltools()

    def broken_save(self, path):
        import os

        os.makedirs(path)
        open(os.path.join(path, "partial"), "w").write("half")
        raise OSError("disk full")

    monkeypatch.setattr(ct.models.MLModel, "save", broken_save)
    dest = tmp_path / "m.mlpackage"
    with pytest.raises(ExportError, match="saving the package failed: disk full"):
        fitted.export(dest)
    assert list(tmp_path.iterdir()) == []


def test_replacing_an_existing_package_is_atomic(tmp_path, fitted, monkeypatch):
    dest = fitted.export(tmp_path / "m.mlpackage", target="iOS15")
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    ct = coremltools()
    monkeypatch.setattr(ct.models.MLModel, "save", lambda self, path: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        fitted.export(dest, target="iOS17")
    # The old package is intact and no temporary directory is left.
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    assert spec_of(dest).specificationVersion == 6
    assert [p.name for p in tmp_path.iterdir()] == ["m.mlpackage"]


def test_bad_destination(tmp_path, fitted):
    with pytest.raises(ConfigError) as e:
        fitted.export(tmp_path / "m.mlmodel")
    assert str(e.value) == f"{tmp_path / 'm.mlmodel'}: the output path must end in .mlpackage"


def test_bad_precision_and_target(tmp_path, fitted):
    with pytest.raises(ConfigError, match=r"precision: 'int8' is not one of fp32, fp16"):
        fitted.export(tmp_path / "m.mlpackage", precision="int8")
    with pytest.raises(ConfigError, match=r"target: 'iOS14' is not one of iOS15"):
        fitted.export(tmp_path / "m.mlpackage", target="iOS14")


class _Wrap(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.rnn = layer

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize(
    "layer, message",
    [
        (torch.nn.LSTM(4, 8, proj_size=2, batch_first=True),
         "layer 'rnn': nn.LSTM with proj_size > 0 has no Core ML lstm equivalent; use proj_size=0 and an nn.Linear after the LSTM"),
        (torch.nn.RNN(4, 8, bidirectional=True, batch_first=True),
         "layer 'rnn': bidirectional nn.RNN does not convert; use a bidirectional nn.GRU or nn.LSTM, or two nn.RNN (one on the reversed sequence)"),
        (torch.nn.LSTMCell(4, 8),
         "layer 'rnn': nn.LSTMCell does not convert under TorchScript; use nn.LSTM (a one-layer LSTM over the sequence, or over one step for streaming)"),
        (torch.nn.GRUCell(4, 8),
         "layer 'rnn': nn.GRUCell does not convert under TorchScript; use nn.GRU (a one-layer GRU over the sequence, or over one step for streaming)"),
    ],
)
def test_layers_core_ml_cannot_take_fail_before_conversion(layer, message):
    from coreml_lstm.export import ExportConfig, convert

    with pytest.raises(ExportError) as err:
        convert(_Wrap(layer), [("x", torch.zeros(1, 5, 4), "x")], [("y", "y")], ExportConfig())
    assert str(err.value) == message
