"""Images the way Caffe's data tools read them through OpenCV (cv::imread,
cv::imdecode, cv::resize), with Pillow (the ``image`` extra) as the decoder.

Arrays are uint8 (H, W, C) in OpenCV's channel order: BGR for colour, one
channel for grayscale. Colour reads drop alpha and replicate gray; grayscale
reads take the JPEG decoder's luma (as libjpeg does for OpenCV) and otherwise
OpenCV's fixed-point BGR->gray weights. Resizing is OpenCV's INTER_LINEAR in its
8-bit fixed-point form (11-bit weights; exact halving averages 2 x 2 blocks).
"""
import io
import os

import numpy as np

from .errors import CaffeLiteError, require

COLOR, GRAY, UNCHANGED = "color", "gray", "unchanged"


def read_image(path, height=0, width=0, is_color=True):
    """Caffe's ReadImageToCVMat: decode, then resize when height and width > 0."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CaffeLiteError(f"cannot read the image: {exc.strerror or exc}",
                             file=path) from None
    image = decode_image(data, COLOR if is_color else GRAY, name=path)
    if height > 0 and width > 0:
        image = resize_linear(image, height, width)
    return image


def decode_image(data, mode=UNCHANGED, name="<encoded image>"):
    """Encoded bytes -> uint8 (H, W, C): ``mode`` color (BGR), gray, or unchanged
    (the file's own channels: gray stays 1, colour is BGR, alpha kept as BGRA)."""
    Image = require("PIL.Image", "image", "reading images")
    try:
        image = Image.open(io.BytesIO(data))
        if mode == GRAY and image.format == "JPEG" and image.mode != "L":
            image.draft("L", image.size)            # the decoder's own luma
        image.load()
    except Exception as exc:                          # Pillow raises many kinds
        raise CaffeLiteError(f"cannot decode the image ({exc})", file=name) from None
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode or
                              "transparency" in image.info else "RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if mode == GRAY:
        return array if array.shape[2] == 1 else _to_gray(array, image.format)
    if mode == COLOR:
        if array.shape[2] == 1:
            return np.repeat(array, 3, axis=2)
        array = array[:, :, :3]
    if array.shape[2] == 1:
        return array
    order = [2, 1, 0, 3][:array.shape[2]]             # RGB(A) -> BGR(A)
    return np.ascontiguousarray(array[:, :, order])


def _to_gray(rgb, fmt):
    """RGB(A) -> one channel: libpng's weights for PNG, OpenCV's otherwise."""
    r, g, b = (rgb[:, :, k].astype(np.int64) for k in range(3))
    if fmt == "PNG":
        gray = (r * 9798 + g * 19235 + b * 3735 + 16384) >> 15
    else:
        gray = (r * 4899 + g * 9617 + b * 1868 + 8192) >> 14
    return gray.astype(np.uint8)[:, :, None]


def resize_linear(image, height, width):
    """OpenCV's cv::resize(INTER_LINEAR) of a uint8 (H, W, C) image."""
    H, W = image.shape[:2]
    if (H, W) == (height, width):
        return image.copy()
    if H == 2 * height and W == 2 * width:           # OpenCV switches to INTER_AREA
        s = image.astype(np.int32)
        total = s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2]
        return ((total + 2) >> 2).astype(np.uint8)
    x0, x1, ax0, ax1 = _taps(W, width, clamp_weights=True)
    y0, y1, by0, by1 = _taps(H, height, clamp_weights=False)
    src = image.astype(np.int32)
    rows = src[:, x0] * ax0[:, None] + src[:, x1] * ax1[:, None]   # (H, w, C)
    top = (rows[y0] >> 4) * by0[:, None, None] >> 16
    bottom = (rows[y1] >> 4) * by1[:, None, None] >> 16
    return np.clip((top + bottom + 2) >> 2, 0, 255).astype(np.uint8)


def _taps(size, out, clamp_weights):
    """Source indices and 11-bit weights of each output position on one axis.
    OpenCV zeroes the fraction at the borders along x only; along y it clips the
    source rows and keeps both weights."""
    f = ((np.arange(out) + 0.5) * (size / out) - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = f - s.astype(np.float32)
    if clamp_weights:
        f[(s < 0) | (s >= size - 1)] = 0
        s = np.clip(s, 0, size - 1)
    w1 = np.rint(f * np.float32(2048)).astype(np.int32)
    w0 = np.rint((np.float32(1) - f) * np.float32(2048)).astype(np.int32)
    return np.clip(s, 0, size - 1), np.clip(s + 1, 0, size - 1), w0, w1


def to_chw(image):
    """(H, W, C) -> (C, H, W), the layout of a Datum and of a blob item."""
    return np.ascontiguousarray(image.transpose(2, 0, 1))
