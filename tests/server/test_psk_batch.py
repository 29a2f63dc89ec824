"""server/psk_batch.py: the PSK look-ups of concurrent admin handshakes in one store call, on the real store
(SQLite) and key provider; and the admin side's prefetch refusing once it shuts down."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from gpchannel.errors import RepositoryError
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.psk_batch import PskBatch, lookup_psks
from gpchannel.server.ras import AdminSessions
from gpchannel.server.repository import CardRecord, Repository
from gpchannel.server.store_gate import StoreGate
from tests.server.server_support import register


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServerServices]:
    url = f"sqlite:///{tmp_path / 'psk.db'}"
    repository = Repository(url)
    keys = DbKeyProvider(repository, os.urandom(32))
    config = ServerConfig(admin_port=0, api_port=0, data_dir=tmp_path, db_url=url)
    yield ServerServices(repository=repository, keys=keys, config=config)
    repository.close()


def _cards(services: ServerServices, count: int) -> dict[bytes, bytes]:
    out = {}
    for n in range(count):
        psk = os.urandom(16)
        register(services, None, f"card-{n}", psk)
        out[f"card-{n}".encode()] = psk
    return out


def test_lookup_psks_answers_each_identity_and_keeps_the_cards(services: ServerServices) -> None:
    psks = _cards(services, 3)
    services.repository.upsert_card(iccid=None, psk_identity="keyless")
    cards: dict[str, CardRecord] = {}
    asked = [b"card-2", b"nobody", b"\xff\xfe", b"keyless", b"card-0"]
    assert lookup_psks(services.repository, services.keys, asked, cards) == [
        psks[b"card-2"], None, None, None, psks[b"card-0"],
    ]  # fmt: skip
    assert sorted(cards) == ["card-0", "card-2"] and cards["card-2"].psk_identity == "card-2"


def test_lookup_psks_reads_the_cards_and_their_keys_in_two_queries(services: ServerServices) -> None:
    psks = _cards(services, 30)
    statements: list[str] = []
    event.listen(services.repository.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert lookup_psks(services.repository, services.keys, list(psks), {}) == list(psks.values())
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2


def test_the_psk_of_the_wanted_or_highest_kvn(services: ServerServices) -> None:
    keys = services.keys
    highest = services.repository.upsert_card(iccid=None, psk_identity="two-kvns")
    keys.store_card_keys(highest, {("psk", 1): (b"\x01" * 16, "psk"), ("psk", 2): (b"\x02" * 16, "psk")})
    pinned = services.repository.upsert_card(iccid=None, psk_identity="pinned", ota={"psk_kvn": 1})
    keys.store_card_keys(pinned, {("psk", 1): (b"\x03" * 16, "psk"), ("psk", 2): (b"\x04" * 16, "psk")})
    missing = services.repository.upsert_card(iccid=None, psk_identity="pinned-missing", ota={"psk_kvn": 7})
    keys.store_card_keys(missing, {("psk", 1): (b"\x05" * 16, "psk")})
    found = lookup_psks(services.repository, keys, [b"two-kvns", b"pinned", b"pinned-missing"], {})
    assert found == [b"\x02" * 16, b"\x03" * 16, None]
    for identity, psk in zip(["two-kvns", "pinned", "pinned-missing"], found, strict=True):  # as one at a time
        card = services.repository.card_by_identity(identity)
        assert card is not None and keys.psk(card) == psk


def test_concurrent_lookups_share_one_store_call(services: ServerServices) -> None:
    psks = _cards(services, 20)
    calls: list[list[bytes]] = []

    def lookup(identities: Sequence[bytes]) -> list[bytes | None]:
        calls.append(list(identities))
        return lookup_psks(services.repository, services.keys, identities, {})

    gate = StoreGate()
    batch = PskBatch(lookup, gate.call, limit=15)

    async def main() -> list[bytes | None]:
        return list(await asyncio.gather(*(batch.get(i) for i in [*psks, b"nobody"])))

    assert asyncio.run(main()) == [*psks.values(), None]
    assert [len(c) for c in calls] == [15, 6] and batch.calls == 2  # one store call per 15, in arrival order
    assert asyncio.run(main()) == [*psks.values(), None]  # and again with a fresh loop


def test_a_failed_store_call_reaches_every_waiter() -> None:
    async def refuse(_fn: Callable[[], Any]) -> Any:
        raise RepositoryError("the server is shutting down: the store is closed")

    batch = PskBatch(lambda ids: [None] * len(ids), refuse)

    async def main() -> list[object]:
        return list(await asyncio.gather(batch.get(b"a"), batch.get(b"b"), return_exceptions=True))

    assert [type(x) for x in asyncio.run(main())] == [RepositoryError, RepositoryError]


def test_the_prefetch_refuses_once_the_admin_side_shuts_down(services: ServerServices) -> None:
    psks = _cards(services, 1)
    sessions = AdminSessions(services)

    async def main() -> tuple[bytes | None, bytes | None]:
        before = await sessions.psk_prefetch(b"card-0")
        await sessions.close()
        return before, await sessions.psk_prefetch(b"card-0")

    assert asyncio.run(main()) == (psks[b"card-0"], None)


def test_a_cancelled_store_call_fails_every_waiting_look_up() -> None:
    """The flush is cancelled (shutdown) while one batch is in the store and another waits: both learn it, none
    is left waiting for a flush that will not come."""

    async def main() -> list[object]:
        started = asyncio.Event()

        async def run(call: object) -> object:
            started.set()
            await asyncio.Event().wait()  # a store call that never ends
            return None

        batch = PskBatch(lambda identities: [None] * len(identities), run, limit=1)
        first = asyncio.create_task(batch.get(b"card-0"))
        second = asyncio.create_task(batch.get(b"card-1"))  # waits for the next batch
        await started.wait()
        assert batch._flushing is not None
        batch._flushing.cancel()
        async with asyncio.timeout(10):
            return list(await asyncio.gather(first, second, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
