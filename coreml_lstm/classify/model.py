"""The classifier network: [embedding | normalisation] -> recurrent encoder (+ conv branch) -> softmax.

``forward(x)`` is what the Core ML package computes: one unpadded sequence (batch 1, any length
up to the export's maximum), raw values in, class probabilities out. Training calls
``logits(x, lengths)`` on right-padded batches: the recurrent layer runs on a packed sequence,
so each sample's summary is its state after its own last real step, and the conv branch masks
padded steps, so a padded sample gets exactly what it would get alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..errors import ConfigError

CELLS = ("lstm", "gru")


@dataclass
class NetConfig:
    cell: str = "lstm"  # lstm | gru
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.1  # on the summary before the head, and between stacked recurrent layers
    conv_channels: list[int] = field(default_factory=list)  # LSTM-FCN branch, e.g. [128, 256, 128]; [] = none
    conv_kernels: list[int] = field(default_factory=lambda: [7, 5, 3])  # odd sizes: "same" padding
    embedding_dim: int = 32  # text models only

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ConfigError(f"cell: {self.cell!r} is not one of {', '.join(CELLS)}")
        for name in ("hidden_size", "num_layers", "embedding_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        self.conv_channels = [int(c) for c in self.conv_channels]
        self.conv_kernels = [int(k) for k in self.conv_kernels]
        if self.conv_channels and len(self.conv_kernels) < len(self.conv_channels):
            raise ConfigError(f"conv_kernels: {len(self.conv_channels)} conv blocks need as many kernel sizes, got {self.conv_kernels}")
        if any(k < 1 or k % 2 == 0 for k in self.conv_kernels[: len(self.conv_channels)]):
            # An even kernel has no centred "same" padding: the export would shift the sequence.
            raise ConfigError(f"conv_kernels: sizes must be odd, got {self.conv_kernels[: len(self.conv_channels)]}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        return cls(**d)


class ConvBranch(nn.Module):
    """LSTM-FCN's fully convolutional branch: [Conv1d -> BatchNorm -> ReLU] blocks, global average pool."""

    def __init__(self, in_channels: int, channels: list[int], kernels: list[int]):
        super().__init__()
        blocks, width = [], in_channels
        for c, k in zip(channels, kernels):
            blocks.append(nn.Sequential(nn.Conv1d(width, c, k, padding=k // 2), nn.BatchNorm1d(c), nn.ReLU()))
            width = c
        self.blocks = nn.ModuleList(blocks)
        self.out_features = width

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, L, C) -> (B, channels[-1]); ``mask`` (B, L) marks real steps (None: all are real)."""
        h = z.transpose(1, 2)  # (B, C, L)
        if mask is None:
            for block in self.blocks:
                h = block(h)
            return h.mean(dim=-1)
        m = mask.unsqueeze(1).to(h.dtype)  # (B, 1, L)
        for block in self.blocks:
            # Zeroing padded steps after every block makes them act as the conv's own zero padding,
            # which is what the export (no batch padding) sees past the sequence's end.
            h = block(h * m) * m
        return h.sum(dim=-1) / m.sum(dim=-1)


class Standardize(nn.Module):
    """Raw values -> z-scores with the training statistics given. A submodule (``raw_in``) so
    that an fp16 export keeps it in fp32 (``ClassifierAdapter.fp32_scopes``): raw values may
    exceed float16's 65504."""

    def forward(self, x, mean, std):
        return (x - mean) / std


class SequenceNet(nn.Module):
    """Classifier of sequences (float channels) or texts (token ids).

    Args:
        config: the architecture.
        n_classes: outputs of the head.
        n_channels: input channels of a sequence model (normalisation buffers are kept for them).
        vocab_size: rows of the embedding table of a text model (id 0 is padding).
    """

    def __init__(self, config: NetConfig, n_classes: int, *, n_channels: int | None = None, vocab_size: int | None = None):
        super().__init__()
        if (n_channels is None) == (vocab_size is None):
            raise ConfigError("SequenceNet: give exactly one of n_channels (sequences) or vocab_size (text)")
        self.config, self.n_classes = config, n_classes
        self.text = vocab_size is not None
        if self.text:
            self.embed = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=0)
            width_in = config.embedding_dim
        else:
            self.register_buffer("mean", torch.zeros(n_channels))
            self.register_buffer("std", torch.ones(n_channels))
            self.raw_in = Standardize()
            width_in = n_channels
        kind = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = kind(width_in, config.hidden_size, num_layers=config.num_layers, batch_first=True,
                        bidirectional=config.bidirectional, dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.conv = ConvBranch(width_in, config.conv_channels, config.conv_kernels) if config.conv_channels else None
        width = config.hidden_size * (2 if config.bidirectional else 1) + (self.conv.out_features if self.conv else 0)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, n_classes)

    def set_normalizer(self, normalizer) -> None:
        self.mean.copy_(torch.as_tensor(normalizer.mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(normalizer.std, dtype=torch.float32))

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw values (B, L, C) -> normalised; token ids (B, L) -> embeddings (B, L, E)."""
        return self.embed(x) if self.text else self.raw_in(x, self.mean, self.std)

    def _last_state(self, h_n: torch.Tensor) -> torch.Tensor:
        """Final hidden state of the last layer, (layers*dirs, B, H) -> (B, dirs*H) as [forward | backward]."""
        if self.config.bidirectional:
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return h_n[-1]

    def summary(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L[, C]) inputs -> (B, D) features; ``lengths`` (B,) for right-padded batches."""
        z = self.inputs(x)  # (B, L, C)
        if lengths is None or bool((lengths == z.shape[1]).all()):
            _, final = self.rnn(z)
            mask = None
        else:
            packed = pack_padded_sequence(z, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, final = self.rnn(packed)  # the state after each sample's own last step
            mask = torch.arange(z.shape[1], device=z.device)[None, :] < lengths[:, None]  # (B, L)
        h_n = final[0] if isinstance(final, tuple) else final  # (layers*dirs, B, H)
        parts = [self._last_state(h_n)]
        if self.conv is not None:
            parts.append(self.conv(z, mask))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def logits(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.summary(x, lengths)))  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """What the package computes: (1, L[, C]) raw inputs -> (1, classes) probabilities."""
        return torch.softmax(self.logits(x), dim=-1)
