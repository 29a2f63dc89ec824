"""asyncio streams over the PSK-TLS engine (io/tls_psk.py): the RAS listener and the card-side client (SCP81).

:func:`serve_psk` accepts TCP connections, runs the PSK-TLS handshake under ``handshake_timeout`` and hands each
established :class:`PskStream` to the handler. Handshake failures (unknown identity, wrong PSK, no shared suite,
a stalling or vanishing client) never reach the handler: they are logged at INFO on the ``gpchannel.io.tls``
logger with the peer address, the identity (when the client sent one) and the alert; PSKs are never logged.

:func:`open_psk_stream` connects and handshakes as the client (the card side of GP Amendment B; used by the card
agent, tests and benchmarks).

Stream semantics: :meth:`PskStream.read` returns b"" once the peer sent close_notify; a TCP EOF without it
raises TlsError (truncation, RFC 5246 7.2.1). After the peer's close_notify we may still write (half-close)
until :meth:`PskStream.close`, which sends our close_notify and closes the TCP connection. :meth:`PskStream.write`
waits for the transport's buffer to drain (backpressure). The engine runs in the transport's callbacks
(io/tls_protocol.py): a handshake costs no task of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from gpchannel.errors import TlsError, TransportError
from gpchannel.io.tls_protocol import PskProtocol, ThreadedPskProtocol
from gpchannel.io.tls_psk import PskClientContext, PskServerContext, PskTlsConnection

__all__ = ["CLOSE_TIMEOUT", "PskStream", "open_psk_stream", "serve_psk"]

logger = logging.getLogger("gpchannel.io.tls")

CLOSE_TIMEOUT = 10.0
"""Seconds a closing connection may take to flush what is buffered before it is aborted."""


class PskStream:
    """One established PSK-TLS connection."""

    __slots__ = (
        "_buffer",
        "_closed",
        "_conn",
        "_proto",
        "_reading",
        "_transport",
        "_turns",
        "peername",
    )

    def __init__(self, protocol: PskProtocol) -> None:
        self._proto = protocol
        self._conn = protocol.conn
        assert protocol.transport is not None
        self._transport = protocol.transport
        self._buffer = bytearray()
        self._closed = False
        self._reading = False  # a read() is running (it or the next in _turns owns the stream's input)
        self._turns: deque[asyncio.Future[None]] | None = None  # reads waiting for their turn, in order
        self.peername: tuple[str, int] | None = protocol.peername

    @property
    def identity(self) -> bytes | None:
        """The PSK identity of the connection (the one the client sent, on the server side)."""
        return self._conn.identity

    @property
    def cipher_name(self) -> str | None:
        """The negotiated suite, by its OpenSSL name (e.g. "PSK-AES128-CBC-SHA256")."""
        return self._conn.cipher_name

    @property
    def version(self) -> str | None:
        """The negotiated protocol version, e.g. "TLSv1.2"."""
        return self._conn.version

    @property
    def connection(self) -> PskTlsConnection:
        """The engine underneath (for its alert_sent / alert_received attributes)."""
        return self._conn

    def __repr__(self) -> str:
        return f"PskStream(peer={self.peername!r}, identity={self.identity!r}, cipher={self.cipher_name!r})"

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` of application data, waiting for some; b"" at close_notify (or after close()).
        Concurrent reads take turns in the order they were called."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if self._reading:
            await self._wait_turn()
        else:
            self._reading = True
        try:
            conn, proto = self._conn, self._proto
            while True:
                if conn.plaintext:
                    self._buffer += conn.read()
                if self._buffer:
                    data = bytes(self._buffer[:max_bytes])
                    del self._buffer[:max_bytes]
                    return data
                if conn.peer_closed or self._closed:
                    return b""
                if proto.error is not None:
                    raise proto.error
                if proto.eof:
                    return b""  # our own close (connection_lost without an error after the peer's EOF)
                await proto.readable()
        finally:
            self._pass_turn()

    async def _wait_turn(self) -> None:
        """Wait until the reads before this one are done (a lock made only when reads overlap)."""
        if self._turns is None:
            self._turns = deque()
        turn = self._proto.loop.create_future()
        self._turns.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._pass_turn()  # handed the turn, cancelled before using it: hand it on
            else:
                self._turns.remove(turn)
            raise

    def _pass_turn(self) -> None:
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)  # the stream's input stays owned (_reading), now by that read
                return
        self._reading = False

    async def write(self, data: bytes) -> None:
        """Encrypt and send ``data``; returns once the transport accepted it (flow control)."""
        if self._closed or self._conn.closed:
            raise TlsError("write on a closed PskStream")
        self._conn.write(data)
        self._proto.flush()
        await self._proto.drain()

    async def write_eof(self) -> None:
        """Half-close: send close_notify and stop writing, but keep reading until the peer's close_notify
        (call :meth:`close` afterwards)."""
        if self._closed or self._conn.closed:
            return
        self._conn.close()
        self._proto.flush()
        await self._proto.drain()

    async def close(self) -> None:
        """Send close_notify (if the connection is still sound) and close the TCP connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.close()
        except TlsError:
            pass
        try:
            self._proto.flush()
        except OSError:  # ConnectionError included
            pass
        # no write_eof first: closing the transport sends what is buffered, then the FIN (one syscall fewer)
        await self._proto.close(CLOSE_TIMEOUT)


async def open_psk_stream(host: str, port: int, context: PskClientContext, *, timeout: float = 30.0) -> PskStream:
    """Connect to ``host:port`` and complete the PSK-TLS handshake within ``timeout`` seconds.

    Raises TlsError (handshake refused: ``alert`` says why, or timed out) or TransportError (TCP connect failed).
    """
    loop = asyncio.get_running_loop()
    protocol = PskProtocol(context.connection(), loop)
    handshake: asyncio.Future[None] = loop.create_future()

    def settled(_: PskProtocol, exc: BaseException | None) -> None:
        if not handshake.done():
            handshake.set_result(None) if exc is None else handshake.set_exception(exc)

    protocol.on_handshake = settled
    try:
        async with asyncio.timeout(timeout):
            try:
                await loop.create_connection(lambda: protocol, host, port)
            except OSError as exc:
                raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc
            try:
                await handshake
            except BaseException:
                await protocol.close(CLOSE_TIMEOUT)
                raise
    except TimeoutError as exc:
        raise TlsError(f"TLS handshake with {host}:{port} did not complete within {timeout} s") from exc
    return PskStream(protocol)


async def serve_psk(
    handler: Callable[[PskStream], Awaitable[None]],
    host: str,
    port: int,
    context: PskServerContext,
    *,
    handshake_timeout: float = 30.0,
    lookup_in_thread: bool = False,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Listen on ``host:port`` (port 0 = any free port: see ``server.sockets``) and run ``handler`` on each
    connection whose handshake completed. The stream is closed when the handler returns or raises; handler
    exceptions are logged (ERROR, with traceback) and do not stop the server.

    A client that has not completed the handshake within ``handshake_timeout`` seconds is dropped (logged at
    INFO). ``lookup_in_thread=True`` runs the handshake's record processing, and so the context's PSK lookup, in
    a worker thread (asyncio.to_thread): use it when the lookup blocks (database, HSM); it costs a thread hop
    per client flight that may reach the lookup. (Addition to the contract; the default keeps everything on the
    event loop.) ``reuse_port=True`` sets SO_REUSEPORT: several processes listen on one port and the kernel
    spreads the connections over them (Linux, BSD).
    """
    loop = asyncio.get_running_loop()
    running: dict[PskProtocol, asyncio.Task[None]] = {}  # the sessions' tasks, held until they end
    failing: set[asyncio.Task[None]] = set()
    # handshakes under way with their deadlines, oldest first (one timeout for all: the dict is in deadline order),
    # and the one timer that drops those past theirs: a connection costs no timer of its own
    deadlines: dict[PskProtocol, float] = {}
    sweeper: asyncio.TimerHandle | None = None

    def sweep() -> None:
        nonlocal sweeper
        sweeper = None
        now = loop.time()
        while deadlines:
            protocol, deadline = next(iter(deadlines.items()))
            if deadline > now:
                sweeper = loop.call_at(deadline, sweep)
                return
            del deadlines[protocol]
            protocol.fail_handshake(TimeoutError())

    async def session(protocol: PskProtocol) -> None:
        try:
            stream = PskStream(protocol)
            conn = protocol.conn
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("PSK-TLS session from %s: identity %r, %s, %s", stream.peername, conn.identity,
                             conn.version, conn.cipher_name)  # fmt: skip
            try:
                await handler(stream)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("PSK-TLS handler for %s (identity %r) failed", stream.peername, conn.identity)
            finally:
                await stream.close()
        finally:
            running.pop(protocol, None)

    def settled(protocol: PskProtocol, exc: BaseException | None) -> None:
        deadlines.pop(protocol, None)
        if exc is None:  # established: the handler's task (the only task a connection costs)
            running[protocol] = loop.create_task(session(protocol))
            return
        conn = protocol.conn
        if isinstance(exc, TimeoutError):
            logger.info("PSK-TLS handshake from %s timed out after %s s (identity %r); connection dropped",
                        protocol.peername, handshake_timeout, conn.identity)  # fmt: skip
        else:
            alert = exc.alert if isinstance(exc, TlsError) else None
            logger.info("PSK-TLS handshake from %s failed (identity %r, alert %s): %s", protocol.peername,
                        conn.identity, alert, exc)  # fmt: skip
        task = loop.create_task(protocol.close(CLOSE_TIMEOUT))
        failing.add(task)
        task.add_done_callback(failing.discard)

    kind = ThreadedPskProtocol if lookup_in_thread else PskProtocol

    def factory() -> PskProtocol:
        nonlocal sweeper
        protocol = kind(context.connection(), loop)
        protocol.on_handshake = settled
        deadlines[protocol] = deadline = loop.time() + handshake_timeout
        if sweeper is None:
            sweeper = loop.call_at(deadline, sweep)
        return protocol

    return await loop.create_server(factory, host, port, reuse_port=reuse_port or None)
