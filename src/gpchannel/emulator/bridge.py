"""The handset bridge: an SMPP 3.4 server that plays SMS centre and handset in front of one card.

Each submit_sm (SMPP 3.4 4.4) from a bound ESME becomes an SMS-DELIVER TPDU (3GPP TS 23.040 9.2.2.1: TP-OA =
the submit_sm's source_addr, TP-PID = protocol_id, TP-DCS = data_coding, TP-UDHI from esm_class, TP-UD =
short_message) and is downloaded to the card by :class:`gpchannel.emulator.handset.HandsetCard`; the PoR goes
back to the ESME as deliver_sm (4.6.1) from the submit_sm's destination_addr (the card's number), with esm_class
UDHI, protocol_id 7F and data_coding F6. When registered_delivery asks for it (5.2.17) a delivery receipt
follows each submit_sm (esm_class 04, Appendix B text plus the receipted_message_id and message_state TLVs):
DELIVRD when the card took the ENVELOPE, UNDELIV (with the status word in the text) when it refused it.

In ``sink`` mode there is no card: every valid submit_sm is accepted and receipted as delivered (benchmarks).

In ``fleet`` mode (:class:`gpchannel.emulator.fleet_handsets.FleetHandsets`) there are many cards, each reached by
its MSISDN: the submit_sm's destination_addr picks the card (ESME_RINVDSTADR for a number the fleet does not
hold). Cards are driven by ``workers`` tasks, each with its own thread (:data:`FLEET_WORKERS` by default: the
cards' commits wait for the fleet journal's group commit, so more cards in flight share each flush); all the
messages of one card go through the same one, in order.

The SMPP session layer (binds, enquire_link, sequence numbers, generic_nack for unknown or malformed PDUs) is
:class:`gpchannel.smpp.smsc.SmscServer`: a bind whose system_id is not allowed is refused with ESME_RINVSYSID
(SMPP 3.4 4.1.2). The card is driven from a worker thread, one ENVELOPE at a time, in the order the submit_sm
arrived.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import zlib
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.emulator.handset import CardOutcome, HandsetCard
from gpchannel.errors import DecodeError, GPChannelError, TransportError
from gpchannel.ota.sms import Address, SmsDeliver, TypeOfNumber
from gpchannel.ota.udh import MAX_USER_DATA
from gpchannel.smpp.esme import BindMode
from gpchannel.smpp.pdu import BindBody, CommandStatus, ShortMessageBody, Tlv
from gpchannel.smpp.receipt import (
    DATA_CODING_OTA,
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_UDHI,
    PROTOCOL_ID_OTA,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    DeliveryReceipt,
    MessageState,
    receipt_wanted,
)
from gpchannel.smpp.smsc import BoundEvent, Event, SmscServer, SmscSession, SubmitSmEvent, UnboundEvent

__all__ = [
    "ESME_RINVDSTADR",
    "ESME_RINVESMCLASS",
    "ESME_RINVMSGLEN",
    "ESME_RINVSRCADR",
    "ESME_RINVSYSID",
    "ESME_RMSGQFUL",
    "FLEET_WORKERS",
    "BridgeStats",
    "HandsetBridge",
    "deliver_tpdu",
]

_log = logging.getLogger("gpchannel.emulator.bridge")

# SMPP 3.4 5.1.3 command_status values the bridge answers with.
ESME_RINVMSGLEN = 0x01
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RINVESMCLASS = 0x43

FLEET_WORKERS = 16
"""Cards driven at once in fleet mode (default)."""


def deliver_tpdu(
    source_addr: str, source_ton: int, esm_class: int, protocol_id: int, data_coding: int, short_message: bytes
) -> SmsDeliver:
    """The SMS-DELIVER a handset receives for a submit_sm (TS 23.040 9.2.2.1); ValueError for an address or
    user data the TPDU cannot carry (mapped to a command_status by the bridge)."""
    ton = TypeOfNumber(source_ton & 7)
    return SmsDeliver(
        Address(source_addr, ton if ton is not TypeOfNumber.ALPHANUMERIC else TypeOfNumber.UNKNOWN),
        short_message,
        pid=protocol_id,
        dcs=data_coding,
        udhi=bool(esm_class & ESM_CLASS_UDHI),
        no_more_messages=True,
    )


@dataclass
class BridgeStats:
    """Counters since start: submit_sm accepted / refused, ENVELOPEs the card took / refused, deliver_sm sent, and
    the answers (receipts, PoRs) ``lost``: their ESME session had ended, or it refused the deliver_sm."""

    accepted: int = 0
    refused: int = 0
    delivered: int = 0
    undelivered: int = 0
    pors: int = 0
    receipts: int = 0
    lost: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Job:
    session_id: str
    message_id: str
    source_addr: str
    destination_addr: str
    registered_delivery: int
    deliver: SmsDeliver | None
    submitted: str


def _shard(destination: str, count: int) -> int:
    """The worker of a destination: stable (CRC-32, not the salted hash), so one card's messages stay in order."""
    return zlib.crc32(destination.encode()) % count


def _stamp(now: datetime.datetime) -> str:
    return now.strftime("%y%m%d%H%M")


class HandsetBridge:
    """The SMPP server in front of ``card`` (``None``: sink mode), or of a ``fleet`` of cards (``card`` is then
    ``None``; ``workers`` cards are driven at once, default :data:`FLEET_WORKERS`).

    ``allowed_system_ids``: the system_ids whose submit_sm are taken (``None``: any). ``clock`` gives the receipt
    dates (UTC by default). ``track_destinations``: count the accepted submit_sm per destination_addr in
    :attr:`destinations` (benchmarks check that every card got exactly one message). :meth:`serve` runs until
    ``stop`` is set; the listening port is :attr:`port`.
    """

    def __init__(
        self,
        card: HandsetCard | None,
        *,
        host: str = "127.0.0.1",
        port: int = 2775,
        system_id: str = "GPCHANNEL",
        allowed_system_ids: Collection[str] | None = None,
        queue_size: int = 1000,
        clock: Callable[[], datetime.datetime] | None = None,
        fleet: FleetHandsets | None = None,
        workers: int | None = None,
        track_destinations: bool = False,
    ) -> None:
        if card is not None and fleet is not None:
            raise ValueError("a bridge fronts one card or a fleet, not both")
        self.card = card
        self.fleet = fleet
        self.host = host
        self.port = port
        self.system_id = system_id
        self.allowed = None if allowed_system_ids is None else frozenset(allowed_system_ids)
        self.stats = BridgeStats()
        self.destinations: dict[str, int] | None = {} if track_destinations else None
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._server: SmscServer | None = None
        self._sessions: dict[str, SmscSession] = {}
        count = workers if workers is not None else (FLEET_WORKERS if fleet is not None else 1)
        if count < 1:
            raise ValueError(f"workers must be at least 1, got {count}")
        self._queues: list[asyncio.Queue[_Job]] = [asyncio.Queue(queue_size) for _ in range(count)]
        self._next_id = 0
        self._threads: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Listen; :class:`TransportError` when the address cannot be bound (e.g. the port is taken)."""
        server = SmscServer(self.host, self.port, system_id=self.system_id, authorize=self._authorize)
        await server.start()
        self.port = server.port
        self._server = server

    def _authorize(self, bind: BindBody, mode: BindMode) -> int:
        if self.allowed is not None and bind.system_id not in self.allowed:
            return CommandStatus.ESME_RINVSYSID
        return CommandStatus.ESME_ROK

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer ESMEs until ``stop`` is set, then stop listening (queued jobs are finished first)."""
        if self._server is None:
            await self.start()
        server = self._server
        assert server is not None
        threads = self._threads = ThreadPoolExecutor(len(self._queues), thread_name_prefix="gpchannel-card")
        workers = [asyncio.create_task(self._work(queue)) for queue in self._queues]
        pending_next: asyncio.Future[Any] = asyncio.ensure_future(server.next())
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                done, _ = await asyncio.wait({pending_next, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if pending_next in done:
                    self._event(pending_next.result())
                    while (event := server.next_nowait()) is not None:  # the rest of a burst, without a task each
                        self._event(event)
                    pending_next = asyncio.ensure_future(server.next())
            for queue in self._queues:
                await queue.join()
        finally:
            stopper.cancel()
            for worker in workers:
                worker.cancel()
            pending_next.cancel()
            await server.stop()
            self._server = None
            threads.shutdown(wait=False)
            self._threads = None

    # -- events ---------------------------------------------------------------------------------------------
    def _event(self, event: Event) -> None:
        if isinstance(event, BoundEvent):
            self._sessions[event.session.session_id] = event.session
        elif isinstance(event, UnboundEvent):
            self._sessions.pop(event.session.session_id, None)
        else:
            self._submit(event)

    def _refuse(self, event: SubmitSmEvent, status: int, why: str) -> None:
        self.stats.refused += 1
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        _log.info("submit_sm to %r refused (%#04x): %s", event.body.destination_addr, status, why)
        event.reject(status)

    def _submit(self, submitted: SubmitSmEvent) -> None:
        session = self._sessions.get(submitted.session.session_id)
        event = submitted.body
        if self.allowed is not None and (session is None or session.system_id not in self.allowed):
            return self._refuse(submitted, ESME_RINVSYSID, "system_id not allowed")
        if not event.destination_addr:
            return self._refuse(submitted, ESME_RINVDSTADR, "no destination_addr")
        if self.fleet is not None and not self.fleet.knows(event.destination_addr):
            return self._refuse(submitted, ESME_RINVDSTADR, "no card of the fleet has this number")
        message = event.short_message
        if len(message) > MAX_USER_DATA:
            return self._refuse(submitted, ESME_RINVMSGLEN, f"{len(message)} octets, one SM holds {MAX_USER_DATA}")
        if not event.esm_class & ESM_CLASS_UDHI:
            return self._refuse(submitted, ESME_RINVESMCLASS, "an OTA short message has a UDH (esm_class 40)")
        try:
            deliver = deliver_tpdu(
                event.source_addr or "0",
                event.source_addr_ton,
                event.esm_class,
                event.protocol_id,
                event.data_coding,
                message,
            )
        except ValueError as exc:
            return self._refuse(submitted, ESME_RINVSRCADR, str(exc))
        self._next_id += 1
        job = _Job(
            submitted.session.session_id,
            f"{self._next_id:08X}",
            event.source_addr,
            event.destination_addr,
            event.registered_delivery,
            deliver if self.card is not None or self.fleet is not None else None,
            _stamp(self._clock()),
        )
        queue = self._queues[_shard(job.destination_addr, len(self._queues))]
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            return self._refuse(submitted, ESME_RMSGQFUL, "the card's queue is full")
        self.stats.accepted += 1
        if self.destinations is not None:
            self.destinations[job.destination_addr] = self.destinations.get(job.destination_addr, 0) + 1
        submitted.accept(job.message_id)
        return None

    # -- the card -------------------------------------------------------------------------------------------
    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._run(job)
            except Exception:  # one broken job must not stop the bridge
                _log.exception("job %s failed", job.message_id)
            finally:
                queue.task_done()

    async def _run(self, job: _Job) -> None:
        error, text = 0, ""
        if job.deliver is None or (self.card is None and self.fleet is None):
            outcome = CardOutcome(0x9000)
        else:
            try:
                loop = asyncio.get_running_loop()
                if self.fleet is not None:
                    call = functools.partial(self.fleet.deliver, job.destination_addr, job.deliver)
                else:
                    assert self.card is not None
                    call = functools.partial(self.card.deliver, job.deliver)
                outcome = await loop.run_in_executor(self._threads, call)
            except (GPChannelError, DecodeError) as exc:
                _log.warning("the card did not take message %s: %s", job.message_id, exc)
                outcome, error, text = CardOutcome(0), 2, "card unreachable"
        if outcome.delivered:
            self.stats.delivered += 1
        else:
            self.stats.undelivered += 1
            if not text:
                error, text = 1, f"sw {outcome.sw:04X}"
        session = self._sessions.get(job.session_id)
        if session is None or not session.can_receive:
            self.stats.lost += len(outcome.replies) + receipt_wanted(job.registered_delivery, outcome.delivered)
            return
        try:
            await self._answer(session, job, outcome, error, text)
        except TransportError as exc:  # the ESME went away meanwhile, or refused the deliver_sm
            self.stats.lost += 1
            _log.info("answer to message %s not delivered to the ESME: %s", job.message_id, exc)

    async def _answer(self, session: SmscSession, job: _Job, outcome: CardOutcome, error: int, text: str) -> None:
        if receipt_wanted(job.registered_delivery, outcome.delivered):
            state = MessageState.DELIVERED if outcome.delivered else MessageState.UNDELIVERABLE
            receipt = DeliveryReceipt(
                job.message_id,
                state,
                error,
                job.submitted,
                _stamp(self._clock()),
                delivered=1 if outcome.delivered else 0,
                text=text,
            )
            await session.deliver_sm(
                ShortMessageBody(
                    job.source_addr,
                    receipt.to_text(),
                    source_addr=job.destination_addr,
                    esm_class=ESM_CLASS_DELIVERY_RECEIPT,
                    tlvs=(
                        Tlv(TLV_RECEIPTED_MESSAGE_ID, job.message_id.encode() + b"\x00"),
                        Tlv(TLV_MESSAGE_STATE, bytes((state,))),
                    ),
                )
            )
            self.stats.receipts += 1
        for destination, user_data in outcome.replies:
            await session.deliver_sm(
                ShortMessageBody(
                    destination or job.source_addr,
                    user_data,
                    source_addr=job.destination_addr,
                    esm_class=ESM_CLASS_UDHI,
                    protocol_id=PROTOCOL_ID_OTA,
                    data_coding=DATA_CODING_OTA,
                )
            )
            self.stats.pors += 1
