"""Kernels, one module per family of MIL ops; importing this registers them all."""

from . import compression, control_flow, elementwise, linear, recurrent, reduction, state, tensor  # noqa: F401
