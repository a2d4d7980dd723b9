"""What is inside a saved .mlpackage, read from disk without torch or the converter."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import printable
from .metadata import read_metadata


def _size(path: Path) -> int:
    """Bytes of the package's own files (a symbolic link is not followed: it may point anywhere).

    The walk keeps its own stack (os.walk and Path.rglob recurse before Python 3.12): a tree
    nested thousands of directories deep is summed, not a RecursionError. What cannot be listed
    or stat'ed is skipped."""
    total, stack = 0, [os.fspath(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _spec(t) -> dict:
    return {
        "name": t.name,
        "shape": list(t.shape),
        "dtype": np.dtype(t.dtype).name,
        "shape_range": [list(r) if r is not None else None for r in t.shape_range] if getattr(t, "shape_range", None) else None,
        "enumerated_shapes": [list(s) for s in t.enumerated_shapes] if getattr(t, "enumerated_shapes", None) else None,
        "description": getattr(t, "description", ""),
    }


def describe(path: str | Path) -> dict:
    """Inputs, outputs, states, metadata, deployment target, op counts and size on disk."""
    from . import executor

    path = Path(path)
    program = executor.load(path)
    meta = program.metadata
    return {
        "package": str(path),
        "size_bytes": _size(path),
        "opset": program.opset,
        "deployment_target": program.target,
        "inputs": [_spec(t) for t in program.inputs],
        "outputs": [_spec(t) for t in program.outputs],
        "states": [_spec(t) for t in program.states],
        "metadata": {k: meta.get(k, "") for k in ("author", "license", "short_description", "version")},
        "toolkit": read_metadata(meta.get("user", {}), path),
        "user_defined": {k: v for k, v in meta.get("user", {}).items() if not k.startswith("coreml_lstm.")},
        "op_counts": dict(sorted(program.op_counts().items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def format_description(d: dict) -> str:
    flexible = any(t["shape_range"] or t["enumerated_shapes"] for t in d["inputs"])

    def io(kind: str, items: list) -> list[str]:
        out = [f"{kind}:"]
        for t in items:
            if t["enumerated_shapes"]:
                shape = " or ".join(str(tuple(s)) for s in t["enumerated_shapes"])
            elif t["shape_range"] and all(r is not None for r in t["shape_range"]):
                shape = "(" + ", ".join(str(lo) if lo == hi else f"{lo}..{'inf' if hi < 0 else hi}" for lo, hi in t["shape_range"]) + ")"
            elif not t["shape"] and kind == "outputs" and flexible:
                shape = "(set by the inputs)"
            else:
                shape = "(" + ", ".join("?" if s == -1 else str(s) for s in t["shape"]) + ")"
            out.append(f"  {printable(t['name']):<16} {t['dtype']:<8} {shape}" + (f"  {printable(t['description'])}" if t["description"] else ""))
        return out

    lines = [f"package: {d['package']} ({d['size_bytes'] / 1024:.1f} KiB)", f"deployment target: {d['deployment_target']} (opset {d['opset']})"]
    lines += io("inputs", d["inputs"]) + io("outputs", d["outputs"])
    if d["states"]:
        lines += io("states", d["states"])
    lines.append("metadata:")
    for group in ("metadata", "toolkit", "user_defined"):
        lines += [f"  {printable(k):<18} {printable(v)}" for k, v in d[group].items()]
    lines.append(f"ops ({sum(d['op_counts'].values())}):")
    lines += [f"  {printable(k):<28} {v}" for k, v in d["op_counts"].items()]
    return "\n".join(lines)
