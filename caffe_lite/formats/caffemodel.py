"""Binary weights (.caffemodel) and blob (.binaryproto) files; writing lives in
writer.py and is re-exported here.

Reading walks the wire format and takes only each layer's name, type and blobs, so
fork files that reuse upstream field numbers for other parameters still load. The
walk reads tags and lengths only (over a memory map of the file, so only the pages
holding tags are touched); every blob's shape is checked against the values the
file declares before anything is allocated, and then each packed float run is
read once, with ``readinto``, straight into the array that keeps it.
"""
from __future__ import annotations

import contextlib
import mmap
import os
from typing import Any, Iterator

import numpy as np
from google.protobuf.message import DecodeError

from ..blob import memory_limit
from ..errors import CaffeLiteError, MemoryLimitError, ModelFileError
from ..proto import caffe_pb2
from . import wire
from .blobs import (
    BlobLayout,
    SavedBlob,
    SavedLayer,
    StoredBlob,
    StoredLayer,
    blob_layout,
    decode_blob,
    gather_values,
)
from .upgrade import upgrade_net, upgraded, v1_type_name
from .upgrade_v0 import V0_TYPES
from .writer import HDF5_EXTENSIONS, blob_to_proto, write_blobproto, write_weights

__all__ = ["SavedBlob", "SavedLayer", "StoredBlob", "StoredLayer", "open_weights",
           "read_weights", "write_weights", "blob_to_proto", "blob_from_proto",
           "read_caffemodel_param", "read_blobproto", "write_blobproto", "is_hdf5"]

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
    """[SavedLayer(name, type, blobs)] of a .caffemodel (V0/V1/V2) or Caffe HDF5 file.

    Refused before anything is allocated when the blobs together need more than
    the memory limit (caffe_lite.set_memory_limit)."""
    path = os.fspath(path)
    with open_weights(path) as layers:
        check_memory(layers, path)
        out = []
        for layer in layers:
            saved = SavedLayer(layer.name, layer.type)
            for i, blob in enumerate(layer.blobs):
                with blob_context(path, layer, i):
                    saved.blobs.append(SavedBlob(blob.read(), blob.legacy))
            out.append(saved)
        return out


@contextlib.contextmanager
def open_weights(path: str | os.PathLike[str]) -> Iterator[list[StoredLayer]]:
    """[StoredLayer] of an open .caffemodel or HDF5 weights file: names, types and
    blob shapes, every declared size checked against the file; the values are read
    with each blob's read_into / read while the file is open."""
    path = os.fspath(path)
    if is_hdf5(path):
        from .hdf5 import open_weights_hdf5
        with open_weights_hdf5(path) as layers:
            yield layers
        return
    with _open_caffemodel(path) as (buf, handle):
        try:
            found = _decode_net(buf)
        except ModelFileError as exc:
            exc.with_context(file=path)
            raise
        if not found:
            raise ModelFileError("no layers found: not a Caffe weights file", file=path)
        yield [StoredLayer(name, kind, [_CaffemodelBlob(buf, handle, path, layout)
                                        for layout in layouts])
               for name, kind, layouts in found]


@contextlib.contextmanager
def blob_context(path: str, layer: StoredLayer, index: int) -> Iterator[None]:
    """Name the file, layer and blob in an error raised while reading its values."""
    try:
        yield
    except CaffeLiteError as exc:
        exc.with_context(file=path, layer=layer.name, layer_type=layer.type or None,
                         blob=f"{layer.name}[{index}]")
        raise


def check_memory(layers: list[StoredLayer], path: str) -> None:
    """Refuse, before allocating, blobs that together pass the memory limit."""
    limit, total = memory_limit(), 0
    for layer in layers:
        for i, blob in enumerate(layer.blobs):
            total += blob.nbytes
            if total > limit:
                raise MemoryLimitError(
                    f"reading the weights needs at least {total:,} bytes by this blob "
                    f"(shape {blob.shape}), over the memory limit of {limit:,}",
                    needed=total, limit=limit, file=path, layer=layer.name,
                    layer_type=layer.type or None, blob=f"{layer.name}[{i}]")


class _CaffemodelBlob(StoredBlob):
    """A blob's layout in an open caffemodel; packed float32 runs are read from the
    file with readinto, anything else (double_data, unpacked floats, files that
    cannot be mapped) is gathered from the mapped bytes."""

    def __init__(self, buf: Any, handle: Any, path: str, layout: BlobLayout) -> None:
        self.buf, self.handle, self.path, self.layout = buf, handle, path, layout
        self.shape, self.legacy, self.dtype = layout.shape, layout.legacy, layout.dtype

    def read_into(self, out: np.ndarray) -> None:
        packed = self.layout.packed
        if out.size != self.layout.count:
            raise ModelFileError(f"cannot read {self.layout.count} values into an "
                                 f"array of shape {out.shape}")
        if packed is None or self.handle is None or not out.flags.c_contiguous:
            try:
                values = gather_values(self.buf, self.layout)
            except wire.WireError as exc:
                raise ModelFileError(f"bad blob: {exc}") from None
            out[...] = values.reshape(out.shape)
            return
        flat = out.reshape(-1)
        if flat.dtype == np.dtype("<f4"):
            _read_exactly(self.handle, packed[0], flat.view(np.uint8))
            return
        scratch = np.empty(min(flat.size, READ_CHUNK), "<f4")   # other dtypes: converted
        for i in range(0, flat.size, READ_CHUNK):
            part = scratch[:min(READ_CHUNK, flat.size - i)]
            _read_exactly(self.handle, packed[0] + 4 * i, part.view(np.uint8))
            flat[i:i + part.size] = part


READ_CHUNK = 1 << 22        # values converted per read when the target is not float32


def _read_exactly(handle: Any, offset: int, view: np.ndarray) -> None:
    handle.seek(offset)
    done = 0
    while done < view.nbytes:
        got = handle.readinto(view[done:])
        if not got:
            raise ModelFileError("truncated: the file ended while its values were "
                                 "read (did it change meanwhile?)")
        done += got


@contextlib.contextmanager
def _open_caffemodel(path: str) -> Iterator[tuple[Any, Any]]:
    """(bytes, file) of a caffemodel: a read-only map of the file and the file for
    readinto; for what cannot be mapped (an empty file, a pipe), its bytes read
    into memory and no file."""
    try:
        handle = open(path, "rb", buffering=0)
    except OSError as exc:
        raise ModelFileError(f"cannot read file: {exc.strerror or exc}",
                             file=path) from exc
    with handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            try:
                data = handle.readall()
            except OSError as exc:
                raise ModelFileError(f"cannot read file: {exc.strerror or exc}",
                                     file=path) from exc
            yield memoryview(data), None
            return
        buf = memoryview(mapped)
        try:
            yield buf, handle
        finally:
            with contextlib.suppress(BufferError):   # a view still held: GC closes it
                buf.release()
                mapped.close()


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
                layers.append((name, kind, _layouts(buf, name, kind, spans)))
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


def _layouts(buf, name, kind, spans):
    layouts = []
    for i, span in enumerate(spans):
        try:
            layouts.append(blob_layout(buf, *span))
        except ModelFileError as exc:
            exc.with_context(layer=name, layer_type=kind or None,
                             blob=f"{name}[{i}]")
            raise
    return layouts


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
