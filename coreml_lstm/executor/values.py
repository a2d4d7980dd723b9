"""MIL values and types -> numpy: immediate tensors, weight blobs, declared tensor types."""

from __future__ import annotations

import math

import numpy as np

from ..errors import PackageError, UnsupportedOpError
from . import limits

# MIL DataType enum -> (name, numpy dtype of the decoded array, bits when packed below a byte)
MIL_DTYPES = {
    1: ("bool", np.bool_, None),
    2: ("string", np.str_, None),
    10: ("fp16", np.float16, None),
    11: ("fp32", np.float32, None),
    12: ("fp64", np.float64, None),
    13: ("bf16", np.float32, None),
    21: ("int8", np.int8, None),
    22: ("int16", np.int16, None),
    23: ("int32", np.int32, None),
    24: ("int64", np.int64, None),
    25: ("int4", np.int8, 4),
    31: ("uint8", np.uint8, None),
    32: ("uint16", np.uint16, None),
    33: ("uint32", np.uint32, None),
    34: ("uint64", np.uint64, None),
    35: ("uint4", np.uint8, 4),
    36: ("uint2", np.uint8, 2),
    37: ("uint1", np.uint8, 1),
    38: ("uint6", np.uint8, 6),
    39: ("uint3", np.uint8, 3),
}


# weight.bin dtype code -> MIL type name (see package.py for the record format)
BLOB_CODE_NAMES = {
    1: "fp16", 2: "fp32", 3: "uint8", 4: "int8", 5: "bf16", 6: "int16", 7: "uint16", 8: "int4",
    9: "uint1", 10: "uint2", 11: "uint4", 12: "uint3", 13: "uint6", 14: "int32", 15: "uint32",
}


def numpy_dtype(code: int) -> np.dtype:
    if code not in MIL_DTYPES:
        raise UnsupportedOpError(f"MIL data type code {code} is not supported by the executor")
    return np.dtype(MIL_DTYPES[code][1])


def tensor_type(value_type):
    """(dtype, shape) of a MIL ValueType; shape dims are -1 where unknown, None for non-tensors."""
    kind = value_type.WhichOneof("type")
    if kind == "stateType":
        return tensor_type(value_type.stateType.wrappedType)
    if kind != "tensorType":
        return None, None
    t = value_type.tensorType
    dims = tuple(d.constant.size if d.WhichOneof("dimension") == "constant" else -1 for d in t.dimensions)
    return (numpy_dtype(t.dataType) if t.dataType else None), dims


def unpack_bits(buf: np.ndarray, nbits: int, count: int, signed: bool = False) -> np.ndarray:
    """Sub-byte values packed lowest bit first -> one element per value (uint8, or int8 if signed)."""
    bits = np.unpackbits(buf, bitorder="little")[: count * nbits].reshape(count, nbits).astype(np.uint8)
    values = (bits << np.arange(nbits, dtype=np.uint8)).sum(axis=1, dtype=np.int16)
    if signed:
        values = np.where(values >= 1 << (nbits - 1), values - (1 << nbits), values)
        return values.astype(np.int8)
    return values.astype(np.uint8)


def held_itemsize(dtype) -> int:
    """Bytes per element the executor holds a value of ``dtype`` in: fp16 values are held as
    float32 (kernels compute in fp32; see program.py), so a constant costs 4 bytes an element."""
    dtype = np.dtype(dtype)
    return 4 if dtype == np.float16 else dtype.itemsize


def _count(shape, itemsize: int, where: str) -> int:
    """Elements of a declared shape (Python ints: no overflow), refused past the memory bound."""
    try:
        return math.prod(limits.check_shape(shape, itemsize, "a tensor"))
    except ValueError as exc:
        raise PackageError(f"{where}: {exc}") from None


def _from_bytes(raw: bytes | np.ndarray, code: int, shape: tuple, where: str) -> np.ndarray:
    name, dtype, nbits = MIL_DTYPES[code]
    count = _count(shape, held_itemsize(dtype), where)
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    if nbits is not None:
        if buf.size * 8 < count * nbits:
            raise PackageError(f"{where}: {buf.size} bytes hold fewer than {count} {name} values")
        return unpack_bits(buf, nbits, count, signed=name == "int4").reshape(shape)
    if name == "bf16":
        if buf.size < count * 2:
            raise PackageError(f"{where}: {buf.size} bytes hold fewer than {count} {name} values")
        words = np.frombuffer(buf[: count * 2].tobytes(), dtype=np.uint16, count=count)
        return (words.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    itemsize = np.dtype(dtype).itemsize
    if buf.size < count * itemsize:
        raise PackageError(f"{where}: {buf.size} bytes hold fewer than {count} {name} values")
    return np.frombuffer(bytearray(buf[: count * itemsize]), dtype=dtype).reshape(shape)  # one writable copy


def decode_value(value, weights, where: str):
    """A MIL Value (immediate or blob) as numpy: arrays, 0-d arrays for scalars, str for strings."""
    dtype, shape = tensor_type(value.type)
    kind = value.WhichOneof("value")
    if kind == "blobFileValue":
        if weights is None:
            raise PackageError(f"{where}: refers to a weight file but the package has none")
        blob = value.blobFileValue
        raw, blob_code = weights.read(blob.offset)
        if shape is None or -1 in shape:
            raise PackageError(f"{where}: a weight blob needs a fully known shape, got {shape}")
        mil_code = value.type.tensorType.dataType
        declared = MIL_DTYPES.get(mil_code, ("?",))[0]
        if BLOB_CODE_NAMES[blob_code] != declared:
            raise PackageError(
                f"{where}: {blob.fileName} at offset {blob.offset} holds {BLOB_CODE_NAMES[blob_code]} data "
                f"(dtype code {blob_code}) but the program declares {declared}"
            )
        return _from_bytes(raw, mil_code, shape, f"{where} ({blob.fileName} at {blob.offset})")
    if kind != "immediateValue":
        raise PackageError(f"{where}: value has no content")
    imm = value.immediateValue
    which = imm.WhichOneof("value")
    if which == "tuple":
        return [decode_value(v, weights, where) for v in imm.tuple.values]
    if which == "list":
        return [decode_value(v, weights, where) for v in imm.list.values]
    if which != "tensor":
        raise UnsupportedOpError(f"{where}: immediate {which!r} values are not supported")
    tv = imm.tensor
    field = tv.WhichOneof("value")
    code = value.type.tensorType.dataType
    if shape is not None and -1 in shape and field in (None, "bytes"):
        raise PackageError(f"{where}: an immediate tensor needs a fully known shape, got {shape}")
    if field is None:  # an empty tensor
        _count(shape, held_itemsize(dtype or np.float32), where)
        return np.zeros(shape, dtype=dtype)
    if field == "bytes":
        return _from_bytes(tv.bytes.values, code, shape, where)
    items = list(getattr(tv, field).values)
    if shape is not None and -1 not in shape and len(items) != _count(shape, 1, where):
        raise PackageError(f"{where}: {len(items)} values for a tensor of shape {tuple(shape)}")
    if field == "strings":
        return (items[0] if items else "") if not shape else np.array(items, dtype=object).reshape(shape)
    arr = np.array(items, dtype=dtype if dtype is not None else None)
    return arr.reshape(shape) if shape is not None and -1 not in shape else arr
