"""The card side of SCP80: SMS-PP DOWNLOAD ENVELOPEs in, Proofs of Receipt out (ETSI TS 102 225, TS 102 226,
3GPP TS 31.111 7.1.1 and TS 31.115; ota-notes A.8, A.9, E).

One ENVELOPE (``80 C2``, or ``A0 C2`` on a GSM SIM) carries the D1 object with an SMS-DELIVER. Processing,
in this order (ota-notes A.9, "suggested card-side check order"):

1. the TPDU must be the OTA combination (TP-PID 7F, TP-DCS F6 or 16, UDHI: requirement E.7), else 6A80;
   concatenated segments are kept (RAM, per card power-up) until the packet is whole; then the command packet
   header is parsed (an undecodable header, a response packet or a bad segment: 6A80, no PoR is possible);
2. the TAR names the receiving entity: ``[[ota.tars]]`` of the profile (target AID, optional ``msl``,
   ``allow_single_des``), then the TAR values of the applications' install parameters (EA / 80 toolkit
   parameters, with their MSL: TS 102 226 8.2.1.3.2.2), then the built-in ISD RAM at 000000 and RFM at B00001
   (both reachable only with the default MSL unless the profile says otherwise); unknown: status 09;
3. the key set named by KIc/KID (one KVN; ``[[ota.keysets]]``) is bound to its algorithms: a KIc/KID naming
   another algorithm, a missing key set, or single DES where the TAR does not allow it: status 06;
4. :func:`gpchannel.ota.scp80.unsecure_command` deciphers and checks the RC/CC (01) and the counter against
   the persisted one (02/03/04); the TAR's Minimum Security Level (SPI1 coding, default 16: CC, ciphering
   and a higher counter; ota-notes E.3) is then checked (0A);
5. only then the counter is stored (persisted with the rest of the state when the ENVELOPE completes), and
   the remote APDUs (compact, or expanded when the data start with AA / AE: TS 102 226 5) run through the
   same card core as everything else: the Security Domain's handlers for RAM (GET DATA, GET STATUS, INSTALL,
   LOAD, DELETE, SET STATUS), an application's applet for its own TAR, the file system for RFM
   (card/filesystem.py). A failing command stops the
   script and its own effects are undone;
6. the PoR, if SPI2 asks for one, is secured per SPI2 with the same key set. An error PoR is secured only when
   the command's cryptographic checksum verified and the status allows it (``may_secure_por``): never for 01,
   05, 06, 09, nor for a packet without a CC (the 2013 SIM-rooting oracle). It goes back in the ENVELOPE
   response (the SMS-DELIVER-REPORT user data: ``61 xx`` then GET RESPONSE under CLA 80, ``9F xx`` then
   ``A0 C0`` under CLA A0, or directly with 9000 when the ENVELOPE carried Le), or, per SPI2, as an SMS-SUBMIT
   in a proactive SEND SHORT MESSAGE (TS 102 223 6.6.9): the ENVELOPE answers ``91 xx`` and FETCH (``80 12``)
   returns the proactive command; TERMINAL RESPONSE (``80 14``) closes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gpchannel.card import content, sd_data
from gpchannel.card.applets import AppletEnvironment
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.filesystem import FileSession, FileSystem, default_filesystem, process_file_command
from gpchannel.card.loading import load_block
from gpchannel.card.secure_channel_service import SecureChannelService
from gpchannel.card.state import Application, CardState
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import (
    CardError,
    ConditionsNotSatisfied,
    DecodeError,
    GPChannelError,
    IncorrectData,
    IncorrectP1P2,
    InsNotSupported,
    SecurityError,
    UnsupportedError,
)
from gpchannel.gp._tlv import parse_tlvs
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.ota.algorithms import KeySet
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.packet import SMS_RESPONSE_UDH, CommandPacket, ResponsePacket
from gpchannel.ota.remote_apdu import (
    BadFormat,
    CApdu,
    CommandScript,
    CompactResponse,
    RApdu,
    ResponseItem,
    ResponseScript,
    ScriptChaining,
    ScriptChainingResponse,
    decode_compact,
)
from gpchannel.ota.scp80 import (
    ResponseStatus,
    counter_after,
    error_response,
    may_secure_por,
    por_status,
    por_wanted,
    secure_response,
    unsecure_command,
)
from gpchannel.ota.sms import SmsDeliver, SmsSubmit
from gpchannel.ota.spi import (
    CipherAlgorithm,
    CounterMode,
    Integrity,
    MacAlgorithm,
    PorTransport,
    Spi,
    meets_minimum_security,
)
from gpchannel.ota.udh import Reassembler, split_packet

__all__ = [
    "DEFAULT_MSL",
    "RAM_ISD_TAR",
    "RFM_TAR",
    "OtaHandler",
    "TarEntry",
    "is_ota_command",
    "keyset_for",
    "tar_entry",
    "toolkit_parameters",
]

log = logging.getLogger("gpchannel.card.ota")

RAM_ISD_TAR = bytes.fromhex("000000")
RFM_TAR = bytes.fromhex("B00001")
DEFAULT_MSL = 0x16
"""CC, ciphering and a strictly higher counter (ota-notes E.3): the MSL of a TAR whose profile entry has none."""

_KIC = {
    "des-cbc": CipherAlgorithm.DES_CBC,
    "3des-2key": CipherAlgorithm.DES3_2KEY_CBC,
    "3des-3key": CipherAlgorithm.DES3_3KEY_CBC,
    "aes-cbc": CipherAlgorithm.AES_CBC,
}
_KID = {
    "des-cbc-mac": MacAlgorithm.DES_CBC_MAC,
    "3des-2key": MacAlgorithm.DES3_2KEY_CBC_MAC,
    "3des-3key": MacAlgorithm.DES3_3KEY_CBC_MAC,
    "aes-cmac": MacAlgorithm.AES_CMAC,
}
_OK_SW1 = frozenset({0x90, 0x91, 0x61, 0x62, 0x63, 0x9F})
"""SW1 values after which a script goes on (TS 102 226 5.1.1: it stops at the first error) [M]."""
_SW_PROACTIVE = 0x9100
_INS_ENVELOPE, _INS_FETCH, _INS_TERMINAL_RESPONSE, _INS_GET_RESPONSE = 0xC2, 0x12, 0x14, 0xC0


def is_ota_command(command: CommandApdu) -> bool:
    """Whether the dispatcher hands ``command`` to the OTA handler: ENVELOPE, FETCH and TERMINAL RESPONSE
    (CLA 80 or A0), and the GSM-class GET RESPONSE (A0 C0) that fetches an ENVELOPE's response."""
    if command.cla in (0x80, 0xA0) and command.ins in (_INS_ENVELOPE, _INS_FETCH, _INS_TERMINAL_RESPONSE):
        return True
    return command.cla == 0xA0 and command.ins == _INS_GET_RESPONSE


@dataclass(frozen=True, slots=True)
class TarEntry:
    """A receiving entity: ``target`` is a Security Domain's AID (RAM), or empty for RFM."""

    tar: bytes
    target: bytes
    msl: int = DEFAULT_MSL
    allow_single_des: bool = False

    @property
    def rfm(self) -> bool:
        return not self.target


def _ota_section(state: CardState) -> dict[str, Any]:
    section = state.ota.get("ota", {})
    return section if isinstance(section, dict) else {}


def tar_entry(state: CardState, tar: bytes) -> TarEntry | None:
    """The receiving entity of ``tar``: the profile's ``[[ota.tars]]`` first (no ``target``: the ISD for 000000,
    RFM otherwise, ota-notes A.8), then the built-ins (ISD RAM 000000, RFM B00001)."""
    for raw in _ota_section(state).get("tars", []):
        if bytes.fromhex(str(raw.get("tar", ""))) != tar:
            continue
        target = bytes.fromhex(str(raw.get("target", "")))
        if not target:
            target = state.isd_aid if tar == RAM_ISD_TAR else b""
        msl = bytes.fromhex(str(raw["msl"]))[0] if raw.get("msl") else DEFAULT_MSL
        return TarEntry(tar, target, msl, bool(raw.get("allow_single_des", False)))
    for app in state.applications:
        toolkit = toolkit_parameters(app.system_parameters)
        if toolkit is not None and tar in toolkit[1]:
            msl = toolkit[0][0] if toolkit[0] and toolkit[0][0] <= 0x1F else DEFAULT_MSL
            return TarEntry(tar, app.aid, msl)
    if tar == RAM_ISD_TAR:
        return TarEntry(tar, state.isd_aid)
    if tar == RFM_TAR:
        return TarEntry(tar, b"")
    return None


def toolkit_parameters(system_parameters: bytes) -> tuple[bytes, list[bytes]] | None:
    """The MSL and the TAR values of the UICC Toolkit Application specific parameters (tag 80 inside the EA
    UICC System Specific Parameters, ETSI TS 102 226 8.2.1.3.2.2): priority, timers, menu text length, menu
    entries n, n x (position, identifier), channels, MSL (length-prefixed), TAR values (length-prefixed, 3 bytes
    each), ... None when absent or malformed (an application with unreadable parameters has no TAR)."""
    try:
        items = parse_tlvs(system_parameters) if system_parameters else []
    except DecodeError:
        return None
    value = next((v for t, v in items if t == 0x80), None)
    if value is None or len(value) < 4:
        return None
    at = 4 + 2 * value[3] + 1
    if at >= len(value):
        return None
    msl_end = at + 1 + value[at]
    if msl_end >= len(value):
        return None
    msl = value[at + 1 : msl_end]
    tar_end = msl_end + 1 + value[msl_end]
    if value[msl_end] % 3 or tar_end > len(value):
        return None
    tars = [value[i : i + 3] for i in range(msl_end + 1, tar_end, 3)]
    return msl, tars


def keyset_for(state: CardState, kvn: int, *, allow_single_des: bool = False) -> tuple[int, KeySet] | None:
    """The index in ``[[ota.keysets]]`` and the :class:`KeySet` (bound to its algorithms) of ``kvn``."""
    for index, raw in enumerate(_ota_section(state).get("keysets", [])):
        if raw.get("kvn") != kvn:
            continue
        keyset = KeySet(
            bytes.fromhex(str(raw["kic"])),
            bytes.fromhex(str(raw["kid"])),
            cipher=_KIC[str(raw["kic_algorithm"])],
            mac=_KID[str(raw["kid_algorithm"])],
            allow_single_des=allow_single_des,
        )
        return index, keyset
    return None


class OtaHandler:
    """The runtime part of the card's OTA side: concatenation buffers and the response waiting for GET
    RESPONSE or FETCH (RAM: lost at power-up, as on a card). The persisted part lives in ``CardState``."""

    def __init__(self, max_pending: int = 8) -> None:
        self.reassembler = Reassembler(max_pending)
        self.gsm_pending = b""
        self.proactive: list[bytes] = []

    def process(self, ctx: CardContext, channel: ChannelContext, command: CommandApdu) -> ResponseApdu:
        """One ENVELOPE, FETCH, TERMINAL RESPONSE or GSM GET RESPONSE; raises :class:`CardError`."""
        if command.ins == _INS_GET_RESPONSE:
            return self._gsm_get_response(command)
        if command.ins == _INS_FETCH:
            if not self.proactive:
                raise ConditionsNotSatisfied("no proactive command is pending")
            return ResponseApdu(self.proactive[0])
        if command.ins == _INS_TERMINAL_RESPONSE:
            if not self.proactive:
                raise ConditionsNotSatisfied("no proactive command is pending")
            self.proactive.pop(0)  # one SEND SHORT MESSAGE per SM of a PoR that needs several
            return ResponseApdu(sw=_SW_PROACTIVE | len(self.proactive[0])) if self.proactive else ResponseApdu()
        if command.p1 or command.p2:
            raise IncorrectP1P2("ENVELOPE has P1 = P2 = 00")
        self.gsm_pending = b""
        try:
            report, submits = self.envelope(ctx, command)
        except DecodeError as exc:
            raise IncorrectData(f"not an OTA SMS-PP download: {exc}") from None
        if submits:
            self.proactive = [_send_short_message(s) for s in submits]
            return ResponseApdu(sw=_SW_PROACTIVE | len(self.proactive[0]))
        if not report or command.le is not None:
            return ResponseApdu(report)
        if command.cla == 0xA0:
            self.gsm_pending = report
            return ResponseApdu(sw=0x9F00 | len(report))
        channel.pending_response = report + b"\x90\x00"
        return ResponseApdu(sw=0x6100 | (len(report) if len(report) < 256 else 0))

    def _gsm_get_response(self, command: CommandApdu) -> ResponseApdu:
        if not self.gsm_pending:
            raise ConditionsNotSatisfied("no response data waiting")
        data, self.gsm_pending = self.gsm_pending[: command.le or 256], b""
        return ResponseApdu(data)

    # -- the secured packet ----------------------------------------------------------------------------------
    def envelope(self, ctx: CardContext, command: CommandApdu) -> tuple[bytes, list[SmsSubmit]]:
        """The SMS-DELIVER-REPORT user data or the SMS-SUBMITs (several when the PoR needs concatenated SMs)
        answering one ENVELOPE (either may be empty). :class:`DecodeError` when no PoR can be given (not OTA,
        bad segment, undecodable header). The DELIVER-REPORT user data is ``02 71 00`` + the response packet,
        whatever its length (the ME's RP-ACK limit is its concern)."""
        deliver = SmsDeliver.from_bytes(SmsPpDownload.from_apdu(command).tpdu)
        if deliver.pid != 0x7F or deliver.dcs not in (0xF6, 0x16) or not deliver.udhi:
            raise DecodeError("only TP-PID 7F, TP-DCS F6/16 with a UDH is (U)SIM data download here")
        message = self.reassembler.feed(deliver.user_data, deliver.originator.digits)
        if message is None:
            return b"", []
        if message.response:
            raise DecodeError("a response packet (UDH IEI 71) sent to the card")
        packet = CommandPacket.from_bytes(message.packet)
        por = self._secured_packet(ctx, packet)
        if por is None:
            return b"", []
        if packet.spi.por_transport is PorTransport.SUBMIT:
            reference = packet.tar[2]
            uds = split_packet(por.to_bytes(), response=True, reference=reference)
            return b"", [SmsSubmit(deliver.originator, ud, message_reference=n) for n, ud in enumerate(uds)]
        return SMS_RESPONSE_UDH + por.to_bytes(), []

    def _secured_packet(self, ctx: CardContext, packet: CommandPacket) -> ResponsePacket | None:
        entry = tar_entry(ctx.state, packet.tar)
        if entry is None or (not entry.rfm and ctx.state.application(entry.target) is None):
            return _error(packet, ResponseStatus.TAR_UNKNOWN)
        spi = packet.spi
        needs_keys = spi.ciphered or spi.integrity is not Integrity.NONE or spi.counter_mode >= CounterMode.HIGHER
        found = None
        if needs_keys:
            kvns = {k.kvn for k, used in ((packet.kic, spi.ciphered), (packet.kid, spi.integrity)) if used}
            kvn = kvns.pop() if len(kvns) == 1 else (packet.kid.kvn if not kvns else -1)
            found = keyset_for(ctx.state, kvn, allow_single_des=entry.allow_single_des)
            if found is None:
                return _error(packet, ResponseStatus.UNIDENTIFIED_SECURITY_ERROR)
        index, keyset = found if found is not None else (-1, KeySet())
        stored = _stored_counter(ctx.state, index)
        try:
            command = unsecure_command(packet, keyset, stored_counter=stored)
        except (SecurityError, UnsupportedError, DecodeError) as exc:
            status = por_status(exc)
            log.info("OTA packet for TAR %s refused: status %02X", packet.tar.hex().upper(), status)
            return _error(packet, status, keyset if spi.integrity is Integrity.CC else None)
        if not meets_minimum_security(spi, entry.msl):
            return _error(packet, ResponseStatus.INSUFFICIENT_SECURITY_LEVEL, keyset if _cc(spi) else None)
        if index >= 0 and stored is not None:
            _store_counter(ctx.state, index, counter_after(spi.counter_mode, command.counter, stored))
        data = _run_script(ctx, entry, command.data)
        if not por_wanted(spi, ResponseStatus.POR_OK):
            return None
        return secure_response(
            data,
            status=ResponseStatus.POR_OK,
            tar=command.tar,
            counter=command.counter,
            spi=spi,
            kic=command.kic,
            kid=command.kid,
            keyset=keyset,
        )


def _cc(spi: Spi) -> bool:
    return bool(spi.integrity is Integrity.CC)


def _error(packet: CommandPacket, status: ResponseStatus, verified: KeySet | None = None) -> ResponsePacket | None:
    """The PoR of a refused packet, if SPI2 wants one: secured only with a key set whose CC just verified and a
    status that allows it (never 01, 05, 06, 09); otherwise unsecured, echoing only the clear TAR."""
    if not por_wanted(packet.spi, status):
        return None
    if verified is not None and may_secure_por(status) and status is not ResponseStatus.RC_CC_DS_FAILED:
        try:
            return secure_response(
                b"",
                status=status,
                tar=packet.tar,
                counter=0,
                spi=packet.spi,
                kic=packet.kic,
                kid=packet.kid,
                keyset=verified,
            )
        except UnsupportedError:
            pass  # SPI2 asks for what the key set cannot do: the error PoR goes unsecured
    return error_response(packet, status)


def _stored_counter(state: CardState, index: int) -> int | None:
    if index < 0:
        return 0
    value = _ota_section(state)["keysets"][index].get("counter", 0)
    return int(value)


def _store_counter(state: CardState, index: int, value: int) -> None:
    _ota_section(state)["keysets"][index]["counter"] = value


# --------------------------------------------------------------------------------------------- remote APDUs


class _Executor:
    """Runs remote APDUs against one receiving entity, with a fresh session per packet (TS 102 226: a command
    script starts at the MF for RFM; RAM runs as through the Security Domain, the packet being the secure
    channel)."""

    def __init__(self, ctx: CardContext, entry: TarEntry) -> None:
        self.ctx = ctx
        self.entry = entry
        self.channel = ChannelContext(0)
        self.files: FileSystem | None = None
        self.file_session = FileSession()
        if entry.rfm:
            raw = ctx.state.files
            self.files = FileSystem.from_dict(raw) if raw else default_filesystem(_iccid_digits(ctx.state))

    def run(self, apdu: CommandApdu) -> ResponseApdu:
        snapshot = self.ctx.state.to_json()
        try:
            if self.files is not None:
                response = process_file_command(self.files, self.file_session, apdu)
                self.ctx.state.files = self.files.to_dict()
            else:
                response = self._ram(apdu)
        except CardError as exc:
            response = ResponseApdu(sw=exc.sw)
        except (GPChannelError, ValueError):
            log.exception("remote APDU %s failed", apdu.header().hex().upper())
            response = ResponseApdu(sw=0x6F00)
        if response.sw >> 8 not in _OK_SW1:
            self.ctx.reload(CardState.from_json(snapshot))
            if self.files is not None:
                raw = self.ctx.state.files
                self.files = FileSystem.from_dict(raw) if raw else default_filesystem(_iccid_digits(self.ctx.state))
        return response

    def _application(self, app: Application, apdu: CommandApdu) -> ResponseApdu:
        """An application reached by a TAR of its install parameters: its applet processes the APDU, with the
        environment the dispatcher gives it (TS 102 226 5: the remote APDUs are for the receiving entity)."""
        applet = self.ctx.applet(app.aid)
        if applet is None:
            raise InsNotSupported(f"application {app.aid.hex().upper()} has no applet class")
        service = SecureChannelService(self.ctx, self.channel, app.aid)
        applet.bind(AppletEnvironment(self.channel.number, app.install_parameters, self.ctx.random, service))
        return applet.process(apdu)

    def _ram(self, apdu: CommandApdu) -> ResponseApdu:
        """The Security Domain's commands (GP 2.3.1, Table 11-1) without a GP secure channel: the command packet's
        CC, counter and the TAR's MSL stand for it. PUT KEY and STORE DATA need a session's keys here: 6D00."""
        target = self.ctx.state.application(self.entry.target)
        if target is None:
            raise ConditionsNotSatisfied("the receiving entity is gone")
        if target.sd is None:
            return self._application(target, apdu)
        sd = target
        ins, lifecycle = apdu.ins, self.ctx.state.lifecycle
        if lifecycle is CardLifeCycle.TERMINATED and ins not in (0xCA, 0xCB):
            raise ConditionsNotSatisfied("the card is TERMINATED")
        if lifecycle is CardLifeCycle.CARD_LOCKED and ins in (0xE4, 0xE6, 0xE8):
            raise ConditionsNotSatisfied("the card is CARD_LOCKED: no card content changes (5.1.1.4)")
        if not apdu.cla & 0x80 and ins not in (0xCA, 0xCB):
            raise CardError(f"CLA {apdu.cla:02X}: GlobalPlatform commands use a proprietary class", sw=0x6E00)
        if ins in (0xCA, 0xCB):
            return sd_data.get_data(self.ctx, sd, apdu)
        if ins != 0xF2:
            self.channel.status_pending = None
        handlers = {
            0xF2: lambda: sd_data.get_status(self.ctx, self.channel, sd, apdu),
            0xE6: lambda: content.install(self.ctx, self.channel, sd, apdu),
            0xE8: lambda: load_block(self.ctx, self.channel, apdu),
            0xE4: lambda: content.delete(self.ctx, self.channel, sd, apdu),
            0xF0: lambda: content.set_status(self.ctx, sd, apdu),
        }
        handler = handlers.get(ins)
        if handler is None:
            raise InsNotSupported(f"INS {ins:02X} is not processed over SCP80 by this emulator")
        return handler()


def _iccid_digits(state: CardState) -> str:
    digits = state.cin.hex().upper().rstrip("F")
    return digits if digits.isdigit() and 10 <= len(digits) <= 20 else "8988211000000000001"


def _run_script(ctx: CardContext, entry: TarEntry, data: bytes) -> bytes:
    """Execute the remote command script and give the response data for the PoR (TS 102 226 5.1 / 5.2)."""
    executor = _Executor(ctx, entry)
    if data[:1] in (b"\xaa", b"\xae"):
        return _run_expanded(executor, data)
    try:
        apdus = decode_compact(data)
    except DecodeError:
        return CompactResponse(0, ResponseApdu(sw=0x6700)).to_bytes()
    executed, last = 0, ResponseApdu(sw=0x9000)
    for apdu in apdus:
        last = executor.run(apdu)
        executed += 1
        if last.sw >> 8 not in _OK_SW1:
            break
    return CompactResponse(executed, last).to_bytes() if apdus else b""


def _run_expanded(executor: _Executor, data: bytes) -> bytes:
    try:
        script = CommandScript.from_bytes(data)
    except DecodeError:
        return ResponseScript((BadFormat(b"\x01"),), 0, data[0] == 0xAA).to_bytes()
    items: list[ResponseItem] = []
    executed = 0
    for item in script.items:
        if isinstance(item, ScriptChaining):
            items.append(ScriptChainingResponse(b"\x02"))  # script chaining not supported [M]
            break
        if not isinstance(item, CApdu):
            continue  # immediate / error actions: nothing to do in this emulator [U]
        response = executor.run(item.apdu)
        executed += 1
        items.append(RApdu(response))
        if response.sw >> 8 not in _OK_SW1:
            break
    return ResponseScript(tuple(items), executed if script.definite else None, script.definite).to_bytes()


def _send_short_message(submit: SmsSubmit) -> bytes:
    """The proactive SEND SHORT MESSAGE command (TS 102 223 6.6.9; tags 81, 82, 8B) carrying ``submit``."""
    body = bytes.fromhex("8103011300") + bytes.fromhex("82028183")
    tpdu = submit.to_bytes()
    body += b"\x8b" + _length(len(tpdu)) + tpdu
    return b"\xd0" + _length(len(body)) + body


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else bytes((0x81, n))
