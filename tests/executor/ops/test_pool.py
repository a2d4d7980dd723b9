"""max_pool / avg_pool / l2_pool kernels against torch: 1 to 3 spatial axes, pads, ceil mode,
padding in or out of the average."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from .kernels import run

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@st.composite
def pool_case(draw, max_dims=3):
    sp = draw(st.integers(1, max_dims))
    k = [draw(st.integers(1, 3)) for _ in range(sp)]
    s = [draw(st.integers(1, 3)) for _ in range(sp)]
    p = [draw(st.integers(0, k[i] // 2)) for i in range(sp)]  # torch: pad at most half the kernel
    size = [draw(st.integers(k[i], 7)) for i in range(sp)]
    ceil = draw(st.booleans()) and sp <= 2  # MIL: ceil mode for 1-D and 2-D pools
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal([2, 3] + size).astype(np.float32)
    if ceil:
        # Unpadded, a ceil-mode window may start past the input: MIL keeps it (its output size rule
        # drops it only when padded), torch drops it. Not a case torch programs meet.
        for i in range(sp):
            out = -(-(size[i] + 2 * p[i] - k[i]) // s[i]) + 1
            assume(p[i] > 0 or (out - 1) * s[i] < size[i])
    return sp, x, k, s, p, ceil


def mil_args(k, s, p):
    pad = np.array([v for v in p for _ in (0, 1)], np.int32)
    return dict(kernel_sizes=np.array(k, np.int32), strides=np.array(s, np.int32), pad_type="custom", pad=pad)


@settings(max_examples=40, deadline=None)
@given(pool_case(), st.booleans())
def test_max_and_avg_pool_match_torch(case, exclude):
    sp, x, k, s, p, ceil = case
    xt = torch.as_tensor(x)
    want = MAX[sp](xt, k, s, p, ceil_mode=ceil).numpy()
    got = run("max_pool", x=x, ceil_mode=ceil, **mil_args(k, s, p))
    np.testing.assert_array_equal(got, want)
    want = AVG[sp](xt, k, s, p, ceil_mode=ceil, count_include_pad=not exclude).numpy()
    got = run("avg_pool", x=x, ceil_mode=ceil, exclude_padding_from_average=exclude, **mil_args(k, s, p))
    np.testing.assert_allclose(got, want, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(pool_case(max_dims=2))
def test_l2_pool_is_the_root_of_summed_squares(case):
    sp, x, k, s, p, ceil = case
    got = run("l2_pool", x=x, ceil_mode=ceil, **mil_args(k, s, p))
    out = MAX[sp](torch.as_tensor(x), k, s, p, ceil_mode=ceil).shape[2:]  # the same output size as max_pool
    assert got.shape[2:] == out
    # Zero padding (and positions past it) add nothing to a sum of squares.
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(p[i], p[i] + k[i] + s[i]) for i in range(sp)])
    want = np.empty(got.shape)
    for idx in np.ndindex(*out):
        window = xp[(Ellipsis,) + tuple(slice(j * s[i], j * s[i] + k[i]) for i, j in enumerate(idx))]
        want[(Ellipsis,) + idx] = np.sqrt(np.square(window).sum(axis=tuple(range(2, 2 + sp))))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_same_and_same_lower_padding():
    """Apple's avgpool same_lower case (kernel 2 over [1, 2] pads one zero before), and same."""
    x = np.array([[[1.0, 2.0]]], np.float32)
    got = run("avg_pool", x=x, kernel_sizes=np.array([2], np.int32), pad_type="same_lower")
    np.testing.assert_allclose(got, [[[0.5, 1.5]]])
    got = run("avg_pool", x=x, kernel_sizes=np.array([2], np.int32), pad_type="same")
    np.testing.assert_allclose(got, [[[1.5, 1.0]]])
    got = run("max_pool", x=-x, kernel_sizes=np.array([2], np.int32), pad_type="same")
    np.testing.assert_allclose(got, [[[-1.0, -2.0]]])  # the padding never wins a max
