"""Bounds on what a package can make the executor do, because packages come from anyone.

    MAX_TENSOR_BYTES   the largest tensor a kernel makes: an op whose output would be larger is
                       refused before allocating, naming the shape and the size. Default: a quarter
                       of the machine's physical memory (a kernel's temporaries are a few times its
                       output); COREML_LSTM_MAX_TENSOR_BYTES sets it.
    MAX_LIVE_BYTES     the values one run holds at once: the program's constants, the feeds, and
                       what the kernels made that a later op or the caller still needs, in nested
                       blocks (cond, while_loop) as in the main block. Memory is what counts: a view
                       counts at the bytes of the array it views, once however many values share it,
                       for as long as any of them is held. A run past it stops, naming the op.
                       The constants alone are held to it as the package loads: decoded weights,
                       immediate values and what constexpr ops make of them, each checked before it
                       is made (from its declared type) and counted once made; a load past it stops,
                       naming the package, the constant and the total.
                       Default: half of the machine's physical memory; COREML_LSTM_MAX_LIVE_BYTES sets it.
    MAX_LOOP_ITERATIONS  while_loop iterations in one run, nested loops counted together: a loop
                       whose condition never turns false stops with an error. Default 100,000
                       (far above the time steps of a recurrent loop); COREML_LSTM_MAX_LOOP_ITERATIONS.
                       A recurrent op's steps (lstm, gru, rnn) are not counted here: once its weights'
                       shapes are checked against x (T, B, I) and the hidden size H, its output
                       sequence, its input projection (T, B, gates * H) and the fast lstm's step
                       buffer are held to MAX_TENSOR_BYTES before they are made, which bounds T with
                       them; a state of no values (B * H = 0) takes no steps. A step makes a few
                       arrays of (B, gates * H).
    MAX_BLOCK_DEPTH    blocks nested inside blocks (cond, while_loop): 32.
"""

from __future__ import annotations

import math
import os

from ..errors import ConfigError


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: a bound that still catches the absurd
        return 1 << 40


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not an integer") from None
    if value < 1:
        raise ConfigError(f"{name}: must be >= 1, got {value}")
    return value


PHYSICAL_MEMORY = _physical_memory()
MAX_TENSOR_BYTES = _env_int("COREML_LSTM_MAX_TENSOR_BYTES", PHYSICAL_MEMORY // 4)
MAX_LIVE_BYTES = _env_int("COREML_LSTM_MAX_LIVE_BYTES", PHYSICAL_MEMORY // 2)
MAX_LOOP_ITERATIONS = _env_int("COREML_LSTM_MAX_LOOP_ITERATIONS", 100_000)
MAX_BLOCK_DEPTH = 32


class TooLarge(ValueError):
    """A kernel's output would need more memory than the bound (the runner names the op)."""


def size_text(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"  # pragma: no cover


def _bound_text() -> str:
    where = "COREML_LSTM_MAX_TENSOR_BYTES" if os.environ.get("COREML_LSTM_MAX_TENSOR_BYTES") else f"a quarter of this machine's {size_text(PHYSICAL_MEMORY)}"
    return f"the {size_text(MAX_TENSOR_BYTES)} a tensor may take ({where})"


def check_shape(shape, itemsize: int = 4, what: str = "output") -> tuple[int, ...]:
    """``shape`` as Python ints after checking that a tensor of it fits the memory bound.

    Raises:
        TooLarge: the tensor would need more than MAX_TENSOR_BYTES (Python integers: no overflow).
        ValueError: a negative dimension.
    """
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"{what} shape {dims} has a negative dimension")
    nbytes = math.prod(dims) * max(int(itemsize), 1)
    if nbytes > MAX_TENSOR_BYTES:
        raise TooLarge(f"{what} of shape {dims} would need {size_text(nbytes)}, more than {_bound_text()}")
    return dims


def check_count(count: int, itemsize: int = 4, what: str = "output") -> int:
    """:func:`check_shape` for a flat element count."""
    return check_shape((count,), itemsize, what)[0]


def check_broadcast(*shapes, itemsize: int = 4, what: str = "output") -> tuple[int, ...]:
    """The broadcast shape of ``shapes``, checked against the memory bound."""
    import numpy as np

    return check_shape(np.broadcast_shapes(*[tuple(s) for s in shapes]), itemsize, what)
