"""Parity of an exported classifier with its PyTorch model, on the executor, at several lengths.

For each sample (one sequence or text, fed at its own length) the package's ``probabilities``
are compared with torch's softmax, and its ``classLabel`` with torch's argmax; the
``classLabel_probs`` dictionary is checked against ``probabilities``. A label that differs where
torch's top two probabilities are within the probability tolerance of each other is a tie, not a
failure (the check's reason says how many there were).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ..verify import DEFAULT_TOLERANCES, Check, Report, Tolerance, compare, coreml_available, program_precision
from .export import DICT_OUTPUT, LABEL_OUTPUT, PROB_OUTPUT, SEQUENCE_INPUT, TEXT_INPUT

MODES = ("fp32", "fp16")


def verify_samples(clf, samples: list[np.ndarray], *, lengths: int = 2) -> list[np.ndarray]:
    """Samples at ``lengths`` or more distinct lengths: the given ones, plus prefixes when they all share one."""
    out = [np.asarray(s) for s in samples]
    distinct = sorted({len(s) for s in out})
    for s in list(out):
        if len(distinct) >= lengths:
            break
        for n in (max(1, len(s) // 2), max(1, len(s) // 3), 1):
            if n not in distinct:
                out.append(s[:n])
                distinct = sorted(set(distinct) | {n})
                break
    return out


def verify_classifier(package, clf, samples: list | None = None, *, modes: tuple = MODES,
                      tolerances: dict[str, Tolerance] | None = None, backends: tuple = ("executor", "coreml")) -> Report:
    """Run torch and the package on each sample and compare probabilities and labels.

    Args:
        package: the .mlpackage written by ``clf.export``.
        clf: the fitted :class:`SequenceClassifier` or :class:`TextClassifier`.
        samples: model inputs: (L, C) raw values or (L,) token ids; default: the stored validation
            samples, with prefixes added when they all have one length.
        modes: executor numerics to run.
        tolerances: per precision; defaults to :data:`coreml_lstm.verify.DEFAULT_TOLERANCES`.
        backends: "executor" and/or "coreml" (skipped off macOS, said so in the report).

    Returns:
        A :class:`coreml_lstm.verify.Report`, with one check per output, mode and length.
    """
    from .. import executor

    model = clf._fitted()
    if samples is None:
        samples = verify_samples(clf, [x for x, _ in clf.validation_samples_])
    if not len(samples):
        raise ConfigError("verify: no samples to compare on")
    for m in modes:
        if m not in DEFAULT_TOLERANCES:
            raise ConfigError(f"mode: {m!r} is not one of fp32, fp16")
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    text = clf.task == "text-classify"
    input_name = TEXT_INPUT if text else SEQUENCE_INPUT
    feeds = [{input_name: np.array(s, np.int32 if text else np.float32)[None]} for s in samples]
    with torch.no_grad():
        want = [model(torch.as_tensor(f[input_name]).long() if text else torch.as_tensor(f[input_name])).numpy() for f in feeds]
    classes = list(clf.classes_)
    report = Report(package=str(package), samples=len(feeds))
    by_length: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        by_length.setdefault(len(s), []).append(i)

    def add(results: list[dict], backend: str, mode: str, precision: str) -> None:
        # An fp16 program stores fp16 weights: even its fp32-mode run is held to the fp16 bar.
        tol = tolerances["fp16" if "fp16" in (mode, precision) else "fp32"]
        for n, idx in sorted(by_length.items()):
            got = np.stack([np.asarray(results[i][PROB_OUTPUT], np.float64) for i in idx])  # (S, 1, K)
            ref = np.stack([want[i] for i in idx]).astype(np.float64)
            report.checks.append(compare(f"{PROB_OUTPUT} (length {n})", got, ref, tol, backend=backend, mode=mode))
            report.checks.append(_label_check(f"{LABEL_OUTPUT} (length {n})", [results[i] for i in idx], ref, classes, tol, backend, mode))
            report.checks.append(_dict_check(f"{DICT_OUTPUT} (length {n})", [results[i] for i in idx], classes, backend, mode))

    precision = None
    if "executor" in backends:
        program = executor.load(package)
        precision = program_precision(program)
        for mode in modes:
            add([program.predict(f, mode=mode) for f in feeds], "executor", mode, precision)
    if "coreml" in backends:
        ok, why = coreml_available()
        if not ok:
            report.checks.append(Check("all outputs", "coreml", "-", "skipped", reason=why))
        else:  # pragma: no cover - macOS only
            from .._coremltools import coremltools

            ct = coremltools()
            mlmodel = ct.models.MLModel(str(package), compute_units=ct.ComputeUnit.CPU_ONLY)
            precision = precision or program_precision(executor.load(package))
            add([mlmodel.predict(f) for f in feeds], "coreml:CPU_ONLY", precision, precision)
    return report


def _label(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.reshape(-1)[0]


def _label_check(name, results, ref, classes, tol: Tolerance, backend, mode) -> Check:
    """classLabel against torch's argmax; a flip inside a near-tie (top-2 gap within tolerance) is allowed."""
    flat = ref.reshape(len(ref), -1)
    want = flat.argmax(-1)
    top2 = -np.sort(-flat, axis=-1)[:, :2]
    gap = top2[:, 0] - (top2[:, 1] if flat.shape[1] > 1 else 0)
    wrong = ties = 0
    first_wrong = None
    for k, r in enumerate(results):
        got = _label(r[LABEL_OUTPUT])
        if str(got) != str(classes[want[k]]):
            if gap[k] <= 2 * (tol.atol + tol.rtol * top2[k, 0]):
                ties += 1
            else:
                wrong += 1
                first_wrong = (k,) if first_wrong is None else first_wrong
    reason = f"{wrong} of {len(results)} labels differ from torch's argmax" + (f"; {ties} near-tie flip(s) allowed" if ties else "")
    return Check(name, backend, mode, "failed" if wrong else "passed", shape=(len(results),), max_abs=float(wrong), max_rel=0.0,
                 tolerance=Tolerance(0.0, 0.0), worst_index=first_wrong, reason=reason)


def _dict_check(name, results, classes, backend, mode) -> Check:
    """The {class: probability} dictionary holds every class with the value of ``probabilities``."""
    worst, missing = 0.0, 0
    for r in results:
        d, p = r[DICT_OUTPUT], np.asarray(r[PROB_OUTPUT], np.float64).reshape(-1)
        keys = {str(k): v for k, v in d.items()}
        for c, v in zip(classes, p):
            if str(c) not in keys:
                missing += 1
            else:
                worst = max(worst, abs(float(keys[str(c)]) - v))
    ok = missing == 0 and worst <= 1e-6
    return Check(name, backend, mode, "passed" if ok else "failed", shape=(len(results), len(classes)), max_abs=worst, max_rel=0.0,
                 tolerance=Tolerance(1e-6, 0.0), reason=f"{missing} class(es) missing from the dictionary" if missing else "")
