"""SSD's image distortions (transform_param distort_param, weiliu89/caffe branch
ssd) and its WARP resize, on uint8 (H, W, 3) BGR images as OpenCV holds them.

distort_param: with probability 1/2 brightness, contrast, saturation, hue, else
brightness, saturation, hue, contrast; then the channel order shuffled with
random_order_prob. Each step happens with its own probability: brightness adds
U(-delta, delta), contrast multiplies by U(lower, upper) (rounded and saturated
as cv::Mat::convertTo); saturation scales S and hue shifts H in OpenCV's 8-bit
HSV (H in [0, 180)), converted with OpenCV's formulas. As in the fork, a
saturation step always goes through HSV and back, even for a factor of 1.
"""
import numpy as np

from ..proto import caffe_pb2
from .image import resize_linear

f32 = np.float32
INTERP = caffe_pb2.ResizeParameter
SHIFT = 12
_V = np.arange(256)
with np.errstate(divide="ignore"):
    S_DIV = np.where(_V == 0, 0, np.rint((255 << SHIFT) / np.maximum(_V, 1))).astype(np.int64)
    H_DIV = np.where(_V == 0, 0, np.rint((180 << SHIFT) / (6.0 * np.maximum(_V, 1)))).astype(np.int64)
SECTORS = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])


def convert(image, alpha=1.0, beta=0.0):
    """cv::Mat::convertTo to uint8: round(x * alpha + beta), saturated."""
    out = image.astype(f32) * f32(alpha) + f32(beta)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def bgr_to_hsv(image):
    """OpenCV's COLOR_BGR2HSV for uint8: H in [0, 180), S and V in [0, 255]."""
    b, g, r = (image[..., k].astype(np.int64) for k in range(3))
    v = np.maximum(np.maximum(b, g), r)
    diff = v - np.minimum(np.minimum(b, g), r)
    s = (diff * S_DIV[v] + (1 << (SHIFT - 1))) >> SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * H_DIV[diff] + (1 << (SHIFT - 1))) >> SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


def hsv_to_bgr(hsv):
    """OpenCV's COLOR_HSV2BGR for uint8, through its float formulas."""
    h = hsv[..., 0].astype(f32) * f32(6.0 / 180.0)
    s = hsv[..., 1].astype(f32) * f32(1 / 255.0)
    v = hsv[..., 2].astype(f32) * f32(1 / 255.0)
    h = np.mod(h, f32(6))
    sector = np.floor(h).astype(np.int64)
    frac = (h - sector).astype(f32)
    bad = (sector < 0) | (sector >= 6)
    sector, frac = np.where(bad, 0, sector), np.where(bad, f32(0), frac)
    one = f32(1)
    tab = np.stack([v, v * (one - s), v * (one - s * frac), v * (one - s * (one - frac))])
    pick = SECTORS[sector]                                   # (H, W, 3)
    bgr = np.take_along_axis(tab.transpose(1, 2, 0), pick, axis=-1)
    bgr = np.where((s == 0)[..., None], v[..., None], bgr)
    return np.clip(np.rint(bgr * f32(255)), 0, 255).astype(np.uint8)


def _brightness(image, p, rng):
    if rng.uniform() < p.brightness_prob:
        delta = f32(rng.uniform(-p.brightness_delta, p.brightness_delta))
        if abs(delta) > 0:
            return convert(image, 1, delta)
    return image


def _contrast(image, p, rng):
    if rng.uniform() < p.contrast_prob:
        delta = f32(rng.uniform(p.contrast_lower, p.contrast_upper))
        if abs(delta - 1) > 1e-3:
            return convert(image, delta, 0)
    return image


def _saturation(image, p, rng):
    if rng.uniform() < p.saturation_prob:
        delta = f32(rng.uniform(p.saturation_lower, p.saturation_upper))
        hsv = bgr_to_hsv(image)
        hsv[..., 1] = convert(hsv[..., 1], delta, 0)
        return hsv_to_bgr(hsv)
    return image


def _hue(image, p, rng):
    if rng.uniform() < p.hue_prob:
        delta = f32(rng.uniform(-p.hue_delta, p.hue_delta))
        if abs(delta) > 0:
            hsv = bgr_to_hsv(image)
            hsv[..., 0] = convert(hsv[..., 0], 1, delta)
            return hsv_to_bgr(hsv)
    return image


def check_distortion(p):
    """The fork's CHECKs on distort_param, as a message (None when fine)."""
    if p.brightness_delta < 0 or p.hue_delta < 0:
        return "brightness_delta and hue_delta must not be negative"
    for name in ("contrast", "saturation"):
        low, high = getattr(p, name + "_lower"), getattr(p, name + "_upper")
        if (getattr(p, name + "_prob") > 0) and not 0 <= low <= high:
            return f"{name}: need 0 <= {name}_lower <= {name}_upper, got {low:g}, {high:g}"
    return None


def distort(image, p, rng):
    """distort_param applied to a uint8 BGR image (a new array or ``image``)."""
    if image.shape[-1] != 3:
        return image                         # OpenCV's HSV needs colour; none asked
    if rng.uniform() > 0.5:
        steps = (_brightness, _contrast, _saturation, _hue)
    else:
        steps = (_brightness, _saturation, _hue, _contrast)
    for step in steps:
        image = step(image, p, rng)
    if rng.uniform() < p.random_order_prob:
        image = np.ascontiguousarray(image[..., rng.permutation(3)])
    return image


def resize_nearest(image, height, width):
    """OpenCV's INTER_NEAREST: source index floor(i * in / out)."""
    H, W = image.shape[:2]
    rows = np.minimum(np.floor(np.arange(height) * (H / height)).astype(np.int64), H - 1)
    cols = np.minimum(np.floor(np.arange(width) * (W / width)).astype(np.int64), W - 1)
    return image[rows][:, cols]


def warp(image, height, width, modes, rng):
    """resize_param WARP: one of ``modes`` (interp_mode, default LINEAR) drawn
    with equal chances. NEAREST is OpenCV's; LINEAR OpenCV's INTER_LINEAR; AREA,
    CUBIC and LANCZOS4 are done as LINEAR (the layer warns)."""
    mode = modes[int(rng.integers(len(modes)))] if len(modes) else INTERP.LINEAR
    if mode == INTERP.NEAREST:
        return resize_nearest(image, height, width)
    return resize_linear(image, height, width)
