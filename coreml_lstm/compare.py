"""Precision and size: one checkpoint exported as fp32, fp16 and each weight compression.

For every variant the table gives the package's size on disk, its largest error against the
PyTorch model on the validation windows (run through the executor in the program's own
numerics), and the validation RMSE of its predictions next to PyTorch's, so the cost of a
smaller package is read in the units the model predicts.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .export import COMPRESSIONS, ExportConfig, export_checkpoint
from .verify import run_torch

# (name, compute precision, compression)
VARIANTS = (("fp32", "fp32", None), ("fp16", "fp16", None)) + tuple((c, "fp32", c) for c in COMPRESSIONS)


@dataclass
class Row:
    variant: str
    precision: str
    compress: str | None
    size_bytes: int
    size_ratio: float  # size / the fp32 package's size
    weights_bytes: int  # of which weights/weight.bin
    output: str  # the output the errors and the metric are measured on
    max_abs_error: float  # package vs torch, over all validation windows
    rmse: float  # package predictions vs validation targets, original units (classifiers: accuracy)
    torch_rmse: float  # the same of the torch model
    metric: str = "RMSE"  # "RMSE" (forecasters) or "accuracy" (classifiers)

    @property
    def rmse_change(self) -> float:
        return self.rmse - self.torch_rmse

    def to_dict(self) -> dict:
        return {**asdict(self), "rmse_change": self.rmse_change}


def package_size(path: str | Path) -> int:
    """Bytes of all files in a package directory."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def compare_checkpoint(checkpoint, directory: str | Path | None = None, *, target: str = "iOS16", variants=VARIANTS) -> list[Row]:
    """Export ``checkpoint`` once per variant and measure each (see the module docstring).

    Args:
        checkpoint: a :class:`coreml_lstm.checkpoint.Checkpoint` holding validation windows.
        directory: where to keep the packages (default: a temporary directory, removed).
        target: deployment target of every export.
        variants: ``(name, precision, compression)`` triples; the first is the size reference.
    """
    if checkpoint.validation_x is None or checkpoint.validation_y is None or not len(checkpoint.validation_x):
        raise ConfigError("compare: the checkpoint holds no validation windows")
    if checkpoint.model_config.head not in ("point", "mixture"):
        raise ConfigError(f"compare: head {checkpoint.model_config.head!r} is not supported")
    x, y = checkpoint.validation_x, checkpoint.validation_y
    feeds = [{"window": x[i : i + 1]} for i in range(len(x))]
    model = checkpoint.build_model()
    names = model.output_names()
    output = "forecast" if checkpoint.model_config.head == "point" else "prediction"
    want = np.concatenate([r[output] for r in run_torch(model, feeds, names)])  # (N, horizon, targets)

    def export(path, precision, compress):
        return export_checkpoint(checkpoint, path, ExportConfig(precision=precision, target=target, compress=compress))

    return _measure(variants, directory, export, feeds, output, want, lambda pred: _rmse(pred, y), "RMSE")


def compare_classifier(clf, directory: str | Path | None = None, *, target: str = "iOS16", variants=VARIANTS) -> list[Row]:
    """:func:`compare_checkpoint` for a fitted classifier: errors on the class probabilities and
    accuracy on its stored validation samples (each fed at its own length)."""
    import torch

    from .classify.export import PROB_OUTPUT, SEQUENCE_INPUT, TEXT_INPUT

    samples = clf.validation_samples_
    if not samples:
        raise ConfigError("compare: the classifier holds no validation samples")
    text = clf.task == "text-classify"
    name = TEXT_INPUT if text else SEQUENCE_INPUT
    feeds = [{name: np.asarray(x, np.int32 if text else np.float32)[None]} for x, _ in samples]
    labels = np.asarray([y for _, y in samples])
    model = clf._fitted().eval()
    with torch.no_grad():
        want = np.concatenate([model(torch.as_tensor(f[name]).long() if text else torch.as_tensor(f[name])).numpy() for f in feeds])

    def export(path, precision, compress):
        return clf.export(path, precision=precision, target=target, compress=compress)

    return _measure(variants, directory, export, feeds, PROB_OUTPUT, want, lambda pred: float((pred.argmax(-1) == labels).mean()), "accuracy")


def _measure(variants, directory, export, feeds: list[dict], output: str, want: np.ndarray, score, metric: str) -> list[Row]:
    """Export each variant, run it through the executor in its own precision on ``feeds``, and
    compare ``output`` with torch's ``want``; ``score(predictions)`` is the validation metric."""
    from . import executor

    reference = score(want)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = Path(directory or scratch)
        for variant, precision, compress in variants:
            path = export(out_dir / f"{variant}.mlpackage", precision, compress)
            program = executor.load(path)
            got = np.concatenate([np.asarray(program.predict(f, mode=precision)[output]) for f in feeds])
            size = package_size(path)
            rows.append(Row(
                variant=variant, precision=precision, compress=compress, size_bytes=size,
                size_ratio=size / (rows[0].size_bytes if rows else size), weights_bytes=_weights_size(path), output=output,
                max_abs_error=float(np.abs(got.astype(np.float64) - want).max()),
                rmse=score(got), torch_rmse=reference, metric=metric,
            ))
    return rows


def _weights_size(path: Path) -> int:
    blob = Path(path) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    return blob.stat().st_size if blob.exists() else 0


def _rmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2)))


def format_table(rows: list[Row]) -> str:
    metric = rows[0].metric
    lines = [f"{'variant':<11} {'compute':<7} {'size':>9} {'vs fp32':>7} {'weights':>9} {'max |error|':>11} {metric:>9} {'change':>9}"]
    for r in rows:
        lines.append(
            f"{r.variant:<11} {r.precision:<7} {r.size_bytes / 1024:>7.1f}KB {r.size_ratio:>7.2f} {r.weights_bytes / 1024:>7.1f}KB "
            f"{r.max_abs_error:>11.2e} {r.rmse:>9.4f} {r.rmse_change:>+9.4f}"
        )
    lines.append("size: all files of the package; weights: its weight.bin (the rest is the program and metadata).")
    where = "RMSE on the validation windows in original units" if metric == "RMSE" else "accuracy on the validation samples"
    lines.append(f"error: package vs PyTorch on output {rows[0].output!r}, executor in each program's own precision; "
                 f"{where} (PyTorch: {rows[0].torch_rmse:.4f}).")
    return "\n".join(lines)
