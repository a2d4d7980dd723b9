"""The forecaster as an :class:`~coreml_lstm.adapter.Adapter`: a checkpoint and its export style.

window     ``window`` (B, W, F) raw rows in, B = 1 to MAX_BATCH windows a call, the forecast out
           (one or five outputs, batch first).
explicit   a chunk ``x`` (1, 1..max_chunk, F) plus ``h_in`` (and ``c_in``) in, the outputs plus
           ``h_out`` (``c_out``) out; the state is carried from call to call.
states     iOS18+: ``x`` in, the state in Core ML states ``h_state`` (``c_state``).

Samples are the checkpoint's validation windows, one a call, then all of them in one call and
MAX_BATCH of them (cycled) in one call, the ends of the batch range; streaming packages are fed ``chunks`` chunks
of ``chunk`` consecutive rows with the state carried, compared with one torch pass over the same
rows, and the last chunk alone (a reset) compared with a fresh start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .adapter import Adapter, Dim, Evaluation, Input, Output, Sample, State
from .errors import ConfigError
from .metadata import INPUT_NAME, MAX_BATCH, OUTPUT_NAME


class ForecasterAdapter(Adapter):
    kind = "forecast"

    @property
    def fp32_scopes(self) -> tuple[str, ...]:
        """The frame, its inverse, a mixture's stretch and a stream's window rows: the ops on raw
        values (and the stretch, on frame values a tiny frame scale makes large)."""
        scopes = ("raw_in", "raw_out") + (("raw_variance", "stretch") if self.model.config.head == "mixture" else ())
        if self.streaming and self.model.windowed:
            scopes += ("raw_window",) + (("raw_join", "raw_scale", "raw_remainder") if self.streaming == "states" else ())
        return scopes

    def __init__(self, checkpoint, *, streaming: str | None = None, max_chunk: int = 64, chunk: int = 10, chunks: int = 3):
        from .streaming import state_description, state_names, state_shape

        self.checkpoint = ckpt = checkpoint
        self.streaming, self.max_chunk, self.chunk, self.chunks = streaming, max_chunk, chunk, chunks
        self.model = ckpt.build_model()
        self._module = self.model if not streaming else None
        n = len(ckpt.input_columns)
        cols = ", ".join(ckpt.input_columns)
        self.outputs = [Output(name, text) for name, text in _output_specs(ckpt, "1" if streaming else "B")]
        cfg = ckpt.model_config
        targets = ", ".join(ckpt.target_columns)
        if not streaming:
            w = ckpt.window
            self.inputs = [Input(INPUT_NAME, (Dim(1, MAX_BATCH, default=1), w, n), default=(1, w, n),
                                 description=f"B windows (1 to {MAX_BATCH}) of the last {w} rows of [{cols}] in raw units, oldest first; shape (B, {w}, {n}).")]
            self.description = (f"{cfg.cell.upper()} forecaster of {targets} ({cfg.num_layers} layers, hidden {cfg.hidden_size}) "
                                f"from a {w}-step window.")
            return
        length = min(max_chunk, ckpt.window)
        self.inputs = [Input("x", (1, Dim(1, max_chunk, default=length), n), default=(1, length, n),
                             description=f"The next 1 to {max_chunk} rows of [{cols}] in raw units, oldest first; shape (1, L, {n}).")]
        shape, names = state_shape(self.model, streaming), state_names(self.model)
        if streaming == "explicit":
            for s in names:
                self.inputs.append(Input(f"{s}_in", shape, description=f"{state_description(s)} from the previous call's {s}_out (zeros to start a stream); shape {shape}."))
            self.outputs += [Output(f"{s}_out", f"{state_description(s)} after this chunk: pass it as {s}_in next call; shape {shape}.") for s in names]
            self.carry = {f"{s}_out": f"{s}_in" for s in names}
        else:
            self.states = [State(f"{s}_state", shape) for s in names]
        self.description = f"Streaming {cfg.cell.upper()} forecaster of {targets} ({streaming} state)."

    @classmethod
    def load(cls, directory, *, package=None, chunk: int = 10, chunks: int = 3, streaming: str | None = None, max_chunk: int = 64, **_):
        """The adapter for a checkpoint directory: in the style ``package`` was exported in, else
        in the ``streaming`` style given (None: a window in, a forecast out)."""
        from .checkpoint import Checkpoint

        ckpt = Checkpoint.load(directory)
        if package is None:
            return cls(ckpt, streaming=streaming, max_chunk=max_chunk, chunk=chunk, chunks=chunks)
        return cls.load_for(ckpt, package, chunk=chunk, chunks=chunks)

    @classmethod
    def load_for(cls, checkpoint, package=None, *, chunk: int = 10, chunks: int = 3):
        """The adapter of a checkpoint in the export style ``package`` records (none: a window model)."""
        from .metadata import read_metadata

        streaming, max_chunk = None, 64
        if package is not None:
            from . import executor

            meta = read_metadata(executor.load(package).metadata.get("user", {}), package)
            streaming, max_chunk = meta.get("streaming"), meta.get("max_chunk") or 64
        return cls(checkpoint, streaming=streaming, max_chunk=int(max_chunk), chunk=chunk, chunks=chunks)

    @classmethod
    def for_model(cls, model, package, *, chunk: int = 10, chunks: int = 3):
        """The adapter of a package exported from ``model`` (a RecurrentModel), its features read from the package."""
        from . import executor
        from .metadata import read_metadata

        program = executor.load(package)
        meta = read_metadata(program.metadata.get("user", {}), package)
        names = {t.name for t in program.inputs}
        self = cls.__new__(cls)
        self.checkpoint, self.model, self._module = None, model.eval(), None
        self.checked_metadata = ()  # no checkpoint to hold the package's entries to
        self.streaming = meta.get("streaming") or ("states" if program.states else "explicit" if "h_in" in names else None)
        self.max_chunk, self.chunk, self.chunks = int(meta.get("max_chunk") or 64), chunk, chunks
        self.inputs = [Input.from_spec(t) for t in program.inputs]
        self.outputs = [Output(t.name) for t in program.outputs]
        self.states = [State(t.name, tuple(t.shape)) for t in program.states]
        self.carry = {f"{n[:-3]}_out": n for n in names if n.endswith("_in")}
        if not self.streaming:
            self._module = self.model
        return self

    def output_units(self) -> dict[str, np.ndarray]:
        """Outputs in raw units are held to the tolerance in units of the training spread of each
        target (its standard deviation; with log scaling, level x the log's deviation), a
        variance in that squared, a stream's window in each column's; weights and recurrent
        states get verify's default (their root mean square, at most 1). With window scaling
        :meth:`sample_units` gives each window's own scale instead. Window scaling is equivariant: a series times 1000 gives
        forecasts times 1000 and, in fp16, errors times 1000."""
        m = self.model
        T = m.n_targets
        std, mean = m.target_std.detach().double().numpy(), m.target_mean.detach().double().numpy()
        target = np.exp(mean) * std if m.config.log else std  # (T,)
        target = np.where(np.isfinite(target) & (target > 0), target, 1.0)
        columns = np.concatenate([target, m.input_std.detach().double().numpy()[T:], [1.0]])  # (F + 1,): a window row and its flag
        units = {"forecast": target, "prediction": target, "variance": target**2,
                 "means": target[:, None], "scales": target[:, None], "window_out": columns}
        return {o.name: units[o.name] for o in self.outputs if o.name in units}

    def sample_units(self, sample) -> dict[str, np.ndarray]:
        """With window scaling, each window's own scale (the mean absolute deviation of its
        target values about the last, plus the floor: what the network's output is multiplied
        by), per window and target: a table of stores near 5e4 and near 5 pooled one spread of
        ~2e4, and the package of another model passed on the small store at 18% off."""
        m = self.model
        if not m.windowed:
            return {}
        if self.streaming:
            # The last call's forecast is of the stream's last window rows; rows a stream shorter
            # than a window has not fed count as copies of its first (as the package keeps them).
            rows = np.concatenate([np.asarray(c["x"], np.float64)[0] for c in sample.calls])
            w = int(m.window)
            if len(rows) < w:
                rows = np.concatenate([np.repeat(rows[:1], w - len(rows), axis=0), rows])
            x = rows[-w:][None]
        else:
            x = np.asarray(sample.calls[-1][INPUT_NAME], np.float64)
        import torch

        with torch.no_grad():  # the model's own frame (RawIn), in float64
            stats = [b.detach().double() for b in (m.input_mean, m.input_std, m.target_mean, m.target_std, m.target_floor)]
            _, level, scale = (t.numpy() for t in m.raw_in(torch.as_tensor(x, dtype=torch.float64), *stats))
        if m.config.log:  # exp(level + scale * z): an error dz moves the output by ~ exp(level) * scale * dz
            scale = np.exp(level) * scale
        units = {"forecast": scale, "prediction": scale, "variance": scale**2, "means": scale[..., None], "scales": scale[..., None]}
        return {o.name: units[o.name] for o in self.outputs if o.name in units}

    def module(self):
        if self._module is None:
            from .streaming import wrap

            x = self.checkpoint.validation_x if self.checkpoint is not None else None
            peaks = None  # only a Core ML window state is scaled by powers of two
            if self.streaming == "states" and self.model.windowed and x is not None and len(x):
                peaks = np.abs(np.asarray(x, np.float64)).max(axis=(0, 1))
            self._module = wrap(self.model, self.streaming, peaks)
        return self._module

    def examples(self):
        import torch

        ckpt = self.checkpoint
        mean = np.asarray(ckpt.normalizer.input_mean, np.float32)
        shape = self.inputs[0].default_shape()
        x = torch.as_tensor(np.broadcast_to(mean, shape).copy())  # (1, W or L, F)
        return (x, *(torch.zeros(i.shape) for i in self.inputs[1:]))

    # -- samples ------------------------------------------------------------------------------

    def _windows(self) -> np.ndarray:
        x = self.checkpoint.validation_x
        if x is None or not len(x):
            raise ConfigError("the checkpoint holds no validation windows; give --csv")
        return x

    def samples(self, n: int = 64, seed: int = 0) -> list[Sample]:
        return self.samples_from_windows(self._windows(), n)

    def drawn(self) -> str:
        return "the checkpoint's validation windows"

    def golden_samples(self, calls: int) -> list[Sample]:
        """:meth:`samples` but the full batch (MAX_BATCH windows would swell an app's test bundle)."""
        return [s for s in self.samples(calls) if s.label != f"batch {MAX_BATCH}"]

    def samples_from_table(self, table, limit: int = 64) -> list[Sample]:
        """Windows of a table (``verify --csv``); rows with empty cells are left out: any
        complete windows compare the package with torch."""
        import dataclasses

        from .data import prediction_windows

        config = dataclasses.replace(self.checkpoint.data_config, missing="drop")
        x = prediction_windows(table, config, self.checkpoint.input_columns).x
        return self.samples_from_windows(x, limit)

    def samples_from_windows(self, x: np.ndarray, limit: int = 64, batches: bool = True) -> list[Sample]:
        """One sample a window (``limit`` of them, spread over all), and with ``batches`` those windows in one
        call and as many as the package takes (cycled) in one call, where it takes a batch."""
        if not self.streaming:
            # Spread over every window (every series), not the last series' last ones.
            x = np.asarray(x[np.unique(np.linspace(0, len(x) - 1, min(limit, len(x))).round().astype(int))] if len(x) else x, np.float32)
            samples = [Sample.one({INPUT_NAME: x[i : i + 1]}) for i in range(len(x))]
            batch = self.inputs[0].shape[0]
            if batches and isinstance(batch, Dim) and len(x):
                sizes = sorted({min(len(x), batch.hi), batch.hi} - {1})
                samples += [Sample.one({INPUT_NAME: np.resize(x, (b, *x.shape[1:]))}, f"batch {b}") for b in sizes]
            return samples
        from .streaming import consecutive_rows

        rows = consecutive_rows(x)
        if len(rows) < 2:
            raise ConfigError(f"a stream check needs at least 2 consecutive rows (2 calls of 1 step); the windows give {len(rows)}")
        chunk, chunks = self.chunk, self.chunks
        if len(rows) < chunk * chunks:
            # A short series: shorter chunks (the sample's label says which), at least 2 of them.
            chunks = min(chunks, len(rows))
            chunk = len(rows) // chunks
        return self.stream_samples(rows[-chunk * chunks :], chunk)

    def stream_samples(self, sequence: np.ndarray, chunk: int | None = None) -> list[Sample]:
        """A sequence (L, F) in chunks (default ``self.chunk`` steps) with the state carried, each
        of its shorter prefixes (the first k chunks: a stream not yet a window long, whose rows not
        fed count as copies of the first) the same way, and its last chunk after a reset. A few
        calls of a small model each, and each another window the package must agree on."""
        sequence = np.asarray(sequence, np.float32)
        chunk = chunk or self.chunk
        parts = [sequence[i : i + chunk] for i in range(0, len(sequence), chunk)]
        start = {i.name: np.zeros(i.shape, np.float32) for i in self.inputs[1:]}

        def calls(chunks):
            return [{"x": c[None], **(start if k == 0 else {})} for k, c in enumerate(chunks)]

        prefixes = [Sample(calls(parts[:k]), f"first {k} of {len(parts)}x{chunk} vs one pass") for k in range(1, len(parts))]
        return [Sample(calls(parts), f"{len(parts)}x{chunk} vs one pass"), *prefixes, Sample(calls(parts[-1:]), "reset vs fresh start")]

    def reference(self, sample: Sample) -> dict:
        if not self.streaming:
            return super().reference(sample)
        from .streaming import one_pass

        rows = np.concatenate([call["x"][0] for call in sample.calls])
        outs, finals = one_pass(self.model, rows)  # one pass over every row of the sample
        values = outs + finals if self.streaming == "explicit" else outs
        return dict(zip([o.name for o in self.outputs], values))

    def evaluation(self) -> Evaluation:
        ckpt = self.checkpoint
        if ckpt.validation_y is None or not len(self._windows()):
            raise ConfigError("compare: the checkpoint holds no validation windows")
        y = ckpt.validation_y.astype(np.float64)
        output = OUTPUT_NAME if ckpt.model_config.head == "point" else "prediction"

        def rmse(pred):
            return float(np.sqrt(np.mean((np.asarray(pred, np.float64).reshape(y.shape) - y) ** 2)))

        return Evaluation(self.samples_from_windows(self._windows(), len(self._windows()), batches=False), output, "RMSE", rmse)

    # -- the package ----------------------------------------------------------------------------

    # What predict, backtest and the Swift wrapper read from a package: an edited entry makes
    # them feed other columns or cut other windows while the program still matches torch.
    checked_metadata = ("task", "head", "input_columns", "target_columns", "time_column", "series_id_column", "window", "horizon",
                        "normalizer", "scaling", "log", "season", "time_step", "streaming", "max_chunk")

    def metadata(self, path: Path | None = None) -> dict:
        ckpt = self.checkpoint
        return {
            "task": "forecast",
            "head": ckpt.model_config.head,
            "input_columns": ckpt.input_columns,
            "target_columns": ckpt.target_columns,
            "time_column": ckpt.data_config.time,
            "series_id_column": ckpt.data_config.series_id,
            "window": ckpt.window,
            "horizon": ckpt.horizon,
            "normalizer": ckpt.normalizer.to_dict(),
            "scaling": ckpt.model_config.scaling,
            "log": ckpt.model_config.log,
            "season": ckpt.data_config.season,
            "time_step": ckpt.data_config.step,  # the training table's regular step (pandas' name), or None
            "model": ckpt.model_config.to_dict(),
            "validation_metrics": (ckpt.metrics or {}).get("overall"),  # several targets: pooled in their units (pooled_targets)
            "validation_metrics_scaled": _scaled_summary(ckpt.metrics),
            "probabilistic_metrics": ((ckpt.metrics or {}).get("probabilistic") or {}).get("overall"),
            "baseline_metrics": _baseline_summary(ckpt.metrics),
            "streaming": self.streaming,
            "max_chunk": self.max_chunk if self.streaming else None,
        }

    @staticmethod
    def swift(name: str, program, meta: dict) -> str:
        from .predict import check_forecaster_entries
        from .swift import wrapper

        check_forecaster_entries(meta, program.path)  # the wrapper's columns, window and chunk come from these
        return wrapper(name, program, meta)

    @staticmethod
    def predict_table(package, table, *, backend: str = "auto", mode: str = "fp32", last: bool = False, missing: str = "error",
                      top_k: int | None = None, **_):
        """Forecasts after every window of a table (``predict --csv``): a :class:`~coreml_lstm.predict.Prediction`."""
        from .predict import predict_table

        if top_k is not None:
            raise ConfigError("--top-k: only for classifier packages; a forecaster predicts values, not classes")

        return predict_table(package, table, backend=backend, mode=mode, last_only=last, missing=missing)


def _scaled_summary(metrics) -> dict | None:
    """The scale-free validation RMSE and MAE over several series or targets (None for one series and one target)."""
    scaled = (metrics or {}).get("scaled")
    return {"rmse": scaled["rmse"], "mae": scaled["mae"]} if scaled else None


def _baseline_summary(metrics) -> dict | None:
    """Validation MASE of the model and the baselines, the skill and any warning (or None)."""
    report = (metrics or {}).get("vs_baselines")
    if not report:
        return None
    return {"season": report["season"], "mase": report["mase"], "skill": report["skill"], "warning": report["warning"],
            **{f"{name}_mase": b["mase"] for name, b in report["baselines"].items()}}


def _output_specs(checkpoint, batch: str) -> list[tuple[str, str]]:
    """(name, description) of the model's outputs in original units, ``batch`` first ("B", "1")."""
    h, t, k = checkpoint.horizon, len(checkpoint.target_columns), checkpoint.model_config.mixtures
    targets = ", ".join(checkpoint.target_columns)
    if checkpoint.model_config.head == "point":
        return [(OUTPUT_NAME, f"Predictions of [{targets}] for the next {h} step(s) in original units; shape ({batch}, {h}, {t}).")]
    dist = f"({batch}, {h}, {t}, {k}): per step and target, {k} Gaussian components"
    return [
        ("weights", f"Mixture weights, summing to 1 over the last axis; {dist}."),
        ("means", f"Component means in original units; {dist}."),
        ("scales", f"Component standard deviations in original units; {dist}."),
        ("prediction", f"Mixture mean of [{targets}] in original units; shape ({batch}, {h}, {t})."),
        ("variance", f"Mixture variance in squared original units; shape ({batch}, {h}, {t})."),
    ]
