"""Minimal BER-TLV (ISO/IEC 8825-1, as GP 2.3.1 11.1.11 uses it) for the gp and card modules.

Tags are kept as ints of their wire bytes (``0x9F70``); lengths use the definite forms 1, 81 xx, 82 xx xx and
83 xx xx xx. The decoder returns values or raises :class:`DecodeError` with the offset, nothing else.
"""

from __future__ import annotations

from gpchannel.errors import DecodeError

__all__ = ["decode_length", "encode_length", "encode_tlv", "find", "parse_tlvs", "tag_bytes"]


def tag_bytes(tag: int) -> bytes:
    """The wire bytes of a tag given as an int (``0x9F70`` -> ``9F 70``)."""
    if tag < 0:
        raise ValueError(f"tag must be non-negative, got {tag}")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(n: int) -> bytes:
    """The BER definite length form."""
    if n < 0:
        raise ValueError(f"length must be non-negative, got {n}")
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    if size > 3:
        raise ValueError(f"length {n} does not fit 3 bytes")
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def encode_tlv(tag: int, value: bytes) -> bytes:
    return tag_bytes(tag) + encode_length(len(value)) + value


def decode_length(raw: bytes, offset: int, *, lenient_80: bool = False) -> tuple[int, int]:
    """Decode a length at ``offset``; returns (length, offset after it). ``lenient_80``: '80' means 128 (the
    token length rule of GP 2.3.1 11.5.2.3)."""
    if offset >= len(raw):
        raise DecodeError("length missing", offset)
    first = raw[offset]
    if first < 0x80:
        return first, offset + 1
    if first == 0x80:
        if lenient_80:
            return 128, offset + 1
        raise DecodeError("indefinite length is not allowed", offset)
    size = first & 0x7F
    if size > 3:
        raise DecodeError(f"a {size}-byte length field is not supported", offset)
    if offset + 1 + size > len(raw):
        raise DecodeError("truncated length field", offset)
    return int.from_bytes(raw[offset + 1 : offset + 1 + size], "big"), offset + 1 + size


def _decode_tag(raw: bytes, offset: int) -> tuple[int, int]:
    start = offset
    if offset >= len(raw):
        raise DecodeError("tag missing", offset)
    first = raw[offset]
    if first in (0x00, 0xFF):
        raise DecodeError(f"tag byte {first:02X} is not a valid first tag byte", offset)
    offset += 1
    if first & 0x1F == 0x1F:
        while True:
            if offset >= len(raw):
                raise DecodeError("truncated multi-byte tag", start)
            if offset - start >= 3:
                raise DecodeError("tags longer than 3 bytes are not supported", start)
            byte = raw[offset]
            offset += 1
            if not byte & 0x80:
                break
    return int.from_bytes(raw[start:offset], "big"), offset


def parse_tlvs(raw: bytes, base: int = 0) -> list[tuple[int, bytes]]:
    """Split ``raw`` into (tag, value) pairs, in order. ``base`` shifts the offsets reported in errors."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(raw):
        try:
            tag, offset = _decode_tag(raw, offset)
            length, offset = decode_length(raw, offset)
        except DecodeError as exc:
            raise DecodeError(str(exc).split(" (at offset")[0], (exc.offset or 0) + base) from None
        if offset + length > len(raw):
            raise DecodeError(f"tag {tag:X} says {length} bytes but {len(raw) - offset} remain", offset + base)
        out.append((tag, bytes(raw[offset : offset + length])))
        offset += length
    return out


def find(tlvs: list[tuple[int, bytes]], tag: int) -> bytes | None:
    """The value of the first ``tag`` in ``tlvs``, or None."""
    for t, v in tlvs:
        if t == tag:
            return v
    return None
