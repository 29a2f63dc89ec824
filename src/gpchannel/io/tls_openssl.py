"""The OpenSSL side of the PSK-TLS engine (io/tls_psk.py): the cffi binding, the C callbacks and the context set-up.

OpenSSL is the copy bundled with pyOpenSSL/cryptography, reached through its cffi binding ``OpenSSL._util``. The
callbacks are module-level (created once, alive for the process) and find the Python connection through the SSL
pointer (:data:`connections`), so contexts and connections hold no reference cycles through C. The context
options are the server profile of io/tls_psk.py's docstring (ota-notes B.2).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Protocol

from OpenSSL._util import ffi, lib

from gpchannel.errors import TlsError, UnsupportedError
from gpchannel.io.tls_policy import ALERT_NAMES, MAX_PSK_LENGTH, PskLookup, PskTlsPolicy

__all__ = [
    "INFO_CALLBACK",
    "MEM_BIO",
    "RECORD_READ",
    "Peer",
    "SslRef",
    "connections",
    "ffi",
    "lib",
    "make_ctx",
    "openssl_errors",
    "plaintext_alert",
    "received_alert",
    "register",
    "scratch",
    "thread_state",
    "unexpected_eof",
]

_NEEDED = (
    "SSL_CTX_set_psk_server_callback",
    "SSL_CTX_set_psk_client_callback",
    "SSL_CTX_set_info_callback",
    "BIO_s_mem",
    "BIO_set_mem_eof_return",
    "SSL_get_cipher_list",
)
_missing = [name for name in _NEEDED if not hasattr(lib, name)]
if _missing:  # pragma: no cover - depends on the installed cryptography build
    raise ImportError(f"gpchannel.io.tls_psk: cryptography's OpenSSL binding lacks {_missing} (pyOpenSSL too old?)")

# SSL_OP_NO_ENCRYPT_THEN_MAC is SSL_OP_BIT(19) in OpenSSL 1.1.1 to 4.0 ssl.h; the cffi binding does not export it.
_SSL_OP_NO_ENCRYPT_THEN_MAC = 1 << 19
RECORD_READ = 16384 + 2048  # the largest TLS 1.2 ciphertext record (RFC 5246 6.2.3)


class Peer(Protocol):
    """What the callbacks need of a connection (io/tls_psk.PskTlsConnection)."""

    identity: bytes | None
    _lookup: PskLookup | None
    _client_key: tuple[bytes, bytes] | None
    _callback_error: Exception | None

    def _alert_sent(self, name: str, fatal: bool) -> None: ...

    def _alert_received(self, name: str, fatal: bool) -> None: ...


class SslRef(weakref.ref):  # type: ignore[type-arg]  # weakref.ref[Peer] at runtime
    """The weak reference in :data:`connections` from an SSL pointer to its connection; when the connection dies
    its callback (:func:`_release`) removes the entry and frees the SSL object (and its BIOs)."""

    __slots__ = ("key", "ssl")
    key: int
    ssl: Any


def _release(ref: SslRef) -> None:
    connections.pop(ref.key, None)
    lib.SSL_free(ref.ssl)


def register(peer: Peer, ssl: Any) -> int:
    """Enter a new connection's SSL object in :data:`connections` (its key returned); freed with the connection.
    One dict store and one pop under the GIL each: no lock (the PSK callback may read from another thread)."""
    ref = SslRef(peer, _release)
    ref.key = key = int(ffi.cast("uintptr_t", ssl))
    ref.ssl = ssl
    connections[key] = ref
    return key


connections: dict[int, SslRef] = {}
MEM_BIO = lib.BIO_s_mem()
"""The memory BIO method (a static table in OpenSSL: read once)."""


thread_state = threading.local()
"""Per-thread state: ``buffer``, the read buffer of :func:`scratch` (absent until the thread first asks)."""


def scratch() -> Any:
    """This thread's read buffer (one per thread, not per connection: a RAS may hold thousands of connections;
    a buffer is only used inside one synchronous call)."""
    try:
        return thread_state.buffer
    except AttributeError:
        buffer = thread_state.buffer = ffi.new("unsigned char[]", RECORD_READ)
        return buffer


def _connection_of(ssl: Any) -> Peer | None:
    ref = connections.get(int(ffi.cast("uintptr_t", ssl)))
    return ref() if ref is not None else None


_CB_ALERT = int(lib.SSL_CB_ALERT)


def _on_info(ssl: Any, where: int, ret: int, _alert: int = _CB_ALERT) -> None:
    if not where & _alert:  # OpenSSL calls this at every handshake state: the alerts are all we want
        return
    ref = connections.get(int(ffi.cast("uintptr_t", ssl)))  # _connection_of, inlined (the close path's calls)
    conn = ref() if ref is not None else None
    if conn is None:
        return
    name = ALERT_NAMES.get(ret & 0xFF, f"alert_{ret & 0xFF}")
    fatal = (ret >> 8) == 2
    if where & lib.SSL_CB_READ:
        conn._alert_received(name, fatal)
    else:
        conn._alert_sent(name, fatal)


def _on_server_psk(ssl: Any, identity: Any, psk_out: Any, max_psk_len: int) -> int:
    ref = connections.get(int(ffi.cast("uintptr_t", ssl)))  # _connection_of, inlined (once per handshake)
    conn = ref() if ref is not None else None
    if conn is None or conn._lookup is None:
        return 0
    ident = ffi.string(identity) if identity != ffi.NULL else b""
    conn.identity = ident
    try:
        psk = conn._lookup(ident)
    except Exception as exc:  # a lookup failure (e.g. database down) is the server's fault: internal_error
        conn._callback_error = exc
        return max_psk_len + 1  # OpenSSL answers a length above its maximum with internal_error
    if psk is None:
        return 0  # OpenSSL: unknown_psk_identity (RFC 4279 2)
    if not 0 < len(psk) <= min(max_psk_len, MAX_PSK_LENGTH):
        conn._callback_error = ValueError(f"the PSK of identity {ident!r} has an unusable length {len(psk)}")
        return max_psk_len + 1
    ffi.memmove(psk_out, psk, len(psk))
    return len(psk)


def _on_client_psk(ssl: Any, hint: Any, identity_out: Any, max_identity_len: int, psk_out: Any, max_psk: int) -> int:
    conn = _connection_of(ssl)
    if conn is None or conn._client_key is None:
        return 0
    identity, psk = conn._client_key
    if len(identity) + 1 > max_identity_len or len(psk) > max_psk:
        conn._callback_error = ValueError("PSK identity or key longer than OpenSSL accepts")
        return 0
    ffi.memmove(identity_out, identity + b"\x00", len(identity) + 1)
    ffi.memmove(psk_out, psk, len(psk))
    return len(psk)


INFO_CALLBACK = ffi.callback("void(SSL *, int, int)", _on_info)
"""Alerts sent and received. OpenSSL calls it at every state of a handshake as well (17 times for a server's
full handshake, each a trip into Python): a server context has none, its connections set it on themselves once
their handshake is complete and learn the alerts of a failed handshake from :func:`received_alert` and
:func:`plaintext_alert`."""
_SERVER_PSK_CALLBACK = ffi.callback("unsigned int(SSL *, char *, unsigned char *, unsigned int)", _on_server_psk)
_CLIENT_PSK_CALLBACK = ffi.callback(
    "unsigned int(SSL *, char *, char *, unsigned int, unsigned char *, unsigned int)", _on_client_psk
)


def openssl_errors(codes: list[int] | None = None) -> list[str]:
    """Drain this thread's OpenSSL error queue into readable reasons (their codes appended to ``codes``)."""
    reasons: list[str] = []
    while True:
        code = lib.ERR_get_error()
        if not code:
            return reasons
        if codes is not None:
            codes.append(int(code))
        text = lib.ERR_reason_error_string(code)
        reasons.append(ffi.string(text).decode("ascii", "replace") if text != ffi.NULL else f"error {code:#x}")


_ALERT_REASON_OFFSET = 1000
"""SSL_AD_REASON_OFFSET (ssl.h): a fatal alert received is queued as the error reason 1000 + its description."""
_ALERT, _CHANGE_CIPHER_SPEC = 21, 20


def received_alert(codes: list[int]) -> str | None:
    """The fatal alert the peer sent, from the error codes of a failure (None if the failure was not one)."""
    for code in codes:
        name = ALERT_NAMES.get(int(lib.ERR_GET_REASON(code)) - _ALERT_REASON_OFFSET)
        if name is not None:
            return name
    return None


def plaintext_alert(wire: bytes) -> tuple[str, bool] | None:
    """The first alert record in ``wire`` before any ChangeCipherSpec, as (name, fatal) (RFC 5246 6.2.1, 7.2):
    what a server sends when its handshake fails, all of it in the clear (its own ChangeCipherSpec comes last)."""
    at = 0
    while at + 5 <= len(wire):
        kind, length = wire[at], wire[at + 3] << 8 | wire[at + 4]
        if kind == _CHANGE_CIPHER_SPEC:
            return None
        if kind == _ALERT and length == 2 and at + 7 <= len(wire):
            level, description = wire[at + 5], wire[at + 6]
            return ALERT_NAMES.get(description, f"alert_{description}"), level == 2
        at += 5 + length
    return None


def unexpected_eof() -> bool:
    """Whether OpenSSL's last error is "unexpected eof while reading" (TCP EOF inside a record / before
    close_notify; OpenSSL 3+ also queues a decode_error alert then)."""
    code = lib.ERR_peek_error()
    return bool(code) and lib.ERR_GET_REASON(code) == lib.SSL_R_UNEXPECTED_EOF_WHILE_READING


def make_ctx(server: bool, policy: PskTlsPolicy) -> Any:
    method = lib.TLS_server_method() if server else lib.TLS_client_method()
    ctx = lib.SSL_CTX_new(method)
    if ctx == ffi.NULL:
        raise TlsError(f"SSL_CTX_new failed: {openssl_errors()}")
    ctx = ffi.gc(ctx, lib.SSL_CTX_free)
    options = (
        lib.SSL_OP_NO_TICKET
        | _SSL_OP_NO_ENCRYPT_THEN_MAC
        | lib.SSL_OP_NO_RENEGOTIATION
        | lib.SSL_OP_NO_COMPRESSION
        | lib.SSL_OP_NO_TLSv1_3
        # TLS 1.0 CBC (legacy policy only): no empty record before each record (OpenSSL's BEAST counter-measure,
        # off in SSL_OP_ALL as in most servers); small card TLS stacks mishandle zero-length records.
        | lib.SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS
    )
    if server:
        options |= lib.SSL_OP_CIPHER_SERVER_PREFERENCE
    lib.SSL_CTX_set_options(ctx, options)
    lib.SSL_CTX_set_session_cache_mode(ctx, lib.SSL_SESS_CACHE_OFF)
    lib.SSL_CTX_set_mode(ctx, lib.SSL_MODE_RELEASE_BUFFERS)
    if lib.SSL_CTX_set_cipher_list(ctx, policy.cipher_string.encode("ascii")) != 1:
        raise UnsupportedError(f"no cipher suite of {policy.ciphers} is available: {openssl_errors()}")
    if not lib.SSL_CTX_set_min_proto_version(ctx, policy.min_version.openssl) or not (
        lib.SSL_CTX_set_max_proto_version(ctx, policy.max_version.openssl)
    ):
        raise TlsError(f"cannot set the TLS versions of {policy}: {openssl_errors()}")
    if not server:
        lib.SSL_CTX_set_info_callback(ctx, INFO_CALLBACK)
    if server:
        lib.SSL_CTX_set_psk_server_callback(ctx, _SERVER_PSK_CALLBACK)
    else:
        lib.SSL_CTX_set_psk_client_callback(ctx, _CLIENT_PSK_CALLBACK)
    _check_ciphers(ctx, policy)
    openssl_errors()
    return ctx


def _check_ciphers(ctx: Any, policy: PskTlsPolicy) -> None:
    """Every named suite must be one this OpenSSL knows and enables (set_cipher_list ignores unknown names)."""
    ssl = lib.SSL_new(ctx)
    if ssl == ffi.NULL:
        raise TlsError(f"SSL_new failed: {openssl_errors()}")
    try:
        enabled: set[str] = set()
        index = 0
        while True:
            name = lib.SSL_get_cipher_list(ssl, index)
            if name == ffi.NULL:
                break
            enabled.add(ffi.string(name).decode("ascii"))
            index += 1
    finally:
        lib.SSL_free(ssl)
    missing = [name for name in policy.ciphers if name not in enabled]
    if missing:
        version = ffi.string(lib.OpenSSL_version(0)).decode()
        raise UnsupportedError(f"cipher suites not available in {version} (or not with this policy): {missing}")
