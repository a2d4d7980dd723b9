"""A NumPy executor of saved Core ML ML Programs.

It reads an ``.mlpackage`` from disk (Manifest.json, the model protobuf, weights/weight.bin)
and runs the program op by op. It imports numpy and the protobuf classes only, never torch or
the converter, so it checks what ships, on any machine.

    import coreml_lstm.executor as ex
    prog = ex.load("model.mlpackage")
    prog.inputs, prog.outputs           # names, shapes, dtypes
    prog.predict({"window": x}, mode="fp16")
    prog.run({"window": x}, intermediate=True)   # every named value, for debugging parity
"""

from __future__ import annotations

from pathlib import Path

from . import ops as _ops  # noqa: F401  (registers the kernels)
from .program import Kernel, Program, TensorSpec
from .registry import kernel, supported

__all__ = ["load", "Program", "TensorSpec", "Kernel", "kernel", "supported"]


def load(path: str | Path) -> Program:
    """Read and check a saved ML Program; every op's kernel is resolved now.

    Raises:
        PackageError: the package is malformed (manifest, protobuf, weight file).
        UnsupportedOpError: an op has no kernel for the program's opset.
    """
    return Program(path)
