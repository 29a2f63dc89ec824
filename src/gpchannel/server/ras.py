"""The Remote Administration Server: one GP Amendment B admin session per PSK-TLS connection.

Flow (GP Amendment B "RAM over HTTP" section 3, ETSI TS 102 226 Annex B; ota-notes B.1): the card, TLS client and
HTTP client, opens PSK-TLS (ETSI TS 102 225; io/tls_psk.py) and POSTs with no body; the server answers 200 with
the next job's expanded command script (TS 102 226 5.2.1, ``AA ...``), ``X-Admin-Next-URI: <admin_path>/<delivery
id>`` and, when the job targets an application, ``X-Admin-Targeted-Application``; the card POSTs the response
script (``AB ...``) to that URI; the server stores the results and answers with the next script, or 204 to end.

**Who is who.** The PSK identity that the TLS layer verified (the handshake only completes with the PSK stored for
that identity) is the only thing that selects the card; ``X-Admin-From`` is logged and never used to authorize.
A delivery URI names a job of *this* card only: another card's delivery id is answered 404.

**Resumption without running a script twice.** A job is moved to ``sent`` with a fresh random delivery id in one
transaction before its script leaves (Repository.deliver_next_job); it stays ``sent`` until the card's response
to that delivery arrives, whatever happens to the connection. Then:

1. a response POST to ``<admin_path>/<delivery id>`` of a ``sent`` job of this card completes it, on the same
   connection or on a later one (the card agent persists "script received" before running a script and keeps its
   results until they are acknowledged, and re-POSTs them with ``X-Admin-Resume: true``);
2. a response POST for a delivery that is already final (the server answered it before, the acknowledgement was
   lost) is not stored again: the session goes on with the next job;
3. a first POST with ``X-Admin-Resume: true`` while the card has a ``sent`` job means the card never received (or
   never started) that script: the SAME delivery (same id, same script) is sent again;
4. a first POST without ``X-Admin-Resume`` while the card has a ``sent`` job: the card does not know the script,
   but nobody can tell whether it ran it; the job is failed "outcome unknown: session broken after the script was
   sent" and never re-run blindly (an operator queues it again after checking the card).

**Bad input** (every fault has its answer):
malformed HTTP -> the status :class:`AdminProtocolError` carries (400, 404,
405, 411, 413, 415) and the connection closes; when a script was outstanding its job is failed with the reason. A
response that is not a valid response script TLV -> the job is failed with the decoding error and the card gets
400. ``X-Admin-Script-Status`` other than ``ok`` -> the job is failed with that status, the session goes on. A card
silent for ``read_timeout`` seconds, or a connection that breaks, while a script is outstanding -> the job stays
``sent`` (rule 1 or 3 or 4 decides when the card comes back) and its reason records what happened. Every event is
logged with the identity, card, job and delivery ids, never a key and never script contents.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import AdminProtocolError, DecodeError, GPChannelError, RepositoryError, TransportError
from gpchannel.io.tls_psk import PskServerContext
from gpchannel.io.tls_stream import PskStream
from gpchannel.ota.remote_apdu import CommandScript, ResponseScript
from gpchannel.ram.admin import ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.server import AdminRequest, AdminServerConnection
from gpchannel.server.admin_batch import AdminBatch
from gpchannel.server.config import ServerServices
from gpchannel.server.psk_batch import PskBatch, lookup_psks
from gpchannel.server.ras_results import admin_delivery, partial_results, results_of
from gpchannel.server.repository import AdminOutcome, AdminStep, ApduResult, CardRecord, Completion, JobRecord, JobState
from gpchannel.server.store_gate import StoreGate

__all__ = ["OUTCOME_UNKNOWN", "AdminSessions", "results_of"]

_log = logging.getLogger("gpchannel.server.ras")

OUTCOME_UNKNOWN = "outcome unknown: session broken after the script was sent"
_RESPONSE_TYPES = frozenset({ContentType.GP_RESPONSE, ContentType.ETSI_RESPONSE})
_DRAIN_SECONDS = 30.0
"""How long shutdown waits for store calls already running in worker threads (one query each)."""


@dataclass
class _Lost:
    """Why a session ended without a clean 204 (for the outstanding job's reason)."""

    reason: str


class AdminSessions:
    """The admin side of ``gpchannel server``: the PSK lookup for the TLS engine and one session per connection.

    ``psk_lookup`` runs inside the TLS handshake, in a worker thread of the listener (``serve_psk(...,
    lookup_in_thread=True)`` in server/app.py): one indexed query and the key provider; an unknown identity or a
    card without a PSK returns None, and the engine sends the ``unknown_psk_identity`` alert.

    Shutdown (:meth:`close`): from its first step on, a handshake that reaches the PSK lookup gets that alert and a
    session whose handshake completes is closed before it reads anything (the TLS close_notify); the running
    sessions are cancelled (their outstanding job noted), then the store calls still in worker threads finish and
    every later one is refused, so that nothing touches the store once the server closes it.
    """

    def __init__(self, services: ServerServices) -> None:
        self.services = services
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._gate = StoreGate()
        self._batch = AdminBatch(
            services.repository, services.config.owner, services.clock, admin_delivery, self._gate.call
        )
        self._handshake_cards: dict[str, CardRecord] = {}
        """The card each identity's last PSK lookup found, taken by the session its handshake opens (no second
        query); a handshake that fails after the lookup leaves at most one entry per registered identity."""
        self._psks = PskBatch(self._lookup_many, self._gate.call)
        """The look-ups of concurrent handshakes in one store call (the TLS engine's prefetch)."""

    # ------------------------------------------------------------------------------------------------ TLS side

    def psk_lookup(self, identity: bytes) -> bytes | None:
        """identity -> PSK through the key provider, None when unknown (never raises, never logs the key)."""
        if self._closing or not self._gate.enter():
            _log.info("PSK identity %r refused: the server is shutting down", identity)
            return None
        try:
            return self._lookup(identity)
        finally:
            self._gate.leave()

    def _lookup(self, identity: bytes) -> bytes | None:
        return self._lookup_many([identity])[0]

    def _lookup_many(self, identities: Sequence[bytes]) -> list[bytes | None]:
        services = self.services
        return lookup_psks(services.repository, services.keys, identities, self._handshake_cards)

    async def psk_prefetch(self, identity: bytes) -> bytes | None:
        """:meth:`psk_lookup` awaited on the event loop, batched with the concurrent handshakes' (psk_batch.py)."""
        if self._closing:
            _log.info("PSK identity %r refused: the server is shutting down", identity)
            return None
        try:
            return await self._psks.get(identity)
        except RepositoryError:  # the gate is shut: the server is shutting down
            _log.info("PSK identity %r refused: the server is shutting down", identity)
            return None

    def server_context(self) -> PskServerContext:
        """The TLS engine context of the admin listener (the configured policy, our lookups)."""
        return PskServerContext(self.psk_lookup, self.services.config.tls_policy(), prefetch=self.psk_prefetch)

    # ------------------------------------------------------------------------------------------------ sessions

    async def handle(self, stream: PskStream) -> None:
        """Run one admin session over an authenticated PSK-TLS stream (the handler given to serve_psk)."""
        if self._closing:  # its handshake completed while the server shuts down: refused before any store access
            _log.info("session from %s refused: the server is shutting down", stream.peername)
            try:
                await stream.close()
            except (TransportError, OSError):
                pass
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            identity = stream.identity
            text = identity.decode("utf-8") if identity else ""
            card = self._handshake_cards.pop(text, None)  # the card its PSK lookup found, in this handshake
            if card is None and text:
                lookup = self.services.repository.card_by_identity
                card = await self._gate.call(functools.partial(lookup, text))
            if card is None:
                _log.warning("session from %s: identity %r has no card any more; closing", stream.peername, text)
                return
            await _Session(self.services, stream, card, self._gate, self._batch).run()
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # our own close(): the session noted its outstanding job; end the connection task quietly
        except Exception:
            _log.exception("admin session from %s failed", stream.peername)
        finally:
            try:
                await stream.close()
            except (TransportError, OSError):
                pass
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """Stop the running sessions (server shutdown); outstanding jobs stay ``sent`` with the reason noted. New
        sessions are refused from the first step; when it returns, no store call runs or will run."""
        self._closing = True
        _log.info("admin sessions: shutting down, new sessions are refused")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if not await asyncio.to_thread(self._gate.shut, _DRAIN_SECONDS):
            _log.warning("admin sessions: store calls still running after %g s", _DRAIN_SECONDS)


class _Where:
    """``card <id> (identity <identity>, peer <address>)``, formatted only when a log line is written: the
    sessions' INFO lines are skipped at the server's usual WARNING level, and their arguments then cost nothing."""

    __slots__ = ("card", "peer")

    def __init__(self, card: CardRecord, peer: tuple[str, int] | None) -> None:
        self.card, self.peer = card, peer

    def __str__(self) -> str:
        return f"card {self.card.id} (identity {self.card.psk_identity!r}, peer {self.peer})"


class _Session:
    """One admin session: the HTTP exchange (ram.server, sans-I/O) driven over one PskStream."""

    def __init__(
        self, services: ServerServices, stream: PskStream, card: CardRecord, gate: StoreGate, batch: AdminBatch
    ) -> None:
        self.services = services
        self.gate = gate
        """Every store call goes through ``gate.call`` (a worker thread, counted, refused after shutdown)."""
        self.batch = batch
        """The hot path (a first POST, a completion and the next job) goes through the group commit."""
        self.config = services.config
        self.repo = services.repository
        self.stream = stream
        self.card = card
        self.http = AdminServerConnection(max_body=self.config.max_body)
        self.pending: JobRecord | None = None
        """The job whose script went out on this connection and whose response has not come back."""
        self.agent_from: str | None = None
        self.scripts = 0
        self.where = _Where(card, stream.peername)
        """Who the session is with, for the log lines (formatted only when a line is written)."""
        etsi = str(card.ota.get("admin_content", "gp")).lower() == "etsi"
        self.command_type = ContentType.ETSI_COMMAND if etsi else ContentType.GP_COMMAND

    async def run(self) -> None:
        _log.info("admin session opened: %s, %s", self.where, self.stream.cipher_name)
        try:
            while True:
                outcome = await self._next_request()
                if isinstance(outcome, _Lost):
                    await self._lost(outcome.reason)
                    return
                try:
                    reply = await self._answer(outcome)
                except (GPChannelError, SQLAlchemyError, OSError) as exc:  # the store or the key provider failed
                    _log.error("%s: cannot answer %s: %s", self.where, outcome.uri, exc)
                    await self.stream.write(self.http.send_error(500, "the server cannot answer now"))
                    await self._lost(f"HTTP 500 ({type(exc).__name__})")
                    return
                await self.stream.write(reply)
                if self.http.closed:
                    return
        except asyncio.CancelledError:
            await asyncio.shield(self._lost("the server shut down"))
            raise
        except (TransportError, OSError) as exc:
            await self._lost(f"the connection failed: {exc}")

    async def _next_request(self) -> AdminRequest | _Lost:
        received = 0
        while True:
            try:
                request = self.http.next_request()
            except AdminProtocolError as exc:
                return await self._protocol_error(exc)
            if request is not None:
                return request
            if self.http.closed:
                return _Lost("the card closed the connection")
            try:
                async with asyncio.timeout(self.config.read_timeout):  # no task per read, unlike wait_for
                    data = await self.stream.read()
            except TimeoutError:
                part = f" after {received} bytes of a request" if received else ""
                return _Lost(f"the card was silent for {self.config.read_timeout:g} s{part}")
            except (TransportError, OSError) as exc:
                return _Lost(f"the connection failed: {exc}")
            if not data:
                try:
                    self.http.receive_data(b"")
                    request = self.http.next_request()
                except AdminProtocolError:
                    request = None
                if request is not None:
                    return request
                part = f" in the middle of a request ({received} bytes received)" if received else ""
                return _Lost(f"the card closed the connection{part}")
            received += len(data)
            self.http.receive_data(data)

    async def _answer(self, request: AdminRequest) -> bytes:
        if request.agent_from != self.agent_from:
            if self.agent_from is not None:
                _log.warning("%s: X-Admin-From changed from %r to %r", self.where, self.agent_from, request.agent_from)
            self.agent_from = request.agent_from
            _log.info("%s: X-Admin-From %r (recorded, not used to authorize)", self.where, request.agent_from)
        if request.first:
            return await self._first_post(request)
        return await self._response_post(request)

    # ---------------------------------------------------------------------------------------------- first POST

    async def _first_post(self, request: AdminRequest) -> bytes:
        outcome = await self.batch.step(AdminStep(self.card.id, first=True))
        sent = outcome.outstanding  # a script an admin session sent and the card never acknowledged
        if sent is None or sent.delivery_id is None:
            return await self._send_or_end(outcome.delivered)
        if request.resume:
            _log.info(
                "%s: resumed session without results: delivery %s (job %d) sent again",
                self.where,
                sent.delivery_id,
                sent.id,
            )
            return await self._deliver(sent)
        _log.warning(
            "%s: first POST without X-Admin-Resume while job %d (delivery %s) was sent: %s",
            self.where,
            sent.id,
            sent.delivery_id,
            OUTCOME_UNKNOWN,
        )
        return await self._complete_then_next(sent, (), JobState.FAILED, OUTCOME_UNKNOWN)

    async def _after_duplicate(self) -> bytes:
        """The card re-POSTed a response that was stored already: it never saw our answer to it, so a job that
        answer delivered (``sent``, not acknowledged) never reached the card: send that same delivery again."""
        outcome = await self.batch.step(AdminStep(self.card.id, first=True))
        sent = outcome.outstanding
        if sent is not None and sent.delivery_id is not None:
            _log.info(
                "%s: delivery %s (job %d) was in the lost answer: sent again", self.where, sent.delivery_id, sent.id
            )
            return await self._deliver(sent)
        return await self._send_or_end(outcome.delivered)

    async def _send_or_end(self, job: JobRecord | None) -> bytes:
        """The script of ``job`` (moved to SENT by the committed step), or 204 when there is none."""
        while True:
            if job is None:
                self.pending = None
                _log.info("%s: no more jobs, 204 after %d script(s)", self.where, self.scripts)
                return self.http.send_end()
            try:
                return await self._deliver(job)
            except (DecodeError, ValueError) as exc:  # a stored script that cannot be sent: say so, go on
                _log.error("%s: job %d cannot be sent: %s", self.where, job.id, exc)
                failed = f"the script cannot be sent: {exc}"
                job = (await self._step(job, (), JobState.FAILED, failed, deliver=True)).delivered

    async def _deliver(self, job: JobRecord) -> bytes:
        assert job.delivery_id is not None
        script = CommandScript.of([CommandApdu.from_bytes(apdu) for apdu in job.script]).to_bytes()
        target = TargetedApplication(job.target) if job.target else None
        uri = f"{self.config.admin_path}/{job.delivery_id}"
        reply = self.http.send_script(script, next_uri=uri, content_type=self.command_type, targeted_application=target)
        self.pending = job
        self.scripts += 1
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "%s: job %d sent as delivery %s (%d APDUs%s)",
                self.where,
                job.id,
                job.delivery_id,
                len(job.script),
                f", target {job.target.hex().upper()}" if job.target else "",
            )
        return reply

    # ---------------------------------------------------------------------------------------------- responses

    def _delivery_id(self, uri: str) -> str | None:
        path = uri.split("?", 1)[0]
        prefix = self.config.admin_path + "/"
        if not path.startswith(prefix) or "/" in path[len(prefix) :] or len(path) == len(prefix):
            return None
        return path[len(prefix) :]

    async def _job_for(self, delivery_id: str) -> JobRecord | None:
        """This card's job of that delivery (``sent`` or already final), None if it is not this card's."""
        if self.pending is not None and self.pending.delivery_id == delivery_id:
            return self.pending
        job = await self.gate.call(functools.partial(self.repo.job_by_delivery, delivery_id))
        if job is None or job.card_id != self.card.id or not admin_delivery(job):
            return None
        return job

    async def _response_post(self, request: AdminRequest) -> bytes:
        delivery_id = self._delivery_id(request.uri)
        job = await self._job_for(delivery_id) if delivery_id is not None else None
        if job is None:
            _log.warning("%s: response POST to %r, not a delivery of this card: 404", self.where, request.uri)
            return self.http.send_error(404, "no such delivery for this card")
        if job.state.final:
            _log.info(
                "%s: response for delivery %s again (job %d is %s already): not stored twice",
                self.where,
                delivery_id,
                job.id,
                job.state.value,
            )
            return await self._after_duplicate()
        resumed = " (resumed session)" if request.resume else ""
        status = request.script_status or ScriptStatus.OK
        if status is not ScriptStatus.OK:
            _log.warning("%s: job %d: X-Admin-Script-Status %s%s", self.where, job.id, status.value, resumed)
            return await self._complete_then_next(
                job, partial_results(job, request.body), JobState.FAILED, f"X-Admin-Script-Status: {status.value}"
            )
        if request.content_type not in _RESPONSE_TYPES:
            ctype = request.content_type.value if request.content_type else "none"
            await self._complete(job, (), JobState.FAILED, f"the card answered with content type {ctype}")
            return self.http.send_error(415, "a response script content type is expected")
        try:
            script = ResponseScript.from_bytes(request.body)
        except DecodeError as exc:
            _log.warning("%s: job %d: the response is not a response script: %s", self.where, job.id, exc)
            await self._complete(job, (), JobState.FAILED, f"the response script is not valid TLV: {exc}")
            return self.http.send_error(400, "the body is not a response script (TS 102 226 5.2.2)")
        results, state, reason = results_of(job, script)
        outcome = await self._step(job, results, state, reason, deliver=True)
        if _log.isEnabledFor(logging.INFO):
            sws = " ".join(f"{r.sw:04X}" for r in results)
            _log.info(
                "%s: job %d %s%s: %s%s",
                self.where,
                job.id,
                state.value,
                resumed,
                sws or "no R-APDU",
                f" ({reason})" if reason else "",
            )
        return await self._send_or_end(outcome.delivered)

    async def _complete_then_next(
        self, job: JobRecord, results: Sequence[ApduResult], state: JobState, reason: str | None
    ) -> bytes:
        outcome = await self._step(job, results, state, reason, deliver=True)
        return await self._send_or_end(outcome.delivered)

    async def _complete(
        self, job: JobRecord, results: Sequence[ApduResult], state: JobState, reason: str | None
    ) -> None:
        await self._step(job, results, state, reason, deliver=False)

    async def _step(
        self, job: JobRecord, results: Sequence[ApduResult], state: JobState, reason: str | None, *, deliver: bool
    ) -> AdminOutcome:
        """Store the answer to ``job``'s delivery (then, with ``deliver``, hand over the card's next job) in the
        next group commit; returns once that is committed."""
        assert job.delivery_id is not None
        completion = Completion(job.delivery_id, tuple(results), state, reason)
        outcome = await self.batch.step(AdminStep(self.card.id, complete=completion, deliver=deliver))
        if self.pending is not None and self.pending.id == job.id:
            self.pending = None
        return outcome

    # ---------------------------------------------------------------------------------------------- failures

    async def _protocol_error(self, exc: AdminProtocolError) -> _Lost:
        _log.warning("%s: malformed admin request: HTTP %d %s", self.where, exc.status, exc)
        if self.pending is not None:
            await self._complete(
                self.pending,
                (),
                JobState.FAILED,
                f"malformed HTTP from the card after the script was sent (HTTP {exc.status}: {exc})",
            )
        try:
            await self.stream.write(self.http.send_error(exc.status, str(exc)))
        except (TransportError, OSError) as write_error:
            _log.info("%s: the error response could not be sent: %s", self.where, write_error)
        return _Lost(f"HTTP {exc.status}")

    async def _lost(self, reason: str) -> None:
        job = self.pending
        if job is None:
            _log.info("%s: session ended: %s", self.where, reason)
            return
        self.pending = None
        note = f"{reason} after delivery {job.delivery_id} was sent; the job stays sent until the card resumes"
        _log.warning("%s: job %d: %s", self.where, job.id, note)
        assert job.delivery_id is not None
        try:
            await self.gate.call(functools.partial(self.repo.note_sent_job, job.delivery_id, note))
        except (GPChannelError, SQLAlchemyError) as exc:
            _log.error("%s: job %d: the reason could not be stored: %s", self.where, job.id, exc)
