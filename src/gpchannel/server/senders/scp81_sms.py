"""The ``scp81+sms`` transport: an SCP80 SMS triggers the card's admin session, and the script goes by SMS if no
session comes.

The worker sends the trigger (secured data = the Amendment B Table 3-3 TLV ``81 00``: "use the configured
parameters", to the ISD's TAR 000000; :mod:`gpchannel.card.admin_trigger`) and leaves the job QUEUED for the
admin server, which takes it when the card opens its session (flight TRIGGERED). If the job is still QUEUED
``trigger_timeout`` seconds later (or the trigger's PoR is an error), the worker loop moves the flight to
FALLBACK and this sender runs the script over SCP80 SMS like an ``scp80`` job (to ``fallback_tar``, default the
ISD's RAM TAR). The trigger's counter comes from Repository.next_counter (the same atomic advance as mark_sent),
so it is never reused either.
"""

from __future__ import annotations

from datetime import timedelta

from gpchannel.server.inventory import ISD_TAR
from gpchannel.server.job_state import FlightEvent, FlightState
from gpchannel.server.repository import JobRecord
from gpchannel.server.sender import Flight, WorkerContext
from gpchannel.server.senders import sms
from gpchannel.server.transports import JobTransport

__all__ = ["TRIGGER_DEFAULTS", "Scp81SmsSender"]

TRIGGER_DEFAULTS = bytes.fromhex("8100")
"""Administration Session Triggering Parameters with no sub-TLV: "use the configured parameters" (ota-notes B.3)."""


class Scp81SmsSender:
    """Sends the trigger of a CLAIMED ``scp81+sms`` job, and the script of a FALLBACK one."""

    transport = JobTransport.SCP81_SMS
    claimed = True

    async def send(self, worker: WorkerContext, flight: Flight) -> None:
        if flight.state is FlightState.CLAIMED:
            await self._trigger(worker, flight)
            return
        fallback = flight.settings.fallback_tar
        tar = bytes.fromhex(fallback) if fallback else ISD_TAR
        # The fallback's SPI asking for no PoR leaves the job SENT until the PoR timeout (as before the split).
        await sms.send_script(worker, flight, tar, done_without_por=False)

    async def _trigger(self, worker: WorkerContext, flight: Flight) -> None:
        if not await sms.prepare(worker, flight, ISD_TAR):
            return
        counter = int(await worker.db(worker.repo.next_counter, flight.card.id, flight.kvn))
        flight.advance(FlightEvent.TRIGGER)
        flight.counter = counter
        flight.deadline = worker.services.clock() + timedelta(seconds=flight.settings.trigger_timeout)
        await sms.submit(worker, flight, TRIGGER_DEFAULTS, counter)

    def settles_orphan(self, job: JobRecord) -> bool:
        return (job.delivery_id or "").startswith("sms-")  # the SMS fallback's; an admin session's is not ours
