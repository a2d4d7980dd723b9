"""Run a saved package on named arrays through Core ML (macOS) or the executor (anywhere).

Also the file formats of ``coreml-lstm run``: feeds and results as .npz or .json
(``{name: nested lists}``), states likewise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ConfigError, FeedError
from .fsutil import atomic_path

BACKENDS = ("auto", "coreml", "executor")


class Backend:
    """A loaded package with one ``predict(feeds, state=None)``; ``name`` says which runtime."""

    def __init__(self, path: str | Path, backend: str = "auto", mode: str = "fp32"):
        from . import executor
        from .verify import coreml_available

        if backend not in BACKENDS:
            raise ConfigError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.program = executor.load(path)  # validates the package whichever backend runs it
        ok, why = coreml_available()
        if backend == "coreml" and not ok:
            raise ConfigError(f"backend coreml: {why}; use --backend executor")
        self.name = "coreml" if (backend == "coreml" or (backend == "auto" and ok)) else "executor"
        self.mode = mode
        if self.name == "coreml":  # pragma: no cover - macOS only
            from ._coremltools import coremltools

            self.model = coremltools().models.MLModel(str(path))

    def make_state(self):
        if self.name == "coreml":  # pragma: no cover - macOS only
            return self.model.make_state()
        return self.program.make_state()

    def predict(self, feeds: dict, state=None, intermediate: bool = False) -> dict:
        if self.name == "coreml":  # pragma: no cover - macOS only
            if intermediate:
                raise ConfigError("--intermediate needs the executor backend (Core ML shows only the outputs)")
            return self.model.predict(feeds, state=state) if state is not None else self.model.predict(feeds)
        if intermediate:
            return self.program.run(feeds, mode=self.mode, state=state, intermediate=True)
        return self.program.predict(feeds, mode=self.mode, state=state)


def read_arrays(path: str | Path, what: str = "inputs") -> dict[str, np.ndarray]:
    """Named arrays from .npz (no pickle) or .json ``{name: nested list}``."""
    path = Path(path)
    if not path.is_file():
        raise FeedError(f"{path}: no such {what} file")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as exc:
            raise FeedError(f"{path}: not a readable .npz file ({exc})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise FeedError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        if not isinstance(data, dict):
            raise FeedError(f"{path}: expected a JSON object of named arrays")
        arrays = {}
        for k, v in data.items():
            try:
                arrays[k] = np.asarray(v)
            except ValueError:  # ragged nesting
                raise FeedError(f"{path}: {k!r} is not a rectangular array (its rows differ in length)") from None
            if arrays[k].dtype.kind not in "biuf":
                raise FeedError(f"{path}: {k!r} is not an array of numbers")
        return arrays
    raise FeedError(f"{path}: {what} must be .npz or .json")


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named arrays atomically as .npz or .json (by the suffix).

    An .npz holds numbers and strings only, never pickled objects (it is read back with
    ``allow_pickle=False``, here and by anyone who follows numpy's advice): an output that is not
    an array of either (a dictionary of class probabilities) is refused there, with the .json
    that can hold it named."""
    path = Path(path)
    if path.suffix not in (".npz", ".json"):
        raise ConfigError(f"{path}: outputs must be .npz or .json")
    if path.suffix == ".npz":
        plain = {}
        for name, value in arrays.items():
            a = np.asarray(value)
            if a.dtype == object and all(isinstance(v, str) for v in a.flat):
                a = a.astype(np.str_)
            if a.dtype.hasobject:
                raise ConfigError(f"{path}: output {name!r} is a {type(value).__name__}, not an array of numbers or strings; write .json instead")
            plain[name] = a
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, allow_pickle=False, **plain)
        else:
            tmp.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in arrays.items()}) + "\n")


def cast_feeds(program, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Numbers from JSON arrive as float64/int64: cast them to the declared dtype of the same kind.

    A float feed for an integer input is left alone, so the executor rejects it with a FeedError
    rather than truncating token ids silently.
    """
    from .adapter import cast_to

    return cast_to({t.name: t.dtype for t in program.inputs}, feeds)
