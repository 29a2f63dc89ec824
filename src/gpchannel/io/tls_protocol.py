"""The asyncio protocol under io/tls_stream.py: one TCP connection driving one PSK-TLS engine (io/tls_psk.py).

The engine is fed from the transport's callbacks, so a handshake costs no task, no stream reader and no future
per flight: each flight from the peer is one :meth:`PskProtocol.data_received`, one ``receive`` into the engine
and one ``transport.write`` of what it answers. The handshake's outcome is one call of
:attr:`PskProtocol.on_handshake` (no future: a server drops the connection or starts its session from there);
afterwards the plaintext waits in the engine until a reader takes it (reading from the socket pauses
while more than :data:`MAX_BUFFERED` bytes wait), and writes wait for the transport's buffer to drain.

With ``lookup_in_thread`` (:class:`ThreadedPskProtocol`: the server's PSK lookup blocks, a database, a token) the
flights that may run the lookup are processed in a worker thread while the socket is paused; a lone ClientHello record
cannot reach the lookup (RFC 4279 2: the identity is in the ClientKeyExchange, which follows our ServerHelloDone) and is
processed at once. When the context has a ``prefetch`` (io/tls_psk.PskServerContext) and the flight opens with a
complete ClientKeyExchange record, its identity is read here (:func:`psk_identity`), the PSK awaited on the loop, and
the flight processed on the loop with that answer (no thread; the server batches concurrent look-ups).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gpchannel.errors import TlsError, TransportError
from gpchannel.io.tls_policy import MAX_IDENTITY_LENGTH, PskPrefetch
from gpchannel.io.tls_psk import PskTlsConnection

__all__ = ["MAX_BUFFERED", "PskProtocol", "ThreadedPskProtocol", "psk_identity"]

MAX_BUFFERED = 1 << 17
"""Plaintext bytes that may wait for a reader before reading from the socket pauses."""
_HANDSHAKE, _CLIENT_HELLO, _CLIENT_KEY_EXCHANGE = 22, 1, 16


def _lone_client_hello(data: bytes) -> bool:
    """Whether ``data`` is exactly one handshake record holding a ClientHello (RFC 5246 6.2.1, 7.4)."""
    return (
        len(data) > 5
        and data[0] == _HANDSHAKE
        and data[5] == _CLIENT_HELLO
        and len(data) == 5 + (data[3] << 8 | data[4])
    )


def psk_identity(data: bytes) -> bytes | None:
    """The PSK identity of the ClientKeyExchange that opens ``data``: a complete handshake record whose first
    message is a whole client_key_exchange holding only ``psk_identity<0..2^16-1>`` (RFC 4279 2, plain PSK; RFC
    5246 6.2.1, 7.4.7), 1 to MAX_IDENTITY_LENGTH bytes without NUL. None for anything else (OpenSSL reads it)."""
    if len(data) < 11 or data[0] != _HANDSHAKE or data[5] != _CLIENT_KEY_EXCHANGE:
        return None
    record = data[3] << 8 | data[4]
    message = data[6] << 16 | data[7] << 8 | data[8]
    size = data[9] << 8 | data[10]
    if len(data) < 5 + record or record < 4 + message or message != 2 + size or not 0 < size <= MAX_IDENTITY_LENGTH:
        return None
    identity = bytes(data[11 : 11 + size])
    return None if b"\x00" in identity else identity


class PskProtocol(asyncio.Protocol):
    """One connection: feeds the engine from the transport, flushes what it produces, wakes the waiters."""

    __slots__ = (
        "_busy",
        "_drain",
        "_lost_waiter",
        "_read_paused",
        "_waiter",
        "_write_paused",
        "conn",
        "eof",
        "error",
        "loop",
        "lost",
        "on_handshake",
        "settled",
        "transport",
    )

    def __init__(self, conn: PskTlsConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.settled = False
        """True once the handshake completed or failed (and :attr:`on_handshake` was called)."""
        self.on_handshake: Callable[[PskProtocol, BaseException | None], None] | None = None
        """Called once: with None when the handshake completed, else with why it failed (TlsError, or what
        :meth:`fail_handshake` was given)."""
        self.error: BaseException | None = None
        """Why reading stopped (a TlsError from the engine, a TransportError from the socket)."""
        self.eof = False
        self.lost = False
        """True once the transport reported connection_lost."""
        self._lost_waiter: asyncio.Future[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._busy: asyncio.Task[None] | None = None

    # -- transport callbacks ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is not a subclass)
        if not self.conn.server:
            try:
                self.conn.start()
            except TlsError as exc:
                self._failed(exc)
                return
            self.flush()

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        conn = self.conn
        try:
            out = conn.feed(data)
        except TlsError as exc:
            self.flush()  # the alert
            self._failed(exc)
            return
        # _progress, inlined: this runs for every flight and record
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(out)
        if not self.settled and conn.handshake_complete:
            self.settled = True
            if self.on_handshake is not None:
                self.on_handshake(self, None)
        if len(conn.plaintext) > MAX_BUFFERED and transport is not None and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    _receive = data_received  # the other paths that feed the engine (EOF, after a look-up)

    def eof_received(self) -> bool:
        self.eof = True
        if self._busy is None or self._busy.done():
            self._receive(b"")
        return True  # keep our half open: the engine may still write (half-close, RFC 5246 7.2.1)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = TransportError(f"TLS peer {self.peername}: {exc}")
        self.eof = True
        self.lost = True
        if not self.settled:
            reason = exc or "the peer closed the connection"
            self.fail_handshake(TlsError(f"connection lost during the TLS handshake: {reason}"))
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- the engine -------------------------------------------------------------------------------------------

    @property
    def peername(self) -> tuple[str, int] | None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return (str(peer[0]), int(peer[1])) if peer else None

    def _resume(self) -> None:
        if self.eof:
            self._receive(b"")
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _progress(self) -> None:
        self.flush()
        if self.conn.handshake_complete and not self.settled:
            self.settled = True
            if self.on_handshake is not None:
                self.on_handshake(self, None)
        if self.conn.buffered > MAX_BUFFERED and self.transport is not None and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def fail_handshake(self, exc: BaseException) -> None:
        """End a handshake that has not completed with ``exc`` (e.g. a TimeoutError); no-op once settled."""
        if not self.settled:
            self.settled = True
            if self.on_handshake is not None:
                self.on_handshake(self, exc)

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self.fail_handshake(exc)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def flush(self) -> None:
        """Send what the engine produced (records, an alert, close_notify)."""
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def readable(self) -> None:
        """Wait until plaintext, EOF or an error may have arrived."""
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark; TransportError once lost."""
        if self.lost:
            raise TransportError(f"TLS peer {self.peername}: connection lost")
        if not self._write_paused:
            return
        self._drain = self.loop.create_future()
        await self._drain
        if self.lost:
            raise TransportError(f"TLS peer {self.peername}: connection lost")

    async def close(self, timeout: float) -> None:
        """Close the TCP connection, letting buffered bytes (close_notify, an alert) go out; a peer that does not
        read them within ``timeout`` seconds gets the connection aborted instead of holding us forever."""
        if self.transport is None:
            return
        self.transport.close()
        if self.lost or not self.transport.get_write_buffer_size():
            return  # nothing left to send: the transport closes the socket at once
        if self._lost_waiter is None:
            self._lost_waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self.transport.abort)
        try:
            await asyncio.shield(self._lost_waiter)
        finally:
            timer.cancel()


class ThreadedPskProtocol(PskProtocol):
    """``lookup_in_thread``: the flights that may reach the PSK look-up are processed in a worker thread while the
    socket is paused, or on the loop with a prefetched answer (see the module docstring)."""

    __slots__ = ("_hello_answered",)

    def __init__(self, conn: PskTlsConnection, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(conn, loop)
        self._hello_answered = False
        """A lone ClientHello was read and answered: only then is a ClientKeyExchange's identity looked up ahead
        of OpenSSL (a client cannot make the store look up identities before its handshake got that far)."""

    def data_received(self, data: bytes) -> None:
        if self.conn.handshake_complete:
            self._receive(data)
            return
        if _lone_client_hello(data):
            self._receive(data)
            self._hello_answered = self.error is None
            return
        assert self.transport is not None
        self.transport.pause_reading()
        prefetch = self.conn.prefetch if self._hello_answered else None
        identity = psk_identity(data) if prefetch is not None else None
        if prefetch is not None and identity is not None:
            self._busy = self.loop.create_task(self._receive_prefetched(data, identity, prefetch))
        else:
            self._busy = self.loop.create_task(self._receive_in_thread(data))

    async def _receive_in_thread(self, data: bytes) -> None:
        try:
            await asyncio.to_thread(self.conn.receive, data)
        except TlsError as exc:
            self.flush()
            self._failed(exc)
            return
        self._progress()
        self._resume()

    async def _receive_prefetched(self, data: bytes, identity: bytes, prefetch: PskPrefetch) -> None:
        try:
            self.conn.use_prefetched(identity, await prefetch(identity))
        except asyncio.CancelledError:  # the handshake fails at once (internal_error), then the cancel goes on
            self.conn.use_prefetched(identity, None, TlsError("the PSK look-up was cancelled"))
            self._receive(data)
            raise
        except Exception as exc:  # the look-up failed: the handshake fails with internal_error, as in a thread
            self.conn.use_prefetched(identity, None, exc)
        self._receive(data)
        if self.error is None:
            self._resume()
