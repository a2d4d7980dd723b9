"""Classifier -> Core ML classifier ML Program (.mlpackage), written atomically.

The package takes one sequence as it is (flexible length from 1 to the model's maximum, a
``ct.RangeDim``) and gives three outputs:

    classLabel        the most probable class (string, or int64 when every class is an integer)
    classLabel_probs  {class: probability}, the classifier dictionary Core ML apps read
    probabilities     the same probabilities as a (1, K) fp32 MLMultiArray, in ``classes`` order

The conversion is the generic one (:func:`coreml_lstm.export.export` of a
:class:`~coreml_lstm.classify.adapter.ClassifierAdapter`): coremltools' ClassifierConfig turns
the probabilities into the classify op's input, and :func:`coreml_lstm.export.keep_probabilities`
keeps them as an output. Inputs and outputs are fp32 (token ids int32) whatever the compute
precision; normalisation is traced into the graph.
"""

from __future__ import annotations

from pathlib import Path

from ..export import ExportConfig, export
from .adapter import DICT_OUTPUT, LABEL_OUTPUT, PROB_OUTPUT, SEQUENCE_INPUT, TEXT_INPUT, ClassifierAdapter, refuse_streaming, vocabulary_path

__all__ = ["DICT_OUTPUT", "LABEL_OUTPUT", "PROB_OUTPUT", "SEQUENCE_INPUT", "TEXT_INPUT", "export_classifier", "vocabulary_path"]


def export_classifier(clf, path: str | Path, config: ExportConfig | None = None) -> Path:
    """Write a fitted :class:`SequenceClassifier` or :class:`TextClassifier` as a Core ML classifier.

    A text classifier's vocabulary is written beside the package (:func:`vocabulary_path`); the
    tokenizer's rules go into the package metadata with the vocabulary's file name.

    Returns:
        The package path.
    """
    config = config or ExportConfig()
    refuse_streaming(config.streaming)
    return export(ClassifierAdapter(clf), path, config)
