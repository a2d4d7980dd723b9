"""Recurrent ops (MIL ``recurrent`` family): lstm, gru, rnn. Sequence-major: x is (T, B, I).

Semantics, as Apple's op tests pin them (their numpy and torch references, which Core ML passes):
- ``direction="reverse"`` runs from step T-1 down to 0 and returns ``output_sequence`` in
  processing order: output[k] is the state after k + 1 steps, i.e. after reading x[T-1-k].
  A ``bidirectional`` lstm instead returns its backward half in input order (output[t] belongs to
  x[t]), as torch does; the converter emits nn.LSTM as "forward" or "bidirectional" only.
- lstm ``clip`` clips the cell state c after its update, before it feeds o (peephole) and h.
- gru applies the reset gate to the state before the recurrent matmul, W_o (r * h); iOS18's
  ``reset_after=True`` applies it after, r * (W_o h + b_ho), as torch's nn.GRU.

The input projection of every step is one matmul before the time loop (or folded into the
step's matmul); the loop does the recurrent matmul and the gate maths. In fp16 mode the state
is rounded to fp16 at every step, as a program running in fp16 carries it.

Bounds (packages come from anyone): before anything is made, every tensor's shape is checked
against x's (T, B, I) and weight_hh's hidden size H (:func:`_layout`), so no array an op makes
comes from sizes that disagree; then the output sequence (T, B, D*H), the input projection
(T, B, G*H) (G gates: the largest array) and the fast lstm's step buffer (T + 1, I + H + 1, B)
are checked against ``limits.MAX_TENSOR_BYTES``. A step's temporaries are a few (B, G*H)
arrays, a T-th of the projection. The T steps are bounded by the same check: T * B * G * H * 4
bytes fit the bound; when the state holds no values (B * H = 0; x of 2^40 steps of no values
fits any bound) the steps compute nothing and none is taken.
"""

from __future__ import annotations

import math

import numpy as np

from ..fp16 import Rounder, round_in_range
from ..limits import check_shape
from ..program import Kernel
from ..registry import kernel


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # 1 / (1 + e^-x) without overflow


def _hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)  # MIL's defaults alpha = 0.2, beta = 0.5


# The activations MIL's recurrent ops name, each with the default parameters the op implies
# (the ops take no alpha / beta): scaled_tanh is alpha tanh(beta x) with alpha = beta = 1.
ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "linear": lambda x: x,
    "hard_sigmoid": _hard_sigmoid,
    "sigmoid_hard": _hard_sigmoid,
    "scaled_tanh": np.tanh,
}


def _text(value) -> str:
    """A string attribute, whether it arrives as str or as a 0-d numpy array."""
    return str(value.item() if isinstance(value, np.ndarray) else value)


def _act(name) -> callable:
    name = _text(name).lower()
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is not supported; supported: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def _f32(v):
    return None if v is None else np.asarray(v, np.float32)


def _project(x, w, b):
    """x (T, B, I) @ w.T (+ b) -> (T, B, G), one matmul for all steps."""
    T, B, I = x.shape
    check_shape((T, B, w.shape[0]), 4, "recurrent input projection")  # the largest array a recurrent op makes
    out = (x.reshape(T * B, I) @ w.T).reshape(T, B, w.shape[0])
    return out + b if b is not None else out


def _expect(op: str, name: str, value, shape: tuple, why: str) -> None:
    if value is not None and tuple(np.shape(value)) != shape:
        raise ValueError(f"{op}: {name} is {tuple(np.shape(value))}; {why} it must be {shape}")


def _layout(op: str, x, weight_ih, weight_hh, gates: int, directions: int = 1, **states) -> tuple[int, int, int, int]:
    """(T, B, I, H), after checking x, the weights and the ``states`` (initial_h, initial_c:
    (B, directions * H)) against MIL's layout, where H is weight_hh's column count: weight_ih
    (gates * H, I), weight_hh (gates * H, H). Nothing has been made from the shapes yet."""
    if np.ndim(x) != 3:
        raise ValueError(f"{op}: x is {tuple(np.shape(x))}; it must be (T, B, I)")
    T, B, I = (int(d) for d in np.shape(x))
    if np.ndim(weight_hh) != 2:
        raise ValueError(f"{op}: weight_hh is {tuple(np.shape(weight_hh))}; it must be ({gates}H, H)")
    H = int(np.shape(weight_hh)[1])
    _expect(op, "weight_hh", weight_hh, (gates * H, H), f"for hidden size {H}")
    _expect(op, "weight_ih", weight_ih, (gates * H, I), f"for input size {I} and hidden size {H}")
    for name, value in states.items():
        hidden = f"{directions} directions of hidden size {H}" if directions > 1 else f"hidden size {H}"
        _expect(op, name, value, (B, directions * H), f"for batch {B} and {hidden}")
    return T, B, I, H


def _vector(op: str, name: str, value, size: int, H: int) -> None:
    """A bias or peephole: (size,) for hidden size H."""
    _expect(op, name, value, (size,), f"for hidden size {H}")


def _directions(direction: str, forward, backward, allowed=("forward", "reverse", "bidirectional")):
    """[(weights, runs backward)] per direction."""
    if direction not in allowed:
        raise ValueError(f"direction {direction!r} is not one of {', '.join(allowed)}")
    if direction == "forward":
        return [(forward, False)]
    if direction == "reverse":
        return [(forward, True)]
    if any(w is None for w in backward[:2]):
        raise ValueError("a bidirectional lstm needs weight_ih_back and weight_hh_back")
    return [(forward, False), (backward, True)]


def _steps(T: int, backward: bool):
    return range(T - 1, -1, -1) if backward else range(T)


class _Recurrent(Kernel):
    keeps_fp16 = True  # in fp16 mode the state, hence every output, is rounded as it is made

    def _floats(self, **values) -> None:
        """MIL types every tensor of a recurrent op fp16 or fp32: an int32 weight is a malformed
        package, not something to cast and run."""
        for name, v in values.items():
            if v is not None and np.asarray(v).dtype.kind != "f":
                raise ValueError(f"{self.op_type}: {name} is {np.asarray(v).dtype.name}; MIL takes fp16 or fp32 here")

    def _fp16(self) -> bool:
        """Whether this run emulates fp16 for this op (its outputs are fp16)."""
        return self.ctx is not None and self.ctx.mode == "fp16" and self.op.outputs[0].dtype == np.float16


@kernel("lstm", opset="iOS15")
class Lstm(_Recurrent):
    """Long short-term memory over a sequence.

    Gates, weights in ifoz order (MIL; torch is ifgo and its two biases are summed):
        i = ra(W_i x + R_i h + b_i [+ p_i * c_prev])      f = ra(W_f x + R_f h + b_f [+ p_f * c_prev])
        z = ca(W_z x + R_z h + b_z)                       c = clip(f * c_prev + i * z)
        o = ra(W_o x + R_o h + b_o [+ p_o * c])           h = o * a(c)
    Shapes: x (T, B, I); initial_h, initial_c (B, D*H) as [forward | backward]; weight_ih (4H, I);
    weight_hh (4H, H); bias (4H,); peephole (3H,) in ifo order. Outputs: output (T or 1, B, D*H),
    h (B, D*H), c (B, D*H). Output order: see the module docstring (reverse: processing order;
    bidirectional: the backward half in input order).
    """

    def compute(self, *, x, initial_h, initial_c, weight_ih, weight_hh, bias=None, peephole=None,
                weight_ih_back=None, weight_hh_back=None, bias_back=None, peephole_back=None,
                direction="forward", output_sequence=False, recurrent_activation="sigmoid",
                cell_activation="tanh", activation="tanh", clip=None):
        self._floats(x=x, initial_h=initial_h, initial_c=initial_c, weight_ih=weight_ih, weight_hh=weight_hh, bias=bias, peephole=peephole,
                     weight_ih_back=weight_ih_back, weight_hh_back=weight_hh_back, bias_back=bias_back, peephole_back=peephole_back)
        ra, ca, a = _act(recurrent_activation), _act(cell_activation), _act(activation)
        fp16 = self._fp16()
        direction = _text(direction)
        runs = _directions(direction, (weight_ih, weight_hh, bias, peephole), (weight_ih_back, weight_hh_back, bias_back, peephole_back))
        T, B, _, H = _layout("lstm", x, weight_ih, weight_hh, 4, len(runs), initial_h=initial_h, initial_c=initial_c)
        for suffix, ((w_ih, w_hh, b, p), _) in zip(("", "_back"), runs):  # bidirectional: the backward weights too
            _expect("lstm", f"weight_hh{suffix}", w_hh, (4 * H, H), f"for hidden size {H}")
            _expect("lstm", f"weight_ih{suffix}", w_ih, (4 * H, np.shape(x)[2]), f"for input size {np.shape(x)[2]} and hidden size {H}")
            _vector("lstm", f"bias{suffix}", b, 4 * H, H)
            _vector("lstm", f"peephole{suffix}", p, 3 * H, H)
        check_shape((T, B, len(runs) * H), 4, "lstm output sequence")
        x = np.asarray(x, dtype=np.float32)
        initial_h, initial_c = np.asarray(initial_h, np.float32), np.asarray(initial_c, np.float32)
        if B * H == 0:  # a state of no values: its steps compute nothing (and T may be any size)
            out = np.zeros((T, B, len(runs) * H), np.float32)
            h, c = initial_h.copy(), initial_c.copy()
            return (out if bool(output_sequence) else h[None]), h, c
        seqs, hs, cs = [], [], []
        for d, ((w_ih, w_hh, b, p), backward) in enumerate(runs):
            h0 = initial_h[:, d * H : (d + 1) * H]
            c0 = initial_c[:, d * H : (d + 1) * H]
            seq, h, c = self._run(x, h0, c0, _f32(w_ih), _f32(w_hh), _f32(b), _f32(p), backward, ra, ca, a,
                                  None if clip is None else float(clip), fp16)
            seqs.append(seq[::-1] if direction == "reverse" else seq)
            hs.append(h)
            cs.append(c)
        if len(runs) == 1:  # no concatenation: the sequence stays a view of the step buffer
            h, c, out = hs[0], cs[0], seqs[0]
        else:
            h, c, out = np.concatenate(hs, axis=-1), np.concatenate(cs, axis=-1), np.concatenate(seqs, axis=-1)
        return (out if bool(output_sequence) else h[None]), h, c

    @staticmethod
    def _run(x, h, c, w_ih, w_hh, b, peephole, backward, ra, ca, a, clip, fp16):
        """One direction: (output sequence in input order (T, B, H), final h, final c)."""
        if ra is _sigmoid and ca is np.tanh and a is np.tanh and peephole is None and clip is None:
            return Lstm._run_fast(x, h, c, w_ih, w_hh, b, backward, fp16)
        T, B = x.shape[:2]
        H = w_hh.shape[1]
        xw = _project(x, w_ih, b)  # (T, B, 4H)
        r_t = np.ascontiguousarray(w_hh.T)  # (H, 4H)
        h, c = np.array(h, np.float32), np.array(c, np.float32)
        seq = np.empty((T, B, H), dtype=np.float32)
        p_i = p_f = p_o = None
        if peephole is not None:
            p_i, p_f, p_o = peephole[:H], peephole[H : 2 * H], peephole[2 * H :]
        rc, rh = (Rounder(B * H), Rounder(B * H)) if fp16 else (None, None)
        for t in _steps(T, backward):
            g = xw[t] + h @ r_t  # (B, 4H) in ifoz order
            gi, gf, go, gz = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
            if p_i is not None:
                gi, gf = gi + p_i * c, gf + p_f * c
            c = ra(gf) * c + ra(gi) * ca(gz)
            if clip is not None:
                c = np.clip(c, -clip, clip)
            c = np.ascontiguousarray(c, dtype=np.float32)
            if fp16:
                rc(c)
            o = ra(go + p_o * c) if p_o is not None else ra(go)
            h = np.ascontiguousarray(o * a(c), dtype=np.float32)
            if fp16:
                rh(h)
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
        In fp16 mode c and h are rounded in place; with these activations |h| <= 1 and
        |c_t| <= |c_{t-1}| + 1, so when |c_0| + T stays clear of fp16's max nothing can overflow
        and the rounding skips its overflow passes.
        """
        T, B, I = x.shape
        H = w_hh.shape[1]
        half = np.ones((4 * H, 1), np.float32)
        half[: 3 * H] = 0.5  # ifoz (MIL): i, f, o are sigmoid gates
        bias = np.zeros((4 * H, 1), np.float32) if b is None else b[:, None]
        w = np.concatenate([w_ih, w_hh, bias], axis=1) * half  # (4H, I + H + 1)
        # Forward: step t reads U[t] = [x_t; h_{t-1}; 1] and writes h_t to U[t + 1].
        # Backward: step t reads U[t + 1] = [x_t; h_{t+1}; 1] and writes h_t to U[t].
        U = np.empty(check_shape((T + 1, I + H + 1, B), 4, "lstm (its step buffer)"), np.float32)
        xs = U[1:, :I] if backward else U[:T, :I]
        xs[...] = x.transpose(0, 2, 1)
        U[:, I + H] = 1.0
        U[0 if not backward else T, I : I + H] = h.T
        c = np.array(c.T, dtype=np.float32, order="C")  # (H, B), a copy: updated in place below
        g = np.empty((4 * H, B), np.float32)
        tmp = np.empty((H, B), np.float32)
        sig = g[: 3 * H]
        i, f, o, z = g[:H], g[H : 2 * H], g[2 * H : 3 * H], g[3 * H :]
        c_max = float(np.max(np.abs(c), initial=0.0))
        bounded = math.isfinite(c_max) and (c_max + T) * math.exp(T * 2.0**-10) < 65504.0
        if fp16:  # views for the in-place rounding, made once
            rounder = Rounder(H * B)
            e = np.empty((H, B), np.uint32)
            m, c_bits, U_bits = e.view(np.float32), c.view(np.uint32), U.view(np.uint32)
        for t in _steps(T, backward):
            read, write = (t + 1, t) if backward else (t, t + 1)
            np.matmul(w, U[read], out=g)
            np.tanh(g, out=g)  # z is done; i, f, o are tanh(v / 2)
            np.add(sig, 1.0, out=sig)
            np.multiply(sig, 0.5, out=sig)
            np.multiply(c, f, out=c)
            np.multiply(i, z, out=tmp)
            np.add(c, tmp, out=c)
            if fp16:
                if bounded:
                    round_in_range(c, c_bits, e, m)
                else:
                    rounder(c, False, zero_sign=False)
            np.tanh(c, out=tmp)
            h = U[write, I : I + H]
            np.multiply(o, tmp, out=h)
            if fp16:  # |h| <= 1
                round_in_range(h, U_bits[write, I : I + H], e, m)
        seq = U[:T, I : I + H] if backward else U[1:, I : I + H]  # (T, H, B)
        h = U[0 if backward else T, I : I + H]  # the last step's h (the initial one when T = 0)
        return seq.transpose(0, 2, 1), h.T.copy(), c.T.copy()


@kernel("lstm", opset="iOS17")
class LstmIOS17(Lstm):
    """iOS17: x, states and weights may be fp16 (before, lstm accepted fp32 only); maths unchanged."""


@kernel("rnn", opset="iOS15")
class Rnn(_Recurrent):
    """Simple recurrence h_t = activation(W_ih x_t + W_hh h_{t-1} + bias), one summed bias.

    Shapes: x (T, B, I); initial_h (B, H); weight_ih (H, I); weight_hh (H, H); bias (H,).
    Outputs: output (T or 1, B, H) and h (B, H); "reverse" returns the sequence in processing order.
    """

    def compute(self, *, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward",
                output_sequence=False, activation="tanh"):
        self._floats(x=x, initial_h=initial_h, weight_ih=weight_ih, weight_hh=weight_hh, bias=bias)
        act = _act(activation)
        fp16 = self._fp16()
        backward = _directions(_text(direction), None, None, ("forward", "reverse"))[0][1]
        T, B, _, H = _layout("rnn", x, weight_ih, weight_hh, 1, initial_h=initial_h)
        _vector("rnn", "bias", bias, H, H)
        check_shape((T, B, H), 4, "rnn output sequence")
        if B * H == 0:  # a state of no values: its steps compute nothing (and T may be any size)
            h = np.array(initial_h, np.float32)
            return (np.zeros((T, B, H), np.float32) if bool(output_sequence) else h[None]), h
        x = np.asarray(x, np.float32)
        xw = _project(x, _f32(weight_ih), _f32(bias))
        r_t = np.ascontiguousarray(_f32(weight_hh).T)
        h = np.array(initial_h, np.float32)
        seq = np.empty((x.shape[0], x.shape[1], r_t.shape[1]), np.float32)
        rounder = Rounder(h.size) if fp16 else None
        for k, t in enumerate(_steps(x.shape[0], backward)):
            h = np.ascontiguousarray(act(xw[t] + h @ r_t), dtype=np.float32)
            if fp16:
                rounder(h)
            seq[k] = h  # processing order
        return (seq if bool(output_sequence) else h[None]), h


@kernel("rnn", opset="iOS17")
class RnnIOS17(Rnn):
    """iOS17: fp16 values allowed; maths unchanged."""


@kernel("gru", opset="iOS15")
class Gru(_Recurrent):
    """Gated recurrent unit, MIL layout (weights and biases in r, o, z order):
        r = ra(W_r x + R_r h + b_r)      z = ra(W_z x + R_z h + b_z)
        o = a(W_o x + b_o + R_o (r * h))      h = (1 - z) * o + z * h_prev
    Shapes: x (T, B, I); initial_h (B, H); weight_ih (3H, I); weight_hh (3H, H); bias (3H,).
    Outputs: output (T or 1, B, H), h (B, H); "reverse" returns the sequence in processing order.
    (torch's nn.GRU is not converted to this op but to a while_loop.)
    """

    def compute(self, *, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward",
                output_sequence=False, recurrent_activation="sigmoid", activation="tanh"):
        return self._gru(x, initial_h, weight_ih, weight_hh, None, bias, direction, output_sequence,
                         recurrent_activation, activation, reset_after=False)

    def _gru(self, x, initial_h, weight_ih, weight_hh, input_bias, bias, direction, output_sequence,
             recurrent_activation, activation, reset_after):
        self._floats(x=x, initial_h=initial_h, weight_ih=weight_ih, weight_hh=weight_hh, bias=bias, input_bias=input_bias)
        ra, a = _act(recurrent_activation), _act(activation)
        T, B, _, H = _layout("gru", x, weight_ih, weight_hh, 3, initial_h=initial_h)
        _vector("gru", "bias", bias, 3 * H, H)
        _vector("gru", "input_bias", input_bias, 3 * H, H)
        check_shape((T, B, H), 4, "gru output sequence")
        if B * H == 0:  # a state of no values: its steps compute nothing (and T may be any size)
            h = np.array(initial_h, np.float32)
            return (np.zeros((T, B, H), np.float32) if bool(output_sequence) else h[None]), h
        x = np.asarray(x, np.float32)
        w_hh = _f32(weight_hh)
        fp16 = self._fp16()
        b_h = np.zeros(3 * H, np.float32) if bias is None else _f32(bias)
        xw = _project(x, _f32(weight_ih), _f32(input_bias))  # (T, B, 3H), input bias folded in
        r_rz = np.ascontiguousarray(np.concatenate([w_hh[:H], w_hh[2 * H :]]).T)  # (H, 2H): r, z
        r_o = np.ascontiguousarray(w_hh[H : 2 * H].T)  # (H, H)
        b_r, b_o, b_z = b_h[:H], b_h[H : 2 * H], b_h[2 * H :]
        h = np.array(initial_h, np.float32)
        seq = np.empty((x.shape[0], x.shape[1], H), np.float32)
        backward = _directions(_text(direction), None, None, ("forward", "reverse"))[0][1]
        rounder = Rounder(h.size) if fp16 else None
        for k, t in enumerate(_steps(x.shape[0], backward)):
            xt = xw[t]
            hrz = h @ r_rz  # (B, 2H)
            r = ra(xt[:, :H] + hrz[:, :H] + b_r)
            z = ra(xt[:, 2 * H :] + hrz[:, H:] + b_z)
            if reset_after:
                o = a(xt[:, H : 2 * H] + r * (h @ r_o + b_o))
            else:
                o = a(xt[:, H : 2 * H] + (r * h) @ r_o + b_o)
            h = np.ascontiguousarray((1 - z) * o + z * h, dtype=np.float32)
            if fp16:
                rounder(h)
            seq[k] = h  # processing order
        return (seq if bool(output_sequence) else h[None]), h


@kernel("gru", opset="iOS17")
class GruIOS17(Gru):
    """iOS17: fp16 values allowed; maths unchanged."""


@kernel("gru", opset="iOS18")
class GruIOS18(GruIOS17):
    """iOS18 adds ``reset_after`` (default False): True applies r after the recurrent product,
    o = a(W_o x + b_io + r * (R_o h + b_ho)), torch's nn.GRU; and ``input_bias`` (3H,), the b_i*
    terms added to the input projection (``bias`` then holds the b_h* terms).
    """

    def compute(self, *, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward",
                output_sequence=False, recurrent_activation="sigmoid", activation="tanh",
                reset_after=False, input_bias=None):
        return self._gru(x, initial_h, weight_ih, weight_hh, input_bias, bias, direction, output_sequence,
                         recurrent_activation, activation, reset_after=bool(reset_after))
