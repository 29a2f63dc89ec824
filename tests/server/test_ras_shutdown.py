"""Server shutdown racing incoming admin sessions (server/ras.py, server/store_gate.py, server/app.py), over real
sockets on 127.0.0.1 with the job store on SQLite. The race is set up with events, not sleeps: the card's PSK
lookup (inside the TLS handshake, in the listener's worker thread) is held until the server logged that it is
shutting down, then let go, so that the handshake completes during the shutdown.

What must hold: the late session is refused cleanly (the card sees the connection closed without an answer, the
job stays queued), nothing is logged as an error or with a traceback, and no store call runs once the admin side
has closed: the handler does not look the card up, a PSK lookup after that point is refused with no query.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from gpchannel.errors import AdminProtocolError, RepositoryError, TransportError
from gpchannel.server.app import ServerAddresses, run_server
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.ras import AdminSessions
from gpchannel.server.repository import CardRecord, JobState, JobTransport, Repository
from gpchannel.server.store_gate import StoreGate
from tests.server.server_support import AdminCard, register

IDENTITY = "8988211000000000001"
PSK = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")
WAIT = 20.0


class HeldRepository(Repository):
    """The real store; the card look-ups by identity (one, or a batch of the PSK look-ups) report each call and,
    once ``hold`` is armed, wait for ``release``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.lookups: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.hold = False

    def _held(self, identities: Sequence[str]) -> None:
        self.lookups.extend(identities)
        if self.hold:
            self.entered.set()
            assert self.release.wait(WAIT), "the test never released the lookup"

    def card_by_identity(self, psk_identity: str) -> CardRecord | None:
        self._held([psk_identity])
        return super().card_by_identity(psk_identity)

    def cards_by_identity(self, identities: Sequence[str]) -> dict[str, CardRecord]:
        self._held(identities)
        return super().cards_by_identity(identities)


class LineSeen(logging.Handler):
    """Sets ``seen`` when a record whose message contains ``text`` is logged; keeps every record."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def held(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'ras.db'}"
    repository = HeldRepository(url)
    keys = DbKeyProvider(repository, os.urandom(32))
    config = ServerConfig(admin_port=0, api_port=0, data_dir=tmp_path, db_url=url)
    services = ServerServices(repository=repository, keys=keys, config=config)
    yield services, repository
    repository.close()


def test_session_whose_handshake_completes_during_shutdown_is_refused(
    held: tuple[ServerServices, HeldRepository],
) -> None:
    services, repository = held
    card_id = register(services, None, IDENTITY, PSK)
    job = services.repository.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[SELECT_ISD], target=b"")
    statements: list[str] = []
    closed = threading.Event()

    def after_close(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if closed.is_set():
            statements.append(statement)

    event.listen(repository.engine, "before_cursor_execute", after_close)
    watch = LineSeen("shutting down, new sessions are refused")
    logger = logging.getLogger("gpchannel")
    logger.addHandler(watch)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    outcome: list[object] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        ready: asyncio.Future[ServerAddresses] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(run_server(services.config, stop, on_ready=ready.set_result, services=services))
        addresses = await ready
        assert addresses.admin is not None
        repository.lookups.clear()
        repository.hold = True
        late = asyncio.create_task(AdminCard.connect(addresses.admin[1], IDENTITY, PSK))
        assert await asyncio.to_thread(repository.entered.wait, WAIT)  # the handshake is in the PSK lookup
        stop.set()
        assert await asyncio.to_thread(watch.seen.wait, WAIT)  # the admin side is shutting down
        repository.release.set()  # the lookup answers: the handshake completes during the shutdown
        card = await late
        try:
            outcome.append(await card.first())
        except (EOFError, AdminProtocolError, TransportError) as exc:
            outcome.append(exc)
        finally:
            await card.close()
        await server
        closed.set()  # the server is down: nothing may touch the store from here on

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(watch)
        logger.setLevel(previous)
    late_statements = list(statements)  # (the checks below query the store themselves)
    assert isinstance(outcome[0], EOFError | AdminProtocolError | TransportError), outcome  # no answer
    assert repository.lookups == [IDENTITY]  # the PSK lookup only: the refused session did not look the card up
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.QUEUED and record.delivery_id is None
    messages = [r.getMessage() for r in watch.records]
    assert any("refused: the server is shutting down" in m for m in messages), messages
    assert [m for r, m in zip(watch.records, messages, strict=True) if r.levelno >= logging.ERROR or r.exc_info] == []
    assert late_statements == []


def test_psk_lookup_and_store_calls_after_close_touch_nothing(held: tuple[ServerServices, HeldRepository]) -> None:
    services, repository = held
    register(services, None, IDENTITY, PSK)
    sessions = AdminSessions(services)
    assert sessions.psk_lookup(IDENTITY.encode()) == PSK
    asyncio.run(sessions.close())
    repository.lookups.clear()
    assert sessions.psk_lookup(IDENTITY.encode()) is None  # the TLS engine answers unknown_psk_identity
    assert repository.lookups == []


def test_store_gate_waits_for_running_calls_and_refuses_later_ones() -> None:
    gate = StoreGate()
    started, finish = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert finish.wait(WAIT)
        return "done"

    async def scenario() -> None:
        running = asyncio.create_task(gate.call(slow))
        assert await asyncio.to_thread(started.wait, WAIT)
        shut = asyncio.create_task(asyncio.to_thread(gate.shut, WAIT))
        finish.set()
        assert await shut is True and await running == "done"
        with pytest.raises(RepositoryError, match="shutting down"):
            await gate.call(lambda: "never")

    asyncio.run(scenario())
    assert not gate.enter()
    assert StoreGate().shut(0.0) is True
