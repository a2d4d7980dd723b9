"""Atomic writes: an interrupted or failed write leaves nothing at the destination."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, suffix: str = ""):
    """Yield a temporary path beside ``dest``; on success move it into place, else delete it.

    Works for files and directories (an .mlpackage is a directory). An existing destination is
    replaced only once the new content is complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    tmp = tmp_root / (dest.name + suffix if suffix else dest.name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        if dest.is_dir() and not dest.is_symlink():
            old = tmp_root / (dest.name + ".old")
            os.replace(dest, old)
            os.replace(tmp, dest)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


def write_text(dest: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
