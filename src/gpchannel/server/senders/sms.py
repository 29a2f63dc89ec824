"""What the SMS transports share (scp80, and the trigger and fallback of scp81+sms): the SMPP bind they need,
the card's SCP80 key set, the secured packet and its submit, and reading a PoR.

Sending a script (:func:`send_script`): **mark_sent** (ONE transaction: the lease is still ours, the (card, KVN)
counter advances by one, the job becomes SENT with that counter) -> :func:`gpchannel.ota.scp80.secure_command`
with the KeyProvider's key set (ETSI TS 102 225 5.1) over the script (ETSI TS 102 226 5.2 expanded, or 5.1
compact) -> ``submit_sm`` (UDHI, PID 7F, DCS F6, concatenated when longer than one SM:
:class:`gpchannel.smpp.client.OtaSmppClient`).

PoRs (:func:`match_por`): a deliver_sm from the card's MSISDN is matched to the job in flight for that MSISDN and
TAR; the PoR's counter must be the flight's (an error PoR carries 0: TS 102 225 5.2, and is taken for the job in
flight); :func:`gpchannel.ota.scp80.unsecure_response` verifies it with the flight's key set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta

from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import (
    CounterExhausted,
    DecodeError,
    GPChannelError,
    LeaseLost,
    RepositoryError,
    SecurityError,
    SmppStatusError,
    TransportError,
    UnsupportedError,
)
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.packet import ResponsePacket
from gpchannel.ota.remote_apdu import CommandScript, CompactResponse, ResponseScript, encode_compact
from gpchannel.ota.scp80 import Response, ResponseStatus, secure_command, unsecure_response
from gpchannel.ota.spi import Kic, Kid, PorMode, Spi
from gpchannel.server.campaigns import CampaignSettings, ScriptFormat
from gpchannel.server.inventory import DEFAULT_SPI
from gpchannel.server.job_state import FlightEvent
from gpchannel.server.repository import CardRecord
from gpchannel.server.sender import Flight, SmsLink, WorkerContext
from gpchannel.smpp.client import PorMessage

_log = logging.getLogger("gpchannel.server.sms")

__all__ = [
    "FINAL_POR",
    "SmsLink",
    "interpret_por",
    "kvn_for",
    "match_por",
    "msisdn_of",
    "prepare",
    "send_script",
    "spi_for",
    "submit",
]

FINAL_POR = frozenset(
    {
        ResponseStatus.RC_CC_DS_FAILED,
        ResponseStatus.CNTR_LOW,
        ResponseStatus.CNTR_HIGH,
        ResponseStatus.CNTR_BLOCKED,
        ResponseStatus.CIPHERING_ERROR,
        ResponseStatus.UNIDENTIFIED_SECURITY_ERROR,
        ResponseStatus.INSUFFICIENT_MEMORY,
        ResponseStatus.TAR_UNKNOWN,
        ResponseStatus.INSUFFICIENT_SECURITY_LEVEL,
    }
)
"""PoR statuses that end the job (TS 102 225 5.2 Table 5.4); the others (more time, ...) wait for the timeout."""


def interpret_por(
    response: Response, script: tuple[bytes, ...], script_format: ScriptFormat
) -> tuple[list[tuple[bytes, bytes, int]], str | None]:
    """The (command, response data, SW) results of a PoR 00 and the failure reason, if the card reported one.

    Expanded (TS 102 226 5.2.2): one R-APDU TLV per executed command, in order. Compact (5.1.2): the number of
    executed commands and the last one's SW and data: one result, for that command. A script the card stopped
    early (an error SW) is DONE with its results: the SWs tell what happened (the job's reason says it too).
    """
    data = response.data
    if script_format is ScriptFormat.EXPANDED:
        parsed = ResponseScript.from_bytes(data)
        out = [(script[n] if n < len(script) else b"", r.data, r.sw) for n, r in enumerate(parsed.responses)]
        executed = parsed.executed if parsed.executed is not None else len(out)
    else:
        compact = CompactResponse.from_bytes(data)
        executed = compact.executed
        command = script[executed - 1] if 0 < executed <= len(script) else b""
        out = [(command, compact.last.data, compact.last.sw)]
    reason = None
    last_sw = out[-1][2] if out else None
    if executed < len(script) or (last_sw is not None and last_sw >> 8 not in (0x90, 0x91, 0x61)):
        reason = f"{executed} of {len(script)} commands executed" + (
            f", last SW {last_sw:04X}" if last_sw is not None else ""
        )
    return out, reason


def spi_for(card: CardRecord, settings: CampaignSettings, kvn: int) -> Spi:
    if settings.spi is not None:
        return Spi.from_bytes(bytes.fromhex(settings.spi))
    entry = (card.ota.get("scp80") or {}).get(str(kvn)) or {}
    text = entry.get("spi") if isinstance(entry, Mapping) else None
    try:
        return Spi.from_bytes(bytes.fromhex(text)) if isinstance(text, str) else Spi.from_bytes(DEFAULT_SPI)
    except (ValueError, DecodeError):
        return Spi.from_bytes(DEFAULT_SPI)


def kvn_for(card: CardRecord, settings: CampaignSettings) -> int:
    if settings.kvn is not None:
        return settings.kvn
    value = card.ota.get("scp80_kvn")
    return int(value) if isinstance(value, int) and 1 <= value <= 15 else 1


def msisdn_of(card: CardRecord) -> str | None:
    number = card.msisdn or card.ota.get("msisdn")
    return str(number) if number else None


async def prepare(worker: WorkerContext, flight: Flight, tar: bytes) -> bool:
    """Key set, KIc/KID and SPI of the job; False (job failed) when the card's keys cannot be had."""
    kvn = kvn_for(flight.card, flight.settings)
    try:
        keyset: Scp80KeySet = await worker.scp80_keyset(flight.card, kvn)
    except (GPChannelError, ValueError) as exc:
        await worker.final(flight.job.id, f"no SCP80 key set {kvn} for the card: {exc}")
        worker.forget(flight)
        return False
    if keyset.cipher is None or keyset.mac is None:
        await worker.final(flight.job.id, f"key set {kvn} of the card has no cipher / CC algorithm bound")
        worker.forget(flight)
        return False
    flight.kvn, flight.tar, flight.keyset = kvn, tar, keyset
    flight.spi = spi_for(flight.card, flight.settings, kvn)
    flight.kic, flight.kid = Kic.for_cipher(keyset.cipher, kvn), Kid.for_mac(keyset.mac, kvn)
    return True


def _payload(flight: Flight) -> bytes:
    apdus = [CommandApdu.from_bytes(raw) for raw in flight.job.script]
    if flight.settings.script_format is ScriptFormat.EXPANDED:
        return CommandScript.of(apdus).to_bytes()
    return encode_compact(apdus)


async def send_script(worker: WorkerContext, flight: Flight, tar: bytes, *, done_without_por: bool) -> None:
    """The job's script as a secured packet to ``tar``, marked SENT first (a fresh counter, the lease checked).
    ``done_without_por``: when the SPI asks for no PoR, the job is DONE once submitted (outcome unknown)."""
    job = flight.job
    if not await prepare(worker, flight, tar):
        return
    try:
        payload = _payload(flight)
    except (ValueError, DecodeError, UnsupportedError) as exc:
        await worker.final(job.id, f"the script cannot be sent: {exc}")
        worker.forget(flight)
        return
    delivery_id = f"sms-{job.id}-{job.attempts + 1}-{worker.owner}"
    try:
        counter = await worker.mark_sent(job.id, kvn=flight.kvn, delivery_id=delivery_id)
    except LeaseLost:
        await worker.lease_lost(flight)
        return
    except CounterExhausted as exc:  # no counter left for this key set: no attempt can succeed
        await worker.final(job.id, f"the script cannot be sent: {exc}", job.campaign_id)
        worker.forget(flight)
        return
    except RepositoryError as exc:  # not marked SENT, nothing sent: the lease runs out, a later round takes it again
        _log.warning("job %d: not marked sent (%s): left to its lease", job.id, exc)
        worker.forget(flight)
        return
    flight.advance(FlightEvent.SEND)
    flight.counter = counter
    flight.delivery_id = delivery_id
    flight.deadline = worker.services.clock() + timedelta(seconds=flight.settings.por_timeout)
    if await submit(worker, flight, payload, counter) and done_without_por and flight.spi.por is PorMode.NONE:
        await worker.done(flight, [], "sent; SPI2 asks for no PoR: the outcome is not known")


async def submit(worker: WorkerContext, flight: Flight, payload: bytes, counter: int) -> bool:
    """Secure ``payload`` with the flight's key set and counter and submit it to the card's MSISDN (True); an SMPP
    failure is transient for the job (retry with a new counter), a packet that cannot be built final (False)."""
    assert flight.keyset is not None and flight.kic is not None and flight.kid is not None
    job = flight.job
    try:
        packet = secure_command(
            payload,
            spi=flight.spi,
            kic=flight.kic,
            kid=flight.kid,
            tar=flight.tar,
            counter=counter,
            keyset=flight.keyset,
        ).to_bytes()
    except (GPChannelError, ValueError) as exc:
        await worker.final(job.id, f"the command packet cannot be built: {exc}")
        worker.forget(flight)
        return False
    link = await worker.sms_link()
    if link is None:
        await worker.transient(flight, "no SMPP bind")
        return False
    try:
        submitted = await link.submit_packet(
            flight.msisdn, packet, reference=worker.next_reference(), timeout=worker.submit_timeout
        )
    except SmppStatusError as exc:
        await worker.transient(flight, f"the SMSC refused the submit_sm: {exc}")
        return False
    except TransportError as exc:
        await worker.transient(flight, f"SMPP: {exc}")
        return False
    worker.sent(flight, submitted.message_ids)
    return True


def match_por(flights: Iterable[Flight], message: PorMessage, packet: ResponsePacket) -> tuple[Flight, Response] | None:
    """The flight a PoR answers, among those with a packet out to its originator and TAR, with the PoR verified
    with the flight's key set: its counter must be the flight's, or 0 for an error PoR (TS 102 225 5.2)."""
    candidates = [
        f for f in flights if not f.state.unsent and f.msisdn == message.originator.lstrip("+") and f.tar == packet.tar
    ]
    for flight in candidates:
        assert flight.keyset is not None and flight.kic is not None and flight.kid is not None
        try:
            response = unsecure_response(packet, spi=flight.spi, kic=flight.kic, kid=flight.kid, keyset=flight.keyset)
        except (SecurityError, DecodeError, UnsupportedError, ValueError):
            continue
        if response.counter not in (flight.counter, 0) or (
            response.counter == 0 and response.status is ResponseStatus.POR_OK
        ):
            continue
        return flight, response
    return None
