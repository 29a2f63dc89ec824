"""The campaign routes of the job API, added to D's application by
:func:`add_campaign_routes`; JSON in and out, errors as ``{"error": message, "status": code}`` like the rest.

- ``POST /api/v1/inventory`` ``{"format"?: "csv"|"json", "data": text}`` (or the file itself with Content-Type
  ``text/csv`` / ``application/json`` + ``?raw=1``) -> 200 ``{"cards": n, "created", "updated", "keysets",
  "card_ids"}``; 400 naming the line and field of a bad row (never a key's value).
- ``POST /api/v1/campaigns`` ``{"name"?, "transport": "scp80"|"scp81"|"scp81+sms", "apdus": [hex, ...],
  "target"?: hex, "cards": [ICCID or PSK identity, ...] | "inventory": {"format"?, "data"}, "settings"?: {...}}``
  -> 201 the campaign (``settings``: :class:`gpchannel.server.campaigns.CampaignSettings`).
- ``GET /api/v1/campaigns`` -> ``{"campaigns": [...]}``, each with its progress counts.
- ``GET /api/v1/campaigns/{id}`` -> the campaign: state, settings, progress ``{"queued", "sent", "done",
  "failed", "cancelled", "total"}``.
- ``GET /api/v1/campaigns/{id}/results?state=&after=&limit=`` -> ``{"results": [{card, job}...], "next_after"}``:
  per card its ICCID / MSISDN, the job's state, reason, attempts and every R-APDU with its SW.
- ``POST /api/v1/campaigns/{id}/cancel`` -> the campaign with ``"cancelled_jobs"``: QUEUED jobs become
  CANCELLED; SENT ones finish (a packet that left cannot be called back).
- ``GET /`` and ``GET /campaigns/{id}?state=&after=`` -> the read-only HTML pages of :mod:`gpchannel.server.web`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from aiohttp import web

from gpchannel.errors import InventoryError, RepositoryError
from gpchannel.server import audit, auth
from gpchannel.server.api_input import path_id, query_int, read_json_object
from gpchannel.server.campaigns import (
    CampaignSettings,
    create_campaign,
    finish_if_done,
    parse_script,
    parse_target,
    resolve_cards,
)
from gpchannel.server.config import ServerServices
from gpchannel.server.inventory import InventoryCard, parse_inventory
from gpchannel.server.inventory_import import import_inventory
from gpchannel.server.repository import JobRecord, JobState, JobTransport
from gpchannel.server.tokens import Scope
from gpchannel.server.web import PAGE_LIMIT, campaign_page, campaigns_page

__all__ = ["add_campaign_routes", "campaign_json", "progress_json"]

_PREFIX = "/api/v1"
_MAX_APDUS = 255
_SERVICES = web.AppKey("campaign_services", ServerServices)


def _fail(status: int, message: str) -> NoReturn:
    body = json.dumps({"error": message, "status": status})
    classes: Mapping[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
    }
    raise classes.get(status, web.HTTPBadRequest)(text=body, content_type="application/json")


def progress_json(progress: Mapping[Any, int]) -> dict[str, int]:
    """Counts per state (every state present) and the total."""
    out = {state.value: int(progress.get(state, 0)) for state in JobState}
    out["total"] = sum(out.values())
    return out


def campaign_json(record: Any, progress: Mapping[Any, int]) -> dict[str, Any]:
    """A campaign as the API shows it."""
    script = getattr(record, "script", ())
    target = getattr(record, "target", b"")
    created, updated = getattr(record, "created_at", None), getattr(record, "updated_at", None)
    transport = getattr(record, "transport", "")
    return {
        "id": record.id,
        "name": record.name,
        "transport": getattr(transport, "value", str(transport)),
        "target": target.hex().upper() if isinstance(target, bytes) else str(target or ""),
        "apdus": [a.hex().upper() if isinstance(a, bytes) else str(a) for a in script],
        "state": str(getattr(record.state, "value", record.state)),
        "settings": dict(getattr(record, "settings", {}) or {}),
        "progress": progress_json(progress),
        "created_at": created.isoformat() if created is not None else None,
        "updated_at": updated.isoformat() if updated is not None else None,
    }


def _job_result(job: JobRecord, card: Any) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "card_id": job.card_id,
        "iccid": getattr(card, "iccid", None),
        "msisdn": getattr(card, "msisdn", None),
        "state": job.state.value,
        "reason": job.reason,
        "attempts": job.attempts,
        "counter": job.counter_used,
        "results": [
            {"command": r.command.hex().upper(), "response": r.response.hex().upper(), "sw": f"{r.sw:04X}"}
            for r in job.results
        ],
        "updated_at": job.updated_at.isoformat(),
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    return await read_json_object(request)


def _state_query(request: web.Request) -> JobState | None:
    """The ``state`` query parameter: None when absent or empty; 400 when not a job state."""
    if not request.query.get("state"):
        return None
    try:
        return JobState(request.query["state"])
    except ValueError:
        _fail(400, "state: queued, sent, done, failed or cancelled")


def _inventory_text(value: object) -> tuple[str, str | None]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        _fail(400, 'inventory: an object {"format"?: "csv"|"json", "data": text}')
    fmt = value.get("format")
    if fmt is not None and fmt not in ("csv", "json"):
        _fail(400, "inventory.format: csv or json")
    return value["data"], fmt


async def _parse(request: web.Request, services: ServerServices, text: str, fmt: str | None) -> list[InventoryCard]:
    """Parse an inventory and check that a restricted token may write every card of it (tagged with its tag in
    the file, or already in the store and staying so) before anything is written."""
    try:
        cards = parse_inventory(text, format=fmt)
    except InventoryError as exc:
        _fail(400, f"inventory: {exc}")
    tag = auth.principal_of(request).cards_tag
    if tag is not None:
        repo = services.repository

        def stored(card: InventoryCard) -> list[Any]:
            found = [repo.card_by_iccid(card.iccid) if card.iccid else None]
            found.append(repo.card_by_identity(card.psk_identity) if card.psk_identity else None)
            return [c for c in found if c is not None]

        def masters(card: InventoryCard) -> list[Any]:
            """The master cards its ``derive:`` keys name: their keys are used too, so they count as touched."""
            refs = [key.derive[1] for ks in card.keysets for key in (ks.kic, ks.kid) if key.derive is not None]
            found = [repo.card_by_iccid(r.upper()) or repo.card_by_identity(r) for r in refs]
            return [c for c in found if c is not None]  # one not found fails the import itself (400)

        existing = await asyncio.to_thread(lambda: [c for card in cards for c in (*stored(card), *masters(card))])
        auth.require_cards(request, existing)
        if any(card.tags is not None and tag not in card.tags for card in cards):
            auth.fail(403, f"the token is limited to cards tagged {tag!r}: every card of the inventory must carry it")
        found = await asyncio.to_thread(lambda: [stored(card) for card in cards])
        if any(card.tags is None for card, records in zip(cards, found, strict=True) if not records):
            auth.fail(403, f"new cards must carry the tag {tag!r} (a tags column)")
        for card, records in zip(cards, found, strict=True):
            auth.tags_to_store(request, card.tags, records)  # 403 when it would change a card's tags
    return cards


def _import_audited(request: web.Request, services: ServerServices, cards: list[InventoryCard]) -> Any:
    """Import (in the caller's atomic block) and audit it."""
    result = import_inventory(services.repository, services.keys, cards)
    audit.append(
        services.repository.atomic_connection(),
        principal=auth.principal_of(request).name,
        action="inventory.import",
        at=services.clock(),
        outcome=f"{len(result.card_ids)} card(s), {result.created} new, {result.keysets} key set(s)",
        card_ids=list(result.card_ids),
    )
    return result


def add_campaign_routes(app: web.Application, services: ServerServices) -> None:
    """Add the campaign and inventory routes (and the HTML page at ``/``) to the API application."""
    app[_SERVICES] = services
    repo = services.repository

    async def post_inventory(request: web.Request) -> web.Response:
        fmt: str | None
        if request.content_type in ("text/csv", "text/plain") or request.query.get("raw"):
            text = (await request.read()).decode("utf-8-sig", errors="replace")
            fmt = "json" if request.content_type == "application/json" else "csv"
        else:
            text, fmt = _inventory_text(await _json_body(request))
        cards = await _parse(request, services, text, fmt)

        def write() -> Any:
            with repo.atomic():
                return _import_audited(request, services, cards)

        try:
            result = await asyncio.to_thread(write)
        except InventoryError as exc:
            _fail(400, f"inventory: {exc}")
        return web.json_response(
            {
                "cards": len(result.card_ids),
                "created": result.created,
                "updated": result.updated,
                "keysets": result.keysets,
                "card_ids": list(result.card_ids),
            }
        )

    async def post_campaign(request: web.Request) -> web.Response:
        body = await _json_body(request)
        known = {"name", "transport", "apdus", "script", "target", "cards", "inventory", "settings"}
        unknown = sorted(set(body) - known)
        if unknown:
            _fail(400, f"unknown field(s): {', '.join(unknown)}")
        try:
            transport = JobTransport(str(body.get("transport", "scp80")))
        except ValueError:
            _fail(400, "transport: scp80, scp81 or scp81+sms")
        apdus = body.get("apdus", body.get("script"))
        if not isinstance(apdus, list) or not all(isinstance(a, str) for a in apdus):
            _fail(400, "apdus: an array of hex C-APDUs")
        if len(apdus) > _MAX_APDUS:
            _fail(400, f"apdus: at most {_MAX_APDUS} commands")
        try:
            script = parse_script(apdus)
            target = parse_target(transport, body.get("target") if isinstance(body.get("target"), str) else None)
            settings = CampaignSettings.from_dict(body.get("settings"))
        except ValueError as exc:
            _fail(400, str(exc))
        if ("cards" in body) == ("inventory" in body):
            _fail(400, 'give "cards" (ICCIDs or PSK identities) or "inventory", not both')
        inventory: list[InventoryCard] | None = None
        if "inventory" in body:
            auth.require(request, Scope.KEYS)
            text, fmt = _inventory_text(body["inventory"])
            inventory = await _parse(request, services, text, fmt)
            card_ids: list[int] = []
            count = len(inventory)
        else:
            cards = body["cards"]
            if not isinstance(cards, list) or not all(isinstance(c, str) for c in cards):
                _fail(400, "cards: an array of ICCIDs or PSK identities")
            try:  # a card outside the caller's card tag is as unknown as one never imported
                card_ids = await asyncio.to_thread(resolve_cards, repo, cards, lambda c: auth.visible(request, c))
            except InventoryError as exc:
                _fail(404 if exc.line is not None else 400, str(exc))
            count = len(card_ids)
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            _fail(400, "name: a string")
        auth.campaign_cards_limit(request, count)
        label = name or f"{transport.value} campaign, {count} card(s)"
        principal, now = auth.principal_of(request).name, services.clock()

        def write() -> int:
            with repo.atomic() as c:
                ids = card_ids if inventory is None else list(_import_audited(request, services, inventory).card_ids)
                campaign_id = create_campaign(
                    repo, name=label, transport=transport, script=script, card_ids=ids, target=target, settings=settings
                )
                audit.append(
                    c,
                    principal=principal,
                    action="campaign.create",
                    at=now,
                    outcome=f"{len(set(ids))} job(s) queued ({transport.value})",
                    card_ids=list(dict.fromkeys(ids)),
                    campaign_id=campaign_id,
                    script_sha256=audit.script_sha256(script),
                )
                return campaign_id

        try:
            with auth.script_budget(request, script, target, count):
                campaign_id = await asyncio.to_thread(write)
        except InventoryError as exc:
            _fail(400, f"inventory: {exc}")
        except ValueError as exc:
            _fail(400, str(exc))
        except RepositoryError as exc:
            _fail(409, str(exc))
        return web.json_response(await _campaign(campaign_id), status=201)

    def _load(campaign_id: int) -> tuple[Any, Mapping[JobState, int]] | None:
        # SCP81 campaigns have no worker to notice their end: a read does, and audits it as the API's doing
        finish_if_done(repo, campaign_id, by="server:api", at=services.clock())
        record = repo.campaign(campaign_id)
        return None if record is None else (record, repo.campaign_progress(campaign_id))

    async def _campaign(campaign_id: int, request: web.Request | None = None) -> dict[str, Any]:
        # the caller's card tag first: _load may write the campaign's end, which a refused request must not do
        if request is not None and not await _may_touch(request, campaign_id):
            _fail(404, f"no campaign {campaign_id}")
        loaded = await asyncio.to_thread(_load, campaign_id)
        if loaded is None:
            _fail(404, f"no campaign {campaign_id}")
        return campaign_json(*loaded)

    async def _visible(request: web.Request, campaign_ids: Sequence[int]) -> set[int]:
        """The campaigns a restricted token may see: those whose every card carries its tag (one query)."""
        principal = auth.principal_of(request)
        if principal.cards_tag is None:
            return set(campaign_ids)
        otas = await asyncio.to_thread(repo.campaign_card_otas, list(campaign_ids))
        return {i for i, docs in otas.items() if docs and all(principal.may_touch(auth.ota_tags(d)) for d in docs)}

    async def _may_touch(request: web.Request, campaign_id: int) -> bool:
        return campaign_id in await _visible(request, [campaign_id])

    def _id(request: web.Request) -> int:
        return path_id(request, "campaign")

    async def get_campaigns(request: web.Request) -> web.Response:
        records = await asyncio.to_thread(repo.campaigns)
        shown = await _visible(request, [r.id for r in records])
        out = []
        for record in records:
            if record.id not in shown:
                continue
            loaded = await asyncio.to_thread(_load, record.id)
            if loaded is not None:
                out.append(campaign_json(*loaded))
        return web.json_response({"campaigns": out})

    async def get_campaign(request: web.Request) -> web.Response:
        return web.json_response(await _campaign(_id(request), request))

    async def get_results(request: web.Request) -> web.Response:
        campaign_id = _id(request)
        await _campaign(campaign_id, request)
        state = _state_query(request)
        after = query_int(request, "after", 0)
        limit = min(10000, query_int(request, "limit", 1000, 1))

        def load() -> list[dict[str, Any]]:
            jobs = repo.jobs(campaign_id=campaign_id, state=state, after_id=after, limit=limit)
            return [_job_result(job, repo.card(job.card_id)) for job in jobs]

        rows = await asyncio.to_thread(load)
        next_after = rows[-1]["job_id"] if len(rows) == limit else None
        return web.json_response({"campaign_id": campaign_id, "results": rows, "next_after": next_after})

    async def cancel(request: web.Request) -> web.Response:
        campaign_id = _id(request)
        await _campaign(campaign_id, request)
        principal, now = auth.principal_of(request).name, services.clock()

        def write() -> int:
            with repo.atomic() as c:
                count = repo.cancel_campaign(campaign_id)
                audit.append(
                    c, principal=principal, action="campaign.cancel", at=now, campaign_id=campaign_id,
                    outcome=f"{count} queued job(s) cancelled",
                )  # fmt: skip
                return count

        count = await asyncio.to_thread(write)
        out = await _campaign(campaign_id)
        out["cancelled_jobs"] = count
        return web.json_response(out)

    async def page(request: web.Request) -> web.Response:
        def load() -> list[tuple[Any, Mapping[Any, int]]]:
            return [(r, repo.campaign_progress(r.id)) for r in repo.campaigns()]

        loaded = await asyncio.to_thread(load)
        shown = await _visible(request, [r[0].id for r in loaded])
        rows = [r for r in loaded if r[0].id in shown]
        return web.Response(text=campaigns_page(rows), content_type="text/html", charset="utf-8")

    async def one_page(request: web.Request) -> web.Response:
        campaign_id = _id(request)
        state = _state_query(request)
        after = query_int(request, "after", 0)
        if not await _may_touch(request, campaign_id):  # before _load, which may write the campaign's end
            _fail(404, f"no campaign {campaign_id}")
        loaded = await asyncio.to_thread(_load, campaign_id)
        if loaded is None:
            _fail(404, f"no campaign {campaign_id}")

        def load() -> list[tuple[JobRecord, Any]]:
            jobs = repo.jobs(campaign_id=campaign_id, state=state, after_id=after, limit=PAGE_LIMIT)
            return [(job, repo.card(job.card_id)) for job in jobs]

        jobs = await asyncio.to_thread(load)
        next_after = jobs[-1][0].id if len(jobs) == PAGE_LIMIT else None
        text = campaign_page(*loaded, jobs, state=None if state is None else state.value, next_after=next_after)
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    p = _PREFIX
    app.router.add_post(f"{p}/inventory", post_inventory)
    app.router.add_post(f"{p}/campaigns", post_campaign)
    app.router.add_get(f"{p}/campaigns", get_campaigns)
    app.router.add_get(f"{p}/campaigns/{{id}}", get_campaign)
    app.router.add_get(f"{p}/campaigns/{{id}}/results", get_results)
    app.router.add_post(f"{p}/campaigns/{{id}}/cancel", cancel)
    app.router.add_get("/", page)
    app.router.add_get("/campaigns/{id}", one_page)
