"""Gather and scatter: gather, gather_along_axis, gather_nd, scatter, scatter_along_axis, scatter_nd.

Index rules by opset: up to iOS16 an index may be negative (``-D <= v < D``, counted from the end);
from iOS17 MIL allows only ``0 <= v < D`` and leaves anything else undefined unless
``validate_indices`` asks Core ML to raise. The executor raises a clear error for any index outside
what the opset allows, whatever ``validate_indices`` says: an undefined result is never returned.

Scatter modes (``update``, ``add``, ``sub``, ``mul``, ``div``, ``max``, ``min``) are applied one
update at a time in index order, so duplicate indices accumulate: with mode ``mul`` two updates
``u1, u2`` to the same place give ``data * u1 * u2``. With ``update`` the last write wins.
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel
from ._args import axis as _axis
from ._args import check_broadcast, check_shape, text

MODES = ("update", "add", "sub", "mul", "div", "max", "min")
_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum, "min": np.minimum}


def _index(indices, size: int, negative: bool) -> np.ndarray:
    """indices as int64 in [0, size); negative ones count from the end when the opset allows them."""
    idx = np.asarray(indices).astype(np.int64)
    lo = -size if negative else 0
    if idx.size and (idx.min() < lo or idx.max() >= size):
        bad = int(idx[(idx < lo) | (idx >= size)].reshape(-1)[0])
        allowed = f"[{lo}, {size})"
        raise ValueError(f"index {bad} is out of bounds for an axis of size {size} (allowed: {allowed})")
    return np.where(idx < 0, idx + size, idx) if negative else idx


def _combine(data, lin: np.ndarray, updates, mode) -> np.ndarray:
    """A copy of data with updates (one per entry of ``lin``, a flat position) applied by ``mode``."""
    mode = text(mode)
    if mode not in MODES:
        raise ValueError(f"scatter mode {mode!r} is not one of {', '.join(MODES)}")
    out = np.array(data, copy=True, order="C")  # a transpose's result is F-ordered: its reshape(-1) would be a copy, not a view
    flat = out.reshape(-1)
    lin = lin.reshape(-1)
    upd = np.asarray(updates).reshape(-1)
    if upd.size != lin.size:
        raise ValueError(f"{upd.size} update values for {lin.size} target positions")
    if mode == "update":
        # Last write wins: keep, for every target, the last update that names it.
        targets, last = np.unique(lin[::-1], return_index=True)
        flat[targets] = upd[::-1][last].astype(out.dtype)
    elif out.dtype.kind in "iu" and mode == "div":
        work = flat.astype(np.float64)
        np.divide.at(work, lin, upd.astype(np.float64))
        flat[:] = np.trunc(work).astype(out.dtype)
    else:
        _UFUNCS[mode].at(flat, lin, upd.astype(out.dtype))
    return out


# -- gather -----------------------------------------------------------------------------------


@kernel("gather", opset="iOS15")
class Gather(Kernel):
    """out[p_0..p_{a-1}, i_0..i_{M-1}, p_{a+1}..] = x[p_0..p_{a-1}, indices[i_0..i_{M-1}], p_{a+1}..].

    x: (*D), indices: (*N) int, axis a (negative counts from the end) -> D[:a] + N + D[a+1:];
    a 0-d index drops the axis. Negative index values count from the end of the axis.
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    negative = True

    def compute(self, *, x, indices, axis=0):
        return self._gather(x, indices, axis, 0)

    def _gather(self, x, indices, axis, batch_dims):
        x = np.asarray(x)
        a = _axis(axis, x.ndim)
        idx = _index(indices, x.shape[a], self.negative)
        bd = int(batch_dims)
        check_shape(x.shape[:a] + idx.shape[bd:] + x.shape[a + 1 :], x.itemsize, "gather")
        if bd == 0:
            return np.take(x, idx, axis=a)
        if not 0 < bd <= min(a, idx.ndim) or x.shape[:bd] != idx.shape[:bd]:
            raise ValueError(f"batch_dims {bd} does not match x {x.shape}, indices {idx.shape} and axis {a}")
        # One fancy index for every batch: with the batch axes flattened to one (R), the gathered
        # axis moved next to it and a row number per index, xt[rows, ids] is (R, *N, *P, *Q) for
        # x's axes P between the batch axes and the gathered one and Q after it; N goes after P.
        xs = x.reshape((-1,) + x.shape[bd:])  # (R, *P, D_a, *Q)
        ids = idx.reshape((-1,) + idx.shape[bd:])  # (R, *N)
        p, n = a - bd, ids.ndim - 1
        xt = np.moveaxis(xs, 1 + p, 1)  # (R, D_a, *P, *Q)
        rows = np.arange(xs.shape[0]).reshape((-1,) + (1,) * n)
        out = np.moveaxis(xt[rows, ids], tuple(range(1, 1 + n)), tuple(range(1 + p, 1 + p + n)))  # (R, *P, *N, *Q)
        return np.ascontiguousarray(out).reshape(x.shape[:bd] + out.shape[1:])


@kernel("gather", opset="iOS16")
class GatherIOS16(Gather):
    """iOS16 adds ``batch_dims``: the leading batch_dims axes of x and indices are matched, and
    the output is D[:axis] + N[batch_dims:] + D[axis+1:]."""

    def compute(self, *, x, indices, axis=0, batch_dims=0):
        return self._gather(x, indices, axis, batch_dims)


@kernel("gather", opset="iOS17")
class GatherIOS17(GatherIOS16):
    """iOS17: indices must lie in [0, D[axis]); adds ``validate_indices`` (out-of-range always raises here)."""

    negative = False

    def compute(self, *, x, indices, axis=0, batch_dims=0, validate_indices=False):
        return self._gather(x, indices, axis, batch_dims)


@kernel("gather_along_axis", opset="iOS15")
class GatherAlongAxis(Kernel):
    """out[..., i, ...] = x[..., indices[..., i, ...], ...] along ``axis`` (numpy take_along_axis).

    x: (*D), indices: (*K) of the same rank with K[d] == D[d] off the axis -> (*K).
    """

    keeps_fp16 = True  # moves fp16 values, makes none

    negative = True

    def compute(self, *, x, indices, axis=0):
        x = np.asarray(x)
        a = _axis(axis, x.ndim)
        idx = _index(indices, x.shape[a], self.negative)
        if idx.ndim != x.ndim:
            raise ValueError(f"gather_along_axis: indices of shape {idx.shape} for x of shape {x.shape} (ranks must match)")
        # numpy broadcasts size-1 axes of either against the other: check what that makes.
        off = check_broadcast(x.shape[:a] + (1,) + x.shape[a + 1 :], idx.shape[:a] + (1,) + idx.shape[a + 1 :], what="gather_along_axis")
        check_shape(off[:a] + idx.shape[a : a + 1] + off[a + 1 :], max(x.itemsize, 8), "gather_along_axis")
        return np.take_along_axis(x, idx, axis=a)


@kernel("gather_along_axis", opset="iOS17")
class GatherAlongAxisIOS17(GatherAlongAxis):
    """iOS17: indices must lie in [0, D[axis]); adds ``validate_indices``."""

    negative = False

    def compute(self, *, x, indices, axis=0, validate_indices=False):
        return super().compute(x=x, indices=indices, axis=axis)


@kernel("gather_nd", opset="iOS15")
class GatherNd(Kernel):
    """out[i_0..i_{K-2}] = x[indices[i_0..i_{K-2}, :]]: the last axis of indices (length k) indexes
    the first k axes of x. x: (*D), indices: (*E, k) -> E + D[k:]."""

    keeps_fp16 = True  # moves fp16 values, makes none

    negative = True

    def compute(self, *, x, indices):
        return self._gather_nd(x, indices, 0)

    def _gather_nd(self, x, indices, batch_dims):
        x = np.asarray(x)
        idx = np.asarray(indices).astype(np.int64)
        bd = int(batch_dims)
        k = idx.shape[-1]
        if k + bd > x.ndim or x.shape[:bd] != idx.shape[:bd]:
            raise ValueError(f"indices {idx.shape} with batch_dims {bd} do not fit x {x.shape}")
        check_shape(idx.shape[:-1] + x.shape[bd + k :], x.itemsize, "gather_nd")
        coords = tuple(_index(idx[..., j], x.shape[bd + j], self.negative) for j in range(k))
        lead = x.shape[:bd]
        xs = x.reshape((-1,) + x.shape[bd:])
        flat = [c.reshape((xs.shape[0],) + idx.shape[bd:-1]) for c in coords]
        batch = np.arange(xs.shape[0]).reshape((-1,) + (1,) * (idx.ndim - 1 - bd))
        out = xs[(batch,) + tuple(flat)]
        return out.reshape(lead + out.shape[1:])


@kernel("gather_nd", opset="iOS16")
class GatherNdIOS16(GatherNd):
    """iOS16 adds ``batch_dims``: indices index x[b_0..b_{bd-1}] for the matching leading axes;
    the output is E + D[batch_dims + k:] (E includes the batch axes)."""

    def compute(self, *, x, indices, batch_dims=0):
        return self._gather_nd(x, indices, batch_dims)


@kernel("gather_nd", opset="iOS17")
class GatherNdIOS17(GatherNdIOS16):
    """iOS17: indices must be non-negative and in range; adds ``validate_indices``."""

    negative = False

    def compute(self, *, x, indices, batch_dims=0, validate_indices=False):
        return self._gather_nd(x, indices, batch_dims)


# -- scatter ----------------------------------------------------------------------------------


@kernel("scatter", opset="iOS15")
class Scatter(Kernel):
    """A copy of data with out[p.., indices[i..], q..] = mode(out[...], updates[p.., i.., q..]).

    data: (*D), indices: (*I) int, axis a -> updates: D[:a] + I + D[a+1:]; output (*D).
    Default mode ``add``; duplicates accumulate in index order (see the module docstring).
    """

    negative = True

    def compute(self, *, data, indices, updates, axis=0, mode="add"):
        data = np.asarray(data)
        a = _axis(axis, data.ndim)
        idx = _index(indices, data.shape[a], self.negative).reshape(-1)
        pre = int(np.prod(data.shape[:a], dtype=np.int64))
        post = int(np.prod(data.shape[a + 1 :], dtype=np.int64))
        want = data.shape[:a] + np.shape(indices) + data.shape[a + 1 :]
        if np.shape(updates) != want:
            raise ValueError(f"updates have shape {np.shape(updates)}, expected {want}")
        lin = (np.arange(pre)[:, None, None] * data.shape[a] + idx[None, :, None]) * post + np.arange(post)[None, None, :]
        return _combine(data, lin, updates, mode)


@kernel("scatter", opset="iOS17")
class ScatterIOS17(Scatter):
    """iOS17: indices must lie in [0, D[axis]); adds ``validate_indices``."""

    negative = False

    def compute(self, *, data, indices, updates, axis=0, mode="add", validate_indices=False):
        return super().compute(data=data, indices=indices, updates=updates, axis=axis, mode=mode)


@kernel("scatter_along_axis", opset="iOS15")
class ScatterAlongAxis(Kernel):
    """A copy of data with out[.., indices[.., i, ..], ..] = mode(out[...], updates[.., i, ..]) along ``axis``.

    data: (*D), indices and updates: (*K), same rank, K[d] == D[d] off the axis; output (*D).
    Default mode ``add``; duplicates accumulate.
    """

    negative = True

    def compute(self, *, data, indices, updates, axis=0, mode="add"):
        data = np.asarray(data)
        a = _axis(axis, data.ndim)
        idx = _index(indices, data.shape[a], self.negative)
        if idx.ndim != data.ndim or np.shape(updates) != idx.shape:
            raise ValueError(f"indices {idx.shape} and updates {np.shape(updates)} must match the rank of data {data.shape}")
        if any(k != d for i, (k, d) in enumerate(zip(idx.shape, data.shape)) if i != a):
            raise ValueError(f"indices {idx.shape} must match data {data.shape} off axis {a}")
        grids = np.indices(idx.shape, sparse=True)
        coords = np.broadcast_arrays(*[idx if d == a else grids[d] for d in range(data.ndim)])
        lin = np.ravel_multi_index(tuple(coords), data.shape)
        return _combine(data, lin, updates, mode)


@kernel("scatter_along_axis", opset="iOS17")
class ScatterAlongAxisIOS17(ScatterAlongAxis):
    """iOS17: indices must lie in [0, D[axis]); adds ``validate_indices``."""

    negative = False

    def compute(self, *, data, indices, updates, axis=0, mode="add", validate_indices=False):
        return super().compute(data=data, indices=indices, updates=updates, axis=axis, mode=mode)


@kernel("scatter_nd", opset="iOS15")
class ScatterNd(Kernel):
    """A copy of data with out[indices[i.., :]] = mode(out[...], updates[i..]).

    data: (*D), indices: (*E, k) int, updates: E + D[k:]; output (*D). Default mode ``add``;
    duplicates accumulate.
    """

    negative = True

    def compute(self, *, data, indices, updates, mode="add"):
        data = np.asarray(data)
        idx = np.asarray(indices).astype(np.int64)
        k = idx.shape[-1]
        if k > data.ndim:
            raise ValueError(f"indices {idx.shape} index {k} axes of data of rank {data.ndim}")
        want = idx.shape[:-1] + data.shape[k:]
        if np.shape(updates) != want:
            raise ValueError(f"updates have shape {np.shape(updates)}, expected {want}")
        coords = tuple(_index(idx[..., j], data.shape[j], self.negative) for j in range(k))
        head = np.ravel_multi_index(coords, data.shape[:k]) if k else np.zeros(idx.shape[:-1], np.int64)
        post = int(np.prod(data.shape[k:], dtype=np.int64))
        lin = head[..., None] * post + np.arange(post)
        return _combine(data, lin, updates, mode)


@kernel("scatter_nd", opset="iOS17")
class ScatterNdIOS17(ScatterNd):
    """iOS17: indices must be non-negative and in range; adds ``validate_indices``."""

    negative = False

    def compute(self, *, data, indices, updates, mode="add", validate_indices=False):
        return super().compute(data=data, indices=indices, updates=updates, mode=mode)
