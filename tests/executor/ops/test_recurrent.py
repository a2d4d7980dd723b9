"""lstm / gru / rnn kernels against torch and against the numpy references of Apple's op tests
(coremltools' ops/tests/iOS14/test_recurrent.py), which fix the semantics Core ML runs:
reverse outputs in processing order, lstm clip on the cell state, gru's reset before the
recurrent matmul unless iOS18's reset_after."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coreml_lstm.executor.fp16 import round_fp16

from .kernels import run

SHAPES = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 6))  # T, B, I, H


def ifgo_to_ifoz(w):
    """torch's gate order -> MIL's (the reorder the converter does)."""
    i, f, g, o = np.split(np.asarray(w), 4)
    return np.concatenate([i, f, o, g])


def torch_lstm(T, B, I, H, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    m = torch.nn.LSTM(I, H, bidirectional=bidirectional)
    d = 2 if bidirectional else 1
    x, h0, c0 = torch.randn(T, B, I), torch.randn(d, B, H), torch.randn(d, B, H)
    return m, x, h0, c0


def mil_weights(m, suffix=""):
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    return (ifgo_to_ifoz(sd[f"weight_ih_l0{suffix}"]), ifgo_to_ifoz(sd[f"weight_hh_l0{suffix}"]),
            ifgo_to_ifoz(sd[f"bias_ih_l0{suffix}"] + sd[f"bias_hh_l0{suffix}"]))


def states(t):
    """torch (D, B, H) -> MIL (B, D*H) as [forward | backward]."""
    return np.concatenate(list(t.numpy()), axis=-1)


@settings(max_examples=15, deadline=None)
@given(SHAPES, st.booleans())
def test_lstm_matches_torch_forward_and_bidirectional(shape, bidirectional):
    T, B, I, H = shape
    m, x, h0, c0 = torch_lstm(T, B, I, H, bidirectional)
    with torch.no_grad():
        y, (hn, cn) = m(x, (h0, c0))
    w_ih, w_hh, b = mil_weights(m)
    kw = {}
    if bidirectional:
        kw = dict(zip(("weight_ih_back", "weight_hh_back", "bias_back"), mil_weights(m, "_reverse")))
    out, h, c = run("lstm", x=x.numpy(), initial_h=states(h0), initial_c=states(c0), weight_ih=w_ih, weight_hh=w_hh, bias=b,
                    direction="bidirectional" if bidirectional else "forward", output_sequence=True, outputs=3, **kw)
    np.testing.assert_allclose(out, y.numpy(), atol=1e-5)  # bidirectional: backward half in input order, as torch
    np.testing.assert_allclose(h, states(hn), atol=1e-5)
    np.testing.assert_allclose(c, states(cn), atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(SHAPES, st.booleans())
def test_reverse_returns_outputs_in_processing_order(shape, output_sequence):
    """Apple's test_builder_to_backend_smoke_unilstm / TestRNN: torch run on the flipped input."""
    T, B, I, H = shape
    m, x, h0, c0 = torch_lstm(T, B, I, H)
    with torch.no_grad():
        y, (hn, cn) = m(torch.flip(x, [0]), (h0, c0))
    w_ih, w_hh, b = mil_weights(m)
    out, h, c = run("lstm", x=x.numpy(), initial_h=h0[0].numpy(), initial_c=c0[0].numpy(), weight_ih=w_ih, weight_hh=w_hh, bias=b,
                    direction="reverse", output_sequence=output_sequence, outputs=3)
    np.testing.assert_allclose(out, y.numpy() if output_sequence else y.numpy()[-1:], atol=1e-5)
    np.testing.assert_allclose(h, hn[0].numpy(), atol=1e-5)
    torch.manual_seed(1)
    r = torch.nn.RNN(I, H)
    with torch.no_grad():
        y, hn = r(torch.flip(x, [0]), h0)
    sd = {k: v.detach().numpy() for k, v in r.state_dict().items()}
    out, h = run("rnn", x=x.numpy(), initial_h=h0[0].numpy(), weight_ih=sd["weight_ih_l0"], weight_hh=sd["weight_hh_l0"],
                 bias=sd["bias_ih_l0"] + sd["bias_hh_l0"], direction="reverse", output_sequence=True, outputs=2)
    np.testing.assert_allclose(out, y.numpy(), atol=1e-5)
    np.testing.assert_allclose(h, hn[0].numpy(), atol=1e-5)


ACTS = {"tanh": np.tanh, "scaled_tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "linear": lambda v: v,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0, 1)}


def numpy_lstm(x, w_ih, w_hh, b, p, clip, acts):
    """Apple's _get_numpy_prediction_lstm_single_batch, batched: zero state, peepholes, c clipped after its update."""
    a1, a2, a3 = (ACTS[a] for a in acts)
    T, B, _ = x.shape
    H = w_hh.shape[1]
    Wi, Wf, Wo, Wz = np.split(w_ih, 4)
    Ri, Rf, Ro, Rz = np.split(w_hh, 4)
    bi, bf, bo, bz = np.split(b, 4)
    pi, pf, po = np.split(p, 3)
    h, c, out = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):
        xt = x[t]
        i = a1(xt @ Wi.T + h @ Ri.T + bi + c * pi)
        f = a1(xt @ Wf.T + h @ Rf.T + bf + c * pf)
        z = a2(xt @ Wz.T + h @ Rz.T + bz)
        c = np.clip(c * f + i * z, -clip, clip)
        o = a1(xt @ Wo.T + h @ Ro.T + bo + c * po)
        h = o * a3(c)
        out.append(h)
    return np.stack(out), h, c


@settings(max_examples=25, deadline=None)
@given(SHAPES, st.sampled_from([50.0, 0.2, 0.01]), st.sampled_from(list(ACTS)), st.sampled_from(["tanh", "relu", "sigmoid"]),
       st.sampled_from(["sigmoid", "hard_sigmoid"]), st.integers(0, 2**16))
def test_lstm_peepholes_clip_and_activations_match_apples_reference(shape, clip, outer, cell, rec, seed):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    w_ih, w_hh = rng.random((4 * H, I)).astype(np.float32), rng.random((4 * H, H)).astype(np.float32)
    b = (rng.random(4 * H) - 0.5).astype(np.float32)
    p = (rng.random(3 * H) - 0.5).astype(np.float32)
    x = rng.random((T, B, I)).astype(np.float32)
    zeros = np.zeros((B, H), np.float32)
    out, h, c = run("lstm", x=x, initial_h=zeros, initial_c=zeros, weight_ih=w_ih, weight_hh=w_hh, bias=b, peephole=p,
                    output_sequence=True, recurrent_activation=rec, cell_activation=cell, activation=outer,
                    clip=np.float32(clip), outputs=3)
    want, hw, cw = numpy_lstm(x.astype(np.float64), w_ih, w_hh, b, p, clip, (rec, cell, outer))
    np.testing.assert_allclose(out, want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(c, cw, atol=1e-4, rtol=1e-4)
    assert np.all(np.abs(c) <= clip)


def numpy_lstm16(x, w_ih, w_hh, b, h, c, backward):
    """The fp16 program's typing: c and h rounded to fp16 after every step (a float16 cast)."""
    T = x.shape[0]
    H = w_hh.shape[1]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    out = np.empty((T,) + h.shape, np.float32)
    for t in range(T - 1, -1, -1) if backward else range(T):
        g = x[t] @ w_ih.T + h @ w_hh.T + b
        i, f, o, z = sig(g[:, :H]), sig(g[:, H : 2 * H]), sig(g[:, 2 * H : 3 * H]), np.tanh(g[:, 3 * H :])
        c = (f * c + i * z).astype(np.float16).astype(np.float32)
        h = (o * np.tanh(c)).astype(np.float16).astype(np.float32)
        out[t] = h
    return out, h, c


@settings(max_examples=10, deadline=None)
@given(SHAPES, st.sampled_from(["forward", "reverse"]))
def test_fp16_mode_rounds_the_state_at_every_step(shape, direction):
    T, B, I, H = shape
    m, x, h0, c0 = torch_lstm(T, B, I, H)
    w_ih, w_hh, b = (round_fp16(w) for w in mil_weights(m))
    x, h0, c0 = (round_fp16(v.numpy()) for v in (x, h0[0], c0[0]))
    out, h, c = run("lstm", run_mode="fp16", out_dtype=np.float16, x=x, initial_h=h0, initial_c=c0, weight_ih=w_ih, weight_hh=w_hh,
                    bias=b, direction=direction, output_sequence=True, outputs=3)
    want, hw, cw = numpy_lstm16(x, w_ih, w_hh, b, h0, c0, direction == "reverse")
    if direction == "reverse":
        want = want[::-1]
    for got in (out, h, c):
        assert np.array_equal(got, round_fp16(got))  # every value is an fp16 value
    # Same typing, float32 maths in a different order: values agree to a few fp16 ulps.
    np.testing.assert_allclose(out, want, atol=4e-3, rtol=4e-3)
    np.testing.assert_allclose(c, cw, atol=4e-3, rtol=4e-3)
    fp32 = run("lstm", x=x, initial_h=h0, initial_c=c0, weight_ih=w_ih, weight_hh=w_hh, bias=b, direction=direction,
               output_sequence=True, outputs=3)[0]
    if np.abs(fp32 - round_fp16(fp32)).max() > 0:
        assert not np.array_equal(out, fp32)  # fp16 mode does round


def numpy_gru(x, h, w_ih, w_hh, b, acts, backward):
    """Apple's get_numpy_prediction_gru_single_batch, batched: o = a(W_o x + R_o (r * h) + b_o), processing order."""
    ra, a = ACTS[acts[0]], ACTS[acts[1]]
    (Wr, Wo, Wz), (Rr, Ro, Rz), (br, bo, bz) = np.split(w_ih, 3), np.split(w_hh, 3), np.split(b, 3)
    out = []
    for xt in (x[::-1] if backward else x):
        z = ra(xt @ Wz.T + h @ Rz.T + bz)
        r = ra(xt @ Wr.T + h @ Rr.T + br)
        o = a(xt @ Wo.T + (h * r) @ Ro.T + bo)
        h = (1 - z) * o + z * h
        out.append(h)
    return np.stack(out), h


@settings(max_examples=20, deadline=None)
@given(SHAPES, st.sampled_from(["forward", "reverse"]), st.sampled_from([("sigmoid", "tanh"), ("tanh", "sigmoid")]),
       st.sampled_from(["iOS15", "iOS17", "iOS18"]), st.integers(0, 2**16))
def test_gru_resets_before_the_recurrent_matmul(shape, direction, acts, opset, seed):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    w_ih, w_hh = (2 * rng.random((3 * H, I)) - 1).astype(np.float32), (2 * rng.random((3 * H, H)) - 1).astype(np.float32)
    b = (2 * rng.random(3 * H) - 1).astype(np.float32)
    x, h0 = rng.random((T, B, I)).astype(np.float32), rng.random((B, H)).astype(np.float32)
    out, h = run("gru", opset=opset, x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=b, direction=direction,
                 output_sequence=True, recurrent_activation=acts[0], activation=acts[1], outputs=2)
    want, hw = numpy_gru(x.astype(np.float64), h0, w_ih, w_hh, b, acts, direction == "reverse")
    np.testing.assert_allclose(out, want, atol=1e-5)
    np.testing.assert_allclose(h, hw, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(SHAPES)
def test_gru_reset_after_is_torchs_gru(shape):
    T, B, I, H = shape
    torch.manual_seed(2)
    m = torch.nn.GRU(I, H)
    x, h0 = torch.randn(T, B, I), torch.randn(1, B, H)
    with torch.no_grad():
        y, hn = m(x, h0)
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    roz = lambda w: np.concatenate([w[:H], w[2 * H :], w[H : 2 * H]])  # noqa: E731  torch r, z, n -> MIL r, o, z
    out, h = run("gru", opset="iOS18", x=x.numpy(), initial_h=h0[0].numpy(), weight_ih=roz(sd["weight_ih_l0"]),
                 weight_hh=roz(sd["weight_hh_l0"]), input_bias=roz(sd["bias_ih_l0"]), bias=roz(sd["bias_hh_l0"]),
                 reset_after=True, output_sequence=True, outputs=2)
    np.testing.assert_allclose(out, y.numpy(), atol=1e-5)
    np.testing.assert_allclose(h, hn[0].numpy(), atol=1e-5)


def test_gru_before_ios18_has_no_reset_after():
    with pytest.raises(TypeError):
        run("gru", opset="iOS17", x=np.zeros((1, 1, 1), np.float32), initial_h=np.zeros((1, 1), np.float32),
            weight_ih=np.zeros((3, 1), np.float32), weight_hh=np.zeros((3, 1), np.float32), reset_after=True, outputs=2)


def test_unknown_activation_and_direction_are_refused():
    args = dict(x=np.zeros((1, 1, 1), np.float32), initial_h=np.zeros((1, 1), np.float32), weight_ih=np.zeros((1, 1), np.float32),
                weight_hh=np.zeros((1, 1), np.float32), outputs=2)
    with pytest.raises(ValueError, match="activation 'dummy' is not supported"):
        run("rnn", activation="dummy", **args)
    with pytest.raises(ValueError, match="direction 'bidirectional' is not one of forward, reverse"):
        run("rnn", direction="bidirectional", **args)


# -- bounds: what a recurrent op allocates, and how many steps it takes ------------------------

import tracemalloc  # noqa: E402

from coreml_lstm.executor import limits  # noqa: E402

from ..hostile import deadline  # noqa: E402


def zeros(*shape):
    return np.zeros(shape, np.float32)


def lstm_args(T, B, I, H, H_hh=None, **extra):
    """An lstm's inputs for hidden size H; ``H_hh``: weight_hh's (and the states') if it differs."""
    Hh = H if H_hh is None else H_hh
    return dict(x=zeros(T, B, I), initial_h=zeros(B, Hh), initial_c=zeros(B, Hh), weight_ih=zeros(4 * H, I),
                weight_hh=zeros(4 * H, Hh), bias=zeros(4 * H), outputs=3, **extra)


# Weights and states whose shapes disagree (4 gate rows of one hidden unit, a weight_hh of 4096
# columns): each is small, but the lstm with other activations and the gru made their (64, 1, 4096)
# output sequence (1 MiB, past the 256 KiB bound) before numpy's shapes disagreed; the rnn ran an
# initial_h of another batch (broadcast into a result no valid program has); the rest failed in
# numpy's words (operands could not be broadcast together with shapes (4,4098) (16384,1)).
DISAGREEING = {
    "lstm": ("lstm", lstm_args(64, 1, 1, 1, H_hh=4096), r"lstm: weight_hh is \(4, 4096\); for hidden size 4096 it must be \(16384, 4096\)"),
    "lstm relu": ("lstm", lstm_args(64, 1, 1, 1, H_hh=4096, activation="relu"), r"lstm: weight_hh is \(4, 4096\)"),
    "lstm weight_ih": ("lstm", {**lstm_args(64, 1, 3, 8), "weight_ih": zeros(32, 2)},
                       r"lstm: weight_ih is \(32, 2\); for input size 3 and hidden size 8 it must be \(32, 3\)"),
    "lstm bias": ("lstm", {**lstm_args(4, 1, 3, 8), "bias": zeros(8)}, r"lstm: bias is \(8,\); for hidden size 8 it must be \(32,\)"),
    "lstm peephole": ("lstm", {**lstm_args(4, 1, 3, 8), "peephole": zeros(8)}, r"lstm: peephole is \(8,\); for hidden size 8 it must be \(24,\)"),
    "lstm x rank": ("lstm", {**lstm_args(4, 1, 3, 8), "x": zeros(4, 3)}, r"lstm: x is \(4, 3\); it must be \(T, B, I\)"),
    "rnn": ("rnn", dict(x=zeros(64, 1, 1), initial_h=zeros(1, 4096), weight_ih=zeros(1, 1), weight_hh=zeros(1, 4096), outputs=2),
            r"rnn: weight_hh is \(1, 4096\); for hidden size 4096 it must be \(4096, 4096\)"),
    "rnn initial_h": ("rnn", dict(x=zeros(4, 2, 1), initial_h=zeros(1, 3), weight_ih=zeros(3, 1), weight_hh=zeros(3, 3), outputs=2),
                      r"rnn: initial_h is \(1, 3\); for batch 2 and hidden size 3 it must be \(2, 3\)"),
    "gru": ("gru", dict(x=zeros(64, 1, 1), initial_h=zeros(1, 4096), weight_ih=zeros(3, 1), weight_hh=zeros(3, 4096), outputs=2),
            r"gru: weight_hh is \(3, 4096\); for hidden size 4096 it must be \(12288, 4096\)"),
}


@pytest.mark.parametrize("case", list(DISAGREEING))
def test_weights_that_disagree_are_refused_before_anything_is_made(case, monkeypatch):
    op, args, message = DISAGREEING[case]
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", 256 << 10)  # every input fits; what they made did not
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            run(op, opset="iOS17", **args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 10, peak


def test_the_fast_lstm_step_buffer_is_checked_before_it_is_made(monkeypatch):
    """Its buffer of every step's [x; h; 1] is a little larger than x: an x at the bound is refused."""
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", 256 << 10)
    with pytest.raises(limits.TooLarge, match=r"lstm \(its step buffer\) of shape \(65, 1029, 1\) would need 261.3 KiB"):
        run("lstm", **lstm_args(64, 1, 1024, 4))


@pytest.mark.parametrize("T, B, I, H", [(1 << 40, 1, 0, 0), (1 << 40, 0, 3, 4)])
@pytest.mark.parametrize("op", ["lstm", "lstm relu", "rnn", "gru"])
def test_a_sequence_of_no_values_takes_no_steps(op, T, B, I, H):
    """x of 2^40 steps holding no values (no batch, or no features and no hidden units) fits any
    memory bound; its steps compute nothing and are not taken (they were: days of empty steps)."""
    G = {"lstm": 4, "lstm relu": 4, "rnn": 1, "gru": 3}[op]
    args = dict(x=zeros(T, B, I), initial_h=zeros(B, H), weight_ih=zeros(G * H, I), weight_hh=zeros(G * H, H), output_sequence=True)
    if op.startswith("lstm"):
        args.update(initial_c=zeros(B, H), outputs=3, **({"activation": "relu"} if op == "lstm relu" else {}))
    else:
        args.update(outputs=2)
    with deadline(10):
        out = run(op.split()[0], opset="iOS17", **args)
    assert out[0].shape == (T, B, H) and all(o.size == 0 for o in out)
