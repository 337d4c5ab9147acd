"""A tiny independent protobuf wire encoder, for hand-made files in the tests (so a
test does not build its input with the code it checks)."""


def varint(n):
    n &= (1 << 64) - 1                      # negative ints as protobuf's two's complement
    out = bytearray([n & 0x7F])
    while n > 0x7F:
        out[-1] |= 0x80
        n >>= 7
        out.append(n & 0x7F)
    return bytes(out)


def field(number, payload):                 # length-delimited
    return varint(number << 3 | 2) + varint(len(payload)) + payload
