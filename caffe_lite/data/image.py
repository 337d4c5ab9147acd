"""Image decoding, once, for both of Caffe's ways of reading images (Pillow, the
``image`` extra, is the decoder):

- Caffe's data tools read through OpenCV (cv::imread, cv::imdecode,
  cv::resize): ``read_image``, ``decode_image``, ``resize_linear`` give uint8
  (H, W, C) arrays in OpenCV's channel order, BGR for colour, one channel for
  grayscale. Colour reads drop alpha and replicate gray; grayscale reads take the
  JPEG decoder's luma (as libjpeg does for OpenCV) and otherwise OpenCV's
  fixed-point BGR->gray weights. Resizing is OpenCV's INTER_LINEAR in its 8-bit
  fixed-point form (11-bit weights; exact halving averages 2 x 2 blocks).
- pycaffe's ``caffe.io`` reads through scikit-image: ``load_image``,
  ``decode_image_bytes``, ``resize_image``, ``oversample`` give float RGB.

Also ImageData's list files (``parse_list_line``).
"""
from __future__ import annotations

import os
from io import BytesIO
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import ImageError, PreprocessError, require

# -- Caffe's data tools: OpenCV's way ------------------------------------------
COLOR, GRAY, UNCHANGED = "color", "gray", "unchanged"


def read_image(path, height=0, width=0, is_color=True):
    """Caffe's ReadImageToCVMat: decode, then resize when height and width > 0."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ImageError(f"cannot read the image: {exc.strerror or exc}",
                             file=path) from None
    image = decode_image(data, COLOR if is_color else GRAY, name=path)
    if height > 0 and width > 0:
        image = resize_linear(image, height, width)
    return image


def decode_image(data, mode=UNCHANGED, name="<encoded image>"):
    """Encoded bytes -> uint8 (H, W, C): ``mode`` color (BGR), gray, or unchanged
    (the file's own channels: gray stays 1, colour is BGR, alpha kept as BGRA)."""
    try:
        image = _pillow(name).open(BytesIO(data))
        if mode == GRAY and image.format == "JPEG" and image.mode != "L":
            image.draft("L", image.size)            # the decoder's own luma
        image.load()
    except Exception as exc:                          # Pillow raises many kinds
        raise ImageError(f"cannot decode the image ({exc})", file=name) from None
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


def parse_list_line(line):
    """'<path> <label>' -> (path, int label); the path may contain spaces."""
    path, _, label = line.rpartition(" ")
    try:
        return path, int(label)
    except ValueError:
        return line, 0                              # Caffe's atoi gives 0


# -- pycaffe's caffe.io: scikit-image's way -------------------------------------
def _pillow(name=None):
    return require("PIL.Image", "image", "reading and resizing images", file=name)


def decode_image_bytes(data, name="<encoded image>"):
    """Encoded JPEG/PNG bytes as a uint8 array (H x W or H x W x C, RGB)."""
    try:
        image = _pillow(name).open(BytesIO(data))
    except Exception as exc:
        raise ImageError(f"not an image Pillow can read ({exc})", file=name) from None
    return np.asarray(_open_image(image, name))


def _open_image(image, name):
    """Decode now (Pillow is lazy) so a broken file fails here, naming it."""
    try:
        image.load()
    except Exception as exc:                 # Pillow raises many kinds
        raise ImageError(f"cannot decode the image ({exc})", file=name) from None
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGBA" if "transparency" in image.info or
                              image.mode == "PA" else "RGB")
    elif image.mode == "LA":
        image = image.convert("L")
    return image


def _as_float(array):
    """scikit-image's img_as_float: integers scaled to [0, 1] by their type's max."""
    if array.dtype == bool:
        return array.astype(np.float64)
    if array.dtype.kind in "ui":
        return array / float(np.iinfo(array.dtype).max)
    return array.astype(np.float64)


def load_image(filename: str | os.PathLike[str] | Any, color: bool = True) -> np.ndarray:
    """An image as float32 in [0, 1]: H x W x 3 RGB, or H x W x 1 when
    ``color=False`` (colour images are converted with scikit-image's
    rgb2gray weights, as pycaffe does)."""
    Image = _pillow(filename)
    try:
        image = Image.open(filename)
    except FileNotFoundError:
        raise ImageError("no such image file", file=os.fspath(filename)) from None
    except Exception as exc:
        raise ImageError(f"not an image Pillow can read ({exc})",
                         file=os.fspath(filename)) from None
    with image:
        img = _as_float(np.asarray(_open_image(image, os.fspath(filename))))
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if not color and img.ndim == 3:
        img = img @ np.array([0.2125, 0.7154, 0.0721])
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    return img


_RESAMPLE = {0: "NEAREST", 1: "BILINEAR", 2: "BICUBIC", 3: "BICUBIC",
             4: "LANCZOS", 5: "LANCZOS"}


def resize_image(im: npt.ArrayLike, new_dims: Sequence[int],
                 interp_order: int = 1) -> np.ndarray:
    """Resize an H x W x K array to new_dims = (height, width), any K, as
    float32. ``interp_order``: 0 nearest, 1 bilinear (default), 3 bicubic.

    Pillow's filters (which smooth when shrinking) stand in for scikit-image's,
    so values differ slightly from pycaffe's; a constant image stays constant.
    """
    im = np.asarray(im)
    height, width = (int(d) for d in new_dims)
    if im.ndim != 3 or height <= 0 or width <= 0:
        raise PreprocessError(f"resize_image takes an H x W x K array and positive "
                              f"(height, width), got {im.shape} and {tuple(new_dims)}")
    im_min, im_max = im.min(), im.max()
    if im_max <= im_min:
        return np.full((height, width, im.shape[2]), im_min, np.float32)
    Image = _pillow()
    try:
        resample = getattr(Image.Resampling, _RESAMPLE[interp_order])
    except KeyError:
        raise PreprocessError(f"interp_order must be 0-5, got {interp_order}") from None
    out = np.empty((height, width, im.shape[2]), np.float32)     # (H', W', K)
    for k in range(im.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(im[:, :, k], np.float32), mode="F")
        out[:, :, k] = np.asarray(plane.resize((width, height), resample))
    return out


def oversample(images: npt.ArrayLike | Sequence[np.ndarray],
               crop_dims: Sequence[int]) -> np.ndarray:
    """The four corner crops, the centre crop and their mirror images, per image.

    images: N images H x W x K (an array or a list of equal shapes);
    returns (10 N, ch, cw, K) float32 with each image's ten crops together.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise PreprocessError(f"oversample takes N images of H x W x K, got an "
                              f"array of shape {images.shape}")
    n, h, w, k = images.shape
    ch, cw = (int(d) for d in crop_dims)
    if not (0 < ch <= h and 0 < cw <= w):
        raise PreprocessError(f"crop {ch} x {cw} does not fit images of {h} x {w}")
    # corners, then the centre rounded down as pycaffe's integer cast does
    starts = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw),
              (int(h / 2.0 - ch / 2.0), int(w / 2.0 - cw / 2.0))]
    crops = np.empty((n, 10, ch, cw, k), np.float32)
    for j, (y, x) in enumerate(starts):
        crops[:, j] = images[:, y:y + ch, x:x + cw]
    crops[:, 5:] = crops[:, :5, :, ::-1]                  # mirrored along W
    return crops.reshape(10 * n, ch, cw, k)

