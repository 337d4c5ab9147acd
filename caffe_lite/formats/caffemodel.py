"""Binary weights (.caffemodel) and blob (.binaryproto) files; writing lives in
writer.py and is re-exported here.

Reading walks the wire format and takes only each layer's name, type and blobs, so
fork files that reuse upstream field numbers for other parameters still load, and
float payloads go straight into numpy views of the file's bytes.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from ..errors import CaffeLiteError, ModelFileError
from ..proto import caffe_pb2
from . import wire
from .blobs import SavedBlob, SavedLayer, decode_blob
from .upgrade import upgrade_net, upgraded, v1_type_name
from .upgrade_v0 import V0_TYPES
from .writer import HDF5_EXTENSIONS, blob_to_proto, write_blobproto, write_weights

__all__ = ["SavedBlob", "SavedLayer", "read_weights", "write_weights", "blob_to_proto",
           "blob_from_proto", "read_caffemodel_param", "read_blobproto",
           "write_blobproto", "is_hdf5"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Where name / type / blobs sit: NetParameter.layer (V2), .layers (V1), V1's V0 `layer`.
NET_LAYER_V2, NET_LAYERS_V1 = 100, 2
LAYER_FIELDS = {
    "v2": {"name": 1, "type": 2, "blobs": 7},
    "v1": {"name": 4, "type": 5, "blobs": 6, "v0": 1},
    "v0": {"name": 1, "type": 2, "blobs": 50},
}


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    if os.fspath(path).lower().endswith(HDF5_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(8) == HDF5_MAGIC
    except OSError:
        return False


def read_weights(path: str | os.PathLike[str]) -> list[SavedLayer]:
    """[SavedLayer(name, type, blobs)] of a .caffemodel (V0/V1/V2) or Caffe HDF5 file."""
    path = os.fspath(path)
    if is_hdf5(path):
        from .hdf5 import read_weights_hdf5
        return read_weights_hdf5(path)
    buf = _read_bytes(path)
    try:
        layers = _decode_net(buf)
    except ModelFileError as exc:
        exc.with_context(file=path)
        raise
    if not layers:
        raise ModelFileError("no layers found: not a Caffe weights file", file=path)
    return layers


def _read_bytes(path):
    """The file as a writable memoryview (indexing gives ints, as the wire walker
    wants) over an np.empty buffer: unlike bytearray(n) it is not zero-filled first,
    which makes big files load ~3x faster. Decoded blobs are views into it."""
    try:
        with open(path, "rb") as handle:
            buf = np.empty(os.fstat(handle.fileno()).st_size, np.uint8)
            got = handle.readinto(memoryview(buf))
    except OSError as exc:
        raise ModelFileError(f"cannot read file: {exc.strerror or exc}",
                             file=path) from exc
    return memoryview(buf if got == len(buf) else buf[:got])


def _decode_net(buf):
    layers = []
    try:
        for number, wire_type, value in wire.iter_fields(buf, 0, len(buf)):
            if number in (NET_LAYER_V2, NET_LAYERS_V1):
                _expect(wire_type, wire.LEN, number)
                name, kind, spans = _layer_fields(
                    buf, *value, "v2" if number == NET_LAYER_V2 else "v1")
                layers.append(_layer(buf, name, kind, spans))
    except wire.WireError as exc:
        layer = _partial_layer_name(buf, exc) if exc.partial else None
        reason = "truncated" if exc.partial else "not a valid Caffe weights file"
        raise ModelFileError(f"{reason}: {exc}", layer=layer) from None
    return layers


def _layer_fields(buf, start, end, version):
    """(name, type string, [blob byte spans]) of one layer message."""
    fields = LAYER_FIELDS[version]
    name, kind, spans = "", "", []
    for number, wire_type, value in wire.iter_fields(buf, start, end):
        if number == fields["type"] and version == "v1":
            _expect(wire_type, wire.VARINT, number)
            kind = _v1_type(value)
        elif number in fields.values():
            _expect(wire_type, wire.LEN, number)
            if number == fields["blobs"]:
                spans.append(value)
            elif number == fields["name"]:
                name = wire.string(buf, *value)
            elif number == fields["type"]:
                kind = _v0_type(wire.string(buf, *value))
            else:                              # a V1 entry wrapping a V0 layer
                v0_name, v0_kind, v0_spans = _layer_fields(buf, *value, "v0")
                name, kind = name or v0_name, kind or v0_kind
                spans += v0_spans
    return name, kind, spans


def _v1_type(number):
    try:
        return v1_type_name(number)
    except CaffeLiteError:
        return f"V1LayerType{number}"          # a fork's enum value we do not know


def _v0_type(text):
    """V2 type strings pass through; V0 ones ("conv") become V2 names."""
    if text in V0_TYPES:
        return v1_type_name(caffe_pb2.V1LayerParameter.LayerType.Value(V0_TYPES[text]))
    return text


def _layer(buf, name, kind, spans):
    layer = SavedLayer(name, kind)
    for i, span in enumerate(spans):
        try:
            layer.blobs.append(decode_blob(buf, *span))
        except ModelFileError as exc:
            exc.with_context(layer=name, layer_type=kind or None,
                             blob=f"{name}[{i}]")
            raise
    return layer


def _partial_layer_name(buf, exc):
    version = {NET_LAYER_V2: "v2", NET_LAYERS_V1: "v1"}.get(exc.field)
    if version is None:
        return None
    try:
        for number, wire_type, value in wire.iter_fields(buf, *exc.partial):
            if number == LAYER_FIELDS[version]["name"] and wire_type == wire.LEN:
                return wire.string(buf, *value)
    except wire.WireError:
        pass
    return None


def _expect(wire_type, wanted, number):
    if wire_type != wanted:
        raise wire.WireError(f"field {number} has wire type {wire_type}, expected "
                             f"{wanted}")


def read_caffemodel_param(path: str | os.PathLike[str],
                          upgrade: bool = True) -> caffe_pb2.NetParameter:
    """The whole file as a NetParameter, upgraded unless told otherwise (slower than
    read_weights: protobuf decodes everything; for tools)."""
    path = os.fspath(path)
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(_read_bytes(path).tobytes())
    except DecodeError as exc:
        raise ModelFileError(f"not a valid Caffe weights file: {exc}", file=path) from None
    if upgrade:
        upgraded(net, upgrade_net, path)
    return net


def blob_from_proto(proto: Any) -> SavedBlob:
    """BlobProto message -> SavedBlob (same rules as reading a file; writable data)."""
    return decode_blob(memoryview(bytearray(proto.SerializeToString())))


def read_blobproto(path: str | os.PathLike[str]) -> np.ndarray:
    """A .binaryproto blob (e.g. a mean image) as a float array shaped like Caffe's."""
    path = os.fspath(path)
    try:
        return decode_blob(_read_bytes(path)).data
    except ModelFileError as exc:
        exc.with_context(file=path)
        raise
