"""Sequence and text classification: LSTM/GRU (+ LSTM-FCN conv branch) classifiers exported as
Core ML classifiers, verified against PyTorch on the executor.

    data.py       long / wide sequence tables, text tables, labels, splits
    tokenizer.py  the text tokenizer and its written-down rules
    model.py      the network
    train.py      training loop and metrics
    export.py     Core ML classifier export
    verify.py     package vs torch at several lengths
    api.py        SequenceClassifier, TextClassifier
    commands.py   plain functions for the CLI
"""

from .adapter import is_classifier_checkpoint
from .api import SequenceClassifier, TextClassifier, load_classifier
from .commands import (evaluate_package, export_classifier_checkpoint, is_classifier_package, predict_classes, train_classifier,
                       verify_classifier_package)
from .tokenizer import Tokenizer
from .verify import verify_classifier

__all__ = [
    "SequenceClassifier", "TextClassifier", "Tokenizer", "load_classifier", "verify_classifier", "train_classifier",
    "export_classifier_checkpoint", "predict_classes", "verify_classifier_package", "evaluate_package",
    "is_classifier_checkpoint", "is_classifier_package",
]
