"""linear / matmul / einsum kernels against numpy, including rank-1 and broadcast corners."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .kernels import run


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=3), st.lists(st.integers(1, 3), min_size=0, max_size=3),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_matmul_broadcasts_and_transposes_like_numpy(bx, by, m, k, n, tx, ty, x1, y1):
    """Batch axes broadcast (a size-1 axis or a missing one); rank-1 operands are a row / column."""
    width = max(len(bx), len(by))
    bx, by = [1] * (width - len(bx)) + bx, [1] * (width - len(by)) + by
    by = [b if a == 1 or b == 1 else a for a, b in zip(bx, by)]  # make them broadcastable
    x = rand([k] if x1 else bx + ([k, m] if tx else [m, k]), 1)
    y = rand([k] if y1 else by + ([n, k] if ty else [k, n]), 2)
    got = run("matmul", x=x, y=y, transpose_x=tx and not x1, transpose_y=ty and not y1)
    want = np.matmul(np.swapaxes(x, -1, -2) if tx and not x1 else x, np.swapaxes(y, -1, -2) if ty and not y1 else y)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_linear_and_integer_matmul():
    x, w, b = rand((2, 3, 4)), rand((5, 4), 1), rand(5, 2)
    np.testing.assert_allclose(run("linear", x=x, weight=w, bias=b), x @ w.T + b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run("linear", opset="iOS17", x=x[0, 0], weight=w.astype(np.float16)), x[0, 0] @ w.astype(np.float16).astype(np.float32).T,
                               rtol=1e-6)
    xi, yi = np.arange(6, dtype=np.int32).reshape(2, 3), np.arange(6, dtype=np.int32).reshape(3, 2)
    got = run("matmul", x=xi, y=yi)
    assert got.dtype == np.int32 and np.array_equal(got, xi @ yi)
    with pytest.raises(ValueError, match="linear: x of shape"):
        run("linear", x=x, weight=rand((5, 3)))


@pytest.mark.parametrize("equation,sx,sy", [
    ("nchw,nwhu->nchu", (2, 3, 4, 5), (2, 5, 4, 6)),
    ("nchw,nwhu->nchu", (1, 3, 4, 5), (2, 5, 1, 6)),  # size-1 n and h broadcast
    ("abcd,adce->abce", (2, 3, 1, 5), (1, 5, 4, 2)),  # the same product under other letters
    ("chw,whr->chr", (3, 4, 5), (5, 4, 2)),
    ("chw,whr->chr", (3, 1, 5), (5, 4, 2)),
])
def test_einsum_with_broadcast_batch_axes(equation, sx, sy):
    x, y = rand(sx, 1), rand(sy, 2)
    letters = {}
    for term, shape in zip(equation.split("->")[0].split(","), (sx, sy)):
        for c, n in zip(term, shape):
            letters[c] = max(letters.get(c, 1), n)
    terms = equation.split("->")[0].split(",")
    want = np.einsum(equation, np.broadcast_to(x, [letters[c] for c in terms[0]]), np.broadcast_to(y, [letters[c] for c in terms[1]]))
    np.testing.assert_allclose(run("einsum", values=[x, y], equation=equation), want, rtol=1e-5, atol=1e-5)
