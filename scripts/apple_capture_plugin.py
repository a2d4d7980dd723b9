"""pytest plugin: run coremltools' own op tests and save each case instead of comparing with Core ML.

Loaded by ``scripts/apple_suite.py`` (``python -m pytest -p apple_capture_plugin ...`` with this
folder on PYTHONPATH); not a test module of this project. Where Apple's tests would predict with
Core ML and compare, it saves what the comparison needs:

- the MIL op tests call ``compare_backend`` through ``run_compare_builder``
  (``coremltools.converters.mil.mil.ops.tests.testing_utils``), which imports it by name: that
  module attribute is replaced;
- the torch frontend tests compare inline in ``convert_and_compare``
  (``coremltools.converters.mil.frontend.torch.test.testing_utils``): it is wrapped, the torch
  reference is computed once and handed to the original.

Each case is one directory ``<corpus>/cases/<family>/<id>/`` written under a temporary name and
renamed when complete: ``model.mlpackage``, ``data.npz`` (feeds and expected outputs, no pickle:
``s<k>/in/<name>``, ``s<k>/out/<name>`` for step k, more than one step for stateful programs) and
``case.json`` (node id, family, op under test, precision, target, atol/rtol, ...).

Other things the plugin does:

- Only ML Program variants are run: items parametrized with the neural-network backend are
  deselected and counted as not applicable.
- At most ``--apple-per-function`` parametrizations per test function are kept, chosen by a RNG
  seeded with ``--apple-seed`` and the function's id (so a subset capture picks the same cases).
  A function parametrized by the op it tests (a ``mode`` / ``op_name`` / ``op_type`` / ``torch_op``
  parameter: one elementwise test covers dozens of ops) keeps that many per op.
- ``coremltools.models.utils._macos_version`` reports a current macOS and ``platform.machine``
  Apple silicon (``arm64``) before the test modules are imported, so tests skipped "on macOS older
  than N" or on Intel Macs (``x86_64``) run as on Apple's CI (the runtime code of coremltools
  imported the real function by name and still knows it is not on macOS).
- A test that calls ``MLModel.predict`` itself (no ``compare_backend``: band_part's value
  inference, slice_by_index, iOS18 GRU parity against torch, random_categorical's statistics)
  gets the executor's outputs from it, and its own assertions judge them: the case is saved with
  ``kind`` ``predict``, the executor's outputs (or its error) at capture time and the test's
  verdict (``verdict``: passed, or failed with the assertion's first line). The replay runs it
  again and reports the verdict, or an error if the executor's outputs have changed since (the
  verdict is then stale: capture the family again). Predicting with a neural-network model skips
  the test (not applicable).
- A test that wraps its comparison in ``pytest.raises`` expects Core ML to raise (when it compiles
  the model in ``ct.convert``, or in ``predict``); here nothing raises. ``pytest.raises`` is
  wrapped: a case captured inside such a block that then exits without an exception is marked
  ``expects_error`` with the exception the test waited for (and its ``match``), also recorded
  apart as ``expects_error_types`` (class names) and ``expects_error_match`` (the pattern). The
  replay passes it only if the executor raises the kind of error the test waits for (or, for an
  expected AssertionError, i.e. an expected mismatch, if it disagrees with the expected values).
- Stateful programs (``pred_iters``): ``MLModel.make_state`` returns a token, and every
  comparison made with the same state becomes one more step of one case.
- Progress lines (``start``/``end`` per node id) go to ``--apple-progress`` so the driver can
  restart a family after a crash without the test that crashed (``--apple-skip``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

# What Apple's CI runs these tests on; only the tests' own skip conditions read it.
MACOS_VERSION = (15, 5)
MACHINE = "arm64"
HELPER_OPS = {"const", "cast", "identity"}
OP_PARAMS = ("mode", "op_name", "op_type", "torch_op", "op_string")  # parameters naming the op under test


def pytest_addoption(parser):
    group = parser.getgroup("apple-capture")
    group.addoption("--apple-corpus", required=True, help="directory of the corpus")
    group.addoption("--apple-family", required=True, help="name of the family (test file) being captured")
    group.addoption("--apple-per-function", type=int, default=4, help="parametrizations kept per test function (0: all)")
    group.addoption("--apple-seed", type=int, default=0)
    group.addoption("--apple-progress", default=None, help="append start/end lines here")
    group.addoption("--apple-skip", default=None, help="file of node ids not to run (already run before a crash)")
    group.addoption("--apple-test-timeout", type=int, default=300, help="seconds before a test is failed")
    group.addoption("--apple-shard", default="0/1", help="i/K: run only the test functions of shard i of K")


class _Capture:
    def __init__(self, config):
        self.config = config
        self.corpus = Path(config.getoption("--apple-corpus"))
        self.family = config.getoption("--apple-family")
        self.root = self.corpus / "cases" / _slug(self.family)
        self.root.mkdir(parents=True, exist_ok=True)
        progress = config.getoption("--apple-progress")
        self.progress = open(progress, "a", buffering=1) if progress else None
        self.item = None
        self.test_cases: list[Path] = []  # cases captured by the running test, in order
        self.states: dict[int, Path] = {}  # id(state token) -> case directory
        self.raises: list[list[Path]] = []  # open pytest.raises blocks: the cases captured inside
        self.stats = {
            "family": self.family,
            "per_function": config.getoption("--apple-per-function"),
            "seed": config.getoption("--apple-seed"),
            "shard": config.getoption("--apple-shard"),
            "collected": 0,
            "neuralnetwork": 0,
            "not_sampled": 0,
            "skipped_after_crash": 0,
            "selected": 0,
            "outcomes": {},
            "captured": 0,
            "expects_error": 0,
            "not_captured": {},
            "failed_tests": [],
        }

    def count(self, reason: str):
        self.stats["not_captured"][reason] = self.stats["not_captured"].get(reason, 0) + 1

    # -- writing a case ------------------------------------------------------------------------

    def save(self, mlmodel, kind: str, feeds: dict, expected: dict, *, precision: str, atol: float, rtol: float,
             also_compare_shapes: bool = True, allow_mismatch_ratio: float = 0.0, state=None, extra: dict | None = None) -> None:
        spec = mlmodel.get_spec()
        if spec.WhichOneof("Type") != "mlProgram":
            self.count("neural network model (not applicable)")
            return
        if expected is None:
            self.count("no expected outputs")
            return
        if state is not None and id(state) in self.states:
            self._add_step(self.states[id(state)], feeds, expected)
            return
        item = self.item
        nodeid = item.nodeid if item is not None else os.environ.get("PYTEST_CURRENT_TEST", "?")
        index = len(self.test_cases)
        case_id = hashlib.sha1(f"{nodeid}#{index}".encode()).hexdigest()[:16]
        final = self.root / case_id
        tmp = self.root / f".{case_id}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            mlmodel.save(str(tmp / "model.mlpackage"))
            inputs = [f.name for f in spec.description.input]
            outputs = [f.name for f in spec.description.output]
            feeds = {_match(k, inputs): v for k, v in feeds.items()}
            expected = {_match(k, outputs): v for k, v in expected.items()}
            ops = _op_types(spec)
            cls = item.cls.__name__ if item is not None and item.cls is not None else ""
            meta = {
                "id": case_id,
                "nodeid": nodeid,
                "family": self.family,
                "kind": kind,
                "test_class": cls,
                "test_function": item.originalname if item is not None else "",
                "op": _op_under_test(cls, ops),
                "ops": sorted(set(ops)),
                "precision": precision,
                "target": _target(spec),
                "atol": float(atol),
                "rtol": float(rtol),
                "also_compare_shapes": bool(also_compare_shapes),
                "allow_mismatch_ratio": float(allow_mismatch_ratio),
                "stateful": state is not None,
                "steps": 1,
                "inputs": inputs,
                "outputs": outputs,
                "expects_error": None,
                "expects_error_types": None,
                "expects_error_match": None,
                **(extra or {}),
            }
            _write_data(tmp, [(feeds, expected)])
            (tmp / "case.json").write_text(json.dumps(meta, indent=1))
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)
        except Exception as exc:  # a case that cannot be stored is counted, the test goes on
            shutil.rmtree(tmp, ignore_errors=True)
            self.count(f"not storable ({type(exc).__name__}: {str(exc)[:80]})")
            return
        self.test_cases.append(final)
        if self.raises:
            self.raises[-1].append(final)
        self.stats["captured"] += 1
        if state is not None:
            self.states[id(state)] = final

    def _add_step(self, case: Path, feeds: dict, expected: dict) -> None:
        meta = json.loads((case / "case.json").read_text())
        with np.load(case / "data.npz", allow_pickle=False) as data:
            steps = _read_steps(data, meta["steps"])
        steps.append(({_match(k, meta["inputs"]): v for k, v in feeds.items()}, {_match(k, meta["outputs"]): v for k, v in expected.items()}))
        meta["steps"] = len(steps)
        _write_data(case, steps)
        (case / "case.json").write_text(json.dumps(meta, indent=1))

    def mark_expects_error(self, case: Path, error: str, types: list[str], match: str | None) -> None:
        meta = json.loads((case / "case.json").read_text())
        meta["expects_error"] = error
        meta["expects_error_types"] = types
        meta["expects_error_match"] = match
        (case / "case.json").write_text(json.dumps(meta, indent=1))
        self.stats["expects_error"] += 1

    def predict(self, mlmodel, data: dict) -> dict:
        """``MLModel.predict`` of an ML Program: the executor's outputs, saved as a ``predict`` case
        the test then judges (its verdict is recorded when it ends). An error of the executor is
        raised as the RuntimeError Core ML raises for a model it cannot run."""
        import tempfile

        import apple_suite  # the replay's feed conversion and choice of numeric mode
        import coreml_lstm.executor as ex

        feeds = {}
        for k, v in data.items():
            a = _array(v)
            feeds[k] = a.reshape(1) if a.ndim == 0 else a
        tmp = tempfile.mkdtemp(prefix="apple-predict-")
        outputs, error, mode = {}, None, "fp32"
        try:
            mlmodel.save(os.path.join(tmp, "model.mlpackage"))
            try:
                program = ex.load(os.path.join(tmp, "model.mlpackage"))
                mode = apple_suite.replay_mode(program, {"precision": "fp32"})
                outputs = {k: np.asarray(v) for k, v in program.predict(apple_suite._feed(program, feeds), mode=mode).items()}
            except Exception as exc:  # noqa: BLE001 - recorded, then raised as Core ML would
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        spec = mlmodel.get_spec()
        names = {f.name for f in spec.description.output}
        self.save(mlmodel, "predict", feeds, {k: v for k, v in outputs.items() if k in names}, precision=mode, atol=0.0, rtol=0.0,
                  extra={"verdict": None, "executor_error": error, "mode": mode})
        if error is not None:
            raise RuntimeError(f"the executor could not run the model: {error}")
        return outputs

    def record_verdict(self, excinfo) -> None:
        """The running test's verdict on its ``predict`` cases."""
        if excinfo is not None and excinfo.errisinstance(pytest.skip.Exception):
            for case in self.test_cases:  # skipped after predicting: the test judged nothing
                if case.exists() and json.loads((case / "case.json").read_text()).get("kind") == "predict":
                    shutil.rmtree(case, ignore_errors=True)
                    self.stats["captured"] -= 1
                    self.count("predict in a test that was then skipped")
            return
        if excinfo is None:
            verdict = "passed"
        else:
            message = str(excinfo.value).strip().splitlines()
            verdict = f"failed: {excinfo.typename}" + (f": {message[0][:300]}" if message else "")
        for case in self.test_cases:
            meta_file = case / "case.json"
            if not meta_file.exists():
                continue
            meta = json.loads(meta_file.read_text())
            if meta.get("kind") == "predict":
                meta["verdict"] = verdict
                meta_file.write_text(json.dumps(meta, indent=1))


_CAPTURE: _Capture | None = None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _match(name: str, names: list[str]) -> str:
    """The model's feature name for a MIL var name (Core ML sanitises names)."""
    if name in names:
        return name
    sanitized = re.sub("[^a-zA-Z0-9_]", "_", name)
    return sanitized if sanitized in names else name


def _op_types(spec) -> list[str]:
    out = []

    def walk(block):
        for op in block.operations:
            out.append(op.type)
            for b in op.blocks:
                walk(b)

    fn = spec.mlProgram.functions["main"]
    walk(fn.block_specializations[fn.opset])
    return out


def _target(spec) -> str:
    opset = spec.mlProgram.functions["main"].opset
    return {"CoreML5": "iOS15", "CoreML6": "iOS16", "CoreML7": "iOS17", "CoreML8": "iOS18"}.get(opset, opset)


def _op_under_test(cls: str, ops: list[str]) -> str:
    """The op a test is about: the longest program op named in the test class, else its main op."""
    name = cls[4:] if cls.startswith("Test") else cls
    key = name.lower().replace("_", "")
    candidates = [op for op in set(ops) if op not in HELPER_OPS and op.replace("_", "") in key]
    if candidates:
        return max(candidates, key=len)
    rest = [op for op in ops if op not in HELPER_OPS]
    if rest:
        counts = {op: rest.count(op) for op in rest}
        return max(rest, key=lambda op: (counts[op], -rest.index(op)))
    return ops[0] if ops else "?"


def _array(v) -> np.ndarray:
    try:
        from PIL import Image

        if isinstance(v, Image.Image):
            return np.asarray(v)
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(v)


def _write_data(case: Path, steps: list) -> None:
    arrays = {}
    for k, (feeds, expected) in enumerate(steps):
        for name, v in feeds.items():
            arrays[f"s{k}/in/{name}"] = _array(v)
        for name, v in expected.items():
            arrays[f"s{k}/out/{name}"] = _array(v)
    for key, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"{key}: a {type(v).__name__} value cannot be stored without pickle")
    tmp = case / "data.npz.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, case / "data.npz")


def _read_steps(data, count: int) -> list:
    steps = []
    for k in range(count):
        feeds = {key.split("/", 2)[2]: data[key] for key in data.files if key.startswith(f"s{k}/in/")}
        expected = {key.split("/", 2)[2]: data[key] for key in data.files if key.startswith(f"s{k}/out/")}
        steps.append((feeds, expected))
    return steps


def _coreml_feeds(feeds: dict) -> dict:
    """What Core ML is handed (run_core_ml_predict): float32 arrays, scalars as shape (1,); images as pixels."""
    out = {}
    for k, v in feeds.items():
        if type(v).__module__.startswith("PIL."):
            out[k] = _array(v)
            continue
        a = np.asarray(v)
        out[k] = (a.reshape(1) if a.ndim == 0 else a).astype(np.float32)
    return out


# -- patches -----------------------------------------------------------------------------------


class _StateToken:
    """Stands for an MLState: Core ML states cannot be made off macOS."""


def _exception_names(expected) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return "|".join(getattr(k, "__name__", str(k)) for k in kinds)


class _Raises:
    """pytest.raises as a context manager, noting the cases captured inside it."""

    def __init__(self, manager, expected, match):
        self.manager, self.expected, self.match = manager, expected, match

    def __enter__(self):
        _CAPTURE.raises.append([])
        return self.manager.__enter__()

    def __exit__(self, exc_type, exc, tb):
        captured = _CAPTURE.raises.pop() if _CAPTURE.raises else []
        if exc_type is None:
            match = getattr(self.match, "pattern", self.match)
            error = _exception_names(self.expected) + (f" matching {match!r}" if match else "")
            for case in captured:
                _CAPTURE.mark_expects_error(case, error, _exception_names(self.expected).split("|"), match)
        return self.manager.__exit__(exc_type, exc, tb)


def _install_patches():
    real_raises = pytest.raises

    def raises(expected_exception, *args, **kwargs):
        if args and callable(args[0]):
            return real_raises(expected_exception, *args, **kwargs)
        return _Raises(real_raises(expected_exception, *args, **kwargs), expected_exception, kwargs.get("match"))

    pytest.raises = raises
    platform.machine = lambda: MACHINE  # before coremltools and the test modules are imported

    import coremltools.models.utils as ct_utils

    ct_utils._macos_version = lambda: MACOS_VERSION

    from coremltools.models.model import MLModel

    def make_state(self):
        return _StateToken()

    MLModel.make_state = make_state

    def predict(self, data, state=None):
        if self.get_spec().WhichOneof("Type") != "mlProgram":
            pytest.skip("predicts with a neural-network model (not applicable)")
        if state is not None:
            pytest.skip("predicts with a state outside compare_backend (not captured)")
        return _CAPTURE.predict(self, data)

    MLModel.predict = predict

    from coremltools.converters.mil.mil.ops.tests import testing_utils as mil_tu

    def compare_backend(mlmodel, input_key_values, expected_outputs, dtype="fp32", atol=1e-04, rtol=1e-05,
                        also_compare_shapes=True, state=None, allow_mismatch_ratio=0.0):
        expected = None if expected_outputs is None else {k: v for k, v in expected_outputs.items()}
        if expected is not None and any(isinstance(v, dict) for v in expected.values()):
            _CAPTURE.count("dictionary (classifier) outputs")
            return None
        _CAPTURE.save(mlmodel, "mil", _coreml_feeds(input_key_values or {}), expected, precision=dtype, atol=atol, rtol=rtol,
                      also_compare_shapes=also_compare_shapes, allow_mismatch_ratio=allow_mismatch_ratio, state=state)
        return None

    mil_tu.compare_backend = compare_backend

    try:
        from coremltools.converters.mil.frontend.torch.test import testing_utils as torch_tu
    except Exception:  # torch tests not importable: only the MIL op tests can be captured
        return
    original = torch_tu.convert_and_compare

    def convert_and_compare(input_data, model_spec, expected_results=None, atol=1e-4, rtol=1e-05,
                            backend=("neuralnetwork", "fp32"), converter_input_type=None, compute_unit=None,
                            minimum_deployment_target=None, converter=None):
        import coremltools as ct
        import torch

        kwargs = dict(atol=atol, rtol=rtol, backend=backend, converter_input_type=converter_input_type,
                      compute_unit=compute_unit if compute_unit is not None else ct.ComputeUnit.CPU_ONLY,
                      minimum_deployment_target=minimum_deployment_target, converter=converter or ct.convert)
        if backend[0] != "mlprogram":
            _CAPTURE.count("neural network model (not applicable)")
            return original(input_data, model_spec, expected_results=expected_results, **kwargs)
        if expected_results is None:
            torch_model = torch.jit.load(model_spec) if isinstance(model_spec, str) else model_spec
            if hasattr(torch_model, "module") and type(torch_model).__name__ == "ExportedProgram":
                torch_model = torch_model.module()
            data = input_data if isinstance(input_data, (list, tuple)) else [input_data]
            expected_results = torch_model(*torch_tu._copy_input_data(data))
        result = original(input_data, model_spec, expected_results=expected_results, **kwargs)
        _, mlmodel, coreml_inputs, _ = result
        flat = torch_tu.flatten_and_detach_torch_results(expected_results)
        names = [o.name for o in mlmodel.get_spec().description.output]
        if len(flat) != len(names):
            _CAPTURE.count("torch outputs do not match the model outputs one to one")
            return result
        expected = {}
        for name, value in zip(names, flat):
            value = np.asarray(value)
            expected[name] = value.reshape(1) if value.shape == () else value
        import coremltools.models.utils as ct_utils

        if ct_utils._has_custom_layer(mlmodel._spec):
            _CAPTURE.count("custom layer")
            return result
        _CAPTURE.save(mlmodel, "torch", dict(coreml_inputs), expected, precision=backend[1], atol=atol, rtol=rtol)
        return result

    torch_tu.convert_and_compare = convert_and_compare


# -- hooks -------------------------------------------------------------------------------------


def pytest_configure(config):
    global _CAPTURE
    if not config.getoption("--apple-corpus", default=None):
        return
    _CAPTURE = _Capture(config)
    _install_patches()


def _is_neural_network(item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for value in params.values():
        backend = getattr(value, "backend", None)
        if backend == "neuralnetwork":
            return True
        if isinstance(value, tuple) and value and value[0] == "neuralnetwork":
            return True
    return False


def _sample_group(item) -> str:
    """The test function, and the op it is parametrized with if any."""
    group = item.nodeid.split("[", 1)[0]
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in OP_PARAMS:
        value = params.get(name)
        label = value if isinstance(value, str) else getattr(value, "__name__", None)
        if label:
            group += f"[{name}={label}]"
    return group


def pytest_collection_modifyitems(session, config, items):
    cap = _CAPTURE
    if cap is None:
        return
    cap.stats["collected"] = len(items)
    keep, dropped = [], []
    by_function: dict[str, list] = {}
    for item in items:
        if _is_neural_network(item):
            cap.stats["neuralnetwork"] += 1
            dropped.append(item)
            continue
        by_function.setdefault(_sample_group(item), []).append(item)
    limit = config.getoption("--apple-per-function")
    seed = config.getoption("--apple-seed")
    chosen = set()
    for function, group in by_function.items():
        if limit and len(group) > limit:
            rng = random.Random(zlib.crc32(function.encode()) ^ seed)
            group = rng.sample(group, limit)
        chosen.update(id(i) for i in group)
    shard, shards = (int(v) for v in config.getoption("--apple-shard").split("/"))
    if shards > 1:  # whole test functions per shard, so the sample does not depend on the sharding
        chosen = {id(i) for i in items if id(i) in chosen and zlib.crc32(i.nodeid.split("[", 1)[0].encode()) % shards == shard}
    skip = set()
    skip_file = config.getoption("--apple-skip")
    if skip_file and os.path.exists(skip_file):
        skip = {line.strip() for line in open(skip_file) if line.strip()}
    for item in items:
        if id(item) in chosen and item.nodeid not in skip:
            keep.append(item)
        elif id(item) in chosen:
            cap.stats["skipped_after_crash"] += 1
            dropped.append(item)
        elif not _is_neural_network(item):
            cap.stats["not_sampled"] += 1  # or in another shard
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def pytest_collection_finish(session):
    if _CAPTURE is not None:  # after every deselection (-k too)
        _CAPTURE.stats["selected"] = len(session.items)


class _TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TestTimeout("the test ran past --apple-test-timeout")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cap = _CAPTURE
    if cap is None:
        yield
        return
    cap.item, cap.test_cases, cap.states, cap.raises = item, [], {}, []
    if cap.progress:
        cap.progress.write(f"start\t{item.nodeid}\n")
    yield
    if cap.progress:
        cap.progress.write(f"end\t{item.nodeid}\n")
    cap.item = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    cap = _CAPTURE
    timeout = cap.config.getoption("--apple-test-timeout") if cap else 0
    if timeout:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(timeout)
    try:
        yield
    finally:
        if timeout:
            signal.alarm(0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    cap = _CAPTURE
    if cap is None:
        return
    report = outcome.get_result()
    if report.when == "call":
        cap.record_verdict(call.excinfo)
    if report.when == "call" or (report.when == "setup" and not report.passed):
        kind = report.outcome
        if hasattr(report, "wasxfail"):
            kind = "xfail" if report.skipped else "xpass"
        cap.stats["outcomes"][kind] = cap.stats["outcomes"].get(kind, 0) + 1
        if report.failed and len(cap.stats["failed_tests"]) < 2000:
            reason = str(call.excinfo.value).strip().splitlines()[0][:300] if call.excinfo is not None and str(call.excinfo.value).strip() else (call.excinfo.typename if call.excinfo else "")
            cap.stats["failed_tests"].append({"nodeid": item.nodeid, "reason": f"{call.excinfo.typename if call.excinfo else ''}: {reason}"})


def pytest_sessionfinish(session, exitstatus):
    cap = _CAPTURE
    if cap is None:
        return
    out = cap.corpus / "stats" / f"{_slug(cap.family)}.{os.getpid()}.{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cap.stats, indent=1))
