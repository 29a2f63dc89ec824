"""``gpchannel server``: one asyncio process with the PSK-TLS admin listener (ras.py) and the JSON job API (api.py).

:func:`run_server` opens the Repository (migrations run on open), builds the key provider, registers the card
profiles given with ``--profile`` (their ``[card] iccid`` and ``[scp81]`` identity and PSK; profile.md), starts both
listeners and runs until ``stop`` is set; then it stops listening, ends the running admin sessions (their
outstanding jobs stay ``sent``: ras.py's resumption rule decides when the card comes back) and closes the store.
Signals are the caller's business (the CLI turns SIGTERM / SIGINT into ``stop.set()``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from gpchannel.card.profile import load_profile
from gpchannel.card.profile_ota import check_scp81, scp81_psk
from gpchannel.errors import ProfileError, SecurityError
from gpchannel.io.tls_stream import serve_psk
from gpchannel.server.api import build_api
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.ras import AdminSessions
from gpchannel.server.services import open_services
from gpchannel.server.tokens import has_active_tokens
from gpchannel.server.worker import run_scp80_worker, run_worker

__all__ = [
    "PSK_KVN",
    "ProfileCard",
    "ServerAddresses",
    "card_from_profile",
    "register_profile",
    "run_server",
]

_log = logging.getLogger("gpchannel.server")

PSK_KVN = 1
"""The key version under which a profile's ``[scp81] psk`` is stored (the profile names no KVN for it)."""


@dataclass(frozen=True)
class ServerAddresses:
    """Where the listeners are bound (port 0 in the config resolved), None for a listener not started."""

    admin: tuple[str, int] | None
    api: tuple[str, int] | None


@dataclass(frozen=True)
class ProfileCard:
    """What a card profile says about the card for the server: ICCID, PSK identity and PSK (never in the repr)."""

    iccid: str | None
    psk_identity: str
    psk: bytes = b""

    def __repr__(self) -> str:
        return f"ProfileCard(iccid={self.iccid!r}, psk_identity={self.psk_identity!r})"


def card_from_profile(path: Path) -> ProfileCard:
    """Read and validate a card profile (the whole profile, as the emulator would; profile.md) -> its SCP81 card.
    Raises ProfileError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: {exc.strerror or exc}") from None
    try:
        load_profile(text, resolve=lambda name: (path.parent / name).read_bytes())
        raw: Mapping[str, Any] = tomllib.loads(text)
        if "scp81" not in raw:
            raise ProfileError("no [scp81] section: the server needs the card's psk_identity and psk")
        scp81 = check_scp81(raw["scp81"])
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    if "psk" not in scp81:
        raise ProfileError(f"{path}: [scp81] has no psk")
    card = raw.get("card", {})
    iccid = card.get("iccid") if isinstance(card, Mapping) else None
    return ProfileCard(iccid or None, str(scp81["psk_identity"]), scp81_psk(scp81))


def register_profile(services: ServerServices, path: Path) -> int:
    """Upsert the card a profile describes and store its PSK through the key provider; returns the card id."""
    card = card_from_profile(path)
    repo = services.repository
    card_id = repo.upsert_card(iccid=card.iccid, psk_identity=card.psk_identity)
    services.keys.store_card_keys(card_id, {("psk", PSK_KVN): (card.psk, "psk")})
    _log.info("profile %s: card %d (iccid %s, identity %r) registered", path, card_id, card.iccid, card.psk_identity)
    return card_id


async def run_server(
    config: ServerConfig,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[ServerAddresses], None] | None = None,
    services: ServerServices | None = None,
) -> None:
    """Run the server until ``stop`` is set. ``on_ready`` is called once both listeners are bound. ``services``
    (tests) replaces the ones built from ``config``; the caller then keeps the Repository open."""
    own = services is None
    if services is None:
        services = await asyncio.to_thread(open_services, config)
    admin_server: asyncio.Server | None = None
    runner: web.AppRunner | None = None
    worker: asyncio.Task[Any] | None = None
    sessions = AdminSessions(services)
    try:
        for path in config.profiles:
            await asyncio.to_thread(register_profile, services, path)
        admin: tuple[str, int] | None = None
        api: tuple[str, int] | None = None
        if not config.worker_only:
            admin_server = await serve_psk(
                sessions.handle,
                config.admin_host,
                config.admin_port,
                sessions.server_context(),
                handshake_timeout=config.handshake_timeout,
                # the PSK lookup (a store query and a key unwrap; on PostgreSQL a round trip, with PKCS#11 a token
                # call) runs off the event loop so that one slow lookup does not stall every other session
                lookup_in_thread=True,
                reuse_port=config.admin_reuse_port,
            )
            admin = _bound(admin_server)
            tls = await asyncio.to_thread(check_api_exposure, services)
            runner = web.AppRunner(build_api(services), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, config.api_host, config.api_port, ssl_context=tls)
            await site.start()
            api = _bound_site(runner)
            scheme = "https" if tls is not None else "http"
            _log.info("admin (PSK-TLS) on %s:%d, job API on %s://%s:%d", *admin, scheme, *api)
        worker = _start_worker(services, stop)
        if on_ready is not None:
            on_ready(ServerAddresses(admin, api))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopping, *([worker] if worker else [])}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if worker is not None and worker.done() and not stop.is_set():
            worker.result()  # the worker failed (raises) or returned on its own
            if config.worker_only:
                return
            _log.warning("the SCP80 worker ended on its own; the admin listener and the API go on")
            await stop.wait()
    finally:
        stop.set()
        if admin_server is not None:
            admin_server.close()
        await sessions.close()
        if admin_server is not None:
            await admin_server.wait_closed()
        if runner is not None:
            await runner.cleanup()
        if worker is not None:
            await _settle(worker)
        if own:
            await asyncio.to_thread(services.repository.close)
        _log.info("server stopped (pid %d)", os.getpid())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def api_tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The job API's server TLS context (TLS 1.2 and up, the ssl module's default ciphers) from ``api_cert`` and
    ``api_key``, or None without them. SecurityError naming the file that cannot be loaded."""
    if config.api_cert is None or config.api_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.api_cert, config.api_key)
    except (OSError, ssl.SSLError) as exc:
        raise SecurityError(f"the API certificate or key cannot be loaded: {exc}") from None
    return context


def check_api_exposure(services: ServerServices) -> ssl.SSLContext | None:
    """Refuse (SecurityError) to serve the job API on a non-loopback address without TLS and tokens, unless
    ``insecure_api``, which is logged loudly at every start. Returns the API's TLS context (or None)."""
    config = services.config
    tls = api_tls_context(config)
    if config.insecure_api:
        _log.warning(
            "INSECURE API (--insecure-api): the job API on %s:%d may run without TLS or tokens; a lab only",
            config.api_host,
            config.api_port,
        )
    if _loopback(config.api_host) or config.insecure_api:
        return tls
    missing = [what for what, ok in (("TLS (--api-cert/--api-key)", tls is not None),) if not ok]
    if not has_active_tokens(services.repository, services.clock()):
        missing.append("API token (gpchannel server token create)")
    if missing:
        raise SecurityError(
            f"the job API on {config.api_host} is not on loopback and has no {' and no '.join(missing)}: "
            "refusing to start (--insecure-api for a lab)"
        )
    return tls


def _start_worker(services: ServerServices, stop: asyncio.Event) -> asyncio.Task[Any] | None:
    """The campaign workers this process runs: with ``worker_only``, the scale-out worker (server/worker.py, H;
    it needs an SMSC); else, with ``--smpp``, the SCP80 worker of the campaigns (server/scp80_worker.py, G)."""
    config = services.config
    if config.worker_only:
        return asyncio.create_task(run_worker(services, stop=stop), name="gpchannel-worker")
    if config.smpp:
        return asyncio.create_task(
            run_scp80_worker(services, owner=config.owner, stop=stop), name="gpchannel-scp80-worker"
        )
    return None


async def _settle(worker: asyncio.Task[Any]) -> None:
    """Wait for the worker to see ``stop``; its failure was raised already or is logged here."""
    if worker.done():
        if not worker.cancelled():
            worker.exception()  # raised by run_server already; marks it retrieved
        return
    try:
        await worker
    except asyncio.CancelledError:
        raise
    except Exception:
        _log.exception("the campaign worker failed")


def _bound(server: asyncio.Server) -> tuple[str, int]:
    sockname = server.sockets[0].getsockname()
    return str(sockname[0]), int(sockname[1])


def _bound_site(runner: web.AppRunner) -> tuple[str, int]:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return str(address[0]), int(address[1])
    raise RuntimeError("the job API is not bound to a TCP address")
