"""Reading a saved .mlpackage: Manifest.json, the model protobuf and weights/weight.bin.

weight.bin (little-endian): a 64-byte file header (u32 count, u32 version = 2, zeros), then at
each blob's offset a 64-byte record: u32 sentinel 0xDEADBEEF, u32 dtype code, u64 size in bytes,
u64 absolute data offset, u64 padding in bits (sub-byte types), reserved zeros; then the data.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..errors import PackageError
from . import _proto

SENTINEL = 0xDEADBEEF
HEADER = struct.Struct("<IIQQQ")  # sentinel, dtype, size in bytes, data offset, padding bits

# weight.bin dtype code -> (numpy storage dtype, bits per element)
BLOB_DTYPES = {
    1: (np.float16, 16),
    2: (np.float32, 32),
    3: (np.uint8, 8),
    4: (np.int8, 8),
    5: (None, 16),  # bf16: handled by the decoder
    6: (np.int16, 16),
    7: (np.uint16, 16),
    8: (np.int8, 4),  # int4
    9: (np.uint8, 1),
    10: (np.uint8, 2),
    11: (np.uint8, 4),
    12: (np.uint8, 3),
    13: (np.uint8, 6),
    14: (np.int32, 32),
    15: (np.uint32, 32),
}


class WeightFile:
    """Lazy, checked reader of one weight.bin."""

    def __init__(self, path: Path, label: str):
        self.path, self.label = path, label
        if not path.is_file():
            raise PackageError(f"{label}: missing weight file {path.name}")
        self.data = path.read_bytes()
        if len(self.data) < 64:
            raise PackageError(f"{label}: {path.name} is truncated ({len(self.data)} bytes, shorter than its 64-byte header)")

    def read(self, offset: int) -> tuple[np.ndarray, int]:
        """The raw storage at ``offset``: (uint8 bytes, dtype code), after checking the record."""
        where = f"{self.label}: {self.path.name} at offset {offset}"
        if offset + 64 > len(self.data):
            raise PackageError(f"{where}: offset past the end of the file ({len(self.data)} bytes)")
        sentinel, code, size, data_offset, _padding = HEADER.unpack_from(self.data, offset)
        if sentinel != SENTINEL:
            raise PackageError(f"{where}: wrong sentinel 0x{sentinel:08X} (expected 0xDEADBEEF)")
        if code not in BLOB_DTYPES:
            raise PackageError(f"{where}: unknown dtype code {code}; known: {', '.join(map(str, sorted(BLOB_DTYPES)))}")
        if data_offset + size > len(self.data):
            raise PackageError(f"{where}: data runs past the end of the file (needs {data_offset + size} bytes, has {len(self.data)}); truncated?")
        return np.frombuffer(self.data, dtype=np.uint8, count=size, offset=data_offset), code


def read_manifest(root: Path) -> Path:
    """The path of the model protobuf named by Manifest.json."""
    manifest = root / "Manifest.json"
    if not root.is_dir():
        raise PackageError(f"{root}: not a .mlpackage directory")
    if not manifest.is_file():
        raise PackageError(f"{root}: missing Manifest.json; not an .mlpackage")
    try:
        info = json.loads(manifest.read_text())
        item = info["itemInfoEntries"][info["rootModelIdentifier"]]
        rel = item["path"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PackageError(f"{manifest}: malformed manifest ({type(exc).__name__}: {exc})") from None
    model = root / "Data" / rel
    if not model.is_file():
        raise PackageError(f"{root}: the manifest names Data/{rel}, which does not exist")
    return model


def read_model(path: str | Path):
    """(Model protobuf, package root) of an .mlpackage directory."""
    root = Path(path)
    model_path = read_manifest(root)
    spec = _proto.model_pb2().Model()
    try:
        spec.ParseFromString(model_path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise PackageError(f"{model_path}: not a Core ML model protobuf ({exc})") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise PackageError(f"{root}: not an ML Program (model type {spec.WhichOneof('Type')!r}); the executor runs ML Programs only")
    return spec, root
