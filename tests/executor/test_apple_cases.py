"""A fixed subset of Apple's own op tests, replayed through the executor.

``apple_cases/`` holds ML Programs that coremltools' unit tests (MIL op tests and torch frontend
tests) built, with the feeds and the expected outputs those tests compare Core ML against (numpy
or torch references) and the tolerance each case passes at: captured and selected by
``scripts/apple_suite.py`` (see its docstring to regenerate: one command, after adding a kernel).
No conversion happens here. Every case must pass, and every op type with a kernel must be used by
at least one case.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import coreml_lstm.executor as ex
from coreml_lstm.errors import CoreMLLSTMError, UnsupportedOpError

HERE = Path(__file__).parent / "apple_cases"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
CASES = MANIFEST["cases"]


def _steps(case_dir: Path, meta: dict) -> list[tuple[dict, dict]]:
    with np.load(case_dir / "data.npz", allow_pickle=False) as data:
        out = []
        for k in range(meta["steps"]):
            feeds = {key.split("/", 2)[2]: data[key] for key in data.files if key.startswith(f"s{k}/in/")}
            expected = {key.split("/", 2)[2]: data[key] for key in data.files if key.startswith(f"s{k}/out/")}
            out.append((feeds, expected))
    return out


def _run(case: dict) -> list[tuple[dict, dict]]:
    """(executor outputs, expected outputs) per step; feeds converted to the declared input types."""
    case_dir = HERE / case["id"]
    meta = json.loads((case_dir / "case.json").read_text())
    program = ex.load(case_dir / "model.mlpackage")
    declared = {t.name: t.dtype for t in program.inputs}
    state = program.make_state() if program.states else None
    out = []
    for feeds, expected in _steps(case_dir, meta):
        feeds = {k: v.astype(declared[k]) if k in declared and v.dtype != declared[k] else v for k, v in feeds.items()}
        out.append((program.predict(feeds, mode=case["mode"], state=state), expected))
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{c['op']}-{c['id']}" for c in CASES])
def test_apple_case(case):
    if case["expects_error"]:  # the test expects Core ML to raise: the executor must refuse too
        with pytest.raises(CoreMLLSTMError) as info:
            _run(case)
        assert not isinstance(info.value, UnsupportedOpError), info.value
        return
    for got, expected in _run(case):
        for name, want in expected.items():
            value = np.asarray(got[name])
            if want.shape == () and value.shape == (1,):  # Core ML returns a scalar as shape (1,)
                value = value.reshape(())
            assert value.shape == want.shape, f"{name}: shape {value.shape}, expected {want.shape} ({case['nodeid']})"
            np.testing.assert_allclose(
                value.astype(np.float64), want.astype(np.float64), atol=case["atol"], rtol=case["rtol"],
                err_msg=f"{name} of {case['nodeid']} ({case['mode']} mode)",
            )


# Kernels that no captured Apple test exercises, with the reason and where they are tested instead.
NO_APPLE_CASE = {
    "classify": "only coremltools' conversion-API tests build classifiers (not captured: their outputs are a "
    "label and a dictionary); the project's classifier exports run it (tests/test_classify.py)",
    "non_maximum_suppression": "Apple's NMS tests compute their expected values with TensorFlow, which is not "
    "installed, so they skip; tested against a reference NMS in tests/executor/ops/test_tensor_operation.py",
}


def test_every_kernel_has_a_case():
    """A new kernel needs an Apple case here: regenerate the subset (scripts/apple_suite.py)."""
    covered = {op for c in CASES for op in c["ops"]}
    missing = sorted(set(ex.supported()) - covered - set(NO_APPLE_CASE))
    assert not missing, f"kernels with no Apple case in {HERE.name}: {', '.join(missing)}"
    stale = sorted(op for op in NO_APPLE_CASE if op in covered or op not in ex.supported())
    assert not stale, f"NO_APPLE_CASE lists ops that have a case or no kernel: {', '.join(stale)}"


def test_the_subset_is_small_and_pins_its_cases():
    size = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    assert size < 4_000_000, f"{HERE.name} takes {size / 1e6:.1f} MB"
    on_disk = {p.name for p in HERE.iterdir() if p.is_dir()}
    listed = {c["id"] for c in CASES}
    assert on_disk == listed
    assert {c["mode"] for c in CASES} == {"fp16", "fp32"}
