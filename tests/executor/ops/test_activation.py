"""Activation kernels against torch's functional forms (numpy where torch has none)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from .kernels import run

X = arrays(np.float32, array_shapes(min_dims=3, max_dims=5, max_side=4), elements=st.floats(-20, 20, width=32))
ALPHA = st.floats(0.0625, 3.0, width=32)
T = torch.as_tensor

CASES = {
    "relu": (lambda x, a, b: F.relu(T(x)), {}),
    "relu6": (lambda x, a, b: F.relu6(T(x)), {}),
    "sigmoid": (lambda x, a, b: torch.sigmoid(T(x)), {}),
    "silu": (lambda x, a, b: F.silu(T(x)), {}),
    "softplus": (lambda x, a, b: F.softplus(T(x)), {}),
    "softsign": (lambda x, a, b: F.softsign(T(x)), {}),
    "elu": (lambda x, a, b: F.elu(T(x), a), {"alpha": "a"}),
    "leaky_relu": (lambda x, a, b: F.leaky_relu(T(x), a), {"alpha": "a"}),
    "thresholded_relu": (lambda x, a, b: F.threshold(T(x), a, 0.0) + (T(x) == a) * a, {"alpha": "a"}),
    "linear_activation": (lambda x, a, b: a * T(x) + b, {"alpha": "a", "beta": "b"}),
    "scaled_tanh": (lambda x, a, b: a * torch.tanh(b * T(x)), {"alpha": "a", "beta": "b"}),
    "sigmoid_hard": (lambda x, a, b: torch.clamp(a * T(x) + b, 0, 1), {"alpha": "a", "beta": "b"}),
    "clamped_relu": (lambda x, a, b: torch.where(T(x) >= 0, torch.clamp(T(x), max=b), torch.clamp(a * T(x), max=b)), {"alpha": "a", "beta": "b"}),
}


@settings(max_examples=8, deadline=None)
@pytest.mark.parametrize("op", sorted(CASES))
@given(x=X, a=ALPHA, b=ALPHA, opset=st.sampled_from(["iOS15", "iOS17"]))
def test_activation_matches_torch(op, x, a, b, opset):
    ref, params = CASES[op]
    kwargs = {k: np.float32(a if v == "a" else b) for k, v in params.items()}
    got = run(op, opset=opset, x=x, **kwargs)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref(x, np.float32(a), np.float32(b)).numpy(), atol=1e-5, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(x=X, mode=st.sampled_from(["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"]))
def test_gelu_modes(x, mode):
    xt = T(x)
    want = {"EXACT": F.gelu(xt), "TANH_APPROXIMATION": F.gelu(xt, approximate="tanh"),
            "SIGMOID_APPROXIMATION": xt * torch.sigmoid(1.702 * xt)}[mode]
    np.testing.assert_allclose(run("gelu", x=x, mode=mode), want.numpy(), atol=2e-6, rtol=1e-5)


@settings(max_examples=15, deadline=None)
@given(x=X, data=st.data())
def test_per_channel_activations(x, data):
    c = x.shape[1]
    alpha = data.draw(arrays(np.float32, c, elements=ALPHA))
    beta = data.draw(arrays(np.float32, c, elements=ALPHA))
    np.testing.assert_allclose(run("prelu", x=x, alpha=alpha), F.prelu(T(x), T(alpha)).numpy(), atol=1e-6)
    shape = (1, c) + (1,) * (x.ndim - 2)
    want = alpha.reshape(shape) * np.logaddexp(0, x * beta.reshape(shape))
    np.testing.assert_allclose(run("softplus_parametric", x=x, alpha=alpha, beta=beta), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="alpha must be a vector of length x.shape"):
        run("prelu", x=x, alpha=np.ones(c + 1, np.float32))


@settings(max_examples=15, deadline=None)
@given(x=X, data=st.data())
def test_softmax_along_any_axis(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    np.testing.assert_allclose(run("softmax", x=x, axis=np.int32(axis)), torch.softmax(T(x), axis).numpy(), atol=1e-6)


def test_fp16_parameters_are_applied_in_float32():
    """An fp16 alpha arrives as a float16 immediate; x (held in float32) keeps its dtype."""
    x = np.array([-2.0, 3.0], np.float32)
    got = run("leaky_relu", opset="iOS17", x=x, alpha=np.float16(0.1))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [-2 * np.float32(np.float16(0.1)), 3.0])
