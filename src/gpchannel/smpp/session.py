"""The SMPP 3.4 session layer shared by the ESME (:mod:`gpchannel.smpp.esme`) and the SMSC
(:mod:`gpchannel.smpp.smsc`) on asyncio: framing, sequence numbers, a window of outstanding requests,
enquire_link, unbind.

SMPP 3.4 2.6 (sequence numbers: 0x00000001..0x7FFFFFFF, a _resp carries its request's), 2.7 / 2.8 (the window: how
many requests may wait for their _resp at once; the timers of 7.2: enquire_link_timer, response_timer), 4.2
unbind (answered with unbind_resp, then the connection closes), 4.3 generic_nack (for a PDU whose command_id is
unknown or whose header is wrong), 4.11 enquire_link (answered in any state).

A malformed PDU is answered (its _resp with the status of :class:`gpchannel.errors.SmppPduError`, else a
generic_nack) and the session goes on; a command_length that cannot be framed closes the connection. Nothing
the peer sends raises out of the session: the read loop ends with the connection, and every pending request
then fails with :class:`gpchannel.errors.TransportError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gpchannel.errors import SmppPduError, TransportError
from gpchannel.smpp.pdu import Body, CommandId, CommandStatus, Pdu, PduReader, decode

__all__ = ["DEFAULT_ENQUIRE_INTERVAL", "DEFAULT_RESPONSE_TIMEOUT", "DEFAULT_WINDOW", "Handler", "SmppSession"]

_log = logging.getLogger("gpchannel.smpp.session")

DEFAULT_WINDOW = 10
DEFAULT_RESPONSE_TIMEOUT = 10.0
DEFAULT_ENQUIRE_INTERVAL = 30.0
_UNBIND_WAIT = 2.0
_READ_CHUNK = 65536
_WRITE_HIGH_WATER = 65536
"""Bytes buffered in the transport past which a writer waits for them to drain."""
_COMMANDS = {int(c): c for c in CommandId}

Handler = Callable[["SmppSession", Pdu], Awaitable[None]]
"""Called for each request other than enquire_link and unbind (the role's: bind, submit_sm, deliver_sm)."""


class SmppSession:
    """One SMPP connection. :meth:`start` runs its reader; :meth:`request` sends a request and waits for its
    _resp within ``response_timeout`` (at most ``window`` at once); :meth:`close` unbinds (when ``bound``) and
    closes. ``handler`` gets the peer's requests, in order; it must answer each (:meth:`respond`).
    An enquire_link goes out after ``enquire_interval`` seconds without traffic from the peer; a peer that does not
    answer it is taken as gone."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        *,
        window: int = DEFAULT_WINDOW,
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        enquire_interval: float = DEFAULT_ENQUIRE_INTERVAL,
        name: str = "smpp",
    ) -> None:
        if window < 1:
            raise ValueError("the window is at least 1")
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._window = asyncio.Semaphore(window)
        self.response_timeout = response_timeout
        self.enquire_interval = enquire_interval
        self.name = name
        self.bound = False
        self._sequence = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._closing = False
        self._last_heard = 0.0
        self._on_close: list[Callable[[], None]] = []
        self._closer: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_heard = loop.time()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name=f"{self.name}-read"),
            asyncio.create_task(self._enquire_loop(), name=f"{self.name}-enquire"),
        ]

    @property
    def closed(self) -> bool:
        return self._closing or self._closed.is_set()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the connection is gone (either side)."""
        if self._closed.is_set():
            callback()
        else:
            self._on_close.append(callback)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self, *, unbind: bool = True) -> None:
        """Unbind (4.2; a bounded wait for unbind_resp) when bound, then close the connection; idempotent."""
        if self._closing:
            await self._closed.wait()
            return
        if unbind and self.bound:
            with contextlib.suppress(TransportError):
                await self.request(CommandId.UNBIND, timeout=_UNBIND_WAIT)
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self.bound = False
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TransportError(f"{self.name}: the SMPP connection closed"))
        self._pending.clear()
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), _UNBIND_WAIT)
        others = [t for t in self._tasks if t is not current]
        if others:
            await asyncio.gather(*others, return_exceptions=True)
        self._closed.set()
        for callback in self._on_close:
            callback()
        self._on_close.clear()

    # -- sending -----------------------------------------------------------------------------------------------
    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def _send(self, pdu: Pdu) -> None:
        """Hand one whole PDU to the transport (one write: PDUs never interleave, in call order)."""
        data = pdu.encode()
        if self.closed or self._writer.transport.is_closing():
            raise TransportError(f"{self.name}: the SMPP connection is closed")
        try:
            self._writer.write(data)
        except (OSError, RuntimeError) as exc:  # RuntimeError: the transport closed under the write
            raise TransportError(f"{self.name}: cannot send {pdu.command_id.name}: {exc}") from None

    async def _write(self, pdu: Pdu) -> None:
        """:meth:`_send`, then wait for the transport's buffer to drain only when it holds more than
        ``_WRITE_HIGH_WATER`` bytes (a peer that reads slowly holds the writers back; a fast one costs no wait)."""
        self._send(pdu)
        if self._writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            async with self._write_lock:
                try:
                    await self._writer.drain()
                except (OSError, RuntimeError) as exc:
                    raise TransportError(f"{self.name}: cannot send {pdu.command_id.name}: {exc}") from None

    async def request(self, command_id: CommandId, body: Body = None, *, timeout: float | None = None) -> Pdu:
        """Send a request, return its _resp (or the generic_nack that answered it), whatever its status;
        :class:`TransportError` when the connection closes or no answer comes within the timeout (a timer of the
        event loop per request, no task)."""
        wait = self.response_timeout if timeout is None else timeout
        async with self._window:
            if self.closed:
                raise TransportError(f"{self.name}: the SMPP connection is closed")
            sequence = self._next_sequence()
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Pdu] = loop.create_future()
            self._pending[sequence] = future
            timer = loop.call_at(loop.time() + wait, self._expire, future, command_id, wait)
            try:
                await self._write(Pdu(command_id, sequence, 0, body))
                return await future
            finally:
                timer.cancel()
                self._pending.pop(sequence, None)
                if not future.done():
                    future.cancel()

    def _expire(self, future: asyncio.Future[Pdu], command_id: CommandId, wait: float) -> None:
        if not future.done():
            future.set_exception(TransportError(f"{self.name}: no answer to {command_id.name} within {wait:g} s"))

    async def respond(self, request: Pdu, status: int = CommandStatus.ESME_ROK, body: Body = None) -> None:
        """Answer ``request`` with its _resp; a closed connection is not an error (the peer left)."""
        with contextlib.suppress(TransportError):
            await self._write(Pdu(request.command_id.response, request.sequence_number, status, body))

    def respond_nowait(self, request: Pdu, status: int = CommandStatus.ESME_ROK, body: Body = None) -> None:
        """:meth:`respond` without waiting for the transport's buffer (an answer is small; the requests the peer
        sends are what a slow reader holds back)."""
        with contextlib.suppress(TransportError):
            self._send(Pdu(request.command_id.response, request.sequence_number, status, body))

    async def nack(self, sequence: int, status: int) -> None:
        with contextlib.suppress(TransportError):
            await self._write(Pdu(CommandId.GENERIC_NACK, sequence, status))

    # -- receiving ---------------------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        framer = PduReader()
        try:
            while True:
                try:
                    data = await self._reader.read(_READ_CHUNK)
                except OSError:
                    data = b""
                if not data:
                    break
                self._last_heard = asyncio.get_running_loop().time()
                try:
                    frames = framer.feed(data)
                except SmppPduError as exc:
                    _log.info("%s: %s; closing", self.name, exc)
                    await self.nack(0, exc.command_status)
                    break
                for frame in frames:
                    await self._dispatch(frame)
        except asyncio.CancelledError:
            raise
        except Exception:  # a handler's bug must end this connection, not the process
            _log.exception("%s: the session failed", self.name)
        await self._shutdown_soon()

    async def _shutdown_soon(self) -> None:
        """Close from one of the session's own tasks: in a task of its own, which may cancel this one."""
        if not self._closing and self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._shutdown())

    async def _dispatch(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except SmppPduError as exc:
            _log.info("%s: %s", self.name, exc)
            await self._refuse(exc)
            return
        if pdu.command_id.is_response:
            future = self._pending.get(pdu.sequence_number)
            if future is not None and not future.done():
                future.set_result(pdu)
            return
        if pdu.command_id is CommandId.ENQUIRE_LINK:
            await self.respond(pdu)
        elif pdu.command_id is CommandId.UNBIND:
            await self.respond(pdu)
            self.bound = False
            await self._shutdown()
        else:
            await self._handler(self, pdu)

    async def _refuse(self, exc: SmppPduError) -> None:
        command_id = _COMMANDS.get(exc.command_id if exc.command_id is not None else -1)
        if command_id is None:
            await self.nack(exc.sequence_number, exc.command_status)
        elif not command_id.is_response:
            await self.respond(Pdu(command_id, exc.sequence_number), exc.command_status)
        else:
            future = self._pending.get(exc.sequence_number)  # a malformed _resp still answers its request
            if future is not None and not future.done():
                future.set_result(Pdu(command_id, exc.sequence_number, exc.command_status))

    async def _enquire_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.05, self._last_heard + self.enquire_interval - loop.time()))
            if loop.time() - self._last_heard < self.enquire_interval:
                continue
            try:
                await self.request(CommandId.ENQUIRE_LINK)
            except TransportError:
                _log.info("%s: no answer to enquire_link; the peer is gone", self.name)
                break
        await self._shutdown_soon()
