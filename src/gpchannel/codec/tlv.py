"""BER-TLV data objects as ISO/IEC 7816-4:2013 (5.2.2) and GlobalPlatform Card Specification 2.3.1 (11.1.11,
Annex B) use them: the subset of ITU-T X.690 with definite lengths only.

Tags (ISO 7816-4, 5.2.2.1; X.690, 8.1.2) are kept as the int of their wire bytes (``0x9F70`` is ``9F 70``), one
to three bytes long. The first byte holds the class (b8-b7) and the constructed flag (b6); low bits 1F announce
further bytes, each with b8 set except the last. A second byte whose bits 7-1 are all zero (X.690, 8.1.2.4.2 c)
is rejected, as are 00 and FF as a first tag byte (ISO 7816-4 reserves them as padding between objects;
``skip_padding=True`` skips them there). Two-byte tags for numbers below 31 (``BF0C``, EMV's ``9F02``), which
X.690 would write in one byte, are accepted: cards and GlobalPlatform's own FCI (``BF0C``) use them.

Lengths (ISO 7816-4, Table 8): ``00``-``7F``, ``81 XX``, ``82 XXXX``, ``83 XXXXXX``. Indefinite length ``80`` and
length fields of more than three subsequent bytes are rejected. Long forms longer than needed (``81 05``) are
accepted, as ISO's table allows them; :meth:`Tlv.to_bytes` always writes the shortest form.

Trailing data policy: :meth:`Tlv.from_bytes` takes exactly one object and rejects any byte after it;
:func:`parse_all` takes a whole sequence of objects; :func:`parse_one` returns the offset where the next object
would start, for callers that mix TLV with other fields. Every decoder returns a value or raises
:class:`~gpchannel.errors.DecodeError` with the offset of the fault, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

from gpchannel.errors import DecodeError

__all__ = [
    "TagClass",
    "Tlv",
    "decode_length",
    "encode_length",
    "encode_tag",
    "find",
    "first_value",
    "parse_all",
    "parse_one",
    "parse_pairs",
    "tlv",
]

_MAX_TAG_BYTES = 3
_MAX_LENGTH_BYTES = 3
_MAX_LENGTH = (1 << (8 * _MAX_LENGTH_BYTES)) - 1
_PADDING = (0x00, 0xFF)


class TagClass(IntEnum):
    """The class of a tag, bits b8-b7 of its first byte (X.690, 8.1.2.2, Table 1)."""

    UNIVERSAL = 0
    APPLICATION = 1
    CONTEXT_SPECIFIC = 2
    PRIVATE = 3


def _tag_error(raw: bytes) -> str | None:
    """Why the tag bytes ``raw`` are not a valid tag, or None."""
    first = raw[0]
    if first in _PADDING:
        return f"{first:02X} is not a valid first tag byte (ISO 7816-4 reserves it for padding)"
    if first & 0x1F != 0x1F:
        return None if len(raw) == 1 else "a one-byte tag number is followed by more tag bytes"
    if len(raw) == 1:
        return "truncated tag: subsequent tag bytes expected"
    if raw[1] & 0x7F == 0:
        return "the first subsequent tag byte has bits 7 to 1 all zero"
    if any(b & 0x80 == 0 for b in raw[1:-1]) or raw[-1] & 0x80:
        return "malformed multi-byte tag (b8 marks every subsequent byte but the last)"
    return None


def encode_tag(tag: int) -> bytes:
    """The wire bytes of ``tag`` (``0x9F70`` -> ``9F 70``); raises ``ValueError`` if it is not a valid tag."""
    if not 0 < tag < 1 << (8 * _MAX_TAG_BYTES):
        raise ValueError(f"a tag is 1 to {_MAX_TAG_BYTES} bytes, got {tag:#x}")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    problem = _tag_error(raw)
    if problem is not None:
        raise ValueError(f"invalid tag {tag:X}: {problem}")
    return raw


def encode_length(n: int) -> bytes:
    """The shortest BER definite length field for ``n`` (ISO 7816-4, Table 8): 1, 2, 3 or 4 bytes."""
    if not 0 <= n <= _MAX_LENGTH:
        raise ValueError(f"length must be 0..{_MAX_LENGTH}, got {n}")
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def tlv(tag: int, *parts: bytes) -> bytes:
    """Encode one data object whose value is the concatenation of ``parts``.

    Nest by passing encoded children: ``tlv(0xE3, tlv(0x4F, aid), tlv(0x9F70, b"\\x07"))``.
    """
    value = b"".join(parts)
    return encode_tag(tag) + encode_length(len(value)) + value


def _decode_tag(data: bytes, offset: int, end: int) -> tuple[int, int]:
    start = offset
    if offset >= end:
        raise DecodeError("truncated tag", offset)
    first = data[offset]
    offset += 1
    if first & 0x1F == 0x1F and first not in _PADDING:
        while True:
            if offset - start >= _MAX_TAG_BYTES:
                raise DecodeError(f"tag longer than {_MAX_TAG_BYTES} bytes", start)
            if offset >= end:
                raise DecodeError("truncated tag: subsequent tag bytes expected", offset)
            b = data[offset]
            offset += 1
            if not b & 0x80:
                break
    raw = bytes(data[start:offset])
    problem = _tag_error(raw)
    if problem is not None:
        raise DecodeError(problem, start)
    return int.from_bytes(raw, "big"), offset


def decode_length(data: bytes, offset: int = 0, end: int | None = None, *, lenient_80: bool = False) -> tuple[int, int]:
    """Decode the length field at ``offset``; returns ``(length, offset after the field)``.

    ``lenient_80``: a single ``80`` byte means 128, the length rule of the fields of INSTALL and its tokens
    (GP 2.3.1 11.5.2.3), which are not BER-TLV."""
    end = len(data) if end is None else end
    if offset >= end:
        raise DecodeError("truncated length: length field missing", offset)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    if first == 0x80 and lenient_80:
        return 128, offset + 1
    if first == 0x80:
        raise DecodeError("indefinite length (80) is not allowed in BER-TLV for smart cards", offset)
    size = first & 0x7F
    if size > _MAX_LENGTH_BYTES:
        raise DecodeError(f"length field too long ({first:02X}: {size} subsequent bytes, at most 3)", offset)
    if offset + 1 + size > end:
        raise DecodeError(f"truncated length: {size} subsequent length bytes expected", offset)
    return int.from_bytes(data[offset + 1 : offset + 1 + size], "big"), offset + 1 + size


def _skip_padding(data: bytes, offset: int, end: int) -> int:
    while offset < end and data[offset] in _PADDING:
        offset += 1
    return offset


def _parse_one(data: bytes, offset: int, end: int) -> tuple[Tlv, int]:
    tag, pos = _decode_tag(data, offset, end)
    length, pos = decode_length(data, pos, end)
    if pos + length > end:
        raise DecodeError(f"truncated value: tag {tag:X} announces {length} bytes, {end - pos} remain", pos)
    return Tlv(tag, bytes(data[pos : pos + length])), pos + length


def _parse_all(data: bytes, skip_padding: bool) -> list[Tlv]:
    out: list[Tlv] = []
    offset, end = 0, len(data)
    while True:
        if skip_padding:
            offset = _skip_padding(data, offset, end)
        if offset >= end:
            return out
        item, offset = _parse_one(data, offset, end)
        out.append(item)


def parse_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the data object at ``offset``; returns it and the offset just after it (trailing data allowed)."""
    if not 0 <= offset <= len(data):
        raise ValueError(f"offset {offset} is outside the {len(data)}-byte input")
    return _parse_one(data, offset, len(data))


def parse_all(data: bytes, *, skip_padding: bool = False) -> list[Tlv]:
    """Decode a sequence of data objects filling ``data`` exactly (empty input gives an empty list).

    With ``skip_padding``, 00 and FF bytes before, between and after objects are skipped (ISO 7816-4, 5.2.2.1).
    """
    return _parse_all(data, skip_padding)


def parse_pairs(data: bytes, *, base: int = 0) -> list[tuple[int, bytes]]:
    """:func:`parse_all` as ``(tag, value)`` pairs, for the GlobalPlatform structures that match on tags at one
    level. ``base`` is the position of ``data`` in a larger message: it shifts the offsets of errors."""
    try:
        return [(item.tag, item.value) for item in _parse_all(data, False)]
    except DecodeError as exc:
        if not base:
            raise
        message = str(exc).removesuffix(f" (at offset {exc.offset})")
        raise DecodeError(message, (exc.offset or 0) + base) from None


def first_value(pairs: Iterable[tuple[int, bytes]], tag: int) -> bytes | None:
    """The value of the first ``tag`` among ``pairs`` (one level: constructed values are not searched), or None."""
    return next((value for t, value in pairs if t == tag), None)


def find(items: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag`` among ``items`` and their constructed descendants (depth first, pre-order)."""
    for item in items:
        if item.tag == tag:
            return item
        if item.constructed:
            hit = find(item.children(), tag)
            if hit is not None:
                return hit
    return None


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object. ``tag`` is the int of its wire bytes; the constructed flag comes from the tag."""

    tag: int
    value: bytes = b""

    def __post_init__(self) -> None:
        encode_tag(self.tag)
        if not isinstance(self.value, bytes):
            object.__setattr__(self, "value", bytes(self.value))
        if len(self.value) > _MAX_LENGTH:
            raise ValueError(f"value is {len(self.value)} bytes, at most {_MAX_LENGTH} fit a 3-byte length")

    @classmethod
    def build(cls, tag: int, children: Iterable[Tlv]) -> Tlv:
        """A constructed object whose value is the encoding of ``children``."""
        return cls(tag, b"".join(c.to_bytes() for c in children))

    @property
    def tag_bytes(self) -> bytes:
        """The tag as it is written on the wire."""
        return encode_tag(self.tag)

    @property
    def constructed(self) -> bool:
        """Bit b6 of the first tag byte (X.690, 8.1.2.5): the value is itself a sequence of data objects."""
        return bool(self.tag_bytes[0] & 0x20)

    @property
    def tag_class(self) -> TagClass:
        return TagClass(self.tag_bytes[0] >> 6)

    def children(self, *, skip_padding: bool = False) -> list[Tlv]:
        """The data objects nested in a constructed object's value (offsets in errors are within the value)."""
        if not self.constructed:
            raise ValueError(f"tag {self.tag:X} is primitive: its value has no nested data objects")
        return _parse_all(self.value, skip_padding)

    def find(self, tag: int) -> Tlv | None:
        """The first descendant with ``tag`` (depth first), or None; ``self`` itself is not considered."""
        return find(self.children(), tag) if self.constructed else None

    def walk(self) -> Iterator[Tlv]:
        """This object and all its constructed descendants' objects, depth first, pre-order."""
        yield self
        if self.constructed:
            for child in self.children():
                yield from child.walk()

    def to_bytes(self) -> bytes:
        return self.tag_bytes + encode_length(len(self.value)) + self.value

    @classmethod
    def from_bytes(cls, data: bytes) -> Tlv:
        """Decode exactly one data object; bytes after it raise :class:`DecodeError`."""
        item, end = _parse_one(data, 0, len(data))
        if end != len(data):
            raise DecodeError(f"{len(data) - end} trailing bytes after the data object", end)
        return item

    def __str__(self) -> str:
        return f"{self.tag:X}[{len(self.value)}]={self.value.hex().upper()}"
