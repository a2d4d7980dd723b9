"""The Core ML protobuf message classes, loaded without importing coremltools.

The generated ``*_pb2`` modules ship inside the coremltools wheel, but importing
``coremltools.proto`` runs ``coremltools/__init__.py``, which imports the converters and torch
(about two seconds). The executor must not: it loads the same files as a private package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

from ..errors import PackageError

_PACKAGE = __name__ + "_files"


def _module(name: str):
    if "coremltools.proto." + name in sys.modules:  # already imported by the converter: share it
        return sys.modules["coremltools.proto." + name]
    if _PACKAGE not in sys.modules:
        spec = importlib.util.find_spec("coremltools")
        if spec is None or not spec.submodule_search_locations:
            raise PackageError("the Core ML protobuf definitions come with coremltools, which is not installed")
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [os.path.join(spec.submodule_search_locations[0], "proto")]
        sys.modules[_PACKAGE] = package
    return importlib.import_module(f"{_PACKAGE}.{name}")


def model_pb2():
    return _module("Model_pb2")


def mil_pb2():
    return _module("MIL_pb2")


def feature_types_pb2():
    return _module("FeatureTypes_pb2")
