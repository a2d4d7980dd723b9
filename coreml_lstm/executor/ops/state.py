"""iOS18 states: read_state and write_state on the caller's state dict (like MLState)."""

from __future__ import annotations

import numpy as np

from ..program import Kernel, State
from ..registry import kernel


def _handle(kernel_: Kernel, value) -> str:
    if not isinstance(value, State):
        raise ValueError("the input is not a state")
    if kernel_.ctx.state is None:
        raise ValueError("the program reads a state but no state was given")
    return value.name


@kernel("read_state", opset="iOS18")
class ReadState(Kernel):
    """The current value of a state (fp16 states are held as float32 holding fp16 values)."""

    def compute(self, *, input):
        name = _handle(self, input)
        return np.asarray(self.ctx.state[name], dtype=np.float32).copy()


@kernel("write_state", opset="iOS18")
class WriteState(Kernel):
    """Store ``data`` into the state in place; the op has no outputs."""

    def compute(self, *, input, data):
        name = _handle(self, input)
        target = self.ctx.state[name]
        target[...] = np.asarray(data).astype(target.dtype)
        return ()
