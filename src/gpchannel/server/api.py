"""The job API of ``gpchannel server``: JSON over HTTP on a local port, aiohttp.

Routes, all under ``/api/v1`` (docs/server.md has an example of each):

- ``GET /health`` -> ``{"status": "ok"}``.
- ``POST /cards`` ``{"iccid"?, "psk_identity"?, "psk"? (hex), "psk_kvn"?, "msisdn"?}`` registers (upserts) a card;
  the PSK goes to the key provider, never back out. 201 ``{"id", ...}`` for a new card, 200 for a known one.
- ``GET /cards?iccid=|psk_identity=`` -> ``{"cards": [...]}`` (without them: all, ``after``/``limit`` paging);
  ``GET /cards/{id}``.
- ``POST /jobs`` ``{"card": {"iccid"|"psk_identity"|"id": ...}, "apdus": [hex, ...], "target"?: hex,
  "transport"?: "scp81"}`` -> 201 ``{"id", "state": "queued", ...}``. Every APDU must parse as an ISO 7816-4
  command (RAM and RFM commands are APDUs too); 1 to 255 of them (the executed-commands count of a response
  script is one byte, ETSI TS 102 226 5.2.2).
- ``GET /jobs?state=&card=&iccid=&psk_identity=&campaign=&after=&limit=`` -> ``{"jobs": [...], "next_after"}``.
- ``GET /jobs/{id}`` -> the job: state (queued, sent, done, failed, cancelled), reason, and its results, every
  R-APDU with its status word.
- ``POST /jobs/{id}/cancel`` -> 200 with the job; 409 when it was already sent or is final.

Errors are JSON ``{"error": message, "status": code}``: 400 bad JSON / hex / APDU / field, 404 unknown card, job or
route, 405 wrong method (with ``Allow``), 409 conflict, 413 body too large; bodies, ids and integer parameters are
checked in ``gpchannel.server.api_input`` (nesting depth, ASCII digits, the store's integer range). The campaign
routes of G are added by ``gpchannel.server.api_campaigns.add_campaign_routes`` when that module is present.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import DecodeError, GPChannelError, RepositoryError
from gpchannel.server import audit, auth
from gpchannel.server.api_input import MAX_ID, MAX_REQUEST_BYTES, path_id, query_int, read_json_object
from gpchannel.server.config import ServerServices
from gpchannel.server.limits import Limits
from gpchannel.server.repository import CardRecord, JobRecord, JobState, JobTransport

__all__ = [
    "API_PREFIX",
    "MAX_REQUEST_BYTES",
    "MAX_SCRIPT_APDUS",
    "SERVICES",
    "build_api",
    "card_json",
    "job_json",
    "parse_target",
]

API_PREFIX = "/api/v1"
MAX_SCRIPT_APDUS = 255
SERVICES = web.AppKey("services", ServerServices)

_log = logging.getLogger("gpchannel.server.api")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fail(status: int, message: str) -> NoReturn:
    """Raise an HTTP error whose body is ``{"error": message, "status": status}``."""
    body = json.dumps({"error": message, "status": status})
    raise _exception(status, body)


def _exception(status: int, body: str) -> web.HTTPException:
    classes: Mapping[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        413: web.HTTPRequestEntityTooLarge,
        500: web.HTTPInternalServerError,
    }
    cls = classes.get(status, web.HTTPBadRequest)
    if cls is web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(
            max_size=MAX_REQUEST_BYTES, actual_size=0, text=body, content_type="application/json"
        )
    return cls(text=body, content_type="application/json")


@web.middleware
async def _json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every error leaves as JSON, aiohttp's own (404 no route, 405 wrong method, 413) included."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": exc.reason, "status": exc.status}, status=exc.status, headers=headers)
    except (GPChannelError, SQLAlchemyError, OSError) as exc:  # the store or the key provider failed
        _log.error("%s %s: %s: %s", request.method, request.path, type(exc).__name__, exc)
        return web.json_response({"error": f"the server failed: {type(exc).__name__}", "status": 500}, status=500)


# ------------------------------------------------------------------------------------------------------ rendering


def card_json(card: CardRecord) -> dict[str, Any]:
    """A card as the API shows it (never a key)."""
    out = {"id": card.id, "iccid": card.iccid, "psk_identity": card.psk_identity, "msisdn": card.msisdn}
    tags = auth.card_tags(card)
    return {**out, "tags": tags} if tags else out


def job_json(job: JobRecord) -> dict[str, Any]:
    """A job as the API shows it: its script, state, reason and every R-APDU with its status word."""
    return {
        "id": job.id,
        "card_id": job.card_id,
        "campaign_id": job.campaign_id,
        "transport": job.transport.value,
        "target": job.target.hex().upper(),
        "apdus": [apdu.hex().upper() for apdu in job.script],
        "state": job.state.value,
        "reason": job.reason,
        "attempts": job.attempts,
        "results": [
            {"command": r.command.hex().upper(), "response": r.response.hex().upper(), "sw": f"{r.sw:04X}"}
            for r in job.results
        ],
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
    }


# ------------------------------------------------------------------------------------------------------ parsing


async def _body(request: web.Request) -> dict[str, Any]:
    return await read_json_object(request)  # size, nesting depth and syntax checked there (server/api_input.py)


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        _fail(400, f"{what}: a hex string expected")
    text = "".join(value.split())
    try:
        return bytes.fromhex(text)
    except ValueError:
        _fail(400, f"{what}: not an even number of hex digits")


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        _fail(400, f"{name}: a non-empty string expected")
    return value


def _iccid(value: str | None) -> str | None:
    if value is not None and not (value.isascii() and value.isdigit() and 10 <= len(value) <= 20):
        _fail(400, f"iccid: 10 to 20 decimal digits expected, got {value!r}")
    return value


def _int_param(request: web.Request, name: str, default: int, minimum: int = 0) -> int:
    return query_int(request, name, default, minimum)


def parse_target(value: object, transport: JobTransport) -> bytes:
    """The job's target: '' for the ISD; for SCP81 an application AID (5..16 bytes, sent as
    X-Admin-Targeted-Application); for SCP80 a TAR (3 bytes) or an AID. Raises 400."""
    if value is None or value == "":
        return b""
    target = _hex(value, "target")
    if 5 <= len(target) <= 16:
        return target
    if len(target) == 3 and transport is JobTransport.SCP80:
        return target
    _fail(400, "target: an AID of 5 to 16 bytes" + (" or a 3-byte TAR" if transport is JobTransport.SCP80 else ""))


def _apdus(value: object) -> list[bytes]:
    if not isinstance(value, list) or not value:
        _fail(400, "apdus: a non-empty list of hex C-APDUs expected")
    if len(value) > MAX_SCRIPT_APDUS:
        _fail(400, f"apdus: at most {MAX_SCRIPT_APDUS} per script (TS 102 226 5.2.2), got {len(value)}")
    out = []
    for index, item in enumerate(value):
        raw = _hex(item, f"apdus[{index}]")
        try:
            CommandApdu.from_bytes(raw)
        except (DecodeError, ValueError) as exc:
            _fail(400, f"apdus[{index}]: not a C-APDU: {exc}")
        out.append(raw)
    return out


async def _find_card(request: web.Request, selector: object) -> CardRecord:
    """``{"iccid": ...}``, ``{"psk_identity": ...}`` or ``{"id": n}`` -> the card, or 404 (also for a card outside
    the caller's card tag)."""
    repo = _services(request).repository
    if not isinstance(selector, dict) or len(selector) != 1:
        _fail(400, 'card: an object with one of "iccid", "psk_identity" or "id"')
    ((key, value),) = selector.items()
    card: CardRecord | None
    if key == "iccid" and isinstance(value, str):
        card = await asyncio.to_thread(repo.card_by_iccid, value)
    elif key == "psk_identity" and isinstance(value, str):
        card = await asyncio.to_thread(repo.card_by_identity, value)
    elif key == "id" and isinstance(value, int) and not isinstance(value, bool):
        card = await asyncio.to_thread(repo.card, value) if 0 <= value <= MAX_ID else None
    else:
        _fail(400, 'card: an object with one of "iccid" (string), "psk_identity" (string) or "id" (integer)')
    auth.require_visible(request, card, f"no card with {key} {value!r}")
    assert card is not None
    return card


# ------------------------------------------------------------------------------------------------------ handlers


def _services(request: web.Request) -> ServerServices:
    return request.app[SERVICES]


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _post_card(request: web.Request) -> web.Response:
    services = _services(request)
    body = await _body(request)
    unknown = set(body) - {"iccid", "psk_identity", "psk", "psk_kvn", "msisdn", "tags"}
    if unknown:
        _fail(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    iccid = _iccid(_optional_str(body, "iccid"))
    identity = _optional_str(body, "psk_identity")
    msisdn = _optional_str(body, "msisdn")
    if iccid is None and identity is None:
        _fail(400, "give iccid, psk_identity or both")
    psk = None
    if body.get("psk") is not None:
        psk = _hex(body["psk"], "psk")
        if not 1 <= len(psk) <= 64:
            _fail(400, "psk: 1 to 64 bytes expected (value not shown: it is a key)")
        if identity is None:
            _fail(400, "psk needs psk_identity (the card presents the identity in the TLS handshake)")
    kvn = body.get("psk_kvn", 1)
    if not isinstance(kvn, int) or isinstance(kvn, bool) or not 0 <= kvn <= 0xFF:
        _fail(400, "psk_kvn: an integer 0..255 expected")
    tags = auth.parse_tags(body.get("tags"))
    if tags is False:
        _fail(400, "tags: an array of tags (letters, digits, '.', '_' or '-')")
    repo = services.repository
    by_iccid = await asyncio.to_thread(repo.card_by_iccid, iccid) if iccid is not None else None
    by_identity = await asyncio.to_thread(repo.card_by_identity, identity) if identity is not None else None
    existing = by_iccid or by_identity
    principal = auth.principal_of(request)
    stored = [c for c in (by_iccid, by_identity) if c is not None]
    auth.require_cards(request, stored)
    tags = auth.tags_to_store(request, tags, stored)
    ota = None if tags is None else {**(existing.ota if existing is not None else {}), "tags": tags}
    now = services.clock()

    def write() -> int:
        with repo.atomic() as c:
            card_id = repo.upsert_card(iccid=iccid, psk_identity=identity, msisdn=msisdn, ota=ota)
            if psk is not None:
                services.keys.store_card_keys(card_id, {("psk", kvn): (psk, "psk")})
            what = "updated" if existing is not None else "created"
            outcome = f"{what}{', psk set' if psk is not None else ''}{', tags set' if tags is not None else ''}"
            audit.append(
                c, principal=principal.name, action="card.register", at=now, card_ids=[card_id], outcome=outcome
            )
            return card_id

    try:
        card_id = await asyncio.to_thread(write)
    except RepositoryError as exc:  # the ICCID and the identity belong to two different cards
        _fail(409, str(exc))
    card = await asyncio.to_thread(repo.card, card_id)
    assert card is not None
    _log.info("card %d registered (iccid %s, identity %r, psk %s)", card_id, iccid, identity, "set" if psk else "-")
    return web.json_response(card_json(card), status=200 if existing is not None else 201)


async def _get_cards(request: web.Request) -> web.Response:
    services = _services(request)
    repo = services.repository
    iccid = request.query.get("iccid")
    identity = request.query.get("psk_identity")
    if iccid is None and identity is None:
        after = _int_param(request, "after", 0)
        limit = min(_int_param(request, "limit", 100, 1), 1000)
        listed = await asyncio.to_thread(functools.partial(repo.cards, after_id=after, limit=limit))
        next_after = listed[-1].id if len(listed) == limit else None
        principal = auth.principal_of(request)
        shown = [card_json(c) for c in listed if principal.may_touch(auth.card_tags(c))]
        return web.json_response({"cards": shown, "next_after": next_after})
    card = (
        await asyncio.to_thread(repo.card_by_iccid, iccid)
        if iccid is not None
        else await asyncio.to_thread(repo.card_by_identity, identity or "")
    )
    shown = [card_json(card)] if card is not None and auth.visible(request, card) else []
    return web.json_response({"cards": shown})


async def _get_card(request: web.Request) -> web.Response:
    card_id = _path_id(request)
    card = await asyncio.to_thread(_services(request).repository.card, card_id)
    auth.require_visible(request, card, f"no card {card_id}")
    assert card is not None
    return web.json_response(card_json(card))


async def _post_job(request: web.Request) -> web.Response:
    services = _services(request)
    body = await _body(request)
    unknown = set(body) - {"card", "apdus", "target", "transport"}
    if unknown:
        _fail(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        transport = JobTransport(body.get("transport", JobTransport.SCP81.value))
    except ValueError:
        _fail(400, f"transport: one of {', '.join(t.value for t in JobTransport)}")
    apdus = _apdus(body.get("apdus"))
    target = parse_target(body.get("target"), transport)
    if "card" not in body:
        _fail(400, 'card: required, e.g. {"iccid": "8988211000000000001"}')
    card = await _find_card(request, body["card"])
    repo = services.repository
    principal, now = auth.principal_of(request).name, services.clock()

    def write() -> int:
        with repo.atomic() as c:
            job_id = repo.add_job(card_id=card.id, transport=transport, script=apdus, target=target)
            audit.append(
                c,
                principal=principal,
                action="job.create",
                at=now,
                outcome="queued",
                card_ids=[card.id],
                job_id=job_id,
                script_sha256=audit.script_sha256(apdus),
            )
            return job_id

    with auth.script_budget(request, apdus, target, 1):
        job_id = await asyncio.to_thread(write)
    job = await asyncio.to_thread(repo.job, job_id)
    assert job is not None
    _log.info("job %d queued for card %d: %d APDU(s) over %s", job_id, card.id, len(apdus), transport.value)
    return web.json_response(job_json(job), status=201, headers={"Location": f"{API_PREFIX}/jobs/{job_id}"})


async def _get_jobs(request: web.Request) -> web.Response:
    services = _services(request)
    repo = services.repository
    state = None
    if request.query.get("state"):
        try:
            state = JobState(request.query["state"])
        except ValueError:
            _fail(400, f"state: one of {', '.join(s.value for s in JobState)}")
    card_id: int | None = None
    if request.query.get("card"):
        card_id = _int_param(request, "card", 0, 1)
    elif request.query.get("iccid") or request.query.get("psk_identity"):
        key = "iccid" if request.query.get("iccid") else "psk_identity"
        card_id = (await _find_card(request, {key: request.query[key]})).id
    campaign = _int_param(request, "campaign", 0, 1) if request.query.get("campaign") else None
    after = _int_param(request, "after", 0)
    limit = min(_int_param(request, "limit", 100, 1), 1000)
    jobs = await asyncio.to_thread(
        lambda: repo.jobs(card_id=card_id, campaign_id=campaign, state=state, after_id=after, limit=limit)
    )
    next_after = jobs[-1].id if len(jobs) == limit else None
    shown = await _visible_jobs(request, jobs)
    return web.json_response({"jobs": [job_json(j) for j in shown], "next_after": next_after})


async def _visible_jobs(request: web.Request, jobs: list[JobRecord]) -> list[JobRecord]:
    """The jobs of cards a restricted token may touch (all of them for an unrestricted one)."""
    principal = auth.principal_of(request)
    if principal.cards_tag is None:
        return jobs
    repo = _services(request).repository
    cards = await asyncio.to_thread(repo.cards_by_id, [j.card_id for j in jobs])
    return [j for j in jobs if j.card_id in cards and principal.may_touch(auth.card_tags(cards[j.card_id]))]


async def _job_of(request: web.Request, job_id: int) -> JobRecord:
    """The job, or 404 (also when its card is outside the caller's card tag)."""
    job = await asyncio.to_thread(_services(request).repository.job, job_id)
    if job is None or not await _visible_jobs(request, [job]):
        _fail(404, f"no job {job_id}")
    return job


def _path_id(request: web.Request) -> int:
    return path_id(request)


async def _get_job(request: web.Request) -> web.Response:
    job_id = _path_id(request)
    job = await _job_of(request, job_id)
    return web.json_response(job_json(job))


async def _cancel_job(request: web.Request) -> web.Response:
    job_id = _path_id(request)
    services = _services(request)
    repo = services.repository
    job = await _job_of(request, job_id)
    principal, now = auth.principal_of(request).name, services.clock()

    def cancel() -> bool:
        with repo.atomic() as c:
            if not repo.cancel_job(job_id):
                return False
            audit.append(
                c, principal=principal, action="job.cancel", at=now, outcome="cancelled", card_ids=[job.card_id],
                campaign_id=job.campaign_id, job_id=job_id,
            )  # fmt: skip
            return True

    if job.state is not JobState.QUEUED or not await asyncio.to_thread(cancel):
        now_job = await asyncio.to_thread(repo.job, job_id) or job
        if now_job.state is JobState.CANCELLED:
            return web.json_response(job_json(now_job))
        why = "it is final" if now_job.state.final else "it was sent: the card may be running it"
        _fail(409, f"job {job_id} is {now_job.state.value}; {why}, so it cannot be cancelled")
    done = await asyncio.to_thread(repo.job, job_id)
    assert done is not None
    _log.info("job %d cancelled", job_id)
    return web.json_response(job_json(done))


def _add_campaign_routes(app: web.Application, services: ServerServices) -> None:
    """G's campaign routes, when gpchannel.server.api_campaigns exists (imported lazily)."""
    name = "gpchannel.server.api_campaigns"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return
    add: Callable[[web.Application, ServerServices], None] = module.add_campaign_routes
    add(app, services)


def build_api(services: ServerServices) -> web.Application:
    """The job API application (mount nothing else on it: every route is under /api/v1)."""
    config = services.config
    limits = Limits(config.api_rate, config.api_scripts_per_hour, config.api_max_campaign_cards)
    app = web.Application(
        middlewares=[auth.auth_middleware(services, limits), _json_errors], client_max_size=MAX_REQUEST_BYTES
    )
    app[SERVICES] = services
    auth.install(app, services, limits)
    p = API_PREFIX
    app.router.add_get(f"{p}/health", _health)
    app.router.add_post(f"{p}/cards", _post_card)
    app.router.add_get(f"{p}/cards", _get_cards)
    app.router.add_get(f"{p}/cards/{{id}}", _get_card)
    app.router.add_post(f"{p}/jobs", _post_job)
    app.router.add_get(f"{p}/jobs", _get_jobs)
    app.router.add_get(f"{p}/jobs/{{id}}", _get_job)
    app.router.add_post(f"{p}/jobs/{{id}}/cancel", _cancel_job)
    _add_campaign_routes(app, services)
    return app
