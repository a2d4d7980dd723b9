"""Checkpoint -> Core ML ML Program (.mlpackage), written atomically.

The package takes raw feature values and returns predictions in original units (normalisation
is traced into the graph), with fp32 inputs and outputs always (never the converter's silent
fp16 I/O) and the compute precision chosen separately.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from ._coremltools import coremltools, no_converter_progress
from .errors import ConfigError, ExportError
from .fsutil import atomic_path

PRECISIONS = ("fp32", "fp16")
TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")
# Deployment target -> the iOS release with the same ML Program opset.
OPSET_TARGET = {"macOS12": "iOS15", "macOS13": "iOS16", "macOS14": "iOS17", "macOS15": "iOS18"}

# Weight compression (coremltools.optimize.coreml), applied to the converted program.
COMPRESSIONS = ("int8", "palettize6", "palettize4", "prune50")

INPUT_NAME, OUTPUT_NAME = "window", "forecast"
METADATA_PREFIX = "coreml_lstm."


@dataclass
class ExportConfig:
    precision: str = "fp32"  # compute precision; I/O stays fp32 either way
    target: str = "iOS16"  # minimum deployment target
    author: str = ""
    license: str = ""
    description: str = ""
    version: str = ""
    streaming: str | None = None  # None: window in, forecast out; "explicit" | "states": see streaming.py
    max_chunk: int = 64  # streaming: the longest chunk one call takes (Core ML needs a finite bound)
    compress: str | None = None  # None or one of COMPRESSIONS

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.target not in TARGETS:
            raise ConfigError(f"target: {self.target!r} is not one of {', '.join(TARGETS)}")
        if self.streaming not in (None, "explicit", "states"):
            raise ConfigError(f"streaming: {self.streaming!r} is not one of explicit, states")
        if self.streaming == "states" and OPSET_TARGET.get(self.target, self.target) != "iOS18":
            raise ConfigError(f"streaming states: Core ML states need deployment target iOS18 or macOS15; got {self.target} (use --streaming explicit for earlier targets)")
        if self.compress not in (None, *COMPRESSIONS):
            raise ConfigError(f"compress: {self.compress!r} is not one of {', '.join(COMPRESSIONS)}")
        if not isinstance(self.max_chunk, int) or self.max_chunk < 1:
            raise ConfigError(f"max_chunk: must be an integer >= 1, got {self.max_chunk!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def check_destination(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ConfigError(f"{path}: the output path must end in .mlpackage")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a package directory")
    return path


def trace(module: torch.nn.Module, example):
    """TorchScript trace in eval mode (``example``: a tensor or a tuple of them)."""
    with warnings.catch_warnings():
        # TorchScript warns that an RNN traced in eval mode ignores dropout, and that nn.RNN's
        # shape checks become constants: both intended, the shapes come from the export.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*dropout.*")
        return torch.jit.trace(module.eval(), example, check_trace=False)


# Layers Core ML cannot take, found before tracing: the message says what to use instead.
def _unsupported(module: torch.nn.Module) -> str | None:
    if isinstance(module, torch.nn.LSTM) and module.proj_size:
        return "nn.LSTM with proj_size > 0 has no Core ML lstm equivalent; use proj_size=0 and an nn.Linear after the LSTM"
    if isinstance(module, torch.nn.RNN) and not isinstance(module, (torch.nn.LSTM, torch.nn.GRU)) and module.bidirectional:
        return "bidirectional nn.RNN does not convert; use a bidirectional nn.GRU or nn.LSTM, or two nn.RNN (one on the reversed sequence)"
    if isinstance(module, (torch.nn.LSTMCell, torch.nn.GRUCell, torch.nn.RNNCell)):
        kind = type(module).__name__
        return f"nn.{kind} does not convert under TorchScript; use nn.{kind[:-4]} (a one-layer {kind[:-4]} over the sequence, or over one step for streaming)"
    return None


def preflight(module: torch.nn.Module) -> None:
    """Raise ExportError naming the first layer Core ML cannot take, and what to use instead."""
    for name, sub in module.named_modules():
        problem = _unsupported(sub)
        if problem:
            raise ExportError(f"layer {name or type(module).__name__!r}: {problem}")


def compress(mlmodel, method: str):
    """Compress the weights of a converted program with coremltools.optimize.coreml.

    int8: linear symmetric per-channel quantization; palettize6 / palettize4: a uniform
    6- / 4-bit look-up table per weight; prune50: magnitude pruning to 50% sparsity. Every weight
    with at least 16 elements is compressed (coremltools' default skips small tensors, which
    would leave a small recurrent model uncompressed).
    """
    from coremltools.optimize import coreml as cto

    if method not in COMPRESSIONS:
        raise ConfigError(f"compress: {method!r} is not one of {', '.join(COMPRESSIONS)}")
    threshold = 16
    if method == "int8":
        op, run = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=threshold), cto.linear_quantize_weights
    elif method.startswith("palettize"):
        op, run = cto.OpPalettizerConfig(mode="uniform", nbits=int(method[len("palettize") :]), weight_threshold=threshold), cto.palettize_weights
    else:
        op, run = cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=threshold), cto.prune_weights
    # coremltools divides by a zero range for all-zero channels (then handles the NaN itself):
    # its numpy warning says nothing about the user's model.
    with no_converter_progress(), np.errstate(divide="ignore", invalid="ignore"):
        return run(mlmodel, cto.OptimizationConfig(global_config=op))


def convert(module, inputs, outputs, config: ExportConfig, *, states=None, shapes=None):
    """Trace ``module`` on example tensors and convert it to an ML Program in memory.

    Args:
        module: a torch module in eval mode.
        inputs: list of ``(name, example_tensor, description)``; dtypes are taken from the tensors.
        outputs: list of ``(name, description)``.
        config: precision and deployment target.
        states: optional list of ``ct.StateType`` for iOS18 stateful models.
        shapes: optional ``{input name: coremltools shape}`` (e.g. with a RangeDim) overriding the example's.

    Returns:
        A ``coremltools.models.MLModel`` (not yet saved).
    """
    ct = coremltools()
    preflight(module)
    examples = tuple(t for _, t, _ in inputs)
    traced = trace(module, examples if len(examples) > 1 else examples[0])
    shapes = shapes or {}
    tensor_inputs = [
        ct.TensorType(name=name, shape=shapes.get(name, tuple(t.shape)), dtype=np.int32 if not t.is_floating_point() else np.float32)
        for name, t, _ in inputs
    ]
    tensor_outputs = [ct.TensorType(name=name, dtype=np.float32) for name, _ in outputs]
    precision = ct.precision.FLOAT32 if config.precision == "fp32" else ct.precision.FLOAT16
    try:
        with no_converter_progress():
            mlmodel = ct.convert(
                traced,
                inputs=tensor_inputs,
                outputs=tensor_outputs,
                states=states,
                convert_to="mlprogram",
                compute_precision=precision,
                minimum_deployment_target=getattr(ct.target, config.target),
            )
        if config.compress:
            mlmodel = compress(mlmodel, config.compress)
    except (ExportError, ConfigError):
        raise
    except Exception as exc:
        raise ExportError(f"conversion failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    spec_inputs = {name: desc for name, _, desc in inputs}
    spec_outputs = dict(outputs)
    for name, desc in spec_inputs.items():
        mlmodel.input_description[name] = desc
    for name, desc in spec_outputs.items():
        mlmodel.output_description[name] = desc
    return mlmodel


def set_metadata(mlmodel, config: ExportConfig, user: dict) -> None:
    """Author, license, description, version and the toolkit's user-defined metadata (JSON values)."""
    mlmodel.author = config.author or "coreml-lstm"
    mlmodel.license = config.license or "unspecified"
    mlmodel.short_description = config.description
    mlmodel.version = config.version or __version__
    entries = {"toolkit_version": __version__, **user}
    for key, value in entries.items():
        mlmodel.user_defined_metadata[METADATA_PREFIX + key] = value if isinstance(value, str) else json.dumps(value)


def read_metadata(user_defined: dict) -> dict:
    """The toolkit's entries of a package's user-defined metadata, JSON-decoded."""
    out = {}
    for key, value in user_defined.items():
        if key.startswith(METADATA_PREFIX):
            try:
                out[key[len(METADATA_PREFIX) :]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(METADATA_PREFIX) :]] = value
    return out


def save(mlmodel, path: str | Path) -> Path:
    """Save atomically: a failed or interrupted save leaves nothing at ``path``."""
    path = check_destination(path)
    with atomic_path(path) as tmp:
        try:
            mlmodel.save(str(tmp))
        except Exception as exc:
            raise ExportError(f"{path}: saving the package failed: {exc}") from exc
    return path


def export_checkpoint(checkpoint, path: str | Path, config: ExportConfig | None = None) -> Path:
    """Export a forecaster checkpoint as an .mlpackage taking raw inputs and returning raw predictions.

    Args:
        checkpoint: a :class:`coreml_lstm.checkpoint.Checkpoint`.
        path: destination ending in ``.mlpackage``.
        config: precision, target and descriptive metadata.

    Returns:
        The path written.
    """
    config = config or ExportConfig()
    path = check_destination(path)
    if config.streaming:
        return _export_streaming(checkpoint, path, config)
    model = checkpoint.build_model()
    window, horizon = checkpoint.window, checkpoint.horizon
    n_inputs = len(checkpoint.input_columns)
    example = torch.as_tensor(
        np.broadcast_to(checkpoint.normalizer.input_mean, (1, window, n_inputs)).copy(), dtype=torch.float32
    )  # (1, W, F)
    cols = ", ".join(checkpoint.input_columns)
    targets = ", ".join(checkpoint.target_columns)
    mlmodel = convert(
        model,
        inputs=[(INPUT_NAME, example, f"The last {window} rows of [{cols}] in raw units, oldest first; shape (1, {window}, {n_inputs}).")],
        outputs=_output_specs(checkpoint, model),
        config=config,
    )
    if not config.description:
        config = ExportConfig(**{**config.to_dict(), "description": f"{checkpoint.model_config.cell.upper()} forecaster of {targets} ({checkpoint.model_config.num_layers} layers, hidden {checkpoint.model_config.hidden_size}) from a {window}-step window."})
    set_metadata(mlmodel, config, _user_metadata(checkpoint, config))
    return save(mlmodel, path)


def _user_metadata(checkpoint, config: ExportConfig) -> dict:
    return {
            "task": "forecast",
            "head": checkpoint.model_config.head,
            "input_columns": checkpoint.input_columns,
            "target_columns": checkpoint.target_columns,
            "time_column": checkpoint.data_config.time,
            "series_id_column": checkpoint.data_config.series_id,
            "window": checkpoint.window,
            "horizon": checkpoint.horizon,
            "normalizer": checkpoint.normalizer.to_dict(),
            "scaling": checkpoint.model_config.scaling,
            "log": checkpoint.model_config.log,
            "season": checkpoint.data_config.season,
            "model": checkpoint.model_config.to_dict(),
            "precision": config.precision,
            "validation_metrics": (checkpoint.metrics or {}).get("overall"),
            "probabilistic_metrics": ((checkpoint.metrics or {}).get("probabilistic") or {}).get("overall"),
            "baseline_metrics": _baseline_summary(checkpoint.metrics),
            "streaming": config.streaming,
            "compression": config.compress,
            "max_chunk": config.max_chunk if config.streaming else None,
        }


def _baseline_summary(metrics) -> dict | None:
    """Validation MASE of the model and the baselines, the skill and any warning (or None)."""
    report = (metrics or {}).get("vs_baselines")
    if not report:
        return None
    return {"season": report["season"], "mase": report["mase"], "skill": report["skill"], "warning": report["warning"],
            **{f"{name}_mase": b["mase"] for name, b in report["baselines"].items()}}


def _output_specs(checkpoint, model) -> list[tuple[str, str]]:
    """(name, description) of the model's outputs in original units."""
    h, t, k = checkpoint.horizon, len(checkpoint.target_columns), checkpoint.model_config.mixtures
    targets = ", ".join(checkpoint.target_columns)
    if checkpoint.model_config.head == "point":
        return [(OUTPUT_NAME, f"Predictions of [{targets}] for the next {h} step(s) in original units; shape (1, {h}, {t}).")]
    dist = f"(1, {h}, {t}, {k}): per step and target, {k} Gaussian components"
    return [
        ("weights", f"Mixture weights, summing to 1 over the last axis; {dist}."),
        ("means", f"Component means in original units; {dist}."),
        ("scales", f"Component standard deviations in original units; {dist}."),
        ("prediction", f"Mixture mean of [{targets}] in original units; shape (1, {h}, {t})."),
        ("variance", f"Mixture variance in squared original units; shape (1, {h}, {t})."),
    ]


def _export_streaming(checkpoint, path: Path, config: ExportConfig) -> Path:
    """A chunk of steps in, the forecast from its last step out, the recurrent state carried."""
    from .streaming import state_description, state_names, state_shape, wrap

    ct = coremltools()
    model = checkpoint.build_model()
    module = wrap(model, config.streaming)
    n_inputs = len(checkpoint.input_columns)
    chunk = min(config.max_chunk, checkpoint.window)
    example = torch.as_tensor(np.broadcast_to(checkpoint.normalizer.input_mean, (1, chunk, n_inputs)).copy(), dtype=torch.float32)
    cols = ", ".join(checkpoint.input_columns)
    inputs = [("x", example, f"The next 1 to {config.max_chunk} rows of [{cols}] in raw units, oldest first; shape (1, L, {n_inputs}).")]
    shape = state_shape(model)
    names = state_names(model)
    outputs = _output_specs(checkpoint, model)
    states = None
    if config.streaming == "explicit":
        for n in names:
            inputs.append((f"{n}_in", torch.zeros(shape), f"{state_description(n)} from the previous call's {n}_out (zeros to start a stream); shape {shape}."))
        outputs += [(f"{n}_out", f"{state_description(n)} after this chunk: pass it as {n}_in next call; shape {shape}.") for n in names]
    else:
        states = [ct.StateType(wrapped_type=ct.TensorType(shape=shape, dtype=np.float16), name=f"{n}_state") for n in names]
    saved = {k: v.clone() for k, v in module.named_buffers()}
    seq_dim = ct.RangeDim(lower_bound=1, upper_bound=config.max_chunk, default=chunk)
    mlmodel = convert(module, inputs, outputs, config, states=states, shapes={"x": ct.Shape((1, seq_dim, n_inputs))})
    for k, v in saved.items():  # tracing ran forward once; the stored module keeps zero state
        dict(module.named_buffers())[k].copy_(v)
    if not config.description:
        config = ExportConfig(**{**config.to_dict(), "description": f"Streaming {checkpoint.model_config.cell.upper()} forecaster of {', '.join(checkpoint.target_columns)} ({config.streaming} state)."})
    set_metadata(mlmodel, config, _user_metadata(checkpoint, config))
    return save(mlmodel, path)
