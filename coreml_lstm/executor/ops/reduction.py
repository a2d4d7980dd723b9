"""Reductions over ``axes`` (all axes when absent) with ``keep_dims``, and argmax / argmin."""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel


def _axes(axes, ndim):
    return tuple(range(ndim)) if axes is None else tuple(int(a) for a in np.asarray(axes).reshape(-1))


def _reduction(op_type: str, fn, doc: str):
    @kernel(op_type, opset="iOS15")
    class Reduce(Kernel):
        def compute(self, *, x, axes=None, keep_dims=False):
            x = np.asarray(x)
            return fn(x, _axes(axes, x.ndim), bool(keep_dims))

    Reduce.__name__ = Reduce.__qualname__ = "".join(p.title() for p in op_type.split("_"))
    Reduce.__doc__ = doc
    return Reduce


def _log_sum_exp(x, axes, keep):
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or an inf) along the axes: no shift
    with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for an all -inf slice
        out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keep else np.squeeze(out, axis=axes)


for _name, _fn, _doc in [
    ("reduce_sum", lambda x, a, k: np.sum(x, axis=a, keepdims=k), "sum"),
    ("reduce_mean", lambda x, a, k: np.mean(x, axis=a, keepdims=k), "mean"),
    ("reduce_max", lambda x, a, k: np.max(x, axis=a, keepdims=k), "max"),
    ("reduce_min", lambda x, a, k: np.min(x, axis=a, keepdims=k), "min"),
    ("reduce_prod", lambda x, a, k: np.prod(x, axis=a, keepdims=k), "product"),
    ("reduce_sum_square", lambda x, a, k: np.sum(x * x, axis=a, keepdims=k), "sum of squares"),
    ("reduce_l1_norm", lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k), "sum of |x|"),
    ("reduce_l2_norm", lambda x, a, k: np.sqrt(np.sum(x * x, axis=a, keepdims=k)), "sqrt of the sum of squares"),
    ("reduce_log_sum", lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)), "log of the sum"),
    ("reduce_log_sum_exp", _log_sum_exp, "log of the sum of exp, computed stably"),
]:
    _reduction(_name, _fn, _doc)


@kernel("reduce_argmax", opset="iOS15")
class ReduceArgmax(Kernel):
    """Index of the maximum along ``axis`` (default -1) as int32, the first one on ties;
    ``keep_dims`` keeps the axis with size 1."""

    reduce = staticmethod(np.argmax)

    def compute(self, *, x, axis=-1, keep_dims=False):
        return self._arg(x, axis, keep_dims).astype(np.int32)

    def _arg(self, x, axis, keep_dims):
        x = np.asarray(x)
        a = int(axis)
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"axis {a} is out of range for rank {x.ndim}")
        out = self.reduce(x, axis=a)
        return np.expand_dims(out, a) if bool(keep_dims) else out


@kernel("reduce_argmin", opset="iOS15")
class ReduceArgmin(ReduceArgmax):
    """Index of the minimum along ``axis`` (default -1) as int32, the first one on ties."""

    reduce = staticmethod(np.argmin)


class _ArgIOS17:
    """iOS17 adds ``output_dtype``: int32 (default) or uint16."""

    def compute(self, *, x, axis=-1, keep_dims=False, output_dtype="int32"):
        name = str(np.asarray(output_dtype).reshape(-1)[0]).lower()
        if name not in ("int32", "uint16"):
            raise ValueError(f"output_dtype {name!r} is not int32 or uint16")
        return self._arg(x, axis, keep_dims).astype(name)


@kernel("reduce_argmax", opset="iOS17")
class ReduceArgmaxIOS17(_ArgIOS17, ReduceArgmax):
    __doc__ = ReduceArgmax.__doc__ + "\n    iOS17 adds ``output_dtype``: int32 (default) or uint16.\n"


@kernel("reduce_argmin", opset="iOS17")
class ReduceArgminIOS17(_ArgIOS17, ReduceArgmin):
    __doc__ = ReduceArgmin.__doc__ + "\n    iOS17 adds ``output_dtype``: int32 (default) or uint16.\n"


@kernel("classify", opset="iOS15")
class Classify(Kernel):
    """A classifier's outputs: the most probable class and the {class: probability} dictionary.

    probabilities: fp32 (..., K) holding K values in all (a batch of one); classes: K strings or
    int64s (a const list). Returns (class label, dict of class -> probability as Python float),
    the label being the first class of maximal probability, as Core ML picks it.
    """

    def compute(self, *, probabilities, classes):
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        labels = [_plain(c) for c in classes]
        if len(labels) != p.size:
            raise ValueError(f"classify: {len(labels)} classes for {p.size} probabilities")
        return np.asarray(labels[int(np.argmax(p))]), {c: float(v) for c, v in zip(labels, p)}


def _plain(value):
    """A decoded class value (0-d array or str) as str or int."""
    if isinstance(value, str):
        return value
    value = np.asarray(value)
    return int(value) if value.dtype.kind in "iu" else str(value)
