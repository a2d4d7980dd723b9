"""const, split, concat and stack. The other tensor ops live in one module per MIL family:
tensor_operation, tensor_transformation, scatter_gather, image_resizing."""

from __future__ import annotations

import numpy as np

from ..limits import check_count
from ..program import Kernel
from ..registry import kernel


def _ints(v) -> list[int]:
    return [int(i) for i in np.asarray(v).reshape(-1)]


@kernel("const", opset="iOS15")
class Const(Kernel):
    """The value stored with the op (attribute ``val``)."""

    def compute(self, *, val):
        return val


@kernel("split", opset="iOS15")
class Split(Kernel):
    """Split along ``axis`` into ``num_splits`` equal parts or parts of ``split_sizes``."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axis, num_splits=None, split_sizes=None):
        axis = int(axis)
        if split_sizes is not None:
            edges = np.cumsum(_ints(split_sizes))[:-1]
            return tuple(np.split(x, edges, axis=axis))
        num_splits = int(num_splits)
        if num_splits != len(self.op.outputs):  # before np.split makes that many views (2^40 of an empty axis)
            raise ValueError(f"split: num_splits {num_splits} for an op with {len(self.op.outputs)} outputs")
        return tuple(np.split(x, num_splits, axis=axis))


@kernel("concat", opset="iOS15")
class Concat(Kernel):
    """Join ``values`` along ``axis`` (or interleave them).

    Rank-0 values (every value has the same rank) count as length 1 along the axis: n scalars make
    a vector of shape (n,), whatever ``axis`` and ``interleave`` say. Flexible-shape programs build shapes
    this way from ``gather``-ed scalar dimensions.
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    variadic = ("values",)

    def compute(self, *, values, axis, interleave=False):
        axis = int(axis)
        values = [np.asarray(v) for v in values]
        check_count(sum(v.size for v in values), max((v.itemsize for v in values), default=1), "concat")
        if values and all(v.ndim == 0 for v in values):
            return np.stack(values)  # MIL's type inference: shape (n,) for any axis
        if bool(interleave):
            stacked = np.stack(values, axis=axis + 1 if axis >= 0 else axis)
            shape = list(values[0].shape)
            shape[axis] = shape[axis] * len(values)
            return stacked.reshape(shape)
        return np.concatenate(values, axis=axis)


@kernel("stack", opset="iOS15")
class Stack(Kernel):
    """Stack ``values`` along a new ``axis``."""

    keeps_fp16 = True  # moves fp16 values, makes none

    variadic = ("values",)

    def compute(self, *, values, axis):
        values = [np.asarray(v) for v in values]
        check_count(sum(v.size for v in values), max((v.itemsize for v in values), default=1), "stack")
        return np.stack(values, axis=int(axis))
