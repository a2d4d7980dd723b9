"""The ``coreml-lstm`` command line: results on stdout, progress and logs on stderr.

Exit codes: 0 success, 1 a failed check or an error about the input (``Error: ...`` on one
line), 2 a usage error.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path

import click

from . import __version__
from .errors import ConfigError, CoreMLLSTMError

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


class Group(click.Group):
    """Turns the package's own errors into one line and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CoreMLLSTMError as exc:
            click.echo(f"Error: {exc.cli or exc}", err=True)
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


class InputPath(click.Path):
    """An existing file or directory, as ``click.Path(exists=True)``, except that a missing path
    or one of the wrong kind is bad input: one line ``Error: ...`` and exit 1, not a usage block."""

    def __init__(self, *, file_okay: bool = True, dir_okay: bool = True):
        super().__init__(exists=True, file_okay=file_okay, dir_okay=dir_okay, path_type=Path)

    def convert(self, value, param, ctx):
        path = Path(value)
        hint = (param.opts[0] if isinstance(param, click.Option) else param.human_readable_name) if param is not None else "path"
        if not path.exists():
            raise ConfigError(f"{value}: no such file or directory ({hint})")
        if path.is_dir() and not self.dir_okay:
            raise ConfigError(f"{value}: is a directory; {hint} takes a file")
        if not path.is_dir() and not self.file_okay:
            raise ConfigError(f"{value}: is a file; {hint} takes a directory")
        return path


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
        click.option("--compress", type=click.Choice(["int8", "palettize6", "palettize4", "prune50"]), help="Compress the weights (coremltools.optimize): int8 linear, 6- or 4-bit palette, 50% pruning."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


TARGET_CHOICE = click.Choice(["iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15"])


def _export_config(precision, target, author, license_, description, model_version, compress=None, streaming=None, max_chunk=64):
    from .export import ExportConfig

    return ExportConfig(precision=precision, target=target, author=author, license=license_, description=description,
                        version=model_version, streaming=streaming, max_chunk=max_chunk, compress=compress)


# -- train -----------------------------------------------------------------------------------


def train_options(f):
    options = [
        click.argument("csv", required=False, type=click.Path(dir_okay=True, path_type=Path)),
        click.option("--task", type=click.Choice(["forecast", "classify", "text-classify"]), default="forecast", show_default=True, help="forecast: the next values of --target; classify: a label per sequence; text-classify: a label per text."),
        click.option("--label", help="classify / text-classify: the label column (default: label)."),
        click.option("--layout", type=click.Choice(["long", "wide"]), help="classify: long (one row per step, --series-id names the sample) or wide (one row per sample: label, t0 ... tn)."),
        click.option("--channel", "channels", multiple=True, help="classify, long layout: a channel column (repeat; default: the numeric columns)."),
        click.option("--text", "text_column", help="text-classify: the text column (default: text)."),
        click.option("--max-length", type=click.IntRange(min=1), help="classify / text-classify: the longest sequence the export takes (default: the longest in training)."),
        click.option("--conv", help="classify: channels of an LSTM-FCN convolution branch, e.g. 128,256,128."),
        click.option("--target", "targets", multiple=True, help="Target column (repeat for several outputs). Default with no CSV: the embedded sunspots."),
        click.option("--feature", "features", multiple=True, help="Extra input column (repeat). Default: the other numeric columns."),
        click.option("--time", "time_column", help="Time column to sort by."),
        click.option("--series-id", help="Column naming the series when the table holds several."),
        click.option("--validation", type=click.Path(path_type=Path), help="Validation CSV (default: the last --val-fraction of each series)."),
        click.option("--val-fraction", type=float, default=0.2, show_default=True),
        click.option("--window", type=click.IntRange(min=1), help="Look-back length (default: from the season, horizon and series length)."),
        click.option("--horizon", type=click.IntRange(min=1), help="Steps ahead predicted at once (default: one season, 1 without a season)."),
        click.option("--season", type=click.IntRange(min=1), help="Season length for the baselines and defaults (default: from the --time column's frequency: hourly 24, daily 7, weekly 52, monthly 12, quarterly 4, else 1)."),
        click.option("--scaling", type=click.Choice(["window", "global"]), default="window", show_default=True, help="window: each window in its own frame (last value, mean absolute deviation); global: z-scores of the training part."),
        click.option("--log", "log_", is_flag=True, help="Model log(target) (multiplicative seasonality); every target value must be > 0."),
        click.option("--missing", type=click.Choice(["error", "drop", "ffill"]), default="error", show_default=True, help="What to do with empty cells."),
        click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True, help="Recurrent unit."),
        click.option("--hidden-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--num-layers", type=click.IntRange(min=1), default=2, show_default=True),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True),
        click.option("--bidirectional", is_flag=True),
        click.option("--head", type=click.Choice(["point", "mixture"]), default="point", show_default=True, help="point: one value per step; mixture: a Gaussian mixture (trained by NLL)."),
        click.option("--mixtures", type=click.IntRange(min=1), default=3, show_default=True, help="Components per value with --head mixture (1: a plain Gaussian)."),
        click.option("--select", type=click.Choice(["validation", "network"]), default="validation", show_default=True, help="validation: ship the best of the network, each classical baseline and their blend by validation MAE; network: the network as trained."),
        click.option("--calibrate/--no-calibrate", default=True, show_default=True, help="--head mixture: widen the mixtures where validation's central 90% intervals cover less than 90%."),
        click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True),
        click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True),
        click.option("--patience", type=click.IntRange(min=0), default=20, show_default=True, help="Epochs without improvement before stopping."),
        click.option("--schedule", type=click.Choice(["none", "plateau", "cosine"]), default="none", show_default=True, help="Learning-rate schedule."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", type=click.Choice(["cpu", "cuda", "mps", "auto"]), default="cpu", show_default=True, help="Where to train (auto: cuda, then mps, then cpu). Under torchrun: cpu (gloo) or cuda (nccl)."),
        click.option("--dist-timeout", type=click.FloatRange(min=0, min_open=True), default=300.0, show_default=True, help="Under torchrun: seconds a collective waits for the other processes before the job fails."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _train_classifier(task, csv, validation, label, layout, channels, text_column, max_length, conv, series_id, time_column, val_fraction,
                      cell, hidden_size, num_layers, dropout, bidirectional, weight_decay, epochs, batch_size, lr, patience, schedule, seed, quiet, **forecast_only):
    from .classify import train_classifier

    if csv is None:
        raise click.UsageError(f"--task {task} needs a CSV")
    given = [flag for flag, used in (("--target", forecast_only["targets"]), ("--feature", forecast_only["features"]),
                                     ("--head", forecast_only["head"] != "point"), ("--season", forecast_only["season"]),
                                     ("--log", forecast_only["log_"]), ("--scaling", forecast_only["scaling"] != "window")) if used]
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # given on the command line, even at its default value: it would be ignored
        from click.core import ParameterSource

        flags = {"window": "--window", "horizon": "--horizon", "mixtures": "--mixtures", "calibrate": "--calibrate/--no-calibrate",
                 "missing": "--missing", "select": "--select", "scaling": "--scaling", "head": "--head"}
        given += [flag for name, flag in flags.items()
                  if flag not in given and ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)]
    if given:
        raise click.UsageError(f"{', '.join(given)}: only with --task forecast")
    if schedule == "plateau":  # it reduces on the forecaster's validation loss; a classifier's loop has none or cosine
        raise click.UsageError("--schedule plateau: only with --task forecast; a classifier takes none or cosine")
    if cell == "rnn":
        raise click.UsageError(f"--task {task}: --cell must be lstm or gru")
    options = dict(cell=cell, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout, bidirectional=bidirectional,
                   weight_decay=weight_decay, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                   schedule=schedule, seed=seed, val_fraction=val_fraction)
    if label:
        options["label"] = label
    if max_length:
        options["max_length"] = max_length
    if task == "classify":
        options.update({k: v for k, v in dict(layout=layout, series_id=series_id, time=time_column, channels=list(channels) or None).items() if v})
        if conv:
            try:
                options["conv_channels"] = [int(c) for c in conv.split(",")]
            except ValueError:
                raise click.BadParameter(f"{conv!r} is not a comma-separated list of integers", param_hint="--conv") from None
    elif text_column:
        options["text"] = text_column
    return train_classifier(csv, task=task, validation=validation, progress=not quiet, **options)


def format_classification(metrics: dict) -> str:
    classes = [str(c) for c in metrics.get("classes", [])]
    lines = [f"accuracy {metrics['accuracy']:.4f}   macro F1 {metrics['macro_f1']:.4f}   ({metrics.get('n', '?')} samples)"]
    if classes and metrics.get("confusion"):
        width = max(8, *(len(c) for c in classes))
        lines.append("confusion (rows: true, columns: predicted):")
        lines.append(" " * width + " " + " ".join(f"{c:>{width}}" for c in classes))
        for c, row in zip(classes, metrics["confusion"]):
            lines.append(f"{c:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def _train(task, csv, targets, features, time_column, series_id, validation, val_fraction, window, horizon, season, scaling, log_, missing, cell, hidden_size, num_layers, dropout, bidirectional, head, mixtures, weight_decay, epochs, batch_size, lr, patience, schedule, seed, quiet, label, layout, channels, text_column, max_length, conv, device, dist_timeout,
           select="validation", calibrate=True):
    if task != "forecast":
        if select != "validation" or not calibrate:  # (outside a click context; inside, _train_classifier names any given)
            raise click.UsageError(f"{'--select' if select != 'validation' else '--no-calibrate'}: only with --task forecast")
        from .train import rank_and_world

        if rank_and_world()[1] > 1:
            raise click.UsageError(f"--task {task} trains in one process; run it without torchrun")
        if device != "cpu":
            raise click.UsageError("--device: only with --task forecast")
        return _train_classifier(task, csv, validation, label, layout, channels, text_column, max_length, conv, series_id, time_column, val_fraction,
                                 cell, hidden_size, num_layers, dropout, bidirectional, weight_decay, epochs, batch_size, lr, patience, schedule, seed, quiet,
                                 targets=targets, features=features, head=head, season=season, log_=log_, scaling=scaling)
    classify_only = {"--label": label, "--layout": layout, "--channel": channels, "--text": text_column, "--max-length": max_length, "--conv": conv}
    given = [k for k, v in classify_only.items() if v]
    if given:
        raise click.UsageError(f"{', '.join(given)}: only with --task classify or text-classify")
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
        season=season, scaling=scaling, log=log_, val_fraction=val_fraction, missing=missing, cell=cell, hidden_size=hidden_size, num_layers=num_layers,
        dropout=dropout, bidirectional=bidirectional, head=head, mixtures=mixtures, weight_decay=weight_decay,
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
        schedule=schedule, seed=seed, select=select, calibrate=calibrate, device=device, dist_timeout=dist_timeout, progress=not quiet,
    )
    return forecaster.fit(source, validation)


def _echo_baselines(metrics: dict) -> None:
    """The model next to naive and seasonal naive on the validation windows."""
    from .baselines import format_report

    if metrics.get("vs_baselines"):
        start = f" (training started from {metrics['start']})" if metrics.get("start") else ""
        click.echo(f"against the baselines on the same windows{start}:")
        click.echo(format_report(metrics["vs_baselines"]))
    if metrics.get("selection"):
        click.echo(format_selection(metrics["selection"]))
    if metrics.get("interval_scale"):
        click.echo("intervals: mixtures stretched by " + ", ".join(f"{v:.3g}" for v in metrics["interval_scale"])
                   + " about their means so that 90% of the validation values fall in the central 90% interval")


def format_selection(sel: dict) -> str:
    """``shipped: <candidate> (validation MAE x; <every other candidate> y, ...)``; with several
    series or targets, the scaled MAE the choice was made on (``scaled``) follows the MAE."""
    shipped = sel["shipped"]
    if "scaled" in sel:
        others = ", ".join(f"{k} {v:.4g}" for k, v in sel["scaled"].items() if k != shipped)
        return (f"shipped: {shipped} (validation MAE {sel['mae'][shipped]:.4g}, scaled per series and target {sel['scaled'][shipped]:.4g}"
                f"{'; scaled: ' + others if others else ''})")
    others = ", ".join(f"{k} {v:.4g}" for k, v in sel["mae"].items() if k != shipped)
    return f"shipped: {shipped} (validation MAE {sel['mae'][shipped]:.4g}{'; ' + others if others else ''})"


def format_metrics(metrics: dict) -> str:
    from .baselines import format_value as v

    lines = [f"{'target':<20} {'step':>4} {'RMSE':>12} {'MAE':>12} {'MAPE %':>9}"]
    for name, per in metrics["targets"].items():
        for h, s in enumerate(per["steps"]):
            mape = "n/a" if s["mape"] is None else f"{s['mape']:.2f}"
            lines.append(f"{name:<20} {h + 1:>4} {v(s['rmse']):>12} {v(s['mae']):>12} {mape:>9}")
    o = metrics["overall"]
    pooled = len(metrics["targets"]) > 1  # the overall row averages targets whose units may differ
    overall = "overall (pooled)*" if pooled else "overall"
    mape = "n/a" if o["mape"] is None else f"{o['mape']:.2f}"
    lines.append(f"{overall:<20} {'':>4} {v(o['rmse']):>12} {v(o['mae']):>12} {mape:>9}")
    scaled = metrics.get("scaled")
    if scaled:
        lines.append(f"{'overall (scaled)':<20} {'':>4} {v(scaled['rmse']):>12} {v(scaled['mae']):>12} {'':>9}")
    if o.get("mape_zeros"):
        lines.append(f"(MAPE leaves out the {o['mape_zeros']} of {o['n']} true values that are 0)")
    if pooled:
        lines.append(f"(* pooled over {len(metrics['targets'])} targets in their own, possibly different, units"
                     + ("; scaled: each target's errors over its series' in-sample seasonal-naive MAE, the mean over targets)" if scaled else ")"))
    if "probabilistic" in metrics:
        lines.append(f"{'target':<20} {'NLL':>9} {'CRPS':>10} {'cover 50%':>10} {'cover 90%':>10}")
        prob = metrics["probabilistic"]
        rows = list(prob["targets"].items()) + [(overall, prob["overall"])]
        for name, p in rows:
            lines.append(f"{name:<20} {p['nll']:>9.4f} {p['crps']:>10.4f} {p['coverage50']:>10.3f} {p['coverage90']:>10.3f}")
        if prob.get("scaled"):
            lines.append(f"{'overall (scaled)':<20} {prob['scaled']['nll']:>9.4f} {prob['scaled']['crps']:>10.4f}")
    return "\n".join(lines)


@main.command(context_settings=CONTEXT)
@train_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/model"), show_default=True, help="Checkpoint directory to write.")
@click.option("--export", "export_path", type=click.Path(path_type=Path), help="Also export an .mlpackage here.")
@click.option("--deployment-target", type=TARGET_CHOICE, default="iOS16", show_default=True, help="With --export: minimum deployment target.")
@export_options
@json_option
def train(out, export_path, deployment_target, precision, author, license_, description, model_version, compress, as_json, **kwargs):
    """Train a forecaster or classifier on a CSV (or the embedded sunspots data); save a checkpoint.

    \b
    Example:
        coreml-lstm train                      # embedded yearly sunspots
        coreml-lstm train sales.csv --target units --time date --series-id store \\
            --window 28 --horizon 7 --out runs/sales --export models/sales.mlpackage
        coreml-lstm train motion.csv --task classify --series-id id --time t --label activity \\
            --bidirectional --out runs/motion --export models/motion.mlpackage
        coreml-lstm train reviews.csv --task text-classify --text review --label stars --out runs/reviews
        torchrun --nproc_per_node 4 -m coreml_lstm train sales.parquet --target units --time date \\
            --series-id store --out runs/sales      # 4 processes (DDP); rank 0 writes the checkpoint
    """
    config = _export_config(precision, deployment_target, author, license_, description, model_version, compress)  # checked before training
    if export_path is not None:
        from .export import check_destination

        check_destination(export_path)  # fail before training, not after
    forecaster = _train(**kwargs)
    from .train import is_main_process

    if not is_main_process():  # under torchrun: rank 0 writes the checkpoint and the export and reports
        return
    forecaster.save(out)
    if kwargs["task"] != "forecast":
        result = {"checkpoint": str(out), "task": kwargs["task"], "metrics": forecaster.metrics_}
        if export_path is not None:
            forecaster.export(export_path, **{k: v for k, v in config.to_dict().items() if k not in ("streaming", "max_chunk")})
            result["package"] = str(export_path)
        no_validation = ("no validation samples: every training sample was needed for training (a class needs two or more to be "
                         "split); no metrics, and verify uses random inputs; give --validation or more samples")
        warnings = forecaster.metrics_.get("warnings", []) if forecaster.metrics_ else [no_validation]
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        if as_json:
            echo_json({**result, "warnings": warnings})
            return
        if forecaster.metrics_:
            click.echo("validation metrics:")
            click.echo(format_classification(forecaster.metrics_))
        else:
            click.echo("validation metrics: none (no validation samples)")
        click.echo(f"checkpoint: {out}" + (f"\npackage: {export_path}" if export_path is not None else ""))
        return
    result = {"checkpoint": str(out), "metrics": forecaster.metrics_, "best_epoch": forecaster.history_["best_epoch"] + 1, "epochs_run": len(forecaster.history_["val_loss"])}
    check = None
    if export_path is not None:
        from .forecaster_adapter import ForecasterAdapter
        from .verify import check_export

        forecaster.export(export_path, **config.to_dict())
        result["package"] = str(export_path)
        check = check_export(ForecasterAdapter(forecaster.checkpoint_), export_path)
        result["check"] = check.to_dict()
    for warning in forecaster.metrics_.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(result)
        _check_lines(check, export_path)
        return
    best = f"best epoch {result['best_epoch']} of {result['epochs_run']}" + (" (the untrained start)" if result["best_epoch"] == 0 else "")
    click.echo(f"validation metrics (original units), {best}:")
    click.echo(format_metrics(forecaster.metrics_))
    _echo_baselines(forecaster.metrics_)
    click.echo(f"checkpoint: {out}  (metrics in {out / 'metrics.json'})")
    if export_path is not None:
        click.echo(f"package: {export_path}")
    _check_lines(check, export_path)


def _check_lines(check, package) -> None:
    """After an export: nothing when the quick executor check passed; its FAILED lines and exit 1
    when it failed (the package stays, for ``verify`` and ``run --intermediate``)."""
    if check is None or check.status != "failed":
        return
    for c in check.checks:
        if c.status == "failed":
            click.echo("  " + c.line())
    from .errors import ParityError

    raise ParityError(f"{package}: the package written does not compute what the model does through the executor "
                               f"(see the FAILED lines); run coreml-lstm verify on it, or export again with another --precision or --target")


# -- convert ---------------------------------------------------------------------------------


def model_argument(f):
    """A model: a forecaster or classifier checkpoint directory, a TorchScript archive or a .pt2 program."""
    return click.argument("model", type=click.Path(path_type=Path))(f)


def _load_model(model, package=None, inputs=(), outputs=(), **options):
    """The adapter of MODEL (see coreml_lstm.adapter.load): the one place the CLI learns what kind of model it has."""
    from .adapter import load

    return load(model, package=package, inputs=list(inputs), outputs=list(outputs), **options)


@main.command(context_settings=CONTEXT)
@model_argument
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--input", "inputs", multiple=True, metavar="NAME:SHAPE[:DTYPE[:LO..HI]]",
              help="An input: its shape with ranges (x:1..64,100,16), dtype float32, int32 or bool (an int32 input of 0/1 torch takes as bool: mask:1,32:bool) or the torch dtype the model takes (int64, float64, ...: an int32 or float32 input of the package), and the values random checks draw (ids:1,32:int64:0..999). Repeat per input.")
@click.option("--output", "outputs", multiple=True, metavar="NAME", help="An output's name, in the order the model returns them (repeat).")
@click.option("--target", type=TARGET_CHOICE, default="iOS16", show_default=True, help="Minimum deployment target.")
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True, help="Random samples the check after conversion draws.")
@click.option("--fp32-module", "fp32_modules", multiple=True, metavar="NAME",
              help="With --precision fp16: a submodule (dotted name, e.g. encoder.norm) whose ops stay fp32, such as a normalisation of raw inputs beyond fp16's 65504 (repeat).")
@click.option("--atol", type=float, help="The check's absolute tolerance, in units of each output's scale (its root mean square where below 1) (default: fp32 1e-4; fp16, compressed weights or states 5e-2).")
@click.option("--rtol", type=float, help="The check's relative tolerance (default as --atol).")
@export_options
@json_option
def convert(model, output, inputs, outputs, target, samples, fp32_modules, atol, rtol, precision, author, license_, description, model_version, compress, as_json):
    """Convert your own model to Core ML and check the package against it (exit 1 if it differs).

    MODEL is a TorchScript archive (torch.jit.save) or a torch.export program (.pt2); neither is
    loaded by unpickling arbitrary objects. Shapes take ranges (lo..hi), which Core ML accepts
    at run time; the check runs the saved package through the executor at the smallest, the
    largest and in-between sizes.

    \b
    Example:
        coreml-lstm convert har.pt models/har.mlpackage --input x:1,1..512,6 --output logits
        coreml-lstm convert tagger.pt2 models/tagger.mlpackage --input ids:1,1..64:int32:0..4999
    """
    from .export import check_destination, export
    from .verify import verify_package

    config = _export_config(precision, target, author, license_, description, model_version, compress)
    check_destination(output)
    adapter = _load_model(model, inputs=inputs, outputs=outputs)
    if fp32_modules:
        from .user_model import fp32_submodules

        adapter.fp32_scopes = fp32_submodules(adapter.module(), fp32_modules, precision)
    with warning_lines() as warned:
        path = export(adapter, output, config)
    try:
        report = verify_package(adapter, path, adapter.samples(samples), tolerances=_tolerances(atol, rtol))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the package {path} is written; it was not checked)") from None
    report.drawn = adapter.drawn()
    if as_json:
        echo_json({"package": str(path), "precision": precision, "target": target, "compress": compress, "report": report.to_dict(),
                   "warnings": warned})
    else:
        click.echo(f"package: {path} ({precision}, {target}" + (f", {compress}" if compress else "") + ")")
        _report_lines(report, path, model)
    if report.status != "passed":  # failed, or no check could run (the package stays: it converted)
        sys.exit(1)


@contextlib.contextmanager
def warning_lines():
    """The toolkit's warnings (a value the trace froze) as one ``warning: ...`` line each on
    stderr, not Python's display of the toolkit's source line; other warnings as they were.
    Yields the list of the toolkit's warning sentences, filled as they come (for ``--json``)."""
    from .errors import ConvertWarning, StateWarning, TraceWarning

    original = warnings.showwarning
    seen = []

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (TraceWarning, StateWarning, ConvertWarning)):
            seen.append(str(message))
            click.echo(f"warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", TraceWarning)
        warnings.showwarning = show
        yield seen


# -- export ----------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=InputPath(file_okay=False))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--target", type=TARGET_CHOICE, default="iOS16", show_default=True, help="Minimum deployment target.")
@click.option("--streaming", type=click.Choice(["explicit", "states"]), help="Carry the recurrent state between calls: as inputs/outputs (any target) or in Core ML states (iOS18+).")
@click.option("--max-chunk", type=click.IntRange(min=1), default=64, show_default=True, help="With --streaming: the longest chunk of steps one call takes.")
@click.option("--swift", "swift_dir", type=click.Path(file_okay=False, path_type=Path), help="Also write a Swift wrapper, golden vectors and an XCTest into this directory.")
@export_options
@json_option
def export(checkpoint, output, target, streaming, max_chunk, swift_dir, precision, author, license_, description, model_version, compress, as_json):
    """Export a checkpoint as a Core ML .mlpackage (raw inputs in, original units out).

    \b
    Example:
        coreml-lstm export runs/model models/model.mlpackage --precision fp16 --target iOS17
    """
    from .classify.adapter import is_classifier_checkpoint, refuse_streaming
    from .export import export as export_package

    if is_classifier_checkpoint(checkpoint):
        refuse_streaming(streaming)  # before the streaming options' own checks, which are a forecaster's
    config = _export_config(precision, target, author, license_, description, model_version, compress, streaming, max_chunk)
    adapter = _load_model(checkpoint, streaming=streaming, max_chunk=max_chunk)
    path = export_package(adapter, output, config)
    check = None
    if not is_classifier_checkpoint(checkpoint):
        from .verify import check_export

        check = check_export(adapter, path)
    swift_files = _write_swift(path, swift_dir, adapter) if swift_dir and (check is None or check.status != "failed") else []
    if as_json:
        echo_json({"package": str(path), "precision": precision, "target": target, "streaming": streaming, "compress": compress,
                   "swift": [str(p) for p in swift_files]} | ({"check": check.to_dict()} if check is not None else {}))
    else:
        click.echo(f"package: {path} ({precision}, {target}" + (f", {streaming} state" if streaming else "") + (f", {compress}" if compress else "") + ")")
        for p in swift_files:
            click.echo(f"swift: {p}" if p.suffix == ".swift" else f"golden: {p}")
    _check_lines(check, path)


def _write_swift(package, out_dir, adapter=None) -> list:
    """The wrapper, and with the model's adapter the golden vectors (checked here first) and the XCTest."""
    from .swift import write

    return write(package, out_dir, adapter)


@main.command(context_settings=CONTEXT)
@click.argument("package", type=InputPath(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for the Swift files.")
@click.option("--checkpoint", "model", type=InputPath(), help="The package's checkpoint or model file: also write golden vectors from PyTorch and an XCTest replaying them.")
def swift(package, out_dir, model):
    """Generate a typed Swift wrapper for an existing package (and, with its model, a test).

    \b
    Example:
        coreml-lstm swift models/sunspots.mlpackage --out ios/ --checkpoint runs/sunspots
        coreml-lstm swift models/har.mlpackage --out ios/ --checkpoint har.pt
    """
    for p in _write_swift(package, out_dir, _load_model(model, package=package) if model else None):
        click.echo(f"swift: {p}" if p.suffix == ".swift" else f"golden: {p}")


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=InputPath())
@click.option("--target", type=TARGET_CHOICE, default="iOS16", show_default=True, help="Minimum deployment target of every export.")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), help="Keep the packages in this directory.")
@json_option
def compare(checkpoint, target, keep, as_json):
    """Precision and size: export as fp32, fp16 and each compression, and compare.

    For each variant: size on disk, the largest error against PyTorch on the validation
    windows (through the executor), and the validation RMSE (classifiers: accuracy) next to
    PyTorch's.

    \b
    Example:
        coreml-lstm compare runs/sunspots --target iOS17
    """
    from .compare import compare_adapter, format_table, variants_for

    variants, left_out = variants_for(target)
    for sentence in left_out:
        click.echo(f"note: not compared: {sentence}", err=True)
    rows = compare_adapter(_load_model(checkpoint), keep, target=target, variants=variants)
    if as_json:
        echo_json([r.to_dict() for r in rows])
    else:
        click.echo(f"{checkpoint}, target {target}:")
        click.echo(format_table(rows))


# -- inspect ---------------------------------------------------------------------------------


def package_argument(f):
    return click.argument("package", type=InputPath())(f)


@main.command(context_settings=CONTEXT)
@package_argument
@json_option
def inspect(package, as_json):
    """Show a package's inputs, outputs, metadata, deployment target, op counts and size.

    \b
    Example:
        coreml-lstm inspect models/sunspots.mlpackage --json
    """
    from .inspect import describe, format_description

    d = describe(package)
    click.echo(json.dumps(d, indent=2) if as_json else format_description(d))


# -- verify ----------------------------------------------------------------------------------


def _tolerances(atol, rtol):
    from .verify import DEFAULT_TOLERANCES, Tolerance

    if atol is None and rtol is None:
        return None
    return {
        mode: Tolerance(atol=tol.atol if atol is None else atol, rtol=tol.rtol if rtol is None else rtol)
        for mode, tol in DEFAULT_TOLERANCES.items()
    }


def _feeds_samples(adapter, paths) -> list:
    """One sample per FEEDS file (.npz or .json of named arrays)."""
    from .runner import read_arrays

    samples = []
    for p in paths:
        try:
            samples.append(adapter.sample_of(read_arrays(p)))
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
    return samples


@main.command(context_settings=CONTEXT)
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.argument("package", required=False, type=InputPath())
@click.option("--manifest", type=InputPath(dir_okay=False), help="Verify every (model, package) pair of this CSV or JSON file instead (keys: checkpoint or model, package; optional name, csv, mode).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="With --manifest: pairs verified at once, each in a worker process.")
@click.option("--csv", type=click.Path(path_type=Path), help="Checkpoints: compare on the windows or samples of this table (default: the stored validation data; a forecaster's rows with empty cells left out).")
@click.option("--inputs", "feeds", multiple=True, type=click.Path(path_type=Path), help="Compare on these inputs (.npz or .json of named arrays, one call each; repeat).")
@click.option("--input", "inputs", multiple=True, metavar="NAME:SHAPE[:DTYPE[:LO..HI]]", help="Model files: an input's shape and value range for the random samples (default: the package's declared shapes).")
@click.option("--output", "outputs", multiple=True, metavar="NAME", help="Model files: every output's name, in the order the model returns them (repeat; default: the package's).")
@click.option("--samples", "--limit", "samples", type=click.IntRange(min=1), help="Compare on at most this many samples (checkpoints: validation windows or samples, default 64; model files: random draws, default 8).")
@click.option("--mode", type=click.Choice(["fp32", "fp16"]), help="Executor numerics (default: the package's precision; classifiers: both).")
@click.option("--atol", type=float, help="Absolute tolerance, in units of each output's scale: a forecast's window scale or training spread, another output's root mean square where below 1 (default per precision: fp32 1e-4; fp16, compressed weights or states 5e-2).")
@click.option("--rtol", type=float, help="Relative tolerance (default as --atol).")
@click.option("--chunk", type=click.IntRange(min=1), default=10, show_default=True, help="Streaming packages: steps per call.")
@click.option("--chunks", type=click.IntRange(min=1), default=3, show_default=True, help="Streaming packages: calls with the state carried, compared with one pass.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Also write the checks as JUnit XML here (one test case per output and check).")
@json_option
def verify(model, package, manifest, jobs, csv, feeds, inputs, outputs, samples, mode, atol, rtol, chunk, chunks, junit, as_json):
    """Check that a package computes what its PyTorch model computes.

    MODEL is the checkpoint the package was exported from, or a TorchScript archive / .pt2
    program. Both run on the same inputs (the checkpoint's validation data, --csv, --inputs, or
    random inputs inside every flexible range at the smallest, largest and in-between sizes) and
    the report gives, per output, input size and backend, the max absolute and relative error
    and the tolerance. The executor runs everywhere; Core ML runs on macOS and is reported as
    skipped elsewhere. Streaming packages are fed --chunks chunks of --chunk steps with the state
    carried and compared with one pass, and a reset with a fresh start. Exit 1 if any check
    fails, or if none could run.

    With --manifest, every pair of the file is verified (--jobs at a time), --junit holds one
    test suite per package, and a table sums up; exit 1 if any pair failed or could not run.

    \b
    Example:
        coreml-lstm verify runs/sunspots models/sunspots.mlpackage
        coreml-lstm verify har.pt models/har.mlpackage --samples 16 --junit reports/har.xml
        coreml-lstm verify --manifest fleet.csv --jobs 4 --junit reports/fleet.xml
    """
    from .verify import verify_package

    if manifest is not None:
        if model or package or csv or feeds or inputs or outputs:
            raise click.UsageError("--manifest: name the pairs (and their --csv) in the manifest, not as arguments")
        options = [o for name, value in (("--atol", atol), ("--rtol", rtol), ("--samples", samples)) if value is not None for o in (name, str(value))]
        options += ["--chunk", str(chunk), "--chunks", str(chunks)] + (["--mode", mode] if mode else [])
        _verify_fleet(manifest, jobs, tuple(options), junit, as_json)
        return
    if model is None or package is None:
        raise click.UsageError("give MODEL and PACKAGE, or --manifest FILE")

    adapter = _load_model(model, package=package, inputs=inputs, outputs=outputs, chunk=chunk, chunks=chunks)
    if feeds and csv:
        raise click.UsageError("--inputs and --csv: give one of them")
    if feeds:
        chosen = _feeds_samples(adapter, feeds)
    elif csv is not None:
        chosen = adapter.samples_from_table(csv, samples or 64)
    else:
        chosen = adapter.samples(samples) if samples else adapter.samples()
    report = verify_package(adapter, str(package), chosen, modes=(mode,) if mode else None, tolerances=_tolerances(atol, rtol))
    if not feeds and csv is None:
        report.drawn = adapter.drawn()
    _report_out(report, package, model, junit, as_json)


def _report_lines(report, package, model) -> None:
    from .errors import printable

    click.echo(f"verify {package} against {model} on {report.samples} samples" + (f" ({printable(report.drawn)})" if report.drawn else "") + ":")
    for check in report.checks:
        click.echo("  " + check.line())
    click.echo(f"result: {report.status}")


def _verify_fleet(manifest, jobs, options, junit, as_json) -> None:
    from .fleet import failed, format_table, read_manifest, run_fleet, to_junit
    from .fsutil import write_text

    entries = read_manifest(manifest)
    click.echo(f"verifying {len(entries)} packages, {jobs} at a time", err=True)
    results = run_fleet(entries, jobs=jobs, options=options, on_result=lambda r: click.echo(f"  {r.status.upper():<7} {r.entry.name}", err=True))
    if junit:
        write_text(junit, to_junit(results))
    if as_json:
        echo_json([r.to_dict() for r in results])
    else:
        click.echo(format_table(results))
    if failed(results):
        sys.exit(1)


def _report_out(report, package, checkpoint, junit, as_json) -> None:
    """A verify report to stdout (lines or JSON) and optionally JUnit XML; exit 1 if it failed."""
    from .fsutil import write_text
    from .verify import to_junit

    if junit:
        write_text(junit, to_junit(report))
    if as_json:
        echo_json(report.to_dict())
    else:
        _report_lines(report, package, checkpoint)
    if report.status != "passed":  # failed, or no check could run: never a pass
        sys.exit(1)


# -- diagnose --------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@package_argument
@click.option("--inputs", "feeds", multiple=True, type=click.Path(path_type=Path), help="Run on these inputs (.npz or .json of named arrays; repeat). Default: random inputs at the smallest, largest and an in-between size.")
@click.option("--atol", type=float, help="Absolute tolerance (default: the fp16 one, 5e-2).")
@click.option("--rtol", type=float, help="Relative tolerance (default: the fp16 one, 5e-2).")
@click.option("--limit", type=click.IntRange(min=1), default=5, show_default=True, help="How many departing ops to list.")
@json_option
def diagnose(package, feeds, atol, rtol, limit, as_json):
    """Where an fp16 package loses precision: the first ops whose fp16 value departs from fp32.

    Runs the program in fp32 and fp16 modes with every intermediate value kept and lists, in
    program order, the first ops whose outputs differ by more than the tolerance, with op type,
    name, shape and error: the layers to keep in fp32 (or to rescale).

    \b
    Example:
        coreml-lstm diagnose models/har-fp16.mlpackage --inputs feeds.npz
    """
    from .diagnose import diagnose as run_diagnosis
    from .runner import read_arrays

    runs = [read_arrays(p) for p in feeds] or None
    result = run_diagnosis(package, runs, atol=atol, rtol=rtol)
    if as_json:
        echo_json(result.to_dict(limit))
    else:
        for line in result.lines(limit):
            click.echo(line)


# -- predict ---------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@package_argument
@click.option("--csv", "csv_path", required=True, type=click.Path(path_type=Path), help="Table with the package's input columns.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the CSV here instead of stdout.")
@click.option("--last", is_flag=True, help="Only the forecast after the last window of each series.")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Classifiers: classes shown per sample.  [default: 3]")
@click.option("--missing", type=click.Choice(["error", "drop", "ffill"]), default="error", show_default=True,
              help="Forecasters: what to do with empty cells, as in train (drop their rows, or carry each series' last value forward).")
@click.option("--backend", type=click.Choice(["auto", "coreml", "executor"]), default="auto", show_default=True)
@click.option("--mode", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help="Executor numerics.")
@json_option
def predict(package, csv_path, out, last, top_k, missing, backend, mode, as_json):
    """Predict from a CSV with the columns (and window) the package records.

    Forecasters print predictions in original units (mixtures: mean, std and quantiles);
    classifiers print the label and the top-k classes with their probabilities.

    \b
    Example:
        coreml-lstm predict models/sunspots.mlpackage --csv recent.csv --last
        coreml-lstm predict models/motion.mlpackage --csv new.csv --top-k 3
    """
    from .adapter import for_package
    from .fsutil import write_text
    from .predict import records_json

    if out is not None and (out.endswith(("/", "\\")) or Path(out).is_dir()):
        raise click.UsageError(f"--out {out}: names a directory; give the CSV's file name ({Path(out) / 'forecasts.csv'})")
    out = Path(out) if out is not None else None
    frame, used, what, warnings = for_package(package).predict_table(package, csv_path, backend=backend, mode=mode, last=last,
                                                                      top_k=top_k, missing=missing)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{len(frame)} {what} through {used}", err=True)
    text = records_json(frame) if as_json else frame.to_csv(index=False)
    if out is not None:
        write_text(out, text)
    else:
        click.echo(text, nl=not text.endswith("\n"))


# -- run -------------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@package_argument
@click.option("--inputs", "inputs_path", required=True, type=click.Path(path_type=Path), help=".npz or .json of named input arrays.")
@click.option("--outputs", "outputs_path", type=click.Path(dir_okay=False, path_type=Path), help="Write outputs (.npz or .json); default: a summary on stdout.")
@click.option("--backend", type=click.Choice(["auto", "coreml", "executor"]), default="auto", show_default=True)
@click.option("--mode", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help="Executor numerics.")
@click.option("--intermediate", is_flag=True, help="Write every named value of the program (executor only).")
@click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path), help="Stateful models: state file (.npz/.json) read if it exists (else a zero state), written back after the call.")
@json_option
def run(package, inputs_path, outputs_path, backend, mode, intermediate, state_path, as_json):
    """Run any ML Program on named arrays; the tool for debugging a parity failure.

    \b
    Example:
        coreml-lstm run model.mlpackage --inputs feeds.npz --outputs out.npz --intermediate
    """
    import numpy as np

    from .runner import Backend, cast_feeds, read_arrays, write_arrays

    runner = Backend(package, backend, mode)
    feeds = cast_feeds(runner.program, read_arrays(inputs_path))
    # A stateful model without --state starts from a fresh (zero) state and forgets it afterwards.
    state = runner.make_state() if runner.program.states else None
    if state_path is not None:
        if not runner.program.states:
            raise click.UsageError(f"--state: {package} has no states")
        state = runner.make_state()
        if state_path.exists():
            given = read_arrays(state_path, "state")
            for name, value in given.items():
                if name not in state:
                    raise click.UsageError(f"--state: {state_path} has {name!r}; the model's states are {', '.join(sorted(state))}")
                if value.shape != state[name].shape:
                    raise click.UsageError(f"--state: {name!r} has shape {value.shape}, the model needs {state[name].shape}")
                state[name][...] = value
    results = runner.predict(feeds, state=state, intermediate=intermediate)
    if state_path is not None:
        write_arrays(state_path, state)
    if outputs_path is not None:
        write_arrays(outputs_path, results)
    summary = {name: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for name, v in results.items()}
    if as_json:
        echo_json({"backend": runner.name, "mode": mode, "outputs": summary})
    else:
        click.echo(f"ran {package} through {runner.name} ({mode}):")
        for name, s in summary.items():
            click.echo(f"  {name:<24} {s['dtype']:<8} {tuple(s['shape'])}")


# -- plot ------------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=InputPath(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Directory for the PNGs (default: the checkpoint).")
@click.option("--backtest", "backtest_csv", type=InputPath(dir_okay=False), help="Also backtest.png: the forecasts from the last --origins origins of this table against the truth.")
@click.option("--origins", type=click.IntRange(min=1), default=5, show_default=True, help="With --backtest: origins per series.")
def plot(checkpoint, out, backtest_csv, origins):
    """Save forecast.png (validation series, predicted mean, 50% / 90% bands) and training.png.

    \b
    Example:
        coreml-lstm plot runs/sunspots
        coreml-lstm plot runs/sales --backtest sales.csv --origins 8
    """
    from .checkpoint import Checkpoint
    from .plot import plot_checkpoint

    ckpt = Checkpoint.load(checkpoint)
    if ckpt.validation_x is None or ckpt.validation_y is None:
        raise click.UsageError(f"{checkpoint} holds no validation windows to plot")
    for path in plot_checkpoint(ckpt, out or checkpoint):
        click.echo(str(path))
    if backtest_csv is not None:
        from .api import Forecaster

        result = Forecaster.load(checkpoint).backtest(backtest_csv, origins=origins)
        click.echo(str(result.plot(Path(out or checkpoint) / "backtest.png")))


# -- backtest --------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=InputPath(file_okay=False))
@click.argument("csv", type=InputPath(dir_okay=False))
@click.option("--origins", type=click.IntRange(min=1), default=5, show_default=True, help="Forecast origins per series (the last ones).")
@click.option("--step", type=click.IntRange(min=1), help="Rows between origins (default: the horizon).")
@click.option("--refit", is_flag=True, help="Train a fresh model (same settings) on the rows before each origin.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG of the forecasts against the truth.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar while refitting.")
@click.option("--missing", type=click.Choice(["error", "drop", "ffill"]), help="What to do with empty cells (default: as in training).")
@json_option
def backtest(checkpoint, csv, origins, step, refit, plot_path, quiet, missing, as_json):
    """Rolling-origin evaluation: forecast the horizon at once from each of the last origins.

    Each origin's forecast comes from the window before it, as the package computes it, next to
    naive and seasonal naive from the same history; MASE is scaled by the in-sample
    seasonal-naive MAE before the first origin. Without --refit the checkpoint's model is used
    as it is: give a table whose last rows it was not trained on.

    \b
    Example:
        coreml-lstm backtest runs/sales sales.csv --origins 8 --plot runs/sales/backtest.png
        coreml-lstm backtest runs/sales sales.csv --refit --json
    """
    from .api import Forecaster

    result = Forecaster.load(checkpoint).backtest(csv, origins=origins, step=step, refit=refit, progress=not quiet, missing=missing)
    if plot_path is not None:
        result.plot(plot_path)
    for warning in result.warnings + [result.summary()["warning"]]:
        if warning:
            click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(result.to_dict() | ({"plot": str(plot_path)} if plot_path else {}))
        return
    click.echo(result.table())
    if plot_path is not None:
        click.echo(f"plot: {plot_path}")


# -- demo ------------------------------------------------------------------------------------


@main.command(context_settings=CONTEXT)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/sunspots"), show_default=True, help="Checkpoint directory.")
@click.option("--package", "package_path", type=click.Path(path_type=Path), default=Path("models/sunspots.mlpackage"), show_default=True)
@click.option("--swift", "swift_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("models/swift"), show_default=True, help="Swift wrapper, golden vectors and XCTest.")
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo(out, package_path, swift_dir, epochs, quiet):
    """The whole job on the embedded sunspots data: train, export, verify, predict.

    \b
    Example:
        coreml-lstm demo
    """
    from .api import Forecaster
    from .datasets import DEFAULT, load_sunspots
    from .predict import predict_table
    from .verify import verify_package

    table = load_sunspots()
    click.echo(f"1/4 train: 2-layer LSTM on the embedded {DEFAULT['name']} data ({len(table)} rows, {table[DEFAULT['time']].min()}-{table[DEFAULT['time']].max()})", err=True)
    f = Forecaster(DEFAULT["target"], time=DEFAULT["time"], window=24, hidden_size=64, epochs=epochs, progress=not quiet).fit(table)
    f.save(out)
    click.echo("validation metrics (original units):")
    click.echo(format_metrics(f.metrics_))
    _echo_baselines(f.metrics_)
    for warning in f.metrics_.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"2/4 export: {package_path} (fp32, iOS16) and Swift in {swift_dir}", err=True)
    f.export(package_path, description="LSTM forecaster of the yearly sunspot number from the previous 24 years.")
    adapter = _load_model(out, package=package_path)
    swift_files = _write_swift(package_path, swift_dir, adapter)
    click.echo("3/4 verify: executor vs PyTorch on the validation windows", err=True)
    report = verify_package(adapter, str(package_path), adapter.samples(len(adapter.checkpoint.validation_x)))
    for check in report.checks:
        click.echo("  " + check.line())
    click.echo("4/4 predict: the next year from the last 24 through the package", err=True)
    frame = predict_table(package_path, table, last_only=True).frame
    click.echo(frame.to_string(index=False))
    click.echo(f"checkpoint: {out}\npackage: {package_path}\nswift: {', '.join(str(p) for p in swift_files)}\nparity: {report.status}")
    if report.status == "failed":
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
