"""Packages from anyone: truncated and bit-flipped files, lying manifests and weight records,
shapes no machine can hold, paths out of the package, blocks nested too deep, loops that never end.

The property, for every case: the executor refuses with the toolkit's one-line error, and the
CLI (run, inspect, verify) prints one line ``Error: ...`` and exits 1: no traceback, no hang, no
read outside the package, no output file. A hypothesis fuzz flips random bytes of a real package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

import coreml_lstm.executor as ex
from coreml_lstm.cli import main
from coreml_lstm.errors import CoreMLLSTMError
from coreml_lstm.executor import limits
from coreml_lstm.zoo import Case, convert, gru, lstm

from ..strategies import examples
from . import hostile as H
from .hostile import deadline


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A small real LSTM package, its feeds, and the TorchScript of its module (for verify)."""
    d = tmp_path_factory.mktemp("hostile")
    module, feeds, path, _ = convert(Case("lstm-range", lstm(1), flexible="range"), d)
    torch.jit.save(torch.jit.trace(module.eval(), torch.from_numpy(feeds["x"])), str(d / "m.pt"))
    np.savez(d / "feeds.npz", **feeds)
    return path, feeds, d


@contextmanager
def reads_inside(root: Path):
    """Record every file the executor opens; fail if one lies outside ``root``."""
    opened = []
    real = os.open

    def recording(path, *args, **kwargs):
        opened.append(Path(path))
        return real(path, *args, **kwargs)

    os.open = recording
    try:
        yield opened
    finally:
        os.open = real
    root = Path(root).resolve()
    outside = [p for p in opened if root not in Path(os.path.realpath(p)).parents and Path(os.path.realpath(p)) != root]
    assert not outside, f"read outside the package: {outside}"


def refused(path: Path, feeds: dict) -> str:
    """Load and run ``path``; the toolkit's own one-line error is the only acceptable failure."""
    with deadline(60), reads_inside(path):
        try:
            prog = ex.load(path)
            prog.predict(feeds, state=prog.make_state() if prog.states else None)
        except CoreMLLSTMError as exc:
            message = str(exc)
            assert message and "\n" not in message, message
            return message
    raise AssertionError(f"{path} was run without complaint")


def cli_refuses(path: Path, built, *, verify: bool = True) -> list[str]:
    """run and verify on ``path`` (and inspect, when the package does not even load): exit 1, one
    line ``Error: ...``, no output file. A package that loads but fails when run is inspected."""
    _, _, d = built
    out = path.parent / f"{path.stem}.out.npz"
    try:
        ex.load(path)
        loads = True
    except CoreMLLSTMError:
        loads = False
    calls = [["run", str(path), "--inputs", str(d / "feeds.npz"), "--outputs", str(out), "--backend", "executor"]]
    if verify:
        calls.append(["verify", str(d / "m.pt"), str(path), "--samples", "1"])
    with deadline(60):
        r = CliRunner().invoke(main, ["inspect", str(path)])
    if loads:
        assert r.exit_code == 0 and r.exception is None, r.output  # inspect does not run the program
    else:
        calls.append(["inspect", str(path)])
    lines = []
    for args in calls:
        with deadline(120):
            r = CliRunner().invoke(main, args)
        assert isinstance(r.exception, SystemExit), f"{args[0]}: {type(r.exception).__name__}: {r.exception}"
        assert r.exit_code == 1, (args[0], r.output)
        assert "Traceback" not in r.output
        if args[0] == "verify" and loads:  # it loads but refuses to run: each check says so, and fails
            failed = [line for line in r.output.splitlines() if line.strip().startswith("FAILED")]
            assert failed and all("the package does not run at this size: " in line for line in failed), r.output
            assert r.output.rstrip().endswith("result: failed"), r.output
            lines.append("Error: " + failed[0].split("the package does not run at this size: ", 1)[1] + "\n")
            continue
        assert r.output.startswith("Error: ") and r.output.count("\n") == 1, (args[0], r.output)
        lines.append(r.output)
    assert not out.exists()
    return lines


# -- the cases ------------------------------------------------------------------------------


def _truncated_model(pkg, dest):
    dest = H.copy_package(pkg, dest)
    data = H.model_file(dest).read_bytes()
    H.model_file(dest).write_bytes(data[: len(data) // 3])
    return dest


def _flipped_model(pkg, dest):
    dest = H.copy_package(pkg, dest)
    data = bytearray(H.model_file(dest).read_bytes())
    for i in range(0, len(data), 97):
        data[i] ^= 0xFF
    H.model_file(dest).write_bytes(bytes(data))
    return dest


def _truncated_weights(pkg, dest):
    dest = H.copy_package(pkg, dest)
    data = H.weight_file(dest).read_bytes()
    H.weight_file(dest).write_bytes(data[:100])
    return dest


def _weight_size_past_end(pkg, dest):
    dest = H.copy_package(pkg, dest)
    data = bytearray(H.weight_file(dest).read_bytes())
    data[72:80] = (1 << 60).to_bytes(8, "little")  # the first record's size
    H.weight_file(dest).write_bytes(bytes(data))
    return dest


def _weight_offset_past_end(pkg, dest):
    dest = H.copy_package(pkg, dest)
    spec = H.read_spec(dest)
    H.blob_consts(spec)[0].attributes["val"].blobFileValue.offset = 1 << 62
    H.write_spec(dest, spec)
    return dest


def _data_offset_inside_record(pkg, dest):
    dest = H.copy_package(pkg, dest)
    data = bytearray(H.weight_file(dest).read_bytes())
    data[80:88] = (64).to_bytes(8, "little")  # the first record's data would start on its own header
    H.weight_file(dest).write_bytes(bytes(data))
    return dest


def _huge_blob_shape(pkg, dest):
    dest = H.copy_package(pkg, dest)
    spec = H.read_spec(dest)
    op = H.blob_consts(spec)[0]
    for dims in (op.outputs[0].type.tensorType.dimensions, op.attributes["val"].type.tensorType.dimensions):
        dims[0].constant.size = 1 << 40
    H.write_spec(dest, spec)
    return dest


def _huge_immediate(pkg, dest):
    """An immediate tensor with no values and a shape of 2^80 elements (decoded as zeros)."""
    dest = H.with_op(pkg, dest, "identity", {"x": np.zeros((0,), np.float32)})
    spec = H.read_spec(dest)
    value = H.main_block(spec).operations[0].inputs["x"].arguments[0].value
    dims = value.type.tensorType.dimensions
    dims[0].constant.size = BIG
    dims.add().constant.size = BIG
    value.type.tensorType.rank = 2
    H.write_spec(dest, spec)
    return dest


def _blob_path(name):
    def build(pkg, dest):
        dest = H.copy_package(pkg, dest)
        spec = H.read_spec(dest)
        for op in H.blob_consts(spec):
            op.attributes["val"].blobFileValue.fileName = name
        H.write_spec(dest, spec)
        return dest

    return build


def _outside_copy_of_weights(pkg, dest) -> Path:
    """A genuine weight.bin outside the package: were it read, the program would run."""
    outside = dest.parent / f"{dest.stem}-outside"
    outside.mkdir(exist_ok=True)
    shutil.copy(H.weight_file(pkg), outside / "weight.bin")
    return outside


def _symlinked_weight_file(pkg, dest):
    outside = _outside_copy_of_weights(pkg, dest)
    dest = H.copy_package(pkg, dest)
    H.weight_file(dest).unlink()
    H.weight_file(dest).symlink_to(outside / "weight.bin")
    return dest


def _symlinked_weights_dir(pkg, dest):
    outside = _outside_copy_of_weights(pkg, dest)
    dest = H.copy_package(pkg, dest)
    shutil.rmtree(H.weight_file(dest).parent)
    H.weight_file(dest).parent.symlink_to(outside, target_is_directory=True)
    return dest


def _symlinked_model(pkg, dest):
    outside = dest.parent / f"{dest.stem}-model.mlmodel"
    shutil.copy(H.model_file(pkg), outside)
    dest = H.copy_package(pkg, dest)
    H.model_file(dest).unlink()
    H.model_file(dest).symlink_to(outside)
    return dest


def _manifest(edit):
    def build(pkg, dest):
        dest = H.copy_package(pkg, dest)
        m = dest / "Manifest.json"
        result = edit(json.loads(m.read_text()), dest)
        if isinstance(result, bytes):
            m.write_bytes(result)
        elif result is not None:
            m.write_text(json.dumps(result))
        return dest

    return build


def _root_entry(info):
    return info["itemInfoEntries"][info["rootModelIdentifier"]]


def _manifest_path(rel):
    def edit(info, _):
        _root_entry(info)["path"] = rel
        return info

    return _manifest(edit)


def _manifest_symlink(pkg, dest):
    outside = dest.parent / f"{dest.stem}-Manifest.json"
    shutil.copy(pkg / "Manifest.json", outside)
    dest = H.copy_package(pkg, dest)
    (dest / "Manifest.json").unlink()
    (dest / "Manifest.json").symlink_to(outside)
    return dest


def _fifo_model(pkg, dest):
    dest = H.copy_package(pkg, dest)
    H.model_file(dest).unlink()
    os.mkfifo(H.model_file(dest))  # opening it for reading would wait for a writer forever
    return dest


def _nested_blocks(depth):
    def build(pkg, dest):
        leaf = H.make_block(outputs=["leaf"])
        H.add_op(leaf.operations, "const", "leaf", {}, val=np.float32(1))
        block = leaf
        for i in range(depth):
            outer = H.make_block(outputs=[f"c{i}"])
            H.add_op(outer.operations, "cond", f"c{i}", {"pred": np.bool_(True)}, blocks=[block, leaf], front=False)
            block = outer
        return H.with_op(pkg, dest, "cond", {"pred": np.bool_(True)}, blocks=[block, leaf])

    return build


def _nested_past_protobuf(pkg, dest):
    """200 nested blocks: deeper than protobuf's own nesting limit (the parser refuses it)."""
    leaf = H.make_block(outputs=["leaf"])
    H.add_op(leaf.operations, "const", "leaf", {}, val=np.float32(1))
    block = leaf
    for i in range(200):
        outer = H.make_block(outputs=[f"c{i}"])
        H.add_op(outer.operations, "cond", f"c{i}", {"pred": np.bool_(True)}, blocks=[block, leaf], front=False)
        block = outer
    dest = H.copy_package(pkg, dest)
    spec = H.read_spec(dest)
    main = H.main_block(spec)
    H.add_op(main.operations, "cond", "hostile_out", {"pred": np.bool_(True)}, blocks=[block, leaf], front=False)
    H.rename_first_output(spec, "hostile_out")
    H.write_spec(dest, spec)
    return dest


def _endless_loop(pkg, dest):
    cond = H.make_block([("i", np.int32, ())], ["go"])
    H.add_op(cond.operations, "const", "go", {}, out_dtype=np.bool_, out_shape=(), val=np.bool_(True))
    body = H.make_block([("j", np.int32, ())], ["j2"])
    H.add_op(body.operations, "add", "j2", {"x": "j", "y": np.int32(1)}, out_dtype=np.int32, out_shape=(), front=False)
    return H.with_op(pkg, dest, "while_loop", {"loop_vars": np.int32(0)}, out_dtype=np.int32, out_shape=(), blocks=[cond, body])


def _op(op_type, **inputs):
    return lambda pkg, dest: H.with_op(pkg, dest, op_type, inputs)


def _undefined_name(pkg, dest):
    return H.with_op(pkg, dest, "relu", {"x": "no_such_value"})


def _unbound_input(pkg, dest):
    """An op input with no binding at all (what the long fuzz run found: a flipped byte did it)."""
    dest = H.with_op(pkg, dest, "relu", {"x": np.float32(1)})
    spec = H.read_spec(dest)
    del H.main_block(spec).operations[0].inputs["x"].arguments[:]
    H.write_spec(dest, spec)
    return dest


def _huge_state(pkg, dest):
    dest = H.copy_package(pkg, dest)
    spec = H.read_spec(dest)
    state = spec.description.state.add()
    state.name = "s"
    array = state.type.stateType.arrayType
    array.shape.extend([1 << 30, 1 << 30])
    array.dataType = 65552  # FLOAT16
    H.write_spec(dest, spec)
    return dest


BIG = 1 << 40
CASES = {
    "truncated model.mlmodel": (_truncated_model, "not a Core ML model protobuf"),
    "bit-flipped model.mlmodel": (_flipped_model, None),
    "truncated weight.bin": (_truncated_weights, "past the end of the file"),
    "weight size past the end": (_weight_size_past_end, "data runs past the end of the file"),
    "weight offset past the end": (_weight_offset_past_end, "offset past the end of the file"),
    "weight data inside its record": (_data_offset_inside_record, "lies inside or before its own record"),
    "blob shape of 2^40 x n elements": (_huge_blob_shape, "would need"),
    "empty immediate tensor of 2^80 elements": (_huge_immediate, "a tensor of shape (1099511627776, 1099511627776) would need"),
    "blob path ../": (_blob_path("@model_path/../../../outside/weight.bin"), "points outside the package"),
    "blob path absolute": (_blob_path("/etc/passwd"), "is not a path inside the package"),
    "blob path @model_path//etc/passwd": (_blob_path("@model_path//etc/passwd"), "points outside the package"),
    "blob path to a missing file": (_blob_path("@model_path/weights/other.bin"), "missing weight file other.bin"),
    "weight.bin a symlink out": (_symlinked_weight_file, "passes through a symbolic link"),
    "weights/ a symlink out": (_symlinked_weights_dir, "passes through a symbolic link"),
    "model.mlmodel a symlink out": (_symlinked_model, "passes through a symbolic link"),
    "Manifest.json a symlink out": (_manifest_symlink, "passes through a symbolic link"),
    "manifest root model ../": (_manifest_path("../../outside/model.mlmodel"), "points outside the package"),
    "manifest root model absolute": (_manifest_path("/etc/passwd"), "points outside the package"),
    "manifest root model missing": (_manifest_path("com.apple.CoreML/nothing.mlmodel"), "which does not exist"),
    "manifest root model is the weight file": (_manifest_path("com.apple.CoreML/weights/weight.bin"), "not a Core ML model protobuf"),
    "manifest root model a directory": (_manifest_path("com.apple.CoreML"), "which is not a regular file"),
    "manifest path not a string": (_manifest_path(["com.apple.CoreML/model.mlmodel"]), "malformed manifest"),
    "manifest path too long for the file system": (_manifest_path("x" * 5000), "cannot read the package (File name too long)"),
    "blob path too long for the file system": (_blob_path("@model_path/" + "y" * 5000), "File name too long"),
    "manifest root identifier unknown": (_manifest(lambda i, _: {**i, "rootModelIdentifier": "nobody"}), "malformed manifest"),
    "manifest entries a list": (_manifest(lambda i, _: {**i, "itemInfoEntries": []}), "malformed manifest"),
    "manifest not JSON": (_manifest(lambda i, _: b"{not json"), "malformed manifest"),
    "manifest not UTF-8": (_manifest(lambda i, _: b'{"a": "\xff\xfe"}'), "malformed manifest"),
    "manifest nested 100000 deep": (_manifest(lambda i, _: b"[" * 100_000 + b"]" * 100_000), "malformed manifest"),
    "manifest larger than any manifest": (_manifest(lambda i, _: b" " * (2 << 20) + json.dumps(i).encode()), "more than the"),
    "model.mlmodel a FIFO": (_fifo_model, "is not a regular file"),
    "blocks nested 40 deep": (_nested_blocks(40), "blocks nested more than 32 deep"),
    "blocks nested 200 deep": (_nested_past_protobuf, "not a Core ML model protobuf"),
    "a while_loop that never ends": (_endless_loop, "a bound against a loop that never ends"),
    "an op reading an undefined name": (_undefined_name, "which no earlier op or input defines"),
    "an op input bound to nothing": (_unbound_input, "input 'x' is bound to nothing"),
    "fill of 2^40 x 2^40": (_op("fill", shape=np.array([BIG, BIG], np.int64), value=np.float32(1)), "fill of shape (1099511627776, 1099511627776) would need"),
    "tile by 2^40": (_op("tile", x=np.ones((2, 2), np.float32), reps=np.array([BIG, BIG], np.int64)), "tile of shape"),
    "range_1d of 1e30 steps": (_op("range_1d", start=np.float32(0), end=np.float32(1e30), step=np.float32(1)), "range_1d of shape"),
    "one_hot of depth 2^40": (_op("one_hot", indices=np.array([1], np.int32), one_hot_vector_size=np.int64(BIG)), "one_hot of shape"),
    "pad by 2^40": (_op("pad", x=np.ones((2, 2), np.float32), pad=np.array([0, BIG, 0, BIG], np.int64)), "pad of shape"),
    "make_list of 2^40": (_op("make_list", elem_shape=np.array([BIG], np.int64), init_length=np.int64(BIG)), "make_list of shape"),
    "broadcast add to 2^40 x 2^40": (_op("add", x=np.zeros((1 << 20, 1), np.float32), y=np.zeros((1, 1 << 20), np.float32)), "add of shape (1048576, 1048576)"),
    "a state of 2^60 elements": (_huge_state, "state 's' of shape (1073741824, 1073741824) would need"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_package_is_refused_in_one_line(built, tmp_path, monkeypatch, name):
    package, feeds, _ = built
    monkeypatch.setattr(limits, "MAX_LOOP_ITERATIONS", 2_000)  # the bound itself, not its size, is under test
    make, expected = CASES[name]
    bad = make(package, tmp_path / "bad.mlpackage")
    message = refused(bad, feeds)
    if expected is not None:
        assert expected in message, message
    lines = cli_refuses(bad, built, verify=name in VERIFY_TOO)
    assert all(line.startswith("Error: ") for line in lines)


# verify loads a model as well: run it on a representative few (it costs a TorchScript load each).
VERIFY_TOO = {"truncated model.mlmodel", "weight.bin a symlink out", "manifest root model ../", "a while_loop that never ends", "fill of 2^40 x 2^40"}


def test_the_size_is_named_before_anything_is_allocated(built, tmp_path):
    package, feeds, _ = built
    bad = _op("fill", shape=np.array([BIG, BIG], np.int64), value=np.float32(1))(package, tmp_path / "fill.mlpackage")
    message = refused(bad, feeds)
    assert message.endswith(f"fill of shape ({BIG}, {BIG}) would need 4194304.0 EiB, more than the "
                            f"{limits.size_text(limits.MAX_TENSOR_BYTES)} a tensor may take (a quarter of this machine's "
                            f"{limits.size_text(limits.PHYSICAL_MEMORY)})"), message
    assert message.startswith(f"{bad}: op 'hostile_out' (fill) failed: ")


def test_the_bounds_are_set_from_the_environment(built, tmp_path):
    package, _, d = built
    bad = _endless_loop(package, tmp_path / "loop.mlpackage")
    env = {**os.environ, "COREML_LSTM_MAX_LOOP_ITERATIONS": "500", "COREML_LSTM_MAX_TENSOR_BYTES": "1000000", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-m", "coreml_lstm", "run", str(bad), "--inputs", str(d / "feeds.npz"), "--outputs", str(tmp_path / "o.npz")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[-1] == (f"Error: {bad}: op 'hostile_out' (while_loop): loops ran 500 iterations in this run without their condition "
                                         "turning false; a bound against a loop that never ends (COREML_LSTM_MAX_LOOP_ITERATIONS raises it)")
    assert "Traceback" not in r.stderr and not (tmp_path / "o.npz").exists()
    big = _op("fill", shape=np.array([1000, 1000], np.int64), value=np.float32(1))(package, tmp_path / "fill.mlpackage")
    r = subprocess.run([sys.executable, "-m", "coreml_lstm", "inspect", str(big)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0  # inspect does not run the program
    r = subprocess.run([sys.executable, "-m", "coreml_lstm", "run", str(big), "--inputs", str(d / "feeds.npz")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and r.stderr.splitlines()[-1].endswith(
        "fill of shape (1000, 1000) would need 3.8 MiB, more than the 976.6 KiB a tensor may take (COREML_LSTM_MAX_TENSOR_BYTES)")


def test_random_inputs_drawn_from_declared_sizes_are_bounded(built, tmp_path):
    """verify and diagnose draw random inputs at the largest size a package declares: a package
    declaring 2^40 time steps is refused in one line, not a MemoryError."""
    package, _, d = built
    bad = H.copy_package(package, tmp_path / "wide.mlpackage")
    spec = H.read_spec(bad)
    spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges[1].upperBound = BIG
    H.write_spec(bad, spec)
    for args in (["verify", str(d / "m.pt"), str(bad), "--samples", "2"], ["diagnose", str(bad)]):
        with deadline(60):
            r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (args[0], r.output, r.exception)
        assert r.output == (f"Error: input 'x' of shape (2, {BIG}, 5) would need 40.0 TiB, more than the {limits.size_text(limits.MAX_TENSOR_BYTES)} "
                            f"a tensor may take (a quarter of this machine's {limits.size_text(limits.PHYSICAL_MEMORY)}): a size the model or package "
                            "declares; give inputs of your own (--input x:SHAPE, or --inputs)\n"), r.output


def test_a_legitimate_loop_is_not_bounded_too_early(tmp_path):
    """A GRU (a while_loop over the time steps) on a long sequence runs within the default bound."""
    _, feeds, path, _ = convert(Case("gru", gru(1), flexible="range"), tmp_path)
    prog = ex.load(path)
    x = np.random.default_rng(0).standard_normal((2, 64, 5)).astype(np.float32)
    assert np.isfinite(prog.predict({"x": x})["y"]).all()


# -- the values a run holds (MAX_LIVE_BYTES) ---------------------------------------------------

N = 1 << 20  # floats: 4 MiB a value, far above the small LSTM's own values and constants
MIB4 = 4 * N


def _fill(out, n=N):
    return ("fill", out, {"shape": np.array([n], np.int32), "value": np.float32(1)}, {"out_shape": (n,)})


def _held(built, tmp_path, monkeypatch, name, ops, bound):
    """Run a package with ``ops`` in front for its outputs under a live-bytes ``bound``: the
    one-line refusal, or None when it runs."""
    package, feeds, _ = built
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", int(bound))
    path = H.with_ops(package, tmp_path / f"{name}.mlpackage", ops)
    try:
        refused_message = refused(path, feeds)
    except AssertionError as exc:
        assert "was run without complaint" in str(exc)
        return None
    return refused_message


def test_a_view_counts_at_its_base_when_the_base_is_let_go(built, tmp_path, monkeypatch):
    """reshape's view keeps the 4 MiB of the fill it views after the fill itself is let go: with
    another 4 MiB and the add's result the run holds 12 MiB, not the 8 MiB of the arrays that own
    their memory."""
    ops = [_fill("big"), ("reshape", "view", {"x": "big", "shape": np.array([N], np.int32)}, {"out_shape": (N,)}), _fill("other"),
           ("add", "hostile_out", {"x": "view", "y": "other"}, {"out_shape": (N,)})]
    message = _held(built, tmp_path, monkeypatch, "view", ops, 2.5 * MIB4)
    assert message is not None and "op 'hostile_out' (add): the values this run holds at once reach 12.0 MiB, more than the 10.0 MiB" in message, message
    assert _held(built, tmp_path, monkeypatch, "view2", ops, 3.5 * MIB4) is None


def test_a_value_that_is_another_counts_once(built, tmp_path, monkeypatch):
    """identity returns its input itself: big and same are one 4 MiB array, and with the add's
    result the run holds 8 MiB, not 12."""
    ops = [_fill("big"), ("identity", "same", {"x": "big"}, {"out_shape": (N,)}), ("add", "hostile_out", {"x": "big", "y": "same"}, {"out_shape": (N,)})]
    assert _held(built, tmp_path, monkeypatch, "same", ops, 2.5 * MIB4) is None
    message = _held(built, tmp_path, monkeypatch, "same2", ops, 1.5 * MIB4)
    assert message is not None and "op 'hostile_out' (add): the values this run holds at once reach 8.0 MiB" in message, message


def _summing_block(prefix):
    block = H.make_block(outputs=[f"{prefix}_sum"])
    H.add_op(block.operations, *_fill(f"{prefix}_big")[:3], front=False, **_fill(f"{prefix}_big")[3])
    H.add_op(block.operations, "reduce_sum", f"{prefix}_sum", {"x": f"{prefix}_big", "axes": np.array([0], np.int32)}, out_shape=(), front=False)
    return block


def test_values_made_in_a_cond_block_count(built, tmp_path, monkeypatch):
    other = H.make_block(outputs=["zero"])
    H.add_op(other.operations, "const", "zero", {}, out_shape=(), val=np.float32(0))
    ops = [("cond", "hostile_out", {"pred": np.bool_(True)}, {"out_shape": (), "blocks": [_summing_block("then"), other]})]
    message = _held(built, tmp_path, monkeypatch, "cond", ops, 0.5 * MIB4)
    assert message is not None and "op 'then_big' (fill): the values this run holds at once reach 4.0 MiB, more than the 2.0 MiB" in message, message
    assert _held(built, tmp_path, monkeypatch, "cond2", ops, 1.5 * MIB4) is None


def test_views_in_a_block_of_a_value_outside_it_add_nothing(built, tmp_path, monkeypatch):
    """Three reshapes in a cond block of the main block's 4 MiB fill hold no memory of their own:
    the run holds 4 MiB, within a 6 MiB bound (the block's first count, an upper bound, says 16)."""
    then = H.make_block(outputs=["s"])
    for i, x in enumerate(["big", "v0", "v1"]):
        H.add_op(then.operations, "reshape", f"v{i}", {"x": x, "shape": np.array([2, N // 2], np.int32)}, out_shape=(2, N // 2), front=False)
    H.add_op(then.operations, "reduce_sum", "s", {"x": "v2", "axes": np.array([0, 1], np.int32)}, out_shape=(), front=False)
    other = H.make_block(outputs=["zero"])
    H.add_op(other.operations, "const", "zero", {}, out_shape=(), val=np.float32(0))
    ops = [_fill("big"), ("cond", "hostile_out", {"pred": np.bool_(True)}, {"out_shape": (), "blocks": [then, other]})]
    assert _held(built, tmp_path, monkeypatch, "views", ops, 1.5 * MIB4) is None
    message = _held(built, tmp_path, monkeypatch, "views2", ops, 0.5 * MIB4)
    assert message is not None and "op 'big' (fill): the values this run holds at once reach 4.0 MiB" in message, message


def _counting_loop(iterations):
    cond = H.make_block([("i", np.int32, ())], ["go"])
    H.add_op(cond.operations, "less", "go", {"x": "i", "y": np.int32(iterations)}, out_dtype=np.bool_, out_shape=(), front=False)
    body = _summing_block("body")
    body.inputs.add().CopyFrom(H.make_block([("j", np.int32, ())]).inputs[0])
    del body.outputs[:]
    body.outputs.append("j2")
    H.add_op(body.operations, "add", "j2", {"x": "j", "y": np.int32(1)}, out_dtype=np.int32, out_shape=(), front=False)
    return [("while_loop", "hostile_out", {"loop_vars": np.int32(0)}, {"out_dtype": np.int32, "out_shape": (), "blocks": [cond, body]})]


def test_values_made_in_a_loop_body_count_and_go_with_their_iteration(built, tmp_path, monkeypatch):
    """A body making 4 MiB is refused under a 2 MiB bound, and runs 50 times under 6 MiB: each
    iteration's values are let go when it ends."""
    message = _held(built, tmp_path, monkeypatch, "loop", _counting_loop(50), 0.5 * MIB4)
    assert message is not None and "op 'body_big' (fill): the values this run holds at once reach 4.0 MiB, more than the 2.0 MiB" in message, message
    package, feeds, _ = built
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", int(1.5 * MIB4))
    out = ex.load(H.with_ops(package, tmp_path / "loop50.mlpackage", _counting_loop(50))).predict(feeds)
    assert int(np.asarray(out["hostile_out"]).reshape(())) == 50


# -- the constants a package holds -------------------------------------------------------------


def _many_zero_constants(pkg, dest, count=64, n=N):
    """``count`` const ops, each an immediate tensor of n float32 zeros declared with no values
    (a few bytes of protobuf each, decoded as 4 MiB of zeros), summed into the first output."""
    ops = [("const", f"z{i}", {}, {"out_shape": (n,), "val": np.zeros((0,), np.float32)}) for i in range(count)]
    ops.append(("concat", "hostile_out", {}, {"out_shape": (count * n,)}))
    dest = H.with_ops(pkg, dest, ops)
    spec = H.read_spec(dest)
    block = H.main_block(spec)
    for op in block.operations[:count]:
        val = op.attributes["val"]
        val.type.tensorType.dimensions[0].constant.size = n
        val.immediateValue.tensor.ClearField("floats")  # no values at all: zeros of the declared shape
    joined = block.operations[count]
    for i in range(count):
        joined.inputs["values"].arguments.add().name = f"z{i}"
    H.immediate(joined.inputs["axis"].arguments.add().value, np.int32(0))
    H.immediate(joined.inputs["interleave"].arguments.add().value, np.bool_(False))
    H.write_spec(dest, spec)
    return dest


def test_the_constants_together_are_bounded_before_they_are_made(built, tmp_path, monkeypatch):
    """64 constants of 4 MiB each, declared in a few hundred bytes: under a 32 MiB bound the load
    stops at the ninth, naming the package and the total, having made 32 MiB at most."""
    import tracemalloc

    package, feeds, _ = built
    bad = _many_zero_constants(package, tmp_path / "zeros.mlpackage")
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 32 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(CoreMLLSTMError) as info:
            ex.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (f"{bad}: the program's constants reach 36.0 MiB with op 'z8' (const) attribute 'val', more than the "
                               "32.0 MiB a run may hold (COREML_LSTM_MAX_LIVE_BYTES raises it)")
    assert peak < 40 << 20, peak
    lines = cli_refuses(bad, built, verify=False)
    assert all(line.startswith(f"Error: {bad}: the program's constants reach 36.0 MiB") for line in lines), lines
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", 2 << 30)  # within the bound it loads and runs: the constants are counted once
    assert ex.load(bad).predict(feeds)["hostile_out"].shape == (64 * N,)


def test_a_blob_decoded_under_many_shapes_counts_each_copy(built, tmp_path, monkeypatch):
    """Constants naming one weight blob with different shapes are decoded apart: each copy counts."""
    package, _, _ = built
    bad = H.copy_package(package, tmp_path / "blobs.mlpackage")
    spec = H.read_spec(bad)
    source = H.blob_consts(spec)[0]
    count = int(np.prod([d.constant.size for d in source.outputs[0].type.tensorType.dimensions]))
    total = 0
    for k in range(1, count + 1):  # (k,) views of the blob's first k floats: all different keys
        op = H.main_block(spec).operations.add()
        op.CopyFrom(source)
        op.outputs[0].name = f"b{k}"
        for t in (op.outputs[0].type.tensorType, op.attributes["val"].type.tensorType):
            del t.dimensions[:]
            t.rank = 1
            t.dimensions.add().constant.size = k
        total += 4 * k
    H.write_spec(bad, spec)
    own = ex.load(package).constant_bytes  # the package's own constants, before the copies
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", own + total // 2)
    with pytest.raises(CoreMLLSTMError, match=r"the program's constants reach .* with op 'b\d+' \(const\) attribute 'val', more than the"):
        ex.load(bad)
    monkeypatch.setattr(limits, "MAX_LIVE_BYTES", own + total)
    assert ex.load(bad).constant_bytes == own + total


# -- fuzzing --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_source(built, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    _, feeds, gru_path, _ = convert(Case("gru", gru(1), flexible="range"), d)
    return {"lstm": built[0], "gru": gru_path}, feeds


FILES = {"model": H.model_file, "weights": H.weight_file, "manifest": lambda p: Path(p) / "Manifest.json"}


@example(kind="lstm", target="model", flips=[(0.0, 0), (0.0, 0), (0.0, 0), (0.0, 0), (0.5948604294646933, 4)], cut=None)  # an unbound input
@settings(max_examples=examples(40))
@given(kind=st.sampled_from(["lstm", "gru"]), target=st.sampled_from(["model", "model", "weights", "manifest"]),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_fuzz_random_bytes_of_a_real_package(fuzz_source, tmp_path_factory, kind, target, flips, cut):
    sources, feeds = fuzz_source
    d = tmp_path_factory.mktemp("f")
    bad = H.copy_package(sources[kind], d / "p.mlpackage")
    f = FILES[target](bad)
    data = bytearray(f.read_bytes())
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    if cut is not None:
        data = data[: int(cut * len(data))]
    f.write_bytes(bytes(data))
    saved = limits.MAX_TENSOR_BYTES, limits.MAX_LOOP_ITERATIONS
    limits.MAX_TENSOR_BYTES, limits.MAX_LOOP_ITERATIONS = 64 << 20, 5_000  # a flipped shape must not eat the machine
    try:
        with deadline(60), reads_inside(bad):
            try:
                prog = ex.load(bad)
                prog.predict({"x": feeds["x"]}, state=prog.make_state() if prog.states else None)
                event(f"{target}: ran")
            except CoreMLLSTMError as exc:
                assert str(exc) and "\n" not in str(exc), str(exc)
                event(f"{target}: refused ({type(exc).__name__})")
        out = d / "out.npz"
        with deadline(60):
            r = CliRunner().invoke(main, ["run", str(bad), "--inputs", str(_feeds_file(d, feeds)), "--outputs", str(out), "--backend", "executor"])
        assert isinstance(r.exception, (SystemExit, type(None))), f"{type(r.exception).__name__}: {r.exception}"
        if r.exit_code != 0:
            assert r.exit_code == 1 and r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
            assert not out.exists()
    finally:
        limits.MAX_TENSOR_BYTES, limits.MAX_LOOP_ITERATIONS = saved
        shutil.rmtree(d, ignore_errors=True)


def _feeds_file(d: Path, feeds: dict) -> Path:
    path = d / "feeds.npz"
    np.savez(path, **feeds)
    return path


def test_the_checks_of_this_module_can_fail(built, tmp_path):
    """reads_inside notices a read outside the package, refused notices a package that runs."""
    package, feeds, _ = built
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    with pytest.raises(AssertionError, match="read outside the package"):
        with reads_inside(package):
            os.close(os.open(outside, os.O_RDONLY))
    with pytest.raises(AssertionError, match="was run without complaint"):
        refused(package, feeds)
