"""User-style models: what app teams bring, not the toolkit's own architectures.

Each :class:`UserModel` builds a tiny torch module with example inputs and says how it is
converted (flexible shapes, output names, states, weight compression). The test suite
(tests/test_user_models.py) converts and verifies them for iOS15 / iOS17 / iOS18 and fp32 /
fp16; ``scripts/user_models.py`` runs the whole product and prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

TARGETS = ("iOS15", "iOS17", "iOS18")
PRECISIONS = ("fp32", "fp16")


@dataclass
class UserModel:
    name: str
    build: callable  # () -> (module, example inputs: {name: tensor})
    inputs: dict | None = None  # flexible shapes, as convert() takes them
    outputs: list | None = None
    states: list | None = None
    compress: str | None = None
    targets: tuple = TARGETS
    # (target, precision) -> the start of the one-line refusal (coremltools or convert's own check);
    # those cases are checked to fail with it, not to pass.
    refused: dict = field(default_factory=dict)
    samples: int = 4

    def configs(self) -> list[tuple[str, str]]:
        return [(t, p) for t in self.targets for p in PRECISIONS]


def _seed(n):
    torch.manual_seed(n)


class ConvLSTMPool(nn.Module):
    """An activity classifier: conv1d front end, LSTM, mean and max pooling over time."""

    def __init__(self, channels=6, classes=5):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(channels, 16, 5, padding=2), nn.ReLU(), nn.Conv1d(16, 16, 3, padding=1), nn.ReLU())
        self.lstm = nn.LSTM(16, 24, batch_first=True)
        self.head = nn.Linear(48, classes)

    def forward(self, x):  # (B, T, C)
        z = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, 16)
        y, _ = self.lstm(z)  # (B, T, 24)
        return self.head(torch.cat([y.mean(1), y.amax(1)], -1))


class BiGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(5, 12, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):
        y, h = self.gru(x)  # (B, T, 24), (2, B, 12)
        return self.fc(y[:, -1]), h


class PlainLSTM(nn.Module):
    def __init__(self, inputs=4, hidden=16, out=3):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, 2, batch_first=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


class AttentionPool(nn.Module):
    """LSTM states weighted by a softmax over time."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 16, batch_first=True)
        self.score = nn.Linear(16, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.lstm(x)  # (B, T, 16)
        w = torch.softmax(self.score(y), dim=1)  # (B, T, 1)
        return self.fc((w * y).sum(1)), w.squeeze(-1)


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block: layer norm, scaled dot-product attention, GELU MLP."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 32), nn.GELU(), nn.Linear(32, d))

    def forward(self, x):  # (B, T, d)
        # Heads split with unflatten/flatten: a traced x.shape of the flexible T does not convert.
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (z.unflatten(-1, (self.heads, -1)).transpose(1, 2) for z in (q, k, v))  # (B, h, T, d/h)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).flatten(2))
        return x + self.mlp(self.norm2(x))


class Seq2Seq(nn.Module):
    """An LSTM encoder and an LSTM decoder unrolled for ``steps`` steps, each fed its last prediction."""

    def __init__(self, steps=4):
        super().__init__()
        self.steps = steps
        self.encoder = nn.LSTM(3, 16, batch_first=True)
        self.decoder = nn.LSTM(2, 16, batch_first=True)
        self.out = nn.Linear(16, 2)

    def forward(self, x):  # (1, T, 3)
        _, (h, c) = self.encoder(x)
        y = x[:, -1:, :2]  # (1, 1, 2)
        preds = []
        for _ in range(self.steps):
            z, (h, c) = self.decoder(y, (h, c))
            y = self.out(z)
            preds.append(y)
        return torch.cat(preds, 1)  # (1, steps, 2)


class Tagger(nn.Module):
    """Embedding + BiLSTM, one tag distribution per token."""

    def __init__(self, vocab=3000, tags=7):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 16, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(32, tags)

    def forward(self, ids):  # (1, T) int
        y, _ = self.lstm(self.embed(ids))
        return torch.log_softmax(self.fc(y), -1)


class TCN(nn.Module):
    """Dilated causal convolutions with residual connections (left padding only)."""

    def __init__(self, channels=4, width=12, dilations=(1, 2, 4)):
        super().__init__()
        self.inp = nn.Conv1d(channels, width, 1)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, dilation=d) for d in dilations)
        self.dilations = dilations
        self.out = nn.Conv1d(width, 1, 1)

    def forward(self, x):  # (B, C, T)
        z = self.inp(x)
        for conv, d in zip(self.convs, self.dilations):
            z = z + torch.relu(conv(F.pad(z, (2 * d, 0))))
        return self.out(z)  # (B, 1, T)


class MixtureDensity(nn.Module):
    """LSTM with a mixture-density head: weights (softmax), means, scales (softplus)."""

    def __init__(self, k=3):
        super().__init__()
        self.k = k
        self.lstm = nn.LSTM(4, 16, batch_first=True)
        self.head = nn.Linear(16, 3 * k)

    def forward(self, x):
        y, _ = self.lstm(x)
        logits, mu, s = self.head(y[:, -1]).split(self.k, dim=-1)
        return torch.softmax(logits, -1), mu, F.softplus(s) + 1e-3


class MaskedGRU(nn.Module):
    """A GRU over padded sequences, pooled over each sequence's valid steps (``lengths``)."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 12, batch_first=True)
        self.fc = nn.Linear(12, 2)

    def forward(self, x, lengths):  # (B, T, 4), (B,) int
        y, _ = self.gru(x)  # (B, T, 12)
        steps = torch.arange(x.shape[1]).unsqueeze(0)  # (1, T)
        mask = (steps < lengths.unsqueeze(1)).float().unsqueeze(-1)  # (B, T, 1)
        pooled = (y * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.fc(pooled)


class CumsumHead(nn.Module):
    """Predicts increments and integrates them (a path from a start point)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 16, batch_first=True)
        self.inc = nn.Linear(16, 2)

    def forward(self, x, start):  # (1, T, 3), (1, 2)
        y, _ = self.lstm(x)
        return start.unsqueeze(1) + torch.cumsum(self.inc(y), dim=1)  # (1, T, 2)


class StatefulLSTM(nn.Module):
    """An LSTM whose state lives in buffers (Core ML states, iOS18): each call continues the stream."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 16, batch_first=True)
        self.fc = nn.Linear(16, 2)
        self.register_buffer("h", torch.zeros(1, 1, 16))
        self.register_buffer("c", torch.zeros(1, 1, 16))

    def forward(self, x):
        y, (h, c) = self.lstm(x, (self.h, self.c))
        self.h[:] = h  # slice assignment: copy_ does not convert under TorchScript
        self.c[:] = c
        return self.fc(y[:, -1])


class QuantLSTM(nn.Module):
    """Weights large enough for compression to pay: conv1d + LSTM(32 -> 64) + linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 32, 3, padding=1)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.fc = nn.Linear(64, 6)

    def forward(self, x):
        y, _ = self.lstm(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))
        return self.fc(y[:, -1])


def _on_grid(module: nn.Module, method: str) -> nn.Module:
    """Move the module's weights onto the grid the compression stores, so the package's
    decompressed weights are the module's own: int8 symmetric per output channel (row), or a
    uniform 4-bit palette per tensor. (b_hh is folded into b_ih: Core ML's lstm takes their sum.)"""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("lstm.bias_hh"):
                getattr(module.lstm, name.split(".")[1].replace("hh", "ih")).add_(p)
                p.zero_()
        for name, p in module.named_parameters():
            w = p.detach().double()
            if method == "int8":
                flat = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(-1, 1)
                scale = flat.abs().amax(1, keepdim=True) / 127
                scale[scale == 0] = 1
                p.copy_((torch.round(flat / scale) * scale).reshape(w.shape).float())
            elif w.max() > w.min():
                lo, hi = w.min(), w.max()
                step = (hi - lo) / 15
                p.copy_((torch.round((w - lo) / step) * step + lo).float())
    return module


def _quant(method):
    def build():
        _seed(11)
        return _on_grid(QuantLSTM(), method), {"x": torch.randn(1, 12, 8)}

    return build


def _build(cls, seed, **examples):
    def build():
        _seed(seed)
        module = cls()
        return module, {k: v() if callable(v) else v for k, v in examples.items()}

    return build


MODELS = [
    UserModel("conv-lstm-pool", _build(ConvLSTMPool, 1, x=lambda: torch.randn(1, 40, 6)), {"x": (1, "8..96", 6)}, ["logits"]),
    UserModel("bigru-flexible", _build(BiGRU, 2, x=lambda: torch.randn(1, 10, 5)), {"x": (1, "1..48", 5)}, ["logits", "h_n"]),
    UserModel("lstm-flexible-batch", _build(PlainLSTM, 3, x=lambda: torch.randn(2, 9, 4)), {"x": ("1..6", "1..24", 4)}, ["y"]),
    UserModel("lstm-enumerated", _build(PlainLSTM, 4, x=lambda: torch.randn(1, 8, 4)), {"x": [(1, 8, 4), (2, 16, 4), (4, 32, 4)]}, ["y"]),
    UserModel("attention-pool", _build(AttentionPool, 5, x=lambda: torch.randn(1, 20, 6)), {"x": (1, "2..64", 6)}, ["logits", "weights"]),
    UserModel("encoder-block", _build(EncoderBlock, 6, x=lambda: torch.randn(1, 12, 16)), {"x": (1, "2..32", 16)}, ["y"]),
    UserModel("seq2seq-unrolled", _build(Seq2Seq, 7, x=lambda: torch.randn(1, 15, 3)), {"x": (1, "2..40", 3)}, ["path"]),
    UserModel("embedding-bilstm-tagger", _build(Tagger, 8, ids=lambda: torch.randint(0, 3000, (1, 14))), {"ids": (1, "1..48")}, ["tags"]),
    UserModel("dilated-causal-tcn", _build(TCN, 9, x=lambda: torch.randn(1, 4, 30)), {"x": (1, 4, "16..128")}, ["y"]),
    UserModel("mixture-density", _build(MixtureDensity, 10, x=lambda: torch.randn(1, 16, 4)), {"x": (1, "1..64", 4)}, ["weights", "means", "scales"]),
    UserModel("masked-gru-lengths", _build(MaskedGRU, 12, x=lambda: torch.randn(3, 20, 4), lengths=lambda: torch.tensor([20, 7, 1])),
              None, ["y"]),
    UserModel("cumsum-head", _build(CumsumHead, 13, x=lambda: torch.randn(1, 10, 3), start=lambda: torch.randn(1, 2)), {"x": (1, "1..50", 3)}, ["path"]),
    UserModel("int8-weights", _quant("int8"), {"x": (1, "1..32", 8)}, ["y"], compress="int8",
              targets=("iOS17", "iOS18")),  # compression needs iOS16+
    UserModel("palettize4-weights", _quant("palettize4"), {"x": (1, "1..32", 8)}, ["y"], compress="palettize4",
              targets=("iOS17", "iOS18")),  # compression needs iOS16+
    UserModel("stateful-lstm", _build(StatefulLSTM, 14, x=lambda: torch.randn(1, 5, 4)), {"x": (1, "1..16", 4)}, ["y"], states=["h", "c"],
              refused={(t, p): "states: Core ML states need deployment target iOS18 or macOS15" for t in ("iOS15", "iOS17") for p in PRECISIONS}),
]

BY_NAME = {m.name: m for m in MODELS}
