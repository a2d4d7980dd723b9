"""Precision and size: one model exported as fp32, fp16 and each weight compression.

For every variant the table gives the package's size on disk, its largest error against the
PyTorch model on the adapter's evaluation samples (run through the executor in the program's own
numerics), and, where the model has labelled validation data, its metric next to PyTorch's
(validation RMSE for a forecaster, accuracy for a classifier), so the cost of a smaller package
is read in the units the model predicts.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .export import COMPRESSIONS, ExportConfig, export

# (name, compute precision, compression)
VARIANTS = (("fp32", "fp32", None), ("fp16", "fp16", None)) + tuple((c, "fp32", c) for c in COMPRESSIONS)


def variants_for(target: str, variants=VARIANTS) -> tuple[list, list[str]]:
    """The variants a deployment target can take, and a sentence per one it cannot (compressed
    weights need iOS16 / macOS13): ``compare --target iOS15`` compares fp32 and fp16 and says
    why the rest are left out, rather than exporting two and failing at the third."""
    kept, left = [], []
    for variant in variants:
        _, precision, compress = variant
        try:
            ExportConfig(precision=precision, target=target, compress=compress)
        except ConfigError as exc:
            left.append(f"{variant[0]}: {exc}")
            continue
        kept.append(variant)
    return kept, left


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
    rmse: float  # the metric of the package's outputs: RMSE in original units (forecasters), accuracy (classifiers), NaN (none)
    torch_rmse: float  # the same of the torch model
    metric: str = "RMSE"  # "RMSE" (forecasters), "accuracy" (classifiers), "-" (no labelled data)

    @property
    def rmse_change(self) -> float:
        return self.rmse - self.torch_rmse

    def to_dict(self) -> dict:
        return {**asdict(self), "rmse_change": self.rmse_change}


def package_size(path: str | Path) -> int:
    """Bytes of all files in a package directory."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def compare_adapter(adapter, directory: str | Path | None = None, *, target: str = "iOS16", variants=VARIANTS) -> list[Row]:
    """Export the adapter's model once per variant and measure each (see the module docstring).

    Args:
        adapter: the model (see :class:`coreml_lstm.adapter.Adapter`); its :meth:`evaluation`
            gives the samples, the output measured and the metric.
        directory: where to keep the packages (default: a temporary directory, removed).
        target: deployment target of every export.
        variants: ``(name, precision, compression)`` triples; the first is the size reference.
    """
    from . import executor
    from .verify import run_sample

    evaluation = adapter.evaluation()
    samples, output = evaluation.samples, evaluation.output
    want = [np.asarray(adapter.reference(s)[output], np.float64) for s in samples]
    score = (lambda values: evaluation.score(np.stack(values))) if evaluation.score else (lambda values: float("nan"))
    reference = score(want)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        out_dir = Path(directory or scratch)
        for variant, precision, compress in variants:
            path = export(adapter, out_dir / f"{variant}.mlpackage", ExportConfig(precision=precision, target=target, compress=compress))
            program = executor.load(path)

            def predict(feeds, state, precision=precision):
                return program.predict(feeds, mode=precision, state=state)

            make_state = program.make_state if program.states else None
            got = [np.asarray(run_sample(predict, s, adapter.carry, make_state)[output], np.float64) for s in samples]
            size = package_size(path)
            rows.append(Row(
                variant=variant, precision=precision, compress=compress, size_bytes=size,
                size_ratio=size / (rows[0].size_bytes if rows else size), weights_bytes=_weights_size(path), output=output,
                max_abs_error=max(float(np.abs(g - w).max(initial=0.0)) for g, w in zip(got, want)),
                rmse=score(got), torch_rmse=reference, metric=evaluation.metric or "-",
            ))
    return rows


def compare_checkpoint(checkpoint, directory: str | Path | None = None, *, target: str = "iOS16", variants=VARIANTS) -> list[Row]:
    """:func:`compare_adapter` for a forecaster checkpoint holding validation windows (RMSE in original units)."""
    from .forecaster_adapter import ForecasterAdapter

    if checkpoint.validation_x is None or checkpoint.validation_y is None or not len(checkpoint.validation_x):
        raise ConfigError("compare: the checkpoint holds no validation windows")
    if checkpoint.model_config.head not in ("point", "mixture"):
        raise ConfigError(f"compare: head {checkpoint.model_config.head!r} is not supported")
    return compare_adapter(ForecasterAdapter(checkpoint), directory, target=target, variants=variants)


def compare_classifier(clf, directory: str | Path | None = None, *, target: str = "iOS16", variants=VARIANTS) -> list[Row]:
    """:func:`compare_adapter` for a fitted classifier: errors on the class probabilities and
    accuracy on its stored validation samples (each fed at its own length)."""
    from .classify.adapter import ClassifierAdapter

    return compare_adapter(ClassifierAdapter(clf), directory, target=target, variants=variants)


def _weights_size(path: Path) -> int:
    blob = Path(path) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    return blob.stat().st_size if blob.exists() else 0


def format_table(rows: list[Row]) -> str:
    metric = rows[0].metric
    lines = [f"{'variant':<11} {'compute':<7} {'size':>9} {'vs fp32':>7} {'weights':>9} {'max |error|':>11} {metric:>9} {'change':>9}"]
    for r in rows:
        lines.append(
            f"{r.variant:<11} {r.precision:<7} {r.size_bytes / 1024:>7.1f}KB {r.size_ratio:>7.2f} {r.weights_bytes / 1024:>7.1f}KB "
            f"{r.max_abs_error:>11.2e} {r.rmse:>9.4f} {r.rmse_change:>+9.4f}"
        )
    lines.append("size: all files of the package; weights: its weight.bin (the rest is the program and metadata).")
    where = {"RMSE": "RMSE on the validation windows in original units", "accuracy": "accuracy on the validation samples"}.get(metric)
    lines.append(f"error: package vs PyTorch on output {rows[0].output!r}, executor in each program's own precision"
                 + (f"; {where} (PyTorch: {rows[0].torch_rmse:.4f})." if where else "."))
    return "\n".join(lines)
