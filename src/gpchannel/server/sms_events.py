"""The inbound side of the worker's SMPP bind: PoRs and delivery receipts, read as they arrive and applied to
the flights the worker holds (:class:`gpchannel.server.scp80_worker.Scp80Worker`).

- **PoRs** (deliver_sm from the card's MSISDN, UDH IEI 71) are matched to a flight by
  :func:`gpchannel.server.senders.sms.match_por`. For a TRIGGERED flight (scp81+sms) a PoR 00 means the card
  took the trigger (the job waits for its admin session), anything else sends it to its SMS fallback. For a SENT
  flight: status 00 -> DONE with every R-APDU (expanded) or the last one (compact); a final error status
  (:data:`~gpchannel.server.senders.sms.FINAL_POR`) -> FAILED with the status named; the others wait for the PoR
  timeout. A PoR that does not verify is ignored (logged: anyone can send an SMS).
- **Delivery receipts** are matched by message_id; an UNDELIVERABLE one is treated like a missing PoR (or, for
  a trigger, like a refused trigger); a DELIVERED one is noted on the SENT job (the notes of a round in one
  transaction: :meth:`SmsEvents.flush_notes`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gpchannel.errors import DecodeError, GPChannelError, TransportError
from gpchannel.ota.packet import ResponsePacket
from gpchannel.ota.scp80 import Response, ResponseStatus
from gpchannel.server.job_state import FlightState
from gpchannel.server.sender import Flight, SmsLink, WorkerContext
from gpchannel.server.senders.sms import FINAL_POR, interpret_por, match_por
from gpchannel.smpp.client import PorMessage
from gpchannel.smpp.receipt import DeliveryReceipt, MessageState

__all__ = ["EventCounts", "EventsWorker", "SmsEvents"]

_log = logging.getLogger("gpchannel.server.scp80_worker")


class EventCounts(Protocol):
    """The worker's counters the events move."""

    receipts: int
    pors: int
    unmatched_pors: int


class EventsWorker(WorkerContext, Protocol):
    """What the events need of the worker loop (:class:`gpchannel.server.scp80_worker.Scp80Worker` is one)."""

    @property
    def link(self) -> SmsLink | None:
        """The SMPP bind the events come from (None while unbound)."""

    @property
    def stats(self) -> EventCounts: ...

    def flights(self) -> list[Flight]:
        """The flights held, oldest claim first."""

    def flight_of_message(self, message_id: str) -> Flight | None:
        """The flight whose packet went out as the SM ``message_id``."""

    async def failed(self, flight: Flight, reason: str) -> None:
        """The job failed for good on what the card answered."""

    async def fall_back(self, flight: Flight, reason: str) -> None:
        """A trigger the card did not take: the job goes to its SMS fallback."""


class SmsEvents:
    """PoRs and receipts of one worker's bind (see the module docstring)."""

    def __init__(self, worker: EventsWorker) -> None:
        self.worker = worker
        self._notes: list[tuple[str, str]] = []
        """(delivery id, note) of the DELIVERED receipts not yet stored."""

    async def flush_notes(self) -> None:
        """Store the receipts' notes gathered since the last flush in one transaction (Repository.note_sent_jobs;
        a job no longer SENT under that delivery is left alone)."""
        notes, self._notes = self._notes, []
        if notes:
            await self.worker.db(self.worker.repo.note_sent_jobs, notes)

    async def handle(self, event: DeliveryReceipt | PorMessage) -> None:
        w = self.worker
        if isinstance(event, DeliveryReceipt):
            w.stats.receipts += 1
            flight = w.flight_of_message(event.message_id)
            if flight is not None:
                flight.receipts.append(event.state.name)
                _log.info("job %d: receipt %s for %s", flight.job.id, event.state.name, event.message_id)
                if event.state in (MessageState.UNDELIVERABLE, MessageState.REJECTED, MessageState.EXPIRED):
                    if flight.state is not FlightState.TRIGGERED:
                        await w.transient(flight, f"the SMS was not delivered (receipt {event.state.name})")
                    else:
                        await w.fall_back(flight, f"trigger not delivered ({event.state.name})")
                elif flight.delivery_id is not None and event.state is MessageState.DELIVERED:
                    # recorded on the SENT job: "delivered, no PoR yet" and "never delivered" differ
                    note = f"SMS delivered (receipt {event.message_id}), waiting for the PoR"
                    self._notes.append((flight.delivery_id, note))  # stored by flush_notes, once a round
            return
        w.stats.pors += 1
        await self._por(event)

    async def _por(self, message: PorMessage) -> None:
        w = self.worker
        try:
            packet = ResponsePacket.from_bytes(message.packet)
        except (DecodeError, ValueError) as exc:
            w.stats.unmatched_pors += 1
            _log.warning("PoR from %s does not parse: %s", message.originator, exc)
            return
        matched = match_por(w.flights(), message, packet)
        if matched is not None:
            await self._outcome(*matched)
            return
        w.stats.unmatched_pors += 1
        _log.warning(
            "PoR from %s (TAR %s) matches no job in flight here: ignored", message.originator, packet.tar.hex().upper()
        )

    async def _outcome(self, flight: Flight, response: Response) -> None:
        w = self.worker
        status = response.status
        if flight.state is FlightState.TRIGGERED:
            if status is ResponseStatus.POR_OK and response.data[-2:] in (b"", b"\x90\x00"):
                _log.info("job %d: trigger accepted by the card; waiting for its admin session", flight.job.id)
                return
            what = response.data.hex().upper() if status is ResponseStatus.POR_OK else f"PoR {status.name}"
            await w.fall_back(flight, f"trigger refused ({what})")
            return
        if status is ResponseStatus.POR_OK:
            try:
                results, reason = interpret_por(response, flight.job.script, flight.settings.script_format)
            except (DecodeError, ValueError) as exc:
                await w.failed(flight, f"PoR 00 but its response data does not parse: {exc}")
                return
            await w.done(flight, results, reason)
        elif status in FINAL_POR:
            await w.failed(flight, f"PoR status {status:02X} ({status.name})")
        else:  # 08 more time, 0B/0C (the response went another way): not final, the PoR timeout decides
            _log.info("job %d: PoR status %s: waiting", flight.job.id, status.name)

    async def drain(self, timeout: float) -> int:
        """Handle the PoRs and receipts that arrive until none has come for ``timeout`` seconds; how many."""
        w = self.worker
        handled = 0
        while w.link is not None and not w.link.closed:
            try:
                event = await w.link.next_event(timeout)
            except DecodeError as exc:
                _log.warning("undecodable deliver_sm: %s", exc)
                continue
            if event is None:
                break
            await self.handle(event)
            handled += 1
        await self.flush_notes()
        return handled

    async def receive(self, inbox: asyncio.Queue[DeliveryReceipt | PorMessage], stop: asyncio.Event) -> None:
        """Read every deliver_sm as it arrives (the SMPP session must never wait for us) into ``inbox``."""
        w = self.worker
        while not stop.is_set():
            link = w.link
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

    async def handle_safely(self, event: DeliveryReceipt | PorMessage) -> None:
        try:
            await self.handle(event)
        except (GPChannelError, OSError) as exc:
            _log.error("event handling failed: %s", exc)

    async def handle_all(self, inbox: asyncio.Queue[DeliveryReceipt | PorMessage]) -> None:
        while not inbox.empty():
            await self.handle_safely(inbox.get_nowait())
        try:
            await self.flush_notes()
        except (GPChannelError, OSError) as exc:
            _log.error("storing the receipts' notes failed: %s", exc)
