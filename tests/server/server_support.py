"""Helpers of the RAS and job API tests: a server on 127.0.0.1 (port 0) over a real store, and a test card that
speaks the admin protocol with our own client side (ram.client over io.tls_stream), hand-driven so that a test
can break the session wherever it wants."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h11

from gpchannel.codec.apdu import ResponseApdu
from gpchannel.io.tls_policy import PskTlsPolicy
from gpchannel.io.tls_psk import PskClientContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream
from gpchannel.ota.remote_apdu import CommandScript, RApdu, ResponseScript
from gpchannel.ram.admin import ContentType, ScriptStatus
from gpchannel.ram.client import AdminClientConnection, AdminEvent, ScriptDelivery
from gpchannel.server.app import ServerAddresses, run_server
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import Repository
from gpchannel.server.tokens import create_token

__all__ = [
    "AdminCard",
    "Running",
    "admin_token",
    "answer",
    "apdus_of",
    "bearer",
    "make_services",
    "register",
    "running",
    "token_for",
]


def make_services(url: str, tmp_path: Path, master_key: bytes | None = None, **config: Any) -> ServerServices:
    """A Repository at ``url`` and a database key provider under a fixed or fresh master key."""
    repository = Repository(url)
    keys = DbKeyProvider(repository, master_key or os.urandom(32))
    cfg = ServerConfig(admin_port=0, api_port=0, data_dir=tmp_path, db_url=url, **config)
    return ServerServices(repository=repository, keys=keys, config=cfg)


def admin_token(services: ServerServices, name: str | None = None, scopes: Sequence[str] = ("admin",)) -> str:
    """A token (admin by default) created in the services' store, for the API calls of a test."""
    label = name or f"test-admin-{uuid.uuid4().hex[:8]}"
    return create_token(services.repository, name=label, scopes=scopes, now=datetime.now(UTC))


def token_for(config: ServerConfig, scopes: Sequence[str] = ("admin",)) -> str:
    """A token in the store a server started from ``config`` will open (created before it starts)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with Repository(config.database_url) as repo:
        return create_token(repo, name=f"test-{uuid.uuid4().hex[:8]}", scopes=scopes, now=datetime.now(UTC))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(services: ServerServices, iccid: str | None, identity: str, psk: bytes) -> int:
    card_id = services.repository.upsert_card(iccid=iccid, psk_identity=identity)
    services.keys.store_card_keys(card_id, {("psk", 1): (psk, "psk")})
    return card_id


@dataclass(frozen=True)
class Running:
    services: ServerServices
    admin_port: int
    api_port: int
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of an admin token of this server."""
        return bearer(self.token)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@asynccontextmanager
async def running(services: ServerServices, **config: Any) -> AsyncIterator[Running]:
    """run_server on free ports with these services (config fields overridden); stopped on exit."""
    services = replace(services, config=replace(services.config, admin_port=0, api_port=0, **config))
    stop = asyncio.Event()
    ready: asyncio.Future[ServerAddresses] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_server(services.config, stop, on_ready=ready.set_result, services=services))
    waiting: set[asyncio.Future[Any]] = {task, ready}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what run_server raised
    addresses = ready.result()
    assert addresses.admin is not None and addresses.api is not None
    try:
        token = await asyncio.to_thread(admin_token, services)
        yield Running(services, addresses.admin[1], addresses.api[1], token)
    finally:
        stop.set()
        await task


def answer(script: bytes, sws: Sequence[int] | None = None, *, executed: bool = True) -> bytes:
    """The response script a card would send for a command script: one R-APDU per command (SW 9000 by default,
    the command's INS echoed as response data so that results are told apart)."""
    apdus = CommandScript.from_bytes(script).apdus
    codes = list(sws) if sws is not None else [0x9000] * len(apdus)
    items = tuple(RApdu(ResponseApdu(bytes((a.ins,)), sw)) for a, sw in zip(apdus, codes, strict=False))
    return ResponseScript(items, executed=len(items) if executed else None).to_bytes()


class AdminCard:
    """The card side of one admin connection, step by step."""

    def __init__(self, stream: PskStream, agent_from: str | None = "//se-id/iccid/test") -> None:
        self.stream = stream
        self.http = AdminClientConnection(host="127.0.0.1", agent_from=agent_from)

    @classmethod
    async def connect(
        cls,
        port: int,
        identity: str,
        psk: bytes,
        agent_from: str | None = "//test",
        policy: PskTlsPolicy = PskTlsPolicy(),
    ) -> AdminCard:
        context = PskClientContext(identity.encode(), psk, policy)
        stream = await open_psk_stream("127.0.0.1", port, context, timeout=10)
        return cls(stream, agent_from)

    async def event(self) -> AdminEvent:
        while True:
            event = self.http.next_event()
            if event is not None:
                return event
            data = await self.stream.read()
            self.http.receive_data(data)
            if not data:
                event = self.http.next_event()
                if event is None:
                    raise EOFError("the server closed the connection without an answer")
                return event

    async def first(self, uri: str = "/gp/admin", *, resume: bool = False) -> AdminEvent:
        await self.stream.write(self.http.first_post(uri, resume=resume))
        return await self.event()

    async def respond(
        self,
        uri: str,
        body: bytes,
        *,
        status: ScriptStatus = ScriptStatus.OK,
        content_type: ContentType = ContentType.GP_RESPONSE,
        chunked: bool = False,
        resume: bool = False,
    ) -> AdminEvent:
        data = self.http.post_response(
            uri, body, status=status, content_type=content_type, chunked=chunked, resume=resume
        )
        await self.stream.write(data)
        return await self.event()

    async def run(self, delivery: AdminEvent) -> AdminEvent:
        """Answer every delivered script with 9000s until the server ends the session; returns the last event."""
        while isinstance(delivery, ScriptDelivery):
            delivery = await self.respond(delivery.next_uri, answer(delivery.script))
        return delivery

    async def raw(self, request: bytes) -> tuple[int, bytes]:
        """Send a hand-written request (what our card side would refuse to write) and read the answer with a fresh
        h11 client parser; returns (status, body). Use it for the connection's last exchange."""
        parser = h11.Connection(h11.CLIENT)
        parser.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
        parser.send(h11.EndOfMessage())
        await self.stream.write(request)
        status, body = 0, b""
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                parser.receive_data(await self.stream.read())
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, body
            else:
                raise EOFError(f"unexpected {event!r}")

    async def wait_closed(self) -> None:
        """Read until the server closes its side."""
        while await self.stream.read():
            pass

    async def close(self) -> None:
        await self.stream.close()


def apdus_of(script: bytes) -> list[bytes]:
    return [a.to_bytes() for a in CommandScript.from_bytes(script).apdus]
