"""The card side of SCP80: SMS-PP DOWNLOAD ENVELOPEs in, Proofs of Receipt out (ETSI TS 102 225, TS 102 226,
3GPP TS 31.111 7.1.1 and TS 31.115; ota-notes A.8, A.9, E).

Split by responsibility: this module (transport, security checks, PoR), :mod:`gpchannel.card.ota_targets`
(TARs, MSLs, key sets and counters from the state) and :mod:`gpchannel.card.ota_script` (the remote APDUs).

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
   script and its own effects are undone. Secured data that is one tag-81 TLV is instead the SCP81
   Administration Session Triggering Parameters: recorded for the emulator's agent (card/admin_trigger.py);
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

from gpchannel.card.admin_trigger import is_trigger, receive_trigger
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.ota_script import run_script
from gpchannel.card.ota_targets import keyset_for, store_counter, stored_counter, tar_entry
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import (
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    SecurityError,
    UnsupportedError,
)
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.packet import SMS_RESPONSE_UDH, CommandPacket, ResponsePacket
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
    CounterMode,
    Integrity,
    PorTransport,
    Spi,
    meets_minimum_security,
)
from gpchannel.ota.udh import Reassembler, split_packet

__all__ = ["OtaHandler", "is_ota_command"]

log = logging.getLogger("gpchannel.card.ota")

_SW_PROACTIVE = 0x9100
_INS_ENVELOPE, _INS_FETCH, _INS_TERMINAL_RESPONSE, _INS_GET_RESPONSE = 0xC2, 0x12, 0x14, 0xC0


def is_ota_command(command: CommandApdu) -> bool:
    """Whether the dispatcher hands ``command`` to the OTA handler: ENVELOPE, FETCH and TERMINAL RESPONSE
    (CLA 80 or A0), and the GSM-class GET RESPONSE (A0 C0) that fetches an ENVELOPE's response."""
    if command.cla in (0x80, 0xA0) and command.ins in (_INS_ENVELOPE, _INS_FETCH, _INS_TERMINAL_RESPONSE):
        return True
    return command.cla == 0xA0 and command.ins == _INS_GET_RESPONSE


class OtaHandler:
    """The runtime part of the card's OTA side: concatenation buffers and the response waiting for GET
    RESPONSE or FETCH (RAM: lost at power-up, as on a card). The persisted part lives in ``CardState``."""

    def __init__(self, max_pending: int = 8) -> None:
        self.reassembler = Reassembler(max_pending)
        self.gsm_pending = b""
        self.proactive: list[bytes] = []
        self.ram_channels: dict[bytes, ChannelContext] = {}
        """Per receiving entity: the multi-command operations (INSTALL [for load] then LOAD blocks, GET STATUS
        next occurrence) carry over from one command packet to the next, as on a card's RAM session."""

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
        index, keyset = found if found is not None else (-1, Scp80KeySet())
        stored = stored_counter(ctx.state, index)
        try:
            command = unsecure_command(packet, keyset, stored_counter=stored)
        except (SecurityError, UnsupportedError, DecodeError) as exc:
            status = por_status(exc)
            log.info("OTA packet for TAR %s refused: status %02X", packet.tar.hex().upper(), status)
            return _error(packet, status, keyset if spi.integrity is Integrity.CC else None)
        if not meets_minimum_security(spi, entry.msl):
            return _error(packet, ResponseStatus.INSUFFICIENT_SECURITY_LEVEL, keyset if _cc(spi) else None)
        if index >= 0:
            store_counter(ctx.state, index, counter_after(spi.counter_mode, command.counter, stored))
        channel = None if entry.rfm else self.ram_channels.setdefault(entry.target, ChannelContext(0))
        if is_trigger(command.data):  # SCP81 Administration Session Triggering Parameters: card/admin_trigger.py
            data = receive_trigger(ctx.state, entry, command.data)
        else:
            data = run_script(ctx, entry, command.data, channel)
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


def _error(packet: CommandPacket, status: ResponseStatus, verified: Scp80KeySet | None = None) -> ResponsePacket | None:
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


def _send_short_message(submit: SmsSubmit) -> bytes:
    """The proactive SEND SHORT MESSAGE command (TS 102 223 6.6.9; tags 81, 82, 8B) carrying ``submit``."""
    body = bytes.fromhex("8103011300") + bytes.fromhex("82028183")
    tpdu = submit.to_bytes()
    body += b"\x8b" + _length(len(tpdu)) + tpdu
    return b"\xd0" + _length(len(body)) + body


def _length(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else bytes((0x81, n))
