"""Persistent recurrent state for prediction step by step: the two export styles' torch modules.

explicit  ``x`` (1, L, F) chunk plus ``h_in`` (and ``c_in`` for an LSTM), each (layers*dirs, 1, H),
          in; the model's outputs plus ``h_out`` (and ``c_out``) out. Any deployment target.
states    iOS18+: the state lives in Core ML states ``h_state`` (and ``c_state``), fp16 as Core ML
          requires, updated in place by every call (an app passes one MLState per stream).

Either way the outputs after a chunk are the forecast from the last step of everything fed so far.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

STYLES = ("explicit", "states")


def state_shape(model) -> tuple[int, int, int]:
    cfg = model.config
    return (cfg.num_layers * (2 if cfg.bidirectional else 1), 1, cfg.hidden_size)


def state_names(model) -> tuple[str, ...]:
    return ("h", "c") if model.config.cell == "lstm" else ("h",)


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


def wrap(model, style: str) -> nn.Module:
    lstm = model.config.cell == "lstm"
    if style == "explicit":
        return (ExplicitLSTM if lstm else ExplicitH)(model).eval()
    return (StatefulLSTM if lstm else StatefulH)(model).eval()


def consecutive_rows(x):
    """The longest run of rows at the end of overlapping windows x (N, W, F) that follow each other."""
    rows = [x[-1]]
    for i in range(len(x) - 1, 0, -1):
        if not np.array_equal(x[i - 1][1:], x[i][:-1]):
            break
        rows.insert(0, x[i - 1][:1])
    return np.concatenate(rows)
