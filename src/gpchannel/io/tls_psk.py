"""A sans-I/O PSK-TLS engine for SCP81 (GP Amendment B 2; RFC 4279 plain PSK key exchange; TLS 1.2 RFC 5246).

OpenSSL (the copy bundled with pyOpenSSL/cryptography, reached through its cffi binding ``OpenSSL._util``) runs
the protocol over two memory BIOs: network bytes go in with :meth:`PskTlsConnection.receive` and come out with
:meth:`PskTlsConnection.data_to_send`; no socket is touched here (``io/tls_stream.py`` adds asyncio).

Server profile (ota-notes B.1 interop notes, B.2 PSK-TLS profile):

- TLS 1.2 only by default; :meth:`PskTlsPolicy.legacy` adds TLS 1.0/1.1 and ``PSK-AES128-CBC-SHA`` (0x008C).
- Cipher suites in the server's order of preference (``SSL_OP_CIPHER_SERVER_PREFERENCE``): cards may list NULL
  suites first. NULL suites (``TLS_PSK_WITH_NULL_SHA*``) only with ``allow_null`` (they need OpenSSL's
  security level 0).
- No session tickets (``SSL_OP_NO_TICKET``), no session cache, no encrypt-then-MAC (RFC 7366; cards break on it),
  no renegotiation, no compression; in TLS 1.0 no empty records before CBC records (``DONT_INSERT_EMPTY_FRAGMENTS``).
- An unknown identity (the lookup answers None) ends the handshake with the fatal ``unknown_psk_identity`` alert
  (RFC 4279 2). A wrong PSK makes the peer's Finished undecryptable: ``bad_record_mac`` (RFC 5246 7.2.2).

Failures raise :class:`~gpchannel.errors.TlsError` whose ``alert`` is the RFC name of the alert sent or received
(e.g. ``"unknown_psk_identity"``); the alert to send is then waiting in :meth:`PskTlsConnection.data_to_send`.
PSKs never appear in logs, reprs or messages; identities may.

The policy (versions, suites, record size), the alert names and the PSK limits are :mod:`gpchannel.io.tls_policy`
(no OpenSSL there).

Thread-safety: a :class:`PskServerContext` / :class:`PskClientContext` may be shared by any number of
connections and threads; one :class:`PskTlsConnection` must be driven by one coroutine or thread at a time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from gpchannel.errors import TlsError
from gpchannel.io.tls_openssl import (
    INFO_CALLBACK,
    MEM_BIO,
    RECORD_READ,
    ffi,
    lib,
    make_ctx,
    openssl_errors,
    plaintext_alert,
    received_alert,
    register,
    scratch,
    thread_state,
    unexpected_eof,
)
from gpchannel.io.tls_policy import MAX_IDENTITY_LENGTH, MAX_PSK_LENGTH, PskLookup, PskPrefetch, PskTlsPolicy

__all__ = ["PskClientContext", "PskServerContext", "PskTlsConnection"]

_BIO_CHUNK = 65536
_WANT_IO = frozenset({int(lib.SSL_ERROR_WANT_READ), int(lib.SSL_ERROR_WANT_WRITE)})
_EOF_ERRORS = frozenset({int(lib.SSL_ERROR_WANT_READ), int(lib.SSL_ERROR_SYSCALL)})
_ZERO_RETURN = int(lib.SSL_ERROR_ZERO_RETURN)


class PskServerContext:
    """The RAS side: identities are mapped to PSKs by ``lookup`` during the handshake, on the thread that drives
    the connection (``serve_psk(..., lookup_in_thread=True)`` moves that off the event loop). A lookup that
    raises fails the handshake with internal_error (the exception is the TlsError's ``__cause__``).

    ``prefetch`` (optional, an addition to the contract): the same look-up awaited on the event loop, which
    io/tls_protocol.py runs when it can read the identity from the client's flight before OpenSSL does (the
    server's look-ups of concurrent handshakes can then share one store call); ``lookup`` serves the rest."""

    def __init__(
        self, lookup: PskLookup, policy: PskTlsPolicy = PskTlsPolicy(), *, prefetch: PskPrefetch | None = None
    ) -> None:
        self.policy = policy
        self._lookup = lookup
        self.prefetch = prefetch
        self._ctx = make_ctx(True, policy)

    def connection(self) -> PskTlsConnection:
        conn = PskTlsConnection(
            self._ctx, server=True, lookup=self._lookup, max_record=self.policy.max_record_plaintext
        )
        conn.prefetch = self.prefetch
        return conn

    def __repr__(self) -> str:
        return f"PskServerContext(policy={self.policy!r})"


@dataclass(frozen=True)
class _ClientKey:
    identity: bytes
    psk: bytes = field(repr=False)


class PskClientContext:
    """The card side (or a test client): always offers ``identity`` with ``psk``."""

    def __init__(self, identity: bytes, psk: bytes, policy: PskTlsPolicy = PskTlsPolicy()) -> None:
        if not 0 < len(identity) <= MAX_IDENTITY_LENGTH or b"\x00" in identity:
            raise ValueError(f"PSK identity: expected 1..{MAX_IDENTITY_LENGTH} bytes without NUL")
        if not 0 < len(psk) <= MAX_PSK_LENGTH:
            raise ValueError(f"PSK: expected 1..{MAX_PSK_LENGTH} bytes")
        self.policy = policy
        self._key = _ClientKey(bytes(identity), bytes(psk))
        self._ctx = make_ctx(False, policy)

    @property
    def identity(self) -> bytes:
        return self._key.identity

    def connection(self) -> PskTlsConnection:
        return PskTlsConnection(
            self._ctx,
            server=False,
            client_key=(self._key.identity, self._key.psk),
            max_record=self.policy.max_record_plaintext,
        )

    def __repr__(self) -> str:
        return f"PskClientContext(identity={self._key.identity!r}, policy={self.policy!r})"


def _spent(identity: bytes) -> bytes | None:
    """A prefetched look-up asked a second time (TLS 1.2 asks once per handshake, and renegotiation is refused):
    nothing is handed out."""
    raise TlsError("the prefetched PSK was already given")


class PskTlsConnection:
    """One PSK-TLS connection over memory BIOs (made by a context's ``connection()``).

    Feed network bytes with :meth:`receive` (``b""`` = TCP EOF), send what :meth:`data_to_send` returns, get
    plaintext with :meth:`read`, queue plaintext with :meth:`write` (held until the handshake completes) and end
    with :meth:`close` (close_notify). Any failure raises TlsError and leaves the alert in data_to_send().

    A TCP EOF without the peer's close_notify after the handshake raises TlsError (truncation, RFC 5246 7.2.1);
    after the peer's close_notify, ``peer_closed`` is True and :meth:`write` still works until :meth:`close`.
    """

    __slots__ = (
        "__weakref__",
        "_callback_error",
        "_cipher_name",
        "_client_key",
        "_closed",
        "_eof",
        "_error",
        "_fatal_alert",
        "_held",
        "_key",
        "_lookup",
        "_max_record",
        "_pending_writes",
        "_rbio",
        "_ssl",
        "_version",
        "_wbio",
        "alert_received",
        "alert_sent",
        "handshake_complete",
        "identity",
        "peer_closed",
        "plaintext",
        "prefetch",
        "server",
    )

    def __init__(
        self,
        ctx: Any,
        *,
        server: bool,
        lookup: PskLookup | None = None,
        client_key: tuple[bytes, bytes] | None = None,
        max_record: int = 16384,
    ) -> None:
        self.server = server
        self.handshake_complete = False
        self.peer_closed = False
        self.identity: bytes | None = client_key[0] if client_key is not None else None
        self._cipher_name: str | None = None
        self._version: str | None = None
        self.alert_sent: str | None = None
        self.alert_received: str | None = None
        self._fatal_alert: tuple[str, str] | None = None
        self._lookup = lookup
        self.prefetch: PskPrefetch | None = None
        """The server context's awaitable look-up (io/tls_protocol.py), None on a client."""
        self._client_key = client_key
        self._callback_error: Exception | None = None
        self._max_record = max_record
        self._pending_writes: list[bytes] = []
        self._held = b""  # network bytes read out of OpenSSL to find a failed handshake's alert, not sent yet
        self.plaintext = bytearray()
        """Application data decrypted and not read yet (:meth:`read` takes it)."""
        self._error: TlsError | None = None
        self._closed = False
        self._eof = False
        ssl = lib.SSL_new(ctx)
        if ssl == ffi.NULL:
            raise TlsError(f"SSL_new failed: {openssl_errors()}")
        self._ssl = ssl
        self._key = register(self, ssl)  # SSL_free'd when this connection is garbage
        self._rbio = lib.BIO_new(MEM_BIO)
        self._wbio = lib.BIO_new(MEM_BIO)
        if self._rbio == ffi.NULL or self._wbio == ffi.NULL:
            lib.BIO_free(self._rbio)  # BIO_free(NULL) does nothing
            lib.BIO_free(self._wbio)
            raise TlsError("BIO_new failed")
        lib.BIO_set_mem_eof_return(self._rbio, -1)  # empty input = "want more", not EOF
        lib.SSL_set_bio(ssl, self._rbio, self._wbio)  # the SSL object owns both BIOs now
        if server:
            lib.SSL_set_accept_state(ssl)
        else:
            lib.SSL_set_connect_state(ssl)

    def __repr__(self) -> str:
        role = "server" if self.server else "client"
        return (
            f"PskTlsConnection({role}, identity={self.identity!r}, handshake_complete={self.handshake_complete}, "
            f"cipher={self.cipher_name!r}, version={self.version!r})"
        )

    # -- callbacks from OpenSSL -------------------------------------------------------------------------------------

    def _alert_sent(self, name: str, fatal: bool) -> None:
        self.alert_sent = name
        if fatal and self._fatal_alert is None:
            self._fatal_alert = (name, "sent")

    def _alert_received(self, name: str, fatal: bool) -> None:
        self.alert_received = name
        if fatal and self._fatal_alert is None:
            self._fatal_alert = (name, "received")

    # -- public API -------------------------------------------------------------------------------------------------

    @property
    def cipher_name(self) -> str | None:
        """The negotiated suite by its OpenSSL name (None before the handshake completed); read once, on demand."""
        if self._cipher_name is None and self.handshake_complete:
            cipher = lib.SSL_get_current_cipher(self._ssl)
            if cipher != ffi.NULL:
                self._cipher_name = ffi.string(lib.SSL_CIPHER_get_name(cipher)).decode("ascii")
        return self._cipher_name

    @property
    def version(self) -> str | None:
        """The negotiated protocol version, e.g. "TLSv1.2" (None before the handshake completed)."""
        if self._version is None and self.handshake_complete:
            self._version = ffi.string(lib.SSL_get_version(self._ssl)).decode("ascii")
        return self._version

    @property
    def closed(self) -> bool:
        """True once close() was called or the connection failed."""
        return self._closed or self._error is not None

    def start(self) -> None:
        """Client: produce the ClientHello now (data_to_send() then holds it). receive() also starts it."""
        self._check_usable()
        if not self.handshake_complete:
            self._advance()

    def receive(self, data: bytes) -> None:
        """Network bytes from the peer; ``b""`` means the TCP connection reached EOF."""
        if self._error is not None:
            self._check_usable()
        if data:
            if self._eof:
                raise TlsError("bytes received after TCP EOF")
            size = len(data)
            if size <= _BIO_CHUNK:  # one flight or record: handed to OpenSSL without a copy
                if lib.BIO_write(self._rbio, data, size) != size:
                    raise TlsError("BIO_write failed")
            else:
                view = memoryview(data)
                while view:
                    written = lib.BIO_write(self._rbio, bytes(view[:_BIO_CHUNK]), min(len(view), _BIO_CHUNK))
                    if written <= 0:
                        raise TlsError("BIO_write failed")
                    view = view[written:]
        else:
            self._eof = True
            lib.BIO_set_mem_eof_return(self._rbio, 0)
        self._advance()

    def feed(self, data: bytes) -> bytes:
        """:meth:`receive` then :meth:`data_to_send` in one call (the transport's path: one per flight)."""
        size = len(data)
        if self._error is not None or self._eof or not 0 < size <= _BIO_CHUNK:
            self.receive(data)  # the rare cases: an error, EOF, a large write
        elif lib.BIO_write(self._rbio, data, size) != size:
            raise TlsError("BIO_write failed")
        else:
            self._advance()
        if self._held:
            return self.data_to_send()
        try:  # data_to_send, inlined: a memory BIO hands out all it holds in one read up to RECORD_READ
            buffer = thread_state.buffer
        except AttributeError:
            buffer = scratch()
        n = lib.BIO_read(self._wbio, buffer, RECORD_READ)
        if n <= 0:
            return b""
        first: bytes = ffi.buffer(buffer, n)[:]
        if n < RECORD_READ:
            return first
        self._held = first
        return self.data_to_send()

    def use_prefetched(self, identity: bytes, psk: bytes | None, error: Exception | None = None) -> None:
        """The handshake's PSK look-up answers ``psk`` (None: unknown identity) or raises ``error`` for
        ``identity``, found by the caller before OpenSSL parsed the ClientKeyExchange; for any other identity it
        raises (internal_error: the two readings of the message differ, no PSK is handed out)."""

        def lookup(asked: bytes) -> bytes | None:
            self._lookup = _spent  # one answer: the PSK is not kept with the connection for its whole session
            if len(asked) != len(identity) or not hmac.compare_digest(asked, identity):
                raise TlsError("the PSK identity OpenSSL read is not the one looked up")
            if error is not None:
                raise error
            return psk

        self._lookup = lookup

    def data_to_send(self) -> bytes:
        """Network bytes to send to the peer now (b"" if none)."""
        try:
            buffer = thread_state.buffer
        except AttributeError:
            buffer = scratch()
        n = lib.BIO_read(self._wbio, buffer, RECORD_READ)
        if n <= 0:
            held, self._held = self._held, b""
            return held
        first: bytes = ffi.buffer(buffer, n)[:]
        if n < RECORD_READ and not self._held:  # a memory BIO hands out all it holds: a flight is one read
            return first
        chunks = [self._held, first]
        self._held = b""
        while (n := lib.BIO_read(self._wbio, buffer, RECORD_READ)) > 0:
            chunks.append(ffi.buffer(buffer, n)[:])
        return b"".join(chunks)

    @property
    def buffered(self) -> int:
        """Bytes of application data decrypted and not read yet."""
        return len(self.plaintext)

    def read(self) -> bytes:
        """The application data decrypted so far (b"" if none)."""
        data = bytes(self.plaintext)
        self.plaintext.clear()
        return data

    def write(self, data: bytes) -> None:
        """Queue application data (encrypted at once if the handshake is complete)."""
        self._check_usable()
        if self._closed:
            raise TlsError("write after close")
        if data:
            self._pending_writes.append(bytes(data))
        if self.handshake_complete:
            self._flush_writes()

    def close(self) -> None:
        """Send close_notify (RFC 5246 7.2.1); no more writes. Before the handshake completed, just gives up."""
        if self._closed or self._error is not None:
            self._closed = True
            return
        self._closed = True
        if not self.handshake_complete:
            return
        ssl = self._ssl
        if self.server:  # a first SSL_shutdown sends close_notify and nothing else: noted here, not by the callback
            lib.SSL_set_info_callback(ssl, ffi.NULL)
            ret = lib.SSL_shutdown(ssl)
            self._alert_sent("close_notify", False)
            if not self.peer_closed:  # the peer's alerts may follow
                lib.SSL_set_info_callback(ssl, INFO_CALLBACK)
        else:
            ret = lib.SSL_shutdown(ssl)
        if ret < 0:  # nothing reads the reason: leave the thread's error queue empty
            lib.ERR_clear_error()

    # -- internals --------------------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise TlsError(f"connection already failed: {self._error}", alert=self._error.alert)

    def _fail(self, message: str) -> TlsError:
        codes: list[int] = []
        reasons = openssl_errors(codes)
        if self.server and not self.handshake_complete and self._fatal_alert is None:
            self._handshake_alert(codes)
        # The first fatal alert (sent or received) says why; else the last warning alert other than close_notify.
        alert: str | None = None
        direction = ""
        if self._fatal_alert is not None:
            alert, way = self._fatal_alert
            direction = f" (fatal, {way})"
        else:
            for name, way in ((self.alert_sent, "sent"), (self.alert_received, "received")):
                if name is not None and name != "close_notify":
                    alert, direction = name, f" (warning, {way})"
                    break
        detail = f": {'; '.join(reasons)}" if reasons else ""
        who = f" [identity {self.identity!r}]" if self.identity is not None else ""
        error = TlsError(f"{message}{detail}{who}; alert {alert or 'none'}{direction}", alert=alert)
        if self._callback_error is not None:
            error.__cause__ = self._callback_error
        self._error = error
        return error

    def _handshake_alert(self, codes: list[int]) -> None:
        """A server's failed handshake (no info callback yet, io/tls_openssl.INFO_CALLBACK): the fatal alert the
        client sent (in the error queue), else the one we are sending (the records waiting to go, in the clear)."""
        name = received_alert(codes)
        if name is not None:
            self._alert_received(name, True)
            return
        self._held = self.data_to_send()
        sent = plaintext_alert(self._held)
        if sent is not None:
            self._alert_sent(*sent)

    def _advance(self) -> None:
        lib.ERR_clear_error()
        ssl = self._ssl
        if not self.handshake_complete:
            ret = lib.SSL_do_handshake(ssl)
            if ret != 1:
                err = lib.SSL_get_error(ssl, ret)
                if err in _WANT_IO and not self._eof:
                    return
                if self._eof and (err in _EOF_ERRORS or unexpected_eof()):
                    raise self._fail("the peer closed the connection during the handshake")
                raise self._fail("TLS handshake failed")
            self.handshake_complete = True
            if self.server:  # the alerts from now on (a server context has no info callback: tls_openssl)
                lib.SSL_set_info_callback(ssl, INFO_CALLBACK)
            if self._pending_writes:
                self._flush_writes()
        try:
            buffer = thread_state.buffer
        except AttributeError:
            buffer = scratch()
        while not self.peer_closed:
            n = lib.SSL_read(ssl, buffer, RECORD_READ)
            if n > 0:
                self.plaintext += ffi.buffer(buffer, n)
                continue
            err = lib.SSL_get_error(ssl, n)
            if err == _ZERO_RETURN:
                self.peer_closed = True
                return
            if err in _WANT_IO and not self._eof:
                return
            if self._eof and (err in _EOF_ERRORS or unexpected_eof()):
                raise self._fail("the peer closed the TCP connection without close_notify (truncation)")
            raise self._fail("TLS record processing failed")

    def _flush_writes(self) -> None:
        pending, self._pending_writes = self._pending_writes, []
        for data in pending:
            view = memoryview(data)
            while view:
                chunk = bytes(view[: self._max_record])
                lib.ERR_clear_error()
                n = lib.SSL_write(self._ssl, chunk, len(chunk))
                if n <= 0:
                    raise self._fail("TLS write failed")
                view = view[n:]
