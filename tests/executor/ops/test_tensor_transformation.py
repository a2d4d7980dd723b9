"""Tensor transformation kernels against numpy slicing, torch's layout ops and plain loops."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


FAST = settings(max_examples=60, deadline=None)


@st.composite
def slice_case(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    ints = st.integers(-7, 7)
    begin = [draw(ints) for _ in shape]
    end = [draw(ints) for _ in shape]
    stride = [draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for _ in shape]
    masks = [[draw(st.booleans()) for _ in shape] for _ in range(2)]
    squeeze = [draw(st.booleans()) and -d <= b < d for b, d in zip(begin, shape)]
    return shape, begin, end, stride, masks[0], masks[1], squeeze


@FAST
@given(slice_case())
def test_slice_by_index_is_numpy_slicing(case):
    shape, begin, end, stride, bm, em, sm = case
    x = np.arange(int(np.prod(shape))).reshape(shape)
    index = tuple(b if s else slice(None if m else b, None if n else e, st_)
                  for b, e, st_, m, n, s in zip(begin, end, stride, bm, em, sm))
    got = call("slice_by_index", x=x, begin=np.array(begin), end=np.array(end), stride=np.array(stride),
               begin_mask=np.array(bm), end_mask=np.array(em), squeeze_mask=np.array(sm))
    np.testing.assert_array_equal(got, x[index])


def test_a_squeezed_index_out_of_its_axis_names_the_index_and_the_size():
    """It said 'squeezed index of axis 1 2 is out of range for rank 2' of a rank-3 tensor."""
    with pytest.raises(ValueError, match=r"^squeezed index 2 of axis 1 is out of range for its size 2$"):
        call("slice_by_index", x=np.zeros((4, 2, 3), np.float32), begin=np.array([0, 2, 0]), end=np.array([4, 3, 3]),
             squeeze_mask=np.array([False, True, False]))
    got = call("slice_by_index", x=np.arange(24, dtype=np.float32).reshape(4, 2, 3), begin=np.array([0, -1, 0]), end=np.array([4, 0, 3]),
               squeeze_mask=np.array([False, True, False]))
    np.testing.assert_array_equal(got, np.arange(24, dtype=np.float32).reshape(4, 2, 3)[:, -1, :])


def test_slice_update_writes_the_slice():
    x = np.zeros((3, 4), np.float32)
    got = call("slice_update", "iOS18", x=x, update=np.ones(2, np.float32), begin=np.array([1, 3]), end=np.array([0, 0]),
               stride=np.array([1, -2]), squeeze_mask=np.array([True, False]))
    want = x.copy()
    want[1, 3::-2] = 1
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="update of shape"):
        call("slice_update", "iOS18", x=x, update=np.ones(3, np.float32), begin=np.array([0, 0]), end=np.array([1, 2]))


def test_slice_by_size_counts_negative_begins_from_the_end():
    x = np.arange(20).reshape(4, 5)
    np.testing.assert_array_equal(call("slice_by_size", x=x, begin=np.array([-2, 1]), size=np.array([2, -1])), x[2:4, 1:])
    with pytest.raises(ValueError, match="does not fit"):
        call("slice_by_size", x=x, begin=np.array([3, 0]), size=np.array([2, 1]))


def test_reshape_zeros_by_opset():
    x = np.zeros((2, 50))
    assert call("reshape", "iOS15", x=x, shape=np.array([0, -1])).shape == (2, 50)
    assert call("reshape", "iOS17", x=x, shape=np.array([1, 0, -1, 0])).shape == (1, 1, 2, 50)
    with pytest.raises(ValueError, match="before iOS17"):
        call("reshape", "iOS16", x=x, shape=np.array([1, 0, -1, 0]))


def test_reshape_like_concatenates_reference_shapes():
    refs = [np.zeros((2, 3, 4)), np.zeros((1, 5, 6))]
    got = call("reshape_like", "iOS16", x=np.arange(180), ref_tensors=refs, begins=[0, 1], ends=[2, 0], end_masks=[False, True])
    assert got.shape == (2, 3, 5, 6)


def test_squeeze_and_expand_dims_axes():
    x = np.zeros((1, 3, 1, 2))
    assert call("squeeze", x=x, axes=np.array([0, 1, -2])).shape == (3, 2)  # a size-3 axis is kept, as torch does
    assert call("squeeze", x=x).shape == (3, 2)
    assert call("expand_dims", x=np.zeros((2, 3)), axes=np.array([-1, 0])).shape == (1, 2, 3, 1)
    assert call("transpose", x=np.zeros((2, 3, 4)), perm=np.array([-1, 0, 1])).shape == (4, 2, 3)


@FAST
@given(st.integers(0, 2**16))
def test_reverse_sequence_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 5, 3))
    seq_axis, batch_axis = rng.choice(3, 2, replace=False)
    lengths = rng.integers(0, shape[seq_axis] + 1, shape[batch_axis])
    x = rng.standard_normal(shape)
    want = x.copy()
    for b in range(shape[batch_axis]):
        for t in range(lengths[b]):
            dst, src = [slice(None)] * 3, [slice(None)] * 3
            dst[batch_axis] = src[batch_axis] = b
            dst[seq_axis], src[seq_axis] = t, lengths[b] - 1 - t
            want[tuple(dst)] = x[tuple(src)]
    got = call("reverse_sequence", x=x, lengths=lengths, seq_axis=int(seq_axis), batch_axis=int(batch_axis))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("b", [2, 3])
def test_depth_to_space_is_tensorflows_order_and_space_to_depth_inverts_it(b):
    x = np.random.default_rng(0).standard_normal((2, 2 * b * b, 3, 2)).astype(np.float32)
    y = call("depth_to_space", x=x, block_size=b)
    c = x.shape[1] // (b * b)
    for n, ch, h, w in np.ndindex(y.shape):
        i, j = h % b, w % b
        assert y[n, ch, h, w] == x[n, (i * b + j) * c + ch, h // b, w // b]
    np.testing.assert_array_equal(call("space_to_depth", x=y, block_size=b), x)


def test_pixel_shuffle_and_unshuffle_are_torchs():
    x = np.random.default_rng(1).standard_normal((2, 18, 2, 3)).astype(np.float32)
    y = call("pixel_shuffle", x=x, upscale_factor=3)
    np.testing.assert_array_equal(y, torch.nn.functional.pixel_shuffle(torch.from_numpy(x), 3).numpy())
    np.testing.assert_array_equal(call("pixel_unshuffle", "iOS16", x=y, downscale_factor=3), x)


def test_space_to_batch_and_back():
    x = np.arange(16, dtype=np.float32).reshape(2, 1, 2, 4)
    y = call("space_to_batch", x=x, block_shape=np.array([2, 2]), paddings=np.array([[0, 0], [2, 0]]))
    x1 = x + 1  # Apple's example holds 1 .. 16
    y1 = call("space_to_batch", x=x1, block_shape=np.array([2, 2]), paddings=np.array([[0, 0], [2, 0]]))
    assert y1[:, 0, 0].tolist() == [[0, 1, 3], [0, 9, 11], [0, 2, 4], [0, 10, 12], [0, 5, 7], [0, 13, 15], [0, 6, 8], [0, 14, 16]]
    # The formula, element by element: out[(i*bw + j)*N + n, c, h, w] = padded[n, c, h*bh + i, w*bw + j].
    padded = np.pad(x, [(0, 0), (0, 0), (0, 0), (2, 0)])
    for k, c, h, w in np.ndindex(y.shape):
        (i, j), n = divmod(k // 2, 2), k % 2
        assert y[k, c, h, w] == padded[n, c, h * 2 + i, w * 2 + j]
    back = call("batch_to_space", x=y, block_shape=np.array([2, 2]), crops=np.array([[0, 0], [2, 0]]))
    np.testing.assert_array_equal(back, x)


@FAST
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**16))
def test_sliding_windows_match_as_strided(rank, size, stride, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(size, 6, rank))
    axis = int(rng.integers(-rank, rank))
    x = rng.standard_normal(shape)
    a = axis % rank
    n = (shape[a] - size) // stride + 1
    out_shape = shape[:a] + (n, size) + shape[a + 1 :]
    strides = x.strides[:a] + (x.strides[a] * stride, x.strides[a]) + x.strides[a + 1 :]
    want = np.lib.stride_tricks.as_strided(x, out_shape, strides)
    np.testing.assert_array_equal(call("sliding_windows", x=x, axis=axis, size=size, stride=stride), want)
