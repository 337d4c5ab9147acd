"""Writing weights: binary .caffemodel (and .binaryproto blobs), or Caffe HDF5.

Blobs are encoded by hand (shape + the array's bytes, no protobuf float lists) and
placed where C++ Caffe puts them (after LayerParameter fields 1-6, fields in number
order), so for the same net our files are byte-identical to Caffe's.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import CaffeLiteError
from ..proto import caffe_pb2
from . import wire
from .atomic import atomic_write
from .blobs import encode_blob, pieces_size

HDF5_EXTENSIONS = (".h5", ".hdf5")
NET_LAYER = 100
LAYER_BLOBS = 7


def blob_to_proto(data: npt.ArrayLike,
                  diff: npt.ArrayLike | None = None) -> caffe_pb2.BlobProto:
    """An array (and optionally its diff) as a BlobProto with shape + float data."""
    proto = caffe_pb2.BlobProto()
    proto.ParseFromString(b"".join(bytes(p) for p in encode_blob(data, diff)))
    return proto


def write_blobproto(path: str | os.PathLike[str], array: npt.ArrayLike) -> None:
    pieces = encode_blob(array)
    with atomic_write(path) as handle:
        for piece in pieces:
            handle.write(piece)


def write_weights(path: str | os.PathLike[str], net_name: str,
                  layers: Iterable[tuple[Any, Sequence[np.ndarray]]],
                  fmt: str | None = None) -> None:
    """Save [(LayerParameter, [arrays])] as a binary caffemodel or Caffe HDF5.

    fmt: None (by extension: .h5/.hdf5 -> HDF5, else binary), "binary" or "hdf5".
    """
    path = os.fspath(path)
    kind = _format(path, fmt)
    if kind == "hdf5":
        from .hdf5 import write_weights_hdf5
        return write_weights_hdf5(path, layers)
    header = caffe_pb2.NetParameter(name=net_name).SerializeToString()
    with atomic_write(path) as handle:
        handle.write(header)
        for layer_param, arrays in layers:
            for piece in _layer_pieces(layer_param, arrays):
                handle.write(piece)


def _format(path: str, fmt: str | None) -> str:
    if fmt is None:
        return "hdf5" if path.lower().endswith(HDF5_EXTENSIONS) else "binary"
    fmt = str(fmt).lower()
    aliases = {"binary": "binary", "binaryproto": "binary", "caffemodel": "binary",
               "hdf5": "hdf5", "h5": "hdf5"}
    if fmt not in aliases:
        raise CaffeLiteError(f"unknown weights format '{fmt}' (use 'binary' or "
                             f"'hdf5')", file=path)
    return aliases[fmt]


def _layer_pieces(layer_param: Any, arrays: Iterable[np.ndarray]) -> list[Any]:
    """NetParameter.layer entry: the param (blobs replaced) with blobs at field 7."""
    if len(layer_param.blobs):
        layer_param = _without_blobs(layer_param)
    body = layer_param.SerializeToString(deterministic=True)
    split = wire.first_field_above(body, LAYER_BLOBS)
    blobs = []
    for array in arrays:
        encoded = encode_blob(array)
        blobs += [wire.len_field(LAYER_BLOBS, pieces_size(encoded))] + encoded
    size = len(body) + pieces_size(blobs)
    return [wire.len_field(NET_LAYER, size), body[:split], *blobs, body[split:]]


def _without_blobs(layer_param: Any) -> Any:
    copy = caffe_pb2.LayerParameter()
    copy.CopyFrom(layer_param)
    copy.ClearField("blobs")
    return copy
