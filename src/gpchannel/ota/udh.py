"""User data headers for SMS-PP OTA: the CPI/RPI information elements and concatenated short messages.

3GPP TS 23.040 9.2.3.24 (TP-User-Data-Header: UDHL, then IEI / IEDL / IED), 9.2.3.24.1 (IEI 00, concatenated
SM with an 8-bit reference) and 9.2.3.24.8 (IEI 08, 16-bit reference); TS 31.115 4.2/4.4 (IEI 70 = command
packet identifier, IEI 71 = response packet identifier, both with no data).

A packet that does not fit one SM (140 octets of TP-UD) is split into concatenated SMs. Layout chosen (the
31.115 text was not available; ota-notes A.6 and F.3, [M]): every segment carries the concatenation IE; only
the first also carries IEI 70 (or 71), right after it; the payloads are the packet's consecutive slices. The
receiving entity reassembles them first; CPL and the RC/CC cover the whole packet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpchannel.errors import DecodeError

__all__ = [
    "IEI_COMMAND_PACKET",
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "IEI_RESPONSE_PACKET",
    "MAX_USER_DATA",
    "Concatenation",
    "InformationElement",
    "Reassembler",
    "SecuredMessage",
    "build_udh",
    "parse_udh",
    "secured_message",
    "split_packet",
]

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08
IEI_COMMAND_PACKET = 0x70
IEI_RESPONSE_PACKET = 0x71
MAX_USER_DATA = 140
"""Octets of TP-UD in one short message (8-bit data)."""


@dataclass(frozen=True, slots=True)
class InformationElement:
    iei: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.iei <= 0xFF:
            raise ValueError(f"iei must be a byte, got {self.iei}")
        if len(self.data) > 0xFF:
            raise ValueError(f"an information element holds at most 255 octets, got {len(self.data)}")

    def to_bytes(self) -> bytes:
        return bytes((self.iei, len(self.data))) + self.data


def build_udh(elements: Sequence[InformationElement]) -> bytes:
    """UDHL followed by the information elements."""
    body = b"".join(e.to_bytes() for e in elements)
    if len(body) > 0xFF:
        raise ValueError(f"a UDH holds at most 255 octets, got {len(body)}")
    return bytes((len(body),)) + body


def parse_udh(user_data: bytes) -> tuple[tuple[InformationElement, ...], bytes]:
    """Split TP-UD (with TP-UDHI set) into its information elements and the rest of the user data."""
    if not user_data:
        raise DecodeError("UDH: UDHL expected", offset=0)
    end = 1 + user_data[0]
    if end > len(user_data):
        raise DecodeError(f"UDH: UDHL {user_data[0]} exceeds the user data", offset=len(user_data))
    elements = []
    offset = 1
    while offset < end:
        if offset + 2 > end:
            raise DecodeError("UDH: truncated information element header", offset=offset)
        length = user_data[offset + 1]
        if offset + 2 + length > end:
            raise DecodeError(f"UDH: IE {user_data[offset]:02X} overruns the UDH", offset=offset + 1)
        elements.append(InformationElement(user_data[offset], user_data[offset + 2 : offset + 2 + length]))
        offset += 2 + length
    return tuple(elements), user_data[end:]


@dataclass(frozen=True, slots=True)
class Concatenation:
    """The concatenated-SM IE: reference, total number of segments and this segment's number (1-based)."""

    reference: int
    total: int
    sequence: int
    wide: bool = False
    """16-bit reference (IEI 08) rather than 8-bit (IEI 00)."""

    def __post_init__(self) -> None:
        if not 0 <= self.reference <= (0xFFFF if self.wide else 0xFF):
            raise ValueError(f"reference {self.reference} does not fit {'16' if self.wide else '8'} bits")
        if not 1 <= self.sequence <= self.total <= 0xFF:
            raise ValueError(f"need 1 <= sequence ({self.sequence}) <= total ({self.total}) <= 255")

    def element(self) -> InformationElement:
        if self.wide:
            return InformationElement(
                IEI_CONCAT_16BIT, bytes((self.reference >> 8, self.reference & 0xFF, self.total, self.sequence))
            )
        return InformationElement(IEI_CONCAT_8BIT, bytes((self.reference, self.total, self.sequence)))

    @classmethod
    def from_element(cls, element: InformationElement) -> Concatenation:
        wide = element.iei == IEI_CONCAT_16BIT
        if element.iei not in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT) or len(element.data) != (4 if wide else 3):
            raise DecodeError(f"IE {element.iei:02X} is not a well-formed concatenation IE")
        ref = int.from_bytes(element.data[:-2], "big")
        total, seq = element.data[-2], element.data[-1]
        if not 1 <= seq <= total:
            raise DecodeError(f"concatenation: segment {seq} of {total}")
        return cls(ref, total, seq, wide)


def split_packet(
    packet: bytes, *, response: bool = False, reference: int = 0, wide_reference: bool = False
) -> list[bytes]:
    """The TP-UD of each SM carrying ``packet`` (a command packet from CPL, or a response packet from RPL).

    One SM when it fits (``02 70 00`` + packet); otherwise concatenated SMs with ``reference`` (chosen by the
    caller, who keeps references unique per destination).
    """
    identifier = InformationElement(IEI_RESPONSE_PACKET if response else IEI_COMMAND_PACKET)
    single = build_udh([identifier]) + packet
    if len(single) <= MAX_USER_DATA:
        return [single]
    probe = Concatenation(reference, 1, 1, wide_reference).element()
    first_room = MAX_USER_DATA - len(build_udh([probe, identifier]))
    room = MAX_USER_DATA - len(build_udh([probe]))
    rest = packet[first_room:]
    total = 1 + -(-len(rest) // room)
    if total > 0xFF:
        raise ValueError(f"{len(packet)} bytes need {total} segments, at most 255")
    slices = [packet[:first_room]] + [rest[i : i + room] for i in range(0, len(rest), room)]
    out = []
    for seq, chunk in enumerate(slices, start=1):
        concat = Concatenation(reference, total, seq, wide_reference).element()
        out.append(build_udh([concat, identifier] if seq == 1 else [concat]) + chunk)
    return out


@dataclass(frozen=True, slots=True)
class SecuredMessage:
    """A whole secured packet out of one or more SMs: ``response`` tells IEI 71 from IEI 70."""

    packet: bytes
    response: bool = False


def _identifier(elements: Sequence[InformationElement]) -> bool | None:
    found = [e for e in elements if e.iei in (IEI_COMMAND_PACKET, IEI_RESPONSE_PACKET)]
    if len(found) > 1:
        raise DecodeError("UDH: more than one command/response packet identifier")
    if found and found[0].data:
        raise DecodeError(f"UDH: IE {found[0].iei:02X} must have no data")
    return None if not found else found[0].iei == IEI_RESPONSE_PACKET


def _concatenation(elements: Sequence[InformationElement]) -> Concatenation | None:
    found = [e for e in elements if e.iei in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT)]
    if len(found) > 1:
        raise DecodeError("UDH: more than one concatenation IE")
    return Concatenation.from_element(found[0]) if found else None


def secured_message(user_data: bytes) -> SecuredMessage:
    """The packet in a single (not concatenated) SM's TP-UD; :class:`DecodeError` if it is not one."""
    elements, rest = parse_udh(user_data)
    response = _identifier(elements)
    if response is None:
        raise DecodeError("UDH: no command (70) or response (71) packet identifier")
    concat = _concatenation(elements)
    if concat is not None and concat.total != 1:
        raise DecodeError("segment of a concatenated SM: use a Reassembler")
    return SecuredMessage(rest, response)


class Reassembler:
    """Collects concatenated SMs and returns the packet once all segments are in (sans-I/O: the caller feeds
    TP-UD and an originator key; nothing is timed out here, the caller calls :meth:`discard`).

    At most ``max_pending`` messages are kept open; one more raises :class:`DecodeError` (memory bound).
    """

    def __init__(self, max_pending: int = 8) -> None:
        self._max_pending = max_pending
        self._pending: dict[tuple[str, int, bool, int], dict[int, tuple[bytes, bool | None]]] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def discard(self, originator: str = "") -> None:
        """Drop every incomplete message of ``originator``."""
        for key in [k for k in self._pending if k[0] == originator]:
            del self._pending[key]

    def feed(self, user_data: bytes, originator: str = "") -> SecuredMessage | None:
        """Add one SM's TP-UD; returns the packet when complete, else ``None``."""
        elements, rest = parse_udh(user_data)
        concat = _concatenation(elements)
        response = _identifier(elements)
        if concat is None or concat.total == 1:
            if response is None:
                raise DecodeError("UDH: no command (70) or response (71) packet identifier")
            return SecuredMessage(rest, response)
        if (concat.sequence == 1) != (response is not None):
            raise DecodeError("concatenation: the packet identifier belongs in the first segment only")
        key = (originator, concat.reference, concat.wide, concat.total)
        segments = self._pending.get(key)
        if segments is None:
            if len(self._pending) >= self._max_pending:
                raise DecodeError(f"more than {self._max_pending} concatenated messages pending")
            segments = self._pending[key] = {}
        if concat.sequence in segments:
            if segments[concat.sequence] != (rest, response):
                del self._pending[key]
                raise DecodeError(f"concatenation: segment {concat.sequence} received twice, differently")
            return None
        segments[concat.sequence] = (rest, response)
        if len(segments) < concat.total:
            return None
        del self._pending[key]
        first = segments[1][1]
        assert first is not None
        return SecuredMessage(b"".join(segments[i][0] for i in range(1, concat.total + 1)), first)
