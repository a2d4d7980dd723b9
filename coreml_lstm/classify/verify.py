"""Parity of an exported classifier with its PyTorch model, on the executor, at several lengths.

For each sample (one sequence or text, fed at its own length) the package's ``probabilities``
are compared with torch's softmax, and its ``classLabel`` with torch's argmax; the
``classLabel_probs`` dictionary is checked against ``probabilities``. A label that differs where
torch's top two probabilities are within the probability tolerance of each other is a tie, not a
failure (the check's reason says how many there were). The checks are the generic ones
(:func:`coreml_lstm.verify.verify_package` of a :class:`~.adapter.ClassifierAdapter`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..verify import Report, Tolerance, verify_package
from .adapter import ClassifierAdapter, verify_samples as _verify_samples

MODES = ("fp32", "fp16")


def verify_samples(clf, samples: list[np.ndarray], *, lengths: int = 2) -> list[np.ndarray]:
    """Samples at ``lengths`` or more distinct lengths: the given ones, plus prefixes when they all share one."""
    return _verify_samples(samples, lengths=lengths)


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
    from .commands import check_package

    check_package(package)  # the metadata's classes name the program's: predict prints them
    adapter = ClassifierAdapter(clf, package)
    if samples is not None and not len(samples):
        raise ConfigError("verify: no samples to compare on")
    chosen = adapter.samples_from_arrays(list(samples)) if samples is not None else adapter.samples()
    return verify_package(adapter, package, chosen, modes=tuple(modes), tolerances=tolerances, backends=tuple(backends))
