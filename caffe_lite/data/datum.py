"""Datum records (what Caffe's LMDB/LevelDB databases hold) to and from arrays:
the data layers' decoding (``datum_to_chw``, Caffe's own rules) and pycaffe's
``caffe.io.array_to_datum`` / ``datum_to_array``."""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import CaffeLiteError, PreprocessError
from ..proto import caffe_pb2
from .image import UNCHANGED, decode_image, decode_image_bytes, to_chw


def datum_to_chw(datum: Any, mode: str = UNCHANGED, name: str = "<datum>") -> np.ndarray:
    """A Datum's record as (C, H, W): uint8 bytes, float_data as float32, or an
    encoded image decoded in ``mode`` (imread's color / gray / unchanged)."""
    if datum.encoded:
        return to_chw(decode_image(datum.data, mode, name=name))
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        values = np.frombuffer(datum.data, np.uint8)
    else:
        values = np.asarray(datum.float_data, np.float32)
    if values.size != int(np.prod(shape)) or values.size == 0:
        raise CaffeLiteError(f"a Datum holds {values.size} values for shape {shape}")
    return values.reshape(shape)


def array_to_datum(arr: npt.ArrayLike, label: int | None = None) -> caffe_pb2.Datum:
    """A C x H x W array as a Datum: uint8 as bytes, anything else as floats."""
    array = np.asarray(arr)
    if array.ndim != 3:
        raise PreprocessError(f"a Datum holds a C x H x W array, got shape {array.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = array.shape
    if array.dtype == np.uint8:
        datum.data = array.tobytes()
    else:
        datum.float_data.extend(array.astype(np.float32).ravel())
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """A Datum's C x H x W array (uint8 for byte data; the label is not returned).
    Encoded (JPEG/PNG) datums are decoded to BGR, as Caffe's data layers do."""
    if datum.encoded:
        array = decode_image_bytes(datum.data)
        return array[None] if array.ndim == 2 else array[:, :, ::-1].transpose(2, 0, 1)
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=float).reshape(shape)
