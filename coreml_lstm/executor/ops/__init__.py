"""Kernels, one module per family of MIL ops; importing this registers them all."""

from . import (  # noqa: F401
    activation,
    attention,
    compression,
    control_flow,
    conv,
    elementwise,
    image_resizing,
    linear,
    normalization,
    pool,
    quantization,
    random,
    recurrent,
    reduction,
    scatter_gather,
    state,
    tensor,
    tensor_operation,
    tensor_transformation,
)
