"""What the job API takes from a request (server/api_input.py), through the real API application (jobs, cards,
campaigns and inventory routes) on aiohttp's test server over a SQLite store: ids in other scripts' digits, ids
past the store's integer, deeply nested and oversized bodies and huge numbers are JSON 400/404/413, never a plain
500."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gpchannel.server.api_input import MAX_JSON_DEPTH, MAX_REQUEST_BYTES, json_depth, parse_id
from gpchannel.server.config import ServerServices
from tests.server.test_api import add_card, run
from tests.server.test_api import services as services

WEIRD_IDS = ["\u00b2", "\u0661\u0662", "\u0e51", "\uff11", "1\u00b2", "99999999999999999999", "9223372036854775808"]
"""Superscript two, Arabic-Indic 12, Thai one, fullwidth one (all ``str.isdigit``), two ids past BIGINT."""


async def _error(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    payload = await response.json()
    assert payload["status"] == status
    return str(payload["error"])


def test_parse_id_takes_ascii_digits_within_a_bigint() -> None:
    assert [parse_id(t) for t in ("0", "7", "9223372036854775807")] == [0, 7, (1 << 63) - 1]
    assert [parse_id(t) for t in [*WEIRD_IDS, "", "-1", "+1", " 1", "1_0", "0x10"]] == [None] * 13


def test_json_depth_skips_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}], "c": "\\"]]"}') == 3
    assert json_depth(b"[" * 100 + b"]" * 100) == 100
    assert json_depth(b'"[[["') == 0


@pytest.mark.parametrize("text", WEIRD_IDS)
def test_unicode_digit_and_huge_ids_are_json_404(services: ServerServices, text: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await add_card(client)
        for method, path in [
            ("GET", f"/jobs/{text}"),
            ("POST", f"/jobs/{text}/cancel"),
            ("GET", f"/cards/{text}"),
            ("GET", f"/campaigns/{text}"),
            ("GET", f"/campaigns/{text}/results"),
            ("POST", f"/campaigns/{text}/cancel"),
        ]:
            assert "no such" in await _error(await client.request(method, f"/api/v1{path}"), 404), path

    run(services, scenario)


@pytest.mark.parametrize("text", WEIRD_IDS)
def test_unicode_digit_and_huge_query_integers_are_json_400(services: ServerServices, text: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        for query in ("after", "limit", "card", "campaign"):
            message = await _error(await client.get("/api/v1/jobs", params={query: text}), 400)
            assert message.startswith(f"{query}:")
        assert (await _error(await client.get("/api/v1/cards", params={"after": text}), 400)).startswith("after:")

    run(services, scenario)


def test_card_selector_id_past_the_store_integer_is_404(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        body = {"card": {"id": 1 << 70}, "apdus": ["00A4040008A000000151000000"]}
        assert "no card" in await _error(await client.post("/api/v1/jobs", json=body), 404)

    run(services, scenario)


def _nested(depth: int) -> bytes:
    return b'{"card": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("path", ["/jobs", "/cards", "/campaigns", "/inventory"])
def test_deeply_nested_bodies_are_json_400(services: ServerServices, path: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        headers = {"Content-Type": "application/json"}
        for body in (_nested(MAX_JSON_DEPTH), _nested(100_000), b"[" * (MAX_REQUEST_BYTES - 1), b'{"a":' * 200_000):
            message = await _error(await client.post(f"/api/v1{path}", data=body, headers=headers), 400)
            assert f"nested deeper than {MAX_JSON_DEPTH}" in message, message
        inline = {"data": "[" * 100_000, "format": "json"}
        if path == "/inventory":
            assert "nested too deeply" in await _error(await client.post(f"/api/v1{path}", json=inline), 400)
            raw = await client.post(f"/api/v1{path}?raw=1", data=b"[" * 100_000, headers=headers)
            assert "nested too deeply" in await _error(raw, 400)

    run(services, scenario)


def test_huge_numbers_and_oversized_bodies(services: ServerServices) -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        body = b'{"card": {"id": ' + b"9" * 5000 + b'}, "apdus": []}'
        assert "not valid JSON" in await _error(await client.post("/api/v1/jobs", data=body), 400)
        big = b" " * (MAX_REQUEST_BYTES + 1)
        for path in ("/jobs", "/campaigns"):
            await _error(await client.post(f"/api/v1{path}", data=big), 413)

    run(services, scenario)
