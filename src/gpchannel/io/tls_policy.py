"""What a PSK-TLS context accepts, without OpenSSL: the versions and cipher suites (ota-notes B.2), the record
size, the PSK and identity limits of RFC 4279 5.3 and the TLS alert names. The engine that applies them is
:mod:`gpchannel.io.tls_psk`; a configuration can build a :class:`PskTlsPolicy` without loading OpenSSL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "ALERT_NAMES",
    "MAX_IDENTITY_LENGTH",
    "MAX_PSK_LENGTH",
    "PskLookup",
    "PskPrefetch",
    "PskTlsPolicy",
    "TlsVersion",
]

PskLookup = Callable[[bytes], bytes | None]
"""identity -> PSK; None = unknown identity (the handshake fails with ``unknown_psk_identity``)."""

PskPrefetch = Callable[[bytes], Awaitable[bytes | None]]
"""identity -> PSK, awaited on the event loop before the handshake reaches its lookup (io/tls_protocol.py)."""

MAX_IDENTITY_LENGTH = 128
"""RFC 4279 5.3: identities up to 128 bytes MUST be supported; OpenSSL's PSK_MAX_IDENTITY_LEN."""
MAX_PSK_LENGTH = 64
"""RFC 4279 5.3: PSKs up to 64 bytes MUST be supported (Amendment B PSKs are 16 to 32-byte AES/3DES keys)."""

ALERT_NAMES: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}
"""TLS AlertDescription values (RFC 5246 7.2, RFC 4279 2, RFC 8446 6) -> RFC names, as used in TlsError.alert."""


class TlsVersion(Enum):
    """A TLS protocol version; the value is the wire version (RFC 5246 6.2.1 ProtocolVersion)."""

    TLS1_0 = 0x0301
    TLS1_1 = 0x0302
    TLS1_2 = 0x0303

    @property
    def openssl(self) -> int:
        """OpenSSL's TLS1_x_VERSION constant (the same number)."""
        return self.value


@dataclass(frozen=True)
class PskTlsPolicy:
    """Which PSK-TLS versions and suites a context accepts (ota-notes B.2).

    ``ciphers`` are OpenSSL cipher names in the server's order of preference. ``max_record_plaintext`` caps the
    plaintext bytes put in one TLS record we send (ota-notes B.1: some cards want records of about 256 bytes);
    16384 is the TLS maximum (RFC 5246 6.2.1).
    """

    ciphers: tuple[str, ...] = ("PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256")
    min_version: TlsVersion = TlsVersion.TLS1_2
    max_version: TlsVersion = TlsVersion.TLS1_2
    allow_null: bool = False
    max_record_plaintext: int = 16384

    def __post_init__(self) -> None:
        if not self.ciphers:
            raise ValueError("PskTlsPolicy.ciphers: at least one cipher suite is needed")
        for name in self.ciphers:
            if not name or any(c in name for c in ":, !+@"):
                raise ValueError(f"PskTlsPolicy.ciphers: {name!r} is not one OpenSSL cipher name")
            if "PSK" not in name:
                raise ValueError(f"PskTlsPolicy.ciphers: {name!r} is not a PSK cipher suite")
            if "NULL" in name and not self.allow_null:
                raise ValueError(f"PskTlsPolicy.ciphers: {name!r} is a NULL suite; set allow_null=True to offer it")
        if self.min_version.value > self.max_version.value:
            raise ValueError("PskTlsPolicy: min_version is above max_version")
        if not 1 <= self.max_record_plaintext <= 16384:
            raise ValueError("PskTlsPolicy.max_record_plaintext: expected 1..16384")

    @classmethod
    def legacy(cls, *, allow_null: bool = False) -> PskTlsPolicy:
        """TLS 1.0 to 1.2 with ``PSK-AES128-CBC-SHA`` (0x008C) added, for older Amendment B cards; with
        ``allow_null`` also ``PSK-NULL-SHA256`` (0x00B0) and ``PSK-NULL-SHA`` (0x002C), least preferred.

        ``TLS_PSK_WITH_3DES_EDE_CBC_SHA`` (0x008B) cannot be offered: the OpenSSL builds used here (bundled 4.x,
        system 3.0) have no PSK-3DES suite (see docs/tls.md).
        """
        ciphers: tuple[str, ...] = ("PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256", "PSK-AES128-CBC-SHA")
        if allow_null:
            ciphers += ("PSK-NULL-SHA256", "PSK-NULL-SHA")
        return cls(ciphers=ciphers, min_version=TlsVersion.TLS1_0, max_version=TlsVersion.TLS1_2, allow_null=allow_null)

    @property
    def cipher_string(self) -> str:
        """The OpenSSL cipher string: the names in order, NULL suites excluded unless allowed; security level 0
        when NULL suites or TLS < 1.2 are allowed (OpenSSL 3+ refuses both at level 1)."""
        parts = list(self.ciphers)
        if not self.allow_null:
            parts.append("!eNULL")
        if self.allow_null or self.min_version.value < TlsVersion.TLS1_2.value:
            parts.append("@SECLEVEL=0")
        return ":".join(parts)
