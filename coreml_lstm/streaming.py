"""Persistent state for prediction step by step: the two export styles' torch modules.

explicit  ``x`` (1, L, F) chunk plus the state inputs ``<name>_in`` in; the model's outputs plus
          ``<name>_out`` out. Any deployment target.
states    iOS18+: the state lives in Core ML states ``<name>_state``, fp16 as Core ML requires,
          updated in place by every call (an app passes one MLState per stream).

What the state is depends on the scaling:

global    the recurrent state ``h`` (and ``c`` for an LSTM), each (layers*dirs, 1, H): the outputs
          after a chunk are the forecast from the last step of everything fed so far.
window    the last ``window`` rows fed, ``window`` (1, W, F + 1): each row plus a flag that is 1 for
          a fed row and 0 for the zeros a stream starts with. Each call appends its chunk, keeps the
          last W rows, and runs the window model on them, so the window's scaling statistics (its
          last value and mean absolute deviation) are always those of the last W rows fed, and
          the outputs after a chunk equal the window package's on those rows. Until W rows have
          been fed, the missing rows count as copies of the latest row. Core ML states are fp16,
          so the ``states`` style keeps each value, over a power of two per column, in two fp16
          parts (~22 significant bits; see :class:`StatefulWindow`); ``explicit`` keeps the rows
          in fp32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

STYLES = ("explicit", "states")


def state_shape(model, style: str = "explicit") -> tuple[int, int, int]:
    """The shape of every state of a streaming export of ``model`` in ``style``."""
    cfg = model.config
    if model.windowed:
        # Core ML states (fp16) hold each value in two parts (see StatefulWindow).
        return (1, model.window, (2 if style == "states" else 1) * model.n_inputs + 1)
    return (cfg.num_layers * (2 if cfg.bidirectional else 1), 1, cfg.hidden_size)


def state_names(model) -> tuple[str, ...]:
    if model.windowed:
        return ("window",)
    return ("h", "c") if model.config.cell == "lstm" else ("h",)


def state_description(name: str) -> str:
    if name == "window":
        return "The last window rows fed, each with a last column that is 1 for a fed row"
    return f"Recurrent {name} state"


def _push(window: torch.Tensor, x: torch.Tensor, length: int) -> torch.Tensor:
    """The rows buffer (1, W, F + 1) after appending the chunk x (1, L, F), flagged as fed."""
    # x * 0 + 1 rather than ones_like: with a flexible length ones_like converts to fill_like.
    rows = torch.cat([x, x[..., :1] * 0.0 + 1.0], dim=-1)  # (1, L, F + 1)
    return torch.cat([window, rows], dim=1)[:, -length:]  # (1, W, F + 1)


def _rows(window: torch.Tensor) -> torch.Tensor:
    """The buffer's rows (1, W, F), rows not fed yet replaced by the latest row."""
    values, fed = window[..., :-1], window[..., -1:]
    return fed * values + (1.0 - fed) * values[:, -1:]


class RawWindow(nn.Module):
    """(buffer, chunk) -> (the buffer after the chunk, its rows): :func:`_push` then :func:`_rows`.
    A module so that an fp16 export keeps these raw values in fp32 (``ForecasterAdapter.fp32_scopes``)."""

    def __init__(self, length: int):
        super().__init__()
        self.length = length

    def forward(self, window, x):
        window = _push(window, x, self.length)
        return window, _rows(window)


class ExplicitWindow(nn.Module):
    """Window scaling: the last W rows travel as the state."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.raw_window = RawWindow(model.window)

    def forward(self, x, window_in):
        window, rows = self.raw_window(window_in, x)
        return (*self.model.outputs(rows), window)


class JoinParts(nn.Module):
    """The fp16 state (1, W, 2F + 1) -> the rows buffer (1, W, F + 1) in raw units: each value's
    two parts added, times its column's power of two ``scale`` (F,)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n  # F, a Python number: a traced size would convert as a run-time op

    def forward(self, state, scale):
        n = self.n
        return torch.cat([(state[..., :n] + state[..., n : 2 * n]) * scale, state[..., 2 * n :]], dim=-1)


class ScaleDown(nn.Module):
    """The rows buffer's values (1, W, F) over their columns' powers of two (exact in floating point)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, window, scale):
        return window[..., : self.n] / scale


class Remainder(nn.Module):
    """What the state's rounding of the values left out: the values minus their stored part."""

    def forward(self, values, stored):
        return values - stored


def state_scale(peaks) -> torch.Tensor:
    """Per column, the power of two that brings the largest magnitude seen (``peaks``) to ~1024:
    64 times that still fits fp16 (65504), and small values stay clear of its subnormals."""
    peaks = np.asarray(peaks, np.float64)
    k = np.where(np.isfinite(peaks) & (peaks > 0), np.round(np.log2(np.where(peaks > 0, peaks, 1.0))) - 10, 0)
    return torch.as_tensor(np.exp2(np.clip(k, -100, 100)), dtype=torch.float32)


class StatefulWindow(nn.Module):
    """Window scaling in a Core ML state. States are fp16 only, so each value is kept as two
    parts of its value over its column's power of two (:func:`state_scale`): the part as the
    state rounds it and the remainder (itself rounded). Their sum keeps ~22 significant bits
    (fp32: 24; one fp16: 11), and the power of two keeps values up to 64 times the largest seen
    in training inside fp16's range (and tiny ones out of its subnormals)."""

    def __init__(self, model, scale: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        scale = torch.ones(model.n_inputs) if scale is None else torch.as_tensor(scale, dtype=torch.float32)
        self.register_buffer("state_scale", scale, persistent=False)
        self.raw_window = RawWindow(model.window)
        n = model.n_inputs
        self.raw_join, self.raw_scale, self.raw_remainder = JoinParts(n), ScaleDown(n), Remainder()
        self.register_buffer("window_state", torch.zeros(state_shape(model, "states")))

    def forward(self, x):
        n = self.model.n_inputs
        window, rows = self.raw_window(self.raw_join(self.window_state, self.state_scale), x)
        scaled = self.raw_scale(window, self.state_scale)
        # Slice assignments: TorchScript conversion of copy_ fails.
        self.window_state[:, :, :n] = scaled  # rounded to fp16 by the state
        self.window_state[:, :, 2 * n :] = window[..., n:]  # the fed flags: 0 or 1, exact
        self.window_state[:, :, n : 2 * n] = self.raw_remainder(scaled, self.window_state[:, :, :n])
        return self.model.outputs(rows)


class ExplicitLSTM(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, h_in, c_in):
        m = self.model
        last, (h, c) = m.run_rnn(m.normalize_inputs(x), (h_in, c_in))
        return (*m.raw_outputs(last), h, c)


class ExplicitH(nn.Module):
    """GRU / RNN: the hidden state only."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, h_in):
        m = self.model
        last, h = m.run_rnn(m.normalize_inputs(x), h_in)
        return (*m.raw_outputs(last), h)


class StatefulLSTM(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer("h_state", torch.zeros(state_shape(model)))
        self.register_buffer("c_state", torch.zeros(state_shape(model)))

    def forward(self, x):
        m = self.model
        last, (h, c) = m.run_rnn(m.normalize_inputs(x), (self.h_state, self.c_state))
        self.h_state[:] = h  # slice assignment: TorchScript conversion of copy_ fails
        self.c_state[:] = c
        return m.raw_outputs(last)


class StatefulH(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer("h_state", torch.zeros(state_shape(model)))

    def forward(self, x):
        m = self.model
        last, h = m.run_rnn(m.normalize_inputs(x), self.h_state)
        self.h_state[:] = h
        return m.raw_outputs(last)


def wrap(model, style: str, peaks=None) -> nn.Module:
    """The streaming module of ``model`` in ``style``; ``peaks``: each input column's largest
    magnitude in training, which sets a Core ML window state's powers of two (None: 1)."""
    if model.windowed:
        if style == "explicit":
            return ExplicitWindow(model).eval()
        return StatefulWindow(model, None if peaks is None else state_scale(peaks)).eval()
    lstm = model.config.cell == "lstm"
    if style == "explicit":
        return (ExplicitLSTM if lstm else ExplicitH)(model).eval()
    return (StatefulLSTM if lstm else StatefulH)(model).eval()


@torch.no_grad()
def one_pass(model, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What a fresh stream gives after being fed the rows x (L, F), computed in one pass.

    Returns:
        (the outputs in original units, the final states in :func:`state_names` order), as numpy.
    """
    x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))[None]  # (1, L, F)
    if model.windowed:
        window = _push(torch.zeros(state_shape(model)), x, model.window)
        return [o.numpy() for o in model.outputs(_rows(window))], [window.numpy()]
    last, final = model.run_rnn(model.normalize_inputs(x))
    finals = final if isinstance(final, tuple) else (final,)
    return [o.numpy() for o in model.raw_outputs(last)], [f.numpy() for f in finals]


def consecutive_rows(x):
    """The longest run of rows at the end of overlapping windows x (N, W, F) that follow each other."""
    rows = [x[-1]]
    for i in range(len(x) - 1, 0, -1):
        if not np.array_equal(x[i - 1][1:], x[i][:-1]):
            break
        rows.insert(0, x[i - 1][:1])
    return np.concatenate(rows)
