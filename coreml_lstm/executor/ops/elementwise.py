"""Elementwise unary and binary ops, comparisons and logic (numpy broadcasting = MIL's).

Activations (relu, sigmoid, softmax, ...) live in ``activation.py``."""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel


def _binary(op_type: str, fn, doc: str):
    @kernel(op_type, opset="iOS15")
    class Binary(Kernel):
        def compute(self, *, x, y):
            return fn(np.asarray(x), np.asarray(y))

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
    ("pow", np.power, "x ** y"),
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
        return np.log(x + np.float32(epsilon))


@kernel("rsqrt", opset="iOS15")
class Rsqrt(Kernel):
    """1 / sqrt(x + epsilon), epsilon default 1e-12."""

    def compute(self, *, x, epsilon=1e-12):
        return 1.0 / np.sqrt(x + epsilon)


@kernel("inverse", opset="iOS15")
class Inverse(Kernel):
    """1 / (x + epsilon), epsilon default 1e-4."""

    def compute(self, *, x, epsilon=1e-4):
        return 1.0 / (x + epsilon)


@kernel("clip", opset="iOS15")
class Clip(Kernel):
    """min(max(x, alpha), beta)."""

    def compute(self, *, x, alpha, beta):
        return np.minimum(np.maximum(x, alpha), beta)


@kernel("select", opset="iOS15")
class Select(Kernel):
    """cond ? a : b, broadcast."""

    def compute(self, *, cond, a, b):
        return np.where(cond, a, b)


@kernel("identity", opset="iOS15")
class Identity(Kernel):
    """x."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x):
        return x


@kernel("cast", opset="iOS15")
class Cast(Kernel):
    """x converted to ``dtype`` (a MIL type name); the runner applies the declared type."""

    NAMES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int32": np.int32, "int64": np.int64,
             "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16, "bool": np.bool_}

    def compute(self, *, x, dtype):
        target = self.NAMES.get(str(dtype))
        if target is None:
            raise ValueError(f"cast to {dtype!r} is not supported")
        x = np.asarray(x)
        if np.dtype(target).kind in "iu" and x.dtype.kind == "f":
            x = np.trunc(x)  # MIL casts float to int by truncation toward zero
        if target == np.float16:
            return x.astype(np.float32)  # the runner rounds to fp16 in fp16 mode
        return x.astype(target)
