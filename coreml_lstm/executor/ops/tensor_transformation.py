"""Tensor transformations: reshape, reshape_like, expand_dims, squeeze, transpose, reverse,
reverse_sequence, slice_by_index, slice_by_size, slice_update, depth_to_space, space_to_depth,
space_to_batch, batch_to_space, pixel_shuffle, pixel_unshuffle, sliding_windows.

Layouts are MIL's: image tensors are (N, C, H, W). Ops whose iOS16/17 versions only widen the
accepted dtypes keep the iOS15 kernel (numpy does not care); a new kernel appears only where the
definition changes.
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel
from ._args import axis as _axis
from ._args import check_shape, flags, ints


@kernel("reshape", opset="iOS15")
class Reshape(Kernel):
    """x with shape ``shape`` (same element count). -1 is inferred; 0 copies x's dim at the same
    index (only when len(shape) == rank(x))."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, shape):
        x = np.asarray(x)
        shape = ints(shape)
        if 0 in shape and len(shape) != x.ndim:
            raise ValueError(f"reshape: a 0 in shape {shape} needs len(shape) == rank(x) = {x.ndim} before iOS17")
        return np.reshape(x, [x.shape[i] if s == 0 else s for i, s in enumerate(shape)])


@kernel("reshape", opset="iOS17")
class ReshapeIOS17(Reshape):
    """iOS17: each 0 copies the input dim aligned from the right (shape[i] <-> x.shape[j] when
    len(shape) - i == rank(x) - j); a 0 with no such dim becomes 1."""

    def compute(self, *, x, shape):
        x = np.asarray(x)
        shape = ints(shape)
        out = []
        for i, s in enumerate(shape):
            if s == 0:
                j = x.ndim - (len(shape) - i)
                s = x.shape[j] if 0 <= j < x.ndim else 1
            out.append(s)
        return np.reshape(x, out)


@kernel("reshape_like", opset="iOS16")
class ReshapeLike(Kernel):
    """x reshaped to concat_i(ref_tensors[i].shape[begins[i]:ends[i]]) (to the end where end_masks[i])."""

    keeps_fp16 = True  # moves fp16 values, makes none

    variadic = ("ref_tensors", "begins", "ends", "end_masks")

    def compute(self, *, x, ref_tensors, begins, ends, end_masks):
        shape = []
        for ref, b, e, m in zip(ref_tensors, begins, ends, end_masks):
            dims = np.shape(ref)
            shape += list(dims[int(b) :] if bool(m) else dims[int(b) : int(e)])
        return np.reshape(x, shape)


@kernel("expand_dims", opset="iOS15")
class ExpandDims(Kernel):
    """Insert size-1 axes at ``axes``, positions in the output (rank(x) + len(axes)); negative count from its end."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axes):
        axes = ints(axes)
        rank = np.ndim(x) + len(axes)
        return np.expand_dims(x, tuple(sorted(_axis(a, rank, "expand_dims axis") for a in axes)))


@kernel("squeeze", opset="iOS15")
class Squeeze(Kernel):
    """Remove size-1 axes: all of them, or those of ``axes`` that have size 1 (others are kept, as in torch)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axes=None):
        x = np.asarray(x)
        if axes is None:
            return np.squeeze(x)
        drop = {_axis(a, x.ndim, "squeeze axis") for a in ints(axes)}
        return np.squeeze(x, axis=tuple(a for a in sorted(drop) if x.shape[a] == 1))


@kernel("transpose", opset="iOS15")
class Transpose(Kernel):
    """Permute axes: out.shape[i] = x.shape[perm[i]] (perm entries may be negative)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, perm):
        x = np.asarray(x)
        return np.transpose(x, [_axis(p, x.ndim, "perm entry") for p in ints(perm)])


@kernel("reverse", opset="iOS15")
class Reverse(Kernel):
    """x reversed along ``axes`` (all axes when absent)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axes=None):
        x = np.asarray(x)
        if axes is None:
            return np.flip(x)
        return np.flip(x, axis=tuple({_axis(a, x.ndim) for a in ints(axes)}))


@kernel("reverse_sequence", opset="iOS15")
class ReverseSequence(Kernel):
    """For each b along ``batch_axis``, reverse the first lengths[b] elements along ``seq_axis``.

    out[.., b, .., t, ..] = x[.., b, .., lengths[b] - 1 - t, ..] for t < lengths[b], else x itself.
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, lengths, seq_axis=0, batch_axis=0):
        x = np.asarray(x)
        s, b = _axis(seq_axis, x.ndim), _axis(batch_axis, x.ndim)
        lengths = np.asarray(lengths).astype(np.int64).reshape(-1)
        T = x.shape[s]
        if lengths.size != x.shape[b] or lengths.size and (lengths.min() < 0 or lengths.max() > T):
            raise ValueError(f"lengths {lengths.tolist()} must hold {x.shape[b]} values in [0, {T}]")
        t = np.arange(T)
        src = np.where(t[None, :] < lengths[:, None], lengths[:, None] - 1 - t[None, :], t[None, :])  # (B, T)
        shape = [1] * x.ndim
        shape[b], shape[s] = x.shape[b], T
        src = src.reshape(shape) if b < s else src.T.reshape(shape)
        return np.take_along_axis(x, np.broadcast_to(src, x.shape), axis=s)


def _slices(shape, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    """numpy indexing for MIL's slice: x[begin[i]:end[i]:stride[i]] per axis (python rules for
    negative and out-of-range values); a mask ignores begin / end; squeeze_mask takes begin[i] alone."""
    rank = len(shape)
    begin, end = ints(begin), ints(end)
    stride = ints(stride) if stride is not None else [1] * rank
    bm, em, sm = flags(begin_mask, rank), flags(end_mask, rank), flags(squeeze_mask, rank)
    if not len(begin) == len(end) == len(stride) == rank:
        raise ValueError(f"begin, end and stride must have one value per axis of rank {rank}")
    index = []
    for i in range(rank):
        if stride[i] == 0:
            raise ValueError(f"stride of axis {i} is 0")
        if sm[i]:
            b = int(begin[i])
            if not -shape[i] <= b < shape[i]:
                raise ValueError(f"squeezed index {b} of axis {i} is out of range for its size {shape[i]}")
            index.append(b % shape[i])
            continue
        index.append(slice(None if bm[i] else begin[i], None if em[i] else end[i], stride[i]))
    return tuple(index)


@kernel("slice_by_index", opset="iOS15")
class SliceByIndex(Kernel):
    """x[begin[0]:end[0]:stride[0], ...]; begin_mask / end_mask ignore begin / end (the whole
    range in the stride's direction); squeeze_mask indexes begin[i] and drops the axis."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
        x = np.asarray(x)
        return np.asarray(x[_slices(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)])


@kernel("slice_by_size", opset="iOS15")
class SliceBySize(Kernel):
    """x[begin[i] : begin[i] + size[i]] per axis; size -1 runs to the end; negative begin counts from the end."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, begin, size):
        x = np.asarray(x)
        index = []
        for d, (b, s) in enumerate(zip(ints(begin), ints(size))):
            b = _axis(b, x.shape[d], f"begin of axis {d}") if x.shape[d] else 0
            if s < -1 or (s >= 0 and b + s > x.shape[d]):
                raise ValueError(f"slice of size {s} from {b} does not fit axis {d} of size {x.shape[d]}")
            index.append(slice(b, None if s == -1 else b + s))
        return x[tuple(index)]


@kernel("slice_update", opset="iOS18")
class SliceUpdate(Kernel):
    """A copy of x with x[begin:end:stride] = update (masks as in slice_by_index; update has the
    slice's shape, squeezed axes removed)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
        out = np.array(x, copy=True)
        index = _slices(out.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)
        if np.shape(out[index]) != np.shape(update):
            raise ValueError(f"update of shape {np.shape(update)} for a slice of shape {np.shape(out[index])}")
        out[index] = update
        return out


def _rank4(x, op):
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{op} takes a rank-4 (N, C, H, W) tensor, got shape {x.shape}")
    return x


@kernel("depth_to_space", opset="iOS15")
class DepthToSpace(Kernel):
    """(N, C, H, W) -> (N, C/b^2, H*b, W*b) in TensorFlow's order (depth = (i*b + j)*C' + c):

    out[n, c, h*b + i, w*b + j] = x[n, (i*b + j)*C' + c, h, w], C' = C / b^2.
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, block_size):
        x, b = _rank4(x, "depth_to_space"), int(block_size)
        n, c, h, w = x.shape
        y = x.reshape(n, b, b, c // (b * b), h, w)  # (n, i, j, c', h, w)
        return y.transpose(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


@kernel("space_to_depth", opset="iOS15")
class SpaceToDepth(Kernel):
    """(N, C, H, W) -> (N, C*b^2, H/b, W/b), the inverse of depth_to_space:

    out[n, (i*b + j)*C + c, h, w] = x[n, c, h*b + i, w*b + j].
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, block_size):
        x, b = _rank4(x, "space_to_depth"), int(block_size)
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // b, b, w // b, b)  # (n, c, h', i, w', j)
        return y.transpose(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


@kernel("pixel_shuffle", opset="iOS15")
class PixelShuffle(Kernel):
    """(N, C*f^2, H, W) -> (N, C, H*f, W*f) as torch.nn.PixelShuffle:

    out[n, c, h*f + i, w*f + j] = x[n, (c*f + i)*f + j, h, w].
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, upscale_factor):
        x, f = _rank4(x, "pixel_shuffle"), int(upscale_factor)
        n, c, h, w = x.shape
        y = x.reshape(n, c // (f * f), f, f, h, w)  # (n, c', i, j, h, w)
        return y.transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (f * f), h * f, w * f)


@kernel("pixel_unshuffle", opset="iOS16")
class PixelUnshuffle(Kernel):
    """(N, C, H*f, W*f) -> (N, C*f^2, H, W), the inverse of pixel_shuffle (torch.nn.PixelUnshuffle)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, downscale_factor):
        x, f = _rank4(x, "pixel_unshuffle"), int(downscale_factor)
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // f, f, w // f, f)  # (n, c, h', i, w', j)
        return y.transpose(0, 1, 3, 5, 2, 4).reshape(n, c * f * f, h // f, w // f)


@kernel("space_to_batch", opset="iOS15")
class SpaceToBatch(Kernel):
    """(N, C, H, W) -> (N*bh*bw, C, H'/bh, W'/bw) after zero-padding H, W by ``paddings`` (TF order):

    out[(i*bw + j)*N + n, c, h, w] = padded[n, c, h*bh + i, w*bw + j].
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, block_shape, paddings):
        x = _rank4(x, "space_to_batch")
        bh, bw = ints(block_shape)
        (pt, pb), (pl, pr) = np.asarray(paddings).astype(np.int64).reshape(2, 2).tolist()
        check_shape(x.shape[:2] + (x.shape[2] + pt + pb, x.shape[3] + pl + pr), x.itemsize, "space_to_batch (its padded input)")
        p = np.pad(x, [(0, 0), (0, 0), (pt, pb), (pl, pr)])
        n, c, h, w = p.shape
        y = p.reshape(n, c, h // bh, bh, w // bw, bw)  # (n, c, h', i, w', j)
        return y.transpose(3, 5, 0, 1, 2, 4).reshape(bh * bw * n, c, h // bh, w // bw)


@kernel("batch_to_space", opset="iOS15")
class BatchToSpace(Kernel):
    """The inverse of space_to_batch: (N, C, H, W) -> (N/(bh*bw), C, H*bh - crops_h, W*bw - crops_w)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, block_shape, crops):
        x = _rank4(x, "batch_to_space")
        bh, bw = ints(block_shape)
        (ct, cb), (cl, cr) = np.asarray(crops).astype(np.int64).reshape(2, 2).tolist()
        nb, c, h, w = x.shape
        n = nb // (bh * bw)
        y = x.reshape(bh, bw, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
        return y[:, :, ct : h * bh - cb, cl : w * bw - cr]


@kernel("sliding_windows", opset="iOS15")
class SlidingWindows(Kernel):
    """All windows of ``size`` along ``axis``, ``stride`` apart: a new axis of length ``size`` after it.

    x: (*d0, D, *dn) -> (*d0, (D - size) // stride + 1, size, *dn);
    out[.., k, s, ..] = x[.., k*stride + s, ..].
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axis, size, stride=1):
        x = np.asarray(x)
        a, size, stride = _axis(axis, x.ndim), int(size), int(stride)
        count = (x.shape[a] - size) // stride + 1
        if size < 1 or stride < 1 or count < 1:
            raise ValueError(f"no window of size {size}, stride {stride} fits axis {a} of size {x.shape[a]}")
        check_shape(x.shape[:a] + (count, size) + x.shape[a + 1 :], x.itemsize, "sliding_windows")
        src = np.arange(count)[:, None] * stride + np.arange(size)[None, :]  # (count, size)
        return np.take(x, src, axis=a)
