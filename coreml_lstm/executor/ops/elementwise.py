"""Elementwise unary and binary ops, comparisons and logic (numpy broadcasting = MIL's).

Activations (relu, sigmoid, softmax, ...) live in ``activation.py``."""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel
from ._args import check_broadcast, text
from .activation import erf


def _binary(op_type: str, fn, doc: str):
    @kernel(op_type, opset="iOS15")
    class Binary(Kernel):
        def compute(self, *, x, y):
            x, y = np.asarray(x), np.asarray(y)
            check_broadcast(x.shape, y.shape, itemsize=max(x.itemsize, y.itemsize, 1), what=op_type)
            return fn(x, y)

    Binary.__name__ = Binary.__qualname__ = "".join(p.title() for p in op_type.split("_"))
    Binary.__doc__ = doc
    return Binary


for _name, _fn, _doc in [
    ("add", np.add, "x + y"),
    ("sub", np.subtract, "x - y"),
    ("mul", np.multiply, "x * y"),
    ("real_div", np.true_divide, "x / y (the declared output type decides the dtype)"),
    ("floor_div", np.floor_divide, "floor(x / y)"),
    ("mod", np.mod, "x mod y"),
    ("maximum", np.maximum, "max(x, y)"),
    ("minimum", np.minimum, "min(x, y)"),
    ("equal", np.equal, "x == y"),
    ("not_equal", np.not_equal, "x != y"),
    ("less", np.less, "x < y"),
    ("less_equal", np.less_equal, "x <= y"),
    ("greater", np.greater, "x > y"),
    ("greater_equal", np.greater_equal, "x >= y"),
    ("logical_and", np.logical_and, "x and y"),
    ("logical_or", np.logical_or, "x or y"),
    ("logical_xor", np.logical_xor, "x xor y"),
]:
    _binary(_name, _fn, _doc)


def _unary(op_type: str, fn, doc: str):
    @kernel(op_type, opset="iOS15")
    class Unary(Kernel):
        def compute(self, *, x):
            return fn(np.asarray(x))

    Unary.__name__ = Unary.__qualname__ = "".join(p.title() for p in op_type.split("_"))
    Unary.__doc__ = doc
    return Unary


for _name, _fn, _doc in [
    ("abs", np.abs, "|x|"),
    ("exp", np.exp, "e^x"),
    ("exp2", np.exp2, "2^x"),
    ("sqrt", np.sqrt, "sqrt(x)"),
    ("sin", np.sin, "sin x"),
    ("cos", np.cos, "cos x"),
    ("tanh", np.tanh, "tanh x"),
    ("sign", np.sign, "sign(x)"),
    ("floor", np.floor, "floor(x)"),
    ("ceil", np.ceil, "ceil(x)"),
    ("round", np.round, "round half to even"),
    ("square", np.square, "x^2"),
    ("logical_not", np.logical_not, "not x"),
]:
    _unary(_name, _fn, _doc)


@kernel("log", opset="iOS15")
class Log(Kernel):
    """log(x + epsilon); epsilon defaults to 1e-45 (MIL), i.e. log(x) for any x > 0."""

    def compute(self, *, x, epsilon=1e-45):
        x = np.asarray(x, dtype=np.float32)
        check_broadcast(x.shape, np.shape(epsilon), what="log")
        return np.log(x + np.float32(epsilon))


@kernel("rsqrt", opset="iOS15")
class Rsqrt(Kernel):
    """1 / sqrt(x + epsilon), epsilon default 1e-12."""

    def compute(self, *, x, epsilon=1e-12):
        check_broadcast(np.shape(x), np.shape(epsilon), itemsize=8, what="rsqrt")
        return 1.0 / np.sqrt(x + epsilon)


@kernel("inverse", opset="iOS15")
class Inverse(Kernel):
    """1 / (x + epsilon), epsilon default 1e-4."""

    def compute(self, *, x, epsilon=1e-4):
        check_broadcast(np.shape(x), np.shape(epsilon), itemsize=8, what="inverse")
        return 1.0 / (x + epsilon)


@kernel("clip", opset="iOS15")
class Clip(Kernel):
    """min(max(x, alpha), beta)."""

    def compute(self, *, x, alpha, beta):
        check_broadcast(np.shape(x), np.shape(alpha), np.shape(beta), itemsize=8, what="clip")
        return np.minimum(np.maximum(x, alpha), beta)


@kernel("select", opset="iOS15")
class Select(Kernel):
    """cond ? a : b, broadcast."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, cond, a, b):
        a, b = np.asarray(a), np.asarray(b)
        check_broadcast(np.shape(cond), a.shape, b.shape, itemsize=max(a.itemsize, b.itemsize, 1), what="select")
        return np.where(cond, a, b)


@kernel("identity", opset="iOS15")
class Identity(Kernel):
    """x."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x):
        return x


@kernel("cast", opset="iOS15")
class Cast(Kernel):
    """x converted to ``dtype`` (iOS15: bool, fp16, fp32, int32).

    float -> int truncates toward zero and saturates at the target's range (NaN -> 0); int -> a
    narrower int saturates too; -> bool is x != 0. fp16 stays a float32 array (the runner rounds it
    to fp16 values in fp16 mode).
    """

    NAMES = {"bool": np.bool_, "fp16": np.float16, "fp32": np.float32, "int32": np.int32}

    def compute(self, *, x, dtype):
        name = text(dtype)
        target = self.NAMES.get(name)
        if target is None:
            raise ValueError(f"cast to {name!r} is not supported at this opset; supported: {', '.join(sorted(self.NAMES))}")
        x = np.asarray(x)
        target = np.dtype(target)
        if target == np.bool_:
            return x != 0
        if target.kind in "iu":
            info = np.iinfo(target)
            if x.dtype.kind == "f":
                x = np.nan_to_num(np.trunc(x.astype(np.float64)), nan=0.0)
            elif x.dtype == np.bool_:
                x = x.astype(np.int64)
            return np.clip(x, info.min, info.max).astype(target)
        if target == np.float16:
            return x.astype(np.float32)  # the runner rounds to fp16 in fp16 mode
        return x.astype(target)


@kernel("cast", opset="iOS17")
class CastIOS17(Cast):
    """iOS17 adds the int8, uint8, int16 and uint16 targets (same conversion rules)."""

    NAMES = {**Cast.NAMES, "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16}


def _float_op(fn):
    """fn applied in float64 to a float or integer array (the runner casts to the declared type)."""
    return lambda x: fn(np.asarray(x, dtype=np.float64))


for _name, _fn, _doc in [
    ("acos", np.arccos, "arccos x, x in [-1, 1]"),
    ("asin", np.arcsin, "arcsin x, x in [-1, 1]"),
    ("atan", np.arctan, "arctan x"),
    ("atanh", np.arctanh, "artanh x, x in (-1, 1)"),
    ("cosh", np.cosh, "cosh x"),
    ("sinh", np.sinh, "sinh x"),
    ("tan", np.tan, "tan x"),
    ("erf", erf, "the error function 2/sqrt(pi) * integral_0^x e^(-t^2) dt"),
]:
    _unary(_name, _float_op(_fn), _doc)


@kernel("threshold", opset="iOS15")
class Threshold(Kernel):
    """max(x, alpha): values below alpha become alpha."""

    def compute(self, *, x, alpha):
        check_broadcast(np.shape(x), np.shape(alpha), itemsize=8, what="threshold")
        return np.maximum(x, np.asarray(alpha))


@kernel("clip", opset="iOS17")
class ClipIOS17(Clip):
    """iOS17 requires alpha < beta (the same clamp otherwise)."""

    def compute(self, *, x, alpha, beta):
        if not float(alpha) < float(beta):
            raise ValueError(f"clip: alpha ({float(alpha)}) must be smaller than beta ({float(beta)})")
        return super().compute(x=x, alpha=alpha, beta=beta)


@kernel("pow", opset="iOS15")
class Pow(Kernel):
    """x ** y; integer operands are raised in float64 (so a negative exponent is allowed) and the
    declared int32 output truncates the result."""

    def compute(self, *, x, y):
        x, y = np.asarray(x), np.asarray(y)
        check_broadcast(x.shape, y.shape, itemsize=8, what="pow")
        if x.dtype.kind in "iub" and y.dtype.kind in "iub":
            return np.power(x.astype(np.float64), y.astype(np.float64))
        return np.power(x, y)
