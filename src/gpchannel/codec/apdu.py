"""Command and response APDUs (ISO/IEC 7816-4:2013, 5.1 to 5.4; GlobalPlatform Card Specification 2.3.1, 11.1).

A command APDU is one of four cases: 1 (header only), 2 (header + Le), 3 (header + Lc + data), 4 (header + Lc +
data + Le), each in short or extended length. ``le`` is the number of response bytes expected: ``None`` means
absent; 256 (short) or 65536 (extended) is "as many as available", written as 00 / 0000 on the wire.

Logical channels live in CLA (ISO 7816-4, 5.4.1): channels 0-3 in b2-b1 of a first-interindustry CLA
(``0x0X``, ``0x8X``), channels 4-19 in b4-b1 (+4) of a further-interindustry CLA (``0x4X``, ``0xCX``).
Secure messaging is signalled in b3 (first) or b6 (further) (``0x04`` / ``0x20``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gpchannel.errors import DecodeError

__all__ = [
    "CommandApdu",
    "ResponseApdu",
    "cla_channel",
    "cla_for_channel",
    "cla_has_secure_messaging",
    "cla_with_secure_messaging",
]

_SHORT_MAX_DATA = 255
_EXT_MAX_DATA = 65535


def cla_channel(cla: int) -> int:
    """The logical channel number (0-19) that a CLA byte addresses."""
    if cla & 0x40:
        return (cla & 0x0F) + 4
    return cla & 0x03


def cla_has_secure_messaging(cla: int) -> bool:
    """Whether the CLA byte indicates secure messaging.

    First interindustry (ISO 7816-4, 5.4.1, Table 2): b4-b3 other than 00 (01 proprietary SM, as GlobalPlatform
    uses it; 1X ISO SM). Further interindustry (Table 3): b6.
    """
    if cla & 0x40:
        return bool(cla & 0x20)
    return bool(cla & 0x0C)


def cla_with_secure_messaging(cla: int) -> int:
    """The CLA with the secure messaging indication set (GP 2.3.1, 11.1.4)."""
    return cla | (0x20 if cla & 0x40 else 0x04)


def cla_for_channel(cla: int, channel: int) -> int:
    """Re-encode ``cla`` (keeping its class: proprietary bit, secure messaging) for logical ``channel``."""
    if not 0 <= channel <= 19:
        raise ValueError(f"logical channel must be 0..19, got {channel}")
    proprietary = cla & 0x80
    sm = cla_has_secure_messaging(cla)
    chaining = cla & 0x10
    if channel <= 3:
        # Keep the exact b4-b3 SM indication of a first-interindustry CLA; from a further one, SM becomes b3.
        sm_bits = (cla & 0x0C) if not cla & 0x40 else (0x04 if sm else 0)
        return proprietary | chaining | sm_bits | channel
    return proprietary | 0x40 | (0x20 if sm else 0) | chaining | (channel - 4)


@dataclass(frozen=True, slots=True, init=False)
class CommandApdu:
    """An ISO 7816-4 command APDU. ``le`` is ``None`` when absent, else 1..65536."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False
    """Force the extended-length encoding where short would do. Normalised on construction: it stays True only
    where it changes the encoding (never for case 1, nor when the data or ``le`` need extended lengths anyway);
    :attr:`is_extended` tells which encoding is used."""

    def __init__(
        self, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None, extended: bool = False
    ) -> None:
        # Written out rather than generated: built on every command on both sides of a secure channel, and the
        # slots set through their descriptors cost a third of the generated frozen __init__ and __post_init__.
        if not (0 <= cla <= 0xFF and 0 <= ins <= 0xFF and 0 <= p1 <= 0xFF and 0 <= p2 <= 0xFF):
            for name, value in (("cla", cla), ("ins", ins), ("p1", p1), ("p2", p2)):
                if not 0 <= value <= 0xFF:
                    raise ValueError(f"{name} must be a byte (0..255), got {value}")
        n = len(data)
        if n > _EXT_MAX_DATA:
            raise ValueError(f"command data is {n} bytes; at most {_EXT_MAX_DATA} fit an APDU")
        if le is not None and not 1 <= le <= 65536:
            raise ValueError(f"le must be 1..65536 or None, got {le}")
        if not isinstance(data, bytes):
            data = bytes(data)
        # Keep ``extended`` only where it changes the encoding, so that APDUs that encode alike compare equal and
        # from_bytes(to_bytes(x)) == x: case 1 has no length field to extend, and a long Lc or Le needs extended
        # lengths anyway (``is_extended`` says so).
        if extended:
            extended = (n > 0 or le is not None) and not (n > _SHORT_MAX_DATA or (le is not None and le > 256))
        _set_cla(self, cla)
        _set_ins(self, ins)
        _set_p1(self, p1)
        _set_p2(self, p2)
        _set_data(self, data)
        _set_le(self, le)
        _set_extended(self, extended)

    def _has_lengths(self) -> bool:
        return bool(self.data) or self.le is not None

    def _needs_extended(self) -> bool:
        return len(self.data) > _SHORT_MAX_DATA or (self.le is not None and self.le > 256)

    @property
    def case(self) -> int:
        """The ISO 7816-3 case, 1 to 4."""
        if self.data:
            return 4 if self.le is not None else 3
        return 2 if self.le is not None else 1

    @property
    def channel(self) -> int:
        return cla_channel(self.cla)

    @property
    def is_extended(self) -> bool:
        """Whether ``to_bytes`` uses the extended-length encoding (ISO 7816-4, 5.1)."""
        return self.extended or len(self.data) > _SHORT_MAX_DATA or (self.le is not None and self.le > 256)

    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def with_changes(self, **changes: object) -> CommandApdu:
        """A copy with the given fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_bytes(self) -> bytes:
        data, le = self.data, self.le
        if not self.extended and len(data) <= _SHORT_MAX_DATA and (le is None or le <= 256):  # not is_extended
            head = (self.cla, self.ins, self.p1, self.p2)
            if data:
                short = bytes((*head, len(data))) + data
                return short if le is None else short + bytes((le & 0xFF,))
            return bytes(head if le is None else (*head, le & 0xFF))
        out = bytearray(self.header())
        # Extended: a 00 byte, then 2-byte Lc and/or 2-byte Le (Le alone gets the 00 prefix).
        if self.data:
            out += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                out += (self.le & 0xFFFF).to_bytes(2, "big")
        elif self.le is not None:
            out += b"\x00" + (self.le & 0xFFFF).to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandApdu:
        """Decode a command APDU strictly (ISO 7816-3, 12.1.3); raises :class:`DecodeError`."""
        n = len(raw)
        if n < 4:
            raise DecodeError(f"a command APDU has at least 4 header bytes, got {n}", offset=n)
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if cla == 0xFF:
            raise DecodeError("CLA FF is invalid (reserved for PPS)", offset=0)
        b = n - 4
        if b == 0:
            return cls(cla, ins, p1, p2)
        if b == 1:
            return cls(cla, ins, p1, p2, b"", raw[4] or 256)
        lc = raw[4]
        if lc:
            if b == 1 + lc:
                return cls(cla, ins, p1, p2, bytes(raw[5:]))
            if b == 2 + lc:
                return cls(cla, ins, p1, p2, bytes(raw[5 : 5 + lc]), raw[-1] or 256)
            raise DecodeError(f"Lc is {lc} but {b - 1} bytes follow it (expected {lc} or {lc + 1})", offset=4)
        # body[0] == 0 and more than one byte: extended length.
        body = raw[4:]
        if b == 3:
            le = int.from_bytes(body[1:3], "big") or 65536
            return cls(cla, ins, p1, p2, le=le, extended=True)
        if b < 3:
            raise DecodeError("truncated extended length field", offset=4 + b)
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise DecodeError("extended Lc of 0 is invalid", offset=5)
        if b == 3 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[3:]), extended=True)
        if b == 5 + lc:
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, data=bytes(body[3 : 3 + lc]), le=le, extended=True)
        raise DecodeError(f"extended Lc is {lc} but {b - 3} bytes follow it (expected {lc} or {lc + 2})", offset=5)

    def __str__(self) -> str:
        return self.to_bytes().hex().upper()


_set_cla, _set_ins, _set_p1, _set_p2, _set_data, _set_le, _set_extended = (
    CommandApdu.__dict__[name].__set__ for name in ("cla", "ins", "p1", "p2", "data", "le", "extended")
)
"""The slots' own setters: a frozen dataclass refuses ``setattr``; its constructor writes through these."""


@dataclass(frozen=True, slots=True, init=False)
class ResponseApdu:
    """An ISO 7816-4 response APDU: response data and the status word SW1-SW2."""

    data: bytes = b""
    sw: int = 0x9000

    def __init__(self, data: bytes = b"", sw: int = 0x9000) -> None:
        if not 0 <= sw <= 0xFFFF:
            raise ValueError(f"sw must be two bytes, got {sw}")
        _set_response_data(self, data if isinstance(data, bytes) else bytes(data))
        _set_sw(self, sw)

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def is_success(self) -> bool:
        """9000, or a warning (62XX / 63XX: ISO 7816-4, 5.6, processing completed with a warning).

        Beware: GP 2.3.1 (Table D-9) answers a failed EXTERNAL AUTHENTICATE with 6300, a warning; code that must
        tell success from failure compares the status word exactly or uses :func:`gpchannel.codec.sw.is_success`
        (90 00 and 61 XX only).
        """
        return self.sw == 0x9000 or self.sw1 in (0x62, 0x63)

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise DecodeError(f"a response APDU has at least the 2 status bytes, got {len(raw)}", offset=0)
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    def __str__(self) -> str:
        return self.to_bytes().hex().upper()


_set_response_data, _set_sw = (ResponseApdu.__dict__[name].__set__ for name in ("data", "sw"))
