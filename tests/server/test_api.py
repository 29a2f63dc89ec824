"""The job API (server/api.py) through aiohttp's test server on 127.0.0.1, over a real SQLite store and the
database key provider: every route, and the error statuses (400 bad JSON / hex / APDU, 404, 405, 409, 413)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gpchannel.server.api import MAX_REQUEST_BYTES, build_api
from gpchannel.server.config import ServerServices
from gpchannel.server.repository import ApduResult, JobState
from tests.server.server_support import admin_token, bearer, make_services

ICCID = "8988211000000000001"
IDENTITY = "card-one"
PSK_HEX = "0102030405060708090A0B0C0D0E0F10"
SELECT = "00A4040008A000000151000000"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServerServices]:
    svc = make_services(f"sqlite:///{tmp_path / 'api.db'}", tmp_path)
    yield svc
    svc.repository.close()


Scenario = Callable[[TestClient[Any, Any]], Awaitable[None]]


def run(services: ServerServices, scenario: Scenario) -> None:
    async def main() -> None:
        headers = bearer(admin_token(services))
        async with TestClient(TestServer(build_api(services), host="127.0.0.1"), headers=headers) as client:
            await scenario(client)

    asyncio.run(main())


async def post(client: TestClient[Any, Any], path: str, body: Any, status: int) -> Any:
    response = await client.post(f"/api/v1{path}", json=body)
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def get(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await client.get(f"/api/v1{path}")
    payload = await response.json()
    assert response.status == status, payload
    return payload


async def add_card(client: TestClient[Any, Any]) -> int:
    card = await post(client, "/cards", {"iccid": ICCID, "psk_identity": IDENTITY, "psk": PSK_HEX}, 201)
    return int(card["id"])


def test_health(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        assert await get(client, "/health") == {"status": "ok"}

    run(services, scenario)


def test_register_card_stores_the_psk_through_the_key_provider(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        card_id = await add_card(client)
        again = await post(client, "/cards", {"iccid": ICCID, "msisdn": "+15550001"}, 200)
        assert again == {"id": card_id, "iccid": ICCID, "psk_identity": IDENTITY, "msisdn": "+15550001"}
        assert await get(client, f"/cards/{card_id}") == again
        assert (await get(client, f"/cards?psk_identity={IDENTITY}"))["cards"] == [again]
        assert (await get(client, "/cards?iccid=8988211000000000009"))["cards"] == []
        await post(client, "/cards", {"psk_identity": "card-two"}, 201)
        listed = await get(client, "/cards?limit=1")
        assert [c["id"] for c in listed["cards"]] == [card_id] and listed["next_after"] == card_id
        rest = await get(client, f"/cards?after={card_id}")
        assert [c["psk_identity"] for c in rest["cards"]] == ["card-two"] and rest["next_after"] is None
        assert "psk" not in json.dumps(again).lower().replace("psk_identity", "")

    run(services, scenario)
    card = services.repository.card_by_iccid(ICCID)
    assert card is not None
    assert services.keys.psk(card) == bytes.fromhex(PSK_HEX)
    stored = services.repository.card_key(card.id, "psk")
    assert stored is not None and bytes.fromhex(PSK_HEX) not in stored[1]  # wrapped, not in the clear


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "give iccid, psk_identity or both"),
        ({"iccid": "12ab"}, "iccid: 10 to 20 decimal digits"),
        ({"psk_identity": "x", "psk": "0g"}, "psk: not an even number of hex digits"),
        ({"iccid": ICCID, "psk": PSK_HEX}, "psk needs psk_identity"),
        ({"psk_identity": "x", "psk": PSK_HEX, "psk_kvn": 300}, "psk_kvn"),
        ({"psk_identity": "x", "colour": "red"}, "unknown field(s): colour"),
    ],
)
def test_register_card_bad_input_is_400(services: ServerServices, body: dict[str, Any], message: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        error = await post(client, "/cards", body, 400)
        assert message in error["error"] and error["status"] == 400
        assert PSK_HEX not in error["error"]

    run(services, scenario)


def test_queue_list_read_and_cancel_jobs(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        card_id = await add_card(client)
        job = await post(client, "/jobs", {"card": {"iccid": ICCID}, "apdus": [SELECT, "80CA 0066 00"]}, 201)
        assert job["state"] == "queued" and job["card_id"] == card_id and job["transport"] == "scp81"
        assert job["apdus"] == [SELECT, "80CA006600"] and job["target"] == "" and job["results"] == []
        second = await post(
            client,
            "/jobs",
            {"card": {"psk_identity": IDENTITY}, "apdus": [SELECT], "target": "A0000000871002FF49FF0589"},
            201,
        )
        assert second["target"] == "A0000000871002FF49FF0589"
        assert [j["id"] for j in (await get(client, "/jobs"))["jobs"]] == [job["id"], second["id"]]
        assert [j["id"] for j in (await get(client, f"/jobs?card={card_id}&limit=1"))["jobs"]] == [job["id"]]
        page = await get(client, f"/jobs?iccid={ICCID}&after={job['id']}")
        assert [j["id"] for j in page["jobs"]] == [second["id"]] and page["next_after"] is None
        assert (await get(client, "/jobs?state=done"))["jobs"] == []
        assert (await get(client, f"/jobs/{job['id']}"))["id"] == job["id"]
        cancelled = await post(client, f"/jobs/{second['id']}/cancel", None, 200)
        assert cancelled["state"] == "cancelled"
        error = await post(client, f"/jobs/{second['id']}/cancel", None, 200)  # cancelling twice is harmless
        assert error["state"] == "cancelled"

    run(services, scenario)


def test_results_with_status_words_and_409_on_sent_or_final(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        card_id = await add_card(client)
        job = await post(client, "/jobs", {"card": {"id": card_id}, "apdus": [SELECT, "80CA006600"]}, 201)
        repo = services.repository
        sent = await asyncio.to_thread(repo.deliver_next_job, card_id, owner="t", now=datetime.now(UTC))
        assert sent is not None and sent.delivery_id is not None
        error = await post(client, f"/jobs/{job['id']}/cancel", None, 409)
        assert "sent" in error["error"]
        results = [
            ApduResult(bytes.fromhex(SELECT), b"\x6f\x00", 0x9000),
            ApduResult(b"\x80\xca\x00\x66\x00", b"", 0x6A88),
        ]
        await asyncio.to_thread(repo.complete_job, sent.delivery_id, results, state=JobState.DONE)
        done = await get(client, f"/jobs/{job['id']}")
        assert done["state"] == "done" and done["reason"] is None
        assert done["results"] == [
            {"command": SELECT, "response": "6F00", "sw": "9000"},
            {"command": "80CA006600", "response": "", "sw": "6A88"},
        ]
        error = await post(client, f"/jobs/{job['id']}/cancel", None, 409)
        assert "final" in error["error"]

    run(services, scenario)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"card": {"iccid": ICCID}, "apdus": []}, 400, "apdus: a non-empty list"),
        ({"card": {"iccid": ICCID}, "apdus": ["00A4"]}, 400, "apdus[0]: not a C-APDU"),
        ({"card": {"iccid": ICCID}, "apdus": ["00A40400FF00"]}, 400, "apdus[0]: not a C-APDU"),
        ({"card": {"iccid": ICCID}, "apdus": ["zz"]}, 400, "apdus[0]: not an even number of hex digits"),
        ({"card": {"iccid": ICCID}, "apdus": [SELECT] * 256}, 400, "at most 255"),
        ({"card": {"iccid": ICCID}, "apdus": [SELECT], "target": "A000"}, 400, "target: an AID of 5 to 16 bytes"),
        ({"card": {"iccid": ICCID}, "apdus": [SELECT], "transport": "pigeon"}, 400, "transport: one of"),
        ({"card": {"colour": "red"}, "apdus": [SELECT]}, 400, "card: an object with one of"),
        ({"apdus": [SELECT]}, 400, "card: required"),
        ({"card": {"iccid": "8988211000000000009"}, "apdus": [SELECT]}, 404, "no card with iccid"),
        ({"card": {"id": 999}, "apdus": [SELECT]}, 404, "no card with id 999"),
    ],
)
def test_queue_job_bad_input(services: ServerServices, body: dict[str, Any], status: int, message: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await add_card(client)
        error = await post(client, "/jobs", body, status)
        assert message in error["error"], error

    run(services, scenario)
    assert services.repository.jobs() == []


def test_protocol_level_errors_are_json(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/api/v1/jobs", data=b"{not json", headers={"Content-Type": "application/json"})
        assert response.status == 400 and "not valid JSON" in (await response.json())["error"]
        response = await client.post("/api/v1/jobs", data=b"[1, 2]")
        assert response.status == 400 and (await response.json())["error"] == "the body must be a JSON object"
        assert (await get(client, "/jobs/12345", 404))["error"] == "no job 12345"
        assert (await get(client, "/jobs/abc", 404))["status"] == 404
        assert (await get(client, "/cards/77", 404))["error"] == "no card 77"
        assert (await get(client, "/nowhere", 404))["status"] == 404
        assert (await get(client, "/jobs?state=lost", 400))["error"].startswith("state: one of")
        assert (await get(client, "/jobs?limit=x", 400))["error"].startswith("limit:")
        response = await client.delete("/api/v1/jobs")
        assert response.status == 405 and (await response.json())["status"] == 405
        assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
        response = await client.post(f"/api/v1/jobs/{12345}/cancel")
        assert response.status == 404
        response = await client.post("/api/v1/jobs", data=b"x" * (MAX_REQUEST_BYTES + 1))
        assert response.status == 413 and (await response.json())["status"] == 413

    run(services, scenario)


def test_identity_and_iccid_of_two_cards_is_409(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await add_card(client)
        await post(client, "/cards", {"iccid": "8988211000000000002", "psk_identity": "card-two"}, 201)
        error = await post(client, "/cards", {"iccid": "8988211000000000002", "psk_identity": IDENTITY}, 409)
        assert "two cards" in error["error"]

    run(services, scenario)


def test_other_psk_key_version(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        body = {"psk_identity": "kvn-card", "psk": os.urandom(32).hex(), "psk_kvn": 0x40}
        await post(client, "/cards", body, 201)

    run(services, scenario)
    card = services.repository.card_by_identity("kvn-card")
    assert card is not None and services.repository.card_key(card.id, "psk", 0x40) is not None


def test_store_failure_is_a_json_500(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        with services.repository.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE jobs")
        error = await get(client, "/jobs", 500)
        assert error == {"error": "the server failed: RepositoryError", "status": 500}

    run(services, scenario)
