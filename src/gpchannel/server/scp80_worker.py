"""The campaign worker loop: jobs claimed from the store, sent by their transport's sender
(:mod:`gpchannel.server.senders`) over an SMPP bind, PoRs back into the job store.

One round (:meth:`Scp80Worker.tick`, driven by :func:`gpchannel.server.worker.run_scp80_worker` or by a test with
its own clock):

1. **claim** QUEUED jobs of the transports whose sender is ``claimed`` (``scp80``, ``scp81+sms``;
   Repository.claim_batch: a lease for ``lease_seconds``; FOR UPDATE SKIP LOCKED on PostgreSQL, so several
   workers split the queue; with the jobs' cards and key sets, :mod:`gpchannel.server.claim_round`);
2. for each job, within the campaign's and the bind's rate limits (token buckets), its **sender** sends it
   (:mod:`gpchannel.server.senders.sms`: mark_sent, the secured packet, ``submit_sm``); the job in flight is a
   :class:`~gpchannel.server.sender.Flight` whose state (:class:`~gpchannel.server.job_state.FlightState`)
   follows the transition table of :mod:`gpchannel.server.job_state`;
3. **PoRs and delivery receipts** are applied to the flights by :mod:`gpchannel.server.sms_events`;
4. **timeouts**: a SENT job without a PoR ``por_timeout`` seconds after its submit is retried (back to QUEUED,
   not before now + backoff; the next send takes a NEW counter) or failed when attempts are used up.

Crash rule (exact): a job is never resent blindly. A worker that dies loses only its leases: QUEUED jobs it held
are claimed by another worker when the lease expires; the jobs it left SENT are FAILED by the **SENT-timeout rule**
of :mod:`gpchannel.server.orphans` (outcome unknown, :data:`ORPHAN_REASON`), never resent. Within a live worker, a
missing PoR is retried per the campaign's retry policy (:mod:`gpchannel.server.campaigns`); every retry is a new
packet with a new counter, so an old packet still travelling is refused by the card (counter low, 02) and no
counter value is ever used twice.

One job per card in flight per worker: a second job of a card waits until the first one is final, so the card
sees its counters in order. SMPP trouble is a transient error for the job (retry with backoff); the worker binds
again through ``connect``. ``scp81+sms`` jobs (:mod:`gpchannel.server.senders.scp81_sms`): a TRIGGERED flight
whose job is still QUEUED ``trigger_timeout`` s later (or whose trigger's PoR is an error) goes to FALLBACK, and
its sender runs the script over SCP80 SMS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gpchannel.errors import GPChannelError, TransportError
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.server.campaigns import CampaignSettings, TokenBucket, finish_if_done, retry_at
from gpchannel.server.claim_round import ClaimedRound, SettingsCache, claim_round
from gpchannel.server.job_state import FlightEvent, FlightState, JobState, next_flight_state
from gpchannel.server.orphans import ORPHAN_REASON, settle_orphans
from gpchannel.server.repository import ApduResult
from gpchannel.server.send_batch import SendBatch
from gpchannel.server.sender import Flight, SenderRegistry, SmsLink
from gpchannel.server.senders import SENDERS
from gpchannel.server.senders.scp81_sms import TRIGGER_DEFAULTS
from gpchannel.server.senders.sms import interpret_por, msisdn_of
from gpchannel.server.sms_events import SmsEvents
from gpchannel.smpp.client import PorMessage
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
]

_log = logging.getLogger("gpchannel.server.scp80_worker")


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


class Scp80Worker:
    """The job worker of one process; see the module docstring. ``link`` is a bound SMPP session;
    ``connect`` (optional) makes a new one when it is closed; ``senders`` (default: the built-in ones) sends the
    jobs of each transport it claims."""

    def __init__(
        self,
        services: ServerServices,
        link: SmsLink | None,
        *,
        owner: str,
        settings: WorkerSettings | None = None,
        connect: Callable[[], Awaitable[SmsLink]] | None = None,
        senders: SenderRegistry | None = None,
    ) -> None:
        self.services = services
        self.repo: Repository = services.repository
        self.link = link
        self.owner = owner
        self.settings = settings or WorkerSettings()
        self.stats = WorkerStats()
        self._connect = connect
        self.senders = senders if senders is not None else SENDERS
        self.events = SmsEvents(self)
        self.send_batch = SendBatch(self.repo, owner, services.clock, self.db)
        self._flights: dict[int, Flight] = {}
        self._unsent: dict[int, Flight] = {}
        """The held flights that may have nothing sent yet (claimed, or back for a fallback): see _waiting."""
        self._busy_cards: dict[int, int] = {}
        """card id -> the job id of this worker's job in flight for it."""
        self._by_message: dict[str, int] = {}
        self._campaigns = SettingsCache(self.repo, self.settings.defaults)
        self._keysets: dict[tuple[int, int], Scp80KeySet] = {}
        """The key sets opened with this round's claim, by (card id, KVN): dropped at the round's end."""
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

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def mark_sent(self, job_id: int, *, kvn: int, delivery_id: str) -> int:
        return await self.send_batch.mark_sent(job_id, kvn=kvn, delivery_id=delivery_id)

    async def _settings_for(self, job: JobRecord) -> CampaignSettings:
        cached = self._campaigns.cached(job)
        return cached if cached is not None else await self.db(self._campaigns, job)

    async def scp80_keyset(self, card: CardRecord, kvn: int) -> Scp80KeySet:
        """The key set opened with this round's claim (claim_round.py), else read now (KeyNotFound, ...)."""
        found = self._keysets.pop((card.id, kvn), None)
        return found if found is not None else await self.db(self.services.keys.scp80_keyset, card, kvn)

    def _bucket(self, campaign_id: int | None, settings: CampaignSettings) -> TokenBucket:
        bucket = self._buckets.get(campaign_id)
        if bucket is None:
            bucket = self._buckets[campaign_id] = TokenBucket(settings.rate, settings.burst, self._seconds)
        return bucket

    @property
    def submit_timeout(self) -> float:
        return self.settings.submit_timeout

    def next_reference(self) -> int:
        self._reference = (self._reference + 1) & 0xFF
        return self._reference

    def sent(self, flight: Flight, message_ids: tuple[str, ...]) -> None:
        """A sender submitted the flight's packet as these SMs."""
        flight.message_ids = message_ids
        for message_id in message_ids:
            self._by_message[message_id] = flight.job.id
        triggered = flight.state is FlightState.TRIGGERED
        if triggered:
            self.stats.triggers += 1
        else:
            self.stats.sent += 1
        what = "trigger" if triggered else "packet"
        _log.info("job %d: %s to %s, TAR %s, KVN %d, counter %d, %d SM", flight.job.id, what, flight.msisdn,
                  flight.tar.hex().upper(), flight.kvn, flight.counter, len(message_ids))  # fmt: skip

    async def lease_lost(self, flight: Flight) -> None:
        self.stats.lost_leases += 1
        _log.info("job %d: lease lost before sending (taken over or cancelled): dropped", flight.job.id)
        self.forget(flight)

    def _fall_back(self, flight: Flight, job: JobRecord) -> None:
        """A TRIGGERED flight whose job is still QUEUED: held again, for its sender's SMS fallback."""
        state = next_flight_state(flight.state, FlightEvent.FALL_BACK)
        self._flights[job.id] = self._unsent[job.id] = Flight(
            job, flight.card, flight.settings, flight.msisdn, state=state
        )

    def _waiting(self) -> list[Flight]:
        """The held flights with nothing sent yet, those that went out or were dropped pruned (a flight leaves
        the unsent states only by its sender's advance, or by forget): no scan of every flight held."""
        for job_id, flight in list(self._unsent.items()):
            if not flight.state.unsent or self._flights.get(job_id) is not flight:
                del self._unsent[job_id]
        return list(self._unsent.values())

    def held(self) -> int:
        """Jobs this worker holds now (claimed or in flight)."""
        return len(self._flights)

    def forget(self, flight: Flight) -> None:
        if flight.job.campaign_id is not None:
            self._touched.add(flight.job.campaign_id)
        self._flights.pop(flight.job.id, None)
        if self._busy_cards.get(flight.card.id) == flight.job.id:
            del self._busy_cards[flight.card.id]
        for message_id in flight.message_ids:
            self._by_message.pop(message_id, None)

    # ---------------------------------------------------------------------------------------------- a round
    async def tick(self) -> None:
        """One round: timeouts, stale SENT jobs, leases, claims, sends (see the module docstring).

        The jobs held unsent are sent WHILE the next batch is claimed (two trips to the database overlapping: the
        claim, and the sends' group commit then their submit_sm); the batch claimed is sent in the next round.
        With nothing to send, the claim comes first and its batch is sent in this round."""
        now = self.services.clock()
        await self._expire(now)
        await self._renew(now)
        try:
            going = await self._ready()
            if not going:
                await self._claim(now)
                await self._send(await self._ready())
            else:
                sends = asyncio.ensure_future(self._send(going))
                try:
                    await self._claim(now, sending=len(going))
                finally:
                    await sends
        finally:
            self._drop_keysets()
        await self._finish_campaigns(now)

    def _drop_keysets(self) -> None:
        """Keep the key sets opened with a claim only for the jobs still waiting to be sent."""
        if self._keysets:
            waiting = {f.card.id for f in self._waiting()}
            self._keysets = {key: found for key, found in self._keysets.items() if key[0] in waiting}

    async def _renew(self, now: datetime) -> None:
        """Keep the leases of the QUEUED jobs held here (claimed, or triggered and waiting for the session), every
        third of a lease; a job whose lease was not renewed (taken over, cancelled, or delivered to an admin
        session) is dropped."""
        if self._last_renew is not None and (now - self._last_renew).total_seconds() < self.settings.lease_seconds / 3:
            return
        self._last_renew = now
        queued = [f.job.id for f in self._flights.values() if f.state.stored is JobState.QUEUED]
        if not queued:
            return
        renewed = set(
            await self.db(
                self.repo.renew_lease, queued, owner=self.owner, lease_seconds=self.settings.lease_seconds, now=now
            )
        )
        for job_id in queued:
            flight = self._flights.get(job_id)
            if job_id not in renewed and flight is not None:
                self.stats.lost_leases += 1
                _log.info("job %d: lease not renewed (taken over, cancelled or in an admin session): dropped", job_id)
                self.forget(flight)

    async def _claim(self, now: datetime, *, sending: int = 0) -> None:
        # Hold no more unsent jobs than one batch besides the ``sending`` ones being sent now: the rest stay
        # claimable by the other workers.
        unsent = len(self._waiting()) - sending
        room = min(self.settings.batch - unsent, self.settings.max_in_flight - len(self._flights))
        if room <= 0:
            return
        claimed: ClaimedRound = await self.db(
            claim_round, self.repo, self.services.keys, transports=self.senders.claimed(), owner=self.owner,
            limit=room, lease_seconds=self.settings.lease_seconds, now=now, settings_of=self._campaigns,
            held=set(self._flights),
        )  # fmt: skip
        self._keysets.update(claimed.keysets)
        for job, card, settings in ((c.job, c.card, c.settings) for c in claimed.claimed):
            if job.id in self._flights:
                continue
            self.stats.claimed += 1
            if card is None:
                await self.final(job.id, "the card is no longer in the store", job.campaign_id)
                continue
            msisdn = msisdn_of(card)
            if msisdn is None:
                await self.final(job.id, "the card has no MSISDN: it cannot be reached by SMS", job.campaign_id)
                continue
            self._flights[job.id] = self._unsent[job.id] = Flight(job, card, settings, msisdn)

    async def _ready(self) -> list[Flight]:
        """The held unsent jobs that may go now (one per card, within the rate limits), their tokens taken; none
        without a bind (nothing is marked sent, no attempt is used: the jobs wait under their leases)."""
        waiting = self._waiting()
        if not waiting or await self.sms_link() is None:
            return []
        going = []
        for flight in sorted(waiting, key=lambda f: f.job.id):
            busy = self._busy_cards.get(flight.card.id)
            if busy is not None and busy != flight.job.id:
                continue  # one job per card in flight
            bucket = self._bucket(flight.job.campaign_id, flight.settings)
            if self._link_bucket.available() < 1 or bucket.available() < 1:
                continue
            self._link_bucket.take()
            bucket.take()
            self._busy_cards[flight.card.id] = flight.job.id
            going.append(flight)
        return going

    async def _send(self, going: list[Flight]) -> None:
        """Send concurrently (their mark_sent committed together, server/send_batch.py); an error after all ended."""
        sends = [self.senders[f.job.transport].send(self, f) for f in going]
        for outcome in await asyncio.gather(*sends, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def sms_link(self) -> SmsLink | None:
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
    async def final(self, job_id: int, reason: str, campaign_id: int | None = None) -> None:
        self.stats.failed += 1
        await self.db(self.repo.fail_job, job_id, reason)
        if campaign_id is not None:
            self._touched.add(campaign_id)

    async def done(self, flight: Flight, results: list[tuple[bytes, bytes, int]], reason: str | None) -> None:
        job = await self.db(self.repo.job, flight.job.id)
        delivery = job.delivery_id if job is not None else None
        self.forget(flight)
        if delivery is None:
            return
        self.stats.done += 1
        await self.db(
            self.repo.complete_job,
            delivery,
            [ApduResult(c, r, sw) for c, r, sw in results],
            state=JobState.DONE,
            reason=reason,
        )

    async def failed(self, flight: Flight, reason: str) -> None:
        self.forget(flight)
        await self.final(flight.job.id, reason)

    async def transient(self, flight: Flight, reason: str) -> None:
        """Retry later (new counter) or fail: no PoR, undelivered, SMPP trouble."""
        self.forget(flight)
        job = await self.db(self.repo.job, flight.job.id)
        if job is None or job.state not in (JobState.SENT, JobState.QUEUED):
            return
        attempts = job.attempts + 1
        cancelled = await self._cancelled(job)
        when = None if cancelled else retry_at(flight.settings, attempts, self.services.clock())
        if when is None:
            self.stats.failed += 1
            suffix = " (campaign cancelled)" if cancelled else f" after {attempts} attempt(s)"
            await self.db(self.repo.fail_job, job.id, reason + suffix)
        else:
            self.stats.retried += 1
            _log.info("job %d: %s; retry %d at %s", job.id, reason, attempts, when.isoformat())
            await self.db(self.repo.fail_job, job.id, reason, retry_at=when)

    async def _cancelled(self, job: JobRecord) -> bool:
        if job.campaign_id is None:
            return False
        record = await self.db(self.repo.campaign, job.campaign_id)
        return str(getattr(record, "state", "")) == "cancelled"

    async def _expire(self, now: datetime) -> None:
        for flight in list(self._flights.values()):
            if flight.deadline is None or flight.deadline > now:
                continue
            if flight.state is FlightState.TRIGGERED:
                job = await self.db(self.repo.job, flight.job.id)
                self.forget(flight)
                if job is None or job.state is not JobState.QUEUED:
                    continue  # the admin session took it (or it was cancelled): not ours any more
                _log.info(
                    "job %d: no admin session %ss after the trigger: SMS fallback",
                    job.id,
                    flight.settings.trigger_timeout,
                )
                self._fall_back(flight, job)
                continue
            seconds = flight.settings.por_timeout
            if flight.receipts and flight.receipts[-1] == MessageState.UNDELIVERABLE.name:
                await self.transient(flight, "the SMS was not delivered (receipt UNDELIV)")
            else:
                delivered = " (the SMS was delivered)" if MessageState.DELIVERED.name in flight.receipts else ""
                await self.transient(flight, f"no PoR within {seconds:g} s{delivered}")
        await self._stale(now)

    async def _stale(self, now: datetime) -> None:
        """The crash rule (:mod:`gpchannel.server.orphans`), checked every ``lease_seconds`` / 4."""
        every = self.settings.lease_seconds / 4
        if self._last_stale is not None and (now - self._last_stale).total_seconds() < every:
            return
        self._last_stale = now
        await settle_orphans(
            repo=self.repo, db=self.db, senders=self.senders, held=self._flights, settings_for=self._settings_for,
            lease_seconds=self.settings.lease_seconds, stats=self.stats, now=now,
        )  # fmt: skip

    async def _finish_campaigns(self, now: datetime) -> None:
        """Campaigns whose jobs went final here are checked every round; all RUNNING ones every minute."""
        touched, self._touched = self._touched, set()
        if self._last_finish is None or (now - self._last_finish).total_seconds() >= 60:
            self._last_finish = now
            touched |= {r.id for r in await self.db(self.repo.campaigns) if str(r.state) == "running"}
        for campaign_id in sorted(touched):
            await self.db(finish_if_done, self.repo, campaign_id, by=f"server:{self.owner}", at=now)

    # ---------------------------------------------------------------------------------------------- events
    async def handle(self, event: DeliveryReceipt | PorMessage) -> None:
        """A PoR or a delivery receipt from the bind (:class:`~gpchannel.server.sms_events.SmsEvents`)."""
        await self.events.handle(event)
        await self.events.flush_notes()

    async def drain(self, timeout: float) -> int:
        """Handle the PoRs and receipts that arrive until none has come for ``timeout`` seconds; how many."""
        return await self.events.drain(timeout)

    async def fall_back(self, flight: Flight, reason: str) -> None:
        """The trigger of a TRIGGERED flight failed: its job, if still QUEUED, goes to its sender's SMS fallback."""
        job = await self.db(self.repo.job, flight.job.id)
        self.forget(flight)
        if job is None or job.state is not JobState.QUEUED:
            return
        _log.info("job %d: %s: SMS fallback", job.id, reason)
        self._fall_back(flight, job)

    def flights(self) -> list[Flight]:
        """The flights held here, oldest claim first."""
        return list(self._flights.values())

    def flight_of_message(self, message_id: str) -> Flight | None:
        job_id = self._by_message.get(message_id)
        return self._flights.get(job_id) if job_id is not None else None

    # ---------------------------------------------------------------------------------------------- the loop
    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``. A reader task takes PoRs and receipts off the bind as they come; they are all
        handled before each round, so a PoR that arrived in time is never taken for a timeout however busy the
        round (sending a backlog) was."""
        inbox: asyncio.Queue[DeliveryReceipt | PorMessage] = asyncio.Queue()
        reader = asyncio.create_task(self.events.receive(inbox, stop))
        try:
            while not stop.is_set():
                await self.events.handle_all(inbox)
                try:
                    await self.tick()
                except (GPChannelError, OSError) as exc:
                    _log.error("worker round failed: %s", exc)
                try:
                    first = await asyncio.wait_for(inbox.get(), self.settings.poll_interval)
                except TimeoutError:
                    continue
                await self.events.handle_safely(first)
            await self.events.handle_all(inbox)  # what came in the last round, the receipts' notes stored
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
