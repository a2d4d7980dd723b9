"""Atomic writes: an interrupted or failed write leaves nothing at the destination.

A destination (a file, or a directory such as an .mlpackage or a checkpoint) is written in a
temporary sibling, then renamed into place in one step, so a reader, or a writer killed at any
point (kill -9 included), finds it either as it was or complete. A directory that already exists
is swapped with the new one atomically (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere it is
moved aside first, so for an instant it is absent, never half written).

Two writers of one destination at once: the second is refused with a one-line error rather than
both writing (a lock, ``.<name>.lock`` beside the destination, released when its holder ends,
however it ends). The leftovers of a writer that was killed (``.<name>.tmp-*``) are removed by
the next writer of that destination.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import threading
from pathlib import Path

from .errors import WriteError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

_held: dict[str, list] = {}  # destination -> [descriptor, depth]: this process's locks (re-entrant)
_guard = threading.Lock()


def _lock_path(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.lock"


@contextlib.contextmanager
def destination_lock(dest: str | os.PathLike):
    """Hold the write lock of ``dest`` (re-entrant within a process).

    Raises:
        WriteError: another process is writing ``dest`` now.
    """
    dest = Path(os.path.abspath(dest))
    key = str(dest)
    with _guard:
        if key in _held:
            _held[key][1] += 1
            fd = None
        else:
            fd = _acquire(dest)
            _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                fd = _held.pop(key)[0]
                _release(dest, fd)


def _acquire(dest: Path) -> int | None:
    if fcntl is None:  # pragma: no cover - not POSIX: no lock, the rename alone
        return None
    lock = _lock_path(dest)
    for _ in range(100):
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise WriteError(f"{dest}: cannot write beside it ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WriteError(f"{dest}: another process is writing it now; wait for it to finish or write elsewhere") from None
            raise
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder before us removed the file as we opened it: take the new one
            _remove_leftovers(dest)
            return fd
        os.close(fd)
    raise WriteError(f"{dest}: its lock file {lock.name} keeps changing; is another process writing it?")  # pragma: no cover


def _release(dest: Path, fd: int | None) -> None:
    if fd is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_lock_path(dest))  # while still held: a waiting writer re-checks the inode
    os.close(fd)


def _remove_leftovers(dest: Path) -> None:
    """Temporary siblings of ``dest`` left by a writer that was killed (we hold the lock: no writer is live)."""
    prefix = f".{dest.name}.tmp-"
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(dest.parent):
            if entry.name.startswith(prefix):
                shutil.rmtree(entry.path, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, suffix: str = ""):
    """Yield a temporary path beside ``dest``; on success move it into place, else delete it.

    Works for files and directories (an .mlpackage is a directory). An existing destination is
    replaced only once the new content is complete.

    Raises:
        WriteError: another process is writing ``dest`` now.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{dest}: cannot create its directory ({exc.strerror})") from None
    with destination_lock(dest):
        try:
            tmp_root = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        except OSError as exc:
            raise WriteError(f"{dest}: cannot write beside it ({exc.strerror})") from None
        tmp = tmp_root / (dest.name + suffix if suffix else dest.name)
        try:
            yield tmp
            if not tmp.exists():
                raise FileNotFoundError(f"nothing was written to {tmp}")
            if dest.is_dir() and not dest.is_symlink():
                if not _exchange(tmp, dest):  # tmp now holds the old directory, removed below
                    os.replace(dest, tmp_root / (dest.name + ".old"))
                    os.replace(tmp, dest)
            else:
                os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp_root, ignore_errors=True)


def directory_destination(dest: str | os.PathLike, what: str = "checkpoint") -> Path:
    """``dest`` as the path of a directory to write: an existing file there is one line, not the
    ``NotADirectoryError`` of moving a directory onto it."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise WriteError(f"{dest}: exists and is not a directory; a {what} is a directory (give another path, or remove the file)")
    return dest


def write_text(dest: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
