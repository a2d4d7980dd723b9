"""Control flow: while_loop and cond run nested blocks over the enclosing scope."""

from __future__ import annotations

import numpy as np

from .. import limits
from ..program import Kernel
from ..registry import kernel


@kernel("while_loop", opset="iOS15")
class WhileLoop(Kernel):
    """loop_vars = body(*loop_vars) while cond(*loop_vars); blocks[0] is cond, blocks[1] the body.

    Both blocks read values of the enclosing scope by name (nn.GRU's lowering relies on it).
    Iterations count against the run's bound (``limits.MAX_LOOP_ITERATIONS``), so a loop whose
    condition never turns false ends with an error.
    """

    variadic = ("loop_vars",)
    needs_env = True

    def compute(self, *, loop_vars, env, **_):
        if len(self.op.blocks) != 2:
            raise ValueError(f"while_loop needs a condition and a body block, has {len(self.op.blocks)} blocks")
        cond, body = self.op.blocks
        if len(cond.outputs) != 1 or len(body.outputs) != len(loop_vars):
            raise ValueError(f"while_loop: the condition gives {len(cond.outputs)} values (needs 1), the body {len(body.outputs)} (needs {len(loop_vars)})")
        values = list(loop_vars)
        while True:
            (go,) = self.ctx.run_block(cond, env, values)
            if np.size(go) != 1:
                raise ValueError(f"while_loop: the condition is {np.shape(go)}, not a scalar")
            if not bool(np.asarray(go).reshape(())):
                return tuple(values)
            self.ctx.count_iteration(self.op)
            values = self.ctx.run_block(body, env, values)


@kernel("cond", opset="iOS15")
class Cond(Kernel):
    """blocks[0](*) if pred else blocks[1](*)."""

    needs_env = True

    def compute(self, *, pred, env, **_):
        if len(self.op.blocks) != 2:
            raise ValueError(f"cond needs two blocks, has {len(self.op.blocks)}")
        if np.size(pred) != 1:
            raise ValueError(f"cond: pred is {np.shape(pred)}, not a scalar")
        block = self.op.blocks[0] if bool(np.asarray(pred).reshape(())) else self.op.blocks[1]
        return tuple(self.ctx.run_block(block, env))


# -- lists: a value that grows as a loop writes to it (torch loops lower to these) ------------

_LIST_DTYPES = {"fp16": np.float32, "fp32": np.float32, "int32": np.int32, "bool": np.bool_}  # fp16 held as fp32


class TensorList:
    """An immutable MIL list: every write returns a new list. ``items`` holds arrays, or None for
    positions never written (read as zeros of the element shape)."""

    __slots__ = ("items", "elem_shape", "dtype", "dynamic", "held_bytes")

    def __init__(self, items: list, elem_shape: tuple | None, dtype, dynamic: bool, held_bytes: int = 0):
        self.items, self.elem_shape, self.dtype, self.dynamic = items, elem_shape, dtype, dynamic
        # The bytes of the written elements (each a copy the list owns), what the run's count of
        # the values it holds adds for it (see program.LiveBytes); kept as the list is written.
        self.held_bytes = held_bytes

    def __len__(self) -> int:
        return len(self.items)

    def read(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self.items):
            raise ValueError(f"list index {i} is out of range for a list of length {len(self.items)}")
        item = self.items[i]
        if item is None:
            if self.elem_shape is None:
                raise ValueError(f"list element {i} was never written and the element shape is unknown")
            return np.zeros(self.elem_shape, self.dtype)
        return item

    def written(self, pairs) -> "TensorList":
        """A copy with ``value`` at each ``index`` of pairs; a dynamic list grows to fit."""
        items, shape, held = list(self.items), self.elem_shape, self.held_bytes
        for i, value in pairs:
            value = np.asarray(value).astype(self.dtype)
            if shape is not None and value.shape != tuple(shape):
                raise ValueError(f"list element of shape {value.shape} does not match the list's {tuple(shape)}")
            shape = value.shape
            if i < 0:
                raise ValueError(f"list index {i} is negative")
            if i >= len(items):
                if not self.dynamic:
                    raise ValueError(f"list index {i} is out of range for a fixed list of length {len(items)}")
                limits.check_shape((i + 1,) + tuple(shape or ()), 8, "list_write")
                items += [None] * (i + 1 - len(items))
            held += value.nbytes - (items[i].nbytes if items[i] is not None else 0)
            items[i] = value
        return TensorList(items, shape, self.dtype, self.dynamic, held)


def _list(ls, op: str) -> TensorList:
    if not isinstance(ls, TensorList):
        raise ValueError(f"{op}: input 'ls' is not a list")
    return ls


@kernel("make_list", opset="iOS15")
class MakeList(Kernel):
    """A list of ``init_length`` zero elements of shape ``elem_shape`` (entries that are strings are
    symbolic: the shape is then learnt from the first write) and ``dtype`` (default fp32)."""

    variadic = ("elem_shape",)

    def compute(self, *, elem_shape, init_length=1, dynamic_length=True, dtype="fp32"):
        name = str(np.asarray(dtype).reshape(-1)[0]) if isinstance(dtype, np.ndarray) else str(dtype)
        if name not in _LIST_DTYPES:
            raise ValueError(f"make_list: dtype {name!r} is not one of {', '.join(_LIST_DTYPES)}")
        dims = [np.asarray(d).reshape(-1)[0] if isinstance(d, np.ndarray) else d for d in elem_shape]
        shape = None if any(isinstance(d, str) or np.asarray(d).dtype.kind in "US" for d in dims) else tuple(int(d) for d in dims)
        length = int(np.asarray(init_length).reshape(()))
        if length < 0:
            raise ValueError(f"make_list: init_length {length} is negative")
        limits.check_shape((length,) + (shape or ()), 8, "make_list")  # a slot per element (its zeros when read)
        return TensorList([None] * length, shape, _LIST_DTYPES[name], bool(np.asarray(dynamic_length).reshape(())))


@kernel("list_length", opset="iOS15")
class ListLength(Kernel):
    """The number of elements of ``ls`` (int32)."""

    def compute(self, *, ls):
        return np.int32(len(_list(ls, "list_length")))


@kernel("list_write", opset="iOS15")
class ListWrite(Kernel):
    """ls with ``value`` at ``index``; writing past the end of a dynamic list grows it (gaps read as zeros)."""

    def compute(self, *, ls, index, value):
        return _list(ls, "list_write").written([(int(np.asarray(index).reshape(())), value)])


@kernel("list_read", opset="iOS15")
class ListRead(Kernel):
    """The element of ``ls`` at ``index``."""

    def compute(self, *, ls, index):
        return _list(ls, "list_read").read(int(np.asarray(index).reshape(())))


@kernel("list_gather", opset="iOS15")
class ListGather(Kernel):
    """The elements of ``ls`` at ``indices`` stacked: (len(indices), *elem_shape)."""

    def compute(self, *, ls, indices):
        ls = _list(ls, "list_gather")
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not idx:
            if ls.elem_shape is None:
                raise ValueError("list_gather: no indices and the element shape is unknown")
            return np.zeros((0,) + tuple(ls.elem_shape), ls.dtype)
        if ls.elem_shape is not None:
            limits.check_shape((len(idx),) + tuple(ls.elem_shape), np.dtype(ls.dtype).itemsize, "list_gather")
        return np.stack([ls.read(i) for i in idx])


@kernel("list_scatter", opset="iOS15")
class ListScatter(Kernel):
    """ls with value[k] written at indices[k] for every k."""

    def compute(self, *, ls, indices, value):
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        value = np.asarray(value)
        if value.shape[:1] != (len(idx),):
            raise ValueError(f"list_scatter: {value.shape[:1]} values for {len(idx)} indices")
        return _list(ls, "list_scatter").written(zip(idx, value))
