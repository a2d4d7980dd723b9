"""iOS17 quantize / dequantize against their definitions (round half to even, clip to the type)."""

import numpy as np
import pytest

from .kernels import run


@pytest.mark.parametrize("dtype,lo,hi", [("int8", -128, 127), ("uint8", 0, 255)])
def test_quantize_and_dequantize_per_tensor_and_per_axis(dtype, lo, hi):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 3, 4)) * 100).astype(np.float32)
    x[0, 0, :3] = [0.5, 1.5, 2.5]  # ties go to even
    zp_scalar = np.array(3 if dtype == "int8" else 128, dtype)
    q = run("quantize", opset="iOS17", input=x, scale=np.float32(1.0), zero_point=zp_scalar, output_dtype=dtype)
    want = np.clip(np.round(x) + int(zp_scalar), lo, hi).astype(dtype)
    assert q.dtype == np.dtype(dtype) and np.array_equal(q, want)
    assert list(q[0, 0, :3] - int(zp_scalar)) == [0, 2, 2] or dtype == "uint8"
    scale = np.array([0.5, 2.0, 4.0], np.float32)
    zp = np.array([1, 2, 3], dtype)
    q = run("quantize", opset="iOS17", input=x, scale=scale, zero_point=zp, axis=np.int32(1), output_dtype=dtype)
    want = np.clip(np.round(x / scale[None, :, None]) + zp[None, :, None].astype(np.float32), lo, hi).astype(dtype)
    assert np.array_equal(q, want)
    y = run("dequantize", opset="iOS17", input=q, scale=scale, zero_point=zp, axis=np.int32(-2))
    np.testing.assert_allclose(y, (q.astype(np.float32) - zp[None, :, None]) * scale[None, :, None])
    with pytest.raises(ValueError, match="scale has 3 values for axis 0"):
        run("dequantize", opset="iOS17", input=q, scale=scale, axis=np.int32(0))
