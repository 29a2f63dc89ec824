"""Helpers of the campaign tests: a store with a settable clock, a fleet of emulated cards imported from its
inventory, the handset bridge in front of it (fleet or sink mode) and an SCP80 worker bound to it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.fleet import Fleet, generate_fleet, write_inventory
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.inventory import read_inventory
from gpchannel.server.inventory_import import import_inventory
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import Repository
from gpchannel.server.scp80_worker import Scp80Worker, WorkerSettings
from gpchannel.smpp import OtaSmppClient
from tests.smpp.conftest import OTA_SERVER, free_port

__all__ = ["Clock", "bridge_for", "fleet_services", "settle", "store", "worker_on"]

SELECT_SPN, READ_SPN, UPDATE_SPN = "00A4080C047F206F46", "00B0000004", "00D600000441424344"
RFM_TAR = "B00001"


@dataclass
class Clock:
    """A settable UTC clock (the Repository's and the worker's ``now``)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def store(tmp_path: Path, clock: Callable[[], datetime] | None = None) -> ServerServices:
    """A fresh SQLite store and database key provider under a random master key."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    repository = Repository(url, clock=clock) if clock is not None else Repository(url)
    keys = DbKeyProvider(repository, os.urandom(32))
    config = ServerConfig(admin_port=0, api_port=0, data_dir=tmp_path, db_url=url)
    if clock is None:
        return ServerServices(repository=repository, keys=keys, config=config)
    return ServerServices(repository=repository, keys=keys, config=config, clock=clock)


def fleet_services(
    tmp_path: Path, count: int, clock: Callable[[], datetime] | None = None
) -> tuple[ServerServices, Fleet]:
    """A fleet of ``count`` emulated cards and a store holding them (imported from the fleet's inventory)."""
    fleet = generate_fleet(tmp_path / "fleet", count)
    write_inventory(fleet, tmp_path / "inventory.csv")
    services = store(tmp_path, clock)
    import_inventory(services.repository, services.keys, read_inventory(tmp_path / "inventory.csv"))
    return services, fleet


@asynccontextmanager
async def bridge_for(fleet: Fleet | None) -> AsyncIterator[HandsetBridge]:
    """The handset bridge on a free port: in front of ``fleet``, or a sink (accept + receipt, no card) for None."""
    bridge = (
        HandsetBridge(None, fleet=FleetHandsets(fleet), port=free_port(), workers=2)
        if fleet is not None
        else HandsetBridge(None, port=free_port())
    )
    stop = asyncio.Event()
    await bridge.start()
    task = asyncio.create_task(bridge.serve(stop))
    try:
        yield bridge
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def worker_on(
    services: ServerServices, bridge: HandsetBridge, settings: WorkerSettings | None = None, owner: str = "w1"
) -> AsyncIterator[Scp80Worker]:
    link = await OtaSmppClient.connect("127.0.0.1", bridge.port, owner, "secret", source_addr=OTA_SERVER)
    worker = Scp80Worker(services, link, owner=owner, settings=settings or WorkerSettings(poll_interval=0.05))
    try:
        yield worker
    finally:
        await link.close()


async def settle(worker: Scp80Worker, done: Callable[[], bool], *, rounds: int = 400, wait: float = 0.05) -> None:
    """Rounds (tick + events) until ``done()``; AssertionError after ``rounds`` (a bound, not a timing check)."""
    for _ in range(rounds):
        await worker.tick()
        await worker.drain(wait)
        if done():
            return
    raise AssertionError(f"not settled after {rounds} rounds: {worker.stats}")
