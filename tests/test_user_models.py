"""User-style models (tests/user_models.py) converted with coreml_lstm.convert and verified by
the executor against torch on Linux: fp32 programs within 1e-4, fp16 within 5e-2 (abs and rel),
at the smallest, the largest and in-between sizes of every flexible range.

Conversions are the cost, so by default each model runs at ONE (target, precision) of its
product: model i takes configuration (i + N) mod its count, N = 0 unless
``COREML_LSTM_ROTATION=N`` says otherwise (a fixed choice, so a CI run repeats; the models
together cover every target and precision). ``COREML_LSTM_USER_MODELS=all``
runs the whole product, as does ``python scripts/user_models.py``. Each
(model, target, precision) is converted once per session.
"""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

import coreml_lstm
from coreml_lstm.errors import ConfigError, CoreMLLSTMError

from .user_models import BY_NAME, MODELS

CASES = [(m.name, t, p) for m in MODELS for t, p in m.configs()]
ROTATION = int(os.environ.get("COREML_LSTM_ROTATION", "0"))


def in_rotation(name: str, target: str, precision: str) -> bool:
    index = [m.name for m in MODELS].index(name)
    configs = BY_NAME[name].configs()
    return configs[(index + ROTATION) % len(configs)] == (target, precision)


# The cases this run converts: the whole product with COREML_LSTM_USER_MODELS=all, else one per model.
RUN = CASES if os.environ.get("COREML_LSTM_USER_MODELS") == "all" else [c for c in CASES if in_rotation(*c)]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(model name, target, precision) -> (module, package path, report); each converted once."""
    root = tmp_path_factory.mktemp("user-models")
    cache = {}

    def get(name, target, precision):
        key = (name, target, precision)
        if key not in cache:
            model = BY_NAME[name]
            module, examples = model.build()
            try:
                path, report = coreml_lstm.convert(module, examples, root / f"{name}-{target}-{precision}.mlpackage", inputs=model.inputs,
                                                   outputs=model.outputs, states=model.states, precision=precision, target=target,
                                                   compress=model.compress, samples=model.samples)
                cache[key] = (module, path, report)
            except CoreMLLSTMError as exc:  # a refusal, kept: the case asserts its message
                cache[key] = exc
        if isinstance(cache[key], Exception):
            raise cache[key]
        return cache[key]

    return get


def _table(report) -> str:
    from coreml_lstm.testing import format_report

    return format_report(report)


@pytest.mark.parametrize("case", RUN, ids=["-".join(c) for c in RUN])
def test_user_model_converts_and_matches_torch(case, converted):
    name, target, precision = case
    model = BY_NAME[name]
    if (target, precision) in model.refused:
        with pytest.raises(CoreMLLSTMError) as err:
            converted(*case)
        assert str(err.value).startswith(model.refused[(target, precision)])
        return
    module, path, report = converted(*case)
    assert report.status == "passed", "\n" + _table(report)
    executor = [c for c in report.ran if c.backend == "executor"]
    # A stateful program keeps its states in fp16 whatever the compute precision: fp16 numerics and bar.
    assert executor and {c.mode for c in executor} == {"fp16" if model.states else precision}
    # Compressed weights are held to the fp16 bar too; these models' weights sit on the
    # compression's grid, so in fp32 their packages still match to fp32's.
    bar = 1e-4 if precision == "fp32" and not model.states and not model.compress else 5e-2
    assert all(c.tolerance.atol == bar and c.tolerance.rtol == bar for c in executor)
    if model.compress and precision == "fp32":
        assert max(c.max_abs for c in executor) < 1e-4, "\n" + _table(report)
    assert {c.output for c in executor} == set(model.outputs)
    if model.inputs and not model.states:  # flexible: checked at the smallest, the largest and sizes between
        assert len({c.size for c in executor}) >= min(model.samples, 3), {c.size for c in executor}
    assert all(c.status == "skipped" for c in report.checks if c.backend == "coreml")


def test_the_rotation_covers_every_model_once_a_run():
    chosen = [c for c in CASES if in_rotation(*c)]
    assert sorted(c[0] for c in chosen) == sorted(m.name for m in MODELS)


def test_a_mutated_weight_fails_verify_naming_the_output(converted, tmp_path):
    module, path, report = converted("attention-pool", "iOS17", "fp32")
    assert report.status == "passed"
    bad = tmp_path / "bad.mlpackage"
    shutil.copytree(path, bad)
    blob = bad / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    data = bytearray(blob.read_bytes())
    # The score layer's weight (16 values): the record whose data is 64 bytes long.
    records = [o for o in range(64, len(data) - 8, 64) if data[o : o + 4] == (0xDEADBEEF).to_bytes(4, "little")]
    score = next(o for o in records if int.from_bytes(data[o + 8 : o + 16], "little") == 64)
    start = int.from_bytes(data[score + 16 : score + 24], "little")
    values = np.frombuffer(bytes(data[start : start + 64]), np.float32) * -3.0
    data[start : start + 64] = values.astype(np.float32).tobytes()
    blob.write_bytes(bytes(data))
    failed = coreml_lstm.verify(module, bad, samples=3)
    assert failed.status == "failed"
    assert {c.output for c in failed.failed} == {"logits", "weights"}
    assert all("FAILED weights (x (1, " in c.line() for c in failed.failed if c.output == "weights")
    with pytest.raises(AssertionError) as err:
        from coreml_lstm.testing import assert_parity

        assert_parity(module, bad, samples=3)
    text = str(err.value)
    assert text.startswith("parity failed: bad.mlpackage vs AttentionPool\n")
    assert re.search(r"^FAILED +weights +x \(1, \d+, 6\) +executor +fp32 ", text, flags=re.M), text


def test_verify_takes_given_inputs_and_shapes(converted):
    module, path, _ = converted("conv-lstm-pool", "iOS17", "fp32")
    x = np.random.default_rng(3).standard_normal((1, 96, 6)).astype(np.float32)
    report = coreml_lstm.verify(module, path, {"x": x})
    assert report.status == "passed" and report.samples == 1 and report.checks[0].size == "x (1, 96, 6)"
    report = coreml_lstm.verify(module, path, shapes=[{"x": (1, 8, 6)}, {"x": (1, 50, 6)}], mode="fp32", atol=1e-5, rtol=0)
    assert report.status == "passed" and [c.size for c in report.ran] == ["x (1, 8, 6)", "x (1, 50, 6)"]
    assert report.ran[0].tolerance.atol == 1e-5 and report.ran[0].tolerance.rtol == 0
    with pytest.raises(ConfigError) as err:
        coreml_lstm.verify(module, path, shapes=[{"x": (1, 200, 6)}])
    assert str(err.value) == "shapes: sample 0: 'x' shape (1, 200, 6) is not one of (1, 8..96, 6)"
    with pytest.raises(ConfigError) as err:
        coreml_lstm.verify(module, path, {"y": x})
    assert str(err.value) == "inputs: 'y' is not an input of the package; its inputs are x"
