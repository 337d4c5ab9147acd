"""Images for pycaffe's ``caffe.io``: decoding (Pillow, an optional extra,
standing in for scikit-image), resizing, and the ten-crop oversampling."""
import os

import numpy as np

from .errors import CaffeLiteError, require


class PreprocessError(CaffeLiteError, ValueError):
    """Preprocessing settings or arrays that do not fit the net's inputs."""


class ImageError(CaffeLiteError, OSError):
    """An image file that cannot be opened or decoded."""


def _pillow():
    return require("PIL.Image", "image", "reading and resizing images")


def decode_image_bytes(data, name="<encoded image>"):
    """Encoded JPEG/PNG bytes as a uint8 array (H x W or H x W x C, RGB)."""
    from io import BytesIO
    try:
        image = _pillow().open(BytesIO(data))
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


def load_image(filename, color=True):
    """An image as float32 in [0, 1]: H x W x 3 RGB, or H x W x 1 when
    ``color=False`` (colour images are converted with scikit-image's
    rgb2gray weights, as pycaffe does)."""
    Image = _pillow()
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


def resize_image(im, new_dims, interp_order=1):
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


def oversample(images, crop_dims):
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

