"""Run one executor kernel on numpy inputs, without a package: what kernel tests call."""

from __future__ import annotations

import numpy as np

from coreml_lstm.executor import registry
from coreml_lstm.executor.program import Op, Output, RunContext


def run(op_type: str, opset: str = "iOS18", run_mode: str = "fp32", out_dtype=np.float32, outputs: int = 1, **inputs):
    """``compute(**inputs)`` of the kernel ``opset`` picks for ``op_type``.

    ``run_mode="fp16"`` with ``out_dtype=np.float16`` runs it as an op whose outputs the program
    declares fp16 (recurrent kernels then round their state at every step).
    """
    op = Op(op_type, op_type, {}, {}, [Output(f"out{i}", np.dtype(out_dtype), None) for i in range(outputs)])
    k = registry.lookup(op_type, opset)(op, None)
    k.ctx = RunContext(None, run_mode, None)
    return k.compute(**inputs)
