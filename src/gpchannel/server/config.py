"""The configuration of one ``gpchannel server`` process and the services it hands to its parts.

:class:`ServerConfig` is what the command line (or a test) decides: where the PSK-TLS admin listener and the local
JSON API listen, where the job store lives, which TLS policy the admin listener applies (GP Amendment B over the
PSK-TLS profile of ETSI TS 102 225; ota-notes B.2), which key provider holds the cards' keys, and the knobs of the
campaign workers (G) and of a worker-only process (H).

:class:`ServerServices` is what :func:`gpchannel.server.app.run_server` builds from it and hands to the admin
sessions (ras.py), the job API (api.py) and the campaign code: the open Repository, the key provider, the
configuration and the clock (``now`` is always injected: tests pass a fixed one).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gpchannel.io.tls_policy import PskTlsPolicy
from gpchannel.ram.admin import next_uri_ok

if TYPE_CHECKING:
    from gpchannel.keystore import KeyProvider
    from gpchannel.server.repository import Repository

__all__ = [
    "DEFAULT_ADMIN_PORT",
    "DEFAULT_API_PORT",
    "DEFAULT_DB_FILE",
    "ServerConfig",
    "ServerServices",
    "parse_address",
    "utc_now",
]

DEFAULT_ADMIN_PORT = 8443
DEFAULT_API_PORT = 8080
DEFAULT_DB_FILE = "gpchannel-server.db"


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC (the default clock of :class:`ServerServices`)."""
    return datetime.now(UTC)


def parse_address(text: str, default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``"host"`` or ``":port"`` -> ``(host, port)``; ``"[::1]:8443"`` for IPv6. ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"address {text!r}: expected [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    host = host or "127.0.0.1"
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {text!r}: port must be 0..65535")
    return host, int(port_text)


@dataclass(frozen=True)
class ServerConfig:
    """Everything one server process is told. Secrets (the PKCS#11 PIN) stay out of the repr.

    Port 0 asks the system for a free port (tests); the bound addresses are reported by ``run_server``'s
    ``on_ready`` callback and printed by the CLI.
    """

    admin_host: str = "127.0.0.1"
    admin_port: int = DEFAULT_ADMIN_PORT
    admin_reuse_port: bool = False
    """SO_REUSEPORT on the admin listener: several server processes of one host share its port."""
    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    data_dir: Path = Path()
    db_url: str | None = None
    """SQLAlchemy URL; None = ``sqlite:///<data_dir>/gpchannel-server.db``."""
    legacy_tls: bool = False
    """Also TLS 1.0/1.1 and TLS_PSK_WITH_AES_128_CBC_SHA for old cards (PskTlsPolicy.legacy)."""
    allow_null_tls: bool = False
    """NULL (integrity-only) PSK suites: never unless explicitly enabled (they carry no
    confidentiality: ota-notes B.2, E)."""
    max_record: int = 16384
    """Largest plaintext in one TLS record the server sends (ota-notes B.1: some cards want about 256 bytes)."""
    handshake_timeout: float = 30.0
    read_timeout: float = 60.0
    """How long an admin session may stay silent (seconds) before the server gives up on it (a silent card holds
    a connection and its lease)."""
    max_body: int = 65536
    """Largest response script body a card may POST (413 above)."""
    admin_path: str = "/gp/admin"
    """The base of the ``X-Admin-Next-URI`` values: ``<admin_path>/<delivery id>``."""
    profiles: tuple[Path, ...] = ()
    """Card profiles registered (upserted) at start (``--profile``)."""
    key_provider: str = "db"
    """``db`` (keys wrapped under the master key in the database) or ``pkcs11`` (keys in a token)."""
    master_key_file: Path | None = None
    pkcs11_lib: str | None = None
    pkcs11_token: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)
    smpp: tuple[str, ...] = ()
    """SMSC addresses (``host:port``) for the SCP80 / SMS campaign workers (G); empty = no SMS workers."""
    smpp_system_id: str = "gpchannel"
    """The ESME system_id of the SMPP bind (transceiver)."""
    smpp_password: str = field(default="", repr=False)
    source_addr: str = "0"
    """The OTA server's number: the TP-OA the cards see, where their PoRs go."""
    campaign_rate: float = 10.0
    """Default SMS per second of a campaign (its settings may say otherwise)."""
    campaign_max_attempts: int = 3
    """Default sends per card, the first included."""
    campaign_por_timeout: float = 120.0
    """Default seconds to wait for a PoR before a retry."""
    worker_only: bool = False
    """Run the campaign workers only, no listeners (H: several worker processes on one PostgreSQL)."""
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    """This process's name in job leases and delivery logs."""
    api_cert: Path | None = None
    """PEM certificate (chain) of the job API's HTTPS listener; with ``api_key``."""
    api_key: Path | None = None
    """PEM private key of the job API's HTTPS listener."""
    insecure_api: bool = False
    """Allow the job API off loopback without TLS or without tokens (a lab only; logged at every start)."""
    api_rate: float = 50.0
    """Job API requests per second per principal (0: no limit); a token may override it."""
    api_scripts_per_hour: int = 100_000
    """Scripts (jobs, campaign cards) per hour per principal (0: no limit)."""
    api_max_campaign_cards: int = 0
    """Most cards one campaign may target (0: no limit)."""

    def __post_init__(self) -> None:
        for name in ("admin_port", "api_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0..65535, got {port}")
        if self.read_timeout <= 0 or self.handshake_timeout <= 0:
            raise ValueError("timeouts must be positive")
        path = self.admin_path
        if not path.startswith("/") or path.endswith("/") or not next_uri_ok(path + "/" + "0" * 32):
            message = "start with / and not end with one, visible ASCII only (no space)"
            raise ValueError(f"admin_path must {message}, got {path!r}")
        if not 64 <= self.max_record <= 16384:
            raise ValueError(f"max_record must be 64..16384, got {self.max_record}")
        if not (self.campaign_rate > 0 and self.campaign_max_attempts >= 1 and self.campaign_por_timeout > 0):
            raise ValueError("campaign_rate and campaign_por_timeout must be positive, campaign_max_attempts >= 1")
        if (self.api_cert is None) != (self.api_key is None):
            raise ValueError("--api-cert and --api-key go together")
        if self.api_rate < 0 or self.api_scripts_per_hour < 0 or self.api_max_campaign_cards < 0:
            raise ValueError("API limits must be >= 0 (0: no limit)")
        if self.key_provider not in ("db", "pkcs11"):
            raise ValueError(f"key_provider must be 'db' or 'pkcs11', got {self.key_provider!r}")

    @property
    def database_url(self) -> str:
        """The store's URL: ``db_url`` or the SQLite file in the data directory."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / DEFAULT_DB_FILE).resolve()}"

    def tls_policy(self) -> PskTlsPolicy:
        """The admin listener's PSK-TLS policy: TLS 1.2 with PSK-AES128-CBC-SHA256 and PSK-AES128-GCM-SHA256 in
        server preference order by default; the legacy set on request; NULL suites only when allowed."""
        if self.legacy_tls:
            policy = PskTlsPolicy.legacy(allow_null=self.allow_null_tls)
        elif self.allow_null_tls:  # TLS_PSK_WITH_NULL_SHA256 (0x00B0), least preferred
            policy = PskTlsPolicy(ciphers=(*PskTlsPolicy().ciphers, "PSK-NULL-SHA256"), allow_null=True)
        else:
            policy = PskTlsPolicy()
        return replace(policy, max_record_plaintext=self.max_record)


@dataclass
class ServerServices:
    """What the server's parts share: built once by ``run_server`` and handed to the admin sessions, the API and
    the campaign workers (G, H). ``clock`` returns timezone-aware UTC."""

    repository: Repository
    keys: KeyProvider
    config: ServerConfig
    clock: Callable[[], datetime] = utc_now
