"""pycaffe's ``caffe.io``: arrays <-> BlobProto / Datum, image loading and
resizing (Pillow instead of scikit-image), oversampling, and the Transformer
that turns H x W x K images into the K x H x W arrays a net takes.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from ..data.datum import array_to_datum, datum_to_array
from ..data.image import load_image, oversample, resize_image
from ..errors import BlobShapeError, ImageError, ModelFileError, PreprocessError
from ..proto import caffe_pb2

__all__ = ["Transformer", "load_image", "resize_image", "oversample",
           "blobproto_to_array", "array_to_blobproto", "array_to_datum",
           "datum_to_array", "arraylist_to_blobprotovector_str",
           "blobprotovector_str_to_arraylist", "load_binaryproto",
           "ImageError", "PreprocessError"]


# -- proto / datum / ndarray conversion --------------------------------------
def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """The data (or diff) of a BlobProto as an array of its shape; legacy
    num/channels/height/width dims give a 4-D array. double_data wins when set."""
    if return_diff:
        values = blob.double_diff if len(blob.double_diff) else blob.diff
    else:
        values = blob.double_data if len(blob.double_data) else blob.data
    data = np.array(values)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if data.size != int(np.prod(shape, dtype=np.int64)):
        raise BlobShapeError(f"BlobProto holds {data.size} values for shape {shape}"
                             + (" (it has no shape)" if not shape else ""))
    return data.reshape(shape)


def array_to_blobproto(arr: npt.ArrayLike,
                       diff: npt.ArrayLike | None = None) -> caffe_pb2.BlobProto:
    """An N-D array (and optionally its diff, of the same shape) as a BlobProto."""
    array = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(array.shape)
    blob.data.extend(array.astype(np.float32).ravel())
    if diff is not None:
        blob.diff.extend(np.asarray(diff, np.float32).ravel())
    return blob


def arraylist_to_blobprotovector_str(arraylist: Iterable[npt.ArrayLike]) -> bytes:
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(serialized: bytes) -> list[np.ndarray]:
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(serialized)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def load_binaryproto(path: str | os.PathLike[str]) -> np.ndarray:
    """A .binaryproto file (e.g. a mean image, 1 x C x H x W) as an array."""
    blob = caffe_pb2.BlobProto()
    try:
        with open(path, "rb") as f:
            blob.ParseFromString(f.read())
    except OSError as exc:
        raise ModelFileError(f"cannot read: {exc.strerror or exc}", file=path) from None
    except Exception as exc:                 # protobuf's DecodeError
        raise ModelFileError(f"not a BlobProto file ({exc})", file=path) from None
    try:
        return blobproto_to_array(blob)
    except ModelFileError as exc:
        exc.with_context(file=os.fspath(path))
        raise


# -- preprocessing -------------------------------------------------------------
class Transformer:
    """Turn images into a net's input arrays and back, per input blob.

    ``inputs`` maps input names to blob shapes (N, K, H, W). preprocess runs,
    in pycaffe's order: float32, resize to (H, W) if needed, transpose, channel
    swap, raw scale, mean subtraction, input scale. deprocess undoes it.
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]) -> None:
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose: dict[str, tuple[int, ...]] = {}
        self.channel_swap: dict[str, tuple[int, ...]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise PreprocessError(f"'{in_}' is not one of the net inputs: "
                                  f"{', '.join(self.inputs)}", blob=in_)

    def preprocess(self, in_: str, data: npt.ArrayLike) -> np.ndarray:
        """(H' x W' x K) image -> (K x H x W) float32 array for blob ``in_``."""
        self._check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)      # a copy: never the caller's
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        transpose = self.transpose.get(in_)
        if transpose is not None:
            if caffe_in.ndim != len(transpose):
                raise PreprocessError(f"an image of shape {caffe_in.shape} does not fit "
                                      f"the transpose {transpose}", blob=in_)
            caffe_in = caffe_in.transpose(transpose)
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        # in place on float32, as pycaffe computes
        if self.raw_scale.get(in_) is not None:
            caffe_in *= self.raw_scale[in_]
        if self.mean.get(in_) is not None:
            try:
                caffe_in -= self.mean[in_]
            except ValueError:
                raise PreprocessError(f"mean of shape {self.mean[in_].shape} does not "
                                      f"fit the preprocessed input of shape "
                                      f"{caffe_in.shape}", blob=in_) from None
        if self.input_scale.get(in_) is not None:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_: str, data: npt.ArrayLike) -> np.ndarray:
        """Invert preprocess (except the resize): (K x H x W) -> (H x W x K)."""
        self._check_input(in_)
        decaf_in = np.array(data).squeeze()
        if self.input_scale.get(in_) is not None:
            decaf_in /= self.input_scale[in_]
        if self.mean.get(in_) is not None:
            decaf_in += self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            decaf_in /= self.raw_scale[in_]
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        transpose = self.transpose.get(in_)
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order from the image to the blob, e.g. (2, 0, 1): HxWxK -> KxHxW."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise PreprocessError(f"transpose order {tuple(order)} needs "
                                  f"{len(self.inputs[in_]) - 1} axes", blob=in_)
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order after the transpose, e.g. (2, 1, 0): RGB -> BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise PreprocessError(f"channel swap {tuple(order)} needs "
                                  f"{self.inputs[in_][1]} channels", blob=in_)
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Scale applied before the mean (255 for models trained on [0, 255])."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: npt.ArrayLike) -> None:
        """Mean to subtract: one value per channel (K,), or K x H x W (resized
        to the input's H x W when it differs, as pycaffe does)."""
        self._check_input(in_)
        values = np.asarray(mean)
        channels, in_hw = self.inputs[in_][1], self.inputs[in_][2:]
        if values.ndim == 1:
            if values.shape[0] != channels:
                raise PreprocessError(f"mean has {values.shape[0]} channels, the input "
                                      f"{channels}", blob=in_)
            values = values[:, np.newaxis, np.newaxis]
        else:
            if values.ndim == 2:
                values = values[np.newaxis]
            if values.ndim != 3:
                raise PreprocessError(f"mean must be K, H x W or K x H x W, got shape "
                                      f"{values.shape}", blob=in_)
            if values.shape[1:] != in_hw:
                low, high = values.min(), values.max()
                spread = (high - low) or 1
                normal = (values - low) / spread
                values = resize_image(normal.transpose(1, 2, 0), in_hw).transpose(2, 0, 1) \
                    * spread + low
            if values.shape[0] not in (1, channels):
                raise PreprocessError(f"mean has {values.shape[0]} channels, the input "
                                      f"{channels}", blob=in_)
        self.mean[in_] = values

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Scale applied after the mean (e.g. 0.017 for some models)."""
        self._check_input(in_)
        self.input_scale[in_] = scale
