"""gpchannel.server.sender: a transport's sending lives in one module behind the Sender protocol.

The demonstration: a toy sender defined and registered here, in the test, is the only sender of a worker; the
worker loop claims its job, asks it to send, and the job ends DONE, with no other module edited. The toy "sends"
by answering every command 9000 itself, after Repository.mark_sent (so the lease check and the counter work as
for any transport). The worker's SMPP bind is a real one to the handset bridge in sink mode (no card).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gpchannel.errors import UnsupportedError
from gpchannel.server.job_state import FlightEvent, FlightState, JobState
from gpchannel.server.repository import JobRecord, Repository
from gpchannel.server.scp80_worker import Scp80Worker, WorkerSettings
from gpchannel.server.sender import Flight, Sender, SenderRegistry, WorkerContext
from gpchannel.server.senders import SENDERS
from gpchannel.server.transports import JobTransport
from gpchannel.smpp import OtaSmppClient
from tests.server.campaign_support import Clock, bridge_for, settle, store
from tests.smpp.conftest import OTA_SERVER

SCRIPT = [bytes.fromhex("00A4040000"), bytes.fromhex("80CA006600")]


def _final(repo: Repository, job_id: int) -> bool:
    job = repo.job(job_id)
    return job is not None and job.state.final


class ToySender:
    """A transport in a dozen lines: mark the job SENT (a counter, the lease checked), answer 9000 per command."""

    transport = JobTransport.SCP80  # the jobs it takes (a new transport name would also need a migration)
    claimed = True

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []

    async def send(self, worker: WorkerContext, flight: Flight) -> None:
        delivery = f"toy-{flight.job.id}"
        counter = await worker.db(worker.repo.mark_sent, flight.job.id, owner=worker.owner, kvn=1, delivery_id=delivery)
        flight.advance(FlightEvent.SEND)
        flight.counter, flight.delivery_id = counter, delivery
        self.sent.append((flight.job.id, counter))
        await worker.done(flight, [(c, b"", 0x9000) for c in flight.job.script], None)

    def settles_orphan(self, job: JobRecord) -> bool:
        return True


def test_a_toy_sender_registered_here_sends_a_job_through_the_worker_loop(tmp_path: Path) -> None:
    clock = Clock()
    services = store(tmp_path, clock)
    repo = services.repository
    card = repo.upsert_card(iccid="8944000000000000001", psk_identity=None, msisdn="447700900001")
    job_id = repo.add_job(card_id=card, transport=JobTransport.SCP80, script=SCRIPT)
    toy = ToySender()
    checked: Sender = toy  # the protocol is satisfied (mypy checks this line)
    registry = SenderRegistry([checked])

    async def scenario() -> Scp80Worker:
        async with bridge_for(None) as bridge:
            link = await OtaSmppClient.connect("127.0.0.1", bridge.port, "toy", "secret", source_addr=OTA_SERVER)
            worker = Scp80Worker(
                services, link, owner="toy", settings=WorkerSettings(poll_interval=0.05), senders=registry
            )
            try:
                await settle(worker, lambda: _final(repo, job_id))
            finally:
                await link.close()
            return worker

    worker = asyncio.run(asyncio.wait_for(scenario(), 60))
    job = repo.job(job_id)
    assert job is not None
    assert (job.state, job.counter_used, job.delivery_id) == (JobState.DONE, 1, f"toy-{job_id}")
    assert [(r.command, r.sw) for r in job.results] == [(c, 0x9000) for c in SCRIPT]
    assert toy.sent == [(job_id, 1)]
    assert (worker.stats.claimed, worker.stats.done, worker.held()) == (1, 1, 0)


def test_the_registry_refuses_a_second_sender_and_an_unknown_transport() -> None:
    registry = SENDERS.copy()
    with pytest.raises(UnsupportedError, match="has a sender already"):
        registry.register(ToySender())
    with pytest.raises(UnsupportedError, match="no sender for transport 'toy'"):
        registry["toy"]
    assert registry.get("toy") is None
    assert SenderRegistry([ToySender()]).claimed() == (JobTransport.SCP80,)


def test_a_flight_moves_only_along_the_table() -> None:
    flight = Flight(job=None, card=None, settings=None, msisdn="1")  # type: ignore[arg-type]
    assert flight.state is FlightState.CLAIMED
    flight.advance(FlightEvent.TRIGGER)
    flight.advance(FlightEvent.FALL_BACK)
    flight.advance(FlightEvent.SEND)
    assert str(flight.state) == FlightState.SENT.value
    from gpchannel.errors import RepositoryError

    with pytest.raises(RepositoryError):
        flight.advance(FlightEvent.SEND)
