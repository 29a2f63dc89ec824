"""Authentication and authorization of the job API: bearer tokens (RFC 6750), scopes, card filters and limits.

:func:`auth_middleware` runs before every handler of the API application (the ``/api/v1`` routes and the pages at
``/`` and ``/campaigns/{id}``): it takes the token from ``Authorization: Bearer <token>`` (or, for a browser on the
pages, HTTP Basic with the token as the password), authenticates it (tokens.py), checks the route's scope in
:data:`ROUTE_SCOPES` and the principal's request rate (limits.py). Refusals are JSON: 401 (no, malformed, wrong,
revoked or expired token; ``WWW-Authenticate: Bearer``), 403 (outside the scope, or a route missing from the table:
fail closed), 429 (``Retry-After``). A refused request reaches no handler, so it changes nothing; it is logged
(never the token).

:data:`ROUTE_SCOPES` is THE table of who may call what; a route not in it is refused, and the tests build their
refusal matrix from the application's route list against it. The handlers add what depends on the body: the
push scope of the script (:func:`script_scope`: ``push-rfm`` for file-system commands sent to an RFM TAR or
AID only, ``push-ram`` for anything else), ``keys`` for an inventory given with a campaign, and the card tag of a
restricted token (:func:`require_cards`: every card a request writes must carry it, 403 otherwise;
:func:`require_visible`: a card, job or campaign outside it is answered as one that does not exist, 404).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, NoReturn

from aiohttp import web
from multidict import CIMultiDict

from gpchannel.errors import AuthenticationError
from gpchannel.server.config import ServerServices
from gpchannel.server.limits import Limits
from gpchannel.server.tokens import Principal, Scope, authenticate

__all__ = [
    "PRINCIPAL",
    "ROUTE_SCOPES",
    "auth_middleware",
    "card_tags",
    "ota_tags",
    "principal_of",
    "require",
    "require_cards",
    "require_visible",
    "rfm_target",
    "route_scope",
    "script_budget",
    "script_scope",
    "tags_to_store",
    "visible",
]

_P = "/api/v1"
ROUTE_SCOPES: Mapping[tuple[str, str], Scope] = {
    ("GET", f"{_P}/health"): Scope.READ,
    ("POST", f"{_P}/cards"): Scope.KEYS,
    ("GET", f"{_P}/cards"): Scope.READ,
    ("GET", f"{_P}/cards/{{id}}"): Scope.READ,
    ("POST", f"{_P}/jobs"): Scope.PUSH_RFM,  # the handler asks push-ram unless every command is a file-system one
    ("GET", f"{_P}/jobs"): Scope.READ,
    ("GET", f"{_P}/jobs/{{id}}"): Scope.READ,
    ("POST", f"{_P}/jobs/{{id}}/cancel"): Scope.PUSH_RFM,
    ("POST", f"{_P}/inventory"): Scope.KEYS,
    ("POST", f"{_P}/campaigns"): Scope.CAMPAIGN,  # + the script's push scope (+ keys with an inventory)
    ("GET", f"{_P}/campaigns"): Scope.READ,
    ("GET", f"{_P}/campaigns/{{id}}"): Scope.READ,
    ("GET", f"{_P}/campaigns/{{id}}/results"): Scope.READ,
    ("POST", f"{_P}/campaigns/{{id}}/cancel"): Scope.CAMPAIGN,
    ("GET", "/"): Scope.READ,
    ("GET", "/campaigns/{id}"): Scope.READ,
}
"""(method, route) -> the scope it needs (HEAD as GET). ``admin`` grants every scope."""

PRINCIPAL = web.RequestKey("principal", Principal)
LIMITS = web.AppKey("limits", Limits)
_log = logging.getLogger("gpchannel.server.auth")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# TS 102 226 clause 9 / TS 102 222: the file-system commands of RFM (interindustry class, CLA b8 = 0).
_RFM_INS = frozenset(
    {0xA4, 0xB0, 0xD6, 0xB2, 0xDC, 0xA2, 0x32, 0x20, 0x24, 0x26, 0x28, 0x2C, 0x04, 0x44, 0xE0, 0xE4, 0xD4, 0xDB,
     0xCB, 0xC0}
)  # fmt: skip


def _refuse(status: int, message: str, headers: Mapping[str, str] | CIMultiDict[str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def fail(status: int, message: str, headers: Mapping[str, str] | None = None) -> NoReturn:
    """Raise a JSON error (403, 429 ...) from a handler."""
    body = json.dumps({"error": message, "status": status})
    classes: Mapping[int, type[web.HTTPException]] = {
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        429: web.HTTPTooManyRequests,
    }
    raise classes.get(status, web.HTTPForbidden)(text=body, content_type="application/json", headers=headers)


def route_scope(method: str, path: str) -> Scope | None:
    return ROUTE_SCOPES.get(("GET" if method == "HEAD" else method, path))


def _page(request: web.Request) -> bool:
    """A read of the campaign pages, the only requests a browser makes with HTTP Basic."""
    return request.method in ("GET", "HEAD") and (request.path == "/" or request.path.startswith("/campaigns/"))


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() == "bearer":
        return value.strip()
    # A browser on the pages: any user name, the token as the password. Only there: a browser resends Basic
    # credentials by itself, so a hostile page could otherwise make it POST to the API with them (CSRF).
    if kind.lower() == "basic" and _page(request):
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return None


def auth_middleware(services: ServerServices, limits: Limits) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware of the API application (outermost: before the JSON error mapping)."""

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        challenge = CIMultiDict({"WWW-Authenticate": 'Bearer realm="gpchannel"'})
        if _page(request):
            # A header of its own: browsers read one challenge per WWW-Authenticate header (RFC 9110 11.6.1
            # allows a list, but Chromium takes the first scheme of a header only, and knows no Bearer).
            challenge.add("WWW-Authenticate", 'Basic realm="gpchannel"')
        presented = _presented(request)
        if not presented:
            _log.info("%s %s refused: no token", request.method, request.path)
            return _refuse(401, "authentication required: Authorization: Bearer <token>", challenge)
        now = services.clock()
        try:
            principal = await asyncio.to_thread(authenticate, services.repository, presented, now)
        except AuthenticationError as exc:
            _log.info("%s %s refused: %s", request.method, request.path, exc)
            return _refuse(401, f"{exc}", challenge)
        wait = limits.request(principal, now)
        if wait is not None:
            return _refuse(429, f"{principal.name}: too many requests", {"Retry-After": str(wait)})
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else None
        scope = None if canonical is None else route_scope(request.method, canonical)
        if scope is None:
            if resource is None:  # no route: aiohttp's 404 / 405, for an authenticated caller only
                request[PRINCIPAL] = principal
                return await handler(request)
            _log.error("%s %s has no scope in ROUTE_SCOPES: refused", request.method, canonical)
            return _refuse(403, "this route has no scope: refused")
        if not principal.allows(scope):
            _log.info("%s %s refused: %s lacks %s", request.method, request.path, principal.name, scope.value)
            return _refuse(403, f"the token {principal.name!r} lacks the {scope.value!r} scope")
        request[PRINCIPAL] = principal
        return await handler(request)

    return middleware


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require(request: web.Request, scope: Scope) -> None:
    """403 unless the caller holds ``scope`` (for what depends on the body)."""
    principal = principal_of(request)
    if not principal.allows(scope):
        _log.info("%s %s refused: %s lacks %s", request.method, request.path, principal.name, scope.value)
        fail(403, f"the token {principal.name!r} lacks the {scope.value!r} scope")


RFM_TAR_FIRST_BYTE = 0xB0
"""ETSI TS 101 220 Annex D (ota-notes A.8): TARs B00000-B0FFFF are the Remote File Management family."""


TOOLKIT_RIDS = (bytes.fromhex("A000000009"), bytes.fromhex("A000000087"))
"""ETSI's and 3GPP's RIDs: only their applications' AIDs carry a TAR in bytes 13-15 (TS 101 220)."""


def rfm_target(target: bytes) -> bool:
    """``target`` names an RFM application: a 3-byte TAR of the RFM family (SCP80), or an ETSI / 3GPP AID whose
    bytes 13-15 are one (SCP81's X-Admin-Targeted-Application, TS 101 220: the TAR in the AID). '' (the ISD) and
    any other AID are not: another RID's bytes 13-15 mean nothing."""
    if len(target) >= 15 and target[:5] in TOOLKIT_RIDS:
        target = target[12:15]
    return len(target) == 3 and target[0] == RFM_TAR_FIRST_BYTE


def script_scope(script: Sequence[bytes], target: bytes) -> Scope:
    """``push-rfm`` when the target is an RFM application and every command is a file-system one (interindustry
    CLA, an RFM INS), else ``push-ram``: the same bytes sent to a Security Domain could mean something else."""
    rfm = all(len(a) >= 2 and not a[0] & 0x80 and a[1] in _RFM_INS for a in script)
    return Scope.PUSH_RFM if rfm and script and rfm_target(target) else Scope.PUSH_RAM


_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_tags(value: object) -> list[str] | Literal[False] | None:
    """A request's ``tags``: None (not given), the sorted tags, or False when malformed."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) and _TAG.match(t) for t in value):
        return False
    return sorted(set(value))


def card_tags(card: Any) -> list[str]:
    """A card's inventory tags (its ``ota`` document's ``tags``)."""
    return ota_tags(getattr(card, "ota", None) or {})


def ota_tags(ota: Mapping[str, Any]) -> list[str]:
    """The inventory tags of a card's ``ota`` document."""
    tags = ota.get("tags") or []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def visible(request: web.Request, card: Any) -> bool:
    """``card`` (a record, or None: no such card) exists for the caller: any card without a card tag, else a card
    carrying it."""
    principal = principal_of(request)
    return card is not None and (principal.cards_tag is None or principal.may_touch(card_tags(card)))


def require_visible(request: web.Request, card: Any, missing: str) -> None:
    """404 ``missing`` (what a card that does not exist gets) unless the caller may see ``card``: a token limited to
    a tag learns nothing of other cards, not even that they exist."""
    if not visible(request, card):
        _log.info("%s %s refused: %s may not see the card", request.method, request.path, principal_of(request).name)
        fail(404, missing)


def tags_to_store(request: web.Request, requested: Sequence[str] | None, stored: Iterable[Any]) -> list[str] | None:
    """The tags a card write stores (None: leave them). ``stored``: the card's records as they are (none for a new
    card). A token limited to a tag may not change a card's tags, which would hand the card to another team or
    take it from one: what it asks must be the card's tags (403 otherwise); its cards always carry its tag."""
    principal = principal_of(request)
    own = principal.cards_tag
    stored = list(stored)
    if own is None:
        return None if requested is None else sorted(set(requested))
    current = {t for record in stored for t in card_tags(record)}
    if requested is not None and set(requested) | {own} != current | {own}:
        _log.info("%s %s refused: %s may not change card tags", request.method, request.path, principal.name)
        fail(403, f"the token {principal.name!r} may not change a card's tags (only {own!r} is added)")
    return sorted(current | {own}) if requested is not None or not stored else None


def require_cards(request: web.Request, cards: Iterable[Any]) -> None:
    """403 unless the caller may touch every one of ``cards`` (its card tag, if it has one)."""
    principal = principal_of(request)
    if principal.cards_tag is None:
        return
    outside = [int(c.id) if c is not None else -1 for c in cards if c is None or not principal.may_touch(card_tags(c))]
    if outside:
        _log.info("%s %s refused: %s may not touch cards %s", request.method, request.path, principal.name, outside)
        fail(403, f"the token {principal.name!r} is limited to cards tagged {principal.cards_tag!r}")


@contextlib.contextmanager
def script_budget(request: web.Request, script: Sequence[bytes], target: bytes, cards: int) -> Iterator[None]:
    """The push scope of ``script`` at ``target`` (403), then ``cards`` scripts taken from the caller's
    scripts-per-hour budget (429); given back when the block raises, since a write that fails sends nothing."""
    require(request, script_scope(script, target))
    limits = request.app[LIMITS]
    principal = principal_of(request)
    now = request.app[SERVICES_KEY].clock()
    wait = limits.scripts(principal, cards, now)
    if wait is not None:
        fail(429, f"{principal.name}: scripts-per-hour limit reached", {"Retry-After": str(wait)})
    try:
        yield
    except Exception:  # not on cancellation: the write may still commit in its thread, so its scripts stay counted
        limits.give_back(principal, cards, now)
        raise


SERVICES_KEY = web.AppKey("auth_services", ServerServices)


def install(app: web.Application, services: ServerServices, limits: Limits) -> None:
    """Put what the helpers above need on the application (build_api calls it)."""
    app[LIMITS] = limits
    app[SERVICES_KEY] = services


def campaign_cards_limit(request: web.Request, count: int) -> None:
    """403 when a campaign would target more cards than the caller may (``max_campaign_cards``)."""
    most = request.app[LIMITS].max_campaign_cards(principal_of(request))
    if most is not None and count > most:
        fail(403, f"a campaign of {count} cards: {principal_of(request).name} may target at most {most}")
