"""BlobProto bytes <-> arrays, without going through protobuf's Python lists.

Decoding takes the packed float bytes as a numpy view; encoding writes the shape and
``ndarray`` bytes directly, in C++ Caffe's field order (data 5 before shape 7).
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

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

    @property
    def shape(self):
        return self.data.shape


@dataclass
class SavedLayer:
    name: str
    type: str
    blobs: List[SavedBlob] = field(default_factory=list)


class StoredBlob:
    """A param blob of an open weights file: its shape is known, its values are read
    only when asked, straight into the array that keeps them."""
    shape: Tuple[int, ...]
    legacy: bool
    dtype: np.dtype                      # of the values as stored

    @property
    def nbytes(self):
        return _product(self.shape) * self.dtype.itemsize

    def read_into(self, out):
        """Write the values, in file order, into ``out`` (as many values)."""
        raise NotImplementedError

    def read(self):
        out = np.empty(self.shape, self.dtype.newbyteorder("="))
        self.read_into(out)
        return out


@dataclass
class StoredLayer:
    name: str
    type: str
    blobs: List[StoredBlob] = field(default_factory=list)


def decode_blob(buf, start=0, end=None):
    """A BlobProto's bytes -> SavedBlob (values copied out only where unaligned)."""
    layout = blob_layout(buf, start, end)
    try:
        data = gather_values(buf, layout)
    except wire.WireError as exc:
        raise ModelFileError(f"bad blob: {exc}") from None
    return SavedBlob(data.reshape(layout.shape), layout.legacy)


@dataclass
class BlobLayout:
    """Where a BlobProto's values sit, found from its tags alone (nothing read or
    allocated yet). ``packed`` is the (start, end) of the one packed float32 run
    that holds every value, the common case that can be read straight into place;
    otherwise the values are gathered from ``chunks``."""
    shape: Tuple[int, ...]
    legacy: bool
    dtype: np.dtype
    chunks: List[Tuple[int, Any]]        # (wire type, span or offset), in file order
    packed: Optional[Tuple[int, int]]

    @property
    def count(self):
        return _product(self.shape)

    @property
    def nbytes(self):
        return self.count * self.dtype.itemsize


def blob_layout(buf, start=0, end=None):
    """The BlobProto at buf[start:end] as a BlobLayout. As in Caffe: any legacy dim
    present on the wire makes the blob 4-D (absent ones 0); double_data wins over
    data. The values the tags declare must be as many as the shape says."""
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
        dtype, chunks = (np.dtype("<f8"), doubles) if doubles else (np.dtype("<f4"), floats)
        held = _values_held(chunks, dtype)
    except wire.WireError as exc:
        raise ModelFileError(f"bad blob: {exc}") from None
    shape = tuple(legacy.get(i, 0) for i in BLOB_LEGACY) if legacy else tuple(dims)
    count = _product(shape)
    if held != count:
        declared = count * dtype.itemsize
        beyond = (f", {declared:,} bytes: more than the {len(buf):,} bytes of the "
                  f"whole file" if declared > len(buf) else "")
        raise ModelFileError(f"blob has shape {shape} ({count} values{beyond}) but "
                             f"holds {held} values")
    packed = None
    if len(chunks) == 1 and chunks[0][0] == wire.LEN and dtype == np.dtype("<f4"):
        packed = chunks[0][1]
    return BlobLayout(shape, bool(legacy), dtype, chunks, packed)


def _product(shape):
    count = 1
    for d in shape:                  # Python ints: no int64 overflow
        count *= d
    return count


def _values_held(chunks, dtype):
    """How many values packed runs (LEN) and single values (FIXED32/64) hold."""
    fixed_type = wire.FIXED64 if dtype.itemsize == 8 else wire.FIXED32
    held = 0
    for wire_type, value in chunks:
        if wire_type == wire.LEN:
            size = value[1] - value[0]
            if size % dtype.itemsize:
                raise wire.WireError(f"packed {dtype.name} data of {size} bytes is "
                                     f"not a multiple of {dtype.itemsize}")
            held += size // dtype.itemsize
        elif wire_type == fixed_type:
            held += 1
        else:
            raise wire.WireError(f"blob values have wire type {wire_type}")
    return held


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


def gather_values(buf, layout):
    """The layout's values as one flat array, from packed runs (LEN) and unpacked
    single values (FIXED32/64) in file order; a view of buf where it can be."""
    dtype, parts, singles = layout.dtype, [], []

    def flush():
        if singles:    # gather the bytes of a run of unpacked values in one go
            offsets = np.asarray(singles)[:, None] + np.arange(dtype.itemsize)
            parts.append(np.frombuffer(buf, np.uint8)[offsets].view(dtype).ravel())
            singles.clear()

    for wire_type, value in layout.chunks:
        if wire_type == wire.LEN:
            flush()
            parts.append(wire.numbers(buf, *value, dtype))
        else:
            singles.append(value)
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
