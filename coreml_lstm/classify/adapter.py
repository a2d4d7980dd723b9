"""Sequence and text classifiers as an :class:`~coreml_lstm.adapter.Adapter`.

The package is a Core ML classifier taking one sequence as it is (flexible length from 1 to the
model's maximum) and giving ``classLabel``, ``classLabel_probs`` and the ``probabilities`` array.
Samples are the stored validation samples, fed at their own lengths (prefixes are added when
they all share one length, so at least two lengths are checked); verify runs both executor
numerics by default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..adapter import Adapter, Dim, Evaluation, Input, Output, Sample

SEQUENCE_INPUT, TEXT_INPUT = "sequence", "tokens"
LABEL_OUTPUT, DICT_OUTPUT, PROB_OUTPUT = "classLabel", "classLabel_probs", "probabilities"


def vocabulary_path(package: str | Path) -> Path:
    """Where a text classifier's vocabulary lives: beside the package, ``<name>.vocab.json``."""
    package = Path(package)
    return package.with_name(package.stem + ".vocab.json")


def is_classifier_checkpoint(directory) -> bool:
    """Whether a directory holds a classifier checkpoint (rather than a forecaster's)."""
    from .api import CONFIG, FORMAT

    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return False  # the forecaster's reader says what is wrong with it
    return isinstance(config, dict) and config.get("format") == FORMAT


def refuse_streaming(streaming: str | None) -> None:
    """A streaming export asked of a classifier: one line (its package takes a whole sequence per call)."""
    from ..errors import ConfigError

    if streaming:
        message = f"{streaming}: streaming exports are for forecasters; a classifier's package takes a whole sequence per call"
        raise ConfigError(f"streaming: {message}", cli=f"--streaming {message}")


def verify_samples(samples: list[np.ndarray], *, lengths: int = 2) -> list[np.ndarray]:
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


class ClassifierAdapter(Adapter):
    modes = ("fp32", "fp16")

    def __init__(self, clf, package=None):
        self.clf = clf
        self.package = package
        self.kind = clf.task
        self.text = clf.task == "text-classify"
        self.fp32_scopes = () if self.text else ("raw_in",)  # SequenceNet.raw_in: the z-scoring of raw values
        model = clf._fitted()
        classes, max_length = list(clf.classes_), clf.max_length_
        self.classes = classes
        self.length = min(max_length, 8)
        names = ", ".join(map(str, classes))
        k = len(classes)
        if self.text:
            self.inputs = [Input(TEXT_INPUT, (1, Dim(1, max_length, default=self.length)), np.dtype(np.int32), default=(1, self.length),
                                 description=f"Token ids of one text, 1 to {max_length} of them, as int32 of shape (1, L); made by the tokenizer "
                                             f"rules in the metadata and the vocabulary file beside the package.")]
        else:
            c = len(clf.channels_)
            self.inputs = [Input(SEQUENCE_INPUT, (1, Dim(1, max_length, default=self.length), c), default=(1, self.length, c),
                                 description=f"One sequence of [{', '.join(clf.channels_)}] in raw units, oldest first, 1 to {max_length} steps; shape (1, L, {c}).")]
        self.outputs = [Output(PROB_OUTPUT, f"Class probabilities in the order [{names}]; shape (1, {k}).")]
        self._labels = {LABEL_OUTPUT: f"The most probable class, one of: {names}.", DICT_OUTPUT: "Probability of each class."}
        kind = "text" if self.text else "sequence"
        self.description = f"{model.config.cell.upper()} {kind} classifier ({k} classes: {names})."

    @classmethod
    def load(cls, directory, *, package=None, streaming: str | None = None, **_):
        from .api import load_classifier

        refuse_streaming(streaming)
        return cls(load_classifier(directory), package)

    def module(self):
        return self.clf._fitted().eval()

    def examples(self):
        import torch

        if self.text:
            return (torch.full((1, self.length), 2, dtype=torch.int32),)  # (1, L) token ids
        mean = torch.as_tensor(np.asarray(self.clf.normalizer_.mean), dtype=torch.float32)
        return (mean.expand(1, self.length, len(self.clf.channels_)).clone(),)  # (1, L, C)

    def descriptions(self) -> dict[str, str]:
        return {**super().descriptions(), **self._labels}

    # -- samples ------------------------------------------------------------------------------

    def samples_from_arrays(self, arrays: list, kind: str = "") -> list[Sample]:
        name, dtype = (TEXT_INPUT, np.int32) if self.text else (SEQUENCE_INPUT, np.float32)
        return [Sample.one({name: np.asarray(a, dtype)[None]}, f"{kind}length {len(a)}") for a in verify_samples(arrays)]

    def samples(self, n: int = 64, seed: int = 0) -> list[Sample]:
        """The stored validation samples; a classifier trained without a validation part gets
        random ones at the shortest, the longest and a middle length (token ids from its
        vocabulary, or values drawn from each channel's training mean and deviation)."""
        stored = [x for x, _ in self.clf.validation_samples_][:n]
        return self.samples_from_arrays(stored) if stored else self.samples_from_arrays(self.random_arrays(seed), "random, ")

    def drawn(self) -> str:
        if self.clf.validation_samples_:
            return "the checkpoint's validation samples"
        return "random values: " + ("token ids from the vocabulary" if self.text else "each channel's training mean and deviation")

    def random_arrays(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        longest = int(self.clf.max_length_)
        lengths = sorted({1, max(1, longest // 2), longest})
        if self.text:
            vocab = int(self.clf.tokenizer_.vocab_size)
            return [rng.integers(min(2, vocab - 1), vocab, size=n).astype(np.int32) for n in lengths]
        mean, std = np.asarray(self.clf.normalizer_.mean, np.float64), np.asarray(self.clf.normalizer_.std, np.float64)
        return [(mean + std * rng.standard_normal((n, len(mean)))).astype(np.float32) for n in lengths]

    def samples_from_table(self, table, limit: int = 64) -> list[Sample]:
        from ..errors import ConfigError
        from .commands import package_inputs

        if self.package is None:
            raise ConfigError("--csv: reading a table for a classifier needs its package (the tokenizer and columns it records)")
        arrays, _, _ = package_inputs(self.package, table)
        return self.samples_from_arrays(arrays[:limit])

    def evaluation(self) -> Evaluation:
        from ..errors import ConfigError

        stored = self.clf.validation_samples_
        if not stored:
            raise ConfigError("compare: the classifier holds no validation samples")
        labels = np.asarray([y for _, y in stored])
        name, dtype = (TEXT_INPUT, np.int32) if self.text else (SEQUENCE_INPUT, np.float32)
        samples = [Sample.one({name: np.asarray(x, dtype)[None]}) for x, _ in stored]

        def accuracy(pred):
            return float((np.asarray(pred).reshape(len(labels), -1).argmax(-1) == labels).mean())

        return Evaluation(samples, PROB_OUTPUT, "accuracy", accuracy)

    # -- the package ----------------------------------------------------------------------------

    def metadata(self, path: Path | None = None) -> dict:
        meta = {**self.clf.metadata(), "task": self.clf.task}
        if self.text:
            tok = self.clf.tokenizer_
            meta["tokenizer"] = {**tok.rules(), "vocabulary_file": vocabulary_path(path).name if path else None, "vocabulary_sha256": tok.digest()}
        return meta

    def write_companions(self, path: Path) -> None:
        if self.text:
            self.clf.tokenizer_.save(vocabulary_path(path))

    def golden_extras(self) -> dict:
        from ..golden import TOKENIZER_PROBES

        extras = {"classes": [str(c) for c in self.classes]}
        if self.text:
            tok = self.clf.tokenizer_
            words = [t for t in tok.tokens[2:12] if t is not None]
            texts = [" ".join(words)] + list(TOKENIZER_PROBES)
            extras["tokenizer"] = [{"text": t, "ids": tok.encode(t)} for t in texts]
        return extras

    @staticmethod
    def swift(name: str, program, meta: dict) -> str:
        from ..swift import classifier_wrapper

        return classifier_wrapper(name, program, meta)

    @staticmethod
    def predict_table(package, table, *, backend: str = "auto", mode: str = "fp32", top_k: int | None = None, missing: str = "error",
                      last: bool = False, **_):
        """Label and top-k classes per sample of a table (``predict --csv``): a :class:`~coreml_lstm.predict.Prediction`."""
        from ..errors import ConfigError
        from .commands import predict_classes

        if missing != "error":
            raise ConfigError(f"--missing {missing}: only for forecaster packages; a classifier's samples must be complete")
        if last:
            raise ConfigError("--last: only for forecaster packages; a classifier gives one prediction per sample")
        top_k = 3 if top_k is None else top_k

        from ..predict import Prediction

        frame, used = predict_classes(package, table, top_k=top_k, backend=backend, mode=mode)
        return Prediction(frame, used, "samples classified", [])
