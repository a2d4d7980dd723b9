"""The ``coreml-lstm`` command line: results on stdout, progress and logs on stderr.

Exit codes: 0 success, 1 a failed check or an error about the input (``Error: ...`` on one
line), 2 a usage error.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from . import __version__
from .errors import CoreMLLSTMError

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


class Group(click.Group):
    """Turns the package's own errors into one line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CoreMLLSTMError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="coreml-lstm")
def main():
    """Train recurrent models, export them to Core ML, and prove the export matches PyTorch.

    \b
    Example:
        coreml-lstm demo
        coreml-lstm train data.csv --target load --time timestamp --out runs/load
        coreml-lstm export runs/load models/load.mlpackage --precision fp16 --target iOS17
        coreml-lstm inspect models/load.mlpackage
    """


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")(f)


def echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def export_options(f):
    """Options shared by every command that writes a package."""
    options = [
        click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help="Compute precision (inputs and outputs stay fp32)."),
        click.option("--author", default="", help="Package metadata: author."),
        click.option("--license", "license_", default="", help="Package metadata: license."),
        click.option("--description", default="", help="Package metadata: short description."),
        click.option("--model-version", default="", help="Package metadata: version string."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


TARGET_CHOICE = click.Choice(["iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15"])


def _export_config(precision, target, author, license_, description, model_version):
    from .export import ExportConfig

    return ExportConfig(precision=precision, target=target, author=author, license=license_, description=description, version=model_version)


# -- train -----------------------------------------------------------------------------------


def train_options(f):
    options = [
        click.argument("csv", required=False, type=click.Path(dir_okay=True, path_type=Path)),
        click.option("--target", "targets", multiple=True, help="Target column (repeat for several outputs). Default with no CSV: the embedded sunspots."),
        click.option("--feature", "features", multiple=True, help="Extra input column (repeat). Default: the other numeric columns."),
        click.option("--time", "time_column", help="Time column to sort by."),
        click.option("--series-id", help="Column naming the series when the table holds several."),
        click.option("--validation", type=click.Path(path_type=Path), help="Validation CSV (default: the last --val-fraction of each series)."),
        click.option("--val-fraction", type=float, default=0.2, show_default=True),
        click.option("--window", type=click.IntRange(min=1), default=24, show_default=True, help="Look-back length."),
        click.option("--horizon", type=click.IntRange(min=1), default=1, show_default=True, help="Steps ahead predicted at once."),
        click.option("--missing", type=click.Choice(["error", "drop", "ffill"]), default="error", show_default=True, help="What to do with empty cells."),
        click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True, help="Recurrent unit."),
        click.option("--hidden-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--num-layers", type=click.IntRange(min=1), default=2, show_default=True),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True),
        click.option("--bidirectional", is_flag=True),
        click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True),
        click.option("--patience", type=click.IntRange(min=0), default=20, show_default=True, help="Epochs without improvement before stopping."),
        click.option("--schedule", type=click.Choice(["none", "plateau", "cosine"]), default="none", show_default=True, help="Learning-rate schedule."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _train(csv, targets, features, time_column, series_id, validation, val_fraction, window, horizon, missing, cell, hidden_size, num_layers, dropout, bidirectional, epochs, batch_size, lr, patience, schedule, seed, quiet):
    from .api import Forecaster
    from .datasets import DEFAULT, load_sunspots

    if csv is None:
        source = load_sunspots()
        targets = targets or tuple(DEFAULT["target"])
        time_column = time_column or DEFAULT["time"]
        click.echo(f"training on the embedded {DEFAULT['name']} data ({len(source)} rows)", err=True)
    else:
        source = csv
        if not targets:
            raise click.UsageError("--target is required with a CSV")
    forecaster = Forecaster(
        list(targets), list(features) or None, time=time_column, series_id=series_id, window=window, horizon=horizon,
        val_fraction=val_fraction, missing=missing, cell=cell, hidden_size=hidden_size, num_layers=num_layers,
        dropout=dropout, bidirectional=bidirectional, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
        schedule=schedule, seed=seed, progress=not quiet,
    )
    return forecaster.fit(source, validation)


def format_metrics(metrics: dict) -> str:
    lines = [f"{'target':<20} {'step':>4} {'RMSE':>12} {'MAE':>12} {'MAPE %':>9}"]
    for name, per in metrics["targets"].items():
        for h, s in enumerate(per["steps"]):
            mape = "n/a" if s["mape"] is None else f"{s['mape']:.2f}"
            lines.append(f"{name:<20} {h + 1:>4} {s['rmse']:>12.4f} {s['mae']:>12.4f} {mape:>9}")
    o = metrics["overall"]
    mape = "n/a" if o["mape"] is None else f"{o['mape']:.2f}"
    lines.append(f"{'overall':<20} {'':>4} {o['rmse']:>12.4f} {o['mae']:>12.4f} {mape:>9}")
    return "\n".join(lines)


@main.command(context_settings=CONTEXT)
@train_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/model"), show_default=True, help="Checkpoint directory to write.")
@click.option("--export", "export_path", type=click.Path(path_type=Path), help="Also export an .mlpackage here.")
@click.option("--deployment-target", type=TARGET_CHOICE, default="iOS16", show_default=True, help="With --export: minimum deployment target.")
@export_options
@json_option
def train(out, export_path, deployment_target, precision, author, license_, description, model_version, as_json, **kwargs):
    """Train a forecaster on a CSV (or the embedded sunspots data) and save a checkpoint.

    \b
    Example:
        coreml-lstm train                      # embedded yearly sunspots
        coreml-lstm train sales.csv --target units --time date --series-id store \\
            --window 28 --horizon 7 --out runs/sales --export models/sales.mlpackage
    """
    if export_path is not None:
        from .export import check_destination

        check_destination(export_path)  # fail before training, not after
    forecaster = _train(**kwargs)
    forecaster.save(out)
    result = {"checkpoint": str(out), "metrics": forecaster.metrics_, "best_epoch": forecaster.history_["best_epoch"] + 1, "epochs_run": len(forecaster.history_["val_loss"])}
    if export_path is not None:
        forecaster.export(export_path, **_export_config(precision, deployment_target, author, license_, description, model_version).to_dict())
        result["package"] = str(export_path)
    if as_json:
        echo_json(result)
        return
    click.echo(f"validation metrics (original units), best epoch {result['best_epoch']} of {result['epochs_run']}:")
    click.echo(format_metrics(forecaster.metrics_))
    click.echo(f"checkpoint: {out}  (metrics in {out / 'metrics.json'})")
    if export_path is not None:
        click.echo(f"package: {export_path}")


# -- export ----------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--target", type=TARGET_CHOICE, default="iOS16", show_default=True, help="Minimum deployment target.")
@export_options
@json_option
def export(checkpoint, output, target, precision, author, license_, description, model_version, as_json):
    """Export a checkpoint as a Core ML .mlpackage (raw inputs in, original units out).

    \b
    Example:
        coreml-lstm export runs/model models/model.mlpackage --precision fp16 --target iOS17
    """
    from .checkpoint import Checkpoint
    from .export import export_checkpoint

    path = export_checkpoint(Checkpoint.load(checkpoint), output, _export_config(precision, target, author, license_, description, model_version))
    if as_json:
        echo_json({"package": str(path), "precision": precision, "target": target})
    else:
        click.echo(f"package: {path} ({precision}, {target})")


if __name__ == "__main__":  # pragma: no cover
    main()
