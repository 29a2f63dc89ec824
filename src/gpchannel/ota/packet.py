"""Wire layout of SCP80 command and response packets, with the secured part left opaque.

ETSI TS 102 225 5.1 (Command Packet, Table 1) and 5.2 (Response Packet); 3GPP TS 31.115 4.2 and 4.4 for their
SMS-PP form. The header fields that travel in clear are decoded here; the secured part (CNTR onwards, ciphered
or not) is kept as bytes so that a receiver can read SPI, KIc, KID and TAR *before* any key is touched (to route
by TAR, pick the key set, and build an unsecured error PoR: see :mod:`gpchannel.ota.scp80`).

PacketLayout dialects (:class:`PacketLayout`):

- ``SMS`` (TS 31.115): the CPI/RPI is not a byte but the UDH IEI 70/71 (added by :mod:`gpchannel.ota.sms`), the
  CPL/RPL is 2 bytes, CHI/RHI are absent. The command CC covers CPL..end; the response CC also covers the UDH
  ``02 71 00`` (:data:`SMS_RESPONSE_UDH`), which makes the data in front of the CC a multiple of 8 bytes.
- ``GENERIC`` (TS 102 225 for CAT_TP and TCP/IP): CPI ``01`` / RPI ``02``, a BER length, CHI/RHI absent (null),
  a 1-byte CHL/RHL; the CC covers everything from the CPI/RPI. This dialect is implemented as the public
  implementations describe it (ota-notes A.1, [C]); no vector of it was available.

Layouts (SMS)::

    command:  CPL(2) CHL(1) SPI(2) KIc(1) KID(1) TAR(3) | CNTR(5) PCNTR(1) RC/CC/DS(L) data padding
    response: RPL(2) RHL(1) TAR(3) | CNTR(5) PCNTR(1) status(1) RC/CC/DS(L) data padding

CHL = 13 + L and RHL = 10 + L; everything after the bar is the secured part (ciphered when the SPI says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gpchannel.codec.tlv import decode_length, encode_length
from gpchannel.errors import DecodeError
from gpchannel.ota.spi import Kic, Kid, Spi

__all__ = [
    "COMMAND_HEADER_MIN",
    "RESPONSE_HEADER_MIN",
    "SMS_COMMAND_UDH",
    "SMS_RESPONSE_UDH",
    "CommandPacket",
    "PacketLayout",
    "ResponsePacket",
    "command_length_field",
    "response_length_field",
]

COMMAND_HEADER_MIN = 13
"""CHL without RC/CC/DS: SPI(2) KIc(1) KID(1) TAR(3) CNTR(5) PCNTR(1)."""
RESPONSE_HEADER_MIN = 10
"""RHL without RC/CC/DS: TAR(3) CNTR(5) PCNTR(1) status(1)."""
SMS_COMMAND_UDH = b"\x02\x70\x00"
"""The user data header of a single-SM command packet: UDHL 02, IEI 70 (CPI), IEIDL 00 (TS 31.115 4.2)."""
SMS_RESPONSE_UDH = b"\x02\x71\x00"
"""The user data header of a response packet: UDHL 02, IEI 71 (RPI), IEIDL 00 (TS 31.115 4.4)."""

_CPI = 0x01
_HEADERS: dict[tuple[int, int, int, int], tuple[Spi, Kic, Kid, bytes]] = {}
"""CHL SPI KIc KID of the packets built or read, by the identities of their SPI, KIc and KID and L."""
_HEADERS_MAX = 256
_RPI = 0x02
_TAR_LEN = 3


class PacketLayout(Enum):
    """Which dialect of the packet layout (see the module docstring)."""

    SMS = "SMS"
    GENERIC = "GENERIC"


def _read_outer(raw: bytes, transport: PacketLayout, identifier: int, what: str) -> tuple[bytes, int]:
    """Check the packet length field; return ``(body, offset of the body in raw)`` where body is CHL/RHL..end."""
    if transport is PacketLayout.SMS:
        if len(raw) < 2:
            raise DecodeError(f"{what}: truncated length field (2 bytes)", offset=len(raw))
        length, start = int.from_bytes(raw[:2], "big"), 2
    else:
        if not raw:
            raise DecodeError(f"{what}: identifier missing", offset=0)
        if raw[0] != identifier:
            raise DecodeError(f"{what}: identifier {raw[0]:02X}, expected {identifier:02X}", offset=0)
        length, start = decode_length(raw, 1)
    if len(raw) - start < length:
        raise DecodeError(f"{what}: length field says {length} bytes, only {len(raw) - start} follow", len(raw))
    if len(raw) - start > length:
        raise DecodeError(f"{what}: {len(raw) - start - length} bytes beyond the declared length", start + length)
    return raw[start:], start


def command_length_field(transport: PacketLayout, length: int) -> bytes:
    """What precedes CHL: CPL (SMS, 2 bytes) or CPI ``01`` and a BER length (generic), for ``length`` bytes."""
    return _outer_prefix(transport, _CPI, length)


def response_length_field(transport: PacketLayout, length: int) -> bytes:
    """What precedes RHL: RPL (SMS, 2 bytes) or RPI ``02`` and a BER length (generic), for ``length`` bytes."""
    return _outer_prefix(transport, _RPI, length)


def _outer_prefix(transport: PacketLayout, identifier: int, length: int) -> bytes:
    if transport is PacketLayout.SMS:
        if length > 0xFFFF:
            raise ValueError(f"an SMS packet length is 2 bytes, got {length}")
        return length.to_bytes(2, "big")
    return bytes((identifier,)) + encode_length(length)


@dataclass(frozen=True, slots=True)
class CommandPacket:
    """A command packet as it travels (TS 102 225 5.1): clear header plus the opaque secured part.

    ``check_length`` is L, the length of RC/CC/DS (CHL = 13 + L); ``secured`` is CNTR..end, ciphered when
    ``spi.ciphered``. Build one with :func:`gpchannel.ota.scp80.secure_command`; read it with
    :func:`gpchannel.ota.scp80.unsecure_command`.
    """

    spi: Spi
    kic: Kic
    kid: Kid
    tar: bytes
    check_length: int
    secured: bytes
    transport: PacketLayout = PacketLayout.SMS

    def __post_init__(self) -> None:
        if len(self.tar) != _TAR_LEN:
            raise ValueError(f"TAR is 3 bytes, got {len(self.tar)}")
        if not 0 <= self.check_length <= 0xFF - COMMAND_HEADER_MIN:
            raise ValueError(f"check_length must be 0..{0xFF - COMMAND_HEADER_MIN}, got {self.check_length}")
        if len(self.secured) < 6 + self.check_length:
            raise ValueError(f"the secured part holds at least CNTR, PCNTR and RC/CC/DS ({6 + self.check_length})")

    @property
    def chl(self) -> int:
        return COMMAND_HEADER_MIN + self.check_length

    def header_bytes(self) -> bytes:
        """CHL SPI KIc KID TAR: the clear part after the packet length."""
        slot = (id(self.spi), id(self.kic), id(self.kid), self.check_length)
        found = _HEADERS.get(slot)
        if found is None:
            head = bytes((self.chl,)) + self.spi.to_bytes() + self.kic.to_bytes() + self.kid.to_bytes()
            if len(_HEADERS) >= _HEADERS_MAX:
                _HEADERS.clear()
            # The objects are kept with their bytes, so that their identities are not reused meanwhile.
            found = _HEADERS[slot] = (self.spi, self.kic, self.kid, head)
        return found[3] + self.tar

    def to_bytes(self) -> bytes:
        body = self.header_bytes() + self.secured
        if self.transport is PacketLayout.SMS and len(body) <= 0xFFFF:
            return len(body).to_bytes(2, "big") + body
        return _outer_prefix(self.transport, _CPI, len(body)) + body

    @classmethod
    def from_bytes(cls, raw: bytes, transport: PacketLayout = PacketLayout.SMS) -> CommandPacket:
        """Decode the clear header; :class:`DecodeError` with the offset for truncated or oversized input."""
        if transport is PacketLayout.SMS and len(raw) >= 2 and (raw[0] << 8 | raw[1]) == len(raw) - 2:
            body, start = raw[2:], 2
        else:
            body, start = _read_outer(raw, transport, _CPI, "command packet")
        if not body:
            raise DecodeError("command packet: CHL missing", offset=start)
        chl = body[0]
        if chl < COMMAND_HEADER_MIN:
            raise DecodeError(f"command packet: CHL {chl} is below the minimum {COMMAND_HEADER_MIN}", offset=start)
        if len(body) < 8:
            raise DecodeError("command packet: truncated header (SPI, KIc, KID, TAR)", offset=start + len(body))
        # The secured part holds at least CNTR, PCNTR and the RC/CC/DS (CHL - 7 bytes), ciphered or not.
        if len(body) - 8 < chl - 7:
            raise DecodeError(
                f"command packet: CHL {chl} needs {chl - 7} bytes after TAR, only {len(body) - 8}",
                offset=start + len(body),
            )
        spi = _spi_at(body[1:3], start + 1)
        return cls(
            spi=spi,
            kic=Kic.from_bytes(body[3:4]),
            kid=Kid.from_bytes(body[4:5]),
            tar=body[5:8],
            check_length=chl - COMMAND_HEADER_MIN,
            secured=body[8:],
            transport=transport,
        )


@dataclass(frozen=True, slots=True)
class ResponsePacket:
    """A response packet (PoR) as it travels (TS 102 225 5.2), without the SMS UDH ``02 71 00``.

    ``check_length`` is L (RHL = 10 + L); ``secured`` is CNTR..end, ciphered when the command's SPI2 said so.
    """

    tar: bytes
    check_length: int
    secured: bytes
    transport: PacketLayout = PacketLayout.SMS

    def __post_init__(self) -> None:
        if len(self.tar) != _TAR_LEN:
            raise ValueError(f"TAR is 3 bytes, got {len(self.tar)}")
        if not 0 <= self.check_length <= 0xFF - RESPONSE_HEADER_MIN:
            raise ValueError(f"check_length must be 0..{0xFF - RESPONSE_HEADER_MIN}, got {self.check_length}")
        if len(self.secured) < 7 + self.check_length:
            raise ValueError(f"the secured part holds at least CNTR, PCNTR, status, RC/CC/DS ({7 + self.check_length})")

    @property
    def rhl(self) -> int:
        return RESPONSE_HEADER_MIN + self.check_length

    def to_bytes(self) -> bytes:
        body = bytes((self.rhl,)) + self.tar + self.secured
        return _outer_prefix(self.transport, _RPI, len(body)) + body

    @classmethod
    def from_bytes(cls, raw: bytes, transport: PacketLayout = PacketLayout.SMS) -> ResponsePacket:
        """Decode (SMS: starting at RPL, the UDH already removed); :class:`DecodeError` on bad lengths."""
        body, start = _read_outer(raw, transport, _RPI, "response packet")
        if not body:
            raise DecodeError("response packet: RHL missing", offset=start)
        rhl = body[0]
        if rhl < RESPONSE_HEADER_MIN:
            raise DecodeError(f"response packet: RHL {rhl} is below the minimum {RESPONSE_HEADER_MIN}", start)
        if len(body) < 4 or len(body) - 4 < rhl - 3:
            raise DecodeError(
                f"response packet: RHL {rhl} needs {rhl + 1} header bytes, only {len(body)}", start + len(body)
            )
        return cls(tar=body[1:4], check_length=rhl - RESPONSE_HEADER_MIN, secured=body[4:], transport=transport)


def _spi_at(raw: bytes, offset: int) -> Spi:
    b1, b2 = raw
    if b1 & 0xE0 or b2 & 0xC0:
        bad = offset if b1 & 0xE0 else offset + 1
        raise DecodeError(f"command packet: SPI {raw.hex().upper()} has reserved bits set", offset=bad)
    return Spi.from_bytes(raw)
