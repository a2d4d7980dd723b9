"""Recurrent ops: lstm, gru, rnn. Sequence-major: x is (T, B, I).

The input projection of every step is one matmul before the time loop; the loop does only the
recurrent matmul and the gate maths. In fp16 mode the state is rounded to fp16 at every step,
as a program running in fp16 carries it.
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # 1 / (1 + e^-x) without overflow


ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "linear": lambda x: x,
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "scaled_tanh": np.tanh,  # MIL's default alpha = beta = 1
}


def _text(value) -> str:
    """A string attribute, whether it arrives as str or as a 0-d numpy array."""
    return str(value.item() if isinstance(value, np.ndarray) else value)


def _act(name) -> callable:
    name = _text(name).lower()
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not supported; supported: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def _project(x, w, b):
    """x (T, B, I) @ w.T (+ b) -> (T, B, G), one matmul for all steps."""
    T, B, I = x.shape
    out = (x.reshape(T * B, I) @ w.T).reshape(T, B, -1)
    return out + b if b is not None else out


def _directions(direction: str, forward, backward):
    if direction == "forward":
        return [(forward, False)]
    if direction == "reverse":
        return [(forward, True)]
    if direction == "bidirectional":
        return [(forward, False), (backward, True)]
    raise ValueError(f"direction {direction!r} is not one of forward, reverse, bidirectional")


@kernel("lstm", opset="iOS15")
class Lstm(Kernel):
    """Long short-term memory over a sequence.

    Gates, weights in ifoz order (MIL; torch is ifgo and its two biases are summed):
        i = ra(W_i x + R_i h + b_i [+ p_i * c_prev])      f = ra(W_f x + R_f h + b_f [+ p_f * c_prev])
        z = ca(W_z x + R_z h + b_z)                       c = f * c_prev + i * z
        o = ra(W_o x + R_o h + b_o [+ p_o * c])           h = o * a(c)
    Shapes: x (T, B, I); initial_h, initial_c (B, D*H) as [forward | backward]; weight_ih (4H, I);
    weight_hh (4H, H); bias (4H,). Outputs: output (T or 1, B, D*H), h (B, D*H), c (B, D*H).
    The backward direction runs from t = T-1 down to 0 and its output at t belongs to input step t.
    """

    def compute(self, *, x, initial_h, initial_c, weight_ih, weight_hh, bias=None, peephole=None,
                weight_ih_back=None, weight_hh_back=None, bias_back=None, peephole_back=None,
                direction="forward", output_sequence=False, recurrent_activation="sigmoid",
                cell_activation="tanh", activation="tanh", clip=None):
        x = np.asarray(x, dtype=np.float32)
        H = weight_hh.shape[1]
        ra, ca, a = _act(recurrent_activation), _act(cell_activation), _act(activation)
        fp16 = self.ctx is not None and self.ctx.mode == "fp16" and self.op.outputs[0].dtype == np.float16
        runs = _directions(_text(direction), (weight_ih, weight_hh, bias, peephole), (weight_ih_back, weight_hh_back, bias_back, peephole_back))
        seqs, hs, cs = [], [], []
        for d, ((w_ih, w_hh, b, p), backward) in enumerate(runs):
            h0 = np.asarray(initial_h, np.float32)[:, d * H : (d + 1) * H]
            c0 = np.asarray(initial_c, np.float32)[:, d * H : (d + 1) * H]
            seq, h, c = self._run(x, h0, c0, np.asarray(w_ih, np.float32), np.asarray(w_hh, np.float32),
                                  None if b is None else np.asarray(b, np.float32), p, backward, ra, ca, a, clip, fp16)
            seqs.append(seq)
            hs.append(h)
            cs.append(c)
        h, c = np.concatenate(hs, axis=-1), np.concatenate(cs, axis=-1)
        out = np.concatenate(seqs, axis=-1) if bool(output_sequence) else h[None]
        return out, h, c

    @staticmethod
    def _run(x, h, c, w_ih, w_hh, b, peephole, backward, ra, ca, a, clip, fp16):
        if ra is _sigmoid and ca is np.tanh and a is np.tanh and peephole is None and clip is None:
            return Lstm._run_fast(x, h, c, w_ih, w_hh, b, backward, fp16)
        T = x.shape[0]
        H = w_hh.shape[1]
        xw = _project(x, w_ih, b)  # (T, B, 4H)
        r_t = np.ascontiguousarray(w_hh.T)  # (H, 4H)
        h = np.ascontiguousarray(h, dtype=np.float32)
        seq = np.empty((T, x.shape[1], H), dtype=np.float32)
        p_i = p_f = p_o = None
        if peephole is not None:
            p = np.asarray(peephole, np.float32)
            p_i, p_f, p_o = p[:H], p[H : 2 * H], p[2 * H :]
        steps = range(T - 1, -1, -1) if backward else range(T)
        for t in steps:
            g = xw[t] + h @ r_t  # (B, 4H) in ifoz order
            gi, gf, go, gz = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
            if clip is not None:
                gz = np.clip(gz, -float(clip), float(clip))
            if p_i is not None:
                gi, gf = gi + p_i * c, gf + p_f * c
            i, f, z = ra(gi), ra(gf), ca(gz)
            c = f * c + i * z
            o = ra(go + p_o * c) if p_o is not None else ra(go)
            h = o * a(c)
            if fp16:
                c = c.astype(np.float16).astype(np.float32)
                h = h.astype(np.float16).astype(np.float32)
            seq[t] = h
        return seq, h, c

    @staticmethod
    def _run_fast(x, h, c, w_ih, w_hh, b, backward, fp16):
        """The default activations (sigmoid, tanh, tanh), in place and feature-major.

        One matmul per step computes all four gates from u = [x_t; h; 1] against
        [W_ih | W_hh | b]. The u of every step are laid out in one array, U (T + 1, I + H + 1, B),
        filled with the inputs before the loop; each step writes its h straight into the u of
        the next step, which is also the output sequence, so nothing is copied inside the loop.
        Values are feature-major, (features, B), so each gate is a contiguous block of the
        (4H, B) gate matrix; sigmoid(v) = (tanh(v / 2) + 1) / 2 with the i, f, o rows of the
        weights halved beforehand (exact: a power of two), so one tanh serves all four gates.
        """
        T, B, I = x.shape
        H = w_hh.shape[1]
        half = np.ones((4 * H, 1), np.float32)
        half[: 3 * H] = 0.5  # ifoz (MIL): i, f, o are sigmoid gates
        bias = np.zeros((4 * H, 1), np.float32) if b is None else b[:, None]
        w = np.concatenate([w_ih, w_hh, bias], axis=1) * half  # (4H, I + H + 1)
        # Forward: step t reads U[t] = [x_t; h_{t-1}; 1] and writes h_t to U[t + 1].
        # Backward: step t reads U[t + 1] = [x_t; h_{t+1}; 1] and writes h_t to U[t].
        U = np.empty((T + 1, I + H + 1, B), np.float32)
        xs = U[1:, :I] if backward else U[:T, :I]
        xs[...] = x.transpose(0, 2, 1)
        U[:, I + H] = 1.0
        U[0 if not backward else T, I : I + H] = h.T
        c = np.array(c.T, dtype=np.float32, order="C")  # (H, B), a copy: updated in place below
        g = np.empty((4 * H, B), np.float32)
        tmp = np.empty((H, B), np.float32)
        half_tmp = np.empty((H, B), np.float16)  # fp16 mode: the state is rounded through it
        sig = g[: 3 * H]
        i, f, o, z = g[:H], g[H : 2 * H], g[2 * H : 3 * H], g[3 * H :]
        for t in range(T - 1, -1, -1) if backward else range(T):
            read, write = (t + 1, t) if backward else (t, t + 1)
            np.matmul(w, U[read], out=g)
            np.tanh(g, out=g)  # z is done; i, f, o are tanh(v / 2)
            np.add(sig, 1.0, out=sig)
            np.multiply(sig, 0.5, out=sig)
            np.multiply(c, f, out=c)
            np.multiply(i, z, out=tmp)
            np.add(c, tmp, out=c)
            if fp16:
                np.copyto(half_tmp, c, casting="same_kind")
                np.copyto(c, half_tmp)
            np.tanh(c, out=tmp)
            h = U[write, I : I + H]
            np.multiply(o, tmp, out=h)
            if fp16:
                np.copyto(half_tmp, h, casting="same_kind")
                np.copyto(h, half_tmp)
        seq = U[:T, I : I + H] if backward else U[1:, I : I + H]  # (T, H, B)
        return seq.transpose(0, 2, 1), h.T.copy(), c.T.copy()


@kernel("lstm", opset="iOS17")
class LstmIOS17(Lstm):
    """iOS17: x, states and weights may be fp16 (before, lstm accepted fp32 only); maths unchanged."""


@kernel("rnn", opset="iOS15")
class Rnn(Kernel):
    """Simple recurrence h_t = activation(W_ih x_t + W_hh h_{t-1} + bias), one summed bias.

    Shapes: x (T, B, I); initial_h (B, H); weight_ih (H, I); weight_hh (H, H); bias (H,).
    Outputs: output (T or 1, B, H) and h (B, H).
    """

    def compute(self, *, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward",
                output_sequence=False, activation="tanh"):
        x = np.asarray(x, np.float32)
        act = _act(activation)
        fp16 = self.ctx is not None and self.ctx.mode == "fp16" and self.op.outputs[0].dtype == np.float16
        xw = _project(x, np.asarray(weight_ih, np.float32), None if bias is None else np.asarray(bias, np.float32))
        r_t = np.ascontiguousarray(np.asarray(weight_hh, np.float32).T)
        h = np.asarray(initial_h, np.float32)
        seq = np.empty((x.shape[0], x.shape[1], r_t.shape[1]), np.float32)
        backward = _text(direction) == "reverse"
        for t in range(x.shape[0] - 1, -1, -1) if backward else range(x.shape[0]):
            h = act(xw[t] + h @ r_t)
            if fp16:
                h = h.astype(np.float16).astype(np.float32)
            seq[t] = h
        return (seq if bool(output_sequence) else h[None]), h


@kernel("rnn", opset="iOS17")
class RnnIOS17(Rnn):
    """iOS17: fp16 values allowed; maths unchanged."""


@kernel("gru", opset="iOS15")
class Gru(Kernel):
    """Gated recurrent unit, MIL layout (weights and bias in r, o, z order):
        r = ra(W_r x + R_r h + b_r)    z = ra(W_z x + R_z h + b_z)
        o = a(W_o x + b_o + r * (R_o h))    h = (1 - z) * o + z * h_prev
    Shapes: x (T, B, I); initial_h (B, H); weight_ih (3H, I); weight_hh (3H, H); bias (3H,).
    (torch's nn.GRU is not converted to this op but to a while_loop; this follows the MIL definition.)
    """

    def compute(self, *, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward",
                output_sequence=False, recurrent_activation="sigmoid", activation="tanh",
                reset_after=False, input_bias=None):
        x = np.asarray(x, np.float32)
        ra, a = _act(recurrent_activation), _act(activation)
        w_hh = np.asarray(weight_hh, np.float32)
        H = w_hh.shape[1]
        fp16 = self.ctx is not None and self.ctx.mode == "fp16" and self.op.outputs[0].dtype == np.float16
        b_h = np.zeros(3 * H, np.float32) if bias is None else np.asarray(bias, np.float32)
        b_i = None if input_bias is None else np.asarray(input_bias, np.float32)
        xw = _project(x, np.asarray(weight_ih, np.float32), b_i)
        h = np.asarray(initial_h, np.float32)
        seq = np.empty((x.shape[0], x.shape[1], H), np.float32)
        backward = _text(direction) == "reverse"
        for t in range(x.shape[0] - 1, -1, -1) if backward else range(x.shape[0]):
            xt = xw[t]
            hr = h @ w_hh.T  # (B, 3H)
            r = ra(xt[:, :H] + hr[:, :H] + b_h[:H])
            z = ra(xt[:, 2 * H :] + hr[:, 2 * H :] + b_h[2 * H :])
            if bool(reset_after):
                o = a(xt[:, H : 2 * H] + r * (hr[:, H : 2 * H] + b_h[H : 2 * H]))
            else:
                o = a(xt[:, H : 2 * H] + b_h[H : 2 * H] + r * hr[:, H : 2 * H])
            h = (1 - z) * o + z * h
            if fp16:
                h = h.astype(np.float16).astype(np.float32)
            seq[t] = h
        return (seq if bool(output_sequence) else h[None]), h


@kernel("gru", opset="iOS17")
class GruIOS17(Gru):
    """iOS17: fp16 values allowed; maths unchanged."""


@kernel("gru", opset="iOS18")
class GruIOS18(GruIOS17):
    """iOS18 adds ``reset_after`` (apply r to the recurrent product plus its bias) and ``input_bias``."""
