"""Random op kernels: degenerate distributions give Core ML's values exactly; the others are drawn
with numpy's Generator from the op's seed (checked for shape, range, statistics, repeatability)."""

import numpy as np
import pytest

from coreml_lstm.errors import PackageError
from coreml_lstm.executor import limits
from coreml_lstm.executor.program import Op, Output, _call

from .kernels import run

SHAPE = np.array([2, 1, 3], np.int32)


def test_degenerate_distributions_are_exact():
    np.testing.assert_array_equal(run("random_bernoulli", shape=SHAPE, prob=np.float32(1.0)), np.ones((2, 1, 3)))
    np.testing.assert_array_equal(run("random_bernoulli", shape=SHAPE, prob=np.float32(0.0)), np.zeros((2, 1, 3)))
    np.testing.assert_array_equal(run("random_normal", shape=SHAPE, mean=np.float32(1.5), stddev=np.float32(0.0)), np.full((2, 1, 3), 1.5))
    np.testing.assert_array_equal(run("random_uniform", shape=SHAPE, low=np.float32(-2.0), high=np.float32(-2.0)), np.full((2, 1, 3), -2.0))
    got = run("random_categorical", x=np.array([[0.3], [5.0]], np.float32), size=np.int32(4), seed=np.int32(1))
    np.testing.assert_array_equal(got, np.zeros((2, 4)))
    one_hot = run("random_categorical", x=np.array([0.0, 1.0, 0.0], np.float32), mode="probs", size=np.int32(5))
    np.testing.assert_array_equal(one_hot, np.ones(5))


def test_draws_follow_the_distribution_and_repeat_for_a_seed():
    shape = np.array([200, 100], np.int32)
    u = run("random_uniform", shape=shape, low=np.float32(2.0), high=np.float32(3.0), seed=np.int32(7))
    assert u.dtype == np.float32 and u.shape == (200, 100) and u.min() >= 2.0 and u.max() < 3.0
    assert abs(u.mean() - 2.5) < 0.01
    np.testing.assert_array_equal(u, run("random_uniform", shape=shape, low=np.float32(2.0), high=np.float32(3.0), seed=np.int32(7)))
    assert not np.array_equal(u, run("random_uniform", shape=shape, low=np.float32(2.0), high=np.float32(3.0), seed=np.int32(8)))
    n = run("random_normal", shape=shape, mean=np.float32(1.0), stddev=np.float32(2.0), seed=np.int32(3))
    assert abs(n.mean() - 1.0) < 0.05 and abs(n.std() - 2.0) < 0.05
    b = run("random_bernoulli", shape=shape, prob=np.float32(0.25))
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.25) < 0.01
    logits = np.log(np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]], np.float32))
    c = run("random_categorical", x=logits, size=np.int32(50_000), seed=np.int32(0))
    assert c.shape == (2, 50_000)
    np.testing.assert_allclose(np.bincount(c[0].astype(int), minlength=3) / 50_000, [0.2, 0.5, 0.3], atol=1e-2)
    np.testing.assert_allclose(np.bincount(c[1].astype(int), minlength=3) / 50_000, [0.9, 0.05, 0.05], atol=1e-2)
    p = run("random_categorical", x=np.exp(logits), mode="probs", size=np.int32(50_000), seed=np.int32(0))
    np.testing.assert_array_equal(p, c)  # probs mode takes their log as logits


def test_unseeded_ops_repeat_per_op_and_differ_between_ops():
    def draw(name):
        op = Op("random_uniform", name, {}, {}, [Output("out", np.dtype(np.float32), None)])
        from coreml_lstm.executor import registry

        k = registry.lookup("random_uniform", "iOS15")(op, None)
        return k.compute(shape=np.array([64], np.int32))

    np.testing.assert_array_equal(draw("a"), draw("a"))
    assert not np.array_equal(draw("a"), draw("b"))


@pytest.mark.parametrize("op_type, kwargs, message", [
    ("random_uniform", dict(shape=np.array([2, 0], np.int32)), "must be > 0"),
    ("random_uniform", dict(shape=np.array([[2]], np.int32)), "vector of integers"),
    ("random_uniform", dict(shape=SHAPE, low=np.float32(1.0), high=np.float32(0.0)), "below low"),
    ("random_bernoulli", dict(shape=SHAPE, prob=np.float32(1.5)), r"in \[0, 1\]"),
    ("random_normal", dict(shape=SHAPE, stddev=np.float32(-1.0)), ">= 0"),
    ("random_categorical", dict(x=np.array([-np.inf, -np.inf], np.float32)), "probability 0"),
    ("random_categorical", dict(x=np.array([0.0, np.nan], np.float32)), "nan"),
    ("random_categorical", dict(x=np.zeros(2, np.float32), size=np.int32(0)), "size must be"),
])
def test_invalid_parameters_are_refused(op_type, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(op_type, opset="iOS15", **kwargs)


@pytest.mark.parametrize("op_type, kwargs", [
    ("random_uniform", dict(shape=np.array([2**20, 2**20, 2**20], np.int32))),
    ("random_categorical", dict(x=np.zeros((2**20, 2), np.float32), size=np.int32(2**30))),
])
def test_huge_outputs_are_refused_before_allocating(op_type, kwargs):
    op = Op(op_type, "r", {}, {}, [Output("out", np.dtype(np.float32), None)])
    from coreml_lstm.executor import registry

    op.kernel = registry.lookup(op_type, "iOS15")(op, None)
    with pytest.raises(PackageError, match="would need"):
        _call(op, op.kernel, kwargs)
    assert limits.MAX_TENSOR_BYTES < 2**60
