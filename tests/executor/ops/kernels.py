"""Call an executor kernel directly, as the runner would: by op type and opset, inputs by name."""

from __future__ import annotations

from coreml_lstm.executor import registry


def call(op_type: str, opset: str = "iOS15", **inputs):
    return registry.lookup(op_type, opset)(None, None).compute(**inputs)
