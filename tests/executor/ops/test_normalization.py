"""Normalisation kernels against torch (batch, instance, layer norm, local response norm) and the
numpy reference of Apple's l2_norm test."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from .kernels import run

X = arrays(np.float32, array_shapes(min_dims=3, max_dims=5, min_side=2, max_side=4), elements=st.floats(-10, 10, width=32))
EPS = st.sampled_from([1e-5, 1e-3, 0.1])


@settings(max_examples=25, deadline=None)
@given(X, EPS, st.integers(0, 2**16), st.sampled_from(["iOS15", "iOS17"]))
@example(np.array([[[7, 7], [0, 0], [0, 0], [0, 0]], [[0, 0]] * 4], np.float32), 1e-5, 17, "iOS15")  # a constant channel
def test_batch_and_instance_norm_match_torch(x, eps, seed, opset):
    rng = np.random.default_rng(seed)
    c = x.shape[1]
    mean, gamma, beta = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    var = rng.random(c).astype(np.float32) + 0.1
    # torch in float64: in float32 its instance-norm variance of a constant channel is not exactly 0
    # (x = [7, 7] gives beta - 2e-4), while the exact answer, beta, is what the executor returns
    t = [torch.as_tensor(v.astype(np.float64)) for v in (x, mean, var, gamma, beta)]
    want = F.batch_norm(*t, eps=eps)
    got = run("batch_norm", opset=opset, x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=np.float32(eps))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-5)
    want = F.instance_norm(t[0], weight=t[3], bias=t[4], eps=eps)
    got = run("instance_norm", opset=opset, x=x, gamma=gamma, beta=beta, epsilon=np.float32(eps))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(X, EPS, st.data())
def test_layer_norm_over_any_axes(x, eps, data):
    """Apple's _np_layer_norm: gamma / beta laid along the normalised axes, wherever they are."""
    rank = x.ndim
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank, unique_by=lambda a: a % rank))
    pos = sorted(a % rank for a in axes)
    shape = [x.shape[i] if i in pos else 1 for i in range(rank)]
    gamma = data.draw(arrays(np.float32, [x.shape[i] for i in pos], elements=st.floats(-2, 2, width=32)))
    beta = data.draw(arrays(np.float32, [x.shape[i] for i in pos], elements=st.floats(-2, 2, width=32)))
    xd = x.astype(np.float64)
    num = xd - xd.mean(axis=tuple(pos), keepdims=True)
    want = num / np.sqrt(np.square(num).mean(axis=tuple(pos), keepdims=True) + eps) * gamma.reshape(shape) + beta.reshape(shape)
    got = run("layer_norm", x=x, axes=np.array(axes, np.int32), gamma=gamma, beta=beta, epsilon=np.float32(eps))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    if pos == list(range(rank - len(pos), rank)):  # trailing axes: torch's layer_norm
        want = F.layer_norm(torch.as_tensor(x), gamma.shape, torch.as_tensor(gamma), torch.as_tensor(beta), eps)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(X, st.sampled_from([1e-10, 1e-6, 1.0, 100.0]))
def test_l2_norm_over_the_last_three_axes(x, eps):
    """Apple's TestNormalizationL2Norm._compute_l2_norm: leading axes batch, epsilon inside the root."""
    lead = x.shape[: x.ndim - 3]
    flat = x.reshape(int(np.prod(lead)), -1).astype(np.float64)
    want = (flat / np.sqrt(np.square(flat).sum(axis=1, keepdims=True) + eps)).reshape(x.shape)
    np.testing.assert_allclose(run("l2_norm", x=x, epsilon=np.float32(eps)), want, atol=1e-6, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(X, st.integers(1, 5), st.sampled_from([1e-4, 0.01]), st.sampled_from([0.75, 1.0]), st.sampled_from([1.0, 2.0]))
def test_local_response_norm_is_torchs_across_axis_minus_3(x, size, alpha, beta, k):
    """torch normalises across axis 1: the same as Core ML's axis -3 for rank 4, moved for the others."""
    moved = np.ascontiguousarray(np.moveaxis(x, -3, 1))
    want = np.moveaxis(torch.nn.LocalResponseNorm(size, alpha, beta, k)(torch.as_tensor(moved)).numpy(), 1, -3)
    got = run("local_response_norm", x=x, size=np.int32(size), alpha=np.float32(alpha), beta=np.float32(beta), k=np.float32(k))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_local_response_norm_on_apples_smoke_case():
    """coremltools' TestNormalizationLocalResponseNorm smoke values (rank 3: axis 0 holds the channels)."""
    x = np.array([[[1.0, -7.0], [5.0, -6.0], [-3.0, -5.0]]], dtype=np.float32)
    want = [[[0.99996257, -6.98716545], [4.99531746, -5.99191284], [-2.99898791, -4.99531746]]]
    np.testing.assert_allclose(run("local_response_norm", x=x, size=np.int32(2)), want, atol=1e-6)
