"""An SMPP 3.4 SMSC (server side) on asyncio: listen, take or refuse binds, hand submit_sm to the application,
send deliver_sm back (the handset bridge's SMPP face, and the SMS centre of tests).

SMPP 3.4 2.2 / 2.3 (what each bind may send: a transmitter submits, a receiver is delivered to, a transceiver
both; a PDU that the bind state does not allow is refused with ESME_RINVBNDSTS, one before any bind with a
generic_nack), 4.1 (bind_*_resp: ESME_ROK, or the refusal the ``authorize`` hook gives; ESME_RALYBND for a second
bind), 4.4 (submit_sm, answered by the application through :meth:`SubmitSmEvent.accept` or
:meth:`~SubmitSmEvent.reject`), 4.6 deliver_sm. On :meth:`SmscServer.stop` each bound ESME is sent an unbind
(4.2) before its connection closes.

:meth:`SmscServer.next` yields the events in order: :class:`BoundEvent` (a :class:`SmscSession` that bound),
:class:`SubmitSmEvent`, :class:`UnboundEvent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from gpchannel.errors import SmppStatusError, TransportError
from gpchannel.smpp.esme import BindMode
from gpchannel.smpp.pdu import BindBody, BindRespBody, CommandId, CommandStatus, MessageIdBody, Pdu, ShortMessageBody
from gpchannel.smpp.session import DEFAULT_ENQUIRE_INTERVAL, DEFAULT_RESPONSE_TIMEOUT, DEFAULT_WINDOW, SmppSession

__all__ = ["Authorizer", "BoundEvent", "SmscServer", "SmscSession", "SubmitSmEvent", "UnboundEvent"]

_log = logging.getLogger("gpchannel.smpp.smsc")
_BIND_MODES = {mode.value: mode for mode in BindMode}

Authorizer = Callable[[BindBody, BindMode], int]
"""Decides a bind: ESME_ROK, or the command_status that refuses it (e.g. ESME_RINVSYSID, ESME_RINVPASWD)."""


class SmscSession:
    """One ESME connection as the SMSC sees it; ``system_id`` and ``mode`` once it bound."""

    def __init__(self, session_id: str, session: SmppSession) -> None:
        self.session_id = session_id
        self.session = session
        self.system_id = ""
        self.mode: BindMode | None = None

    @property
    def can_receive(self) -> bool:
        """Bound as a receiver or transceiver, and still connected."""
        return self.mode is not None and self.mode.can_receive and not self.session.closed

    async def deliver_sm(self, body: ShortMessageBody, *, timeout: float | None = None) -> None:
        """Send a deliver_sm; :class:`SmppStatusError` when the ESME refuses it, :class:`TransportError` when it
        is gone, cannot receive, or does not answer."""
        if not self.can_receive:
            raise TransportError(f"ESME {self.system_id!r} cannot take a deliver_sm (not bound to receive)")
        resp = await self.session.request(CommandId.DELIVER_SM, body, timeout=timeout)
        if not resp.ok:
            raise SmppStatusError(resp.command_status, f"ESME {self.system_id!r} refused the deliver_sm")


@dataclass(frozen=True, slots=True)
class BoundEvent:
    session: SmscSession


@dataclass(frozen=True, slots=True)
class UnboundEvent:
    session: SmscSession


@dataclass(eq=False, slots=True)
class SubmitSmEvent:
    """A submit_sm from a bound transmitter or transceiver; answer it once with :meth:`accept` or :meth:`reject`
    (an event left unanswered leaves the ESME waiting until its response timer)."""

    session: SmscSession
    pdu: Pdu
    answered: bool = False

    @property
    def body(self) -> ShortMessageBody:
        assert isinstance(self.pdu.body, ShortMessageBody)
        return self.pdu.body

    def accept(self, message_id: str) -> None:
        self._answer(CommandStatus.ESME_ROK, message_id)

    def reject(self, status: int) -> None:
        self._answer(status, "")

    def _answer(self, status: int, message_id: str) -> None:
        if self.answered:
            return
        self.answered = True
        self.session.session.respond_nowait(self.pdu, status, MessageIdBody(message_id))


Event = BoundEvent | SubmitSmEvent | UnboundEvent


class SmscServer:
    """Listens on ``host:port`` (port 0: any; :attr:`port` is the bound one after :meth:`start`).
    ``authorize`` decides each bind (default: any); ``system_id`` is the SMSC's, sent in bind_*_resp."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        system_id: str = "SMSC",
        authorize: Authorizer | None = None,
        window: int = DEFAULT_WINDOW,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        enquire_interval: float = DEFAULT_ENQUIRE_INTERVAL,
    ) -> None:
        self.host = host
        self.port = port
        self.system_id = system_id
        self._authorize = authorize
        self._window = window
        self._response_timeout = response_timeout
        self._enquire_interval = enquire_interval
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, SmscSession] = {}
        self._by_session: dict[SmppSession, SmscSession] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._ids = itertools.count(1)

    async def start(self) -> None:
        """Listen; :class:`TransportError` when the address cannot be bound (taken, not local, ...)."""
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def next(self) -> Event:
        return await self._events.get()

    def next_nowait(self) -> Event | None:
        """The next event if one is waiting, else None (a caller draining a burst without waiting)."""
        return None if self._events.empty() else self._events.get_nowait()

    @property
    def sessions(self) -> list[SmscSession]:
        return list(self._sessions.values())

    async def stop(self) -> None:
        """Stop listening, unbind every ESME (a bounded wait for each unbind_resp), close the connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        sessions = list(self._sessions.values())
        if sessions:
            await asyncio.gather(*(s.session.close() for s in sessions), return_exceptions=True)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # stopping
            writer.close()
            return
        session_id = f"s{next(self._ids)}"
        session = SmppSession(
            reader,
            writer,
            self._handle,
            window=self._window,
            response_timeout=self._response_timeout,
            enquire_interval=self._enquire_interval,
            name=f"smsc {session_id}",
        )
        esme = SmscSession(session_id, session)
        self._sessions[session_id] = esme
        self._by_session[session] = esme
        session.on_close(lambda: self._gone(esme))
        session.start()

    def _gone(self, esme: SmscSession) -> None:
        self._sessions.pop(esme.session_id, None)
        self._by_session.pop(esme.session, None)
        if esme.mode is not None:
            self._events.put_nowait(UnboundEvent(esme))

    def _of(self, session: SmppSession) -> SmscSession | None:
        return self._by_session.get(session)

    async def _handle(self, session: SmppSession, pdu: Pdu) -> None:
        esme = self._of(session)
        if esme is None:
            return
        mode = _BIND_MODES.get(pdu.command_id)
        if mode is not None:
            await self._bind(esme, pdu, mode)
        elif esme.mode is None:
            await session.nack(pdu.sequence_number, CommandStatus.ESME_RINVBNDSTS)
        elif pdu.command_id is CommandId.SUBMIT_SM and esme.mode.can_send:
            self._events.put_nowait(SubmitSmEvent(esme, pdu))
        elif pdu.command_id is CommandId.SUBMIT_SM:
            await session.respond(pdu, CommandStatus.ESME_RINVBNDSTS, MessageIdBody())
        else:  # deliver_sm goes from the SMSC to the ESME, not back
            await session.respond(pdu, CommandStatus.ESME_RINVCMDID)

    async def _bind(self, esme: SmscSession, pdu: Pdu, mode: BindMode) -> None:
        assert isinstance(pdu.body, BindBody)
        if esme.mode is not None:
            await esme.session.respond(pdu, CommandStatus.ESME_RALYBND)
            return
        status = CommandStatus.ESME_ROK
        if self._authorize is not None:
            try:
                status = CommandStatus(self._authorize(pdu.body, mode))
            except ValueError:
                status = CommandStatus.ESME_RBINDFAIL
        if status is not CommandStatus.ESME_ROK:
            _log.info("bind of %r refused (%#04x)", pdu.body.system_id, status)
            await esme.session.respond(pdu, status)
            return
        esme.system_id, esme.mode = pdu.body.system_id, mode
        esme.session.bound = True
        await esme.session.respond(pdu, CommandStatus.ESME_ROK, BindRespBody(self.system_id))
        self._events.put_nowait(BoundEvent(esme))
        _log.info("ESME %r bound as %s (%s)", esme.system_id, mode.name.lower(), esme.session_id)
