"""SMS TPDUs for SMS-PP data download: SMS-DELIVER, SMS-SUBMIT, SMS-DELIVER-REPORT, and their addresses.

3GPP TS 23.040 9.2.2.1 (SMS-DELIVER), 9.2.2.1a (SMS-DELIVER-REPORT), 9.2.2.2 (SMS-SUBMIT), 9.1.2.5 (address
fields), 9.2.3.10 and TS 23.038 4 (TP-DCS), 9.2.3.16 (TP-UDL). An OTA command travels in an SMS-DELIVER with
TP-PID ``7F`` ((U)SIM data download), TP-DCS ``F6`` (8-bit, class 2; ``16`` is the same in the general coding
group) and TP-UDHI set; its PoR goes back in the SMS-DELIVER-REPORT or in an SMS-SUBMIT (TS 31.115 4.4).

``user_data`` is always the TP-UD octets, UDH included (see :mod:`gpchannel.ota.udh`). For the GSM 7-bit
alphabet TP-UDL counts septets and cannot be derived from the octets, so it is kept in ``septets``; for 8-bit and
UCS2 data ``septets`` is ``None`` and TP-UDL is the octet count. Decoders are strict: input beyond TP-UD, or a
TP-UDL beyond the input, raises :class:`DecodeError` with its offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from gpchannel.errors import DecodeError

__all__ = [
    "PID_SIM_DATA_DOWNLOAD",
    "Address",
    "Alphabet",
    "SmsDeliver",
    "SmsDeliverReport",
    "SmsSubmit",
    "TypeOfNumber",
    "ValidityPeriodFormat",
    "dcs_alphabet",
]

PID_SIM_DATA_DOWNLOAD = 0x7F
_SEMI_OCTETS = "0123456789*#abcf"


class TypeOfNumber(IntEnum):
    """TS 23.040 9.1.2.5 / TS 24.008 10.5.4.7: type of number (bits 7..5 of the TON/NPI octet)."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6
    RESERVED = 7


@dataclass(frozen=True, slots=True)
class Address:
    """An address: its semi-octets as ``digits`` (``0-9``, ``*`` ``#`` ``a`` ``b`` ``c`` for A..E, ``f`` for a
    nibble F that is not the filler), a type of number and a numbering plan (``npi``: 1 = ISDN/E.164).

    For an alphanumeric address (TON 5) the digits are the GSM 7-bit packed octets as semi-octets, low nibble
    first, exactly as they travel.
    """

    digits: str
    ton: TypeOfNumber = TypeOfNumber.INTERNATIONAL
    npi: int = 1

    def __post_init__(self) -> None:
        bad = [c for c in self.digits if c not in _SEMI_OCTETS]
        if bad:
            raise ValueError(f"address digits must be among {_SEMI_OCTETS!r}, got {bad[0]!r}")
        if not 0 <= self.npi <= 15:
            raise ValueError(f"npi must be 0..15, got {self.npi}")
        if len(self.digits) > 20:
            raise ValueError(f"an address has at most 20 semi-octets, got {len(self.digits)}")

    @property
    def type_octet(self) -> int:
        return 0x80 | (self.ton << 4) | self.npi

    def _bcd(self) -> bytes:
        nibbles = [_SEMI_OCTETS.index(c) for c in self.digits]
        if len(nibbles) % 2:
            nibbles.append(0xF)
        return bytes(nibbles[i] | (nibbles[i + 1] << 4) for i in range(0, len(nibbles), 2))

    def to_bytes(self) -> bytes:
        """TP address field (TS 23.040 9.1.2.5): semi-octet count, TON/NPI, swapped BCD with F filler."""
        return bytes((len(self.digits), self.type_octet)) + self._bcd()

    def to_sc_bytes(self) -> bytes:
        """TON/NPI and BCD only (the value of a TS 102 223 8.1 Address TLV, or an RP address without length)."""
        return bytes((self.type_octet,)) + self._bcd()

    @classmethod
    def decode(cls, raw: bytes, offset: int = 0) -> tuple[Address, int]:
        """Decode a TP address field at ``offset``; returns ``(address, offset after it)``."""
        if offset + 2 > len(raw):
            raise DecodeError("address: length and TON/NPI expected", offset=len(raw))
        count, type_octet = raw[offset], raw[offset + 1]
        if count > 20:
            raise DecodeError(f"address: {count} semi-octets, at most 20", offset=offset)
        end = offset + 2 + (count + 1) // 2
        if end > len(raw):
            raise DecodeError(f"address: {count} semi-octets do not fit", offset=len(raw))
        return cls._from_semi_octets(raw[offset + 2 : end], count, type_octet, offset), end

    @classmethod
    def from_bytes(cls, raw: bytes) -> Address:
        address, end = cls.decode(raw)
        if end != len(raw):
            raise DecodeError(f"address: {len(raw) - end} bytes after the address field", offset=end)
        return address

    @classmethod
    def from_sc_bytes(cls, raw: bytes) -> Address:
        """Inverse of :meth:`to_sc_bytes` (an F in the last high nibble is the filler)."""
        if not raw:
            raise DecodeError("address: TON/NPI expected", offset=0)
        count = 2 * (len(raw) - 1)
        if len(raw) > 1 and raw[-1] >> 4 == 0xF:
            count -= 1
        if count > 20:
            raise DecodeError(f"address: {count} semi-octets, at most 20", offset=0)
        return cls._from_semi_octets(raw[1:], count, raw[0], 0)

    @classmethod
    def _from_semi_octets(cls, octets: bytes, count: int, type_octet: int, offset: int) -> Address:
        if not type_octet & 0x80:
            raise DecodeError(f"address: TON/NPI octet {type_octet:02X} lacks bit 8", offset=offset + 1)
        nibbles = [n for b in octets for n in (b & 0xF, b >> 4)]
        if count % 2 and nibbles[-1] != 0xF:
            raise DecodeError("address: the filler of an odd address must be F", offset=offset + 1 + len(octets))
        digits = "".join(_SEMI_OCTETS[n] for n in nibbles[:count])
        return cls(digits, TypeOfNumber((type_octet >> 4) & 7), type_octet & 0xF)


class Alphabet(Enum):
    GSM7 = "GSM 7-bit"
    EIGHT_BIT = "8-bit"
    UCS2 = "UCS2"


def dcs_alphabet(dcs: int) -> Alphabet:
    """The character set of TP-DCS (TS 23.038 4). Compressed data counts in octets, like 8-bit data."""
    group = dcs >> 4
    if group < 8:  # general data coding (00xx) and automatic deletion (01xx)
        if dcs & 0x20:
            return Alphabet.EIGHT_BIT
        return (Alphabet.GSM7, Alphabet.EIGHT_BIT, Alphabet.UCS2, Alphabet.GSM7)[(dcs >> 2) & 3]
    if group == 0xE:
        return Alphabet.UCS2
    if group == 0xF:
        return Alphabet.EIGHT_BIT if dcs & 0x04 else Alphabet.GSM7
    return Alphabet.GSM7


def _udl(dcs: int, user_data: bytes, septets: int | None) -> int:
    if dcs_alphabet(dcs) is Alphabet.GSM7:
        if septets is None or (septets * 7 + 7) // 8 != len(user_data):
            raise ValueError("GSM 7-bit user data needs its septet count, consistent with the octets")
        return septets
    if septets is not None:
        raise ValueError("septets is only for GSM 7-bit user data")
    return len(user_data)


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be a byte, got {value}")


def _read_ud(raw: bytes, offset: int, dcs: int) -> tuple[bytes, int | None]:
    if offset >= len(raw):
        raise DecodeError("TP-UDL expected", offset=len(raw))
    udl = raw[offset]
    gsm7 = dcs_alphabet(dcs) is Alphabet.GSM7
    octets = (udl * 7 + 7) // 8 if gsm7 else udl
    if (gsm7 and udl > 160) or (not gsm7 and udl > 140):
        raise DecodeError(f"TP-UDL {udl} exceeds one short message", offset=offset)
    start = offset + 1
    if start + octets > len(raw):
        raise DecodeError(f"TP-UDL says {octets} octets, {len(raw) - start} follow", offset=len(raw))
    if start + octets < len(raw):
        raise DecodeError(f"{len(raw) - start - octets} bytes after TP-UD", offset=start + octets)
    return raw[start:], (udl if gsm7 else None)


def _need(raw: bytes, offset: int, n: int, what: str) -> None:
    if offset + n > len(raw):
        raise DecodeError(f"{what} expected", offset=len(raw))


@dataclass(frozen=True, slots=True)
class SmsDeliver:
    """SMS-DELIVER TPDU (TS 23.040 9.2.2.1), SC to MS. Defaults are those of an OTA command (PID 7F, DCS F6,
    UDHI). ``no_more_messages`` is TP-MMS (bit 3 set = no more messages waiting)."""

    originator: Address
    user_data: bytes
    scts: bytes = bytes(7)
    pid: int = PID_SIM_DATA_DOWNLOAD
    dcs: int = 0xF6
    udhi: bool = True
    no_more_messages: bool = False
    loop_prevention: bool = False
    status_report_indication: bool = False
    reply_path: bool = False
    septets: int | None = None

    def __post_init__(self) -> None:
        if len(self.scts) != 7:
            raise ValueError(f"TP-SCTS is 7 octets, got {len(self.scts)}")
        _check_byte("pid", self.pid)
        _check_byte("dcs", self.dcs)
        _udl(self.dcs, self.user_data, self.septets)

    def to_bytes(self) -> bytes:
        first = (
            (0x04 if self.no_more_messages else 0)
            | (0x08 if self.loop_prevention else 0)
            | (0x20 if self.status_report_indication else 0)
            | (0x40 if self.udhi else 0)
            | (0x80 if self.reply_path else 0)
        )
        udl = _udl(self.dcs, self.user_data, self.septets)
        return (
            bytes((first,))
            + self.originator.to_bytes()
            + bytes((self.pid, self.dcs))
            + self.scts
            + bytes((udl,))
            + self.user_data
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SmsDeliver:
        _need(raw, 0, 1, "first octet")
        first = raw[0]
        if first & 0x03 != 0:
            raise DecodeError(f"TP-MTI {first & 3} is not SMS-DELIVER (0)", offset=0)
        originator, offset = Address.decode(raw, 1)
        _need(raw, offset, 9, "TP-PID, TP-DCS, TP-SCTS")
        pid, dcs, scts = raw[offset], raw[offset + 1], raw[offset + 2 : offset + 9]
        user_data, septets = _read_ud(raw, offset + 9, dcs)
        return cls(
            originator,
            user_data,
            scts,
            pid,
            dcs,
            udhi=bool(first & 0x40),
            no_more_messages=bool(first & 0x04),
            loop_prevention=bool(first & 0x08),
            status_report_indication=bool(first & 0x20),
            reply_path=bool(first & 0x80),
            septets=septets,
        )


class ValidityPeriodFormat(IntEnum):
    """TP-VPF (TS 23.040 9.2.3.3), bits 4..3 of an SMS-SUBMIT's first octet."""

    ABSENT = 0
    ENHANCED = 1
    RELATIVE = 2
    ABSOLUTE = 3


_VP_LENGTH = {
    ValidityPeriodFormat.ABSENT: 0,
    ValidityPeriodFormat.ENHANCED: 7,
    ValidityPeriodFormat.RELATIVE: 1,
    ValidityPeriodFormat.ABSOLUTE: 7,
}


@dataclass(frozen=True, slots=True)
class SmsSubmit:
    """SMS-SUBMIT TPDU (TS 23.040 9.2.2.2), MS to SC: how a card sends a PoR with SEND SHORT MESSAGE when SPI2
    asks for it (TS 31.115 4.4), to the TP-OA of the command."""

    destination: Address
    user_data: bytes
    message_reference: int = 0
    pid: int = PID_SIM_DATA_DOWNLOAD
    dcs: int = 0xF6
    udhi: bool = True
    validity_period_format: ValidityPeriodFormat = ValidityPeriodFormat.ABSENT
    validity_period: bytes = b""
    reject_duplicates: bool = False
    status_report_request: bool = False
    reply_path: bool = False
    septets: int | None = None

    def __post_init__(self) -> None:
        for name in ("message_reference", "pid", "dcs"):
            _check_byte(name, getattr(self, name))
        if len(self.validity_period) != _VP_LENGTH[self.validity_period_format]:
            raise ValueError(
                f"a {self.validity_period_format.name} TP-VP has {_VP_LENGTH[self.validity_period_format]} octets"
            )
        _udl(self.dcs, self.user_data, self.septets)

    def to_bytes(self) -> bytes:
        first = (
            0x01
            | (0x04 if self.reject_duplicates else 0)
            | (self.validity_period_format << 3)
            | (0x20 if self.status_report_request else 0)
            | (0x40 if self.udhi else 0)
            | (0x80 if self.reply_path else 0)
        )
        udl = _udl(self.dcs, self.user_data, self.septets)
        return (
            bytes((first, self.message_reference))
            + self.destination.to_bytes()
            + bytes((self.pid, self.dcs))
            + self.validity_period
            + bytes((udl,))
            + self.user_data
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> SmsSubmit:
        _need(raw, 0, 2, "first octet and TP-MR")
        first = raw[0]
        if first & 0x03 != 1:
            raise DecodeError(f"TP-MTI {first & 3} is not SMS-SUBMIT (1)", offset=0)
        destination, offset = Address.decode(raw, 2)
        vpf = ValidityPeriodFormat((first >> 3) & 3)
        _need(raw, offset, 2 + _VP_LENGTH[vpf], "TP-PID, TP-DCS, TP-VP")
        pid, dcs = raw[offset], raw[offset + 1]
        vp_end = offset + 2 + _VP_LENGTH[vpf]
        user_data, septets = _read_ud(raw, vp_end, dcs)
        return cls(
            destination,
            user_data,
            raw[1],
            pid,
            dcs,
            udhi=bool(first & 0x40),
            validity_period_format=vpf,
            validity_period=raw[offset + 2 : vp_end],
            reject_duplicates=bool(first & 0x04),
            status_report_request=bool(first & 0x20),
            reply_path=bool(first & 0x80),
            septets=septets,
        )


@dataclass(frozen=True, slots=True)
class SmsDeliverReport:
    """SMS-DELIVER-REPORT TPDU (TS 23.040 9.2.2.1a), MS to SC, in RP-ACK (``failure_cause`` None) or RP-ERROR.

    With SPI2 b6 = 0 the PoR travels here: the ME puts the ENVELOPE's response data in TP-UD (TS 31.111 7.1.1;
    ota-notes A.6: RP-ERROR with TP-FCS ``D5`` when the card answered 62xx/63xx, ``D4`` for 9300: [M]).
    ``pid``/``dcs`` ``None`` leave them out (TP-PI); no ``user_data`` and ``pid``/``dcs`` None give an empty PI.
    """

    user_data: bytes = b""
    failure_cause: int | None = None
    pid: int | None = PID_SIM_DATA_DOWNLOAD
    dcs: int | None = 0xF6
    udhi: bool = True
    septets: int | None = None

    def __post_init__(self) -> None:
        if self.failure_cause is not None:
            _check_byte("failure_cause", self.failure_cause)
        if self.user_data or self.septets is not None:
            _udl(0 if self.dcs is None else self.dcs, self.user_data, self.septets)

    def to_bytes(self) -> bytes:
        has_ud = bool(self.user_data) or self.septets is not None
        pi = (self.pid is not None) | ((self.dcs is not None) << 1) | (has_ud << 2)
        out = bytearray((0x40 if self.udhi else 0,))
        if self.failure_cause is not None:
            out.append(self.failure_cause)
        out.append(pi)
        if self.pid is not None:
            out.append(self.pid)
        if self.dcs is not None:
            out.append(self.dcs)
        if has_ud:
            out.append(_udl(0 if self.dcs is None else self.dcs, self.user_data, self.septets))
            out += self.user_data
        return bytes(out)

    @classmethod
    def from_bytes(cls, raw: bytes, *, error: bool = False) -> SmsDeliverReport:
        """Decode; ``error`` says whether it came in an RP-ERROR (then TP-FCS follows the first octet)."""
        _need(raw, 0, 1, "first octet")
        if raw[0] & 0x03 != 0:
            raise DecodeError(f"TP-MTI {raw[0] & 3} is not SMS-DELIVER-REPORT (0)", offset=0)
        offset = 1
        fcs = None
        if error:
            _need(raw, offset, 1, "TP-FCS")
            fcs = raw[offset]
            offset += 1
        _need(raw, offset, 1, "TP-PI")
        pi = raw[offset]
        offset += 1
        pid = dcs = None
        if pi & 1:
            _need(raw, offset, 1, "TP-PID")
            pid, offset = raw[offset], offset + 1
        if pi & 2:
            _need(raw, offset, 1, "TP-DCS")
            dcs, offset = raw[offset], offset + 1
        user_data, septets = b"", None
        if pi & 4:
            user_data, septets = _read_ud(raw, offset, 0 if dcs is None else dcs)
        elif offset != len(raw):
            raise DecodeError(f"{len(raw) - offset} bytes after the last parameter", offset=offset)
        return cls(user_data, fcs, pid, dcs, udhi=bool(raw[0] & 0x40), septets=septets)
