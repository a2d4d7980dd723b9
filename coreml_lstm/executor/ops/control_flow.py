"""Control flow: while_loop and cond run nested blocks over the enclosing scope."""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel

MAX_ITERATIONS = 1_000_000  # a guard against a malformed loop, far above any sequence length


@kernel("while_loop", opset="iOS15")
class WhileLoop(Kernel):
    """loop_vars = body(*loop_vars) while cond(*loop_vars); blocks[0] is cond, blocks[1] the body.

    Both blocks read values of the enclosing scope by name (nn.GRU's lowering relies on it).
    """

    variadic = ("loop_vars",)
    needs_env = True

    def compute(self, *, loop_vars, env, **_):
        cond, body = self.op.blocks
        values = list(loop_vars)
        for _ in range(MAX_ITERATIONS):
            (go,) = self.ctx.run_block(cond, env, values)
            if not bool(np.asarray(go)):
                return tuple(values)
            values = self.ctx.run_block(body, env, values)
        raise ValueError(f"while_loop ran {MAX_ITERATIONS} iterations without stopping")


@kernel("cond", opset="iOS15")
class Cond(Kernel):
    """blocks[0](*) if pred else blocks[1](*)."""

    needs_env = True

    def compute(self, *, pred, env, **_):
        block = self.op.blocks[0] if bool(np.asarray(pred)) else self.op.blocks[1]
        return tuple(self.ctx.run_block(block, env))
