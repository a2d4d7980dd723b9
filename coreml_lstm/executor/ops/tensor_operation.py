"""Tensor operations: band_part, cumsum, fill, fill_like, non_maximum_suppression, non_zero, one_hot,
pad, range_1d, tile, argsort, topk, flatten2d, shape.

(``split``, ``concat`` and ``stack`` live in tensor.py, ``identity`` in elementwise.py.) Ties in sorting ops are broken by
the lower index, the order a stable sort gives.
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel
from ._args import axis as _axis
from ._args import check_count, check_shape, flag, ints, text


@kernel("band_part", opset="iOS15")
class BandPart(Kernel):
    """Zero everything outside a band of the last two axes (m, n):

    keep(m, n) = (lower < 0 or m - n <= lower) and (upper < 0 or n - m <= upper).
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, lower=-1, upper=-1):
        x = np.asarray(x)
        rows, cols = x.shape[-2:]
        m = np.arange(rows)[:, None]
        n = np.arange(cols)[None, :]
        lower, upper = int(lower), int(upper)
        keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
        return np.where(keep, x, np.zeros((), x.dtype))


@kernel("cumsum", opset="iOS15")
class Cumsum(Kernel):
    """Cumulative sum along ``axis`` (default 0); ``exclusive`` shifts by one (first output 0);
    ``reverse`` sums from the end."""

    def compute(self, *, x, axis=0, exclusive=False, reverse=False):
        x = np.asarray(x)
        a = _axis(axis, x.ndim)
        y = np.flip(x, a) if flag(reverse) else x
        out = np.cumsum(y, axis=a, dtype=x.dtype)
        if flag(exclusive):
            out = np.concatenate([np.zeros_like(np.take(out, [0], axis=a)), np.delete(out, -1, axis=a)], axis=a)
        return np.flip(out, a) if flag(reverse) else out


@kernel("fill", opset="iOS15")
class Fill(Kernel):
    """A tensor of ``shape`` filled with ``value`` (default 0.0)."""

    def compute(self, *, shape, value=0.0):
        shape = ints(shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"fill: negative dimension in shape {shape}")
        value = np.asarray(value)
        check_shape(shape, value.itemsize, "fill")
        return np.full(shape, value)


@kernel("fill_like", opset="iOS16")
class FillLike(Kernel):
    """A tensor of ref_tensor's shape filled with ``value`` (default 0.0)."""

    def compute(self, *, ref_tensor, value=0.0):
        return np.full(np.shape(ref_tensor), np.asarray(value))


@kernel("non_zero", opset="iOS15")
class NonZero(Kernel):
    """The (N, rank) int32 coordinates of the N non-zero elements of x, in row-major order."""

    def compute(self, *, x):
        x = np.asarray(x)
        # argwhere makes (N, rank) int64 coordinates before the int32 copy: up to rank x size x 8
        # bytes for an input of size elements. Count first (no allocation), then check.
        check_shape((np.count_nonzero(x), max(x.ndim, 1)), 8, "non_zero")
        return np.argwhere(x).astype(np.int32)


@kernel("one_hot", opset="iOS15")
class OneHot(Kernel):
    """on_value where position == indices along a new ``axis`` of length one_hot_vector_size,
    off_value elsewhere (an index outside [0, size) gives an all-off vector).

    indices: (*D) -> rank(D) + 1, the new axis at ``axis`` (default -1, the last).
    """

    def compute(self, *, indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
        depth = int(one_hot_vector_size)
        idx = np.asarray(indices).astype(np.int64)
        check_shape(idx.shape + (depth,), 8, "one_hot")  # the comparison is made at that size too
        hot = np.arange(depth) == idx[..., None]
        out = np.where(hot, np.asarray(on_value), np.asarray(off_value))
        return np.moveaxis(out, -1, _axis(axis, idx.ndim + 1))


@kernel("pad", opset="iOS15")
class Pad(Kernel):
    """Pad the last len(pad)/2 axes by (before, after) pairs, ``pad = [b0, a0, b1, a1, ...]``.

    mode ``constant`` (with constant_val), ``reflect`` (mirror without the edge, pad <= D - 1)
    or ``replicate`` (repeat the edge, pad <= D).
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, pad, mode="constant", constant_val=0.0):
        x = np.asarray(x)
        pad, mode = ints(pad), text(mode)
        if len(pad) % 2 or len(pad) // 2 > x.ndim:
            raise ValueError(f"pad {pad} must hold a (before, after) pair for at most {x.ndim} axes")
        pairs = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
        if any(b < 0 or a < 0 for b, a in pairs):
            raise ValueError(f"pad {pad} has a negative amount")
        check_shape([d + b + a for d, (b, a) in zip(x.shape, pairs)], x.itemsize, "pad")
        if mode == "constant":
            return np.pad(x, pairs, mode="constant", constant_values=np.asarray(constant_val).astype(x.dtype))
        if mode not in ("reflect", "replicate"):
            raise ValueError(f"pad mode {mode!r} is not one of constant, reflect, replicate")
        limit = 1 if mode == "reflect" else 0
        for d, (b, a) in enumerate(pairs):
            if max(b, a) > x.shape[d] - limit:
                raise ValueError(f"{mode} pad of ({b}, {a}) is too large for axis {d} of size {x.shape[d]}")
        return np.pad(x, pairs, mode="reflect" if mode == "reflect" else "edge")


@kernel("range_1d", opset="iOS15")
class Range1d(Kernel):
    """[start, start + step, ...) while below ``end`` (above it for a negative step)."""

    def compute(self, *, end, start, step):
        start, end, step = (np.asarray(v).reshape(()) for v in (start, end, step))
        if step == 0:
            raise ValueError("range_1d: step is 0")
        if not all(np.isfinite(v) for v in (start, end, step)):
            raise ValueError(f"range_1d: start {start}, end {end} and step {step} must be finite")
        count = max(int(np.ceil((float(end) - float(start)) / float(step))), 0)
        check_count(count, np.result_type(start, end, step).itemsize, "range_1d")
        return np.arange(start, end, step)


@kernel("tile", opset="iOS15")
class Tile(Kernel):
    """x repeated reps[i] times along axis i (len(reps) == rank(x))."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, reps):
        x = np.asarray(x)
        reps = ints(reps)
        if len(reps) != x.ndim or any(r < 0 for r in reps):
            raise ValueError(f"tile: reps {reps} must hold one non-negative count per axis of rank {x.ndim}")
        check_shape([d * r for d, r in zip(x.shape, reps)], x.itemsize, "tile")
        return np.tile(x, reps)


def _order(x, a: int, ascending: bool) -> np.ndarray:
    """Indices sorting x along axis a; ties keep the lower index first in both directions."""
    if ascending:
        return np.argsort(x, axis=a, kind="stable")
    # Descending with stable ties: sort the reversed axis ascending, then map back and reverse.
    n = x.shape[a]
    rev = np.argsort(np.flip(x, a), axis=a, kind="stable")
    return np.flip(n - 1 - rev, a)


@kernel("argsort", opset="iOS15")
class Argsort(Kernel):
    """int32 indices that sort x along ``axis`` (default -1), descending unless ``ascending``."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axis=-1, ascending=False):
        x = np.asarray(x)
        return _order(x, _axis(axis, x.ndim), flag(ascending)).astype(np.int32)


@kernel("topk", opset="iOS15")
class Topk(Kernel):
    """The k largest (smallest if ``ascending``) values along ``axis`` and their int32 indices, sorted.

    x: (*D) -> values and indices of shape D with D[axis] = k.
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, k=1, axis=-1, ascending=False):
        return self._topk(x, k, axis, ascending)

    def _topk(self, x, k, axis, ascending):
        x = np.asarray(x)
        a = _axis(axis, x.ndim)
        k = int(k)
        if k == -1:
            k = x.shape[a]
        if not 0 <= k <= x.shape[a]:
            raise ValueError(f"topk: k = {k} for an axis of size {x.shape[a]}")
        order = np.take(_order(x, a, flag(ascending)), np.arange(k), axis=a)
        return np.take_along_axis(x, order, axis=a), order.astype(np.int32)


@kernel("topk", opset="iOS16")
class TopkIOS16(Topk):
    """iOS16 adds ``sort`` (unsorted output allowed; this kernel always sorts) and ``return_indices``
    (False: the values only)."""

    def compute(self, *, x, k=1, axis=-1, ascending=False, sort=True, return_indices=True):
        values, indices = self._topk(x, k, axis, ascending)
        return (values, indices) if flag(return_indices) else values


@kernel("topk", opset="iOS17")
class TopkIOS17(TopkIOS16):
    """iOS17: k = -1 selects every element; ``output_indices_dtype`` (int32 or uint16) types the indices."""

    def compute(self, *, x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
        dtype = text(output_indices_dtype)
        if dtype not in ("int32", "uint16"):
            raise ValueError(f"topk: output_indices_dtype {dtype!r} is not int32 or uint16")
        values, indices = self._topk(x, k, axis, ascending)
        return (values, indices.astype(dtype)) if flag(return_indices) else values


@kernel("flatten2d", opset="iOS15")
class Flatten2d(Kernel):
    """(*d) -> (prod(d[:axis]), prod(d[axis:])); axis default 1, negative counts from the end."""

    def compute(self, *, x, axis=1):
        x = np.asarray(x)
        a = int(axis)
        a = a + x.ndim if a < 0 else a
        if not 0 <= a <= x.ndim:
            raise ValueError(f"flatten2d: axis {int(axis)} is out of range for rank {x.ndim}")
        return x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), int(np.prod(x.shape[a:], dtype=np.int64)))


@kernel("shape", opset="iOS15")
class Shape(Kernel):
    """The shape of x as an int32 vector."""

    def compute(self, *, x):
        return np.asarray(np.shape(x), dtype=np.int32)


def _iou(boxes: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (B, 4) center-size boxes (x, y, width, height)."""
    cx, cy, w, h = (boxes[:, i].astype(np.float64) for i in range(4))
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    iw = np.maximum(0, np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None]))
    ih = np.maximum(0, np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None]))
    inter = iw * ih
    union = (w * h)[:, None] + (w * h)[None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _greedy(order: np.ndarray, iou: np.ndarray, threshold: float, limit: int) -> list[int]:
    """Greedy NMS over boxes in ``order``: keep a box unless it overlaps a kept one by IoU > threshold.

    A kept box j marks, in one vector operation, every box i with not iou[i, j] <= threshold (as
    a comparison of each with every kept box would); a box is kept if no kept box marked it."""
    kept: list[int] = []
    marked = np.zeros(iou.shape[0], dtype=bool)
    for i in order:
        if len(kept) == limit:
            break
        if not marked[i]:
            kept.append(int(i))
            marked |= ~(iou[:, i] <= threshold)
    return kept


def _nms_batch(boxes, scores, iou_threshold, score_threshold, max_boxes, per_class):
    """Selected box indices for one batch item. boxes: (B, 4), scores: (B, K)."""
    best = scores.max(axis=1)
    order = _order(best, 0, False)
    order = order[best[order] > score_threshold] if score_threshold is not None else order
    iou = _iou(boxes)
    if not per_class:
        kept = _greedy(order, iou, iou_threshold, max_boxes)
    else:
        cls = scores.argmax(axis=1)
        kept = []
        for c in np.unique(cls[order]):
            kept += _greedy(order[cls[order] == c], iou, iou_threshold, max_boxes)
        kept = sorted(kept, key=lambda i: (-best[i], i))[:max_boxes]
    if not kept and len(best):
        kept = [int(np.argmax(best))]  # Core ML returns the best box even when none passes
    return kept


@kernel("non_maximum_suppression", opset="iOS15")
class NonMaximumSuppression(Kernel):
    """Greedy non-maximum suppression per batch item.

    boxes: (n, B, 4) center-size (x, y, w, h); scores: (n, B, K). A box scores max_k scores; boxes
    at or below ``score_threshold`` are dropped, then, in descending score, a box is kept unless
    its IoU with a kept box exceeds ``iou_threshold`` (within its argmax class when
    ``per_class_suppression``). At most ``max_boxes`` are kept; if none survive, the best box is
    returned alone. Returns boxes (n, max_boxes, 4), scores (n, max_boxes, K), indices
    (n, max_boxes) int32 and counts (n,) int32, padded with 0 (indices with -1).
    """

    def compute(self, *, boxes, scores, iou_threshold, score_threshold, max_boxes, per_class_suppression=False):
        return self._nms(np.asarray(boxes), np.asarray(scores), iou_threshold, score_threshold, max_boxes, per_class_suppression)

    def _nms(self, boxes, scores, iou_threshold, score_threshold, max_boxes, per_class):
        n, count, _ = boxes.shape
        k, m = scores.shape[-1], int(max_boxes)
        if m < 0:
            raise ValueError(f"non_maximum_suppression: max_boxes {m} is negative")
        check_shape((n, m, max(k, 4)), 4, "non_maximum_suppression")
        check_shape((count, count), 8, "non_maximum_suppression (its pairwise IoU)")  # float64, a few of them
        out_boxes = np.zeros((n, m, 4), boxes.dtype)
        out_scores = np.zeros((n, m, k), scores.dtype)
        out_idx = np.full((n, m), -1, np.int32)
        out_count = np.zeros(n, np.int32)
        threshold = None if score_threshold is None else float(score_threshold)
        for b in range(n):
            kept = _nms_batch(boxes[b], scores[b], float(iou_threshold), threshold, m, flag(per_class))
            out_boxes[b, : len(kept)] = boxes[b, kept]
            out_scores[b, : len(kept)] = scores[b, kept]
            out_idx[b, : len(kept)] = kept
            out_count[b] = len(kept)
        return out_boxes, out_scores, out_idx, out_count


@kernel("non_maximum_suppression", opset="iOS17")
class NonMaximumSuppressionIOS17(NonMaximumSuppression):
    """iOS17: no ``score_threshold``; boxes come as (n, 4, B) and scores as (n, K, B) (boxes last),
    outputs are (n, 4, max_boxes), (n, K, max_boxes), (n, max_boxes) and no count."""

    def compute(self, *, boxes, scores, iou_threshold, max_boxes, per_class_suppression=False):
        b, s = np.swapaxes(np.asarray(boxes), 1, 2), np.swapaxes(np.asarray(scores), 1, 2)
        out_boxes, out_scores, out_idx, _ = self._nms(b, s, iou_threshold, None, max_boxes, per_class_suppression)
        return np.swapaxes(out_boxes, 1, 2), np.swapaxes(out_scores, 1, 2), out_idx
