"""The in-place fp16 rounding equals numpy's float16 cast on every class of float32 bit pattern."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coreml_lstm.executor.fp16 import Rounder, round_fp16, round_in_range


def cast(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float16).astype(np.float32)


def assert_same(got, want):
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])  # bitwise: -0 and inf too


# Bit patterns by class: sign x exponent (zero/subnormal, fp16-subnormal range, fp16-normal range,
# past fp16's max, inf/nan) x mantissa (ties, near-ties, anything).
EXPONENTS = st.one_of(st.just(0), st.integers(1, 102), st.integers(103, 112), st.integers(113, 142),
                      st.just(143), st.integers(144, 254), st.just(255))
MANTISSAS = st.one_of(st.integers(0, (1 << 23) - 1), st.sampled_from([0, 0x1000, 0x0FFF, 0x1001, 0x3000, 0x7FF000, 0x7FE000, 0x7FFFFF]),
                      st.integers(0, 1023).map(lambda k: (k << 13) | 0x1000))
PATTERNS = st.builds(lambda s, e, m: (s << 31) | (e << 23) | m, st.integers(0, 1), EXPONENTS, MANTISSAS)


@settings(max_examples=120, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=200))
def test_rounding_equals_the_cast_on_every_class_of_bit_pattern(bits):
    x = np.array(bits, dtype=np.uint32).view(np.float32)
    assert_same(round_fp16(x), cast(x))


@settings(max_examples=15, deadline=None)
@given(arrays(np.uint32, st.integers(1, 70000)))
def test_rounding_equals_the_cast_on_random_bits_across_chunks(bits):
    x = bits.view(np.float32)
    assert_same(round_fp16(x), cast(x))


def test_the_boundaries():
    x = np.array([65504, 65519.996, 65520, 65536, 1e38, np.inf, -np.inf, np.nan, 0.0, -0.0, 2.0**-24, 2.0**-25,
                  -(2.0**-25), 3 * 2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25, 1 + 2.0**-11, 1 + 3 * 2.0**-11, -1e-30],
                 dtype=np.float32)
    got = round_fp16(x)
    assert_same(got, cast(x))
    assert got[2] == np.inf and np.signbit(got[-1]) and got[-1] == 0


def test_bounded_rounding_skips_nothing_it_needs():
    """Inside fp16's range the two-pass-shorter bounded rounding is the same rounding, in place."""
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32) * np.float32(1e3)
    want = cast(x)
    r = Rounder(1000)
    assert r(x, bounded=True) is x
    assert_same(x, want)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, st.integers(1, 3000), elements=st.floats(-65519, 65519, width=32)))
def test_the_hot_loop_rounding_is_the_cast_inside_fp16s_range(x):
    """round_in_range (the recurrent kernels' per-step rounding): the cast's value, with a -0 that
    may come back +0 (equal as numbers)."""
    want = cast(x)
    e = np.empty(x.shape, np.uint32)
    round_in_range(x, x.view(np.uint32), e, e.view(np.float32))
    assert np.array_equal(x, want)
    assert np.array_equal(np.signbit(x) & (x != 0), np.signbit(want) & (want != 0))


def test_every_fp16_value_of_an_fp16_run_is_an_fp16_value(tmp_path):
    """What lets the runner skip rounding the outputs of ``keeps_fp16`` kernels (data movement,
    recurrent ops): in fp16 mode every value the program declares fp16 holds an fp16 value."""
    import coreml_lstm.executor as ex
    from coreml_lstm.zoo import cases, convert

    chosen = [c for c in cases() if c.name in ("lstm2-iOS17-fp16", "gru2-iOS17-fp16")]  # lstm op; gru as a while_loop
    assert len(chosen) == 2
    for case in chosen:
        _, feeds, path, _ = convert(case, tmp_path)
        program = ex.load(path)
        declared = program.value_dtypes()
        values = program.run(feeds, mode="fp16", intermediate=True)
        kept = {op.outputs[0].name for op in program.block.ops if op.kernel.keeps_fp16}
        checked = [n for n, v in values.items() if declared.get(n) == np.float16 and isinstance(v, np.ndarray)]
        assert kept & set(checked), case.name  # the skip was exercised
        for name in checked:
            v = values[name]
            assert v.dtype == np.float32 and np.array_equal(v, round_fp16(v)), f"{case.name}: {name}"
