"""The SCP80 campaign worker: jobs out as secured SMS through an SMPP bind, PoRs back into the job store
(issue 10, deliverables 1 and 2).

One round (:meth:`Scp80Worker.tick`, driven by :func:`run_scp80_worker` or by a test with its own clock):

1. **claim** QUEUED ``scp80`` and ``scp81+sms`` jobs (Repository.claim_jobs: a lease for ``lease_seconds``;
   FOR UPDATE SKIP LOCKED on PostgreSQL, so several workers split the queue);
2. for each job, within the campaign's and the bind's rate limits (token buckets): **mark_sent** (ONE
   transaction: the lease is still ours, the (card, KVN) counter advances by one, the job becomes SENT with
   that counter) -> :func:`gpchannel.ota.scp80.secure_command` with the KeyProvider's key set (TS 102 225 5.1)
   over the script (TS 102 226 5.2 expanded, or 5.1 compact) -> ``submit_sm`` (UDHI, PID 7F, DCS F6,
   concatenated when longer than one SM: :class:`gpchannel.smpp.client.OtaSmppClient`);
3. **PoRs** (deliver_sm from the card's MSISDN, UDH IEI 71) are matched to the job in flight for that MSISDN and
   TAR; the PoR's counter must be the job's (an error PoR carries 0: TS 102 225 5.2, ota-notes E.4, and is
   taken for the job in flight). :func:`gpchannel.ota.scp80.unsecure_response` verifies it with the job's key
   set; status 00 -> DONE with every R-APDU (expanded) or the last one (compact); a final error status ->
   FAILED with the status named; a PoR that does not verify is ignored (logged: anyone can send an SMS);
4. **delivery receipts** are matched by message_id; an UNDELIVERABLE one is treated like a missing PoR;
5. **timeouts**: a SENT job without a PoR ``por_timeout`` seconds after its submit is retried (back to QUEUED,
   not before now + backoff; the next send takes a NEW counter) or failed when attempts are used up.

Crash rule (exact): a job is never resent blindly. A worker that dies loses only its leases: QUEUED jobs it held
are claimed by another worker when the lease expires. A job it left SENT (counter used, SMS maybe delivered) is
not in anyone's memory, and its PoR (if any) went to the dead bind; the **SENT-timeout rule** handles it: any
worker's round FAILS the SMS jobs in state SENT that no live worker holds and whose send (``updated_at``) is older
than their ``por_timeout`` + ``lease_seconds`` (the grace lets a live owner's own timeout act first), with the
reason :data:`ORPHAN_REASON`. It does not retry them: the script may have run, and an operator decides (a new
campaign on the failed cards). Within a live worker, a missing PoR is retried per the campaign's retry policy
(:mod:`gpchannel.server.campaigns`); every retry is a new packet with a new counter, so an old packet still
travelling is refused by the card (counter low, 02) and no counter value is ever used twice.

One job per card in flight per worker: a second job of a card (another campaign) waits until the first one is
final, so the card sees its counters in order. SMPP trouble (bind lost, submit refused) is a transient error
for the job (retry with backoff); the worker reconnects through ``connect`` when the bind is gone.

``scp81+sms`` jobs: the worker sends the SCP80 trigger (secured data = the Amendment B Table 3-3 TLV ``81 00``:
"use the configured parameters", to the ISD's TAR 000000; :mod:`gpchannel.card.admin_trigger`) and leaves the
job QUEUED for the admin server, which takes it when the card opens its session. If the job is still QUEUED
``trigger_timeout`` seconds later (or the trigger's PoR is an error), the worker runs the script over SCP80
SMS like an ``scp80`` job (to ``fallback_tar``, default the ISD's RAM TAR). The trigger's counter comes from
Repository.next_counter (the same atomic advance as mark_sent), so it is never reused either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import (
    DecodeError,
    GPChannelError,
    LeaseLost,
    SecurityError,
    SmppStatusError,
    TransportError,
    UnsupportedError,
)
from gpchannel.ota.algorithms import KeySet
from gpchannel.ota.remote_apdu import CommandScript, CompactResponse, ResponseScript, encode_compact
from gpchannel.ota.scp80 import Response, ResponseStatus, secure_command, unsecure_response
from gpchannel.ota.spi import Kic, Kid, PorMode, Spi
from gpchannel.server.campaigns import (
    CampaignSettings,
    ScriptFormat,
    TokenBucket,
    finish_if_done,
    retry_at,
    scp80_tar,
)
from gpchannel.server.inventory import DEFAULT_SPI, ISD_TAR
from gpchannel.smpp.client import PorMessage, Submitted
from gpchannel.smpp.receipt import DeliveryReceipt, MessageState

if TYPE_CHECKING:
    from gpchannel.server.config import ServerServices
    from gpchannel.server.repository import CardRecord, JobRecord, Repository

__all__ = [
    "ORPHAN_REASON",
    "TRIGGER_DEFAULTS",
    "Scp80Worker",
    "SmsLink",
    "WorkerSettings",
    "WorkerStats",
    "interpret_por",
    "run_scp80_worker",
]

_log = logging.getLogger("gpchannel.server.scp80_worker")

TRIGGER_DEFAULTS = bytes.fromhex("8100")
"""Administration Session Triggering Parameters with no sub-TLV: "use the configured parameters" (ota-notes B.3)."""
ORPHAN_REASON = "outcome unknown: the worker that sent it stopped before its PoR came (not resent)"
_FINAL_POR = frozenset(
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


class SmsLink(Protocol):
    """What the worker needs of an SMPP bind (:class:`gpchannel.smpp.client.OtaSmppClient` is one)."""

    closed: bool

    async def submit_packet(
        self, destination: str, packet: bytes, *, reference: int = 0, receipt: bool = True, timeout: float = 10.0
    ) -> Submitted: ...

    async def next_event(self, timeout: float = 10.0) -> DeliveryReceipt | PorMessage | None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's own knobs (the campaign's are in :class:`CampaignSettings`)."""

    batch: int = 100
    """Jobs claimed per round at most, and claimed-but-unsent jobs held at most (the rest stay in the queue
    for the other workers)."""
    max_in_flight: int = 5000
    """Jobs held (claimed or waiting for a PoR) at most."""
    lease_seconds: float = 60.0
    poll_interval: float = 0.2
    """Seconds between rounds when nothing arrives."""
    link_rate: float = 100.0
    """submit_sm per second on the bind (the SMSC's throughput contract)."""
    link_burst: int = 100
    submit_timeout: float = 10.0
    reconnect_seconds: float = 5.0
    """Seconds between two bind attempts while the SMSC cannot be reached."""
    defaults: CampaignSettings = field(default_factory=CampaignSettings)
    """Settings of jobs without a campaign (and the base of a campaign's missing keys)."""


@dataclass
class WorkerStats:
    """What the worker did since it started."""

    claimed: int = 0
    sent: int = 0
    triggers: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    pors: int = 0
    unmatched_pors: int = 0
    receipts: int = 0
    lost_leases: int = 0


@dataclass
class _Flight:
    """A job this worker holds: claimed (``counter`` None) or sent, waiting for its PoR."""

    job: JobRecord
    card: CardRecord
    settings: CampaignSettings
    msisdn: str
    trigger: bool = False
    """scp81+sms: the trigger was sent; the job stays QUEUED for the admin server until ``deadline``."""
    kvn: int = 0
    tar: bytes = b""
    spi: Spi = field(default_factory=Spi)
    kic: Kic | None = None
    kid: Kid | None = None
    keyset: KeySet | None = None
    counter: int | None = None
    deadline: datetime | None = None
    message_ids: tuple[str, ...] = ()
    receipts: list[str] = field(default_factory=list)
    delivery_id: str | None = None
    """The job's delivery id once marked SENT (SMS: ``sms-<job>-<attempt>-<owner>``)."""
    fallback: bool = False


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


def _spi_for(card: CardRecord, settings: CampaignSettings, kvn: int) -> Spi:
    if settings.spi is not None:
        return Spi.from_bytes(bytes.fromhex(settings.spi))
    entry = (card.ota.get("scp80") or {}).get(str(kvn)) or {}
    text = entry.get("spi") if isinstance(entry, Mapping) else None
    try:
        return Spi.from_bytes(bytes.fromhex(text)) if isinstance(text, str) else Spi.from_bytes(DEFAULT_SPI)
    except (ValueError, DecodeError):
        return Spi.from_bytes(DEFAULT_SPI)


def _kvn_for(card: CardRecord, settings: CampaignSettings) -> int:
    if settings.kvn is not None:
        return settings.kvn
    value = card.ota.get("scp80_kvn")
    return int(value) if isinstance(value, int) and 1 <= value <= 15 else 1


def _msisdn(card: CardRecord) -> str | None:
    number = card.msisdn or card.ota.get("msisdn")
    return str(number) if number else None


class Scp80Worker:
    """The SCP80 sender of one process; see the module docstring. ``link`` is a bound SMPP session;
    ``connect`` (optional) makes a new one when it is closed."""

    def __init__(
        self,
        services: ServerServices,
        link: SmsLink | None,
        *,
        owner: str,
        settings: WorkerSettings | None = None,
        connect: Callable[[], Awaitable[SmsLink]] | None = None,
    ) -> None:
        self.services = services
        self.repo: Repository = services.repository
        self.link = link
        self.owner = owner
        self.settings = settings or WorkerSettings()
        self.stats = WorkerStats()
        self._connect = connect
        self._flights: dict[int, _Flight] = {}
        self._busy_cards: dict[int, int] = {}
        """card id -> the job id of this worker's job in flight for it."""
        self._by_message: dict[str, int] = {}
        self._campaigns: dict[int, CampaignSettings] = {}
        self._buckets: dict[int | None, TokenBucket] = {}
        self._link_bucket = TokenBucket(self.settings.link_rate, self.settings.link_burst, self._seconds)
        self._reference = 0
        self._last_stale: datetime | None = None
        self._last_renew: datetime | None = None
        self._next_bind: datetime | None = None
        self._last_finish: datetime | None = None
        self._touched: set[int] = set()

    # ---------------------------------------------------------------------------------------------- helpers
    def _seconds(self) -> float:
        return self.services.clock().timestamp()

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _settings_for(self, job: JobRecord) -> CampaignSettings:
        if job.campaign_id is None:
            return self.settings.defaults
        cached = self._campaigns.get(job.campaign_id)
        if cached is None:
            record = await self._db(self.repo.campaign, job.campaign_id)
            raw = getattr(record, "settings", None) if record is not None else None
            try:
                cached = CampaignSettings.from_dict(raw, defaults=self.settings.defaults)
            except ValueError as exc:
                _log.error("campaign %d has bad settings (%s): the worker's defaults apply", job.campaign_id, exc)
                cached = self.settings.defaults
            self._campaigns[job.campaign_id] = cached
        return cached

    def _bucket(self, campaign_id: int | None, settings: CampaignSettings) -> TokenBucket:
        bucket = self._buckets.get(campaign_id)
        if bucket is None:
            bucket = self._buckets[campaign_id] = TokenBucket(settings.rate, settings.burst, self._seconds)
        return bucket

    def held(self) -> int:
        """Jobs this worker holds now (claimed or in flight)."""
        return len(self._flights)

    def _forget(self, flight: _Flight) -> None:
        if flight.job.campaign_id is not None:
            self._touched.add(flight.job.campaign_id)
        self._flights.pop(flight.job.id, None)
        if self._busy_cards.get(flight.card.id) == flight.job.id:
            del self._busy_cards[flight.card.id]
        for message_id in flight.message_ids:
            self._by_message.pop(message_id, None)

    # ---------------------------------------------------------------------------------------------- a round
    async def tick(self) -> None:
        """One round: timeouts, stale SENT jobs, leases, claims, sends (see the module docstring)."""
        now = self.services.clock()
        await self._expire(now)
        await self._renew(now)
        await self._claim(now)
        await self._send_ready()
        await self._finish_campaigns(now)

    async def _renew(self, now: datetime) -> None:
        """Keep the leases of the QUEUED jobs held here (claimed, or triggered and waiting for the session), every
        third of a lease; a job whose lease was not renewed (taken over, cancelled, or delivered to an admin
        session) is dropped."""
        if self._last_renew is not None and (now - self._last_renew).total_seconds() < self.settings.lease_seconds / 3:
            return
        self._last_renew = now
        queued = [f.job.id for f in self._flights.values() if f.counter is None or (f.trigger and not f.fallback)]
        if not queued:
            return
        renewed = set(
            await self._db(
                self.repo.renew_lease, queued, owner=self.owner, lease_seconds=self.settings.lease_seconds, now=now
            )
        )
        for job_id in queued:
            flight = self._flights.get(job_id)
            if job_id not in renewed and flight is not None:
                self.stats.lost_leases += 1
                _log.info("job %d: lease not renewed (taken over, cancelled or in an admin session): dropped", job_id)
                self._forget(flight)

    async def _claim(self, now: datetime) -> None:
        from gpchannel.server.repository import Transport

        # Hold no more unsent jobs than one batch: the rest stay claimable by the other workers.
        unsent = sum(1 for f in self._flights.values() if f.counter is None)
        room = min(self.settings.batch - unsent, self.settings.max_in_flight - len(self._flights))
        if room <= 0:
            return
        jobs: list[JobRecord] = await self._db(
            self.repo.claim_jobs,
            transports=(Transport.SCP80, Transport.SCP81_SMS),
            owner=self.owner,
            limit=room,
            lease_seconds=self.settings.lease_seconds,
            now=now,
        )
        for job in jobs:
            if job.id in self._flights:
                continue
            self.stats.claimed += 1
            card = await self._db(self.repo.card, job.card_id)
            settings = await self._settings_for(job)
            if card is None:
                await self._final(job.id, "the card is no longer in the store", job.campaign_id)
                continue
            msisdn = _msisdn(card)
            if msisdn is None:
                await self._final(job.id, "the card has no MSISDN: it cannot be reached by SMS", job.campaign_id)
                continue
            self._flights[job.id] = _Flight(job, card, settings, msisdn)

    async def _send_ready(self) -> None:
        from gpchannel.server.repository import Transport

        waiting = [f for f in self._flights.values() if f.counter is None]
        if not waiting or await self._link() is None:
            return  # no bind: nothing is marked sent, no attempt is used; the jobs wait under their leases
        for flight in sorted(waiting, key=lambda f: f.job.id):
            if flight.counter is not None or flight.job.id not in self._flights:
                continue
            busy = self._busy_cards.get(flight.card.id)
            if busy is not None and busy != flight.job.id:
                continue  # one job per card in flight
            if (
                self._link_bucket.available() < 1
                or self._bucket(flight.job.campaign_id, flight.settings).available() < 1
            ):
                continue
            self._link_bucket.take()
            self._bucket(flight.job.campaign_id, flight.settings).take()
            self._busy_cards[flight.card.id] = flight.job.id
            if flight.job.transport is Transport.SCP81_SMS and not flight.fallback:
                await self._send_trigger(flight)
            else:
                await self._send_job(flight)

    # ---------------------------------------------------------------------------------------------- sending
    async def _prepare(self, flight: _Flight, tar: bytes) -> bool:
        """Key set, KIc/KID and SPI of the job; False (job failed) when the card's keys cannot be had."""
        kvn = _kvn_for(flight.card, flight.settings)
        try:
            keyset: KeySet = await self._db(self.services.keys.scp80_keyset, flight.card, kvn)
        except (GPChannelError, ValueError) as exc:
            await self._final(flight.job.id, f"no SCP80 key set {kvn} for the card: {exc}")
            self._forget(flight)
            return False
        if keyset.cipher is None or keyset.mac is None:
            await self._final(flight.job.id, f"key set {kvn} of the card has no cipher / CC algorithm bound")
            self._forget(flight)
            return False
        flight.kvn, flight.tar, flight.keyset = kvn, tar, keyset
        flight.spi = _spi_for(flight.card, flight.settings, kvn)
        flight.kic, flight.kid = Kic.for_cipher(keyset.cipher, kvn), Kid.for_mac(keyset.mac, kvn)
        return True

    def _payload(self, flight: _Flight) -> bytes:
        apdus = [CommandApdu.from_bytes(raw) for raw in flight.job.script]
        if flight.settings.script_format is ScriptFormat.EXPANDED:
            return CommandScript.of(apdus).to_bytes()
        return encode_compact(apdus)

    async def _send_job(self, flight: _Flight) -> None:
        from gpchannel.server.repository import Transport

        job = flight.job
        if job.transport is Transport.SCP81_SMS:
            fallback = flight.settings.fallback_tar
            tar = bytes.fromhex(fallback) if fallback else ISD_TAR
        else:
            tar = scp80_tar(flight.card.ota, job.target, _kvn_for(flight.card, flight.settings))
        if not await self._prepare(flight, tar):
            return
        try:
            payload = self._payload(flight)
        except (ValueError, DecodeError, UnsupportedError) as exc:
            await self._final(job.id, f"the script cannot be sent: {exc}")
            self._forget(flight)
            return
        delivery_id = f"sms-{job.id}-{job.attempts + 1}-{self.owner}"
        try:
            counter: int = await self._db(
                self.repo.mark_sent,
                job.id,
                owner=self.owner,
                kvn=flight.kvn,
                delivery_id=delivery_id,
                now=self.services.clock(),
            )
        except LeaseLost:
            self.stats.lost_leases += 1
            _log.info("job %d: lease lost before sending (taken over or cancelled): dropped", job.id)
            self._forget(flight)
            return
        flight.counter = counter
        flight.delivery_id = delivery_id
        flight.deadline = self.services.clock() + timedelta(seconds=flight.settings.por_timeout)
        await self._submit(flight, payload, counter)

    async def _submit(self, flight: _Flight, payload: bytes, counter: int) -> None:
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
            await self._final(job.id, f"the command packet cannot be built: {exc}")
            self._forget(flight)
            return
        link = await self._link()
        if link is None:
            await self._transient(flight, "no SMPP bind")
            return
        self._reference = (self._reference + 1) & 0xFF
        try:
            submitted = await link.submit_packet(
                flight.msisdn, packet, reference=self._reference, timeout=self.settings.submit_timeout
            )
        except SmppStatusError as exc:
            await self._transient(flight, f"the SMSC refused the submit_sm: {exc}")
            return
        except TransportError as exc:
            await self._transient(flight, f"SMPP: {exc}")
            return
        flight.message_ids = submitted.message_ids
        for message_id in submitted.message_ids:
            self._by_message[message_id] = job.id
        if flight.trigger and not flight.fallback:
            self.stats.triggers += 1
        else:
            self.stats.sent += 1
        _log.info(
            "job %d: %s to %s, TAR %s, KVN %d, counter %d, %d SM",
            job.id,
            "trigger" if flight.trigger and not flight.fallback else "packet",
            flight.msisdn,
            flight.tar.hex().upper(),
            flight.kvn,
            counter,
            len(submitted.message_ids),
        )
        if flight.spi.por is PorMode.NONE and not flight.trigger:
            await self._done(flight, [], "sent; SPI2 asks for no PoR: the outcome is not known")

    async def _send_trigger(self, flight: _Flight) -> None:
        if not await self._prepare(flight, ISD_TAR):
            return
        counter = int(await self._db(self.repo.next_counter, flight.card.id, flight.kvn))
        flight.trigger = True
        flight.counter = counter
        flight.deadline = self.services.clock() + timedelta(seconds=flight.settings.trigger_timeout)
        await self._submit(flight, TRIGGER_DEFAULTS, counter)

    async def _link(self) -> SmsLink | None:
        """The bound SMPP session; a new bind when it is gone (at most one try per ``reconnect_seconds``)."""
        if self.link is not None and not self.link.closed:
            return self.link
        now = self.services.clock()
        if self._connect is None or (self._next_bind is not None and now < self._next_bind):
            return None
        self._next_bind = now + timedelta(seconds=self.settings.reconnect_seconds)
        try:
            self.link = await self._connect()
            _log.info("SMPP bound")
        except TransportError as exc:
            _log.warning("SMPP bind failed (next try in %g s): %s", self.settings.reconnect_seconds, exc)
            self.link = None
        return self.link

    # ---------------------------------------------------------------------------------------------- outcomes
    async def _final(self, job_id: int, reason: str, campaign_id: int | None = None) -> None:
        self.stats.failed += 1
        await self._db(self.repo.fail_job, job_id, reason)
        if campaign_id is not None:
            self._touched.add(campaign_id)

    async def _done(self, flight: _Flight, results: list[tuple[bytes, bytes, int]], reason: str | None) -> None:
        from gpchannel.server.repository import ApduResult, JobState

        job = await self._db(self.repo.job, flight.job.id)
        delivery = job.delivery_id if job is not None else None
        self._forget(flight)
        if delivery is None:
            return
        self.stats.done += 1
        await self._db(
            self.repo.complete_job,
            delivery,
            [ApduResult(c, r, sw) for c, r, sw in results],
            state=JobState.DONE,
            reason=reason,
        )

    async def _failed(self, flight: _Flight, reason: str) -> None:
        self._forget(flight)
        await self._final(flight.job.id, reason)

    async def _transient(self, flight: _Flight, reason: str) -> None:
        """Retry later (new counter) or fail: no PoR, undelivered, SMPP trouble."""
        from gpchannel.server.repository import JobState

        self._forget(flight)
        job = await self._db(self.repo.job, flight.job.id)
        if job is None or job.state not in (JobState.SENT, JobState.QUEUED):
            return
        attempts = job.attempts + 1
        cancelled = await self._cancelled(job)
        when = None if cancelled else retry_at(flight.settings, attempts, self.services.clock())
        if when is None:
            self.stats.failed += 1
            suffix = " (campaign cancelled)" if cancelled else f" after {attempts} attempt(s)"
            await self._db(self.repo.fail_job, job.id, reason + suffix)
        else:
            self.stats.retried += 1
            _log.info("job %d: %s; retry %d at %s", job.id, reason, attempts, when.isoformat())
            await self._db(self.repo.fail_job, job.id, reason, retry_at=when)

    async def _cancelled(self, job: JobRecord) -> bool:
        if job.campaign_id is None:
            return False
        record = await self._db(self.repo.campaign, job.campaign_id)
        return str(getattr(record, "state", "")) == "cancelled"

    async def _expire(self, now: datetime) -> None:
        from gpchannel.server.repository import JobState

        for flight in list(self._flights.values()):
            if flight.deadline is None or flight.deadline > now:
                continue
            if flight.trigger and not flight.fallback:
                job = await self._db(self.repo.job, flight.job.id)
                self._forget(flight)
                if job is None or job.state is not JobState.QUEUED:
                    continue  # the admin session took it (or it was cancelled): not ours any more
                _log.info(
                    "job %d: no admin session %ss after the trigger: SMS fallback",
                    job.id,
                    flight.settings.trigger_timeout,
                )
                fallback = _Flight(job, flight.card, flight.settings, flight.msisdn, trigger=True, fallback=True)
                self._flights[job.id] = fallback
                continue
            seconds = flight.settings.por_timeout
            if flight.receipts and flight.receipts[-1] == MessageState.UNDELIVERABLE.name:
                await self._transient(flight, "the SMS was not delivered (receipt UNDELIV)")
            else:
                delivered = " (the SMS was delivered)" if MessageState.DELIVERED.name in flight.receipts else ""
                await self._transient(flight, f"no PoR within {seconds:g} s{delivered}")
        await self._stale(now)

    async def _stale(self, now: datetime) -> None:
        """The crash rule: SMS jobs left SENT by a worker that stopped (nobody here holds them) whose PoR did not
        come within ``por_timeout`` + ``lease_seconds`` of the send are FAILED, "outcome unknown", never resent:
        the packet may have run on the card and its PoR went to the dead bind. Checked every ``lease_seconds`` / 4."""
        from gpchannel.server.repository import JobState, Transport

        every = self.settings.lease_seconds / 4
        if self._last_stale is not None and (now - self._last_stale).total_seconds() < every:
            return
        self._last_stale = now
        after = 0
        while True:
            sent: list[JobRecord] = await self._db(self.repo.jobs, state=JobState.SENT, after_id=after, limit=1000)
            if not sent:
                return
            for job in sent:
                mine = job.id in self._flights
                sms = job.transport is Transport.SCP80 or (
                    job.transport is Transport.SCP81_SMS and (job.delivery_id or "").startswith("sms-")
                )
                if mine or not sms:
                    continue  # an admin session's delivery follows the admin server's rules
                settings = await self._settings_for(job)
                if job.updated_at + timedelta(seconds=settings.por_timeout + self.settings.lease_seconds) > now:
                    continue
                self.stats.failed += 1
                _log.warning(
                    "job %d: SENT by %s, no PoR since %s: failed, outcome unknown",
                    job.id,
                    job.lease_owner,
                    job.updated_at.isoformat(),
                )
                await self._db(
                    self.repo.complete_job,
                    job.delivery_id or "",
                    [],
                    state=JobState.FAILED,
                    reason=ORPHAN_REASON,
                )
            after = sent[-1].id

    async def _finish_campaigns(self, now: datetime) -> None:
        """Campaigns whose jobs went final here are checked every round; all RUNNING ones every minute."""
        touched, self._touched = self._touched, set()
        if self._last_finish is None or (now - self._last_finish).total_seconds() >= 60:
            self._last_finish = now
            touched |= {r.id for r in await self._db(self.repo.campaigns) if str(r.state) == "running"}
        for campaign_id in sorted(touched):
            await self._db(finish_if_done, self.repo, campaign_id)

    # ---------------------------------------------------------------------------------------------- events
    async def handle(self, event: DeliveryReceipt | PorMessage) -> None:
        if isinstance(event, DeliveryReceipt):
            self.stats.receipts += 1
            job_id = self._by_message.get(event.message_id)
            flight = self._flights.get(job_id) if job_id is not None else None
            if flight is not None:
                flight.receipts.append(event.state.name)
                _log.info("job %d: receipt %s for %s", flight.job.id, event.state.name, event.message_id)
                if event.state in (MessageState.UNDELIVERABLE, MessageState.REJECTED, MessageState.EXPIRED):
                    if not flight.trigger or flight.fallback:
                        await self._transient(flight, f"the SMS was not delivered (receipt {event.state.name})")
                    else:
                        await self._trigger_failed(flight, f"trigger not delivered ({event.state.name})")
                elif flight.delivery_id is not None and event.state is MessageState.DELIVERED:
                    # recorded on the SENT job: "delivered, no PoR yet" and "never delivered" differ
                    note = f"SMS delivered (receipt {event.message_id}), waiting for the PoR"
                    await self._db(self.repo.note_sent_job, flight.delivery_id, note)
            return
        self.stats.pors += 1
        await self._por(event)

    async def _por(self, message: PorMessage) -> None:
        from gpchannel.ota.packet import ResponsePacket

        try:
            packet = ResponsePacket.from_bytes(message.packet)
        except (DecodeError, ValueError) as exc:
            self.stats.unmatched_pors += 1
            _log.warning("PoR from %s does not parse: %s", message.originator, exc)
            return
        candidates = [
            f
            for f in self._flights.values()
            if f.counter is not None and f.msisdn == message.originator.lstrip("+") and f.tar == packet.tar
        ]
        for flight in candidates:
            assert flight.keyset is not None and flight.kic is not None and flight.kid is not None
            try:
                response = unsecure_response(
                    packet, spi=flight.spi, kic=flight.kic, kid=flight.kid, keyset=flight.keyset
                )
            except (SecurityError, DecodeError, UnsupportedError, ValueError):
                continue
            if response.counter not in (flight.counter, 0) or (
                response.counter == 0 and response.status is ResponseStatus.POR_OK
            ):
                continue
            await self._outcome(flight, response)
            return
        self.stats.unmatched_pors += 1
        _log.warning(
            "PoR from %s (TAR %s) matches no job in flight here: ignored", message.originator, packet.tar.hex().upper()
        )

    async def _outcome(self, flight: _Flight, response: Response) -> None:
        status = response.status
        if flight.trigger and not flight.fallback:
            if status is ResponseStatus.POR_OK and response.data[-2:] in (b"", b"\x90\x00"):
                _log.info("job %d: trigger accepted by the card; waiting for its admin session", flight.job.id)
                return
            what = response.data.hex().upper() if status is ResponseStatus.POR_OK else f"PoR {status.name}"
            await self._trigger_failed(flight, f"trigger refused ({what})")
            return
        if status is ResponseStatus.POR_OK:
            try:
                results, reason = interpret_por(response, flight.job.script, flight.settings.script_format)
            except (DecodeError, ValueError) as exc:
                await self._failed(flight, f"PoR 00 but its response data does not parse: {exc}")
                return
            await self._done(flight, results, reason)
        elif status in _FINAL_POR:
            await self._failed(flight, f"PoR status {status:02X} ({status.name})")
        else:  # 08 more time, 0B/0C (the response went another way): not final, the PoR timeout decides
            _log.info("job %d: PoR status %s: waiting", flight.job.id, status.name)

    async def _trigger_failed(self, flight: _Flight, reason: str) -> None:
        from gpchannel.server.repository import JobState

        job = await self._db(self.repo.job, flight.job.id)
        self._forget(flight)
        if job is None or job.state is not JobState.QUEUED:
            return
        _log.info("job %d: %s: SMS fallback", job.id, reason)
        self._flights[job.id] = _Flight(job, flight.card, flight.settings, flight.msisdn, trigger=True, fallback=True)

    async def drain(self, timeout: float) -> int:
        """Handle the PoRs and receipts that arrive until none has come for ``timeout`` seconds; how many."""
        handled = 0
        while self.link is not None and not self.link.closed:
            try:
                event = await self.link.next_event(timeout)
            except DecodeError as exc:
                _log.warning("undecodable deliver_sm: %s", exc)
                continue
            if event is None:
                break
            await self.handle(event)
            handled += 1
        return handled

    # ---------------------------------------------------------------------------------------------- the loop
    async def _receive(self, inbox: asyncio.Queue[DeliveryReceipt | PorMessage], stop: asyncio.Event) -> None:
        """Read every deliver_sm as it arrives (the SMPP session must never wait for us) into ``inbox``."""
        while not stop.is_set():
            link = self.link
            if link is None or link.closed:
                await asyncio.sleep(0.05)
                continue
            try:
                event = await link.next_event(0.5)
            except TransportError as exc:
                _log.warning("SMPP bind lost: %s", exc)
                continue
            except DecodeError as exc:
                _log.warning("undecodable deliver_sm: %s", exc)
                continue
            if event is not None:
                inbox.put_nowait(event)

    async def _handle_safely(self, event: DeliveryReceipt | PorMessage) -> None:
        try:
            await self.handle(event)
        except (GPChannelError, OSError) as exc:
            _log.error("event handling failed: %s", exc)

    async def _handle_all(self, inbox: asyncio.Queue[DeliveryReceipt | PorMessage]) -> None:
        while not inbox.empty():
            await self._handle_safely(inbox.get_nowait())

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``. A reader task takes PoRs and receipts off the bind as they come; they are all
        handled before each round, so a PoR that arrived in time is never taken for a timeout however busy the
        round (sending a backlog) was."""
        inbox: asyncio.Queue[DeliveryReceipt | PorMessage] = asyncio.Queue()
        reader = asyncio.create_task(self._receive(inbox, stop))
        try:
            while not stop.is_set():
                await self._handle_all(inbox)
                try:
                    await self.tick()
                except (GPChannelError, OSError) as exc:
                    _log.error("worker round failed: %s", exc)
                try:
                    first = await asyncio.wait_for(inbox.get(), self.settings.poll_interval)
                except TimeoutError:
                    continue
                await self._handle_safely(first)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def run_scp80_worker(services: ServerServices, *, owner: str, stop: asyncio.Event) -> None:
    """The SCP80 worker of a server process, bound to the SMSC of ``services.config`` until ``stop`` is set.

    ServerConfig: ``smpp`` (the first ``host:port``), ``smpp_system_id``, ``smpp_password``, ``source_addr``, and
    the campaign defaults ``campaign_rate``, ``campaign_max_attempts``, ``campaign_por_timeout`` (for jobs without
    a campaign and the keys a campaign's settings leave out). Returns at once when no SMSC is configured. The bind
    is made at the first send and again whenever it is lost.
    """
    from gpchannel.server.config import parse_address
    from gpchannel.smpp.client import OtaSmppClient

    config = services.config
    if not config.smpp:
        _log.info("no SMSC configured (--smpp): no SCP80 worker")
        return
    host, port = parse_address(config.smpp[0], 2775)
    defaults = CampaignSettings(
        rate=config.campaign_rate,
        max_attempts=config.campaign_max_attempts,
        por_timeout=config.campaign_por_timeout,
    )

    async def connect() -> SmsLink:
        return await OtaSmppClient.connect(
            host, port, config.smpp_system_id, config.smpp_password, source_addr=config.source_addr
        )

    worker = Scp80Worker(services, None, owner=owner, settings=WorkerSettings(defaults=defaults), connect=connect)
    _log.info("SCP80 worker %s: SMSC %s:%d as %r", owner, host, port, config.smpp_system_id)
    try:
        await worker.run(stop)
    finally:
        if worker.link is not None:
            await worker.link.close()
