"""Malformed packages and feeds: one-line errors naming what is wrong, nothing run."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import coreml_lstm.executor as ex
from coreml_lstm.errors import FeedError, PackageError, UnsupportedOpError
from coreml_lstm.zoo import Case, convert, lstm


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    case = Case("lstm-range", lstm(1), flexible="range")
    _, feeds, path, _ = convert(case, tmp_path_factory.mktemp("pkg"))
    return path


@pytest.fixture
def copy(package, tmp_path):
    dest = tmp_path / "m.mlpackage"
    shutil.copytree(package, dest)
    return dest


def weight_file(path):
    return path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"


def one_line(exc):
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_missing_manifest(copy):
    (copy / "Manifest.json").unlink()
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert one_line(e) == f"{copy}: missing Manifest.json; not an .mlpackage"


def test_not_a_directory(tmp_path):
    f = tmp_path / "x.mlpackage"
    f.write_text("hi")
    with pytest.raises(PackageError) as e:
        ex.load(f)
    assert one_line(e) == f"{f}: not a .mlpackage directory"


def test_missing_weight_file(copy):
    weight_file(copy).unlink()
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert one_line(e) == f"{copy}: missing weight file weight.bin"


def test_truncated_weight_file(copy):
    data = weight_file(copy).read_bytes()
    weight_file(copy).write_bytes(data[: len(data) // 2])
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert "past the end of the file" in one_line(e)


def test_wrong_sentinel(copy):
    data = bytearray(weight_file(copy).read_bytes())
    data[64:68] = (0x12345678).to_bytes(4, "little")
    weight_file(copy).write_bytes(bytes(data))
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert one_line(e).endswith("wrong sentinel 0x12345678 (expected 0xDEADBEEF)")


def test_unknown_dtype_code(copy):
    data = bytearray(weight_file(copy).read_bytes())
    data[68:72] = (99).to_bytes(4, "little")
    weight_file(copy).write_bytes(bytes(data))
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert "unknown dtype code 99" in one_line(e)


def test_dtype_code_that_disagrees_with_the_program(copy):
    data = bytearray(weight_file(copy).read_bytes())
    data[68:72] = (1).to_bytes(4, "little")  # says fp16; the program declares fp32
    weight_file(copy).write_bytes(bytes(data))
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert "holds fp16 data (dtype code 1) but the program declares fp32" in one_line(e)


def test_offset_past_the_end(copy):
    from coreml_lstm.executor import _proto

    model_path = copy / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = _proto.model_pb2().Model()
    spec.ParseFromString(model_path.read_bytes())
    block = spec.mlProgram.functions["main"].block_specializations[spec.mlProgram.functions["main"].opset]
    for op in block.operations:
        if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue":
            op.attributes["val"].blobFileValue.offset = 10**9
            break
    model_path.write_bytes(spec.SerializeToString())
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert "at offset 1000000000: offset past the end of the file" in one_line(e)


def test_unknown_op_fails_at_load(copy):
    from coreml_lstm.executor import _proto

    model_path = copy / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = _proto.model_pb2().Model()
    spec.ParseFromString(model_path.read_bytes())
    block = spec.mlProgram.functions["main"].block_specializations[spec.mlProgram.functions["main"].opset]
    target = next(op for op in block.operations if op.type == "linear")
    target.type = "fancy_linear"
    model_path.write_bytes(spec.SerializeToString())
    with pytest.raises(UnsupportedOpError) as e:
        ex.load(copy)
    msg = one_line(e)
    assert msg.startswith(f"{copy}: op 'fancy_linear' has no executor kernel for opset CoreML7 (iOS17); supported: ")
    assert "lstm" in msg and "while_loop" in msg


def test_feed_errors(package):
    prog = ex.load(package)
    x = np.zeros((2, 7, 5), np.float32)
    with pytest.raises(FeedError) as e:
        prog.predict({})
    assert one_line(e) == "missing input 'x' (expected float32 of shape (2, 1..64, 5))"
    with pytest.raises(FeedError) as e:
        prog.predict({"x": x, "z": x})
    assert one_line(e) == "unknown input 'z'; the model's inputs are x"
    with pytest.raises(FeedError) as e:
        prog.predict({"x": np.zeros((2, 7), np.float32)})
    assert one_line(e) == "input 'x': expected shape (2, 1..64, 5), got (2, 7)"
    with pytest.raises(FeedError) as e:
        prog.predict({"x": np.zeros((2, 65, 5), np.float32)})
    assert one_line(e) == "input 'x': expected shape (2, 1..64, 5), got (2, 65, 5)"
    with pytest.raises(FeedError) as e:
        prog.predict({"x": x.astype(object)})
    assert one_line(e) == "input 'x': expected float32, got object"


def test_int_input_rejects_floats(tmp_path):
    from coreml_lstm.zoo import embedding_lstm

    _, feeds, path, _ = convert(Case("emb", embedding_lstm()), tmp_path)
    prog = ex.load(path)
    with pytest.raises(FeedError) as e:
        prog.predict({"tokens": feeds["tokens"].astype(np.float32)})
    assert one_line(e) == "input 'tokens': expected int32, got float32"
    # Ids above 2048 survive: the input really is int32.
    assert feeds["tokens"].max() > 2048
    assert prog.inputs[0].dtype == np.int32


def test_import_needs_neither_torch_nor_the_converter(package):
    code = (
        "import sys, time; t = time.perf_counter(); import coreml_lstm.executor as ex; dt = time.perf_counter() - t;"
        f"p = ex.load({str(package)!r}); import numpy as np;"
        "p.predict({'x': np.zeros((2, 7, 5), np.float32)});"
        "print('torch' in sys.modules, 'coremltools' in sys.modules, dt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["False", "False"], out
    print(f"executor import time: {float(out[2]):.3f} s")
