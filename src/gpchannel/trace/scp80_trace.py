"""SCP80 (over-the-air) traffic in a trace: the command packets and PoRs found in it, verified and deciphered with
the code of :mod:`gpchannel.ota` (ETSI TS 102 225 5.1 / 5.2, TS 102 226 5.1 / 5.2, 3GPP TS 31.115 / 31.111).

Two sources:

- an APDU trace (:mod:`gpchannel.trace.formats`): each SMS-PP DOWNLOAD ENVELOPE (``80 C2`` / ``A0 C2``, D1 with
  an SMS-DELIVER) gives one segment of a command packet, the segments of a concatenated SM joined with
  :class:`~gpchannel.ota.udh.Reassembler`; the PoR is in the answer of the ENVELOPE that completed the packet
  (SMS-DELIVER-REPORT user data, after ``61 xx`` / ``9F xx`` and GET RESPONSE where so sent) or in the
  SMS-SUBMITs of the proactive SEND SHORT MESSAGEs FETCHed after ``91 xx``.
- packets in hex, one per line (:func:`packets_from_lines`): SMS user data with its UDH (``02 70 00 ..``,
  ``02 71 00 ..``, concatenation IEs), or bare command / response packets from their length field, as
  ``gpchannel ota build --format packet|sms`` prints them; a bare response packet is told from a command by its
  TAR (bytes 4-6, where a command has its SPI) matching the last command's.

:func:`decode_packets` verifies each command packet with the key sets given (the one whose KVN is the KID's
first), deciphers it, reads its remote APDUs (compact or expanded), verifies the PoR with the same key set and
reads its responses, and marks counters that repeat or go backwards on one key set (a replay, when the SPI asks
the card to check them). A sans-I/O module: it holds no keys beyond the call and reports never show them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError, GPChannelError, IntegrityError, UnsupportedError
from gpchannel.ota import (
    Command,
    CommandPacket,
    CommandScript,
    CompactResponse,
    CounterMode,
    Reassembler,
    ResponsePacket,
    ResponseScript,
    Scp80KeySet,
    SmsDeliver,
    SmsPpDownload,
    decode_compact,
    unsecure_command,
    unsecure_response,
)
from gpchannel.ota.envelope import proactive_submit
from gpchannel.ota.spi import Integrity
from gpchannel.trace.formats import TraceExchange

__all__ = [
    "FoundPacket",
    "OtaKeySet",
    "OtaPacketReport",
    "decode_packets",
    "packets_from_exchanges",
    "packets_from_lines",
    "try_command",
]

_INS_ENVELOPE, _INS_FETCH, _INS_GET_RESPONSE = 0xC2, 0x12, 0xC0
_UDH_PREFIXES = (b"\x02\x70\x00", b"\x02\x71\x00")
_LINE = re.compile(r"^\s*([0-9A-Fa-f \t]+)\s*$")


@dataclass(frozen=True, slots=True)
class OtaKeySet:
    """A candidate key set: its KVN (1-15) and where it comes from (``label``, shown instead of the keys)."""

    kvn: int
    keyset: Scp80KeySet = field(repr=False)
    label: str


@dataclass(frozen=True, slots=True)
class FoundPacket:
    """A command packet as the trace carries it (SMS layout, from CPL), with its PoR when one came back.

    ``index`` / ``line``: the exchange (-1 in a file of packets) and the line of its last segment; ``segments``:
    how many SMs carried it.
    ``por``: the response packet from RPL (its UDH removed), None when the trace shows none.
    """

    index: int
    line: int
    packet: bytes
    segments: int = 1
    por: bytes | None = None


def _user_data(tpdu_ud: bytes, reassembler: Reassembler, originator: str) -> bytes | None:
    message = reassembler.feed(tpdu_ud, originator)
    return None if message is None else message.packet


def packets_from_exchanges(exchanges: Sequence[TraceExchange]) -> list[FoundPacket]:
    """The command packets of the SMS-PP DOWNLOAD ENVELOPEs in ``exchanges`` and their PoRs (module docstring)."""
    out: list[FoundPacket] = []
    commands, pors = Reassembler(), Reassembler()
    waiting_por = False
    pending = 0
    for position, exchange in enumerate(exchanges):
        command, response = exchange.command, exchange.response
        if command.ins == _INS_FETCH and waiting_por and response is not None:
            try:
                packet = _user_data(proactive_submit(response.data).user_data, pors, "card")
            except (DecodeError, ValueError):
                packet = None
            if out:
                if packet is not None:
                    out[-1] = _with_por(out[-1], packet)
                    waiting_por = False
            continue
        if command.ins != _INS_ENVELOPE or command.cla not in (0x80, 0xA0) or command.data[:1] != b"\xd1":
            continue
        try:
            deliver = SmsDeliver.from_bytes(SmsPpDownload.from_apdu(command).tpdu)
            packet = _user_data(deliver.user_data, commands, str(deliver.originator))
        except (DecodeError, ValueError):
            continue
        pending += 1
        if packet is None:
            continue
        found = FoundPacket(exchange.index, exchange.line, packet, pending)
        pending = 0
        answer = response
        if answer is not None and answer.sw1 == 0x9F and position + 1 < len(exchanges):
            following = exchanges[position + 1]
            if following.command.ins == _INS_GET_RESPONSE:
                answer = following.response
        waiting_por = answer is not None and answer.sw1 == 0x91
        if answer is not None and answer.data[:3] == _UDH_PREFIXES[1]:
            found = _with_por(found, answer.data)
        out.append(found)
    return out


def _with_por(found: FoundPacket, user_data: bytes) -> FoundPacket:
    por = user_data[3:] if user_data[:3] == _UDH_PREFIXES[1] else user_data
    return FoundPacket(found.index, found.line, found.packet, found.segments, por)


def packets_from_lines(text: str) -> list[FoundPacket]:
    """Packets in hex, one per line (module docstring); DecodeError naming the line when a line is not one."""
    out: list[FoundPacket] = []
    commands, pors = Reassembler(), Reassembler()
    segments = 0
    for number, raw_line in enumerate(text.splitlines(), start=1):
        content = raw_line.split("#", 1)[0]
        if not content.strip():
            continue
        match = _LINE.match(content)
        hex_text = match.group(1).replace(" ", "").replace("\t", "") if match else ""
        if match is None or len(hex_text) % 2 or not hex_text:
            raise DecodeError(f"line {number}: not a packet in hex", offset=number)
        raw = bytes.fromhex(hex_text)
        offset = sum(len(line) + 1 for line in text.splitlines()[: number - 1])
        try:
            if raw[:3] in _UDH_PREFIXES or (len(raw) > 2 and raw[1] in (0x00, 0x08) and raw[0] >= 5):
                segments += 1
                message = (pors if raw[:3] == _UDH_PREFIXES[1] else commands).feed(raw)
                if message is None:
                    continue
                is_response, packet = message.response, message.packet
            else:
                segments += 1
                packet = raw
                is_response = bool(out) and out[-1].por is None and _looks_like_por(raw, out[-1].packet)
        except DecodeError as exc:
            raise DecodeError(f"line {number}: {exc}", offset=offset) from None
        if is_response:
            if not out or out[-1].por is not None:
                raise DecodeError(f"line {number}: a response packet with no command packet before it", offset=offset)
            out[-1] = _with_por(out[-1], packet)
        else:
            out.append(FoundPacket(-1, number, packet, segments))
        segments = 0
    return out


def _looks_like_por(raw: bytes, command: bytes) -> bool:
    """A bare packet whose bytes 4-6 are the last command's TAR (bytes 9-11) and that parses as a PoR."""
    if len(command) < 11 or raw[3:6] != command[8:11]:
        return False
    try:
        ResponsePacket.from_bytes(raw)
    except (DecodeError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class OtaPacketReport:
    """One command packet and its PoR as decoded; ``failure`` is set where a check did not hold (``rc-cc-ds``,
    ``por-rc-cc-ds``, ``decryption``, ``replay``, ``malformed``, ``unsupported``) with ``explanation``."""

    number: int
    index: int
    line: int
    segments: int
    packet: bytes
    spi: str = ""
    kic: str = ""
    kid: str = ""
    tar: str = ""
    counter: int | None = None
    pcntr: int | None = None
    keyset: str | None = None
    checks: tuple[str, ...] = ()
    script: str = ""
    apdus: tuple[CommandApdu, ...] = ()
    por: bytes | None = None
    por_status: str | None = None
    por_counter: int | None = None
    executed: int | None = None
    responses: tuple[ResponseApdu, ...] = ()
    failure: str | None = None
    explanation: str = ""
    notes: tuple[str, ...] = ()


def try_command(packet: CommandPacket, keyset: Scp80KeySet) -> tuple[Command | None, str]:
    """``(unsecured command, "")`` when ``keyset`` verifies and deciphers ``packet``, else ``(None, why)``."""
    try:
        return unsecure_command(packet, keyset, stored_counter=None), ""
    except IntegrityError:
        return None, "rc-cc-ds"
    except UnsupportedError:
        return None, "unsupported"
    except (GPChannelError, ValueError):
        return None, "decryption"


def _script(data: bytes) -> tuple[str, tuple[CommandApdu, ...], str]:
    try:
        if data[:1] in (b"\xaa", b"\xae"):
            return "expanded", CommandScript.from_bytes(data).apdus, ""
        return "compact", decode_compact(data), ""
    except DecodeError as exc:
        return "", (), f"the remote APDUs do not decode: {exc}"


def _por(report: OtaPacketReport, raw: bytes, packet: CommandPacket, keyset: Scp80KeySet) -> OtaPacketReport:
    """The PoR verified with the command's SPI2 and key set (TS 102 225 5.2), its responses read (TS 102 226)."""
    try:
        por = unsecure_response(raw, spi=packet.spi, kic=packet.kic, kid=packet.kid, keyset=keyset)
    except IntegrityError as exc:
        return replace(report, failure="por-rc-cc-ds", explanation=f"the PoR: {exc} (TS 102 225 5.2)")
    except (GPChannelError, ValueError) as exc:
        return replace(report, failure="malformed", explanation=f"the PoR does not decode: {exc}")
    check = "PoR CC" if por.authenticated else "PoR read (no CC: not authenticated)"
    report = replace(
        report,
        por_status=f"{int(por.status):02X} {por.status.name}",
        por_counter=por.counter,
        checks=(*report.checks, check),
    )
    try:
        if por.data[:1] in (b"\xab", b"\xaf"):
            script = ResponseScript.from_bytes(por.data)
            return replace(report, executed=script.executed, responses=script.responses)
        if por.data:
            compact = CompactResponse.from_bytes(por.data)
            return replace(report, executed=compact.executed, responses=(compact.last,))
    except DecodeError as exc:
        return replace(report, notes=(*report.notes, f"the PoR data does not decode: {exc}"))
    return report


def _unchecked(packet: CommandPacket) -> Command:
    """An unciphered packet read without its RC/CC/DS checked (no key set given)."""
    body = packet.secured[6 + packet.check_length :]
    counter = int.from_bytes(packet.secured[:5], "big")
    return Command(packet.spi, packet.kic, packet.kid, packet.tar, counter, 0, b"", body)


_Counters = dict[tuple[int, bytes], tuple[int, int]]
"""(KID key version, TAR) -> (highest counter seen, the packet number that carried it)."""


def _counter(report: OtaPacketReport, command: Command, counters: _Counters) -> OtaPacketReport:
    """A counter that repeats or goes back on one key set (TS 102 225 5.1.1, SPI1 b5b4): a replay when the SPI
    asks the card to check it, a note otherwise."""
    mode = command.spi.counter_mode
    key = (command.kid.kvn, command.tar)
    before = counters.get(key)
    if before is None or command.counter > before[0]:
        counters[key] = (command.counter, report.number)
    if mode is CounterMode.NO_COUNTER or before is None or command.counter > before[0]:
        return report
    what = "repeats" if command.counter == before[0] else "goes back from"
    text = (
        f"the counter {command.counter:010X} {what} {before[0]:010X} of packet {before[1]} (same KID key set and TAR)"
    )
    if mode in (CounterMode.HIGHER, CounterMode.ONE_HIGHER):
        return replace(report, failure="replay", explanation=f"{text}: a replay, which the card must refuse (PoR 02)")
    return replace(report, notes=(*report.notes, f"{text}; the SPI asks the card not to check it"))


def decode_packets(found: Sequence[FoundPacket], keysets: Sequence[OtaKeySet]) -> list[OtaPacketReport]:
    """Verify, decipher and read each packet and its PoR (module docstring)."""
    out: list[OtaPacketReport] = []
    counters: _Counters = {}
    for number, item in enumerate(found, start=1):
        report = OtaPacketReport(number, item.index, item.line, item.segments, item.packet, por=item.por)
        try:
            packet = CommandPacket.from_bytes(item.packet)
        except (DecodeError, ValueError) as exc:
            out.append(replace(report, failure="malformed", explanation=f"not a command packet: {exc}"))
            continue
        report = replace(
            report,
            spi=packet.spi.to_bytes().hex().upper(),
            kic=packet.kic.to_bytes().hex().upper(),
            kid=packet.kid.to_bytes().hex().upper(),
            tar=packet.tar.hex().upper(),
        )
        used, command, reasons = None, None, []
        for candidate in sorted(keysets, key=lambda k: k.kvn != packet.kid.kvn):
            command, why = try_command(packet, candidate.keyset)
            if command is not None:
                used = candidate
                break
            reasons.append(f"{candidate.label}: {why}")
        if command is None and not keysets and not packet.spi.ciphered:
            command = _unchecked(packet)
            report = replace(report, notes=("no key set given: read without checking the RC/CC/DS",))
        if command is None:
            kinds = {r.rsplit(": ", 1)[1] for r in reasons}
            failure = next((k for k in ("rc-cc-ds", "decryption") if k in kinds), "unsupported")
            what = "; ".join(reasons) or "no key set given, and the packet is ciphered"
            explanation = f"no key set verifies and deciphers the packet (KIc {report.kic}, KID {report.kid}): {what}"
            out.append(replace(report, failure=failure, explanation=explanation))
            continue
        checks: list[str] = []
        if used is not None and packet.spi.integrity is not Integrity.NONE:
            checks.append(packet.spi.integrity.name.replace("_", "/"))
        if used is not None and packet.spi.ciphered:
            checks.append("deciphered")
        script, apdus, problem = _script(command.data)
        report = replace(
            report,
            counter=command.counter,
            pcntr=command.pcntr,
            keyset=used.label if used else None,
            checks=tuple(checks),
            script=script,
            apdus=apdus,
            notes=(*report.notes, problem) if problem else report.notes,
        )
        report = _counter(report, command, counters)
        if item.por is not None and used is not None and report.failure in (None, "replay"):
            report = _por(report, item.por, packet, used.keyset)
        out.append(report)
    return out
