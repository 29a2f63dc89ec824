"""Who may call the job API (server/auth.py, server/tokens.py), on SQLite and PostgreSQL, through aiohttp's test
server: every route of the application (the table is built from its route list and checked against
ROUTE_SCOPES) against no token, a malformed, wrong, revoked and expired token, a token without the route's scope
and one limited to another card tag: each refused (401 / 403, JSON; 404 where a card of another tag must look
like no card at all) with the whole database unchanged; and the same route allowed with exactly its scope."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from gpchannel.server import db
from gpchannel.server.api import build_api
from gpchannel.server.auth import ROUTE_SCOPES, route_scope
from gpchannel.server.campaigns import create_campaign
from gpchannel.server.config import ServerServices
from gpchannel.server.repository import JobTransport
from gpchannel.server.tokens import Scope, create_token, revoke_token
from tests.server.server_support import bearer, make_services

ICCID_A, ICCID_B = "8988211000000000001", "8988211000000000002"
SELECT_MF = "00A40004023F00"  # a file-system command: push-rfm is enough when it goes to an RFM target
RFM_TAR = "B00001"  # ETSI TS 101 220 Annex D: B00000-B0FFFF are RFM TARs
RFM_AID = "A0000000090003FFFFFFFF89B0000100"  # an RFM application's AID: bytes 13-15 are its TAR (TS 101 220)
GET_DATA = "80CA006600"  # a GP command: push-ram


@dataclass
class World:
    services: ServerServices
    card_a: int
    card_b: int
    job_a: int
    campaign_a: int
    tokens: dict[str, str]


def _token(services: ServerServices, name: str, scopes: list[str], **kw: Any) -> str:
    return create_token(services.repository, name=name, scopes=scopes, now=datetime.now(UTC), **kw)


@pytest.fixture
def world(repo_url: str, tmp_path: Path) -> Iterator[World]:
    services = make_services(repo_url, tmp_path)
    repo = services.repository
    card_a = repo.upsert_card(iccid=ICCID_A, psk_identity="card-a", ota={"tags": ["team-a"]})
    card_b = repo.upsert_card(iccid=ICCID_B, psk_identity="card-b", ota={"tags": ["team-b"]})
    job_a = repo.add_job(card_id=card_a, transport=JobTransport.SCP81, script=[bytes.fromhex(SELECT_MF)])
    campaign_a = create_campaign(
        repo, name="campaign-of-a", transport="scp81", script=[bytes.fromhex(SELECT_MF)], card_ids=[card_a]
    )
    tokens = {
        "admin": _token(services, "admin", ["admin"]),
        "read-only": _token(services, "read-only", ["read"]),
        "rfm-only": _token(services, "rfm-only", ["push-rfm"]),
        "team-b": _token(services, "team-b", ["admin"], cards_tag="team-b"),
        "team-a": _token(services, "team-a", ["admin"], cards_tag="team-a"),
        "expired": _token(services, "expired", ["admin"], expires_at=datetime.now(UTC) - timedelta(seconds=1)),
        "revoked": _token(services, "revoked", ["admin"]),
    }
    for scope in Scope:
        tokens[f"only-{scope.value}"] = _token(services, f"only-{scope.value}", [scope.value])
    tokens["campaign-rfm"] = _token(services, "campaign-rfm", ["campaign", "push-rfm"])
    assert revoke_token(repo, "revoked", now=datetime.now(UTC))
    yield World(services, card_a, card_b, job_a, campaign_a, tokens)
    repo.close()


# (method, route) -> the request that touches card A's objects: (path, JSON body or None)
Builder = Callable[[World], tuple[str, Any]]
_P = "/api/v1"
INVENTORY_A = f"iccid,psk_identity,tags\n{ICCID_A},card-a,team-a\n"
REQUESTS: dict[tuple[str, str], Builder] = {
    ("GET", f"{_P}/health"): lambda w: (f"{_P}/health", None),
    ("POST", f"{_P}/cards"): lambda w: (f"{_P}/cards", {"iccid": ICCID_A, "msisdn": "4915550001"}),
    ("GET", f"{_P}/cards"): lambda w: (f"{_P}/cards", None),
    ("GET", f"{_P}/cards/{{id}}"): lambda w: (f"{_P}/cards/{w.card_a}", None),
    ("POST", f"{_P}/jobs"): lambda w: (
        f"{_P}/jobs",
        {"card": {"id": w.card_a}, "apdus": [SELECT_MF], "target": RFM_AID},
    ),
    ("GET", f"{_P}/jobs"): lambda w: (f"{_P}/jobs", None),
    ("GET", f"{_P}/jobs/{{id}}"): lambda w: (f"{_P}/jobs/{w.job_a}", None),
    ("POST", f"{_P}/jobs/{{id}}/cancel"): lambda w: (f"{_P}/jobs/{w.job_a}/cancel", None),
    ("POST", f"{_P}/inventory"): lambda w: (f"{_P}/inventory", {"format": "csv", "data": INVENTORY_A}),
    ("POST", f"{_P}/campaigns"): lambda w: (
        f"{_P}/campaigns",
        {"transport": "scp81", "apdus": [SELECT_MF], "cards": [ICCID_A], "target": RFM_AID},
    ),
    ("GET", f"{_P}/campaigns"): lambda w: (f"{_P}/campaigns", None),
    ("GET", f"{_P}/campaigns/{{id}}"): lambda w: (f"{_P}/campaigns/{w.campaign_a}", None),
    ("GET", f"{_P}/campaigns/{{id}}/results"): lambda w: (f"{_P}/campaigns/{w.campaign_a}/results", None),
    ("POST", f"{_P}/campaigns/{{id}}/cancel"): lambda w: (f"{_P}/campaigns/{w.campaign_a}/cancel", None),
    ("GET", "/"): lambda w: ("/", None),
    ("GET", "/campaigns/{id}"): lambda w: (f"/campaigns/{w.campaign_a}", None),
}
LISTS = {("GET", f"{_P}/cards"), ("GET", f"{_P}/jobs"), ("GET", f"{_P}/campaigns"), ("GET", "/")}
"""Routes that touch no particular card: a token of another tag gets them filtered, not refused."""
NO_CARDS = {("GET", f"{_P}/health")}
TAG_WRITES = {("POST", f"{_P}/cards"), ("POST", f"{_P}/inventory")}
"""Routes that write a card named in the body: another tag's card is refused (403); everywhere else it is answered
as a card, job or campaign that does not exist (404), so a restricted token cannot learn what other teams hold."""
ALLOWED = {("POST", f"{_P}/campaigns"): "campaign-rfm"}
"""The token allowed where the route's scope is not enough alone (a campaign's script needs its push scope)."""


def app_routes(services: ServerServices) -> set[tuple[str, str]]:
    """Every (method, route) of the application as built (HEAD folded into GET)."""
    app = build_api(services)
    out = set()
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD":
            out.add((route.method, info))
    return out


def test_the_scope_table_covers_every_route_of_the_application(tmp_path: Path) -> None:
    services = make_services(f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    try:
        routes = app_routes(services)
    finally:
        services.repository.close()
    assert routes == set(ROUTE_SCOPES) == set(REQUESTS), "a route without a scope or without a refusal test"


def snapshot(services: ServerServices) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table."""
    with services.repository.engine.connect() as c:
        return {
            t.name: sorted((tuple(repr(v) for v in r) for r in c.execute(select(t)).all()), key=repr)
            for t in db.metadata.sorted_tables
        }


async def _call(client: TestClient[Any, Any], method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    response = await client.request(method, path, json=body, headers=headers)
    text = await response.text()
    return response.status, text, response.headers


def _wrong_scope_token(scope: Scope) -> str:
    return "only-push-rfm" if scope is Scope.READ else "only-read"


@pytest.mark.parametrize("route", sorted(ROUTE_SCOPES), ids=lambda r: f"{r[0]} {r[1]}")
def test_every_route_refuses_what_it_must_and_allows_its_scope(world: World, route: tuple[str, str]) -> None:
    method, _ = route
    scope = route_scope(*route)
    assert scope is not None
    path, body = REQUESTS[route](world)
    t = world.tokens
    wrong = t["admin"][:-4] + ("AAAA" if not t["admin"].endswith("AAAA") else "BBBB")
    refusals: list[tuple[str, dict[str, str], int]] = [
        ("no token", {}, 401),
        ("malformed", {"Authorization": "Bearer not-a-token"}, 401),
        ("not bearer", {"Authorization": f"Token {t['admin']}"}, 401),
        ("wrong secret", bearer(wrong), 401),
        ("unknown key id", bearer("gpc1_0000000000000000_" + "A" * 43), 401),
        ("revoked", bearer(t["revoked"]), 401),
        ("expired", bearer(t["expired"]), 401),
        ("wrong scope", bearer(t[_wrong_scope_token(scope)]), 403),
    ]
    if route not in LISTS and route not in NO_CARDS:
        refusals.append(("wrong card tag", bearer(t["team-b"]), 403 if route in TAG_WRITES else 404))

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            for case, headers, status in refusals:
                before = await asyncio.to_thread(snapshot, world.services)
                got, text, reply_headers = await _call(client, method, path, body, headers)
                assert got == status, (case, text)
                assert reply_headers["Content-Type"].startswith("application/json"), case
                if status == 401:
                    assert reply_headers["WWW-Authenticate"].startswith("Bearer"), case
                assert await asyncio.to_thread(snapshot, world.services) == before, f"{case} changed the store"
            if route in LISTS:  # filtered: nothing of card A's shows to team B
                got, text, _ = await _call(client, method, path, body, bearer(t["team-b"]))
                assert got == 200 and ICCID_A not in text and "campaign-of-a" not in text, text
                assert f'"card_id": {world.card_a}' not in text
            # allowed with exactly its scope (and with the right card tag)
            exact = ALLOWED.get(route, f"only-{scope.value}")
            for name in (exact, "team-a"):
                got, text, _ = await _call(client, method, path, body, bearer(t[name]))
                assert got not in (401, 403, 429), (name, got, text)
                assert got < 400, (name, got, text)

    asyncio.run(scenario())


def test_push_rfm_cannot_push_a_ram_script(world: World) -> None:
    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            body = {"card": {"id": world.card_a}, "apdus": [SELECT_MF, GET_DATA]}
            before = await asyncio.to_thread(snapshot, world.services)
            got, text, _ = await _call(client, "POST", f"{_P}/jobs", body, bearer(world.tokens["rfm-only"]))
            assert got == 403 and "push-ram" in text
            assert await asyncio.to_thread(snapshot, world.services) == before
            got, _, _ = await _call(client, "POST", f"{_P}/jobs", body, bearer(world.tokens["only-push-ram"]))
            assert got == 201
            campaign = {"transport": "scp81", "apdus": [GET_DATA], "cards": [ICCID_A]}
            got, text, _ = await _call(
                client, "POST", f"{_P}/campaigns", campaign, bearer(world.tokens["only-campaign"])
            )
            assert got == 403 and "push-ram" in text  # a campaign's script needs its push scope too

    asyncio.run(scenario())


def test_tokens_are_not_recoverable_from_the_database_nor_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            for token in world.tokens.values():
                await _call(client, "GET", f"{_P}/health", None, bearer(token))
                await _call(client, "GET", f"{_P}/health", None, bearer(token + "x"))

    asyncio.run(scenario())
    dump = repr(snapshot(world.services))
    for token in world.tokens.values():
        secret = token[len("gpc1_") + 17 :]  # the base64url secret may hold "_" itself
        assert len(secret) == 43
        assert secret not in dump and secret not in caplog.text
        assert secret.encode().hex() not in dump
    with world.services.repository.engine.connect() as c:
        rows = c.execute(select(db.api_tokens.c.salt, db.api_tokens.c.digest)).all()
    assert len({r.salt for r in rows}) == len(rows)  # a salt per token


def test_limits_answer_429_with_retry_after(world: World) -> None:
    services = world.services
    slow = _token(services, "slow", ["read"], limits={"rate": 1})
    few = _token(services, "few", ["push-rfm"], limits={"scripts_per_hour": 1})
    small = _token(services, "small", ["campaign", "push-rfm"], limits={"max_campaign_cards": 1})

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(services), host="127.0.0.1")) as client:
            assert (await _call(client, "GET", f"{_P}/health", None, bearer(slow)))[0] == 200
            got, _, headers = await _call(client, "GET", f"{_P}/health", None, bearer(slow))
            assert got == 429 and int(headers["Retry-After"]) >= 1
            job = {"card": {"id": world.card_a}, "apdus": [SELECT_MF], "target": RFM_AID}
            assert (await _call(client, "POST", f"{_P}/jobs", job, bearer(few)))[0] == 201
            before = await asyncio.to_thread(snapshot, services)
            got, _, headers = await _call(client, "POST", f"{_P}/jobs", job, bearer(few))
            assert got == 429 and 1 <= int(headers["Retry-After"]) <= 3600
            assert await asyncio.to_thread(snapshot, services) == before
            two = {"transport": "scp81", "apdus": [SELECT_MF], "cards": [ICCID_A, ICCID_B]}
            got, text, _ = await _call(client, "POST", f"{_P}/campaigns", two, bearer(small))
            assert got == 403 and "at most 1" in text
            assert await asyncio.to_thread(snapshot, services) == before

    asyncio.run(scenario())


def test_a_page_request_from_a_browser_may_use_basic_auth(world: World) -> None:
    import base64

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            got, _, headers = await _call(client, "GET", "/", None, {})
            assert got == 401 and 'Basic realm="gpchannel"' in headers.getall("WWW-Authenticate")
            basic = base64.b64encode(f"me:{world.tokens['only-read']}".encode()).decode()
            got, text, _ = await _call(client, "GET", "/", None, {"Authorization": f"Basic {basic}"})
            assert got == 200 and "campaign-of-a" in text

    asyncio.run(scenario())


def test_an_unknown_route_needs_a_token_too(world: World) -> None:
    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            assert (await _call(client, "GET", f"{_P}/nothing", None, {}))[0] == 401
            assert (await _call(client, "GET", f"{_P}/nothing", None, bearer(world.tokens["admin"])))[0] == 404

    asyncio.run(scenario())


def test_a_route_missing_from_the_table_is_refused(world: World) -> None:
    app = build_api(world.services)

    async def secret(request: web.Request) -> web.Response:
        return web.json_response({"leaked": True})

    app.router.add_get(f"{_P}/unlisted", secret)

    async def scenario() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            got, text, _ = await _call(client, "GET", f"{_P}/unlisted", None, bearer(world.tokens["admin"]))
            assert got == 403 and "leaked" not in text

    asyncio.run(scenario())


def test_push_rfm_reaches_only_an_rfm_target(world: World) -> None:
    """The same file-system bytes sent to a Security Domain could mean something else there (a lenient card takes
    CLA 00 for GP commands): push-rfm holds only for an RFM TAR (SCP80) or an AID carrying one (SCP81)."""
    rfm = bearer(world.tokens["rfm-only"])
    card = {"id": world.card_a}

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            before = await asyncio.to_thread(snapshot, world.services)
            for refused in (
                {"card": card, "apdus": [SELECT_MF]},  # the ISD
                {"card": card, "apdus": [SELECT_MF], "target": "A000000151000000"},  # an SD's AID
                {"card": card, "apdus": [SELECT_MF], "target": "000000", "transport": "scp80"},  # the ISD's TAR
                {"card": card, "apdus": [SELECT_MF], "target": "B20100", "transport": "scp80"},  # a RAM TAR
                # another RID's AID: its bytes 13-15 are no TAR (TS 101 220 codes TARs in ETSI / 3GPP AIDs only)
                {"card": card, "apdus": [SELECT_MF], "target": "D2760001180002FFFFFFFF89B0000100"},
            ):
                got, text, _ = await _call(client, "POST", f"{_P}/jobs", refused, rfm)
                assert got == 403 and "push-ram" in text, refused
            assert await asyncio.to_thread(snapshot, world.services) == before
            for allowed in (
                {"card": card, "apdus": [SELECT_MF], "target": RFM_TAR, "transport": "scp80"},
                {"card": card, "apdus": [SELECT_MF], "target": RFM_AID},
            ):
                got, text, _ = await _call(client, "POST", f"{_P}/jobs", allowed, rfm)
                assert got == 201, (allowed, text)

    asyncio.run(scenario())


def test_a_restricted_token_cannot_tell_another_teams_card_from_no_card(world: World) -> None:
    """Outside its tag a token gets exactly what a card, job or campaign that does not exist gets."""
    team_a = bearer(world.tokens["team-a"])
    job_b = world.services.repository.add_job(
        card_id=world.card_b, transport=JobTransport.SCP81, script=[bytes.fromhex(SELECT_MF)]
    )
    campaign_b = create_campaign(
        world.services.repository, name="of-b", transport="scp81", script=[bytes.fromhex(SELECT_MF)],
        card_ids=[world.card_b],
    )  # fmt: skip
    missing = 9_999

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:

            async def same(make: Callable[[Any], tuple[str, str, Any]]) -> None:
                method, path, body = make(world.card_b)
                other = await _call(client, method, path.replace("{b}", ""), body, team_a)
                method, path, body = make(missing)
                absent = await _call(client, method, path, body, team_a)
                assert other[0] == absent[0] == 404, (other[1], absent[1])

            await same(lambda c: ("GET", f"{_P}/cards/{c}", None))
            await same(lambda c: ("POST", f"{_P}/jobs", {"card": {"id": c}, "apdus": [SELECT_MF], "target": RFM_AID}))
            await same(lambda c: ("GET", f"{_P}/jobs/{job_b if c == world.card_b else missing}", None))
            await same(lambda c: ("GET", f"{_P}/campaigns/{campaign_b if c == world.card_b else missing}", None))
            await same(lambda c: ("GET", f"/campaigns/{campaign_b if c == world.card_b else missing}", None))
            body = {"transport": "scp81", "apdus": [SELECT_MF], "cards": [ICCID_B], "target": RFM_AID}
            got, text, _ = await _call(client, "POST", f"{_P}/campaigns", body, team_a)
            assert got == 404 and "unknown card" in text
            got, text, _ = await _call(client, "GET", f"{_P}/cards?iccid={ICCID_B}", None, team_a)
            assert got == 200 and ICCID_B not in text

    asyncio.run(scenario())


def test_a_restricted_token_cannot_change_a_cards_tags(world: World) -> None:
    """Adding another team's tag would hand the card over; removing one would take it from that team."""
    repo = world.services.repository
    shared = repo.upsert_card(iccid="8988211000000000003", psk_identity="card-ab", ota={"tags": ["team-a", "team-b"]})
    team_a = bearer(world.tokens["team-a"])

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            before = await asyncio.to_thread(snapshot, world.services)
            for tags in (["team-a"], ["team-a", "team-b", "team-c"], ["team-a", "team-c"]):
                body = {"iccid": "8988211000000000003", "tags": tags}
                got, text, _ = await _call(client, "POST", f"{_P}/cards", body, team_a)
                assert got == 403 and "tags" in text, (tags, text)
            body = {"iccid": ICCID_A, "tags": ["team-a", "team-b"]}
            assert (await _call(client, "POST", f"{_P}/cards", body, team_a))[0] == 403
            new = {"iccid": "8988211000000000004", "tags": ["team-a", "team-b"]}
            assert (await _call(client, "POST", f"{_P}/cards", new, team_a))[0] == 403
            inventory = "iccid,psk_identity,tags\n8988211000000000003,card-ab,team-a\n"
            body = {"format": "csv", "data": inventory}
            assert (await _call(client, "POST", f"{_P}/inventory", body, team_a))[0] == 403
            assert await asyncio.to_thread(snapshot, world.services) == before
            same = {"iccid": "8988211000000000003", "tags": ["team-b", "team-a"], "msisdn": "4915550003"}
            got, text, _ = await _call(client, "POST", f"{_P}/cards", same, team_a)
            assert got == 200, text
            card = await asyncio.to_thread(repo.card, shared)
            assert card is not None and card.ota["tags"] == ["team-a", "team-b"]

    asyncio.run(scenario())


def test_a_failed_write_gives_the_scripts_back(world: World) -> None:
    """The scripts-per-hour budget pays for scripts that leave, not for a request whose write failed."""
    one = _token(world.services, "one", ["campaign", "push-ram"], limits={"scripts_per_hour": 1})

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            bad = {"transport": "scp81+sms", "apdus": [GET_DATA], "cards": [ICCID_A], "target": "A000000151000000"}
            got, text, _ = await _call(client, "POST", f"{_P}/campaigns", bad, bearer(one))
            assert got == 400 and "fallback_tar" in text  # refused inside the write
            good = {"transport": "scp81", "apdus": [GET_DATA], "cards": [ICCID_A]}
            got, text, _ = await _call(client, "POST", f"{_P}/campaigns", good, bearer(one))
            assert got == 201, text
            got, _, _ = await _call(client, "POST", f"{_P}/campaigns", good, bearer(one))
            assert got == 429  # and the budget still counts what did leave

    asyncio.run(scenario())


def test_basic_credentials_open_only_the_pages_never_the_api(world: World) -> None:
    """A browser resends Basic credentials by itself: were they accepted on the API, a hostile page could make it
    POST a job with them (cross-site request forgery). Only GET of the pages takes them."""
    import base64

    basic = {"Authorization": "Basic " + base64.b64encode(f"me:{world.tokens['admin']}".encode()).decode()}
    job = {"card": {"id": world.card_a}, "apdus": [SELECT_MF]}

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            before = await asyncio.to_thread(snapshot, world.services)
            got, _, headers = await _call(client, "POST", f"{_P}/jobs", job, basic)
            assert got == 401 and headers.getall("WWW-Authenticate") == ['Bearer realm="gpchannel"']
            assert (await _call(client, "GET", f"{_P}/jobs", None, basic))[0] == 401
            assert (await _call(client, "POST", f"/campaigns/{world.campaign_a}", None, basic))[0] == 401
            assert await asyncio.to_thread(snapshot, world.services) == before
            assert (await _call(client, "GET", f"/campaigns/{world.campaign_a}", None, basic))[0] == 200

    asyncio.run(scenario())


def test_a_restricted_token_cannot_derive_keys_from_another_teams_master_card(world: World) -> None:
    """A ``derive:`` key uses the master card's keys: the master card counts as touched, so a token of team A
    cannot key a new card of its own from team B's master card."""
    inventory = (
        "iccid,psk_identity,tags,kvn,kic,kic_algorithm,kid,kid_algorithm\n"
        f"8988211000000000099,new-a,team-a,1,derive:emv:{ICCID_B},3des-2key,derive:emv:{ICCID_B},3des-2key\n"
    )
    body = {"format": "csv", "data": inventory}

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(world.services), host="127.0.0.1")) as client:
            before = await asyncio.to_thread(snapshot, world.services)
            got, text, _ = await _call(client, "POST", f"{_P}/inventory", body, bearer(world.tokens["team-a"]))
            assert got == 403 and "team-a" in text, text
            assert await asyncio.to_thread(snapshot, world.services) == before

    asyncio.run(scenario())
