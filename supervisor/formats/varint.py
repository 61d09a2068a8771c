"""Base-128 varints, as Avro (after zigzag) and Protobuf write lengths and integers: the one place
that reads and writes them for the splices of `supervisor.formats.wire`."""

from __future__ import annotations


def varint(n: int) -> bytes:
    """`n` (>= 0) as a varint: seven bits a byte, low bits first, the high bit set on all but the
    last byte."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` of `data`, and the position after it."""
    shift = n = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, pos
        shift += 7
