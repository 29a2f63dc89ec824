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
waits for the transport's buffer to drain (backpressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gpchannel.errors import TlsError, TransportError
from gpchannel.io.tls_psk import PskClientContext, PskServerContext, PskTlsConnection

__all__ = ["CLOSE_TIMEOUT", "PskStream", "open_psk_stream", "serve_psk"]

logger = logging.getLogger("gpchannel.io.tls")

_READ_CHUNK = 65536
CLOSE_TIMEOUT = 10.0
"""Seconds a closing connection may take to flush what is buffered before it is aborted."""


class PskStream:
    """One established PSK-TLS connection over an asyncio stream pair."""

    def __init__(self, connection: PskTlsConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._conn = connection
        self._reader = reader
        self._writer = writer
        self._buffer = bytearray()
        self._closed = False
        self._read_lock = asyncio.Lock()
        peer = writer.get_extra_info("peername")
        self.peername: tuple[str, int] | None = (str(peer[0]), int(peer[1])) if peer else None

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

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def read(self, max_bytes: int = _READ_CHUNK) -> bytes:
        """Up to ``max_bytes`` of application data, waiting for some; b"" at close_notify (or after close())."""
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        async with self._read_lock:
            while True:
                self._buffer += self._conn.read()
                if self._buffer:
                    data = bytes(self._buffer[:max_bytes])
                    del self._buffer[:max_bytes]
                    return data
                if self._conn.peer_closed or self._closed:
                    return b""
                try:
                    network = await self._reader.read(_READ_CHUNK)
                except (ConnectionError, OSError) as exc:
                    raise TransportError(f"TLS peer {self.peername}: {exc}") from exc
                try:
                    self._conn.receive(network)
                finally:
                    self._flush()

    async def write(self, data: bytes) -> None:
        """Encrypt and send ``data``; returns once the transport accepted it (flow control)."""
        if self._closed or self._conn.closed:
            raise TlsError("write on a closed PskStream")
        self._conn.write(data)
        self._flush()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"TLS peer {self.peername}: {exc}") from exc

    async def write_eof(self) -> None:
        """Half-close: send close_notify and stop writing, but keep reading until the peer's close_notify
        (call :meth:`close` afterwards)."""
        if self._closed or self._conn.closed:
            return
        self._conn.close()
        self._flush()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise TransportError(f"TLS peer {self.peername}: {exc}") from exc

    async def close(self) -> None:
        """Send close_notify (if the connection is still sound) and close the TCP connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(TlsError):
            self._conn.close()
        with contextlib.suppress(ConnectionError, OSError):
            self._flush()
            if self._writer.can_write_eof() and not self._writer.is_closing():
                self._writer.write_eof()
        await _close_writer(self._writer)


async def _handshake(
    conn: PskTlsConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, in_thread: bool = False
) -> None:
    """Drive the handshake to completion (TlsError on failure; the alert is sent before raising). With
    ``in_thread`` the engine processes the peer's flights in a worker thread, so a blocking PSK lookup does not
    stall the event loop."""
    try:
        if not conn.server:
            conn.start()
        while not conn.handshake_complete:
            data = conn.data_to_send()
            if data:
                writer.write(data)
                await writer.drain()
            network = await reader.read(_READ_CHUNK)
            if in_thread and network:
                await asyncio.to_thread(conn.receive, network)
            else:
                conn.receive(network)
        data = conn.data_to_send()
        if data:
            writer.write(data)
            await writer.drain()
    except TlsError:
        with contextlib.suppress(ConnectionError, OSError):
            alert = conn.data_to_send()
            if alert and not writer.is_closing():
                writer.write(alert)
                await writer.drain()
        raise
    except (ConnectionError, OSError) as exc:
        raise TlsError(f"connection lost during the TLS handshake: {exc}") from exc


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    """Close the TCP connection, letting buffered bytes (close_notify, an alert) go out; a peer that does not
    read them within CLOSE_TIMEOUT seconds gets the connection aborted instead of holding us forever."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await writer.wait_closed()
    except TimeoutError:
        writer.transport.abort()
    except (ConnectionError, OSError):
        pass


async def open_psk_stream(host: str, port: int, context: PskClientContext, *, timeout: float = 30.0) -> PskStream:
    """Connect to ``host:port`` and complete the PSK-TLS handshake within ``timeout`` seconds.

    Raises TlsError (handshake refused: ``alert`` says why, or timed out) or TransportError (TCP connect failed).
    """
    conn = context.connection()
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc
            try:
                await _handshake(conn, reader, writer)
            except BaseException:
                await _close_writer(writer)
                raise
    except TimeoutError as exc:
        raise TlsError(f"TLS handshake with {host}:{port} did not complete within {timeout} s") from exc
    return PskStream(conn, reader, writer)


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
    per client flight. (Addition to the contract; the default keeps everything on the event loop.)
    ``reuse_port=True`` sets SO_REUSEPORT: several processes listen on one port and the kernel spreads the
    connections over them (Linux, BSD).
    """

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = context.connection()
        try:
            async with asyncio.timeout(handshake_timeout):
                await _handshake(conn, reader, writer, in_thread=lookup_in_thread)
        except asyncio.CancelledError:
            writer.close()
            raise
        except TimeoutError:
            logger.info(
                "PSK-TLS handshake from %s timed out after %s s (identity %r); connection dropped",
                peer,
                handshake_timeout,
                conn.identity,
            )
            await _close_writer(writer)
            return
        except TlsError as exc:
            logger.info(
                "PSK-TLS handshake from %s failed (identity %r, alert %s): %s", peer, conn.identity, exc.alert, exc
            )
            await _close_writer(writer)
            return
        stream = PskStream(conn, reader, writer)
        logger.debug(
            "PSK-TLS session from %s: identity %r, %s, %s", peer, conn.identity, conn.version, conn.cipher_name
        )
        try:
            await handler(stream)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("PSK-TLS handler for %s (identity %r) failed", peer, conn.identity)
        finally:
            await stream.close()

    return await asyncio.start_server(on_connection, host, port, reuse_port=reuse_port or None)
