"""Random ops (random_bernoulli, random_categorical, random_normal, random_uniform): out of scope.

Core ML draws these from its own generator, so no executor could reproduce its values; a program
that uses one is refused when it is loaded, with an error that says so.
"""

from __future__ import annotations

from ...errors import UnsupportedOpError
from ..program import Kernel
from ..registry import kernel


class _Random(Kernel):
    def __init__(self, op, program):
        raise UnsupportedOpError(
            f"op {op.name!r} ({op.type}) draws random numbers from Core ML's own generator, which the "
            f"executor cannot reproduce: random ops are out of scope"
        )


for _name in ("random_bernoulli", "random_categorical", "random_normal", "random_uniform"):
    kernel(_name, opset="iOS15")(type("".join(p.title() for p in _name.split("_")), (_Random,), {"__doc__": __doc__}))
