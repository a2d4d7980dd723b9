"""Plain functions for the CLI layer (cli.py wires them; nothing here imports click).

    train_classifier     coreml-lstm train --task classify | text-classify
    export_classifier_checkpoint   coreml-lstm export (a classifier checkpoint)
    predict_classes      coreml-lstm predict (a classifier package): label and top-k per sample
    verify_classifier_package      coreml-lstm verify (a classifier package and its checkpoint)
    is_classifier_checkpoint / is_classifier_package   whether a directory or package holds a classifier
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, PackageError
from ..metadata import read_metadata
from .data import Samples, SequenceDataConfig, TextDataConfig, check_lengths, encode, read_sequences, read_texts, typed_classes
from .adapter import PROB_OUTPUT, SEQUENCE_INPUT, TEXT_INPUT, vocabulary_path
from .tokenizer import Tokenizer

TASKS = ("classify", "text-classify")


def train_classifier(train, *, task: str = "classify", validation=None, out=None, progress: bool = True, **options):
    """Train a classifier and optionally save its checkpoint. Used by ``coreml-lstm train --task classify|text-classify``.

    Args:
        train: CSV path or DataFrame.
        task: "classify" (numeric sequences) or "text-classify".
        validation: a separate labelled table (default: a stratified split of ``train``).
        out: checkpoint directory to write (None: do not save).
        progress: progress bar on stderr.
        options: :class:`SequenceClassifier` / :class:`TextClassifier` options.

    Returns:
        The fitted classifier; ``.metrics_`` holds validation accuracy, macro F1 and confusion.
    """
    from .api import SequenceClassifier, TextClassifier

    if task not in TASKS:
        raise ConfigError(f"task: {task!r} is not one of {', '.join(TASKS)}")
    cls = SequenceClassifier if task == "classify" else TextClassifier
    clf = cls(progress=progress, **options).fit(train, validation)
    if out is not None:
        clf.save(out)
    return clf


def export_classifier_checkpoint(checkpoint, path, *, precision: str = "fp32", target: str = "iOS16", **metadata) -> Path:
    """Export a saved classifier checkpoint as a Core ML classifier. Used by ``coreml-lstm export``.

    Returns:
        The package path (a text classifier also writes ``<name>.vocab.json`` beside it).
    """
    from .api import load_classifier

    return load_classifier(checkpoint).export(path, precision=precision, target=target, **metadata)


def is_classifier_package(package) -> bool:
    """Whether a package's metadata says it is a classifier."""
    from .. import executor

    meta = read_metadata(executor.load(package).metadata["user"], package)
    return meta.get("task") in TASKS


def _package_meta(program, package) -> dict:
    """A classifier package's metadata, checked: a package is untrusted input, and an edited entry
    is one line naming the package and the entry (never a traceback, never wrong labels)."""
    meta = read_metadata(program.metadata["user"], package)
    missing = [k for k in ("task", "classes", "max_length", "data") if k not in meta]
    if missing or meta.get("task") not in TASKS:
        raise ConfigError(f"{package}: not a coreml-lstm classifier package (metadata lacks {', '.join(missing) or 'a classifier task'})")

    def bad(entry: str, message: str) -> PackageError:
        return PackageError(f"{package}: metadata entry {entry!r} {message}; re-export the package from its checkpoint")

    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in classes):
        raise bad("classes", "is not a list of two or more class names")
    try:
        typed = typed_classes(classes, meta.get("label_type"))
    except (DataError, ValueError, TypeError, OverflowError):
        raise bad("label_type", f"({meta.get('label_type')!r}) does not fit the classes ({', '.join(map(repr, classes[:3]))}, ...)") from None
    labels = program.class_labels()
    if labels is not None:
        ours = [str(c) for c in typed]
        if len(ours) != len(labels):
            raise bad("classes", f"lists {len(ours)} classes but the program's classifier has {len(labels)}")
        for i, (a, b) in enumerate(zip(ours, map(str, labels))):
            if a != b:
                raise bad("classes", f"names class {i} {a!r} but the program's classifier labels it {b!r}")
    if "class_labels" in meta and meta["class_labels"] != [str(c) for c in typed]:  # what the Swift wrapper names classes by
        raise bad("class_labels", "does not name the classes of entry 'classes' as text")
    if not isinstance(meta["max_length"], int) or isinstance(meta["max_length"], bool) or meta["max_length"] < 1:
        raise bad("max_length", f"({meta['max_length']!r}) is not an integer >= 1")
    cls = SequenceDataConfig if meta["task"] == "classify" else TextDataConfig
    if not isinstance(meta["data"], dict):
        raise bad("data", "is not an object")
    unknown = sorted(set(meta["data"]) - set(cls.__dataclass_fields__))
    if unknown:
        raise bad("data", f"has unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
    try:
        cls.from_dict(meta["data"])
    except (DataError, ConfigError, TypeError, ValueError) as exc:
        raise bad("data", f"is not valid ({exc})") from None
    if meta["task"] == "classify":
        channels = meta.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            raise bad("channels", "is not a list of column names")
        steps = meta.get("steps")  # wide layout; older packages: none, the columns read by position
        if steps is not None and (not isinstance(steps, list) or not steps or not all(isinstance(c, str) for c in steps)):
            raise bad("steps", "is not a list of column names")
    return meta


def package_classes(meta: dict) -> list:
    """The classes a package's metadata records, typed as the training labels were (checked by
    the reader of the package: the classifier labels of its program)."""
    return typed_classes(meta["classes"], meta.get("label_type"))


def check_package(package, program=None) -> dict:
    """The metadata of a classifier package, checked against its program (see :func:`_package_meta`)."""
    from .. import executor

    return _package_meta(program or executor.load(package), package)


def package_inputs(package, table, program=None) -> tuple[list[np.ndarray], Samples, dict]:
    """A table as the package's inputs, read with the data settings in its metadata.

    Returns:
        (arrays, samples, metadata): one (L, C) float32 or (L,) int32 array per sample.

    Raises:
        DataError: bad cells, missing columns, or a sample longer than the package's maximum length.
    """
    from .. import executor

    program = program or executor.load(package)
    meta = _package_meta(program, package)
    if meta["task"] == "classify":
        config = SequenceDataConfig.from_dict(meta["data"])
        samples, _ = read_sequences(table, config, role="input", channels=meta["channels"], labelled=False, steps=meta.get("steps"))
        arrays = [np.asarray(x, np.float32) for x in samples.x]
        what = "sequence"
    else:
        config = TextDataConfig.from_dict(meta["data"])
        vocab = vocabulary_path(package)
        tok = Tokenizer.load(vocab)
        expected = meta.get("tokenizer") if isinstance(meta.get("tokenizer"), dict) else {}
        if expected.get("vocabulary_sha256") is not None:  # older packages record the size only
            if tok.digest() != expected["vocabulary_sha256"]:
                raise ConfigError(f"{vocab}: is not the vocabulary {package} was exported with (its tokens or rules differ from the "
                                  f"sha256 the package records); use the {vocab.name} written with the package")
        elif expected.get("vocab_size") not in (None, tok.vocab_size):
            raise ConfigError(f"{vocab}: holds {tok.vocab_size} ids but the package was exported with {expected['vocab_size']}")
        samples = read_texts(table, config, role="input", labelled=False)
        arrays = [np.asarray(tok.encode(text), np.int32) for text in samples.x]
        what = "text"
    check_lengths(Samples(arrays, samples.labels, samples.keys, samples.rows, samples.source), int(meta["max_length"]), what)
    return arrays, samples, meta


OUTPUT_COLUMNS = re.compile(r"label|top[1-9][0-9]*(_p)?")  # predict's columns after the key: label, top1, top1_p, top2, ...


def output_column_clash(key_name: str) -> str | None:
    """Why a series id column cannot be predict's key column (it is named as one of predict's
    output columns, which would overwrite it), or None."""
    if OUTPUT_COLUMNS.fullmatch(str(key_name)):
        return f"column {key_name!r} is named as a predict output column (label, top1, top1_p, top2, ...); rename the series id column"
    return None


def top_k_frame(keys: list, probs: np.ndarray, classes: list, top_k: int, key_name: str = "row") -> pd.DataFrame:
    """Key, label, and ``top{i}`` / ``top{i}_p`` columns for the k most probable classes; a key
    named as one of those columns (a checkpoint or package trained before fit refused it) is an
    error: the key column would be overwritten."""
    clash = output_column_clash(key_name)
    if clash is not None:
        raise ConfigError(f"series id {clash} and retrain", cli=f"--series-id: {clash} and retrain")
    k = max(1, min(int(top_k), len(classes)))
    order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]
    out = pd.DataFrame({key_name: keys, "label": [classes[i] for i in order[:, 0]]})
    for j in range(k):
        out[f"top{j + 1}"] = [classes[i] for i in order[:, j]]
        out[f"top{j + 1}_p"] = probs[np.arange(len(probs)), order[:, j]]
    return out


def predict_classes(package, table, *, top_k: int = 3, backend: str = "auto", mode: str = "fp32") -> tuple[pd.DataFrame, str]:
    """Label and top-k classes per sample of a table, from a classifier package. Used by ``coreml-lstm predict``.

    Returns:
        (frame, backend name): columns key ("id"/"row"), label, top1, top1_p, ..., topk, topk_p.
    """
    from ..runner import Backend

    runner = Backend(package, backend, mode)
    arrays, samples, meta = package_inputs(package, table, runner.program)
    name = TEXT_INPUT if meta["task"] == "text-classify" else SEQUENCE_INPUT
    probs = np.stack([np.asarray(runner.predict({name: a[None]})[PROB_OUTPUT], np.float64).reshape(-1) for a in arrays])
    data = meta["data"]
    key = data.get("series_id") if meta["task"] == "classify" and data.get("layout") == "long" else "row"
    clash = output_column_clash(key)  # a package trained before fit refused such an id column
    if clash is not None:
        raise ConfigError(f"{package}: series id {clash} and retrain")
    return top_k_frame(samples.keys, probs, package_classes(meta), top_k, key), runner.name


def verify_classifier_package(package, checkpoint, *, table=None, modes=("fp32", "fp16"), backends=("executor", "coreml"), tolerances=None):
    """Compare a classifier package with its checkpoint's torch model. Used by ``coreml-lstm verify``.

    Args:
        package: the .mlpackage.
        checkpoint: the classifier checkpoint directory it was exported from.
        table: optional table to verify on (default: the checkpoint's stored validation samples,
            plus shorter prefixes so that at least two lengths are checked).

    Returns:
        A :class:`coreml_lstm.verify.Report`; the CLI exits 1 when ``report.status == "failed"``.
    """
    from .api import load_classifier
    from .verify import verify_classifier

    clf = load_classifier(checkpoint)
    samples = None
    if table is not None:
        arrays, _, _ = package_inputs(package, table)
        samples = arrays
    return verify_classifier(package, clf, samples, modes=tuple(modes), backends=tuple(backends), tolerances=tolerances)


def evaluate_package(package, table, *, backend: str = "auto", mode: str = "fp32") -> dict:
    """Accuracy, macro F1 and confusion of a package on a labelled table (``Classifier.evaluate``)."""
    from ..runner import Backend
    from .train import classification_metrics

    runner = Backend(package, backend, mode)
    arrays, samples, meta = package_inputs(package, table, runner.program)
    label = meta["data"]["label"]
    if any(v is None for v in samples.labels):
        raise DataError(f"{samples.source}: missing column {label!r}; evaluating needs labels")
    classes = package_classes(meta)
    y = encode(samples.labels, classes, samples.source, label, samples.rows)
    name = TEXT_INPUT if meta["task"] == "text-classify" else SEQUENCE_INPUT
    pred = [int(np.argmax(runner.predict({name: a[None]})[PROB_OUTPUT])) for a in arrays]
    return classification_metrics(y, np.asarray(pred), classes)
