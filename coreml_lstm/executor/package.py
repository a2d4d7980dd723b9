"""Reading a saved .mlpackage: Manifest.json, the model protobuf and weights/weight.bin.

weight.bin (little-endian): a 64-byte file header (u32 count, u32 version = 2, zeros), then at
each blob's offset a 64-byte record: u32 sentinel 0xDEADBEEF, u32 dtype code, u64 size in bytes,
u64 absolute data offset, u64 padding in bits (sub-byte types), reserved zeros; then the data.

A package may come from anyone, so nothing it says is taken on trust: every file it names must
be a regular file inside the package (no ``..``, no absolute path, no symbolic link on the way),
files are read with a bound on their size, and weight records are checked against the file
before a byte of data is used.
"""

from __future__ import annotations

import json
import mmap
import os
import stat
import struct
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import PackageError
from . import _proto

SENTINEL = 0xDEADBEEF
HEADER = struct.Struct("<IIQQQ")  # sentinel, dtype, size in bytes, data offset, padding bits
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is a few hundred bytes
MAX_MODEL_BYTES = (1 << 31) - 1  # protobuf's own limit on one message

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


def inside(root: Path, rel: str, what: str, base: str = "") -> Path:
    """``root / base / rel`` for a path the package names (``rel``, relative to the package's
    ``base`` directory), refusing one that could leave the package: absolute, with a ``..`` part,
    or passing through a symbolic link (the root itself is what the user named and is trusted)."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise PackageError(f"{root}: {what} {rel!r} is not a file name")
    if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
        raise PackageError(f"{root}: {what} {rel!r} points outside the package; the executor reads only files inside it")
    parts = PurePosixPath(base, rel).parts
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise PackageError(f"{root}: {what} {rel!r} passes through a symbolic link ({current.relative_to(root)}); "
                               "the executor reads only files inside the package")
    return current


def _open_regular(path: Path, label: str, what: str) -> int:
    """A read-only descriptor of a regular file (not a link, pipe or device: a FIFO would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise PackageError(f"{label}: missing {what} {path.name}") from None
    except OSError as exc:
        raise PackageError(f"{label}: cannot open {what} {path.name} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PackageError(f"{label}: {what} {path.name} is not a regular file")
    return fd


def read_bounded(path: Path, limit: int, label: str, what: str) -> bytes:
    """The bytes of a regular file, refused (before reading) when larger than ``limit``."""
    fd = _open_regular(path, label, what)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise PackageError(f"{label}: {what} {path.name} is {size} bytes, more than the {limit} a valid one can be")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            # Asked for its size: a read of n bytes allocates n first (the bound would be 2 GiB for
            # every model file). One byte more shows a file that grew since; it is cut at the bound.
            return fh.read(size + 1)[:limit]
    finally:
        os.close(fd)


class WeightFile:
    """Lazy, checked reader of one weight.bin (memory-mapped: a blob is read when asked for)."""

    def __init__(self, path: Path, label: str):
        self.path, self.label = path, label
        fd = _open_regular(path, label, "weight file")
        try:
            size = os.fstat(fd).st_size
            if size < 64:
                raise PackageError(f"{label}: {path.name} is truncated ({size} bytes, shorter than its 64-byte header)")
            self.data = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        self.size = size

    def read(self, offset: int) -> tuple[np.ndarray, int]:
        """The raw storage at ``offset``: (uint8 bytes, dtype code), after checking the record."""
        where = f"{self.label}: {self.path.name} at offset {offset}"
        if offset < 0 or offset + 64 > self.size:
            raise PackageError(f"{where}: offset past the end of the file ({self.size} bytes)")
        sentinel, code, size, data_offset, _padding = HEADER.unpack_from(self.data, offset)
        if sentinel != SENTINEL:
            raise PackageError(f"{where}: wrong sentinel 0x{sentinel:08X} (expected 0xDEADBEEF)")
        if code not in BLOB_DTYPES:
            raise PackageError(f"{where}: unknown dtype code {code}; known: {', '.join(map(str, sorted(BLOB_DTYPES)))}")
        if data_offset + size > self.size:
            raise PackageError(f"{where}: data runs past the end of the file (needs {data_offset + size} bytes, has {self.size}); truncated?")
        if data_offset < offset + 64:
            raise PackageError(f"{where}: data offset {data_offset} lies inside or before its own record")
        return np.frombuffer(self.data, dtype=np.uint8, count=size, offset=data_offset), code


def read_manifest(root: Path) -> Path:
    """The path of the model protobuf named by Manifest.json (checked to lie inside the package)."""
    if not root.is_dir():
        raise PackageError(f"{root}: not a .mlpackage directory")
    manifest = inside(root, "Manifest.json", "file")
    if not manifest.exists():
        raise PackageError(f"{root}: missing Manifest.json; not an .mlpackage")
    text = read_bounded(manifest, MAX_MANIFEST_BYTES, str(root), "manifest")
    try:
        info = json.loads(text.decode("utf-8"))
        item = info["itemInfoEntries"][info["rootModelIdentifier"]]
        rel = item["path"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError, AttributeError) as exc:  # JSON, UTF-8, structure
        detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RecursionError) else "nested too deeply"
        raise PackageError(f"{manifest}: malformed manifest ({' '.join(detail.split())[:200]})") from None
    if not isinstance(rel, str):
        raise PackageError(f"{manifest}: malformed manifest (the root model's path is {type(rel).__name__}, not a string)")
    model = inside(root, rel, "the manifest's root model", base="Data")
    if not model.exists():
        raise PackageError(f"{root}: the manifest names Data/{rel}, which does not exist")
    if not model.is_file() or stat.S_ISFIFO(model.stat().st_mode):
        raise PackageError(f"{root}: the manifest names Data/{rel}, which is not a regular file")
    return model


def read_model(path: str | Path):
    """(Model protobuf, package root) of an .mlpackage directory."""
    spec, root, _ = read_model_file(path)
    return spec, root


def read_model_file(path: str | Path):
    """(Model protobuf, package root, path of the model file) of an .mlpackage directory."""
    root = Path(path)
    try:
        model_path = read_manifest(root)
        data = read_bounded(model_path, MAX_MODEL_BYTES, str(root), "model file")
    except OSError as exc:  # a name the file system refuses (too long, a loop of links)
        raise PackageError(f"{root}: cannot read the package ({exc.strerror or exc})") from None
    spec = _proto.model_pb2().Model()
    try:
        spec.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError (also its recursion limit on nested messages)
        raise PackageError(f"{model_path}: not a Core ML model protobuf ({' '.join(str(exc).split())[:200]})") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise PackageError(f"{root}: not an ML Program (model type {spec.WhichOneof('Type')!r}); the executor runs ML Programs only")
    return spec, root, model_path
