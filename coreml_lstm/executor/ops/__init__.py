"""Kernels, one module per family of MIL ops; importing this registers them all."""

from . import (  # noqa: F401
    activation,
    attention,
    compression,
    control_flow,
    conv,
    elementwise,
    linear,
    normalization,
    pool,
    quantization,
    recurrent,
    reduction,
    state,
    tensor,
)
