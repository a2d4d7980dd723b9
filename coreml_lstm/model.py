"""The recurrent forecaster: a torch module that takes raw feature values and returns raw targets.

Normalisation lives inside the module as buffers, so the traced graph (and so the Core ML package)
carries it: an app feeds raw sensor values and reads predictions in original units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .errors import ConfigError

CELLS = ("lstm", "gru", "rnn")
MIXTURE_OUTPUTS = ("weights", "means", "scales", "prediction", "variance")
MIN_SCALE = 1e-3  # in normalised units: 0.1% of the target's standard deviation
HEADS = ("point", "mixture")


@dataclass
class ModelConfig:
    cell: str = "lstm"  # the post's "hidden unit": lstm | gru | rnn (tanh)
    hidden_size: int = 32
    num_layers: int = 2
    dropout: float = 0.0  # between stacked layers only (torch applies none after the last)
    bidirectional: bool = False
    head: str = "point"  # point: horizon x targets values; mixture: a Gaussian mixture per value
    mixtures: int = 3  # components per value when head == "mixture"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"cell: {self.cell!r} is not one of {', '.join(CELLS)}")
        if self.head not in HEADS:
            raise ConfigError(f"head: {self.head!r} is not one of {', '.join(HEADS)}")
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
        return cls(**d)


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
    head; a mixture head returns the distribution (see :mod:`coreml_lstm.mixture`).
    """

    def __init__(self, config: ModelConfig, n_inputs: int, n_targets: int, horizon: int):
        super().__init__()
        self.config = config
        self.n_inputs, self.n_targets, self.horizon = n_inputs, n_targets, horizon
        self.rnn = _recurrent(config, n_inputs)
        width = config.hidden_size * (2 if config.bidirectional else 1)
        per_value = 1 if config.head == "point" else 3 * config.mixtures
        self.head = nn.Linear(width, horizon * n_targets * per_value)
        # Normalisation statistics; set from the training data before training.
        self.register_buffer("input_mean", torch.zeros(n_inputs))
        self.register_buffer("input_std", torch.ones(n_inputs))
        self.register_buffer("target_mean", torch.zeros(n_targets))
        self.register_buffer("target_std", torch.ones(n_targets))

    def set_normalizer(self, normalizer) -> None:
        """Copy a :class:`coreml_lstm.data.Normalizer` into the module's buffers."""
        for name in ("input_mean", "input_std", "target_mean", "target_std"):
            getattr(self, name).copy_(torch.as_tensor(getattr(normalizer, name), dtype=torch.float32))

    # -- the pieces (all in normalised units) ---------------------------------------------------

    def normalize_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std

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
        """Normalised window (B, W, F) -> :meth:`head_normalized` of the last step."""
        last, _ = self.run_rnn(z)
        return self.head_normalized(last)

    def raw_outputs(self, last: torch.Tensor) -> tuple:
        """The package's outputs in original units, from the last step's recurrent output.

        Point head: (forecast (B, horizon, T),). Mixture head: (weights, means, scales (B, horizon,
        T, K), prediction = mixture mean, variance = mixture variance (B, horizon, T)).
        """
        out = self.head_normalized(last)
        if self.config.head == "point":
            return (out * self.target_std + self.target_mean,)
        logits, mu, s = out
        w = torch.softmax(logits, dim=-1)
        mean_n = (w * mu).sum(-1)  # (B, horizon, T)
        # Spread around the mixture mean: no cancellation between two large terms (safe in fp16).
        var_n = (w * (s * s + (mu - mean_n.unsqueeze(-1)) ** 2)).sum(-1)
        std, mean = self.target_std, self.target_mean
        return (
            w,
            mu * std.unsqueeze(-1) + mean.unsqueeze(-1),
            s * std.unsqueeze(-1),
            mean_n * std + mean,
            var_n * std * std,
        )

    def output_names(self) -> tuple[str, ...]:
        return ("forecast",) if self.config.head == "point" else MIXTURE_OUTPUTS

    def forward(self, x: torch.Tensor):
        """Raw inputs (B, W, F) -> raw predictions: a tensor (point) or the mixture's tuple."""
        last, _ = self.run_rnn(self.normalize_inputs(x))
        out = self.raw_outputs(last)
        return out[0] if self.config.head == "point" else out
