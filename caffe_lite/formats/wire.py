"""Just enough of the protobuf wire format to walk a message without decoding it.

Weights files are large: walking the tags ourselves lets the float payloads go
straight into numpy (np.frombuffer on the packed bytes) and lets us skip every field
we do not need, including fork fields whose numbers clash with upstream's.
"""
import numpy as np

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(Exception):
    """Bytes that are not a valid protobuf message (internal; callers add the file).

    ``field`` and ``partial`` are set when a length-delimited field runs past the end:
    the field number and the (start, end) of the bytes that are there.
    """

    def __init__(self, message, field=None, partial=None):
        super().__init__(message)
        self.field = field
        self.partial = partial


def read_varint(buf, pos, end):
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("the data ends inside a number")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("a number is longer than 10 bytes")


def signed(value, bits=64):
    """Two's complement of a decoded varint (int32/int64 fields)."""
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return value if bits == 64 else max(min(value, 2**31 - 1), -2**31)


def iter_fields(buf, start, end):
    """Yield (field_number, wire_type, value) over buf[start:end].

    value: the int for VARINT, (start, end) for LEN, the byte offset for FIXED32 /
    FIXED64, None for a (skipped) group.
    """
    for number, wire_type, value, _ in iter_fields_at(buf, start, end):
        yield number, wire_type, value


def first_field_above(buf, number):
    """Byte offset of the first field numbered above ``number`` (or the end)."""
    for field, _, _, tag_start in iter_fields_at(buf, 0, len(buf)):
        if field > number:
            return tag_start
    return len(buf)


def iter_fields_at(buf, start, end):
    """iter_fields, plus the offset where each field's tag starts."""
    pos = start
    while pos < end:
        tag_start = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0 (not a protobuf message)")
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"field {number} claims {length} bytes but only "
                                f"{end - pos} remain", field=number, partial=(pos, end))
            value = (pos, pos + length)
            pos += length
        elif wire_type in (FIXED32, FIXED64):
            size = 4 if wire_type == FIXED32 else 8
            if pos + size > end:
                raise WireError("the data ends inside a fixed-size number")
            value = pos
            pos += size
        elif wire_type == START_GROUP:
            pos = _skip_group(buf, pos, end, number)
            value = None
        else:
            raise WireError(f"invalid wire type {wire_type} for field {number} "
                            f"(not a protobuf message)")
        yield number, wire_type, value, tag_start


def _skip_group(buf, pos, end, number):
    depth = 1
    while depth:
        key, pos = read_varint(buf, pos, end)
        wire_type = key & 7
        if wire_type == START_GROUP:
            depth += 1
        elif wire_type == END_GROUP:
            depth -= 1
        elif wire_type == VARINT:
            _, pos = read_varint(buf, pos, end)
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            pos += length
        elif wire_type in (FIXED32, FIXED64):
            pos += 4 if wire_type == FIXED32 else 8
        else:
            raise WireError(f"invalid wire type {wire_type} inside group {number}")
        if pos > end:
            raise WireError(f"group {number} runs past the end of the data")
    return pos


def packed_varints(buf, start, end):
    values, pos = [], start
    while pos < end:
        value, pos = read_varint(buf, pos, end)
        values.append(value)
    return values


def numbers(buf, start, end, dtype):
    """A packed run of little-endian floats/doubles as an array (no copy if aligned)."""
    dtype = np.dtype(dtype)
    if (end - start) % dtype.itemsize:
        raise WireError(f"packed {dtype.name} data of {end - start} bytes is not a "
                        f"multiple of {dtype.itemsize}")
    array = np.frombuffer(buf, dtype, (end - start) // dtype.itemsize, start)
    return array if array.flags.aligned else array.copy()


def string(buf, start, end):
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


# -- encoding -------------------------------------------------------------------
def varint(value):
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number, wire_type):
    return varint((number << 3) | wire_type)


def len_field(number, payload_size):
    """Tag and length prefix of a length-delimited field (payload written after)."""
    return tag(number, LEN) + varint(payload_size)
