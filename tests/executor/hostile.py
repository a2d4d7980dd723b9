"""Making hostile packages: edit the protobuf of a real package, op by op.

Ops are written straight into the protobuf (no converter), so they can hold what a converter
would never write: shapes of 2^40 elements, loops that never end, blocks nested 40 deep.
"""

from __future__ import annotations

import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from coreml_lstm.executor import _proto

MIL_CODES = {np.dtype(np.float32): 11, np.dtype(np.int32): 23, np.dtype(np.bool_): 1, np.dtype(np.int64): 24}


def model_file(package: Path) -> Path:
    return Path(package) / "Data" / "com.apple.CoreML" / "model.mlmodel"


def weight_file(package: Path) -> Path:
    return Path(package) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"


def read_spec(package: Path):
    spec = _proto.model_pb2().Model()
    spec.ParseFromString(model_file(package).read_bytes())
    return spec


def write_spec(package: Path, spec) -> None:
    model_file(package).write_bytes(spec.SerializeToString())


def main_block(spec):
    fn = spec.mlProgram.functions["main"]
    return fn.block_specializations[fn.opset]


def copy_package(package: Path, dest: Path) -> Path:
    shutil.copytree(package, dest, symlinks=True)
    return dest


def tensor_type(value_type, dtype, shape) -> None:
    t = value_type.tensorType
    t.dataType = MIL_CODES[np.dtype(dtype)]
    t.rank = len(shape)
    for d in shape:
        t.dimensions.add().constant.size = int(d)


def immediate(value, array) -> None:
    """Write ``array`` (a numpy array or scalar) as an immediate MIL value."""
    array = np.asarray(array)
    tensor_type(value.type, array.dtype, array.shape)
    tv = value.immediateValue.tensor
    flat = array.reshape(-1).tolist()
    if array.dtype == np.float32:
        tv.floats.values.extend(flat)
    elif array.dtype == np.bool_:
        tv.bools.values.extend(flat)
    elif array.dtype == np.int64:
        tv.longInts.values.extend(flat)
    else:
        tv.ints.values.extend(flat)


def add_op(operations, op_type: str, out: str, inputs: dict, out_dtype=np.float32, out_shape=(1,), blocks=(), front: bool = True, **attributes):
    """An op ``out = op_type(**inputs)``: an input is a value name (str) or an array (immediate)."""
    mil = _proto.mil_pb2()
    op = mil.Operation()
    op.type = op_type
    for name, arg in inputs.items():
        binding = op.inputs[name].arguments.add()
        if isinstance(arg, str):
            binding.name = arg
        else:
            immediate(binding.value, arg)
    for name, arr in attributes.items():
        immediate(op.attributes[name], arr)
    o = op.outputs.add()
    o.name = out
    tensor_type(o.type, out_dtype, out_shape)
    for b in blocks:
        op.blocks.add().CopyFrom(b)
    if front:
        saved = [op.SerializeToString()] + [o.SerializeToString() for o in operations]
        del operations[:]
        for data in saved:
            operations.add().ParseFromString(data)
    else:
        operations.add().CopyFrom(op)
    return op


def make_block(inputs: list[tuple[str, type, tuple]] = (), outputs: list[str] = ()):
    mil = _proto.mil_pb2()
    block = mil.Block()
    for name, dtype, shape in inputs:
        nvt = block.inputs.add()
        nvt.name = name
        tensor_type(nvt.type, dtype, shape)
    block.outputs.extend(outputs)
    return block


def with_op(package: Path, dest: Path, op_type: str, inputs: dict, out_dtype=np.float32, out_shape=(1,), blocks=(), **attributes) -> Path:
    """A copy of ``package`` whose first output is now the result of one new op at the front
    (named ``hostile_out`` in the program and in the model description)."""
    dest = copy_package(package, dest)
    spec = read_spec(dest)
    block = main_block(spec)
    add_op(block.operations, op_type, "hostile_out", inputs, out_dtype, out_shape, blocks, **attributes)
    rename_first_output(spec, "hostile_out")
    write_spec(dest, spec)
    return dest


def rename_first_output(spec, name: str) -> None:
    """The main block's first output, and the description's (outputs are matched by name), is now ``name``."""
    main_block(spec).outputs[0] = name
    spec.description.output[0].name = name


def blob_consts(spec):
    """The const ops of the main block whose value is a weight blob."""
    return [op for op in main_block(spec).operations
            if op.type == "const" and op.attributes["val"].WhichOneof("value") == "blobFileValue"]


def with_ops(package: Path, dest: Path, ops: list[tuple]) -> Path:
    """A copy of ``package`` with ``ops`` at the front of the main block, in order, each
    ``(op_type, out, inputs)`` or ``(op_type, out, inputs, options)`` (options: add_op's keywords);
    the last one's output is the package's first output (``out`` in the model description)."""
    dest = copy_package(package, dest)
    spec = read_spec(dest)
    block = main_block(spec)
    for op in reversed(ops):
        op_type, out, inputs, options = (*op, {}) if len(op) == 3 else op
        add_op(block.operations, op_type, out, inputs, **options)
    rename_first_output(spec, ops[-1][1])
    write_spec(dest, spec)
    return dest


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM raises after ``seconds``."""
    def expire(*_):
        raise TimeoutError(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
