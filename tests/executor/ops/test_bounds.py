"""Kernels whose attributes (a pad, a window size, a "scalar" alpha) or whose temporaries (attention's
scores, non_zero's coordinates) can be far larger than their inputs: each is refused before it
allocates, naming what it would make, or computes without making it."""

import math
import tracemalloc

import numpy as np
import pytest

from coreml_lstm.executor import limits
from coreml_lstm.executor.ops.activation import erf

from .kernels import run

BOUND = 1 << 20  # 1 MiB: each case below would make 4 MiB or more
BIG = 1 << 22


def custom_pad(after: int) -> dict:
    return dict(pad_type="custom", pad=np.array([0, after], np.int32))


ones = np.ones
CASES = {
    "max_pool pad": ("max_pool", dict(x=ones((1, 1, 1), np.float32), kernel_sizes=np.array([1], np.int32), **custom_pad(BIG)),
                     "max_pool (its padded input) of shape (1, 1, 4194305)"),
    "avg_pool pad": ("avg_pool", dict(x=ones((1, 1, 1), np.float32), kernel_sizes=np.array([1], np.int32), **custom_pad(BIG)),
                     "avg_pool (its padded input) of shape (1, 1, 4194305)"),
    "l2_pool pad": ("l2_pool", dict(x=ones((1, 1, 1), np.float32), kernel_sizes=np.array([1], np.int32), **custom_pad(BIG)),
                    "l2_pool (its padded input) of shape (1, 1, 4194305)"),
    "l2_pool windows": ("l2_pool", dict(x=ones((1, 1, 4096), np.float32), kernel_sizes=np.array([1024], np.int32)),
                        "l2_pool (its squared windows) of shape (1, 1, 3073, 1024)"),
    "conv pad": ("conv", dict(x=ones((1, 1, 1), np.float32), weight=ones((1, 1, 1), np.float32), **custom_pad(BIG)),
                 "conv (its padded input) of shape (1, 1, 4194305)"),
    "space_to_batch paddings": ("space_to_batch", dict(x=ones((1, 1, 1, 1), np.float32), block_shape=np.array([1, 1], np.int32),
                                                       paddings=np.array([[0, 1 << 10], [0, 1 << 11]], np.int32)),
                                "space_to_batch (its padded input) of shape (1, 1, 1025, 2049)"),
    "non_zero coordinates": ("non_zero", dict(x=ones((1 << 17, 1, 1, 1, 1), np.bool_)), "non_zero of shape (131072, 5)"),
    "attention scores": ("scaled_dot_product_attention", dict(query=ones((1, 2048, 1), np.float32), key=ones((1, 2048, 1), np.float32),
                                                             value=ones((1, 2048, 1), np.float32)),
                         "scaled_dot_product_attention (its scores) of shape (1, 2048, 2048)"),
    "attention batch broadcast": ("scaled_dot_product_attention", dict(query=ones((1024, 1, 1, 1), np.float32), key=ones((1, 1024, 1, 1), np.float32),
                                                                      value=ones((1, 1024, 1, 1), np.float32)),
                                  "scaled_dot_product_attention of shape (1024, 1024)"),
    "nms pairwise IoU": ("non_maximum_suppression", dict(boxes=ones((1, 4, 1024), np.float32), scores=ones((1, 1, 1024), np.float32),
                                                        iou_threshold=np.float32(0.5), max_boxes=np.int32(1)),
                         "non_maximum_suppression (its pairwise IoU) of shape (1024, 1024)"),
    "gather_along_axis broadcast": ("gather_along_axis", dict(x=ones((1, 1024), np.float32), indices=np.zeros((1024, 1), np.int32), axis=np.int32(0)),
                                    "gather_along_axis of shape (1024, 1024)"),
    "pow broadcast": ("pow", dict(x=ones((1024, 1), np.float32), y=ones((1, 1024), np.float32)), "pow of shape (1024, 1024)"),
    "clip alpha": ("clip", dict(x=ones((1024, 1), np.float32), alpha=np.zeros((1, 1024), np.float32), beta=np.float32(2)), "clip of shape (1024, 1024)",
                   "iOS15"),
    "threshold alpha": ("threshold", dict(x=ones((1024, 1), np.float32), alpha=np.zeros((1, 1024), np.float32)), "threshold of shape (1024, 1024)"),
    "leaky_relu alpha": ("leaky_relu", dict(x=ones((1024, 1), np.float32), alpha=np.zeros((1, 1024), np.float32)), "leaky_relu of shape (1024, 1024)"),
    "linear_activation beta": ("linear_activation", dict(x=ones((1024, 1), np.float32), alpha=np.float32(1), beta=np.zeros((1, 1024), np.float32)),
                               "linear_activation of shape (1024, 1024)"),
    "rsqrt epsilon": ("rsqrt", dict(x=ones((1024, 1), np.float32), epsilon=np.ones((1, 1024), np.float32)), "rsqrt of shape (1024, 1024)"),
    "affine dequantize to float32": ("constexpr_affine_dequantize", dict(quantized_data=np.zeros(1 << 19, np.uint8), zero_point=np.uint8(0),
                                                                        scale=np.float32(1)),
                                     "constexpr_affine_dequantize of shape (524288,)"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_kernel_is_refused_before_it_allocates(monkeypatch, name):
    op_type, inputs, expected, *opset = CASES[name]
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", BOUND)
    tracemalloc.start()
    try:
        with pytest.raises(limits.TooLarge) as e:
            run(op_type, *opset, **inputs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert expected in str(e.value) and "would need" in str(e.value), str(e.value)
    assert peak < BOUND, f"{op_type} allocated {peak} bytes before refusing"


def test_local_response_norm_makes_no_padding_of_its_window_size(monkeypatch):
    """size 2^22 over 3 channels: every window holds all the channels, and nothing is padded
    (padding the channel axis by the window made 32 MiB here)."""
    monkeypatch.setattr(limits, "MAX_TENSOR_BYTES", BOUND)
    x = np.random.default_rng(0).standard_normal((1, 3, 1, 1)).astype(np.float32)
    tracemalloc.start()
    try:
        got = run("local_response_norm", x=x, size=np.int32(1 << 22), alpha=np.float32(1), beta=np.float32(0.75), k=np.float32(1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BOUND
    sq = np.square(x.astype(np.float64)).sum(axis=1, keepdims=True)  # every channel is in every window
    np.testing.assert_allclose(got, x / (1 + sq / (1 << 22)) ** 0.75, rtol=1e-6)


def test_split_into_more_parts_than_outputs_is_refused():
    with pytest.raises(ValueError, match="num_splits 1099511627776 for an op with 1 outputs"):
        run("split", x=np.zeros((0,), np.float32), axis=np.int32(0), num_splits=np.int64(1 << 40))


def test_erf_matches_math_erf_to_1e_15_relative():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-8, 8, 100_001), np.geomspace(1e-300, 30, 5_000), -np.geomspace(1e-300, 30, 5_000),
                        rng.standard_normal(20_000) * 3, [2.5, np.nextafter(2.5, 0), -2.5, 6.0, 27.0]])
    rng.shuffle(x)  # chunks mixing both branches
    want = np.array([math.erf(v) for v in x])
    got = erf(x)
    nonzero = want != 0
    assert np.max(np.abs(got[nonzero] - want[nonzero]) / np.abs(want[nonzero])) < 1e-15
    special = erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan]))
    np.testing.assert_array_equal(special[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.signbit(special[1]) and np.isnan(special[4])


def test_erf_kernel_allocates_no_python_object_per_element():
    x = np.linspace(-4, 4, 1 << 18).astype(np.float32)
    tracemalloc.start()
    try:
        got = run("erf", x=x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # x in float64 and the float64 result are 4 x.nbytes, the chunks' scratch a little more; a Python
    # float per element (np.frompyfunc(math.erf)) took 10 x.nbytes
    assert peak < 6 * x.nbytes
    np.testing.assert_allclose(got, [math.erf(v) for v in x.astype(np.float64)], rtol=1e-15, atol=1e-300)
