"""Remote APDU structures: the application data of an SCP80 packet for RAM and RFM.

ETSI TS 102 226 5.1 (compact format) and 5.2 (expanded format), tags from TS 101 220.

**Compact** (5.1.1): the command data is a plain concatenation of C-APDUs in their T=0 form, ``CLA INS P1 P2 P3``
with P3 either Lc (then the data) or Le, never both (a case-4 command loses its Le: the card answers it like
T=0, and the response comes back in the compact response). Telling Lc from Le needs the instruction, so the
decoder takes an ``outgoing`` predicate (:func:`is_outgoing`: READ BINARY, READ RECORD, GET RESPONSE, GET DATA
``CA``, FETCH, GET CHALLENGE, and STATUS when P1 < 10). The response (5.1.2) is the number of executed commands,
SW1 SW2 of the last one, then its response data.

**Expanded** (5.2): a command scripting template, ``AA`` (definite length) or ``AE 80 .. 00 00`` (indefinite),
holding C-APDU TLVs (``22``), immediate action (``81``), error action (``82``) and script chaining (``83``) TLVs.
The response scripting template ``AB`` / ``AF 80 .. 00 00`` holds the number of executed commands (``80``),
R-APDU TLVs (``23``: data + SW1 SW2), immediate action responses (``81``), script chaining responses (``83``)
and bad format TLVs (``90``). Inner TLVs use definite BER lengths. The value tables of 81/82/83/90 are kept as
raw bytes (ota-notes F.6: not confirmed); whether an ``AF`` response carries ``80`` is left to the caller
(``executed`` None leaves it out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import decode_length, encode_length
from gpchannel.errors import DecodeError, UnsupportedError

__all__ = [
    "BadFormat",
    "CApdu",
    "CommandItem",
    "CommandScript",
    "CompactResponse",
    "ErrorAction",
    "ImmediateAction",
    "ImmediateActionResponse",
    "RApdu",
    "ResponseItem",
    "ResponseScript",
    "ScriptChaining",
    "ScriptChainingResponse",
    "decode_compact",
    "encode_compact",
    "is_outgoing",
]

_OUTGOING_INS = frozenset({0xB0, 0xB2, 0xC0, 0xCA, 0x12, 0x84})


def is_outgoing(cla: int, ins: int, p1: int) -> bool:
    """Whether P3 of this T=0 command is Le (case 2) rather than Lc (cases 1, 3 and 4)."""
    del cla
    if ins == 0xF2:  # STATUS (TS 102 221 11.1.2, P1 00-02) vs GP GET STATUS (P1 80/40/20/10, with data)
        return p1 < 0x10
    return ins in _OUTGOING_INS


def encode_compact(apdus: Sequence[CommandApdu]) -> bytes:
    """The compact command string (TS 102 226 5.1.1): each APDU as ``CLA INS P1 P2 P3 [data]``.

    P3 is one byte (the T=0 TPDU of TS 102 221 7.3.1.1), so an APDU with more than 255 bytes of data or an Le
    above 256 cannot be written: :class:`UnsupportedError` names it and points to the expanded format, whose
    C-APDU TLV (5.2.1) holds the APDU as ISO/IEC 7816-4 codes it, extended lengths included. A case-4 APDU is
    sent as case 3 (T=0 carries no Le with data).
    """
    out = bytearray()
    for index, apdu in enumerate(apdus):
        if len(apdu.data) > 255 or (apdu.le is not None and apdu.le > 256):
            raise UnsupportedError(
                f"APDU {index + 1} ({apdu.header().hex().upper()}, {len(apdu.data)} data bytes, Le {apdu.le}) needs"
                " extended lengths, which the compact remote APDU format (ETSI TS 102 226 5.1.1: one-byte P3)"
                " cannot carry; use the expanded format or split the command"
            )
        out += apdu.header()
        if apdu.data:
            out += bytes((len(apdu.data),)) + apdu.data
        elif apdu.le is not None:
            out.append(apdu.le & 0xFF)
        else:
            out.append(0)
    return bytes(out)


def decode_compact(data: bytes, *, outgoing: Callable[[int, int, int], bool] = is_outgoing) -> tuple[CommandApdu, ...]:
    """Split a compact command string into APDUs; ``outgoing(cla, ins, p1)`` says when P3 is Le."""
    out = []
    offset = 0
    while offset < len(data):
        if offset + 5 > len(data):
            raise DecodeError("compact script: truncated C-APDU header (5 bytes)", offset=len(data))
        cla, ins, p1, p2, p3 = data[offset : offset + 5]
        if cla == 0xFF:
            raise DecodeError("CLA FF is invalid", offset=offset)
        if outgoing(cla, ins, p1):
            out.append(CommandApdu(cla, ins, p1, p2, le=p3 or 256))
            offset += 5
            continue
        end = offset + 5 + p3
        if end > len(data):
            raise DecodeError(f"compact script: Lc {p3} overruns the script", offset=offset + 4)
        out.append(CommandApdu(cla, ins, p1, p2, data=data[offset + 5 : end]))
        offset = end
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CompactResponse:
    """The compact response (TS 102 226 5.1.2): executed commands, then the last R-APDU's SW and data."""

    executed: int
    last: ResponseApdu

    def __post_init__(self) -> None:
        if not 0 <= self.executed <= 0xFF:
            raise ValueError(f"executed must be 0..255, got {self.executed}")

    def to_bytes(self) -> bytes:
        return bytes((self.executed,)) + self.last.sw.to_bytes(2, "big") + self.last.data

    @classmethod
    def from_bytes(cls, raw: bytes) -> CompactResponse:
        if len(raw) < 3:
            raise DecodeError(f"a compact response has at least 3 bytes, got {len(raw)}", offset=len(raw))
        return cls(raw[0], ResponseApdu(raw[3:], int.from_bytes(raw[1:3], "big")))


# --------------------------------------------------------------------------------------------- expanded format


@dataclass(frozen=True, slots=True)
class CApdu:
    """C-APDU TLV (tag 22)."""

    apdu: CommandApdu


@dataclass(frozen=True, slots=True)
class ImmediateAction:
    """Immediate action TLV (tag 81) in a command script."""

    value: bytes


@dataclass(frozen=True, slots=True)
class ErrorAction:
    """Error action TLV (tag 82): what to do when a command of the script fails."""

    value: bytes = b""


@dataclass(frozen=True, slots=True)
class ScriptChaining:
    """Script chaining TLV (tag 83) in a command script."""

    value: bytes


@dataclass(frozen=True, slots=True)
class RApdu:
    """R-APDU TLV (tag 23): response data and SW1 SW2."""

    response: ResponseApdu


@dataclass(frozen=True, slots=True)
class ImmediateActionResponse:
    """Immediate action response TLV (tag 81) in a response script."""

    value: bytes


@dataclass(frozen=True, slots=True)
class ScriptChainingResponse:
    """Script chaining response TLV (tag 83) in a response script."""

    value: bytes


@dataclass(frozen=True, slots=True)
class BadFormat:
    """Bad format TLV (tag 90) in a response script: ``01`` unknown tag, ``02`` wrong length, ``03`` no length."""

    value: bytes


CommandItem = CApdu | ImmediateAction | ErrorAction | ScriptChaining
ResponseItem = RApdu | ImmediateActionResponse | ScriptChainingResponse | BadFormat

_TAG_NUMBER_EXECUTED = 0x80


def _item(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(value)) + value


def _encode_command_item(item: CommandItem) -> bytes:
    if isinstance(item, CApdu):
        return _item(0x22, item.apdu.to_bytes())
    if isinstance(item, ImmediateAction):
        return _item(0x81, item.value)
    if isinstance(item, ErrorAction):
        return _item(0x82, item.value)
    return _item(0x83, item.value)


def _encode_response_item(item: ResponseItem) -> bytes:
    if isinstance(item, RApdu):
        return _item(0x23, item.response.to_bytes())
    if isinstance(item, ImmediateActionResponse):
        return _item(0x81, item.value)
    if isinstance(item, ScriptChainingResponse):
        return _item(0x83, item.value)
    return _item(0x90, item.value)


def _template(definite_tag: int, body: bytes, definite: bool) -> bytes:
    if definite:
        return bytes((definite_tag,)) + encode_length(len(body)) + body
    return bytes((definite_tag | 0x04, 0x80)) + body + b"\x00\x00"


def _open_template(raw: bytes, definite_tag: int, what: str) -> tuple[bytes, int, bool]:
    """``(body, offset of the body, definite)`` of an AA/AE (or AB/AF) template filling ``raw``."""
    if not raw:
        raise DecodeError(f"{what}: tag expected", offset=0)
    if raw[0] == definite_tag:
        length, start = decode_length(raw, 1)
        if start + length != len(raw):
            raise DecodeError(f"{what}: length {length} but {len(raw) - start} bytes follow", offset=len(raw))
        return raw[start:], start, True
    if raw[0] == definite_tag | 0x04:
        if len(raw) < 2 or raw[1] != 0x80:
            raise DecodeError(f"{what}: indefinite template needs length 80", offset=1)
        if len(raw) < 4 or raw[-2:] != b"\x00\x00":
            raise DecodeError(f"{what}: end-of-contents 00 00 missing", offset=len(raw))
        return raw[2:-2], 2, False
    raise DecodeError(f"{what}: tag {raw[0]:02X}, expected {definite_tag:02X} or {definite_tag | 4:02X}", offset=0)


def _inner(body: bytes, base: int) -> list[tuple[int, bytes, int]]:
    out = []
    offset = 0
    while offset < len(body):
        tag = body[offset]
        if tag & 0x1F == 0x1F or tag == 0x00:
            raise DecodeError(f"unexpected tag {tag:02X} in a script", offset=base + offset)
        try:
            length, start = decode_length(body, offset + 1)
        except DecodeError as exc:
            raise DecodeError("script TLV: bad length", offset=base + (exc.offset or 0)) from None
        if start + length > len(body):
            raise DecodeError(f"script TLV {tag:02X}: value overruns the template", offset=base + len(body))
        out.append((tag, body[start : start + length], base + offset))
        offset = start + length
    return out


@dataclass(frozen=True, slots=True)
class CommandScript:
    """An expanded-format command script (TS 102 226 5.2.1): ``AA`` (definite) or ``AE`` (indefinite)."""

    items: tuple[CommandItem, ...]
    definite: bool = True

    @classmethod
    def of(cls, apdus: Sequence[CommandApdu], *, definite: bool = True) -> CommandScript:
        return cls(tuple(CApdu(a) for a in apdus), definite)

    @property
    def apdus(self) -> tuple[CommandApdu, ...]:
        return tuple(i.apdu for i in self.items if isinstance(i, CApdu))

    def to_bytes(self) -> bytes:
        return _template(0xAA, b"".join(_encode_command_item(i) for i in self.items), self.definite)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandScript:
        body, base, definite = _open_template(raw, 0xAA, "command script")
        items: list[CommandItem] = []
        for tag, value, at in _inner(body, base):
            if tag == 0x22:
                try:
                    items.append(CApdu(CommandApdu.from_bytes(value)))
                except DecodeError as exc:
                    raise DecodeError(f"C-APDU TLV: {exc}", offset=at) from None
            elif tag == 0x81:
                items.append(ImmediateAction(value))
            elif tag == 0x82:
                items.append(ErrorAction(value))
            elif tag == 0x83:
                items.append(ScriptChaining(value))
            else:
                raise DecodeError(f"unknown tag {tag:02X} in a command script", offset=at)
        return cls(tuple(items), definite)


@dataclass(frozen=True, slots=True)
class ResponseScript:
    """An expanded-format response script (TS 102 226 5.2.2): ``AB`` (definite) or ``AF`` (indefinite)."""

    items: tuple[ResponseItem, ...]
    executed: int | None = None
    """The number of executed command TLVs (tag 80), first in the template when not None."""
    definite: bool = True

    def __post_init__(self) -> None:
        if self.executed is not None and not 0 <= self.executed <= 0xFF:
            raise ValueError(f"executed must be 0..255, got {self.executed}")

    @property
    def responses(self) -> tuple[ResponseApdu, ...]:
        return tuple(i.response for i in self.items if isinstance(i, RApdu))

    def to_bytes(self) -> bytes:
        count = b"" if self.executed is None else _item(_TAG_NUMBER_EXECUTED, bytes((self.executed,)))
        return _template(0xAB, count + b"".join(_encode_response_item(i) for i in self.items), self.definite)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseScript:
        body, base, definite = _open_template(raw, 0xAB, "response script")
        items: list[ResponseItem] = []
        executed = None
        for index, (tag, value, at) in enumerate(_inner(body, base)):
            if tag == _TAG_NUMBER_EXECUTED:
                if index != 0 or len(value) != 1:
                    raise DecodeError("number of executed commands: one byte, first in the template", offset=at)
                executed = value[0]
            elif tag == 0x23:
                if len(value) < 2:
                    raise DecodeError("R-APDU TLV needs SW1 SW2", offset=at)
                items.append(RApdu(ResponseApdu.from_bytes(value)))
            elif tag == 0x81:
                items.append(ImmediateActionResponse(value))
            elif tag == 0x83:
                items.append(ScriptChainingResponse(value))
            elif tag == 0x90:
                items.append(BadFormat(value))
            else:
                raise DecodeError(f"unknown tag {tag:02X} in a response script", offset=at)
        return cls(tuple(items), executed, definite)
