"""The card's SCP81 agent in the emulator: one administration session of an emulated card with a Remote
Administration Server (GP Card Specification Amendment B, "RAM over HTTP"; ETSI TS 102 226 Annex B; PSK-TLS of
ETSI TS 102 225; ota-notes B.1-B.3).

A session (:class:`CardAgent`):

1. parameters: the profile's ``[scp81]`` (``psk_identity``, ``psk``, ``server``, ``uri``, ``agent_id``,
   ``retries``, ``retry_delay``),
   overridden by the trigger's :class:`~gpchannel.ram.trigger.TriggerParameters` (identity from tag 85, the
   address from the tag-84 OPEN CHANNEL TLVs, ``Host`` from 8A, agent ID from 8B, URI from 8C, retry policy from
   86) and then by explicit arguments (the CLI's ``--server``, ``--uri``, ``--retries``);
2. a PSK-TLS connection (``gpchannel.io.tls_stream.open_psk_stream``); nothing is read as a script before the
   handshake completed with the card's PSK, and only scripts received on that connection run: the agent never
   runs a command outside an authenticated TLS session;
3. the first POST (no body; ``X-Admin-From`` = the agent ID), then for each 200 the expanded command script runs
   through the same card core as everything else (:func:`gpchannel.card.ota_script.run_script`): RAM through
   the ISD, or the Security Domain named by ``X-Admin-Targeted-Application``; with the ETSI content type the
   targeted application may be any application, or the RFM application (its AID's bytes 13-15 are a TAR, TS
   101 220 [M], resolved as SCP80 TARs are: ``B00001`` is the file system); the response script is POSTed to
   the ``X-Admin-Next-URI`` (chunked when larger than ``chunk_above``), until 204.

Script status (Amendment B, X-Admin-Script-Status): a GP script targeted at an AID the card does not hold gets
``unknown-application``, at an application that is not a Security Domain ``not-a-security-domain``; both POST
no body and run nothing. A body that is not an expanded command script (``AA``/``AE`` BER-TLV) is answered
``ok`` with a response script holding the Bad Format TLV (TS 102 226 5.2.2, ``90 01 01``) and nothing run: the
server learns precisely what went wrong, and ``security-error`` stays for what it says (our choice [U]). A
definite script of more than 255 commands (whose executed count would not fit its byte) gets ``90 01 02`` and
nothing runs.

Resumption (the rule D's server follows, docs/server.md): before a script runs its Next-URI is persisted
(``card.admin_trigger.PendingDelivery``); the script's effects and its response are committed **together**
(one atomic commit of the card state through the card's store), and the record is dropped once the server
acknowledged the response (its next 200 or the 204). On a retry (or a new session finding a record) the first
request carries ``X-Admin-Resume: true``: a stored response is re-POSTed to its URI instead of running anything
again; with no stored response, the card never ran the script, and an empty first POST with Resume asks the
server to send it again.

Retry (ota-notes B.3 [M]): on a connection failure (TCP, TLS alert, the server closing mid-session, a timeout)
the agent waits ``delay`` and tries again, ``counter`` more times. An HTTP 4xx/5xx answer stops the session
(a stored response is kept after a 5xx, dropped after a 4xx: the server refused it and re-posting it cannot
help). An answer the card cannot use (an ``X-Admin-Next-URI`` it could not POST to, ram/client.py) stops the
session as a protocol error before anything runs; a stored response whose URI breaks that rule is dropped, not
re-posted on every session. Sleeping is injected (``sleep``) so that tests do not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum

from gpchannel.card.admin_trigger import (
    PendingDelivery,
    clear_delivery,
    connection_address,
    pending_delivery,
    pending_trigger,
    store_delivery,
    take_trigger,
)
from gpchannel.card.context import ChannelContext
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile_ota import scp81_psk, server_port
from gpchannel.card.state import CardState
from gpchannel.emulator.delivery import run_delivery
from gpchannel.errors import DecodeError, GPChannelError, ProfileError, TransportError
from gpchannel.io.tls_policy import PskTlsPolicy
from gpchannel.io.tls_psk import PskClientContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream
from gpchannel.ota.remote_apdu import ResponseScript
from gpchannel.ram.admin import ContentType, ScriptStatus, next_uri_ok
from gpchannel.ram.client import AdminClientConnection, AdminServerError, ScriptDelivery, SessionEnd
from gpchannel.ram.trigger import RetryPolicy, TriggerParameters

__all__ = [
    "DEFAULT_RETRY",
    "AgentRunner",
    "CardAgent",
    "SessionParameters",
    "SessionStatus",
    "SessionSummary",
]

log = logging.getLogger("gpchannel.emulator.agent")

DEFAULT_RETRY = RetryPolicy(counter=2, delay_seconds=5)
"""When neither the profile, the trigger nor the caller gives a retry policy: two more tries, 5 s apart [M]."""

Sleep = Callable[[float], Awaitable[None]]


class SessionStatus(Enum):
    """How a session ended."""

    COMPLETED = "completed"
    """The server ended it with 204."""
    SERVER_ERROR = "server-error"
    """The server answered 4xx/5xx: stopped without retrying."""
    PROTOCOL_ERROR = "protocol-error"
    """The server's HTTP could not be read: stopped without retrying."""
    CONNECTION_FAILED = "connection-failed"
    """Every try failed at the TCP / TLS level, or the connection broke mid-session."""


@dataclass(frozen=True)
class SessionParameters:
    """Everything a session needs, resolved from the profile, the trigger and the caller."""

    host: str
    port: int
    http_host: str
    uri: str
    psk_identity: bytes
    psk: bytes = field(repr=False)
    agent_id: str | None = None
    retry: RetryPolicy = DEFAULT_RETRY

    @classmethod
    def resolve(
        cls,
        state: CardState,
        trigger: TriggerParameters | None = None,
        *,
        server: str | None = None,
        uri: str | None = None,
        retries: int | None = None,
        delay_seconds: int | None = None,
    ) -> SessionParameters:
        """The parameters of a session of the card in ``state``: ``[scp81]``, then ``trigger``, then the
        arguments. :class:`ProfileError` when the PSK, the identity or the address is missing."""
        raw = state.ota.get("scp81")
        profile = raw if isinstance(raw, dict) else {}
        if not profile.get("psk"):
            raise ProfileError("the card has no [scp81] psk: it cannot open an admin session")
        psk = scp81_psk(profile)
        trigger = trigger or TriggerParameters()
        identity = trigger.psk_identity
        if identity is None:
            text = profile.get("psk_identity")
            identity = text.encode() if isinstance(text, str) and text else None
        if identity is None:
            raise ProfileError("no PSK identity: neither [scp81] psk_identity nor the trigger's tag 85 gives one")
        host, port = _split_address(profile.get("server"))
        trigger_host, trigger_port = connection_address(trigger.connection)
        host, port = trigger_host or host, trigger_port or port
        if server is not None:
            host, port = _split_address(server)
        if host is None or port is None:
            raise ProfileError("no administration server address: give [scp81] server or --server HOST:PORT")
        agent = trigger.agent_id if trigger.agent_id is not None else profile.get("agent_id")
        retry = DEFAULT_RETRY
        if "retries" in profile or "retry_delay" in profile:
            retry = RetryPolicy(
                counter=int(profile.get("retries", DEFAULT_RETRY.counter)),
                delay_seconds=int(profile.get("retry_delay", DEFAULT_RETRY.delay_seconds)),
            )
        retry = trigger.retry or retry
        if retries is not None or delay_seconds is not None:
            retry = RetryPolicy(
                counter=retry.counter if retries is None else retries,
                delay_seconds=retry.delay_seconds if delay_seconds is None else delay_seconds,
                failure_report=retry.failure_report,
            )
        admin_uri = uri or trigger.uri or str(profile.get("uri") or "/")
        if not next_uri_ok(admin_uri):
            raise ProfileError(f"admin URI {admin_uri[:80]!r}: expected a path of visible ASCII characters")
        return cls(
            host=host,
            port=port,
            http_host=trigger.host or (host if port == 443 else f"{host}:{port}"),
            uri=admin_uri,
            psk_identity=identity,
            psk=psk,
            agent_id=agent if isinstance(agent, str) and agent else None,
            retry=retry,
        )


def _split_address(text: object) -> tuple[str | None, int | None]:
    if not isinstance(text, str) or ":" not in text:
        return None, None
    host, _, port_text = text.rpartition(":")
    port = server_port(port_text)
    if not host or port is None:
        raise ProfileError(f"server address {text!r}: expected HOST:PORT")
    return host.strip("[]"), port


@dataclass(frozen=True)
class SessionSummary:
    """What a session did (``gpchannel card admin-session`` prints it)."""

    status: SessionStatus
    scripts: int
    apdus: int
    attempts: int
    resumed: bool = False
    http_status: int | None = None
    reason: str | None = None
    last_sw: int | None = None

    def describe(self) -> str:
        text = f"session {self.status.value}: {self.scripts} script(s), {self.apdus} APDU(s)"
        text += f", {self.attempts} attempt(s)"
        if self.resumed:
            text += ", resumed"
        if self.last_sw is not None:
            text += f", last SW {self.last_sw:04X}"
        if self.http_status is not None:
            text += f", HTTP {self.http_status}"
        if self.reason:
            text += f" ({self.reason})"
        return text


class _ConnectionLost(TransportError):
    """The server closed the connection before answering."""


class _Stop(Exception):
    """The session stops without retrying."""

    def __init__(self, status: SessionStatus, reason: str, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.http_status = http_status


class CardAgent:
    """One administration session of ``card`` (see the module docstring).

    ``lock`` serialises the card between this agent and whoever else drives it (the vpcd loop): it is held
    while a script runs and while the state is committed. ``policy`` is the PSK-TLS policy (A's default: TLS
    1.2, AES-128 CBC-SHA256 / GCM). ``chunk_above``: response bodies larger than this go chunked (None: never).
    """

    def __init__(
        self,
        card: Card,
        *,
        trigger: TriggerParameters | None = None,
        server: str | None = None,
        uri: str | None = None,
        retries: int | None = None,
        delay_seconds: int | None = None,
        lock: AbstractContextManager[object] | None = None,
        policy: PskTlsPolicy | None = None,
        chunk_above: int | None = 1024,
        sleep: Sleep = asyncio.sleep,
        timeout: float = 30.0,
    ) -> None:
        self.card = card
        self.parameters = SessionParameters.resolve(
            card.state, trigger, server=server, uri=uri, retries=retries, delay_seconds=delay_seconds
        )
        self.lock: AbstractContextManager[object] = lock if lock is not None else threading.Lock()
        self.policy = policy or PskTlsPolicy()
        self.chunk_above = chunk_above
        self.sleep = sleep
        self.timeout = timeout
        self.scripts = 0
        self.apdus = 0
        self.last_sw: int | None = None
        self._channels: dict[bytes, ChannelContext] = {}

    # -- the session -----------------------------------------------------------------------------------------
    async def run(self) -> SessionSummary:
        """Run the session with its retry policy; never raises for network or server trouble."""
        retry = self.parameters.retry
        with self.lock:
            interrupted = pending_delivery(self.card.state) is not None  # a previous session did not finish
        attempts = 0
        reason = "no attempt made"
        for attempt in range(1 + max(retry.counter, 0)):
            if attempt:
                await self.sleep(float(retry.delay_seconds))
            attempts += 1
            resume = interrupted or attempt > 0
            try:
                await self._attempt(resume=resume)
            except _Stop as stop:
                log.info("admin session stopped: %s", stop.reason)
                return self._summary(stop.status, attempts, resume, stop.reason, stop.http_status)
            except (TransportError, OSError, EOFError) as exc:
                reason = str(exc) or type(exc).__name__
                log.info("admin session try %d failed: %s", attempts, reason)
                continue
            return self._summary(SessionStatus.COMPLETED, attempts, resume, None, None)
        return self._summary(SessionStatus.CONNECTION_FAILED, attempts, interrupted or attempts > 1, reason, None)

    def run_sync(self) -> SessionSummary:
        """:meth:`run` in a fresh event loop (for the CLI and the emulator's background thread)."""
        return asyncio.run(self.run())

    def _summary(
        self, status: SessionStatus, attempts: int, resumed: bool, reason: str | None, http: int | None
    ) -> SessionSummary:
        return SessionSummary(status, self.scripts, self.apdus, attempts, resumed, http, reason, self.last_sw)

    async def _attempt(self, *, resume: bool) -> None:
        p = self.parameters
        context = PskClientContext(p.psk_identity, p.psk, self.policy)
        stream = await open_psk_stream(p.host, p.port, context, timeout=self.timeout)
        try:
            await self._dialog(stream, resume=resume)
        finally:
            with contextlib.suppress(Exception):
                await stream.close()

    async def _dialog(self, stream: PskStream, *, resume: bool) -> None:
        http = AdminClientConnection(host=self.parameters.http_host, agent_from=self.parameters.agent_id)
        with self.lock:
            stored = pending_delivery(self.card.state)
        if stored is not None and stored.response is not None and not next_uri_ok(stored.uri):
            self._drop(stored)  # never accepted now (ram/client.py); a record from before that rule: drop it
            raise _Stop(SessionStatus.PROTOCOL_ERROR, f"the stored X-Admin-Next-URI {stored.uri[:80]!r} is not usable")
        if stored is not None and stored.response is not None:
            await stream.write(self._post(http, stored.uri, stored, resume=True))
        else:
            await stream.write(http.first_post(self.parameters.uri, resume=resume))
        while True:
            event = await self._next_event(stream, http)
            if isinstance(event, SessionEnd):
                self._acknowledged()
                return
            if isinstance(event, AdminServerError):
                self._refused(event.status)
                raise _Stop(SessionStatus.SERVER_ERROR, f"{event.status} {event.reason}", event.status)
            await stream.write(self._run(http, event))

    def _post(self, http: AdminClientConnection, uri: str, delivery: PendingDelivery, *, resume: bool) -> bytes:
        body = delivery.response or b""
        content_type = ContentType(delivery.content_type) if delivery.content_type else ContentType.GP_RESPONSE
        chunked = self.chunk_above is not None and len(body) > self.chunk_above
        status = ScriptStatus(delivery.script_status)
        return http.post_response(uri, body, status=status, content_type=content_type, chunked=chunked, resume=resume)

    def _run(self, http: AdminClientConnection, delivery: ScriptDelivery) -> bytes:
        """Persist the delivery, run it, persist its effects with the response; the POST to send."""
        with self.lock:
            clear_delivery(self.card.state)  # the previous response was acknowledged by this 200
            store_delivery(self.card.state, PendingDelivery(delivery.next_uri))
            self.card.save()
            outcome = run_delivery(self.card, delivery, self._channels)
            record = PendingDelivery(delivery.next_uri, outcome.body, outcome.status.value, outcome.content_type.value)
            store_delivery(self.card.state, record)
            self.card.save()
        self.scripts += 1
        self.apdus += outcome.apdus
        if outcome.body:
            try:
                responses = ResponseScript.from_bytes(outcome.body).responses
            except DecodeError:
                responses = ()
            if responses:
                self.last_sw = responses[-1].sw
        log.info(
            "script %d for %s: %s, %d APDU(s)", self.scripts, delivery.next_uri, outcome.status.value, outcome.apdus
        )
        return self._post(http, delivery.next_uri, record, resume=False)

    async def _next_event(
        self, stream: PskStream, http: AdminClientConnection
    ) -> ScriptDelivery | SessionEnd | AdminServerError:
        while True:
            try:
                event = http.next_event()
            except GPChannelError as exc:
                raise _Stop(SessionStatus.PROTOCOL_ERROR, f"unreadable server response: {exc}") from None
            if event is not None:
                return event
            async with asyncio.timeout(self.timeout):  # no task per read, unlike wait_for
                data = await stream.read()
            try:
                http.receive_data(data)
            except GPChannelError as exc:
                raise _Stop(SessionStatus.PROTOCOL_ERROR, f"unreadable server response: {exc}") from None
            if not data:
                try:
                    event = http.next_event()
                except GPChannelError:
                    event = None
                if event is None:
                    raise _ConnectionLost("the server closed the connection mid-session")
                return event

    def _acknowledged(self) -> None:
        with self.lock:
            if pending_delivery(self.card.state) is not None:
                clear_delivery(self.card.state)
                self.card.save()

    def _drop(self, stored: PendingDelivery) -> None:
        log.warning("admin session: stored delivery for %r dropped: not a URI the card can POST to", stored.uri[:80])
        with self.lock:
            clear_delivery(self.card.state)
            self.card.save()

    def _refused(self, status: int) -> None:
        if status < 500:
            self._acknowledged()


class AgentRunner:
    """Runs admin sessions of a served card in a background thread when a trigger is pending (the vpcd loop
    calls :meth:`poll` after each command); the card keeps answering meanwhile, ``lock`` serialising both."""

    def __init__(self, card: Card, lock: threading.Lock, **agent_options: object) -> None:
        self.card = card
        self.lock = lock
        self.agent_options = agent_options
        self.thread: threading.Thread | None = None
        self.summaries: list[SessionSummary] = []
        self._quiet: int | None = None
        """The state version at which no trigger was pending: a trigger is a committed change of the state, so
        none can be pending while the version stays there and nothing is marked."""

    def poll(self) -> bool:
        """Start a session if a trigger is pending and none runs; True when one was started. A trigger that
        arrives while a session runs is taken by that thread when its session ends (one session at a time)."""
        if self.thread is not None and self.thread.is_alive():
            return False
        tracker = self.card.ctx.tracker
        if tracker.version == self._quiet and not tracker.dirty:
            return False
        trigger = self._take()
        if trigger is None:
            return False
        self.thread = threading.Thread(target=self._sessions, args=(trigger,), name="scp81-agent", daemon=True)
        self.thread.start()
        return True

    def _take(self) -> TriggerParameters | None:
        with self.lock:
            if pending_trigger(self.card.state) is None:
                tracker = self.card.ctx.tracker
                self._quiet = None if tracker.dirty else tracker.version
                return None
            trigger = take_trigger(self.card.state)
            self.card.save()
            return trigger

    def _sessions(self, trigger: TriggerParameters | None) -> None:
        while trigger is not None:
            self._session(trigger)
            trigger = self._take()

    def _session(self, trigger: TriggerParameters) -> None:
        try:
            with self.lock:  # the parameters are read from the live state
                agent = CardAgent(self.card, trigger=trigger, lock=self.lock, **self.agent_options)  # type: ignore[arg-type]
            summary = agent.run_sync()
        except GPChannelError as exc:
            log.warning("the triggered admin session cannot start: %s", exc)
            return
        self.summaries.append(summary)
        log.info("triggered admin session: %s", summary.describe())

    def join(self, timeout: float | None = None) -> None:
        """Wait for the running session (tests, shutdown)."""
        if self.thread is not None:
            self.thread.join(timeout)
