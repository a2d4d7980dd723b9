"""Linear algebra (MIL ``linear`` family): linear, matmul, einsum.

Values the program declares fp16 are held in float32 and multiplied in float32; int32 stays
int32. iOS17 changes only typing (weight / bias / y may have a dtype other than x's), so the
iOS17 kernels re-register the iOS15 ones.
"""

from __future__ import annotations

import numpy as np

from ..limits import check_broadcast, check_shape
from ..program import Kernel
from ..registry import kernel


def _operand(v) -> np.ndarray:
    """Float values as float32 (fp16 immediates arrive as float16); integers unchanged."""
    v = np.asarray(v)
    return v.astype(np.float32) if v.dtype.kind == "f" and v.dtype != np.float32 else v


@kernel("linear", opset="iOS15")
class Linear(Kernel):
    """x @ weight.T + bias. x: (*D, D_in) of rank 1 to 3; weight: (D_out, D_in); bias: (D_out,) -> (*D, D_out)."""

    def compute(self, *, x, weight, bias=None):
        x, weight = _operand(x), _operand(weight)
        if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: x of shape {x.shape} does not match weight of shape {weight.shape}")
        check_shape(x.shape[:-1] + weight.shape[:1], 8, "linear")
        y = np.matmul(x, weight.T)
        if bias is not None:
            y = y + _operand(bias)
        return y.astype(x.dtype, copy=False) if x.dtype.kind in "iu" else y


@kernel("linear", opset="iOS17")
class LinearIOS17(Linear):
    """iOS17: weight and bias may have a dtype other than x's; maths unchanged."""


@kernel("matmul", opset="iOS15")
class Matmul(Kernel):
    """x @ y, numpy's rules: batch axes (all but the last two) broadcast; a rank-1 x is a row
    (1, K) and a rank-1 y a column (K, 1), the added axis removed from the result; two rank-1
    operands give their dot product (rank 0). ``transpose_x`` / ``transpose_y`` swap the last two
    axes first and do nothing to a rank-1 operand.
    """

    def compute(self, *, x, y, transpose_x=False, transpose_y=False):
        x, y = _operand(x), _operand(y)
        if bool(transpose_x) and x.ndim > 1:
            x = np.swapaxes(x, -1, -2)
        if bool(transpose_y) and y.ndim > 1:
            y = np.swapaxes(y, -1, -2)
        if x.shape[-1] != y.shape[-2 if y.ndim > 1 else -1]:
            raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not multiply")
        batch = check_broadcast(x.shape[:-2], y.shape[:-2], what="matmul")
        check_shape(batch + x.shape[-2:-1] + y.shape[-1:], 8, "matmul")
        return np.matmul(x, y)


@kernel("matmul", opset="iOS17")
class MatmulIOS17(Matmul):
    """iOS17: x and y may have different dtypes (computed in float32 either way)."""


@kernel("einsum", opset="iOS15")
class Einsum(Kernel):
    """Tensor product written as an einsum equation of two operands, ``"nchw,nwhu->nchu"`` or
    ``"chw,whr->chr"`` and their renamings: a matmul over axes -1 of the first and -3 of the second,
    the other axes batch. Size-1 batch axes broadcast against the other operand (which numpy's
    einsum would refuse), so each letter's size is the largest it has in either operand.
    """

    variadic = ("values",)

    def compute(self, *, values, equation):
        if len(values) != 2:
            raise ValueError(f"einsum: expected 2 operands, got {len(values)}")
        a, b = (_operand(v) for v in values)
        equation = str(equation).replace(" ", "")
        lhs, _, _ = equation.partition("->")
        terms = lhs.split(",")
        if len(terms) != 2 or "." in lhs or any(len(t) != v.ndim for t, v in zip(terms, (a, b))):
            raise ValueError(f"einsum: equation {equation!r} does not fit operands of shapes {a.shape} and {b.shape}")
        size = {}
        for term, v in zip(terms, (a, b)):
            for letter, n in zip(term, v.shape):
                if size.get(letter, 1) not in (1, n) and n != 1:
                    raise ValueError(f"einsum: axis {letter!r} has sizes {size[letter]} and {n}")
                size[letter] = max(size.get(letter, 1), n)
        out = equation.partition("->")[2] or "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
        check_shape([size.get(c, 1) for c in out], 8, "einsum")
        a = np.broadcast_to(a, tuple(size[c] for c in terms[0]))
        b = np.broadcast_to(b, tuple(size[c] for c in terms[1]))
        return np.einsum(equation, a, b, optimize=True)
