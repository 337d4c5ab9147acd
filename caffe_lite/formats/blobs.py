"""BlobProto bytes <-> arrays, without going through protobuf's Python lists.

Decoding takes the packed float bytes as a numpy view; encoding writes the shape and
``ndarray`` bytes directly, in C++ Caffe's field order (data 5 before shape 7).
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np

from ..errors import ModelFileError
from . import wire

BLOB_LEGACY = (1, 2, 3, 4)              # num, channels, height, width
BLOB_DATA, BLOB_DIFF, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 6, 7, 8
SHAPE_DIM = 1


@dataclass
class SavedBlob:
    """One param blob from a file; ``legacy`` when it was stored with the old
    num/channels/height/width dims (then it matches a blob by its last four axes)."""
    data: np.ndarray
    legacy: bool = False


@dataclass
class SavedLayer:
    name: str
    type: str
    blobs: List[SavedBlob] = field(default_factory=list)


def decode_blob(buf, start=0, end=None):
    """A BlobProto's bytes -> SavedBlob. As in Caffe: any legacy dim present on the
    wire makes the blob 4-D (absent ones 0); double_data wins over data."""
    end = len(buf) if end is None else end
    legacy, dims, floats, doubles = {}, [], [], []
    try:
        for number, wire_type, value in wire.iter_fields(buf, start, end):
            if number in BLOB_LEGACY and wire_type == wire.VARINT:
                legacy[number] = wire.signed(value, 32)
            elif number == BLOB_SHAPE and wire_type == wire.LEN:
                dims = _shape_dims(buf, *value)
            elif number == BLOB_DATA:
                floats.append((wire_type, value))
            elif number == BLOB_DOUBLE_DATA:
                doubles.append((wire_type, value))
        data = (_gather(buf, doubles, "<f8", wire.FIXED64) if doubles
                else _gather(buf, floats, "<f4", wire.FIXED32))
    except wire.WireError as exc:
        raise ModelFileError(f"bad blob: {exc}") from None
    shape = tuple(legacy.get(i, 0) for i in BLOB_LEGACY) if legacy else tuple(dims)
    count = int(np.prod(shape, dtype=np.int64))
    if data.size != count:
        raise ModelFileError(f"blob has shape {shape} ({count} values) but holds "
                             f"{data.size} values")
    return SavedBlob(data.reshape(shape), bool(legacy))


def _shape_dims(buf, start, end):
    dims = []
    for number, wire_type, value in wire.iter_fields(buf, start, end):
        if number == SHAPE_DIM and wire_type == wire.LEN:
            dims.extend(wire.signed(v) for v in wire.packed_varints(buf, *value))
        elif number == SHAPE_DIM and wire_type == wire.VARINT:
            dims.append(wire.signed(value))
    if any(d < 0 for d in dims):
        raise wire.WireError(f"negative blob dimension in {dims}")
    return dims


def _gather(buf, chunks, dtype, fixed_type):
    """Packed runs (LEN) and unpacked single values (FIXED32/64), in file order."""
    parts, singles = [], []

    def flush():
        if singles:    # gather the bytes of a run of unpacked values in one go
            size = np.dtype(dtype).itemsize
            offsets = np.asarray(singles)[:, None] + np.arange(size)
            parts.append(np.frombuffer(buf, np.uint8)[offsets].view(dtype).ravel())
            singles.clear()

    for wire_type, value in chunks:
        if wire_type == wire.LEN:
            flush()
            parts.append(wire.numbers(buf, *value, dtype))
        elif wire_type == fixed_type:
            singles.append(value)
        else:
            raise wire.WireError(f"blob values have wire type {wire_type}")
    flush()
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def encode_blob(data, diff=None):
    """BlobProto bytes as a list of pieces (bytes / memoryviews, no copy of the
    floats): data (packed float32), optional diff, then shape."""
    data = np.asarray(data, dtype="<f4", order="C")     # keeps 0-d (ascontiguousarray would not)
    pieces = _packed(BLOB_DATA, data)
    if diff is not None:
        pieces += _packed(BLOB_DIFF, np.asarray(diff, dtype="<f4", order="C"))
    if data.ndim:                  # Caffe writes no shape at all for a 0-d blob
        dims = b"".join(wire.varint(int(d)) for d in data.shape)
        shape = wire.len_field(SHAPE_DIM, len(dims)) + dims
        pieces.append(wire.len_field(BLOB_SHAPE, len(shape)) + shape)
    return pieces


def _packed(number, array):
    if not array.size:             # protobuf writes nothing for an empty packed field
        return []
    payload = memoryview(array.reshape(-1)).cast("B")
    return [wire.len_field(number, payload.nbytes), payload]


def pieces_size(pieces):
    return sum(len(p) if isinstance(p, bytes) else p.nbytes for p in pieces)
