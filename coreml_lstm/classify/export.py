"""Classifier -> Core ML classifier ML Program (.mlpackage), written atomically.

The package takes one sequence as it is (flexible length from 1 to the model's maximum, a
``ct.RangeDim``) and gives three outputs:

    classLabel        the most probable class (string, or int64 when every class is an integer)
    classLabel_probs  {class: probability}, the classifier dictionary Core ML apps read
    probabilities     the same probabilities as a (1, K) fp32 MLMultiArray, in ``classes`` order

coremltools' ClassifierConfig turns the probabilities into the classify op's input and drops
them from the outputs; :func:`_keep_probabilities` puts them back. Inputs and outputs are fp32
(token ids int32) whatever the compute precision; normalisation is traced into the graph.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from .._coremltools import coremltools, no_converter_progress
from ..errors import ExportError
from ..export import ExportConfig, check_destination, compress, save, set_metadata, trace

SEQUENCE_INPUT, TEXT_INPUT = "sequence", "tokens"
LABEL_OUTPUT, DICT_OUTPUT, PROB_OUTPUT = "classLabel", "classLabel_probs", "probabilities"


def vocabulary_path(package: str | Path) -> Path:
    """Where a text classifier's vocabulary lives: beside the package, ``<name>.vocab.json``."""
    package = Path(package)
    return package.with_name(package.stem + ".vocab.json")


class _DropPaddingIdxNote(logging.Filter):
    """The converter warns that nn.Embedding's padding_idx is ignored. It only zeroes the pad row's
    gradient in training; the row's values are in the weights, so the export computes the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "embedding (gather) layer does not support any inputs" not in record.getMessage()


@contextlib.contextmanager
def _quiet_embedding_note():
    logger = logging.getLogger("coremltools")  # the torch frontend logs through the package logger
    note = _DropPaddingIdxNote()
    logger.addFilter(note)
    try:
        yield
    finally:
        logger.removeFilter(note)


def _rename_value(block, old: str, new: str) -> None:
    """Rename a named value of a MIL block: the op output that makes it and every use of it."""
    for op in block.operations:
        for out in op.outputs:
            if out.name == old:
                out.name = new
        for arg in op.inputs.values():
            for binding in arg.arguments:
                if binding.WhichOneof("binding") == "name" and binding.name == old:
                    binding.name = new
    for i, name in enumerate(block.outputs):
        if name == old:
            block.outputs[i] = new


def _keep_probabilities(mlmodel, n_classes: int):
    """A copy of a converted classifier with the classify op's fp32 input as output ``probabilities``."""
    ct = coremltools()
    spec = mlmodel.get_spec()
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    ops = [op for op in block.operations if op.type == "classify"]
    if len(ops) != 1:
        raise ExportError(f"expected one classify op in the converted program, found {len(ops)}")
    source = ops[0].inputs["probabilities"].arguments[0].name
    if source != PROB_OUTPUT:  # fp16 programs feed classify through a cast named "<x>_cast_to_fp32"
        _rename_value(block, source, PROB_OUTPUT)
    block.outputs.append(PROB_OUTPUT)
    out = spec.description.output.add()
    out.name = PROB_OUTPUT
    array = out.type.multiArrayType
    array.shape.extend([1, n_classes])
    array.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def convert_classifier(model, classes: list, example: torch.Tensor, input_name: str, max_length: int, config: ExportConfig, descriptions: dict):
    """Trace ``model`` on ``example`` (batch 1) and convert it to a Core ML classifier in memory.

    Args:
        model: a :class:`coreml_lstm.classify.model.SequenceNet` in eval mode.
        classes: class labels (str or int) in the model's output order.
        example: (1, L, C) float32 values or (1, L) int32 token ids, L <= max_length.
        input_name: the package's input name.
        max_length: the upper bound of the flexible sequence axis.
        config: precision, deployment target and weight compression.
        descriptions: {input or output name: text} for the package's feature descriptions.
    """
    ct = coremltools()
    traced = trace(model, example)
    seq = ct.RangeDim(lower_bound=1, upper_bound=max_length, default=int(example.shape[1]))
    shape = (1, seq) + tuple(example.shape[2:])
    dtype = np.float32 if example.is_floating_point() else np.int32  # never let ids become fp16
    labels = [int(c) for c in classes] if all(isinstance(c, int) for c in classes) else [str(c) for c in classes]
    try:
        with no_converter_progress(), _quiet_embedding_note():
            mlmodel = ct.convert(
                traced,
                inputs=[ct.TensorType(name=input_name, shape=ct.Shape(shape), dtype=dtype)],
                outputs=[ct.TensorType(name=PROB_OUTPUT, dtype=np.float32)],
                classifier_config=ct.ClassifierConfig(labels),
                convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT32 if config.precision == "fp32" else ct.precision.FLOAT16,
                minimum_deployment_target=getattr(ct.target, config.target),
            )
    except Exception as exc:
        raise ExportError(f"conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    mlmodel = _keep_probabilities(mlmodel, len(classes))
    if config.compress:
        mlmodel = compress(mlmodel, config.compress)
    for name, text in descriptions.items():
        if name == input_name:
            mlmodel.input_description[name] = text
        else:
            mlmodel.output_description[name] = text
    return mlmodel


def export_classifier(clf, path: str | Path, config: ExportConfig | None = None) -> Path:
    """Write a fitted :class:`SequenceClassifier` or :class:`TextClassifier` as a Core ML classifier.

    A text classifier's vocabulary is written beside the package (:func:`vocabulary_path`); the
    tokenizer's rules go into the package metadata with the vocabulary's file name.

    Returns:
        The package path.
    """
    config = config or ExportConfig()
    path = check_destination(path)
    model = clf.model_.eval()
    classes, max_length = clf.classes_, clf.max_length_
    k = len(classes)
    length = min(max_length, 8)
    names = ", ".join(map(str, classes))
    outputs = {
        LABEL_OUTPUT: f"The most probable class, one of: {names}.",
        DICT_OUTPUT: "Probability of each class.",
        PROB_OUTPUT: f"Class probabilities in the order [{names}]; shape (1, {k}).",
    }
    if clf.task == "text-classify":
        example = torch.full((1, length), 2, dtype=torch.int32)  # (1, L) token ids
        input_name = TEXT_INPUT
        text = (f"Token ids of one text, 1 to {max_length} of them, as int32 of shape (1, L); made by the tokenizer "
                f"rules in the metadata and the vocabulary file {vocabulary_path(path).name}.")
    else:
        c = len(clf.channels_)
        mean = torch.as_tensor(np.asarray(clf.normalizer_.mean), dtype=torch.float32)
        example = mean.expand(1, length, c).clone()  # (1, L, C)
        input_name = SEQUENCE_INPUT
        text = f"One sequence of [{', '.join(clf.channels_)}] in raw units, oldest first, 1 to {max_length} steps; shape (1, L, {c})."
    mlmodel = convert_classifier(model, classes, example, input_name, max_length, config, {input_name: text, **outputs})
    cfg = model.config
    if not config.description:
        kind = "text" if clf.task == "text-classify" else "sequence"
        config = ExportConfig(**{**config.to_dict(), "description": f"{cfg.cell.upper()} {kind} classifier ({k} classes: {names})."})
    meta = clf.metadata()
    meta["precision"] = config.precision
    if clf.task == "text-classify":
        meta["tokenizer"] = {**clf.tokenizer_.rules(), "vocabulary_file": vocabulary_path(path).name}
    set_metadata(mlmodel, config, meta)
    save(mlmodel, path)
    if clf.task == "text-classify":
        clf.tokenizer_.save(vocabulary_path(path))
    return path
