"""conv and conv_transpose kernels against torch, over 1 to 3 spatial axes, groups, strides,
dilations and every pad type."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@st.composite
def conv_case(draw, transpose=False):
    sp = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = [draw(st.integers(1, 3)) for _ in range(sp)]
    s = [draw(st.integers(1, 3)) for _ in range(sp)]
    d = [draw(st.integers(1, 2)) for _ in range(sp)]
    size = [draw(st.integers((k[i] - 1) * d[i] + 1, 7)) for i in range(sp)]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal([n, c_in] + size).astype(np.float32)
    w_shape = [c_in, c_out // groups] + k if transpose else [c_out, c_in // groups] + k
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32) if draw(st.booleans()) else None
    return sp, groups, x, w, b, k, s, d


@settings(max_examples=40, deadline=None)
@given(conv_case(), st.sampled_from(["valid", "custom", "same", "same_lower"]), st.data())
def test_conv_matches_torch(case, pad_type, data):
    sp, groups, x, w, b, k, s, d = case
    eff = [(k[i] - 1) * d[i] + 1 for i in range(sp)]
    if pad_type == "custom":
        pad = [data.draw(st.integers(0, 2)) for _ in range(2 * sp)]
    elif pad_type == "valid":
        pad = [0] * (2 * sp)
    else:  # the paddings MIL's shape inference gives same / same_lower
        pad = []
        for i in range(sp):
            total = max((-(-x.shape[2 + i] // s[i]) - 1) * s[i] + eff[i] - x.shape[2 + i], 0)
            lo, hi = total // 2, total - total // 2
            pad += [lo, hi] if pad_type == "same" else [hi, lo]
    xp = F.pad(torch.as_tensor(x), [v for i in reversed(range(sp)) for v in pad[2 * i : 2 * i + 2]])
    want = CONV[sp](xp, torch.as_tensor(w), None if b is None else torch.as_tensor(b), stride=s, dilation=d, groups=groups)
    got = run("conv", opset="iOS17", x=x, weight=w, bias=b, strides=np.array(s, np.int32), pad_type=pad_type,
              pad=np.array(pad, np.int32), dilations=np.array(d, np.int32), groups=np.int32(groups))
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
    if pad_type == "same" and s == [1] * sp:
        assert got.shape[2:] == x.shape[2:]


@settings(max_examples=40, deadline=None)
@given(conv_case(transpose=True), st.data())
def test_conv_transpose_matches_torch(case, data):
    sp, groups, x, w, b, k, s, d = case
    padding = [data.draw(st.integers(0, (k[i] - 1) * d[i])) for i in range(sp)]
    # torch's output_padding must be smaller than the stride or the dilation.
    out_pad = [data.draw(st.integers(0, max(s[i], d[i]) - 1)) for i in range(sp)]
    want = DECONV[sp](torch.as_tensor(x), torch.as_tensor(w), None if b is None else torch.as_tensor(b), stride=s,
                      padding=padding, output_padding=out_pad, groups=groups, dilation=d).numpy()
    pad = np.array([p for p in padding for _ in (0, 1)], np.int32)
    kwargs = dict(x=x, weight=w, bias=b, strides=np.array(s, np.int32), pad_type="custom", pad=pad, dilations=np.array(d, np.int32),
                  groups=np.int32(groups))
    if any(out_pad):
        kwargs["output_shape"] = np.array(want.shape, np.int32)  # the extra rows: past the crop, from the full result
    got = run("conv_transpose", opset="iOS17", **kwargs)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_conv_transpose_same_and_valid_sizes():
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 4)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((2, 3, 3, 2)).astype(np.float32)
    full = run("conv_transpose", x=x, weight=w, strides=np.array([2, 3], np.int32), pad_type="valid")
    want = F.conv_transpose2d(torch.as_tensor(x), torch.as_tensor(w), stride=(2, 3)).numpy()
    np.testing.assert_allclose(full, want, atol=1e-5)
    same = run("conv_transpose", x=x, weight=w, strides=np.array([2, 3], np.int32), pad_type="same")
    assert same.shape == (1, 3, 10, 12)
    # same crops max(F - D * s, 0), half of it before: F = (11, 11) here, so rows 0..9 and columns 0..10, then a zero column.
    np.testing.assert_allclose(same[..., :10, :11], want[..., 0:10, 0:11], atol=1e-5)
    assert not same[..., 11].any()


def test_conv_refuses_mismatched_groups():
    with pytest.raises(ValueError, match="conv: x has 3 channels and weight shape"):
        run("conv", x=np.zeros((1, 3, 4), np.float32), weight=np.zeros((2, 2, 1), np.float32), groups=np.int32(1))
