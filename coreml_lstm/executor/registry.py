"""Kernel registry: one class per MIL op, keyed by op type and the opset it first applies to.

A kernel is registered with ``@kernel("lstm", opset="iOS15")``. A newer opset's kernel
subclasses the older one and overrides only what changed (its docstring says what). Lookup
picks the newest kernel whose opset the program's opset allows; an op with no kernel fails
when the program is loaded, before anything runs.
"""

from __future__ import annotations

from ..errors import UnsupportedOpError

# Core ML program opsets in order, with the deployment target that introduced each.
OPSETS = ("CoreML5", "CoreML6", "CoreML7", "CoreML8")
TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18")
OPSET_OF_TARGET = dict(zip(TARGETS, OPSETS))
TARGET_OF_OPSET = dict(zip(OPSETS, TARGETS))

_KERNELS: dict[str, dict[str, type]] = {}


def opset_rank(opset: str) -> int:
    """Position of an opset (``"CoreML7"``) or target (``"iOS17"``) in release order."""
    if opset in OPSET_OF_TARGET:
        opset = OPSET_OF_TARGET[opset]
    try:
        return OPSETS.index(opset)
    except ValueError:
        raise UnsupportedOpError(
            f"unknown opset {opset!r}; supported: {', '.join(OPSETS)}"
        ) from None


def kernel(op_type: str, opset: str = "iOS15"):
    """Class decorator registering a kernel for ``op_type`` from ``opset`` on."""
    rank = opset_rank(opset)

    def register(cls):
        cls.op_type = op_type
        cls.opset = OPSETS[rank]
        by_opset = _KERNELS.setdefault(op_type, {})
        if cls.opset in by_opset:
            raise RuntimeError(f"two kernels for {op_type!r} at {cls.opset}")
        by_opset[cls.opset] = cls
        return cls

    return register


def lookup(op_type: str, opset: str) -> type:
    """The newest kernel for ``op_type`` that ``opset`` allows.

    Raises:
        UnsupportedOpError: naming the op, the opset and the supported ops.
    """
    rank = opset_rank(opset)
    candidates = [
        (opset_rank(k), cls) for k, cls in _KERNELS.get(op_type, {}).items() if opset_rank(k) <= rank
    ]
    if not candidates:
        raise UnsupportedOpError(
            f"op {op_type!r} has no executor kernel for opset {opset} "
            f"({TARGET_OF_OPSET.get(opset, opset)}); supported: {', '.join(supported(opset))}"
        )
    return max(candidates, key=lambda c: c[0])[1]


def supported(opset: str = "CoreML8") -> list[str]:
    """Sorted op types with a kernel usable at ``opset``."""
    rank = opset_rank(opset)
    return sorted(t for t, ks in _KERNELS.items() if any(opset_rank(k) <= rank for k in ks))
