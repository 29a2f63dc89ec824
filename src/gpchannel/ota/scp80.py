"""SCP80 secured packets: ``secure`` on the sending entity, ``unsecure`` on the receiving entity, both ways.

ETSI TS 102 225 5.1 (command packet), 5.2 (response packet) and 3GPP TS 31.115 4.2 / 4.4 (their SMS form).

Theory of operation. A command packet is built from the application data, the SPI/KIc/KID/TAR, the counter
(an explicit argument: the caller persists it) and a :class:`Scp80KeySet`:

1. L, the RC/CC length, follows from SPI1 and the KID algorithm (CHL = 13 + L);
2. when ciphering, PCNTR = the number of ``00`` octets that make ``CNTR PCNTR RC/CC data`` a whole number of
   cipher blocks (8 for DES, 16 for AES);
3. the RC/CC covers the packet from its length field (SMS: CPL; generic: CPI) to the end of the padding, with
   the RC/CC field itself left out;
4. the secured part ``CNTR PCNTR RC/CC data padding`` is ciphered with a zero ICV.

The receiver reverses it in a fixed order, never revealing more than the step reached: key set and algorithms
(downgrades refused) -> decipher -> RC/CC (constant time) -> PCNTR -> counter policy. Each failure is a typed
error; :func:`por_status` maps it to the PoR status code. An error PoR must not be ciphered or MACed with the key
set whose check just failed (the 2013 SIM-rooting attack): :func:`may_secure_por` tells which statuses allow a
secured PoR, and :func:`error_response` builds the unsecured one, echoing only the clear header (TAR) and no
deciphered plaintext.

The response packet (PoR) is secured with the same key set as its command, per SPI2; on SMS its RC/CC also
covers the UDH ``02 71 00``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.errors import (
    DecodeError,
    IntegrityError,
    ReplayError,
    SecurityError,
    UnsupportedError,
)
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.packet import (
    SMS_RESPONSE_UDH,
    CommandPacket,
    PacketLayout,
    ResponsePacket,
    command_length_field,
    response_length_field,
)
from gpchannel.ota.packet_plan import command_plan, response_plan
from gpchannel.ota.spi import CounterMode, Integrity, Kic, Kid, PorMode, Spi

__all__ = [
    "MAX_COUNTER",
    "Command",
    "Response",
    "ResponseStatus",
    "check_counter",
    "counter_after",
    "error_response",
    "may_secure_por",
    "por_status",
    "por_wanted",
    "secure_command",
    "secure_response",
    "unsecure_command",
    "unsecure_response",
]

MAX_COUNTER = (1 << 40) - 1
"""The highest 5-byte CNTR; a key set whose counter reached it is blocked (status 04)."""


class ResponseStatus(IntEnum):
    """Response status codes of a PoR (TS 102 225 5.2.1 Table 5; 0B and 0C from TS 31.115). 0D-FF are RFU."""

    POR_OK = 0x00
    RC_CC_DS_FAILED = 0x01
    CNTR_LOW = 0x02
    CNTR_HIGH = 0x03
    CNTR_BLOCKED = 0x04
    CIPHERING_ERROR = 0x05
    UNIDENTIFIED_SECURITY_ERROR = 0x06
    INSUFFICIENT_MEMORY = 0x07
    MORE_TIME = 0x08
    TAR_UNKNOWN = 0x09
    INSUFFICIENT_SECURITY_LEVEL = 0x0A
    RESPONSE_VIA_SMS_SUBMIT = 0x0B
    RESPONSE_VIA_USSD = 0x0C


@dataclass(frozen=True, slots=True)
class Command:
    """An unsecured (verified, deciphered) command packet: what the receiving entity acts on."""

    spi: Spi
    kic: Kic
    kid: Kid
    tar: bytes
    counter: int
    pcntr: int
    check: bytes
    data: bytes
    """The application message (remote APDUs), padding removed."""


@dataclass(frozen=True, slots=True)
class Response:
    """An unsecured response packet (PoR). ``authenticated`` is True only when a cryptographic checksum of the
    command's key set verified (SPI2 asked for a CC); an RC or no check at all authenticate nothing, and an
    unsecured error PoR that arrived where SPI2 asked for RC/CC/DS is False (it is never accepted with 00)."""

    tar: bytes
    counter: int
    pcntr: int
    status: ResponseStatus
    check: bytes
    data: bytes
    authenticated: bool = False


def _check_counter_value(name: str, value: int) -> None:
    if not 0 <= value <= MAX_COUNTER:
        raise ValueError(f"{name} must be 0..{MAX_COUNTER} (5 bytes), got {value}")


def _check_tar(tar: bytes) -> None:
    if len(tar) != 3:
        raise ValueError(f"TAR is 3 bytes, got {len(tar)}")


# --------------------------------------------------------------------------------------------- command packets


def secure_command(
    data: bytes,
    *,
    spi: Spi,
    kic: Kic,
    kid: Kid,
    tar: bytes,
    counter: int,
    keyset: Scp80KeySet,
    transport: PacketLayout = PacketLayout.SMS,
) -> CommandPacket:
    """Build a secured command packet (TS 102 225 5.1; TS 31.115 4.2 for SMS).

    ``counter`` is the CNTR to send (the caller chooses and persists it). Raises :class:`UnsupportedError` when
    the key set refuses the algorithms named by ``kic``/``kid`` (or their key lengths).
    """
    if len(tar) != 3:
        _check_tar(tar)
    if not 0 <= counter <= MAX_COUNTER:
        _check_counter_value("counter", counter)
    plan = command_plan(spi, kic, kid, keyset)
    check_len, block = plan.check_len, plan.block
    pad = -(6 + check_len + len(data)) % block if block else 0
    cntr_pcntr = ((counter << 8) | pad).to_bytes(6, "big")
    body = data + bytes(pad) if pad else data
    length = 14 + check_len + len(body)  # CHL SPI KIc KID TAR (8), CNTR PCNTR (6), RC/CC/DS, data, padding
    if transport is PacketLayout.SMS and length <= 0xFFFF:
        length_field = length.to_bytes(2, "big")
    else:
        length_field = command_length_field(transport, length)
    check = plan.check(keyset, length_field + plan.header + tar + cntr_pcntr + body)
    secured = cntr_pcntr + check + body
    if block:
        secured = plan.encrypt(keyset, secured)
    return CommandPacket(spi, kic, kid, tar, check_len, secured, transport)


def unsecure_command(
    packet: CommandPacket | bytes,
    keyset: Scp80KeySet,
    *,
    stored_counter: int | None,
    transport: PacketLayout = PacketLayout.SMS,
) -> Command:
    """Verify and decipher a command packet on the receiving entity (TS 102 225 5.1).

    ``stored_counter`` is the receiving entity's counter for this key set; ``None`` skips the counter policy
    (the caller then runs :func:`check_counter` itself). Errors, in the order checked:
    :class:`DecodeError` (header: no PoR possible if raised by parsing the bytes), :class:`UnsupportedError`
    (algorithm refused, 06), :class:`SecurityError` (CHL inconsistent with SPI/KID, 06), :class:`DecodeError`
    (ciphertext length, 05), :class:`IntegrityError` (RC/CC, 01), :class:`DecodeError` (PCNTR, 05),
    :class:`ReplayError` (counter, 02/03/04). :func:`por_status` gives the status for each.
    """
    if isinstance(packet, bytes):
        packet = CommandPacket.from_bytes(packet, transport)
    spi = packet.spi
    plan = command_plan(spi, packet.kic, packet.kid, keyset)
    check_len, block = plan.check_len, plan.block
    if packet.check_length != check_len:
        raise SecurityError(f"CHL gives an RC/CC/DS of {packet.check_length} bytes; SPI and KID give {check_len}")
    secured = packet.secured
    if block:
        if len(secured) % block:
            raise DecodeError(
                f"ciphered part is {len(secured)} bytes, not a multiple of {block}", offset=len(packet.to_bytes())
            )
        secured = plan.decrypt(keyset, secured)
    cntr_pcntr, check, body = secured[:6], secured[6 : 6 + check_len], secured[6 + check_len :]
    header = plan.header + packet.tar
    length = 8 + len(secured)
    transport = packet.transport
    if transport is PacketLayout.SMS and length <= 0xFFFF:
        length_field = length.to_bytes(2, "big")
    else:
        length_field = command_length_field(transport, length)
    expected = plan.check(keyset, length_field + header + cntr_pcntr + body)
    if not constant_time_equal(expected, check):
        raise IntegrityError(f"{spi.integrity.name} of the command packet does not verify")
    pcntr = cntr_pcntr[5]
    if pcntr > len(body) or (not block and pcntr) or (block and pcntr >= block):
        raise DecodeError(f"PCNTR {pcntr} is impossible here", offset=len(length_field) + len(header) + 5)
    counter = int.from_bytes(cntr_pcntr[:5], "big")
    if stored_counter is not None:
        check_counter(spi.counter_mode, counter, stored_counter)
    return Command(
        spi, packet.kic, packet.kid, packet.tar, counter, pcntr, check, body[: len(body) - pcntr] if pcntr else body
    )


# --------------------------------------------------------------------------------------------- counter policy


def check_counter(mode: CounterMode, received: int, stored: int) -> None:
    """The receiving entity's replay check (TS 102 225 5.1.1, SPI1 b5b4); :class:`ReplayError` with the status.

    ``NO_COUNTER`` and ``NO_CHECK`` accept anything (no replay protection: a TAR's minimum security level should
    refuse them). ``HIGHER`` needs ``received > stored``; ``ONE_HIGHER`` needs ``received == stored + 1`` (the
    GSM 03.48 meaning of 11, ota-notes F.1). A stored counter at :data:`MAX_COUNTER` blocks the key set (04).
    """
    _check_counter_value("received", received)
    _check_counter_value("stored", stored)
    if mode in (CounterMode.NO_COUNTER, CounterMode.NO_CHECK):
        return
    if stored == MAX_COUNTER:
        raise ReplayError("the counter of this key set is exhausted", status=ResponseStatus.CNTR_BLOCKED)
    if received <= stored:
        raise ReplayError("counter not higher than the stored value", status=ResponseStatus.CNTR_LOW)
    if mode is CounterMode.ONE_HIGHER and received != stored + 1:
        raise ReplayError("counter more than one above the stored value", status=ResponseStatus.CNTR_HIGH)


def counter_after(mode: CounterMode, received: int, stored: int) -> int:
    """The counter the receiving entity stores after a packet that passed every check."""
    return received if mode in (CounterMode.HIGHER, CounterMode.ONE_HIGHER) else stored


# --------------------------------------------------------------------------------------------- response packets


def _response_prefix(transport: PacketLayout) -> bytes:
    return SMS_RESPONSE_UDH if transport is PacketLayout.SMS else b""


def secure_response(
    data: bytes,
    *,
    status: ResponseStatus,
    tar: bytes,
    counter: int,
    spi: Spi,
    kic: Kic,
    kid: Kid,
    keyset: Scp80KeySet,
    transport: PacketLayout = PacketLayout.SMS,
) -> ResponsePacket:
    """Build a PoR secured per SPI2 of the command (``spi``), with the command's key set (TS 102 225 5.2).

    Use it only when :func:`may_secure_por` allows the status; otherwise :func:`error_response`.
    """
    _check_tar(tar)
    _check_counter_value("counter", counter)
    plan = response_plan(spi, kic, kid, keyset)
    check_len, block = plan.check_len, plan.block
    pad = -(7 + check_len + len(data)) % block if block else 0
    head = plan.header + tar
    fields = counter.to_bytes(5, "big") + bytes((pad, status))
    body = data + bytes(pad)
    length_field = response_length_field(transport, len(head) + len(fields) + check_len + len(body))
    check = plan.check(keyset, _response_prefix(transport) + length_field + head + fields + body)
    secured = fields + check + body
    if block:
        secured = plan.encrypt(keyset, secured)
    return ResponsePacket(tar, check_len, secured, transport)


def _status(value: int, offset: int) -> ResponseStatus:
    try:
        return ResponseStatus(value)
    except ValueError:
        raise DecodeError(f"response status {value:02X} is RFU", offset=offset) from None


def unsecure_response(
    packet: ResponsePacket | bytes,
    *,
    spi: Spi,
    kic: Kic,
    kid: Kid,
    keyset: Scp80KeySet,
    transport: PacketLayout = PacketLayout.SMS,
) -> Response:
    """Verify and decipher a PoR on the sending entity, with the command's SPI, KIc, KID and key set.

    An unsecured PoR (RHL 10, clear) where SPI2 asked for RC/CC/DS is accepted only with an error status, and
    comes back with ``authenticated=False``; with status 00 it raises :class:`IntegrityError`. Other errors:
    :class:`IntegrityError` (RC/CC), :class:`DecodeError` (lengths, PCNTR, RFU status), UnsupportedError.
    """
    if isinstance(packet, bytes):
        packet = ResponsePacket.from_bytes(packet, transport)
    plan = response_plan(spi, kic, kid, keyset)
    check_len, block = plan.check_len, plan.block
    secured = packet.secured
    clear_error_por = packet.check_length == 0 and (check_len != 0 or (block and len(secured) % block != 0))
    if clear_error_por:
        status = _status(secured[6], 0)
        if status is ResponseStatus.POR_OK or secured[5]:
            raise IntegrityError("an unsecured PoR where SPI2 asks for security must carry an error, no padding")
        return Response(packet.tar, int.from_bytes(secured[:5], "big"), 0, status, b"", secured[7:], False)
    if packet.check_length != check_len:
        raise IntegrityError(f"RHL gives an RC/CC/DS of {packet.check_length} bytes; SPI2 and KID give {check_len}")
    if block:
        if len(secured) % block:
            raise DecodeError(f"ciphered PoR is {len(secured)} bytes, not a multiple of {block}")
        secured = plan.decrypt(keyset, secured)
    fields, check, body = secured[:7], secured[7 : 7 + check_len], secured[7 + check_len :]
    head = bytes((packet.rhl,)) + packet.tar
    length_field = response_length_field(packet.transport, len(head) + len(secured))
    expected = plan.check(keyset, _response_prefix(packet.transport) + length_field + head + fields + body)
    if not constant_time_equal(expected, check):
        raise IntegrityError(f"{spi.por_integrity.name} of the response packet does not verify")
    pcntr = fields[5]
    if pcntr > len(body) or (not block and pcntr) or (block and pcntr >= block):
        raise DecodeError(f"PCNTR {pcntr} is impossible here", offset=len(length_field) + len(head) + 5)
    status = _status(fields[6], len(length_field) + len(head) + 6)
    counter = int.from_bytes(fields[:5], "big")
    authenticated = spi.por_integrity is Integrity.CC
    return Response(packet.tar, counter, pcntr, status, check, body[: len(body) - pcntr], authenticated)


# --------------------------------------------------------------------------------------------- receiver's PoR rules


def por_status(exc: BaseException) -> ResponseStatus:
    """The PoR status for an error raised by :func:`unsecure_command` (or the counter policy).

    IntegrityError -> 01; ReplayError -> its status (default 02); UnsupportedError and other SecurityErrors
    -> 06; DecodeError (ciphertext length, PCNTR) -> 05. Anything else -> 06.
    """
    if isinstance(exc, IntegrityError):
        return ResponseStatus.RC_CC_DS_FAILED
    if isinstance(exc, ReplayError):
        return ResponseStatus(exc.status) if exc.status is not None else ResponseStatus.CNTR_LOW
    if isinstance(exc, DecodeError):
        return ResponseStatus.CIPHERING_ERROR
    if isinstance(exc, UnsupportedError | SecurityError):
        return ResponseStatus.UNIDENTIFIED_SECURITY_ERROR
    return ResponseStatus.UNIDENTIFIED_SECURITY_ERROR


_SECURABLE = frozenset(
    {
        ResponseStatus.POR_OK,
        ResponseStatus.CNTR_LOW,
        ResponseStatus.CNTR_HIGH,
        ResponseStatus.CNTR_BLOCKED,
        ResponseStatus.INSUFFICIENT_MEMORY,
        ResponseStatus.MORE_TIME,
        ResponseStatus.INSUFFICIENT_SECURITY_LEVEL,
        ResponseStatus.RESPONSE_VIA_SMS_SUBMIT,
        ResponseStatus.RESPONSE_VIA_USSD,
    }
)


def may_secure_por(status: ResponseStatus) -> bool:
    """Whether a PoR with ``status`` may be secured with the command's key set.

    Only after the command's RC/CC verified: never for 01 (the check failed: a MACed error PoR is the 2013
    known-plaintext oracle), 05 and 06 (the key set could not be used), 09 (no key set chosen yet).
    """
    return status in _SECURABLE


def por_wanted(spi: Spi, status: ResponseStatus) -> bool:
    """Whether SPI2 asks for a PoR with this status (always, on error only, never; 11 reserved: never)."""
    if spi.por is PorMode.ALWAYS:
        return True
    return spi.por is PorMode.ON_ERROR and status is not ResponseStatus.POR_OK


def error_response(
    packet: CommandPacket, status: ResponseStatus, *, counter: int = 0, data: bytes = b""
) -> ResponsePacket:
    """An unsecured, unciphered PoR for a refused command: RHL 10, the TAR from the clear header, ``counter``
    (by default 0: a counter that was only deciphered, not verified, must not be echoed: ota-notes E.4)."""
    _check_counter_value("counter", counter)
    secured = counter.to_bytes(5, "big") + bytes((0, status)) + data
    return ResponsePacket(packet.tar, 0, secured, packet.transport)
