"""Malformed packages and feeds: one-line errors naming what is wrong, nothing run."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

import coreml_lstm.executor as ex
from coreml_lstm.errors import FeedError, PackageError, UnsupportedOpError
from coreml_lstm.executor import limits
from coreml_lstm.zoo import Case, convert, lstm

from . import hostile as H


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


# -- what a constant costs, outputs by name, types an op does not take --------------------------


def _fp16_empty_const(spec, name: str, n: int):
    """An fp16 const of n zeros, an empty immediate tensor (a few bytes in the protobuf)."""
    from coreml_lstm.executor import _proto

    op = _proto.mil_pb2().Operation()
    op.type = "const"
    out = op.outputs.add()
    out.name = name
    for t in (out.type.tensorType, op.attributes["val"].type.tensorType):
        t.dataType, t.rank = 10, 1  # fp16
        t.dimensions.add().constant.size = n
    op.attributes["val"].immediateValue.tensor.SetInParent()
    block = H.main_block(spec)
    ops = [op] + list(block.operations)
    del block.operations[:]
    block.operations.extend(ops)


def _ops(program):
    return {op.name: op for op in program.block.ops}


def test_an_fp16_constant_is_checked_at_the_float32_it_is_held_in(copy, monkeypatch):
    spec = H.read_spec(copy)
    _fp16_empty_const(spec, "half", 1 << 20)  # 2 MiB as fp16, 4 MiB as the float32 it is held in
    H.write_spec(copy, spec)
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", 3 << 20)
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert "a tensor of shape (1048576,) would need 4.0 MiB, more than the 3.0 MiB a tensor may take" in one_line(e)
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", 4 << 20)
    op = _ops(ex.load(copy))["half"]
    # one float32 copy for both modes (fp16 values are exact in float32), read-only, and the decoded
    # fp16 value let go
    assert op.folded[0] is op.folded16[0] and op.folded[0].dtype == np.float32 and not op.folded[0].flags.writeable
    assert op.attributes == {}


def test_a_blob_named_by_several_consts_is_decoded_once(copy):
    spec = H.read_spec(copy)
    block = H.main_block(spec)
    first = H.blob_consts(spec)[0]
    twins = []
    for k in range(3):
        twin = type(first)()
        twin.CopyFrom(first)
        twin.outputs[0].name = f"twin{k}"
        twins.append(twin)
    ops = twins + list(block.operations)
    del block.operations[:]
    block.operations.extend(ops)
    H.write_spec(copy, spec)
    by_name = _ops(ex.load(copy))
    values = [by_name[name].folded[0] for name in ("twin0", "twin1", "twin2", first.outputs[0].name)]
    assert all(v is values[0] for v in values) and not values[0].flags.writeable


def test_a_function_input_the_description_does_not_declare_is_refused_at_load(copy):
    spec = H.read_spec(copy)
    fn = spec.mlProgram.functions["main"]
    ghost = fn.inputs.add()
    ghost.name = "ghost"
    H.tensor_type(ghost.type, np.float32, (1,))
    H.add_op(H.main_block(spec).operations, "relu", "reads_ghost", {"x": "ghost"})
    H.write_spec(copy, spec)
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert one_line(e) == f"{copy}: function input 'ghost' is not among the model description's inputs (x)"


def test_an_output_its_declared_type_cannot_hold_is_one_line(copy, package):
    spec = H.read_spec(copy)
    op = H.add_op(H.main_block(spec).operations, "identity", "hostile_out", {"x": np.float32(0)}, out_shape=())
    value = H.main_block(spec).operations[0].inputs["x"].arguments[0].value
    value.Clear()
    value.type.tensorType.dataType = 2  # a string
    value.immediateValue.tensor.strings.values.append("abc")
    assert op.type == "identity"
    H.rename_first_output(spec, "hostile_out")
    H.write_spec(copy, spec)
    feeds = {"x": np.zeros((2, 4, 5), np.float32)}
    with pytest.raises(PackageError) as e:
        ex.load(copy).predict(feeds)
    assert one_line(e).startswith(f"{copy}: op 'hostile_out' (identity): its output 'hostile_out' cannot be held as the declared float32 "
                                  "(could not convert string to float")


def test_declared_outputs_are_matched_by_name(copy):
    spec = H.read_spec(copy)
    spec.description.output[0].name = "not_the_block_output"
    H.write_spec(copy, spec)
    with pytest.raises(PackageError) as e:
        ex.load(copy)
    assert one_line(e).startswith(f"{copy}: the model description declares output 'not_the_block_output', which the program does not produce (its outputs: ")
    spec.description.output[0].name = H.main_block(spec).outputs[0]
    extra = spec.description.output.add()
    extra.CopyFrom(spec.description.output[0])
    extra.name = "extra"
    H.write_spec(copy, spec)
    with pytest.raises(PackageError, match="declares output 'extra', which the program does not produce"):
        ex.load(copy)


def test_int32_recurrent_weights_are_refused(copy):
    spec = H.read_spec(copy)
    lstm_op = next(op for op in H.main_block(spec).operations if op.type == "lstm")
    weights = {op.outputs[0].name: op for op in H.blob_consts(spec)}[lstm_op.inputs["weight_hh"].arguments[0].name]
    shape = [d.constant.size for d in weights.outputs[0].type.tensorType.dimensions]
    binding = lstm_op.inputs["weight_hh"].arguments[0]
    binding.Clear()
    H.immediate(binding.value, np.zeros(shape, np.int32))
    H.write_spec(copy, spec)
    with pytest.raises(PackageError) as e:
        ex.load(copy).predict({"x": np.zeros((2, 4, 5), np.float32)})
    assert one_line(e).endswith("failed: lstm: weight_hh is int32; MIL takes fp16 or fp32 here")


# -- inspect ------------------------------------------------------------------------------------


def test_inspect_sums_a_deeply_nested_tree(copy):
    from coreml_lstm.inspect import describe

    before = describe(copy)["size_bytes"]
    levels = [copy]
    for _ in range(1500):  # deeper than Python's recursion limit
        levels.append(levels[-1] / "d")
        levels[-1].mkdir()
    (levels[-1] / "f").write_bytes(b"12345")
    try:
        assert describe(copy)["size_bytes"] == before + 5
    finally:  # from the bottom up: shutil.rmtree (pytest's clean-up) recurses too
        (levels[-1] / "f").unlink()
        for level in reversed(levels[1:]):
            level.rmdir()


@pytest.mark.parametrize("value, detail", [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("1" * 5000, "Exceeds the limit (4300 digits)")],
                         ids=["nested 100000 deep", "a 5000-digit integer"])
def test_inspect_refuses_metadata_json_no_reader_should_take(copy, value, detail):
    from click.testing import CliRunner

    from coreml_lstm.cli import main

    spec = H.read_spec(copy)
    spec.description.metadata.userDefined["coreml_lstm.evil"] = value
    H.write_spec(copy, spec)
    r = CliRunner().invoke(main, ["inspect", str(copy)])
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert r.output.startswith(f"Error: {copy}: metadata entry 'coreml_lstm.evil' is malformed JSON ({detail}")


def _joined(tmp_path, op, default, axis=0):
    """A program joining a fixed (2, 3, 4) input and a flexible (2, 3, 1..10) one."""
    import coremltools as ct
    import torch

    class Join(torch.nn.Module):
        def forward(self, a, b):
            return torch.stack([a, b], dim=axis) if op == "stack" else torch.cat([a, b], dim=axis)

    traced = torch.jit.trace(Join().eval(), (torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)))
    model = ct.convert(traced, inputs=[ct.TensorType(name="a", shape=(2, 3, 4)),
                                       ct.TensorType(name="b", shape=(2, 3, ct.RangeDim(1, 10, default=default)))],
                       convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15)
    path = tmp_path / f"{op}-{default}-{axis}.mlpackage"
    model.save(str(path))
    return path


@pytest.mark.parametrize("op, axis", [("stack", 0), ("concat", 0)])
def test_joining_inputs_whose_default_shapes_differ_is_refused(tmp_path, op, axis):
    """Core ML refuses a stack of a fixed and a flexible input whose default shapes differ when
    loading it (Apple's TestStack::test_stack_dynamic_range_dim), whatever is fed later."""
    with pytest.raises(PackageError) as e:
        ex.load(_joined(tmp_path, op, default=2, axis=axis))
    message = one_line(e)
    assert f"({op}) joins function inputs 'a' and 'b', whose default shapes (2, 3, 4) and (2, 3, 2) differ" in message
    program = ex.load(_joined(tmp_path, op, default=4, axis=axis))  # equal defaults: loads and runs
    x = np.ones((2, 3, 4), np.float32)
    (out,) = program.predict({"a": x, "b": x}).values()
    assert out.shape == ((2, 2, 3, 4) if op == "stack" else (4, 3, 4))


def test_concat_along_the_flexible_axis_is_not_refused(tmp_path):
    program = ex.load(_joined(tmp_path, "concat", default=2, axis=2))  # only the other axes must match
    (out,) = program.predict({"a": np.ones((2, 3, 4), np.float32), "b": np.ones((2, 3, 7), np.float32)}).values()
    assert out.shape == (2, 3, 11)


def test_reading_a_file_allocates_its_size_not_the_bound(copy):
    """The model file is read into a buffer of its size: asking for the 2 GiB bound allocated
    2 GiB (of address space at least) for every package, however small."""
    import tracemalloc

    from coreml_lstm.executor.package import MAX_MODEL_BYTES, read_bounded

    model = H.model_file(copy)
    tracemalloc.start()
    try:
        data = read_bounded(model, MAX_MODEL_BYTES, str(copy), "model file")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == model.read_bytes()
    assert peak < 4 * len(data) + (1 << 20), peak
