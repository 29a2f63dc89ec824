"""SMPP 3.4 PDUs, encoded and decoded without I/O: the session layer's codec.

SMPP 3.4 (SMPP Developers Forum, issue 1.2, 1999): 3.2 the PDU format (a 16-octet header: command_length,
command_id, command_status, sequence_number; then the body), 3.1 the parameter types (Integer, C-Octet String
ending in NULL with a maximum size that counts the NULL, Octet String), 4.1 bind_transmitter / bind_receiver /
bind_transceiver and their _resp, 4.2 unbind, 4.3 generic_nack, 4.4 submit_sm, 4.6 deliver_sm, 4.11
enquire_link, 5.1.2 command_id values, 5.1.3 command_status values, 5.3 optional parameters (TLVs: tag,
length, value). The maximum sizes are those of the tables of section 4 (5.2 for each field).

:func:`decode` takes one whole PDU (:class:`PduReader` cuts a byte stream into them) and returns a :class:`Pdu`
or raises :class:`gpchannel.errors.SmppPduError`, whose ``command_status`` is what to answer with (in the
command's own _resp when the command is known, else in a generic_nack) and whose ``fatal`` says the stream
cannot be resynchronised (a command_length out of range). Encoding checks the same limits and raises
:class:`gpchannel.errors.LocalProtocolError` for a field the caller made too long.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from gpchannel.errors import LocalProtocolError, SmppPduError

__all__ = [
    "HEADER_SIZE",
    "MAX_COMMAND_LENGTH",
    "RESPONSE_BIT",
    "BindBody",
    "BindRespBody",
    "CommandId",
    "CommandStatus",
    "MessageIdBody",
    "Pdu",
    "PduReader",
    "ShortMessageBody",
    "Tlv",
    "decode",
]

HEADER_SIZE = 16
RESPONSE_BIT = 0x80000000
MAX_COMMAND_LENGTH = 0x10000 + 1024
"""The largest PDU taken: SMPP 3.4 sets no bound; a message_payload TLV (5.3.2.32) holds at most 64 KiB."""
_HEADER = struct.Struct(">IIII")
_TLV = struct.Struct(">HH")


class CommandId(IntEnum):
    """SMPP 3.4 5.1.2 (the commands this stack speaks, and the ones it must recognise to refuse them)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    CANCEL_SM = 0x00000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103

    @property
    def is_response(self) -> bool:
        return bool(self & RESPONSE_BIT)

    @property
    def response(self) -> CommandId:
        """The _resp of a request (generic_nack for a request without one of its own here)."""
        try:
            return CommandId(self | RESPONSE_BIT)
        except ValueError:
            return CommandId.GENERIC_NACK


class CommandStatus(IntEnum):
    """SMPP 3.4 5.1.3 (the values this stack answers with or names)."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVESMCLASS = 0x43
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSYSTYP = 0x53
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RUNKNOWNERR = 0xFF


# The maximum size of each C-Octet String, NULL included (SMPP 3.4 section 4 tables, 5.2), and the status
# that answers one that runs past it.
_LIMITS: dict[str, tuple[int, CommandStatus]] = {
    "system_id": (16, CommandStatus.ESME_RINVSYSID),
    "password": (9, CommandStatus.ESME_RINVPASWD),
    "system_type": (13, CommandStatus.ESME_RINVSYSTYP),
    "address_range": (41, CommandStatus.ESME_RINVPARLEN),
    "service_type": (6, CommandStatus.ESME_RINVSERTYP),
    "source_addr": (21, CommandStatus.ESME_RINVSRCADR),
    "destination_addr": (21, CommandStatus.ESME_RINVDSTADR),
    "schedule_delivery_time": (17, CommandStatus.ESME_RINVSCHED),
    "validity_period": (17, CommandStatus.ESME_RINVEXPIRY),
    "message_id": (65, CommandStatus.ESME_RINVMSGID),
}
MAX_SHORT_MESSAGE = 254
"""sm_length is 0..254 (SMPP 3.4 4.4.1); longer content goes in the message_payload TLV."""


@dataclass(frozen=True, slots=True)
class Tlv:
    """An optional parameter (SMPP 3.4 5.3.1): 16-bit tag, value of at most 65535 octets."""

    tag: int
    value: bytes

    def as_int(self) -> int:
        """The value as a big-endian unsigned integer (0 when empty)."""
        return int.from_bytes(self.value, "big")

    def as_string(self) -> str:
        """The value as a C-Octet String (the trailing NULL, when present, dropped)."""
        return self.value.split(b"\x00", 1)[0].decode("latin-1")


@dataclass(frozen=True, slots=True)
class BindBody:
    """bind_transmitter / bind_receiver / bind_transceiver (SMPP 3.4 4.1.1, 4.1.3, 4.1.5)."""

    system_id: str
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindRespBody:
    """bind_*_resp (4.1.2, 4.1.4, 4.1.6): the SMSC's system_id and the sc_interface_version TLV, if any."""

    system_id: str
    tlvs: tuple[Tlv, ...] = ()


@dataclass(frozen=True, slots=True)
class MessageIdBody:
    """submit_sm_resp (4.4.2; the SMSC's message_id) and deliver_sm_resp (4.6.2; message_id unused, NULL)."""

    message_id: str = ""


@dataclass(frozen=True, slots=True)
class ShortMessageBody:
    """The body of submit_sm (4.4.1) and deliver_sm (4.6.1), which share their layout."""

    destination_addr: str
    short_message: bytes = b""
    source_addr: str = ""
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    tlvs: tuple[Tlv, ...] = field(default=())

    def tlv(self, tag: int) -> Tlv | None:
        """The first TLV with ``tag``."""
        return next((t for t in self.tlvs if t.tag == tag), None)


Body = BindBody | BindRespBody | MessageIdBody | ShortMessageBody | None

_BIND = frozenset({CommandId.BIND_RECEIVER, CommandId.BIND_TRANSMITTER, CommandId.BIND_TRANSCEIVER})
_BIND_RESP = frozenset(c.response for c in _BIND)
_SM = frozenset({CommandId.SUBMIT_SM, CommandId.DELIVER_SM})
_SM_RESP = frozenset({CommandId.SUBMIT_SM_RESP, CommandId.DELIVER_SM_RESP})
_EMPTY = frozenset(
    {CommandId.UNBIND, CommandId.UNBIND_RESP, CommandId.ENQUIRE_LINK, CommandId.ENQUIRE_LINK_RESP}
    | {CommandId.GENERIC_NACK}
)
_SPOKEN = _BIND | _BIND_RESP | _SM | _SM_RESP | _EMPTY


@dataclass(frozen=True, slots=True)
class Pdu:
    """One PDU. ``body`` matches ``command_id``: :class:`BindBody` for a bind, :class:`BindRespBody` for its
    _resp, :class:`ShortMessageBody` for submit_sm / deliver_sm, :class:`MessageIdBody` for their _resp,
    ``None`` for unbind, enquire_link, generic_nack and their _resp (and for a _resp with an error status,
    whose body SMPP 3.4 lets the peer leave out)."""

    command_id: CommandId
    sequence_number: int
    command_status: int = 0
    body: Body = None

    @property
    def ok(self) -> bool:
        return self.command_status == CommandStatus.ESME_ROK

    def encode(self) -> bytes:
        """The PDU's octets; :class:`LocalProtocolError` for a field past its SMPP 3.4 maximum."""
        if not 0 <= self.sequence_number <= 0x7FFFFFFF:
            raise LocalProtocolError(f"sequence_number {self.sequence_number} outside 0..0x7FFFFFFF (5.1.4)")
        body = _encode_body(self.command_id, self.body)
        return _HEADER.pack(HEADER_SIZE + len(body), self.command_id, self.command_status, self.sequence_number) + body


def _cstring(name: str, value: str) -> bytes:
    limit, _ = _LIMITS[name]
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{name} {value!r}: not one octet per character") from None
    if b"\x00" in raw or len(raw) + 1 > limit:
        raise LocalProtocolError(f"{name} {value!r}: at most {limit - 1} octets, no NULL (SMPP 3.4 section 4)")
    return raw + b"\x00"


def _octets(*values: int) -> bytes:
    if not all(0 <= v <= 0xFF for v in values):
        raise LocalProtocolError(f"an SMPP Integer(1) field is 0..255, got {values}")
    return bytes(values)


def _encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    out = bytearray()
    for tlv in tlvs:
        if not 0 <= tlv.tag <= 0xFFFF or len(tlv.value) > 0xFFFF:
            raise LocalProtocolError(f"TLV {tlv.tag:#06x}: tag or length past 16 bits (5.3.1)")
        out += _TLV.pack(tlv.tag, len(tlv.value)) + tlv.value
    return bytes(out)


def _encode_body(command_id: CommandId, body: Body) -> bytes:
    if body is None:
        if command_id in _EMPTY or command_id.is_response:
            return b""
        raise LocalProtocolError(f"{command_id.name} needs a body")
    if isinstance(body, BindBody) and command_id in _BIND:
        return (
            _cstring("system_id", body.system_id)
            + _cstring("password", body.password)
            + _cstring("system_type", body.system_type)
            + _octets(body.interface_version, body.addr_ton, body.addr_npi)
            + _cstring("address_range", body.address_range)
        )
    if isinstance(body, BindRespBody) and command_id in _BIND_RESP:
        return _cstring("system_id", body.system_id) + _encode_tlvs(body.tlvs)
    if isinstance(body, MessageIdBody) and command_id in _SM_RESP:
        return _cstring("message_id", body.message_id)
    if isinstance(body, ShortMessageBody) and command_id in _SM:
        if len(body.short_message) > MAX_SHORT_MESSAGE:
            raise LocalProtocolError(f"short_message of {len(body.short_message)} octets: at most 254 (4.4.1)")
        b = body
        return (
            _cstring("service_type", b.service_type)
            + _octets(b.source_addr_ton, b.source_addr_npi)
            + _cstring("source_addr", b.source_addr)
            + _octets(b.dest_addr_ton, b.dest_addr_npi)
            + _cstring("destination_addr", b.destination_addr)
            + _octets(b.esm_class, b.protocol_id, b.priority_flag)
            + _cstring("schedule_delivery_time", b.schedule_delivery_time)
            + _cstring("validity_period", b.validity_period)
            + _octets(b.registered_delivery, b.replace_if_present_flag, b.data_coding, b.sm_default_msg_id)
            + _octets(len(b.short_message))
            + b.short_message
            + _encode_tlvs(b.tlvs)
        )
    raise LocalProtocolError(f"{command_id.name} does not take a {type(body).__name__}")


# -- decoding ---------------------------------------------------------------------------------------------------


class _Reader:
    """A cursor over a body; every failure is an :class:`SmppPduError` for the PDU being decoded."""

    def __init__(self, data: bytes, command_id: int, sequence: int) -> None:
        self.data = data
        self.pos = 0
        self.command_id = command_id
        self.sequence = sequence

    def fail(self, message: str, status: int) -> SmppPduError:
        return SmppPduError(message, status, command_id=self.command_id, sequence_number=self.sequence)

    def cstring(self, name: str) -> str:
        limit, status = _LIMITS[name]
        end = self.data.find(b"\x00", self.pos, self.pos + limit)
        if end < 0:
            if len(self.data) - self.pos < limit:
                raise self.fail(f"{name}: the body ends before its NULL", CommandStatus.ESME_RINVPARLEN)
            raise self.fail(f"{name}: no NULL within {limit} octets (SMPP 3.4 section 4)", status)
        value = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value

    def octets(self, count: int) -> bytes:
        if len(self.data) - self.pos < count:
            raise self.fail("the body ends inside a mandatory parameter", CommandStatus.ESME_RINVPARLEN)
        value = self.data[self.pos : self.pos + count]
        self.pos += count
        return value

    def byte(self) -> int:
        return self.octets(1)[0]

    def tlvs(self) -> tuple[Tlv, ...]:
        out = []
        while self.pos < len(self.data):
            if len(self.data) - self.pos < _TLV.size:
                raise self.fail("a truncated TLV header (5.3.1)", CommandStatus.ESME_RINVOPTPARSTREAM)
            tag, length = _TLV.unpack_from(self.data, self.pos)
            self.pos += _TLV.size
            if len(self.data) - self.pos < length:
                raise self.fail(f"TLV {tag:#06x} runs past the PDU (5.3.1)", CommandStatus.ESME_RINVOPTPARSTREAM)
            out.append(Tlv(tag, self.data[self.pos : self.pos + length]))
            self.pos += length
        return tuple(out)

    def end(self) -> None:
        if self.pos != len(self.data):
            extra = len(self.data) - self.pos
            raise self.fail(f"{extra} octets after the last parameter", CommandStatus.ESME_RINVCMDLEN)


def _decode_sm(r: _Reader) -> ShortMessageBody:
    service_type = r.cstring("service_type")
    source_ton, source_npi = r.byte(), r.byte()
    source_addr = r.cstring("source_addr")
    dest_ton, dest_npi = r.byte(), r.byte()
    destination_addr = r.cstring("destination_addr")
    esm_class, protocol_id, priority_flag = r.byte(), r.byte(), r.byte()
    schedule = r.cstring("schedule_delivery_time")
    validity = r.cstring("validity_period")
    registered, replace, data_coding, default_id, sm_length = (r.byte() for _ in range(5))
    if sm_length > MAX_SHORT_MESSAGE:
        raise r.fail(f"sm_length {sm_length}: at most 254 (4.4.1)", CommandStatus.ESME_RINVMSGLEN)
    short_message = r.octets(sm_length)
    return ShortMessageBody(
        destination_addr,
        short_message,
        source_addr,
        service_type,
        source_ton,
        source_npi,
        dest_ton,
        dest_npi,
        esm_class,
        protocol_id,
        priority_flag,
        schedule,
        validity,
        registered,
        replace,
        data_coding,
        default_id,
        r.tlvs(),
    )


def _decode_body(command_id: CommandId, status: int, r: _Reader) -> Body:
    if command_id.is_response and status != CommandStatus.ESME_ROK and not r.data:
        return None  # an error _resp may leave its body out (SMPP 3.4 4.1.2, 4.4.2)
    if command_id in _BIND:
        system_id, password, system_type = r.cstring("system_id"), r.cstring("password"), r.cstring("system_type")
        version, ton, npi = r.byte(), r.byte(), r.byte()
        body: Body = BindBody(system_id, password, system_type, version, ton, npi, r.cstring("address_range"))
    elif command_id in _BIND_RESP:
        body = BindRespBody(r.cstring("system_id") if r.data else "", r.tlvs())
    elif command_id in _SM_RESP:
        body = MessageIdBody(r.cstring("message_id") if r.data else "")
    elif command_id in _SM:
        body = _decode_sm(r)
    else:
        body = None
    r.end()
    return body


def decode(data: bytes) -> Pdu:
    """One whole PDU (header and body) -> :class:`Pdu`; :class:`SmppPduError` when it is malformed or a command
    this stack does not speak (ESME_RINVCMDID, to be answered with a generic_nack)."""
    if len(data) < HEADER_SIZE:
        raise SmppPduError(f"{len(data)} octets: shorter than the header", CommandStatus.ESME_RINVCMDLEN, fatal=True)
    length, command_id, status, sequence = _HEADER.unpack_from(data)
    if length != len(data):
        raise SmppPduError(f"command_length {length} but {len(data)} octets", CommandStatus.ESME_RINVCMDLEN, fatal=True)
    if command_id not in CommandId.__members__.values() or CommandId(command_id) not in _SPOKEN:
        raise SmppPduError(
            f"command_id {command_id:#010x} not supported", CommandStatus.ESME_RINVCMDID, sequence_number=sequence
        )
    cid = CommandId(command_id)
    return Pdu(cid, sequence, status, _decode_body(cid, status, _Reader(data[HEADER_SIZE:], cid, sequence)))


class PduReader:
    """Cuts a byte stream into whole PDUs (3.2: command_length first). :meth:`feed` returns the PDUs completed
    so far; a command_length below 16 or above :data:`MAX_COMMAND_LENGTH` raises a fatal
    :class:`SmppPduError` (nothing after it can be framed)."""

    def __init__(self, max_length: int = MAX_COMMAND_LENGTH) -> None:
        self._buffer = bytearray()
        self.max_length = max_length

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:4], "big")
            if not HEADER_SIZE <= length <= self.max_length:
                raise SmppPduError(
                    f"command_length {length} outside {HEADER_SIZE}..{self.max_length}",
                    CommandStatus.ESME_RINVCMDLEN,
                    fatal=True,
                )
            if len(self._buffer) < length:
                break
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]
        return frames
