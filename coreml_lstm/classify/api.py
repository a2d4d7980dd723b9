"""The Python API: ``SequenceClassifier`` and ``TextClassifier`` (fit, predict, save, load, export).

Example::

    from coreml_lstm.classify import SequenceClassifier, TextClassifier

    clf = SequenceClassifier(layout="long", series_id="id", time="t", label="gesture",
                             conv_channels=[64, 64], bidirectional=True).fit("train.csv")
    clf.predict("new.csv"), clf.predict_proba("new.csv")
    clf.save("runs/gestures"); SequenceClassifier.load("runs/gestures")
    clf.export("models/gestures.mlpackage")

    txt = TextClassifier(text="message", label="spam").fit("sms.csv")
    txt.predict(["Win a prize now!"])
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file, save_file

from .. import __version__
from ..data import LARGE, first_unheld
from ..errors import ConfigError, DataError, TrainingError
from ..fsutil import atomic_path, directory_destination
from .commands import output_column_clash, top_k_frame
from .data import (Normalizer, Samples, SequenceDataConfig, TextDataConfig, check_lengths, class_list, encode, label_type, pad,
                   read_sequences, read_texts, stratified_split, typed_classes)
from .model import NetConfig, SequenceNet
from .tokenizer import Tokenizer
from .train import ClassifyTrainConfig, classification_metrics, fit_classifier, predict_logits

FORMAT = "coreml-lstm-classifier/1"
CONFIG, WEIGHTS, METRICS, SAMPLES, TOKENIZER = "config.json", "model.safetensors", "metrics.json", "validation.safetensors", "tokenizer.json"
MAX_SAMPLES = 64  # validation samples kept for `verify`: enough to exercise a model, small on disk

NET_KEYS = ("cell", "hidden_size", "num_layers", "bidirectional", "dropout", "conv_channels", "conv_kernels", "embedding_dim")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "patience", "label_smoothing", "grad_clip", "schedule", "refit", "seed", "threads")


def _split_options(options: dict, data_keys: tuple) -> tuple[dict, dict, dict, dict]:
    data = {k: options.pop(k) for k in data_keys if k in options}
    net = {k: options.pop(k) for k in NET_KEYS if k in options}
    train = {k: options.pop(k) for k in TRAIN_KEYS if k in options}
    return data, net, train, options


class _Classifier:
    """What sequence and text classifiers share: training, metrics, persistence, export."""

    task = ""
    data_config_cls = SequenceDataConfig

    def __init__(self, progress: bool = False, **options):
        keys = tuple(self.data_config_cls.__dataclass_fields__)
        data, net, train, extra = _split_options(dict(options), keys)
        if extra:
            raise ConfigError(f"unknown option{'s' if len(extra) > 1 else ''} {', '.join(sorted(map(repr, extra)))}")
        self.data_config = self.data_config_cls(**data)
        self.net_config = NetConfig(**net)
        self.train_config = ClassifyTrainConfig(**train)
        self.progress = progress
        self.model_: SequenceNet | None = None
        self.classes_: list | None = None
        self.max_length_: int | None = None
        self.metrics_: dict | None = None
        self.history_: dict | None = None
        self.validation_samples_: list = []

    # -- hooks for the two kinds --------------------------------------------------------------

    def _read(self, source, role: str, labelled: bool) -> Samples:  # pragma: no cover - overridden
        raise NotImplementedError

    def _inputs(self, samples: Samples) -> list:  # pragma: no cover - overridden
        raise NotImplementedError

    def _prepare(self, train: Samples) -> None:
        """Fit preprocessing (normaliser or vocabulary) on the training part."""

    def _build(self) -> SequenceNet:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- training -----------------------------------------------------------------------------

    def fit(self, train, validation=None) -> "_Classifier":
        """Train on a CSV path or DataFrame; validate on ``validation`` or a stratified split.

        Returns:
            self, with ``classes_``, ``metrics_`` (validation accuracy, macro F1, confusion) set.
        """
        samples = self._read(train, "training", labelled=True)
        self.classes_ = class_list(samples.labels, samples.source, self.data_config.label)
        y = encode(samples.labels, self.classes_, samples.source, self.data_config.label, samples.rows)
        if validation is None:
            tr, va = stratified_split(y, self.data_config.val_fraction, self.train_config.seed)
            train_s, val_s, y_tr, y_va = samples.subset(tr), samples.subset(va), y[tr], y[va]
        else:
            train_s, y_tr = samples, y
            val_s = self._read(validation, "validation", labelled=True)
            y_va = encode(val_s.labels, self.classes_, val_s.source, self.data_config.label, val_s.rows)
        self._prepare(train_s)
        x_tr, x_va = self._inputs(train_s), self._inputs(val_s)
        longest = int(max(len(v) for v in x_tr + x_va))
        if self.data_config.max_length is not None:
            self.max_length_ = self.data_config.max_length
            self._check_lengths(x_tr, train_s, longest=longest)
            self._check_lengths(x_va, val_s, longest=longest)
        else:
            self.max_length_ = longest
        model = self._build()
        try:
            history = fit_classifier(model, x_tr, y_tr, x_va, y_va, self.train_config, progress=self.progress, rebuild=self._build)
        except TrainingError as exc:
            raise self._diverged(exc, [train_s, val_s]) from None
        self.model_ = model.eval()
        self.history_ = history.to_dict()
        self.metrics_ = self._metrics(x_va, y_va) if len(x_va) else None
        keep = np.linspace(0, len(x_va) - 1, min(MAX_SAMPLES, len(x_va))).astype(int) if len(x_va) else []
        self.validation_samples_ = [(np.asarray(x_va[i]), int(y_va[i])) for i in keep]
        return self

    def _diverged(self, exc: TrainingError, parts: list[Samples]) -> Exception:
        """The error to raise when training diverged: a value too large for float32 arithmetic,
        named by file, sample and channel, if the samples hold one; else the divergence."""
        for samples in parts:
            for x, key, row in zip(samples.x, samples.keys, samples.rows):
                x = np.asarray(x)
                if x.dtype.kind == "f" and x.size and np.abs(x).max() > LARGE:
                    step, c = np.unravel_index(int(np.argmax(np.abs(x))), x.shape)
                    wide = getattr(self.data_config, "layout", None) == "wide"
                    where = f"row {row}, step {step + 1}" if wide else f"column {self.channels_[c]!r}, series {key!r} (from row {row})"
                    return DataError(f"{samples.source}: {where}: value {float(x[step, c]):.4g} is too large to train on "
                                     f"in float32 ({exc}); rescale the {'values' if wide else 'column'}")
        source = parts[0].source
        return TrainingError(f"{source}: {exc}; try a smaller learning rate (lr)", cli=f"{source}: {exc}; try a smaller --lr")

    def _check_lengths(self, x: list, samples: Samples, longest: int | None = None) -> None:
        """Model inputs (values or token ids) longer than ``max_length_``: an error naming the
        sample (at training, ``longest``: the longest sample of every split, for the advice)."""
        what = "text" if self.task == "text-classify" else "sequence"
        check_lengths(Samples(x, samples.labels, samples.keys, samples.rows, samples.source), self.max_length_, what, longest)

    def _metrics(self, x: list, y: np.ndarray) -> dict:
        pred = predict_logits(self.model_, x).argmax(-1)
        return classification_metrics(y, pred, self.classes_)

    def _model_inputs(self, source, labelled: bool = False) -> tuple[list, Samples]:
        if isinstance(source, (list, tuple)):
            samples = self._from_list(list(source))
        else:
            samples = self._read(source, "input", labelled=labelled)
        x = self._inputs(samples)
        self._check_lengths(x, samples)
        return x, samples

    # -- prediction -------------------------------------------------------------------------

    def predict_proba(self, source) -> np.ndarray:
        """Class probabilities (N, K), columns in ``classes_`` order."""
        self._fitted()
        x, _ = self._model_inputs(source)
        logits = torch.as_tensor(predict_logits(self.model_, x))
        return torch.softmax(logits, dim=-1).numpy()

    def predict(self, source) -> list:
        """The most probable class of each sample (a table, or a list of samples)."""
        p = self.predict_proba(source)
        return [self.classes_[i] for i in p.argmax(-1)]

    def evaluate(self, source) -> dict:
        """Accuracy, macro F1 and confusion matrix on a labelled table."""
        self._fitted()
        x, samples = self._model_inputs(source, labelled=True)
        y = encode(samples.labels, self.classes_, samples.source, self.data_config.label, samples.rows)
        return self._metrics(x, y)

    def predict_frame(self, source, top_k: int = 3) -> pd.DataFrame:
        """One row per sample: its key, the label and the top-k classes with their probabilities."""
        self._fitted()
        x, samples = self._model_inputs(source)
        logits = torch.as_tensor(predict_logits(self.model_, x))
        return top_k_frame(samples.keys, torch.softmax(logits, -1).numpy(), self.classes_, top_k, self._key_name())

    def _key_name(self) -> str:
        return "row"

    # -- persistence --------------------------------------------------------------------------

    def _fitted(self) -> SequenceNet:
        if self.model_ is None:
            raise ConfigError(f"this {type(self).__name__} is not fitted yet: call fit() or load()")
        return self.model_

    def config_dict(self) -> dict:
        return {
            "format": FORMAT,
            "toolkit_version": __version__,
            "task": self.task,
            "data": self.data_config.to_dict(),
            "model": self.net_config.to_dict(),
            "train": self.train_config.to_dict(),
            "classes": list(self.classes_),
            "label_type": label_type(self.classes_),
            "max_length": self.max_length_,
        }

    def metadata(self) -> dict:
        """The package's user-defined metadata (JSON values)."""
        return {
            "task": self.task,
            "classes": list(self.classes_),
            "label_type": label_type(self.classes_),
            "class_labels": [str(c) for c in self.classes_],  # as text, the way the Core ML classifier names them
            "max_length": self.max_length_,
            "data": self.data_config.to_dict(),
            "model": self.net_config.to_dict(),
            "validation_metrics": {k: self.metrics_[k] for k in ("accuracy", "macro_f1", "n")} if self.metrics_ else None,
        }

    def save(self, directory) -> Path:
        """Write config.json, model.safetensors, metrics.json and validation samples (no pickle)."""
        self._fitted()
        directory = directory_destination(directory)
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            (tmp / CONFIG).write_text(json.dumps(self.config_dict(), indent=2, ensure_ascii=False) + "\n")
            save_file({k: v.detach().contiguous() for k, v in self.model_.state_dict().items()}, str(tmp / WEIGHTS))
            (tmp / METRICS).write_text(json.dumps({"metrics": self.metrics_, "history": self.history_,
                                                 **({} if self.metrics_ else {"warnings": ["no validation samples: no metrics"]})}, indent=2) + "\n")
            if self.validation_samples_:
                xs = [x for x, _ in self.validation_samples_]
                xb, lengths = pad(xs, dtype=xs[0].dtype)
                save_numpy({"x": xb, "lengths": lengths, "y": np.asarray([y for _, y in self.validation_samples_], np.int64)}, str(tmp / SAMPLES))
            self._save_extra(tmp)
        return directory

    def _save_extra(self, directory: Path) -> None:
        pass

    @classmethod
    def load(cls, directory) -> "_Classifier":
        """Rebuild a fitted classifier from :meth:`save`'s directory."""
        return load_classifier(directory, expect=cls)

    def export(self, path, *, precision: str = "fp32", target: str = "iOS16", **metadata) -> Path:
        """Write a Core ML classifier package (see :mod:`coreml_lstm.classify.export`)."""
        from ..export import ExportConfig
        from .adapter import refuse_streaming
        from .export import export_classifier

        self._fitted()
        refuse_streaming(metadata.get("streaming"))
        return export_classifier(self, path, ExportConfig(precision=precision, target=target, **metadata))


class SequenceClassifier(_Classifier):
    """Classifier of numeric sequences (one or more channels, any length up to ``max_length``).

    Options: the fields of :class:`SequenceDataConfig` (label, layout, series_id, time, channels,
    max_length, val_fraction), :class:`NetConfig` (cell, hidden_size, num_layers, bidirectional,
    dropout, conv_channels, conv_kernels) and :class:`ClassifyTrainConfig` (epochs, batch_size, lr,
    weight_decay, patience, label_smoothing, grad_clip, schedule, refit, seed, threads); ``progress``.
    """

    task = "classify"
    data_config_cls = SequenceDataConfig

    def __init__(self, progress: bool = False, **options):
        super().__init__(progress=progress, **options)
        self.channels_: list[str] | None = None
        self.steps_: list[str] | None = None  # wide layout: the training table's step columns, read by name later
        self.normalizer_: Normalizer | None = None

    def fit(self, train, validation=None) -> "SequenceClassifier":
        if self.data_config.layout == "long":  # predict's key column: refused here, not by the data settings, so older checkpoints load
            clash = output_column_clash(self.data_config.series_id)
            if clash is not None:
                raise DataError(f"series_id: {clash}", cli=f"--series-id: {clash}")
        self.channels_ = self.steps_ = None  # resolved again from this training table
        return super().fit(train, validation)

    def _read(self, source, role, labelled):
        samples, channels = read_sequences(source, self.data_config, role=role, channels=self.channels_, labelled=labelled, steps=self.steps_)
        if self.channels_ is None:
            self.channels_ = channels
        if self.steps_ is None and samples.columns is not None:
            self.steps_ = list(samples.columns)
        return samples

    def _from_list(self, arrays: list) -> Samples:
        xs = []
        c = len(self.channels_)
        for i, a in enumerate(arrays):
            try:
                a = np.asarray(a, dtype=np.float64)
            except (TypeError, ValueError):  # text, ragged lists
                raise DataError(f"input data: sample {i}: expected numbers of shape (L, {c}) with L >= 1") from None
            a = a[:, None] if a.ndim == 1 else a
            if a.ndim != 2 or a.shape[1] != c or len(a) == 0:
                raise DataError(f"input data: sample {i}: expected shape (L, {c}) with L >= 1, got {tuple(np.shape(arrays[i]))}")
            # NaN would come back as NaN probabilities (and a label), inf as finite ones: neither is a prediction.
            unheld = first_unheld(a)
            if unheld is not None:
                (t, k), what = unheld
                raise DataError(f"input data: sample {i}: step {t}, channel {self.channels_[k]!r}: {what}")
            xs.append(a.astype(np.float32))
        return Samples(xs, [None] * len(xs), list(range(len(xs))), list(range(len(xs))), "input data")

    def _inputs(self, samples):
        return samples.x

    def _prepare(self, train):
        self.normalizer_ = Normalizer.fit(train.x)

    def _build(self):
        torch.manual_seed(self.train_config.seed)  # the initial weights repeat too
        model = SequenceNet(self.net_config, len(self.classes_), n_channels=len(self.channels_))
        model.set_normalizer(self.normalizer_)
        return model

    def _key_name(self):
        return self.data_config.series_id if self.data_config.layout == "long" else "row"

    def _steps(self) -> dict:
        return {"steps": self.steps_} if self.steps_ is not None else {}  # wide layout only

    def config_dict(self):
        return {**super().config_dict(), "channels": self.channels_, "normalizer": self.normalizer_.to_dict(), **self._steps()}

    def metadata(self):
        return {**super().metadata(), "channels": self.channels_, "normalizer": self.normalizer_.to_dict(), **self._steps()}


class TextClassifier(_Classifier):
    """Classifier of short texts: tokenizer (see :mod:`.tokenizer`) -> embedding -> LSTM/GRU.

    Options: text, label, max_length (tokens), val_fraction; level ("word" | "char"), lowercase,
    max_vocab; the network and training options of :class:`SequenceClassifier`.
    """

    task = "text-classify"
    data_config_cls = TextDataConfig

    def __init__(self, progress: bool = False, level: str = "word", lowercase: bool = True, max_vocab: int = 20000, **options):
        super().__init__(progress=progress, **options)
        self.tokenizer_ = Tokenizer(level=level, lowercase=lowercase, max_vocab=max_vocab)
        self.channels_ = None

    def _read(self, source, role, labelled):
        return read_texts(source, self.data_config, role=role, labelled=labelled)

    def _from_list(self, texts: list) -> Samples:
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise DataError(f"input data: text {i}: expected a string, got {type(t).__name__}")
            if not t.strip():
                raise DataError(f"input data: text {i}: empty text")
        return Samples(list(texts), [None] * len(texts), list(range(len(texts))), list(range(len(texts))), "input data")

    def _prepare(self, train):
        self.tokenizer_.fit(train.x)

    def _inputs(self, samples):
        return [np.asarray(self.tokenizer_.encode(text), dtype=np.int64) for text in samples.x]

    def _build(self):
        torch.manual_seed(self.train_config.seed)
        return SequenceNet(self.net_config, len(self.classes_), vocab_size=self.tokenizer_.vocab_size)

    def config_dict(self):
        return {**super().config_dict(), "tokenizer": self.tokenizer_.rules()}

    def _save_extra(self, directory):
        self.tokenizer_.save(directory / TOKENIZER)


def load_classifier(directory, expect: type | None = None) -> _Classifier:
    """A fitted classifier from a checkpoint directory written by ``save``.

    Raises:
        ConfigError: not a classifier checkpoint, or damaged.
    """
    directory = Path(directory)
    if not (directory / CONFIG).is_file() or not (directory / WEIGHTS).is_file():
        raise ConfigError(f"{directory}: not a classifier checkpoint (expected {CONFIG} and {WEIGHTS} inside)")
    try:
        config = json.loads((directory / CONFIG).read_text())
        state = load_file(str(directory / WEIGHTS))
    except Exception as exc:
        raise ConfigError(f"{directory}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ConfigError(f"{directory}: not a classifier checkpoint (format {config.get('format') if isinstance(config, dict) else None!r})")
    where = directory / CONFIG
    cls = {"classify": SequenceClassifier, "text-classify": TextClassifier}.get(config.get("task"))
    if cls is None:
        raise ConfigError(f"{where}: entry 'task' is {config.get('task')!r}, not one of classify, text-classify")
    if expect is not None and expect is not _Classifier and cls is not expect:
        raise ConfigError(f"{directory}: holds a {cls.__name__}, not a {expect.__name__}")
    # A checkpoint is untrusted input: a damaged entry is one line naming it, never a traceback.
    required = ("data", "model", "train", "classes", "max_length") + (("channels", "normalizer") if cls is SequenceClassifier else ())
    for key in required:
        if key not in config:
            raise ConfigError(f"{where}: lacks entry {key!r}; the checkpoint is damaged (train again or restore it)")
    for key in ("data", "model", "train", "normalizer"):
        if key in required and not isinstance(config[key], dict):
            raise ConfigError(f"{where}: entry {key!r} is not an object; the checkpoint is damaged")
    key = "options"
    try:
        options = {**config["data"], **config["model"], **config["train"]}
        self = cls(**options)
        key = "classes"
        if not isinstance(config["classes"], list):
            raise TypeError("not a list")
        self.classes_ = typed_classes(config["classes"], config.get("label_type"))
        key = "max_length"
        if not isinstance(config["max_length"], int) or config["max_length"] < 1:
            raise ValueError(f"{config['max_length']!r} is not an integer >= 1")
        self.max_length_ = config["max_length"]
        if cls is SequenceClassifier:
            key = "channels"
            if not isinstance(config["channels"], list) or not all(isinstance(c, str) for c in config["channels"]):
                raise TypeError("not a list of column names")
            self.channels_ = config["channels"]
            key = "steps"
            steps = config.get("steps")  # older checkpoints: wide columns by position
            if steps is not None and (not isinstance(steps, list) or not steps or not all(isinstance(c, str) for c in steps)):
                raise TypeError("not a list of column names")
            self.steps_ = steps
            key = "normalizer"
            self.normalizer_ = Normalizer.from_dict(config["normalizer"])
            if self.normalizer_.mean.shape != (len(self.channels_),) or self.normalizer_.std.shape != (len(self.channels_),):
                raise ValueError(f"{len(self.channels_)} channels need {len(self.channels_)} means and deviations")
        else:
            key = "tokenizer"
            self.tokenizer_ = Tokenizer.load(directory / TOKENIZER)
        key = "model"
        model = self._build()
    except (ConfigError, DataError, KeyError, TypeError, ValueError) as exc:
        if key == "tokenizer":  # the tokenizer's own line names its file and entry
            raise ConfigError(str(exc)) from None
        raise ConfigError(f"{where}: entry {key!r} is damaged ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc).splitlines()[0])
        raise ConfigError(f"{directory / WEIGHTS}: does not fit {CONFIG} ({detail.rstrip('.')}); the checkpoint is damaged") from None
    self.model_ = model.eval()
    if (directory / METRICS).is_file():
        extra = json.loads((directory / METRICS).read_text())
        self.metrics_, self.history_ = extra.get("metrics"), extra.get("history")
    if (directory / SAMPLES).is_file():
        arrays = load_numpy(str(directory / SAMPLES))
        self.validation_samples_ = [(x[:n], int(y)) for x, n, y in zip(arrays["x"], arrays["lengths"], arrays["y"])]
    return self
