"""Tensor operation kernels against torch and numpy references."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


FAST = settings(max_examples=40, deadline=None)


@FAST
@given(st.integers(0, 2**16), st.booleans(), st.booleans())
def test_cumsum_exclusive_reverse(seed, exclusive, reverse):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 5, int(rng.integers(1, 4))))
    axis = int(rng.integers(-len(shape), len(shape)))
    x = rng.standard_normal(shape).astype(np.float32)
    t = torch.from_numpy(x).flip(axis) if reverse else torch.from_numpy(x)
    want = t.cumsum(axis)
    if exclusive:
        want = want - t
    want = (want.flip(axis) if reverse else want).numpy()
    got = call("cumsum", x=x, axis=axis, exclusive=np.array(exclusive), reverse=np.array(reverse))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lower, upper", [(-1, -1), (0, -1), (-1, 0), (0, 0), (1, 2), (5, 0)])
def test_band_part_is_torch_tril_triu(lower, upper):
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    t = torch.from_numpy(x)
    want = t
    if lower >= 0:
        want = want.triu(-lower)
    if upper >= 0:
        want = want.tril(upper)
    np.testing.assert_array_equal(call("band_part", x=x, lower=lower, upper=upper), want.numpy())


@pytest.mark.parametrize("mode, torch_mode", [("constant", "constant"), ("reflect", "reflect"), ("replicate", "replicate")])
def test_pad_modes_arrive_as_0d_arrays(mode, torch_mode):
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)
    pad = np.array([1, 2, 3, 1])  # (top, bottom), (left, right) of the last two axes
    got = call("pad", x=x, pad=pad, mode=np.array(mode), constant_val=np.float32(1.5))
    kwargs = {"value": 1.5} if mode == "constant" else {}
    want = torch.nn.functional.pad(torch.from_numpy(x), (3, 1, 1, 2), mode=torch_mode, **kwargs).numpy()
    np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="too large"):
        call("pad", x=x, pad=np.array([0, 0, 5, 0]), mode=np.array("reflect"))


@FAST
@given(st.integers(0, 2**16), st.booleans(), st.sampled_from(["iOS15", "iOS16", "iOS17"]))
def test_topk_matches_torch(seed, ascending, opset):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 6, int(rng.integers(1, 4))))
    axis = int(rng.integers(-len(shape), len(shape)))
    k = int(rng.integers(1, shape[axis] + 1))
    x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32)  # no ties
    values, indices = call("topk", opset, x=x, k=k, axis=axis, ascending=np.array(ascending))
    want = torch.from_numpy(x).topk(k, dim=axis, largest=not ascending, sorted=True)
    np.testing.assert_array_equal(values, want.values.numpy())
    np.testing.assert_array_equal(indices, want.indices.numpy())


def test_topk_opset_options():
    x = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], np.float32)
    only = call("topk", "iOS16", x=x, k=2, axis=1, return_indices=np.array(False))
    np.testing.assert_array_equal(only, [[2, -1], [6, 4]])
    values, idx = call("topk", "iOS17", x=x, k=-1, output_indices_dtype=np.array("uint16"))
    assert idx.dtype == np.uint16 and idx.tolist() == [[1, 0, 2], [2, 0, 1]]


def test_argsort_breaks_ties_by_lower_index_both_ways():
    x = np.array([3, 1, 3, 2, 1], np.float32)
    assert call("argsort", x=x).tolist() == [0, 2, 3, 1, 4]
    assert call("argsort", x=x, ascending=True).tolist() == [1, 4, 3, 0, 2]


def test_one_hot_axes_and_values():
    idx = np.array([[0, 2], [3, 1]])
    got = call("one_hot", indices=idx, one_hot_vector_size=3, axis=0, on_value=np.float32(5), off_value=np.float32(-1))
    want = np.moveaxis(np.where(np.arange(3) == idx[..., None], 5, -1), -1, 0)
    np.testing.assert_array_equal(got, want)  # index 3 is outside the size: all off


def test_fill_non_zero_range_tile_flatten_shape():
    assert call("fill", shape=np.array([2, 3]), value=np.float32(7)).tolist() == [[7] * 3] * 2
    assert call("fill_like", "iOS16", ref_tensor=np.zeros((2, 1)), value=np.int32(4)).tolist() == [[4], [4]]
    x = np.array([[0, 1], [2, 0]])
    np.testing.assert_array_equal(call("non_zero", x=x), np.transpose(np.nonzero(x)))
    np.testing.assert_array_equal(call("range_1d", start=np.int32(5), end=np.int32(-2), step=np.int32(-3)), [5, 2, -1])
    np.testing.assert_array_equal(call("tile", x=x, reps=np.array([1, 2])), np.tile(x, (1, 2)))
    assert call("flatten2d", x=np.zeros((2, 3, 4)), axis=-1).shape == (6, 4)
    assert call("flatten2d", x=np.zeros((3,)), axis=1).shape == (3, 1)
    assert call("shape", x=np.zeros((2, 0, 3))).tolist() == [2, 0, 3]


def test_non_maximum_suppression_apples_example():
    boxes = np.array([[[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]]], np.float32)
    scores = np.array([[[-3.5], [9.4], [2.3], [0.7]]], np.float32)
    b, s, i, n = call("non_maximum_suppression", boxes=boxes, scores=scores, iou_threshold=np.float32(0.2),
                      score_threshold=np.float32(0.4), max_boxes=2, per_class_suppression=True)
    np.testing.assert_array_equal(b, [[[1, 1, 1, 1], [2, 2, 2, 2]]])
    np.testing.assert_array_equal(s, np.array([[[9.4], [2.3]]], np.float32))
    assert i.tolist() == [[1, 2]] and n.tolist() == [2]


def _nms_reference(boxes, scores, iou_threshold, max_boxes):
    """Greedy NMS by torchvision's definition, written out: sort by score, drop overlaps > threshold."""
    order = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
    kept = []
    for k in order:
        ok = True
        for j in kept:
            (x0, y0, w0, h0), (x1, y1, w1, h1) = boxes[k], boxes[j]
            iw = max(0.0, min(x0 + w0 / 2, x1 + w1 / 2) - max(x0 - w0 / 2, x1 - w1 / 2))
            ih = max(0.0, min(y0 + h0 / 2, y1 + h1 / 2) - max(y0 - h0 / 2, y1 - h1 / 2))
            inter = iw * ih
            if inter / (w0 * h0 + w1 * h1 - inter) > iou_threshold:
                ok = False
        if ok:
            kept.append(k)
    return kept[:max_boxes]


@FAST
@given(st.integers(0, 2**16))
def test_non_maximum_suppression_ios17_layout_matches_a_reference(seed):
    rng = np.random.default_rng(seed)
    count, m = int(rng.integers(1, 12)), int(rng.integers(1, 6))
    boxes = np.concatenate([rng.uniform(0, 10, (count, 2)), rng.uniform(0.5, 5, (count, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(count).astype(np.float32)[:, None]
    b, s, i = call("non_maximum_suppression", "iOS17", boxes=boxes.T[None], scores=scores.T[None], iou_threshold=np.float32(0.3), max_boxes=m)
    kept = _nms_reference(boxes.astype(np.float64), scores[:, 0], 0.3, m)
    assert i[0, : len(kept)].tolist() == kept and (i[0, len(kept) :] == -1).all()
    np.testing.assert_array_equal(b[0, :, : len(kept)], boxes[kept].T)
    assert b.shape == (1, 4, m) and s.shape == (1, 1, m)


def _greedy_one_by_one(order, iou, threshold, limit):
    """_greedy as it was written, comparing each box with every kept one: the reference."""
    kept = []
    for i in order:
        if len(kept) == limit:
            break
        if all(iou[i, j] <= threshold for j in kept):
            kept.append(int(i))
    return kept


@FAST
@given(st.integers(0, 2**16))
def test_greedy_suppression_keeps_what_comparing_box_by_box_keeps(seed):
    """Marking the boxes a kept box suppresses, one vector operation per kept box, keeps the boxes
    a comparison with every kept box keeps: coinciding, nested, empty, infinite and NaN boxes,
    thresholds 0, 1 and NaN, any limit."""
    from coreml_lstm.executor.ops.tensor_operation import _greedy, _iou

    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 30))
    boxes = np.concatenate([rng.integers(0, 5, (count, 2)), rng.integers(0, 4, (count, 2))], axis=1).astype(np.float32)
    special = rng.random(count)
    boxes[special < 0.05] = np.inf
    boxes[(special > 0.05) & (special < 0.1)] = np.nan
    with np.errstate(all="ignore"):  # as the runner calls kernels: inf and nan are values
        iou = _iou(boxes)
    order = rng.permutation(count)
    for threshold in (0.0, 0.3, 1.0, float(rng.random()), float("nan")):
        for limit in (1, 3, count):
            assert _greedy(order, iou, threshold, limit) == _greedy_one_by_one(order, iou, threshold, limit)
