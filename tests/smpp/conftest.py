"""Helpers for the SMPP tests: a loopback port, a bounded asyncio runner, a bridge serving in the background, and
the PC/SC fixtures of tests/io (pcscd + vpcd)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.smpp import OtaSmppClient
from tests.io.conftest import pcscd_readers, virtual_reader

__all__ = [
    "CARD_NUMBER",
    "OTA_SERVER",
    "client",
    "free_port",
    "pcscd_readers",
    "run",
    "serving",
    "virtual_reader",
]

T = TypeVar("T")
TEST_TIMEOUT = 30.0
OTA_SERVER = "4912345"
CARD_NUMBER = "4915550001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run ``coro`` on a fresh loop, failing (not hanging) past ``timeout``."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@asynccontextmanager
async def serving(bridge: HandsetBridge) -> AsyncIterator[HandsetBridge]:
    stop = asyncio.Event()
    await bridge.start()
    task = asyncio.create_task(bridge.serve(stop))
    try:
        yield bridge
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def client(bridge: HandsetBridge, system_id: str = "ota-server") -> AsyncIterator[OtaSmppClient]:
    esme = await OtaSmppClient.connect("127.0.0.1", bridge.port, system_id, "secret", source_addr=OTA_SERVER)
    try:
        yield esme
    finally:
        await esme.close()
