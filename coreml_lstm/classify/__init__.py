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

import importlib

# Imported on first use (PEP 562): reading a classifier package (predict, inspect) needs no torch.
_WHERE = {
    "is_classifier_checkpoint": "adapter", "SequenceClassifier": "api", "TextClassifier": "api", "load_classifier": "api",
    "evaluate_package": "commands", "export_classifier_checkpoint": "commands", "is_classifier_package": "commands",
    "predict_classes": "commands", "train_classifier": "commands", "verify_classifier_package": "commands",
    "Tokenizer": "tokenizer", "verify_classifier": "verify",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [
    "SequenceClassifier", "TextClassifier", "Tokenizer", "load_classifier", "verify_classifier", "train_classifier",
    "export_classifier_checkpoint", "predict_classes", "verify_classifier_package", "evaluate_package",
    "is_classifier_checkpoint", "is_classifier_package",
]
