"""API tokens of the job API (bearer tokens, RFC 6750): who may call it, with which scopes, on which cards.

A token is ``gpc1_<key id>_<secret>``: the key id (8 random bytes, hex) is its public lookup part, the secret 32
random bytes (256 bits, base64url). The store keeps the key id, a random per-token salt and
``HMAC-SHA256(salt, secret)`` only, so a copy of the database gives no usable token; the token is shown once, by
:func:`create_token`. :func:`authenticate` computes the HMAC even for an unknown key id and compares with
:func:`hmac.compare_digest` (constant time). A token may expire (``expires_at``) and be revoked (``revoked_at``,
kept for the audit); both refuse it like a wrong one.

Scopes (:class:`Scope`): ``read`` (jobs, campaigns, cards, results), ``push-ram`` (any script),
``push-rfm`` (scripts of file-system commands only, TS 102 226 clause 9), ``campaign`` (create, cancel),
``keys`` (inventory import, cards and their keys), ``admin`` (tokens; it implies every other scope). A token
may be restricted to the cards carrying one inventory tag (``cards_tag``). Its ``limits`` override the server's
per-principal limits (limits.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from gpchannel.errors import AuthenticationError, RepositoryError
from gpchannel.server.audit import append
from gpchannel.server.db import api_tokens

if TYPE_CHECKING:
    from gpchannel.server.repository import Repository

__all__ = [
    "LIMIT_NAMES",
    "TOKEN_PREFIX",
    "Principal",
    "Scope",
    "TokenInfo",
    "authenticate",
    "create_token",
    "has_active_tokens",
    "list_tokens",
    "parse_duration",
    "revoke_token",
]

TOKEN_PREFIX = "gpc1_"  # noqa: S105 - the public prefix, not a secret
_TOKEN = re.compile(r"^gpc1_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DUMMY_SALT = bytes(16)
LIMIT_NAMES = ("rate", "scripts_per_hour", "max_campaign_cards")
"""Per-token overrides of the server's limits: requests per second, scripts per hour, cards per campaign."""


class Scope(StrEnum):
    READ = "read"
    PUSH_RAM = "push-ram"
    PUSH_RFM = "push-rfm"
    CAMPAIGN = "campaign"
    KEYS = "keys"
    ADMIN = "admin"


_IMPLIED: Mapping[Scope, frozenset[Scope]] = {
    Scope.PUSH_RFM: frozenset({Scope.PUSH_RAM}),  # a RAM script may hold anything, RFM commands included
}
"""Scopes that also grant another one (``admin`` grants all)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, its scopes, its card tag and its limit overrides."""

    name: str
    scopes: frozenset[Scope]
    cards_tag: str | None = None
    limits: Mapping[str, float] = field(default_factory=dict)

    def allows(self, scope: Scope) -> bool:
        held = self.scopes
        return Scope.ADMIN in held or scope in held or bool(held & _IMPLIED.get(scope, frozenset()))

    def may_touch(self, tags: Iterable[str]) -> bool:
        """True when the token has no card restriction or the card carries its tag."""
        return self.cards_tag is None or self.cards_tag in set(tags)


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, as ``token list`` shows it (never the secret, which is not stored)."""

    name: str
    scopes: tuple[str, ...]
    cards_tag: str | None
    limits: Mapping[str, float]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "cards_tag": self.cards_tag,
            "limits": dict(self.limits),
            "state": self.state(now),
            "created_at": self.created_at.isoformat(),
            "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``30d``, ``2w`` -> a timedelta; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text)
    if match is None:
        raise ValueError(f"duration {text!r}: a number and a unit s, m, h, d or w expected (e.g. 30d)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    value = timedelta(**{unit: int(match.group(1))})
    if value <= timedelta(0):
        raise ValueError(f"duration {text!r}: must be positive")
    return value


def create_token(
    repo: Repository,
    *,
    name: str,
    scopes: Iterable[str],
    now: datetime,
    cards_tag: str | None = None,
    expires_at: datetime | None = None,
    limits: Mapping[str, float] | None = None,
    actor: str = "local-admin",
) -> str:
    """Store a new token and return it (the only time it exists in clear). ValueError for a bad name, scope,
    tag or limit; RepositoryError when the name is taken. The creation is audited in the same transaction."""
    if not _NAME.match(name):
        raise ValueError(f"token name {name!r}: letters, digits, '.', '_' or '-', at most 64")
    try:
        scope_set = sorted({Scope(s).value for s in scopes})
    except ValueError:
        raise ValueError(f"scopes: each one of {', '.join(s.value for s in Scope)}") from None
    if not scope_set:
        raise ValueError("a token needs at least one scope")
    if cards_tag is not None and not _TAG.match(cards_tag):
        raise ValueError(f"card tag {cards_tag!r}: letters, digits, '.', '_' or '-'")
    given = dict(limits or {})
    for key, value in given.items():
        if key not in LIMIT_NAMES or not value > 0:
            raise ValueError(f"limit {key}: one of {', '.join(LIMIT_NAMES)}, positive")
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    salt = secrets.token_bytes(16)
    with repo.atomic() as c:
        if c.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).one_or_none() is not None:
            raise RepositoryError(f"a token named {name!r} exists already (revoke it, or choose another name)")
        c.execute(
            api_tokens.insert().values(
                name=name,
                key_id=key_id,
                salt=salt,
                digest=_digest(salt, secret),
                scopes=scope_set,
                cards_tag=cards_tag,
                limits=given,
                created_at=now,
                expires_at=expires_at,
            )
        )
        append(c, principal=actor, action="token.create", outcome=f"created {name} ({','.join(scope_set)})", at=now)
    return f"{TOKEN_PREFIX}{key_id}_{secret}"


def list_tokens(repo: Repository) -> list[TokenInfo]:
    with repo.reading() as c:
        rows = c.execute(select(api_tokens).order_by(api_tokens.c.id)).all()
    return [
        TokenInfo(
            name=r.name,
            scopes=tuple(r.scopes),
            cards_tag=r.cards_tag,
            limits=dict(r.limits or {}),
            created_at=r.created_at,
            expires_at=r.expires_at,
            revoked_at=r.revoked_at,
        )
        for r in rows
    ]


def revoke_token(repo: Repository, name: str, *, now: datetime, actor: str = "local-admin") -> bool:
    """Revoke the token ``name`` at once (True), or False when there is no such active token. Audited."""
    with repo.atomic() as c:
        done = c.execute(
            update(api_tokens)
            .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        if done:
            append(c, principal=actor, action="token.revoke", outcome=f"revoked {name}", at=now)
    return bool(done)


def has_active_tokens(repo: Repository, now: datetime) -> bool:
    return any(t.state(now) == "active" for t in list_tokens(repo))


def authenticate(repo: Repository, presented: str, now: datetime) -> Principal:
    """The principal of a presented token; AuthenticationError (one message for every failure but the
    malformed one, so a caller learns nothing about which tokens exist) when it is malformed, unknown, wrong,
    revoked or expired."""
    match = _TOKEN.match(presented)
    if match is None:
        raise AuthenticationError("malformed token")
    key_id, secret = match.groups()
    with repo.reading() as c:
        row = c.execute(select(api_tokens).where(api_tokens.c.key_id == key_id)).one_or_none()
    expected = row.digest if row is not None else bytes(32)
    good = hmac.compare_digest(_digest(row.salt if row is not None else _DUMMY_SALT, secret), expected)
    if row is None or not good or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise AuthenticationError("invalid, revoked or expired token")
    scopes = frozenset(Scope(s) for s in row.scopes)
    return Principal(name=row.name, scopes=scopes, cards_tag=row.cards_tag, limits=dict(row.limits or {}))
