"""Gather and scatter kernels against plain loops and numpy, with random shapes, axes and
duplicate indices (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


MODES = ["update", "add", "sub", "mul", "div", "max", "min"]
COMBINE = {
    "update": lambda a, b: b,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "max": max,
    "min": min,
}
FAST = settings(max_examples=40, deadline=None)


@st.composite
def scatter_case(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    axis = draw(st.integers(-rank, rank - 1))
    n = draw(st.integers(1, 6))  # more indices than rows: duplicates are likely
    seed = draw(st.integers(0, 2**16))
    return shape, axis, n, seed, draw(st.sampled_from(MODES)), draw(st.booleans())


def laid_out(data: np.ndarray, fortran: bool) -> np.ndarray:
    """``data`` as a transpose's result lies in memory (column-major) when ``fortran``: a kernel
    writing through ``reshape(-1)`` of its copy wrote to a temporary (every update dropped)."""
    return np.asfortranarray(data) if fortran else data


@FAST
@given(scatter_case())
def test_scatter_accumulates_duplicates_like_a_loop(case):
    shape, axis, n, seed, mode, fortran = case
    rng = np.random.default_rng(seed)
    a = axis % len(shape)
    data = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    idx = rng.integers(0, shape[a], n).astype(np.int32)
    upd_shape = shape[:a] + (n,) + shape[a + 1 :]
    updates = rng.uniform(0.5, 2.0, upd_shape).astype(np.float32)
    want = data.astype(np.float64).copy()
    moved, umoved = np.moveaxis(want, a, 0), np.moveaxis(updates.astype(np.float64), a, 0)
    for k, i in enumerate(idx):
        for pos in np.ndindex(moved.shape[1:]):
            moved[(i,) + pos] = COMBINE[mode](moved[(i,) + pos], umoved[(k,) + pos])
    got = call("scatter", data=laid_out(data, fortran), indices=idx, updates=updates, axis=axis, mode=np.array(mode))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_scatter_mul_with_a_repeated_index_multiplies_twice():
    data = np.ones((3, 2), np.float32)
    got = call("scatter", data=data, indices=np.array([1, 1]), updates=np.full((2, 2), 3, np.float32), mode="mul")
    np.testing.assert_array_equal(got, [[1, 1], [9, 9], [1, 1]])


def test_scatter_takes_multi_dimensional_indices():
    data = np.zeros((4, 2), np.float32)
    idx = np.array([[0, 3], [3, 1]])
    updates = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    got = call("scatter", data=data, indices=idx, updates=updates, mode="add")
    np.testing.assert_array_equal(got, [[0, 1], [6, 7], [0, 0], [2 + 4, 3 + 5]])


@FAST
@given(scatter_case())
def test_scatter_along_axis_matches_a_loop(case):
    shape, axis, n, seed, mode, fortran = case
    rng = np.random.default_rng(seed)
    a = axis % len(shape)
    data = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    ishape = shape[:a] + (n,) + shape[a + 1 :]
    idx = rng.integers(-shape[a], shape[a], ishape).astype(np.int32)  # negatives count from the end
    updates = rng.uniform(0.5, 2.0, ishape).astype(np.float32)
    want = data.astype(np.float64).copy()
    for pos in np.ndindex(ishape):
        target = list(pos)
        target[a] = idx[pos] % shape[a]
        want[tuple(target)] = COMBINE[mode](want[tuple(target)], updates[pos])
    got = call("scatter_along_axis", data=laid_out(data, fortran), indices=idx, updates=updates, axis=axis, mode=mode)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    if mode == "update":  # numpy's own reference for update
        ref = data.copy()
        np.put_along_axis(ref, idx, updates, axis=axis)
        np.testing.assert_array_equal(got, ref)


@FAST
@given(st.integers(1, 3), st.integers(1, 6), st.integers(0, 2**16), st.sampled_from(MODES), st.booleans())
def test_scatter_nd_matches_a_loop(rank, n, seed, mode, fortran):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 4, rank + 1))
    k = int(rng.integers(1, len(shape) + 1))
    idx = np.stack([rng.integers(0, shape[j], n) for j in range(k)], axis=-1).astype(np.int32)
    data = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    updates = rng.uniform(0.5, 2.0, (n,) + shape[k:]).astype(np.float32)
    want = data.astype(np.float64).copy()
    for row in range(n):
        head = tuple(idx[row])
        for pos in np.ndindex(shape[k:]):
            want[head + pos] = COMBINE[mode](want[head + pos], updates[(row,) + pos])
    got = call("scatter_nd", data=laid_out(data, fortran), indices=idx, updates=updates, mode=mode)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_scatter_integer_data():
    got = call("scatter", data=np.array([10, 20], np.int32), indices=np.array([0, 0]), updates=np.array([2, 3], np.int32), mode="div")
    np.testing.assert_array_equal(got, [1, 20])  # 10 / 2 / 3 truncated


def test_ios17_refuses_negative_indices_that_ios16_wraps():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(call("gather", "iOS16", x=x, indices=np.array([-1]), axis=1), [[2], [5]])
    with pytest.raises(ValueError, match="out of bounds"):
        call("gather", "iOS17", x=x, indices=np.array([-1]), axis=1)
    with pytest.raises(ValueError, match="out of bounds"):
        call("scatter", "iOS17", data=x, indices=np.array([-1, 0]), updates=x, validate_indices=True)
    with pytest.raises(ValueError, match="index 3 is out of bounds"):
        call("gather", "iOS15", x=x, indices=np.array([3]), axis=1)


@FAST
@given(st.integers(0, 2**16))
def test_gather_batch_dims_matches_a_loop(seed):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(2, 5))
    shape = tuple(rng.integers(1, 4, rank))
    bd = int(rng.integers(1, rank))
    axis = int(rng.integers(bd, rank))
    ishape = shape[:bd] + tuple(rng.integers(1, 3, int(rng.integers(0, 3))))
    x = rng.standard_normal(shape).astype(np.float32)
    idx = rng.integers(-shape[axis], shape[axis], ishape).astype(np.int32)
    got = call("gather", "iOS16", x=x, indices=idx, axis=axis, batch_dims=bd)
    want = np.zeros(shape[:axis] + ishape[bd:] + shape[axis + 1 :], np.float32)
    for b in np.ndindex(shape[:bd]):
        want[b] = np.take(x[b], idx[b], axis=axis - bd)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape, bd, axis, ishape", [
    ((0, 3, 4), 1, 2, (0, 2)),  # no batches
    ((2, 3, 4), 1, 1, (2,)),  # an index per batch: the axis goes
    ((2, 3, 4, 5), 2, 3, (2, 3, 2, 2)),
    ((3, 2, 4, 5), 1, 2, (3, 2, 3)),  # axes between the batch and the gathered one, and after it
])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_gather_batch_dims_is_one_gather_for_every_batch(shape, bd, axis, ishape, dtype, monkeypatch):
    """The result of the per-batch loop (its reference here), values and dtype, without a numpy
    call per batch (np.take was called once a batch: 10^5 batches were 10^5 calls)."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    idx = rng.integers(-shape[axis], shape[axis], ishape).astype(np.int32)
    want = np.zeros(shape[:axis] + ishape[bd:] + shape[axis + 1 :], dtype)
    for b in np.ndindex(shape[:bd]):
        want[b] = np.take(x[b], idx[b], axis=axis - bd)
    calls = []
    take = np.take
    monkeypatch.setattr(np, "take", lambda *a, **k: calls.append(1) or take(*a, **k))
    got = call("gather", "iOS16", x=x, indices=idx, axis=axis, batch_dims=bd)
    assert got.dtype == want.dtype and got.shape == want.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    assert len(calls) <= 1, len(calls)


def test_gather_scalar_index_drops_the_axis():
    x = np.arange(6).reshape(2, 3)
    assert call("gather", x=x, indices=np.array(1), axis=1).tolist() == [1, 4]


@FAST
@given(st.integers(0, 2**16), st.booleans())
def test_gather_nd_matches_a_loop(seed, batched):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 4, int(rng.integers(2, 5))))
    bd = int(rng.integers(1, len(shape))) if batched else 0
    k = int(rng.integers(1, len(shape) - bd + 1))
    outer = tuple(rng.integers(1, 3, int(rng.integers(0, 2))))
    idx = np.stack([rng.integers(0, shape[bd + j], shape[:bd] + outer) for j in range(k)], axis=-1).astype(np.int32)
    x = rng.standard_normal(shape).astype(np.float32)
    got = call("gather_nd", "iOS16", x=x, indices=idx, batch_dims=bd)
    want = np.zeros(shape[:bd] + outer + shape[bd + k :], np.float32)
    for pos in np.ndindex(shape[:bd] + outer):
        want[pos] = x[pos[:bd] + tuple(idx[pos])]
    np.testing.assert_array_equal(got, want)


def test_gather_along_axis_is_take_along_axis():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[0, -1, 2, 1]] * 2)
    np.testing.assert_array_equal(call("gather_along_axis", x=x, indices=idx, axis=0), np.take_along_axis(x, idx % 3, 0))
