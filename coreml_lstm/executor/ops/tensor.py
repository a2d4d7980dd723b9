"""Shape, layout, slicing, gathering and scattering ops."""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel


def _ints(v) -> list[int]:
    return [int(i) for i in np.asarray(v).reshape(-1)]


@kernel("const", opset="iOS15")
class Const(Kernel):
    """The value stored with the op (attribute ``val``)."""

    def compute(self, *, val):
        return val


@kernel("transpose", opset="iOS15")
class Transpose(Kernel):
    """Permute axes: out.shape[i] = x.shape[perm[i]]."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, perm):
        return np.transpose(x, _ints(perm))


@kernel("reshape", opset="iOS15")
class Reshape(Kernel):
    """Reshape to ``shape``; -1 is inferred, 0 copies the input dim at the same index."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, shape):
        shape = _ints(shape)
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return np.reshape(x, shape)


@kernel("reshape", opset="iOS17")
class ReshapeIOS17(Reshape):
    """iOS17: each 0 copies the input dim aligned from the right; a 0 with no such dim becomes 1."""

    def compute(self, *, x, shape):
        shape = _ints(shape)
        out = []
        for i, s in enumerate(shape):
            if s == 0:
                j = x.ndim - (len(shape) - i)
                s = x.shape[j] if 0 <= j < x.ndim else 1
            out.append(s)
        return np.reshape(x, out)


@kernel("squeeze", opset="iOS15")
class Squeeze(Kernel):
    """Remove size-1 axes (all of them when ``axes`` is absent)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axes=None):
        if axes is None:
            return np.squeeze(x)
        return np.squeeze(x, axis=tuple(_ints(axes)))


@kernel("expand_dims", opset="iOS15")
class ExpandDims(Kernel):
    """Insert size-1 axes at ``axes`` (positions in the output)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axes):
        axes = _ints(axes)
        rank = np.ndim(x) + len(axes)
        return np.expand_dims(x, tuple(sorted(a % rank for a in axes)))


@kernel("split", opset="iOS15")
class Split(Kernel):
    """Split along ``axis`` into ``num_splits`` equal parts or parts of ``split_sizes``."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axis, num_splits=None, split_sizes=None):
        axis = int(axis)
        if split_sizes is not None:
            edges = np.cumsum(_ints(split_sizes))[:-1]
            return tuple(np.split(x, edges, axis=axis))
        return tuple(np.split(x, int(num_splits), axis=axis))


@kernel("concat", opset="iOS15")
class Concat(Kernel):
    """Join ``values`` along ``axis`` (or interleave them).

    Rank-0 values (every value has the same rank) count as length 1 along the axis: n scalars make
    a vector of shape (n,), whatever ``axis`` and ``interleave`` say. Flexible-shape programs build shapes
    this way from ``gather``-ed scalar dimensions.
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    variadic = ("values",)

    def compute(self, *, values, axis, interleave=False):
        axis = int(axis)
        values = [np.asarray(v) for v in values]
        if values and all(v.ndim == 0 for v in values):
            return np.stack(values)  # MIL's type inference: shape (n,) for any axis
        if bool(interleave):
            stacked = np.stack(values, axis=axis + 1 if axis >= 0 else axis)
            shape = list(values[0].shape)
            shape[axis] = shape[axis] * len(values)
            return stacked.reshape(shape)
        return np.concatenate(values, axis=axis)


@kernel("stack", opset="iOS15")
class Stack(Kernel):
    """Stack ``values`` along a new ``axis``."""

    keeps_fp16 = True  # moves fp16 values, makes none

    variadic = ("values",)

    def compute(self, *, values, axis):
        return np.stack([np.asarray(v) for v in values], axis=int(axis))


def _strided(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    rank = np.ndim(x)
    begin, end = _ints(begin), _ints(end)
    stride = _ints(stride) if stride is not None else [1] * rank
    bm = [bool(v) for v in np.asarray(begin_mask).reshape(-1)] if begin_mask is not None else [False] * rank
    em = [bool(v) for v in np.asarray(end_mask).reshape(-1)] if end_mask is not None else [False] * rank
    sm = [bool(v) for v in np.asarray(squeeze_mask).reshape(-1)] if squeeze_mask is not None else [False] * rank
    index = []
    for i in range(rank):
        if sm[i]:
            index.append(begin[i])
            continue
        b = None if bm[i] else begin[i]
        e = None if em[i] else end[i]
        index.append(slice(b, e, stride[i]))
    return tuple(index)


@kernel("slice_by_index", opset="iOS15")
class SliceByIndex(Kernel):
    """x[begin:end:stride] per axis; masks ignore begin / end, squeeze_mask drops the axis."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
        return np.asarray(x)[_strided(x, begin, end, stride, begin_mask, end_mask, squeeze_mask)]


@kernel("slice_by_size", opset="iOS15")
class SliceBySize(Kernel):
    """x[begin : begin + size] per axis; size -1 runs to the end."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, begin, size):
        begin, size = _ints(begin), _ints(size)
        index = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))
        return np.asarray(x)[index]


@kernel("slice_update", opset="iOS18")
class SliceUpdate(Kernel):
    """A copy of x with x[begin:end:stride] = update (same masks as slice_by_index)."""

    def compute(self, *, x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
        out = np.array(x, copy=True)
        out[_strided(x, begin, end, stride, begin_mask, end_mask, squeeze_mask)] = update
        return out


@kernel("gather", opset="iOS15")
class Gather(Kernel):
    """x taken at ``indices`` along ``axis`` (negative indices count from the end)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, indices, axis=0, validate_indices=False):
        return np.take(np.asarray(x), np.asarray(indices).astype(np.int64), axis=int(axis))


@kernel("gather", opset="iOS16")
class GatherIOS16(Gather):
    """iOS16 adds ``batch_dims``: the leading batch_dims axes of x and indices are matched."""

    def compute(self, *, x, indices, axis=0, batch_dims=0, validate_indices=False):
        batch_dims = int(batch_dims)
        if batch_dims == 0:
            return super().compute(x=x, indices=indices, axis=axis)
        x, indices, axis = np.asarray(x), np.asarray(indices).astype(np.int64), int(axis) % np.ndim(x)
        lead = x.shape[:batch_dims]
        xs = x.reshape((-1,) + x.shape[batch_dims:])
        ids = indices.reshape((-1,) + indices.shape[batch_dims:])
        out = np.stack([np.take(xs[b], ids[b], axis=axis - batch_dims) for b in range(xs.shape[0])])
        return out.reshape(lead + out.shape[1:])


@kernel("gather_along_axis", opset="iOS15")
class GatherAlongAxis(Kernel):
    """out[..i..] = x[..indices[..i..]..] along ``axis`` (take_along_axis)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, indices, axis=0, validate_indices=False):
        return np.take_along_axis(np.asarray(x), np.asarray(indices).astype(np.int64), axis=int(axis))


_SCATTER = {
    "update": lambda old, new: new,
    "add": lambda old, new: old + new,
    "sub": lambda old, new: old - new,
    "mul": lambda old, new: old * new,
    "div": lambda old, new: old / new,
    "max": np.maximum,
    "min": np.minimum,
}


@kernel("scatter", opset="iOS15")
class Scatter(Kernel):
    """A copy of data with data[indices] along ``axis`` combined with updates by ``mode`` (default add)."""

    def compute(self, *, data, indices, updates, axis=0, mode="add", validate_indices=False):
        out = np.array(data, copy=True)
        axis = int(axis) % out.ndim
        moved = np.moveaxis(out, axis, 0)
        upd = np.moveaxis(np.asarray(updates), axis, 0)
        fn = _SCATTER[str(mode)]
        for k, i in enumerate(np.asarray(indices).reshape(-1).astype(np.int64)):
            moved[i] = fn(moved[i], upd[k])
        return out


@kernel("scatter_along_axis", opset="iOS15")
class ScatterAlongAxis(Kernel):
    """A copy of data with data[.., indices[..], ..] combined with updates along ``axis`` by ``mode``."""

    def compute(self, *, data, indices, updates, axis=0, mode="add", validate_indices=False):
        out = np.array(data, copy=True)
        idx = np.asarray(indices).astype(np.int64)
        axis = int(axis) % out.ndim
        fn = _SCATTER[str(mode)]
        grids = np.indices(idx.shape)
        target = tuple(idx if d == axis else grids[d] for d in range(out.ndim))
        if str(mode) == "add":
            np.add.at(out, target, updates)
        else:
            out[target] = fn(out[target], updates)
        return out


@kernel("shape", opset="iOS15")
class Shape(Kernel):
    """The shape of x as int32."""

    def compute(self, *, x):
        return np.asarray(np.shape(x), dtype=np.int32)


@kernel("fill", opset="iOS15")
class Fill(Kernel):
    """A tensor of ``shape`` filled with ``value`` (default 0)."""

    def compute(self, *, shape, value=0.0):
        return np.full(_ints(shape), value)


@kernel("reverse", opset="iOS15")
class Reverse(Kernel):
    """x reversed along ``axes`` (all axes when absent)."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, axes=None):
        return np.flip(x, axis=None if axes is None else tuple(_ints(axes)))


@kernel("tile", opset="iOS15")
class Tile(Kernel):
    """x repeated ``reps`` times along each axis."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, reps):
        return np.tile(x, _ints(reps))


@kernel("range_1d", opset="iOS15")
class Range1d(Kernel):
    """[start, start + step, ...) up to ``end``."""

    def compute(self, *, end, start, step):
        return np.arange(start, end, step)


@kernel("band_part", opset="iOS15")
class BandPart(Kernel):
    """Keep a band of the last two axes: lower / upper diagonals (-1: all)."""

    def compute(self, *, x, lower=-1, upper=-1):
        rows, cols = x.shape[-2:]
        i = np.arange(rows)[:, None]
        j = np.arange(cols)[None, :]
        keep = np.ones((rows, cols), bool)
        if int(lower) >= 0:
            keep &= i - j <= int(lower)
        if int(upper) >= 0:
            keep &= j - i <= int(upper)
        return np.where(keep, x, 0)


@kernel("pad", opset="iOS15")
class Pad(Kernel):
    """Pad the last len(pad)/2 axes by (before, after) pairs; constant, reflect or replicate."""

    def compute(self, *, x, pad, mode="constant", constant_val=0.0):
        pad = _ints(pad)
        pairs = [(0, 0)] * (np.ndim(x) - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
        if mode == "constant":
            return np.pad(x, pairs, mode="constant", constant_values=constant_val)
        return np.pad(x, pairs, mode={"reflect": "reflect", "replicate": "edge"}[mode])


@kernel("one_hot", opset="iOS15")
class OneHot(Kernel):
    """on_value where index == position along a new ``axis``, else off_value."""

    def compute(self, *, indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
        depth = int(one_hot_vector_size)
        idx = np.asarray(indices).astype(np.int64)
        hot = np.arange(depth) == idx[..., None]
        out = np.where(hot, on_value, off_value)
        return np.moveaxis(out, -1, int(axis)) if int(axis) != -1 else out
