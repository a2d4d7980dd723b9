"""Image resizing: upsample_nearest_neighbor, resize_nearest_neighbor, upsample_bilinear,
resize_bilinear, resize (iOS17), crop_resize, crop, affine, resample.

The spatial axes are the last two (H, W). Bilinear resizing is separable: each resized axis is
sampled at grid points g_i in input pixel units (pixel centres at 0 .. X_in - 1, clamped to that
range) and interpolated linearly between floor(g_i) and the next pixel. The grids by
``sampling_mode`` (MIL's definitions, X = X_in, Y = X_out, i = 0 .. Y - 1):

    STRICT_ALIGN_CORNERS   g_i = i (X - 1) / (Y - 1)                 (g = 0 when Y = 1)
    ALIGN_CORNERS          as STRICT, but g = (X - 1) / 2 when Y = 1
    DEFAULT                g_i = i (X - X / Y) / (Y - 1) = i X / Y
    OFFSET_CORNERS         d = max(1, X - 1) / Y, g_i = d / 2 + i d
    UNALIGN_CORNERS        s = X / Y, g_i = (i + 1/2) s - 1/2        (half-pixel centres)

Nearest-neighbour indices follow TensorFlow's rules, which the converter maps onto these ops:
``upsample_nearest_neighbor`` takes floor(i X / Y) (no half-pixel centres) and
``resize_nearest_neighbor`` floor((i + 1/2) X / Y) (half-pixel centres).
"""

from __future__ import annotations

import numpy as np

from ..program import Kernel
from ..registry import kernel
from ._args import check_shape, flag, ints, text

SAMPLING_MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")


def _grid(n_in: int, n_out: int, mode: str, start: float = 0.0, span: float | None = None) -> np.ndarray:
    """Sample positions of ``mode`` over [start, start + span] (span defaults to n_in - 1), unclamped."""
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling_mode {mode!r} is not one of {', '.join(SAMPLING_MODES)}")
    span = float(n_in - 1) if span is None else float(span)
    length = span + 1.0  # the X of the definitions: the span counted in pixels
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            return np.full(1, start + (span / 2 if mode == "ALIGN_CORNERS" else 0.0))
        return start + i * span / (n_out - 1)
    if mode == "DEFAULT":
        return start + i * length / n_out
    if mode == "OFFSET_CORNERS":
        d = max(1.0, span) / n_out
        return start + d / 2 + i * d
    s = length / n_out
    return start + (i + 0.5) * s - 0.5


def _lerp(x: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """x sampled at positions g (clamped to the axis) along ``axis``, linearly between neighbours."""
    n = x.shape[axis]
    g = np.clip(g, 0, n - 1)
    i0 = np.floor(g).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = (g - i0).reshape(shape)
    a, b = np.take(x, i0, axis=axis), np.take(x, i1, axis=axis)
    return (a * (1 - w) + b * w).astype(x.dtype)


def _resize_linear(x, sizes, modes):
    """Bilinear (separable) resize of the trailing len(sizes) axes to ``sizes``."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    _check_out(x, sizes, "resize")
    for k, (n_out, mode) in enumerate(zip(sizes, modes)):
        axis = x.ndim - len(sizes) + k
        x = _lerp(x, _grid(x.shape[axis], n_out, mode), axis)
    return x


def _check_out(x, sizes, op: str) -> None:
    """The resized tensor (x's leading axes, then ``sizes``) fits the memory bound (in float64: the
    interpolation weights are computed at that size)."""
    sizes = [int(n) for n in sizes]
    if any(n < 1 for n in sizes):
        raise ValueError(f"{op}: output sizes {sizes} must be >= 1")
    check_shape(tuple(x.shape[: x.ndim - len(sizes)]) + tuple(sizes), 8, op)


def _spatial(x, op):
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"{op} takes a tensor of rank >= 3, got shape {x.shape}")
    return x


def _scaled(n: int, scale) -> int:
    """floor(n * scale) in fp32, as MIL's shape inference computes it."""
    return int(np.floor(np.float32(n) * np.float32(scale)))


@kernel("upsample_nearest_neighbor", opset="iOS15")
class UpsampleNearestNeighbor(Kernel):
    """(*D, H, W) -> (*D, floor(H s_h), floor(W s_w)); out[.., i, j] = x[.., floor(i H / H'), floor(j W / W')]."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, scale_factor_height=1, scale_factor_width=1):
        x = _spatial(x, "upsample_nearest_neighbor")
        h, w = x.shape[-2:]
        ho, wo = _scaled(h, scale_factor_height), _scaled(w, scale_factor_width)
        _check_out(x, (ho, wo), "upsample_nearest_neighbor")
        rows = np.minimum(np.arange(ho) * h // max(ho, 1), h - 1)
        cols = np.minimum(np.arange(wo) * w // max(wo, 1), w - 1)
        return x[..., rows[:, None], cols[None, :]]


def _nearest_half_pixel(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(((2 * np.arange(n_out) + 1) * n_in) // (2 * n_out), n_in - 1)


@kernel("resize_nearest_neighbor", opset="iOS15")
class ResizeNearestNeighbor(Kernel):
    """(*D, H, W) -> (*D, target_size_height, target_size_width) with half-pixel centres:
    out[.., i, j] = x[.., floor((i + 1/2) H / H'), floor((j + 1/2) W / W')]."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, target_size_height, target_size_width):
        x = _spatial(x, "resize_nearest_neighbor")
        h, w = x.shape[-2:]
        _check_out(x, (int(target_size_height), int(target_size_width)), "resize_nearest_neighbor")
        rows = _nearest_half_pixel(h, int(target_size_height))
        cols = _nearest_half_pixel(w, int(target_size_width))
        return x[..., rows[:, None], cols[None, :]]


@kernel("upsample_bilinear", opset="iOS15")
class UpsampleBilinear(Kernel):
    """(*D, H, W) -> (*D, floor(H s_h), floor(W s_w)), bilinear with the scale recomputed from the sizes:
    align_corners (default True) samples STRICT_ALIGN_CORNERS, otherwise UNALIGN_CORNERS."""

    def compute(self, *, x, scale_factor_height=1, scale_factor_width=1, align_corners=True):
        mode = "STRICT_ALIGN_CORNERS" if flag(align_corners) else "UNALIGN_CORNERS"
        return self._upsample(x, scale_factor_height, scale_factor_width, mode)

    def _upsample(self, x, sh, sw, mode):
        x = _spatial(x, "upsample_bilinear")
        h, w = x.shape[-2:]
        return _resize_linear(x, (_scaled(h, sh), _scaled(w, sw)), (mode, mode))


@kernel("upsample_bilinear", opset="iOS16")
class UpsampleBilinearIOS16(UpsampleBilinear):
    """iOS16 adds ``half_pixel_centers`` (default: not align_corners). align_corners -> STRICT_ALIGN_CORNERS;
    else half_pixel_centers -> UNALIGN_CORNERS, and neither -> DEFAULT (g_i = i X / Y)."""

    def compute(self, *, x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
        align = flag(align_corners)
        half = (not align) if half_pixel_centers is None else flag(half_pixel_centers)
        if align and half:
            raise ValueError("upsample_bilinear: align_corners and half_pixel_centers cannot both be True")
        mode = "STRICT_ALIGN_CORNERS" if align else "UNALIGN_CORNERS" if half else "DEFAULT"
        return self._upsample(x, scale_factor_height, scale_factor_width, mode)


@kernel("resize_bilinear", opset="iOS15")
class ResizeBilinear(Kernel):
    """(*D, H, W) -> (*D, target_size_height, target_size_width), bilinear on the ``sampling_mode`` grid."""

    def compute(self, *, x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
        mode = text(sampling_mode)
        x = _spatial(x, "resize_bilinear")
        return _resize_linear(x, (int(target_size_height), int(target_size_width)), (mode, mode))


def _nearest(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Nearest source index per output position: half-pixel centres for DEFAULT and UNALIGN_CORNERS,
    the rounded grid point otherwise."""
    if mode in ("DEFAULT", "UNALIGN_CORNERS"):
        return _nearest_half_pixel(n_in, n_out)
    return np.clip(np.floor(_grid(n_in, n_out, mode) + 0.5), 0, n_in - 1).astype(np.int64)


@kernel("resize", opset="iOS17")
class Resize(Kernel):
    """Resize the last ``resized_dims`` axes of x to the last ``resized_dims`` entries of ``shape``
    (an entry 0 keeps x's size, aligned from the right); ``interpolation_mode`` LINEAR (separable,
    on the ``sampling_mode`` grid) or NEAREST_NEIGHBOR."""

    def compute(self, *, x, shape, resized_dims, interpolation_mode="LINEAR", sampling_mode="DEFAULT"):
        x = np.asarray(x)
        shape, k = ints(shape), int(resized_dims)
        interp, mode = text(interpolation_mode), text(sampling_mode)
        if interp not in ("LINEAR", "NEAREST_NEIGHBOR"):
            raise ValueError(f"resize: interpolation_mode {interp!r} is not LINEAR or NEAREST_NEIGHBOR")
        if mode not in SAMPLING_MODES:
            raise ValueError(f"resize: sampling_mode {mode!r} is not one of {', '.join(SAMPLING_MODES)}")
        if not k <= len(shape) <= x.ndim:
            raise ValueError(f"resize: shape {shape} and resized_dims {k} do not fit x of rank {x.ndim}")
        sizes = [x.shape[x.ndim - k + i] if s == 0 else s for i, s in enumerate(shape[len(shape) - k :])]
        _check_out(x, sizes, "resize")
        if interp == "LINEAR":
            return _resize_linear(x, sizes, [mode] * k)
        for i, n_out in enumerate(sizes):
            axis = x.ndim - k + i
            x = np.take(x, _nearest(x.shape[axis], n_out, mode), axis=axis)
        return x


@kernel("crop", opset="iOS15")
class Crop(Kernel):
    """x[.., crop_height[0] : H - crop_height[1], crop_width[0] : W - crop_width[1]]."""

    keeps_fp16 = True  # moves fp16 values, makes none

    def compute(self, *, x, crop_height, crop_width):
        x = _spatial(x, "crop")
        (t, b), (l, r) = ints(crop_height), ints(crop_width)
        h, w = x.shape[-2:]
        if min(t, b, l, r) < 0 or t + b > h or l + r > w:
            raise ValueError(f"crop ({t}, {b}), ({l}, {r}) does not fit an image of {h} x {w}")
        return x[..., t : h - b, l : w - r]


BOX_MODES = ("CORNERS_HEIGHT_FIRST", "CORNERS_WIDTH_FIRST", "CENTER_SIZE_HEIGHT_FIRST", "CENTER_SIZE_WIDTH_FIRST")


def _corners(box: np.ndarray, mode: str) -> tuple[float, float, float, float]:
    """(h_start, w_start, h_end, w_end) of a 4-vector box in ``box_coordinate_mode``."""
    a, b, c, d = (float(v) for v in box)
    if mode == "CORNERS_HEIGHT_FIRST":
        return a, b, c, d
    if mode == "CORNERS_WIDTH_FIRST":
        return b, a, d, c
    if mode == "CENTER_SIZE_HEIGHT_FIRST":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if mode == "CENTER_SIZE_WIDTH_FIRST":
        return b - d / 2, a - c / 2, b + d / 2, a + c / 2
    raise ValueError(f"box_coordinate_mode {mode!r} is not one of {', '.join(BOX_MODES)}")


def _crop_one(image, box, th, tw, normalized, spatial_scale, box_mode, mode, pad):
    """The (..., C, th, tw) crops of images (..., C, H, W) at one box: bilinear on the sampling
    grid over the box; a sample outside the image takes ``pad``."""
    h, w = image.shape[-2:]
    h0, w0, h1, w1 = (v * spatial_scale for v in _corners(box, box_mode))
    if normalized:
        h0, h1, w0, w1 = h0 * (h - 1), h1 * (h - 1), w0 * (w - 1), w1 * (w - 1)
    gh = _grid(h, th, mode, h0, h1 - h0)
    gw = _grid(w, tw, mode, w0, w1 - w0)
    inside = ((gh >= 0) & (gh <= h - 1))[:, None] & ((gw >= 0) & (gw <= w - 1))[None, :]
    rows = _lerp(image.astype(np.float64), gh, image.ndim - 2)  # (..., C, th, W)
    out = _lerp(rows, gw, image.ndim - 1)  # (..., C, th, tw)
    return np.where(inside, out, pad)


@kernel("crop_resize", opset="iOS15")
class CropResize(Kernel):
    """Bilinear crops of x (B, C, H, W) at regions ``roi`` (N, 1, 4 or 5, 1, 1) resized to
    (target_height, target_width).

    A 4-vector box is cut from every image: (N, B, C, th, tw); a 5-vector's first entry is the
    image index: (N, 1, C, th, tw). Coordinates follow ``box_coordinate_mode``, are multiplied by
    ``spatial_scale`` and, if ``normalized_coordinates``, by (H - 1) and (W - 1); each axis is
    sampled on the ``sampling_mode`` grid over the box (see the module docstring), and samples
    outside the image are 0. The iOS15 definition requires normalised boxes inside [0, 1] and
    leaves others undefined (Core ML returns the whole image resized for iOS15's smoke test box
    [2, 2, 1, 1]); the executor samples any box as given, which is what iOS14 (unnormalised,
    inverted boxes) and iOS16 (normalised boxes beyond 1) pin.
    """

    def compute(self, *, x, roi, target_height=1, target_width=1, normalized_coordinates=False,
                spatial_scale=1.0, box_coordinate_mode="CORNERS_HEIGHT_FIRST", sampling_mode="DEFAULT"):
        return self._crop_roi(x, roi, target_height, target_width, normalized_coordinates, spatial_scale,
                              box_coordinate_mode, sampling_mode, 0.0)

    def _crop_roi(self, x, roi, th, tw, normalized, scale, box_mode, mode, pad):
        x = np.asarray(x)
        roi = np.asarray(roi)
        if x.ndim != 4 or roi.ndim != 5 or roi.shape[2] not in (4, 5):
            raise ValueError(f"crop_resize takes x (B, C, H, W) and roi (N, 1, 4|5, 1, 1), got {x.shape} and {roi.shape}")
        boxes = roi.reshape(roi.shape[0], roi.shape[2])
        if int(th) < 1 or int(tw) < 1:
            raise ValueError(f"crop_resize: target size {int(th)} x {int(tw)} must be at least 1 x 1")
        check_shape((len(boxes), x.shape[0], x.shape[1], int(th), int(tw)), 8, "crop_resize")
        args = (int(th), int(tw), flag(normalized), float(scale), text(box_mode), text(mode), float(pad))
        crops = []
        for box in boxes:
            if box.size == 5:
                b = int(box[0])
                if not 0 <= b < x.shape[0]:
                    raise ValueError(f"crop_resize: image index {b} is outside a batch of {x.shape[0]}")
                crops.append(_crop_one(x[b], box[1:], *args)[None])
            else:
                crops.append(_crop_one(x, box, *args))  # every image at once
        return np.stack(crops).astype(x.dtype if x.dtype.kind == "f" else np.float32)


@kernel("crop_resize", opset="iOS16")
class CropResizeIOS16(CropResize):
    """iOS16 adds ``pad_value`` (default 0.0) for samples outside the image."""

    def compute(self, *, x, roi, target_height=1, target_width=1, normalized_coordinates=False,
                spatial_scale=1.0, box_coordinate_mode="CORNERS_HEIGHT_FIRST", sampling_mode="DEFAULT", pad_value=0.0):
        return self._crop_roi(x, roi, target_height, target_width, normalized_coordinates, spatial_scale,
                              box_coordinate_mode, sampling_mode, pad_value)


@kernel("crop_resize", opset="iOS17")
class CropResizeIOS17(CropResizeIOS16):
    """iOS17: ``roi`` becomes ``boxes`` (N, 4) with ``box_indices`` (N,) (default 0 .. N-1, the image
    each box is cut from); the output is (N, C, th, tw)."""

    def compute(self, *, x, boxes, box_indices=None, target_height=1, target_width=1, normalized_coordinates=False,
                spatial_scale=1.0, box_coordinate_mode="CORNERS_HEIGHT_FIRST", sampling_mode="DEFAULT", pad_value=0.0):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        idx = np.arange(boxes.shape[0]) if box_indices is None else np.asarray(box_indices).reshape(-1)
        roi = np.concatenate([idx[:, None].astype(np.float64), boxes], axis=1).reshape(-1, 1, 5, 1, 1)
        out = self._crop_roi(x, roi, target_height, target_width, normalized_coordinates, spatial_scale,
                             box_coordinate_mode, sampling_mode, pad_value)
        return out[:, 0]


COORDINATE_MODES = ("unnormalized", "normalized_minus_one_to_one", "normalized_zero_to_one")
PADDING_MODES = ("constant", "border", "reflection", "symmetric")


def _unnormalize(c: np.ndarray, size: int, mode: str, align: bool) -> np.ndarray:
    """Coordinates in ``coordinates_mode`` as input pixel positions (centres at 0 .. size - 1)."""
    if mode == "unnormalized":
        return c
    if mode == "normalized_minus_one_to_one":
        return (c + 1) / 2 * (size - 1) if align else ((c + 1) * size - 1) / 2
    if mode == "normalized_zero_to_one":
        return c * (size - 1) if align else c * size - 0.5
    raise ValueError(f"coordinates_mode {mode!r} is not one of {', '.join(COORDINATE_MODES)}")


def _reflect(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """p folded into [lo, hi] by mirroring at both ends (a triangle wave)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, lo)
    q = np.mod(p - lo, 2 * span)
    return lo + np.where(q > span, 2 * span - q, q)


def _sample(images: np.ndarray, px: np.ndarray, py: np.ndarray, sampling: str, padding: str, pad_value: float):
    """images (N, C, H, W) sampled at pixel positions (px, py) of shape (N, *S) -> (N, C, *S), as
    torch's grid_sample (image n at positions n).

    ``border`` clamps positions to the image, ``reflection`` mirrors them about the outer pixel
    centres [0, X - 1], ``symmetric`` about the outer pixel edges [-1/2, X - 1/2] (then clamps);
    ``constant`` treats every pixel outside the image as ``pad_value``.
    """
    n, c, h, w = images.shape
    if padding not in PADDING_MODES:
        raise ValueError(f"padding_mode {padding!r} is not one of {', '.join(PADDING_MODES)}")
    if padding == "reflection":
        px, py = _reflect(px, 0, w - 1), _reflect(py, 0, h - 1)
    elif padding == "symmetric":
        px, py = _reflect(px, -0.5, w - 0.5), _reflect(py, -0.5, h - 0.5)
    if padding != "constant":
        px, py = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
    img = images.astype(np.float64)
    rows = np.arange(n).reshape((n,) + (1,) * (px.ndim - 1))  # image n for positions n

    def at(iy, ix):  # (N, C, *S), pad_value outside
        ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        v = np.moveaxis(img[rows, :, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)], -1, 1)  # indexed (N, *S, C)
        return np.where(ok[:, None], v, pad_value)

    if sampling == "nearest":
        return at(np.rint(py).astype(np.int64), np.rint(px).astype(np.int64))
    if sampling != "bilinear":
        raise ValueError(f"sampling_mode {sampling!r} is not bilinear or nearest")
    x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    fx, fy = (px - x0)[:, None], (py - y0)[:, None]
    return ((at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx) * (1 - fy)
            + (at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx) * fy)


# Output values one _sample call computes (a few float64 temporaries of this size: a few MB):
# images are sampled this many at a time, or one at a time when one is larger.
SAMPLE_CHUNK = 1 << 18


def _sample_chunks(x: np.ndarray, positions, out_shape: tuple, sampling: str, padding: str, pad_value: float) -> np.ndarray:
    """(B, C, *S) of x (B, C, H, W) sampled at ``positions(b0, b1)`` -> (px, py) of images b0 .. b1 - 1,
    as many images at once as :data:`SAMPLE_CHUNK` allows; float32 for non-float x."""
    out = np.empty((x.shape[0], x.shape[1]) + tuple(out_shape), x.dtype if x.dtype.kind == "f" else np.float32)
    step = max(1, SAMPLE_CHUNK // max(1, out[:1].size))  # images a call
    for b0 in range(0, x.shape[0], step):
        b1 = min(b0 + step, x.shape[0])
        px, py = positions(b0, b1)
        out[b0:b1] = _sample(x[b0:b1], px, py, sampling, padding, pad_value)  # cast as astype casts
    return out


@kernel("resample", opset="iOS15")
class Resample(Kernel):
    """out[b, c, h, w] = x[b, c] sampled at coordinates[b, h, w] = (x, y) (torch's grid_sample).

    x: (B, C, H1, W1), coordinates: (B, H2, W2, 2) -> (B, C, H2, W2). ``coordinates_mode``
    unnormalized (pixels), normalized_minus_one_to_one or normalized_zero_to_one; with
    ``align_corners`` the normalized extremes are the outer pixel centres, otherwise their edges.
    """

    def compute(self, *, x, coordinates, sampling_mode, padding_mode, padding_value, coordinates_mode, align_corners):
        x = np.asarray(x)
        coords = np.asarray(coordinates, dtype=np.float64)
        if x.ndim != 4 or coords.ndim != 4 or coords.shape[-1] != 2 or coords.shape[0] != x.shape[0]:
            raise ValueError(f"resample takes x (B, C, H, W) and coordinates (B, H2, W2, 2), got {x.shape} and {coords.shape}")
        cm, align = text(coordinates_mode), flag(align_corners)
        check_shape((x.shape[0], x.shape[1]) + coords.shape[1:3], 8, "resample")
        px = _unnormalize(coords[..., 0], x.shape[3], cm, align)
        py = _unnormalize(coords[..., 1], x.shape[2], cm, align)
        return _sample_chunks(x, lambda b0, b1: (px[b0:b1], py[b0:b1]), coords.shape[1:3], text(sampling_mode), text(padding_mode),
                              float(padding_value))


@kernel("affine", opset="iOS15")
class Affine(Kernel):
    """Sample x at an affine map of the output grid: for output pixel (w, h) in normalized [-1, 1]
    coordinates (x, y), read x at x' = a0 x + a1 y + a2, y' = b0 x + b1 y + b2 (torch's
    affine_grid + grid_sample).

    x: (B, C, H, W), transform_matrix: (B or 1, 6) = [a0, a1, a2, b0, b1, b2] ->
    (B, C, output_height, output_width).
    """

    def compute(self, *, x, transform_matrix, output_height, output_width, sampling_mode, padding_mode,
                padding_value, coordinates_mode, align_corners):
        x = np.asarray(x)
        m = np.asarray(transform_matrix, dtype=np.float64).reshape(-1, 6)
        if x.ndim != 4 or m.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"affine takes x (B, C, H, W) and a (B or 1, 6) matrix, got {x.shape} and {m.shape}")
        ho, wo, align = int(output_height), int(output_width), flag(align_corners)
        check_shape((x.shape[0], x.shape[1], ho, wo), 8, "affine")
        cm = text(coordinates_mode)
        if cm != "normalized_minus_one_to_one":
            raise ValueError(f"affine: coordinates_mode {cm!r} is not supported (MIL allows normalized_minus_one_to_one)")

        def axis(n):  # normalized output positions in [-1, 1]
            if n == 1:
                return np.zeros(1)
            i = np.arange(n, dtype=np.float64)
            return -1 + 2 * i / (n - 1) if align else -1 + (2 * i + 1) / n

        gx, gy = np.meshgrid(axis(wo), axis(ho))  # (ho, wo)

        def positions(first, end):  # (end - first, ho, wo) each
            rows = m[first:end] if m.shape[0] > 1 else np.repeat(m, end - first, axis=0)
            a0, a1, a2, b0, b1, b2 = (rows[:, k, None, None] for k in range(6))
            cx, cy = a0 * gx + a1 * gy + a2, b0 * gx + b1 * gy + b2
            return _unnormalize(cx, x.shape[3], cm, align), _unnormalize(cy, x.shape[2], cm, align)

        return _sample_chunks(x, positions, (ho, wo), text(sampling_mode), text(padding_mode), float(padding_value))
