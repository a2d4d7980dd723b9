"""Image resizing kernels against torch's interpolate / grid_sample / affine_grid and the
examples of the MIL definitions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .kernels import run


def call(op_type, opset="iOS15", **inputs):
    """The kernel ``opset`` (default iOS15, the first ML Program opset) picks for ``op_type``."""
    return run(op_type, opset, **inputs)


X = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)


@pytest.mark.parametrize("scale", [(2, 3), (1, 2), (0.5, 0.75)])
@pytest.mark.parametrize("align", [True, False])
def test_upsample_bilinear_is_torchs_with_recomputed_scale(scale, align):
    got = call("upsample_bilinear", x=X, scale_factor_height=np.float32(scale[0]), scale_factor_width=np.float32(scale[1]),
               align_corners=np.array(align))
    size = (int(5 * scale[0]), int(7 * scale[1]))
    want = F.interpolate(torch.from_numpy(X), size=size, mode="bilinear", align_corners=align).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_upsample_bilinear_ios16_half_pixel_centers():
    x = np.array([1, 2], np.float32).reshape(1, 1, 1, 2)

    def up(align, half):
        return call("upsample_bilinear", "iOS16", x=x, scale_factor_height=2, scale_factor_width=3,
                    align_corners=np.array(align), half_pixel_centers=half)[0, 0, 0]

    np.testing.assert_allclose(up(True, None), [1, 1.2, 1.4, 1.6, 1.8, 2], rtol=1e-6)
    np.testing.assert_allclose(up(False, None), [1, 1, 4 / 3, 5 / 3, 2, 2], rtol=1e-6)
    np.testing.assert_allclose(up(False, np.array(False)), [1, 4 / 3, 5 / 3, 2, 2, 2], rtol=1e-6)
    with pytest.raises(ValueError, match="cannot both"):
        up(True, np.array(True))


# The grids of the resize_bilinear definition for X_in = 2 (values 0 and 1), X_out = 5 and 6.
GRIDS = {
    "UNALIGN_CORNERS": ([0, 0.1, 0.5, 0.9, 1], [0, 0, 1 / 3, 2 / 3, 1, 1]),
    "STRICT_ALIGN_CORNERS": ([0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1]),
    "ALIGN_CORNERS": ([0, 0.25, 0.5, 0.75, 1], [0, 0.2, 0.4, 0.6, 0.8, 1]),
    "DEFAULT": ([0, 0.4, 0.8, 1, 1], [0, 1 / 3, 2 / 3, 1, 1, 1]),
    "OFFSET_CORNERS": ([0.1, 0.3, 0.5, 0.7, 0.9], [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12]),
}


@pytest.mark.parametrize("mode", sorted(GRIDS))
def test_resize_bilinear_sampling_modes_are_the_definitions_grids(mode):
    x = np.array([0, 1], np.float32).reshape(1, 1, 2)
    for n, want in zip((5, 6), GRIDS[mode]):
        got = call("resize_bilinear", x=x, target_size_height=1, target_size_width=n, sampling_mode=np.array(mode))
        np.testing.assert_allclose(got[0, 0], want, atol=1e-6)
        linear = call("resize", "iOS17", x=x, shape=np.array([1, n]), resized_dims=np.uint32(2), sampling_mode=mode)
        np.testing.assert_allclose(linear[0, 0], want, atol=1e-6)


def test_align_corners_single_output_takes_the_centre():
    x = np.array([0, 1, 2, 3], np.float32).reshape(1, 1, 4)
    assert call("resize_bilinear", x=x, target_size_width=1, sampling_mode="ALIGN_CORNERS")[0, 0, 0] == 1.5
    assert call("resize_bilinear", x=x, target_size_width=1, sampling_mode="STRICT_ALIGN_CORNERS")[0, 0, 0] == 0


def test_nearest_neighbour_ops_are_torchs_nearest_and_nearest_exact():
    t = torch.from_numpy(X)
    got = call("upsample_nearest_neighbor", x=X, scale_factor_height=np.float32(2), scale_factor_width=np.float32(1.5))
    np.testing.assert_array_equal(got, F.interpolate(t, size=(10, 10), mode="nearest").numpy())
    got = call("resize_nearest_neighbor", x=X, target_size_height=8, target_size_width=3)
    np.testing.assert_array_equal(got, F.interpolate(t, size=(8, 3), mode="nearest-exact").numpy())
    got = call("resize", "iOS17", x=X, shape=np.array([0, 8, 3]), resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR")
    np.testing.assert_array_equal(got, F.interpolate(t, size=(8, 3), mode="nearest-exact").numpy())


def test_fractional_nearest_scales_use_the_output_size():
    x = np.array([1.5, -2.5, 3.5], np.float32).reshape(1, 1, 1, 3)
    got = call("upsample_nearest_neighbor", x=x, scale_factor_height=np.float32(3.17), scale_factor_width=np.float32(0.67))
    np.testing.assert_array_equal(got.reshape(3, 2), [[1.5, -2.5]] * 3)
    got = call("upsample_nearest_neighbor", x=x, scale_factor_height=np.float32(2), scale_factor_width=np.float32(1.12))
    np.testing.assert_array_equal(got.reshape(2, 3), [[1.5, -2.5, 3.5]] * 2)


@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [True, False])
def test_resample_is_torchs_grid_sample(sampling, padding, align):
    rng = np.random.default_rng(1)
    grid = rng.uniform(-2.5, 2.5, (2, 4, 6, 2)).astype(np.float32)
    want = F.grid_sample(torch.from_numpy(X), torch.from_numpy(grid), mode=sampling, padding_mode=padding, align_corners=align).numpy()
    mode = {"zeros": "constant", "border": "border", "reflection": "reflection" if align else "symmetric"}[padding]
    got = call("resample", x=X, coordinates=grid, sampling_mode=sampling, padding_mode=mode, padding_value=np.float32(0),
               coordinates_mode="normalized_minus_one_to_one", align_corners=np.array(align))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_resample_coordinate_modes_and_padding_value():
    x = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
    coords = np.array([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2], np.float32).reshape(1, 2, 2, 2)
    cases = [  # Apple's expected values for the four combinations of its test
        (("bilinear", "constant", 6.17, "normalized_minus_one_to_one", True), [8.585, 6.17, 27.5, 6.17]),
        (("nearest", "border", -1.0, "unnormalized", False), [11.0, 11.0, 11.0, 44.0]),
        (("bilinear", "reflection", -1.0, "normalized_zero_to_one", True), [22.0, 36.3, 11.0, 34.1]),
        (("nearest", "symmetric", -1.0, "normalized_zero_to_one", False), [22.0, 33.0, 11.0, 33.0]),
    ]
    for (s, p, v, c, a), want in cases:
        got = call("resample", x=x, coordinates=coords, sampling_mode=s, padding_mode=p, padding_value=np.float32(v),
                   coordinates_mode=c, align_corners=np.array(a))
        np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-5)


def test_affine_is_torchs_affine_grid_and_grid_sample():
    theta = np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)
    got = call("affine", x=X, transform_matrix=theta, output_height=4, output_width=9, sampling_mode="bilinear",
               padding_mode="constant", padding_value=np.float32(0), coordinates_mode="normalized_minus_one_to_one",
               align_corners=np.array(True))
    grid = F.affine_grid(torch.from_numpy(theta).reshape(2, 2, 3), (2, 3, 4, 9), align_corners=True)
    want = F.grid_sample(torch.from_numpy(X), grid, mode="bilinear", padding_mode="zeros", align_corners=True).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


IMAGE = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)


@pytest.mark.parametrize("roi, size, normalized, want", [
    ([1, 1, 2, 2], 2, False, [6, 7, 10, 11]),
    ([1, 1, 2, 2], 1, False, [8.5]),
    ([0, 0, 0, 1 / 3, 1 / 3], 2, True, [1, 2, 5, 6]),
    ([2, 2, 1, 1], 2, False, [11, 10, 7, 6]),
])
def test_crop_resize_align_corners_examples(roi, size, normalized, want):
    roi = np.array(roi, np.float32).reshape(1, 1, -1, 1, 1)
    got = call("crop_resize", x=IMAGE, roi=roi, target_height=size, target_width=size, normalized_coordinates=np.array(normalized),
               sampling_mode="ALIGN_CORNERS")
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-6)


def test_crop_resize_pads_outside_the_image_and_ios17_boxes():
    boxes = np.array([[0.1, 0.3, 1.3, 1.0], [0.5, 1.8, 1.0, 0.3], [0.0, 0.4, 0.6, 0.7]], np.float32)
    p = 10.0
    want = np.array([3.1, 5.2, p, p, p, 7.9, p, 13.9, 2.2, 3.1, 9.4, 10.3], np.float32)
    roi = np.concatenate([np.zeros((3, 1), np.float32), boxes], 1).reshape(3, 1, 5, 1, 1)
    got = call("crop_resize", "iOS16", x=IMAGE, roi=roi, target_height=2, target_width=2, normalized_coordinates=np.array(True),
               sampling_mode="ALIGN_CORNERS", pad_value=np.float32(p))
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-5)
    got = call("crop_resize", "iOS17", x=IMAGE, boxes=boxes, box_indices=np.zeros(3, np.int32), target_height=2, target_width=2,
               normalized_coordinates=np.array(True), sampling_mode="ALIGN_CORNERS", pad_value=np.float32(p))
    assert got.shape == (3, 1, 2, 2)
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-5)


def test_crop_resize_box_modes_agree():
    corners = np.array([0.5, 1.0, 2.5, 3.0], np.float32)  # h0, w0, h1, w1
    forms = {"CORNERS_HEIGHT_FIRST": corners, "CORNERS_WIDTH_FIRST": corners[[1, 0, 3, 2]],
             "CENTER_SIZE_HEIGHT_FIRST": np.array([1.5, 2.0, 2.0, 2.0], np.float32),
             "CENTER_SIZE_WIDTH_FIRST": np.array([2.0, 1.5, 2.0, 2.0], np.float32)}
    outs = [call("crop_resize", x=IMAGE, roi=box.reshape(1, 1, 4, 1, 1), target_height=3, target_width=3, box_coordinate_mode=mode,
                 sampling_mode="ALIGN_CORNERS") for mode, box in forms.items()]
    for out in outs[1:]:
        np.testing.assert_allclose(out, outs[0])
    np.testing.assert_allclose(outs[0][0, 0, 0], [[4, 5, 6], [8, 9, 10], [12, 13, 14]])  # x[h, w] = 4h + w + 1


def test_crop():
    got = call("crop", x=X, crop_height=np.array([1, 2]), crop_width=np.array([0, 3]))
    np.testing.assert_array_equal(got, X[..., 1:3, 0:4])


# -- many images at once: the result of one image at a time, bit for bit -----------------------

from coreml_lstm.executor.ops import image_resizing as IR  # noqa: E402


def _counting(monkeypatch, name):
    calls = []
    real = getattr(IR, name)
    monkeypatch.setattr(IR, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


SAMPLING = dict(sampling_mode="bilinear", padding_mode="reflection", padding_value=np.float32(0.5), align_corners=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32])
def test_resample_and_affine_sample_every_image_in_one_go_as_one_at_a_time(dtype, monkeypatch):
    """Five images are one _sample call (they were five), each image's result the bytes it has
    alone; images sampled a chunk at a time (SAMPLE_CHUNK) give the same bytes."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 2, 4, 6)) * 3).astype(dtype)
    coords = rng.uniform(-1.3, 1.3, (5, 3, 4, 2)).astype(np.float32)
    for matrix in (rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal((1, 6)).astype(np.float32)):
        ops = {
            "resample": (dict(coordinates=coords, coordinates_mode="normalized_minus_one_to_one"), lambda b: dict(coordinates=coords[b : b + 1])),
            "affine": (dict(transform_matrix=matrix, output_height=3, output_width=4, coordinates_mode="normalized_minus_one_to_one"),
                       lambda b: dict(transform_matrix=matrix[b : b + 1] if len(matrix) > 1 else matrix)),
        }
        for op, (args, one) in ops.items():
            calls = _counting(monkeypatch, "_sample")
            got = run(op, "iOS16", x=x, **args, **SAMPLING)
            assert len(calls) == 1, (op, len(calls))
            alone = np.concatenate([run(op, "iOS16", x=x[b : b + 1], **{**args, **one(b)}, **SAMPLING) for b in range(5)])
            assert got.dtype == alone.dtype == (np.float32 if dtype == np.int32 else dtype) and got.tobytes() == alone.tobytes(), op
            monkeypatch.setattr(IR, "SAMPLE_CHUNK", 2 * 3 * 4 * 2)  # two images a call: three calls
            calls.clear()
            assert run(op, "iOS16", x=x, **args, **SAMPLING).tobytes() == got.tobytes() and len(calls) == 3, op
            monkeypatch.undo()


def test_an_empty_batch_samples_to_an_empty_result():
    """No images: an empty (0, C, H2, W2) result (stacking no images was an error)."""
    x = np.zeros((0, 2, 4, 4), np.float32)
    got = run("resample", "iOS16", x=x, coordinates=np.zeros((0, 3, 3, 2), np.float32), coordinates_mode="unnormalized", **SAMPLING)
    assert got.shape == (0, 2, 3, 3) and got.dtype == np.float32


def test_crop_resize_cuts_a_box_from_every_image_in_one_go(monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 2, 7, 9)).astype(np.float32)
    roi = rng.uniform(-1, 8, (3, 1, 4, 1, 1)).astype(np.float32)
    calls = _counting(monkeypatch, "_crop_one")
    got = run("crop_resize", "iOS16", x=x, roi=roi, target_height=3, target_width=4, pad_value=np.float32(-2))
    assert got.shape == (3, 6, 2, 3, 4) and len(calls) == 3  # a call per box (there were 18: per box and image)
    alone = np.stack([np.concatenate([run("crop_resize", "iOS16", x=x[b : b + 1], roi=roi[k : k + 1], target_height=3, target_width=4,
                                          pad_value=np.float32(-2))[0] for b in range(6)]) for k in range(3)])
    assert got.tobytes() == alone.tobytes()
