"""The recurrent forecaster: a torch module that takes raw feature values and returns raw targets.

Normalisation lives inside the module, so the traced graph (and so the Core ML package) carries
it: an app feeds raw sensor values and reads predictions in original units. Two scalings:

window  (default) each window is put in its own frame: the targets (their logs with ``log``)
        minus the window's last value, divided by the window's mean absolute deviation (plus a
        floor, so a constant window divides by a small number, not zero); extra features are
        z-scored with training statistics. The network predicts in that frame and the output is
        mapped back (level + scale * prediction), so a series that trends out of its training
        range looks, to the network, like the windows it trained on (RevIN, DeepAR's mean
        scaling, ES-RNN's level normalisation). Next to the recurrent net a linear "highway"
        maps the window's normalised targets straight to the horizon (LSTNet's autoregressive
        component, DLinear); it starts as the seasonal-naive forecast and the recurrent head
        starts at zero, so training begins from "repeat last season" and only moves away from it
        where validation says that helps.
global  every value is z-scored with the training part's mean and standard deviation (the
        toolkit's original model): fine for a series that stays in its training range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

CELLS = ("lstm", "gru", "rnn")
MIXTURE_OUTPUTS = ("weights", "means", "scales", "prediction", "variance")
MIN_SCALE = 1e-3  # in normalised units: 0.1% of the target's standard deviation
HEADS = ("point", "mixture")
SCALINGS = ("window", "global")
FLOOR = 1e-3  # the window scale's floor, as a fraction of the target's training standard deviation (of its least varying series)
DAMPING = 0.9  # the damped drift's factor per step (Gardner & McKenzie): the trend fades over ~10 steps
# raw_in / raw_out / raw_variance / stretch (and a stream's raw_* modules, coreml_lstm.streaming) compute on raw
# values: an fp16 export keeps their ops in fp32 (ForecasterAdapter.fp32_scopes), so a package
# takes and returns values beyond float16's 65504.


class RawIn(nn.Module):
    """Raw window (B, W, F) -> (normalised inputs, level, scale): the frame of
    :meth:`RecurrentModel.frame`. No parameters; the statistics come in as arguments."""

    def __init__(self, n_targets: int, windowed: bool, log: bool):
        super().__init__()
        self.n_targets, self.windowed, self.log = n_targets, windowed, log

    def forward(self, x, input_mean, input_std, target_mean, target_std, floor):
        T = self.n_targets
        y = torch.log(x[..., :T]) if self.log else x[..., :T]  # (B, W, T)
        if not self.windowed:
            # No features: no concatenation, as below. A fixed-shape trace converts the empty
            # slice x[..., T:] to the whole window (the lstm then takes W + 1 columns).
            z = torch.cat([y, x[..., T:]], dim=-1) if self.log and x.shape[-1] > T else y if self.log else x
            return (z - input_mean) / input_std, target_mean, target_std
        level = y[:, -1:, :]  # (B, 1, T): the last value
        d = y - level
        # Mean absolute deviation, not a standard deviation: no squares to overflow.
        scale = (d - d.mean(dim=1, keepdim=True)).abs().mean(dim=1, keepdim=True) + floor  # (B, 1, T)
        z = d / scale
        if x.shape[-1] > T:
            z = torch.cat([z, (x[..., T:] - input_mean[T:]) / input_std[T:]], dim=-1)
        return z, level, scale


class RawOut(nn.Module):
    """Frame units -> original units: ``y * scale + level`` (then exp with log scaling), or with
    ``shift=False`` a spread: ``y * scale``. ``per_component``: ``y`` has a last axis of
    mixture components that ``level`` and ``scale`` lack."""

    def __init__(self, log: bool):
        super().__init__()
        self.log = log

    def forward(self, y, level, scale, shift: bool = True, per_component: bool = False):
        if per_component:
            level, scale = level.unsqueeze(-1), scale.unsqueeze(-1)
        if not shift:
            return y * scale
        y = y * scale + level
        return torch.exp(y) if self.log else y


class Stretch(nn.Module):
    """The calibration: a mixture (means and scales (B, horizon, T, K) in frame units) stretched
    about its mean (B, horizon, T) by ``c`` (T, 1). fp32 in an fp16 export: a near-constant window
    makes the frame's scale tiny and frame-unit spreads large, which the stretch takes past
    float16's 65504."""

    def forward(self, mu, s, mean, c):
        return mean.unsqueeze(-1) + c * (mu - mean.unsqueeze(-1)), s * c


class RawVariance(nn.Module):
    """The mixture's variance in original units, (B, horizon, T), from its weights, means and
    scales in frame units (B, horizon, T, K): squares of raw spreads, so fp32 (an fp16 square of a
    frame-unit spread overflows once a near-constant window makes the frame's scale tiny)."""

    def forward(self, w, mu, s, mean, scale):
        scale = scale.unsqueeze(-1)
        spread, offset = s * scale, (mu - mean.unsqueeze(-1)) * scale
        # Spread around the mixture mean: no cancellation between two large terms.
        return (w * (spread * spread + offset * offset)).sum(-1)


@dataclass
class ModelConfig:
    cell: str = "lstm"  # the post's "hidden unit": lstm | gru | rnn (tanh)
    hidden_size: int = 32
    num_layers: int = 2
    dropout: float = 0.0  # between stacked layers only (torch applies none after the last)
    bidirectional: bool = False
    head: str = "point"  # point: horizon x targets values; mixture: a Gaussian mixture per value
    mixtures: int = 3  # components per value when head == "mixture"
    scaling: str = "window"  # window | global: see the module docstring
    log: bool = False  # model log(target) (multiplicative seasonality); targets must be > 0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"cell: {self.cell!r} is not one of {', '.join(CELLS)}")
        if self.head not in HEADS:
            raise ConfigError(f"head: {self.head!r} is not one of {', '.join(HEADS)}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"scaling: {self.scaling!r} is not one of {', '.join(SCALINGS)}")
        if self.log and self.head == "mixture":
            # The package's mixture is Gaussian in original units; one over logs is not.
            raise ConfigError("log: a mixture head's components are Gaussians in original units; use the point head with log, or a mixture without it")
        for name in ("hidden_size", "num_layers", "mixtures"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        if self.cell == "rnn" and self.bidirectional:
            # Core ML cannot take a bidirectional nn.RNN (the converter rejects it).
            raise ConfigError("bidirectional: Core ML cannot convert a bidirectional rnn; use cell lstm or gru")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        # Checkpoints written before window scaling existed hold a globally scaled model.
        return cls(**{"scaling": "global", "log": False, **d})


def _recurrent(config: ModelConfig, input_size: int) -> nn.Module:
    kind = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[config.cell]
    return kind(
        input_size,
        config.hidden_size,
        num_layers=config.num_layers,
        dropout=config.dropout if config.num_layers > 1 else 0.0,
        bidirectional=config.bidirectional,
        batch_first=True,
    )


class RecurrentModel(nn.Module):
    """Recurrent encoder over a window plus a linear head for every horizon step and target.

    ``forward(x)`` maps raw inputs (B, window, F) to raw predictions (B, horizon, T) for a point
    head; a mixture head returns the distribution (see :mod:`coreml_lstm.mixture`). The first T
    input columns are the targets' own past. Window scaling needs ``window`` (the highway's
    input length); global scaling takes any length.
    """

    def __init__(self, config: ModelConfig, n_inputs: int, n_targets: int, horizon: int, window: int | None = None):
        super().__init__()
        self.config = config
        self.n_inputs, self.n_targets, self.horizon, self.window = n_inputs, n_targets, horizon, window
        self.rnn = _recurrent(config, n_inputs)
        width = config.hidden_size * (2 if config.bidirectional else 1)
        per_value = 1 if config.head == "point" else 3 * config.mixtures
        self.head = nn.Linear(width, horizon * n_targets * per_value)
        # Normalisation statistics; set from the training data before training.
        self.register_buffer("input_mean", torch.zeros(n_inputs))
        self.register_buffer("input_std", torch.ones(n_inputs))
        self.register_buffer("target_mean", torch.zeros(n_targets))
        self.register_buffer("target_std", torch.ones(n_targets))
        if config.scaling == "window":
            if not window:
                raise ConfigError("scaling window: the model needs the window length")
            self.register_buffer("target_floor", torch.full((n_targets,), FLOOR))
            self.highway = nn.Linear(window, horizon)  # (.., W) -> (.., horizon), shared by the targets
        else:
            self.register_buffer("target_floor", torch.zeros(n_targets), persistent=False)  # unused: global scaling has no floor
        self.raw_in = RawIn(n_targets, config.scaling == "window", config.log)
        self.raw_out = RawOut(config.log)
        if config.head == "mixture":
            self.raw_variance = RawVariance()
            self.stretch = Stretch()
            # Widens (> 1) or narrows (< 1) each target's mixture about its mean; fit chooses it
            # after training, widening only, so that the validation windows' central 90% intervals
            # cover at least 90% (:func:`coreml_lstm.mixture.interval_scale`); 1 leaves the
            # trained mixture as it is.
            self.register_buffer("interval_scale", torch.ones(n_targets))

    @property
    def windowed(self) -> bool:
        return self.config.scaling == "window"

    def set_normalizer(self, normalizer) -> None:
        """Copy a :class:`coreml_lstm.data.Normalizer` into the module's buffers."""
        for name in ("input_mean", "input_std", "target_mean", "target_std"):
            getattr(self, name).copy_(torch.as_tensor(getattr(normalizer, name), dtype=torch.float32))
        if self.windowed:  # a fraction of the smallest series' spread: a small series among large ones keeps its shape
            spread = getattr(normalizer, "series_std", None)
            spread = self.target_std if spread is None else torch.as_tensor(spread, dtype=torch.float32)
            self.target_floor.copy_(FLOOR * spread)

    STARTS = ("naive", "seasonal naive", "naive with drift", "naive with damped drift", "seasonal naive with drift")

    def baseline_weights(self, kind: str, season: int) -> torch.Tensor | None:
        """The highway weights (horizon, W) that make it the baseline ``kind`` in the window frame
        (z: the window minus its last value, over its scale; z[W-1] = 0), or None where the window
        is too short for it.

        naive                       0 (the last value is the frame's origin)
        seasonal naive              z[W - m + h % m]
        naive with drift            the window's slope: -(h + 1) / (W - 1) * z[0]
        naive with damped drift     the slope damped by DAMPING = p per step: -(p + ... + p^(h+1)) / (W - 1) * z[0]
        seasonal naive with drift   seasonal naive + (1 + h // m) times the mean seasonal
                                    difference of the window, (sum of the last m - sum of the first
                                    m) / (W - m)
        """
        W, H, m = self.window, self.horizon, season
        weight = torch.zeros(H, W)
        seasonal = kind.startswith("seasonal")
        # Seasonal naive reads the window's last season (z[W - m], ...): a window of one season
        # is enough. Its drift compares the last season with the first: it needs more (W > m).
        # A season of 1 is naive itself.
        if seasonal and not (1 < m <= W if kind == "seasonal naive" else 1 < m < W):
            return None
        if kind.startswith("naive with") and W < 2:
            return None
        for h in range(H):
            if seasonal:
                weight[h, W - m + h % m] += 1.0
            if kind == "naive with drift":
                weight[h, 0] -= (h + 1) / (W - 1)
            if kind == "naive with damped drift":
                weight[h, 0] -= sum(DAMPING**i for i in range(1, h + 2)) / (W - 1)
            if kind == "seasonal naive with drift":
                c = (1 + h // m) / (W - m)
                weight[h, W - m :] += c
                weight[h, :m] -= c
        return weight

    def baselines(self, season: int) -> dict[str, torch.Tensor]:
        """Every one of :attr:`STARTS` the window allows: name -> highway weights (horizon, W)."""
        return {k: w for k in self.STARTS if (w := self.baseline_weights(k, season)) is not None}

    @torch.no_grad()
    def baseline_forecasts(self, season: int, x) -> dict[str, torch.Tensor]:
        """Each baseline's forecast (N, horizon, T) in original units for raw windows x (N, W, F),
        computed through the model's own frame (what the package would output with that start)."""
        z, (level, scale) = self.frame(torch.as_tensor(x, dtype=torch.float32))
        zt = z[..., : self.n_targets].transpose(1, 2)  # (N, T, W)
        out = {}
        for k, w in self.baselines(season).items():
            y = (zt @ w.T).transpose(1, 2) * scale + level  # (N, horizon, T)
            out[k] = torch.exp(y) if self.config.log else y
        return out

    def baseline_mae(self, season: int, x, y, block: int = 1024, weights=None):
        """Each baseline's mean absolute error (original units, float64) on raw windows x (N, W, F)
        against y (N, horizon, T), computed ``block`` windows at a time: the working memory stays
        bounded however many windows there are (x may be a lazy WindowArray). With ``weights``
        (N, 1, T) (see ``select_on_validation``): ``(mae, weighted mae)`` from the same pass."""
        sums = dict.fromkeys(self.baselines(season), 0.0)
        weighted = dict.fromkeys(sums, 0.0)
        count = 0
        for lo in range(0, len(x), block):
            t = np.asarray(y[lo : lo + block], np.float64)
            for k, p in self.baseline_forecasts(season, np.array(x[lo : lo + block], dtype=np.float32)).items():
                err = np.abs(p.numpy().astype(np.float64) - t)
                sums[k] += float(err.sum())
                if weights is not None:
                    weighted[k] += float((err * weights[lo : lo + block]).sum())
            count += t.size
        mae = {k: v / count for k, v in sums.items()} if count else sums
        if weights is None:
            return mae
        return mae, ({k: v / count for k, v in weighted.items()} if count else weighted)

    @torch.no_grad()
    def set_baseline(self, kind: str, season: int) -> None:
        """Make the model the classical forecast ``kind``: the highway that baseline, the recurrent
        head zero (a mixture head keeps a shrunk random start: see :meth:`start_from_baseline`)."""
        self.highway.bias.zero_()
        self.highway.weight.copy_(self.baselines(season)[kind])
        if self.config.head == "point":
            self.head.weight.zero_()
            self.head.bias.zero_()
        else:
            # Identical components would get identical gradients forever: keep torch's random
            # start, shrunk so the components sit near the baseline.
            self.head.weight.mul_(0.1)

    @torch.no_grad()
    def blend_with_baseline(self, kind: str, season: int, weight: float = 0.5) -> None:
        """Point head: make the model ``(1 - weight) * itself + weight * baseline kind``, exactly:
        both are linear in the highway and the head, so the blend is one model of the same shape."""
        if self.config.head != "point" or not self.windowed:
            raise ConfigError("blend_with_baseline: only a window-scaled point forecaster is linear in its highway")
        keep = 1.0 - weight
        self.highway.weight.mul_(keep).add_(weight * self.baselines(season)[kind])
        self.highway.bias.mul_(keep)
        self.head.weight.mul_(keep)
        self.head.bias.mul_(keep)

    @torch.no_grad()
    def start_from_baseline(self, season: int, x=None, y=None) -> str:
        """Make the untrained model a classical forecast: the highway one of :attr:`STARTS` (the
        one with the lowest mean absolute error on the windows x (N, W, F), y (N, horizon, T), in
        original units; seasonal naive without them) and the recurrent head zero. Global scaling
        has no highway: nothing changes.

        Returns:
            The start's name ("" with global scaling).
        """
        if not self.windowed:
            return ""
        candidates = self.baselines(season)
        chosen = "seasonal naive" if "seasonal naive" in candidates else "naive"
        if x is not None and len(x):
            losses = self.baseline_mae(season, x, y)
            chosen = min(losses, key=losses.get)
        self.set_baseline(chosen, season)
        if self.config.head == "mixture" and x is not None and len(x):
            self.set_start_spread(self.baseline_frame_rms(chosen, season, x, y))
        return chosen

    def baseline_frame_rms(self, kind: str, season: int, x, y, block: int = 1024) -> torch.Tensor:
        """The root mean square error (horizon, T) of the baseline ``kind`` in the window frame
        (the units the mixture's scales are in), per horizon step and target, over raw windows x
        (N, W, F) and targets y (N, horizon, T), ``block`` windows at a time."""
        weight = self.baselines(season)[kind]
        total = torch.zeros(self.horizon, self.n_targets, dtype=torch.float64)
        with torch.no_grad():
            for lo in range(0, len(x), block):
                xb = torch.as_tensor(np.array(x[lo : lo + block], dtype=np.float32))
                z, ctx = self.frame(xb)
                pred = (z[..., : self.n_targets].transpose(1, 2) @ weight.T).transpose(1, 2)  # (B, horizon, T)
                err = self.target_frame(torch.as_tensor(np.array(y[lo : lo + block], dtype=np.float32)), ctx) - pred
                total += (err.double() ** 2).sum(0)
        return (total / len(x)).sqrt().float()

    @torch.no_grad()
    def set_start_spread(self, sigma: torch.Tensor) -> None:
        """Mixture head: make every component's scale at step h and target t start at sigma[h, t]
        (frame units) for a zero recurrent output, through the head's bias (softplus inverted), so
        that the untrained model is the classical start with the spread of that start's own
        errors, growing with the horizon as they do, instead of softplus(0) frame units."""
        k = self.config.mixtures
        target = torch.clamp(sigma.double() - MIN_SCALE, min=MIN_SCALE)  # (horizon, T)
        raw = target + torch.log(-torch.expm1(-target))  # softplus^-1, stable for large values too
        bias = self.head.bias.view(self.horizon, self.n_targets, 3, k)
        bias[:, :, 2, :] = raw.float().unsqueeze(-1)

    # -- frames: raw values <-> the network's units ---------------------------------------------

    def frame(self, x: torch.Tensor):
        """Raw window (B, W, F) -> (normalised inputs (B, W, F), (level, scale) to map outputs back).

        Window scaling: level and scale are (B, 1, T), the window's own; global: (T,) constants.
        """
        z, level, scale = self.raw_in(x, self.input_mean, self.input_std, self.target_mean, self.target_std, self.target_floor)
        return z, (level, scale)

    def target_frame(self, y: torch.Tensor, ctx) -> torch.Tensor:
        """Raw targets (B, horizon, T) in the frame of :meth:`frame` (what the network predicts)."""
        level, scale = ctx
        y = torch.log(y) if self.config.log else y
        return (y - level) / scale

    def normalize_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame(x)[0]

    # -- the pieces (all in normalised units) ---------------------------------------------------

    def run_rnn(self, z: torch.Tensor, state=None):
        """Normalised inputs (B, L, F) -> (last step's output (B, H*dirs), final recurrent state)."""
        seq, final = self.rnn(z) if state is None else self.rnn(z, state)  # seq: (B, L, H*dirs)
        return seq[:, -1], final

    def head_normalized(self, last: torch.Tensor):
        """Point head: (B, horizon, T). Mixture head: (logits, means, scales), each (B, horizon, T, K)."""
        out = self.head(last)  # (B, horizon*T*per_value)
        if self.config.head == "point":
            return out.reshape(-1, self.horizon, self.n_targets)
        k = self.config.mixtures
        out = out.reshape(-1, self.horizon, self.n_targets, 3, k)
        logits, means, raw = out[:, :, :, 0], out[:, :, :, 1], out[:, :, :, 2]
        # softplus keeps scales positive; the floor keeps them away from zero (and from fp16 underflow).
        scales = nn.functional.softplus(raw) + MIN_SCALE
        return logits, means, scales

    def forward_normalized(self, z: torch.Tensor):
        """Normalised window (B, W, F) -> the prediction in the frame: :meth:`head_normalized` of the
        last step, plus the highway's forecast with window scaling."""
        last, _ = self.run_rnn(z)
        out = self.head_normalized(last)
        if not self.windowed:
            return out
        ar = self.highway(z[..., : self.n_targets].transpose(1, 2)).transpose(1, 2)  # (B, horizon, T)
        if self.config.head == "point":
            return out + ar
        logits, means, scales = out
        return logits, means + ar.unsqueeze(-1), scales

    def from_frame(self, out, ctx) -> tuple:
        """The package's outputs in original units from the frame's prediction.

        Point head: (forecast (B, horizon, T),). Mixture head: (weights, means, scales (B, horizon,
        T, K), prediction = mixture mean, variance = mixture variance (B, horizon, T)), the mixture
        stretched about its mean by ``interval_scale``.
        """
        level, scale = ctx
        if self.config.head == "point":
            return (self.raw_out(out, level, scale),)
        logits, mu, s = out
        w = torch.softmax(logits, dim=-1)
        mean_n = (w * mu).sum(-1)  # (B, horizon, T)
        # The calibration: the mixture stretched about its mean by interval_scale (T,), so every
        # quantile's distance from the mean (and the standard deviation) scales by it.
        mu, s = self.stretch(mu, s, mean_n, self.interval_scale.unsqueeze(-1))
        return (
            w,
            self.raw_out(mu, level, scale, per_component=True),
            self.raw_out(s, level, scale, shift=False, per_component=True),
            self.raw_out(mean_n, level, scale),
            self.raw_variance(w, mu, s, mean_n, scale),
        )

    def raw_outputs(self, last: torch.Tensor) -> tuple:
        """Global scaling: the outputs in original units from the last step's recurrent output."""
        return self.from_frame(self.head_normalized(last), (self.target_mean, self.target_std))

    def outputs(self, x: torch.Tensor) -> tuple:
        """Raw inputs (B, W, F) -> every output in original units, as a tuple (see :meth:`from_frame`)."""
        z, ctx = self.frame(x)
        return self.from_frame(self.forward_normalized(z), ctx)

    def output_names(self) -> tuple[str, ...]:
        return ("forecast",) if self.config.head == "point" else MIXTURE_OUTPUTS

    def forward(self, x: torch.Tensor):
        """Raw inputs (B, W, F) -> raw predictions: a tensor (point) or the mixture's tuple."""
        out = self.outputs(x)
        return out[0] if self.config.head == "point" else out
