"""Kernels, one module per family of MIL ops; importing this registers them all."""

from . import (  # noqa: F401
    compression,
    control_flow,
    elementwise,
    image_resizing,
    linear,
    recurrent,
    reduction,
    scatter_gather,
    state,
    tensor,
    tensor_operation,
    tensor_transformation,
)
