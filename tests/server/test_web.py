"""The campaign pages (server/web.py) through the API application (aiohttp's test server, a real SQLite store):
the page per campaign shows every card's state, attempts, last SW or PoR status and failure reason, filters by
state, pages; the list links to it; the bar gives failures their own colour; everything from the store is escaped;
both pages sit behind the token (Bearer, or Basic with the token as the password)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gpchannel.server.api import build_api
from gpchannel.server.config import ServerServices
from gpchannel.server.repository import JobState
from gpchannel.server.web import campaign_page, campaigns_page
from tests.server.server_support import admin_token, bearer, make_services
from tests.server.web_support import CARDS, NAME, REFUSED_REASON, Fleet, campaign_with_failures


class _Text(HTMLParser):
    """The visible text of a page and its links (a real HTML parser, not a regex over the markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title"):
            self._skip += 1
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href" and v is not None]
        if tag == "script":
            raise AssertionError("the pages need no script")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def parse(page: str) -> _Text:
    parser = _Text()
    parser.feed(page)
    return parser


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[ServerServices, Fleet, str]]:
    services = make_services(f"sqlite:///{tmp_path / 'web.db'}", tmp_path)
    fleet = campaign_with_failures(services)
    yield services, fleet, admin_token(services, scopes=("read",))
    services.repository.close()


def _get(services: ServerServices, path: str, headers: dict[str, str]) -> tuple[int, str, Any]:
    async def call() -> tuple[int, str, Any]:
        async with TestClient(TestServer(build_api(services), host="127.0.0.1")) as client:
            response = await client.get(path, headers=headers)
            return response.status, await response.text(), response.headers

    return asyncio.run(call())


def test_the_campaign_page_shows_every_card_with_its_outcome(world: tuple[ServerServices, Fleet, str]) -> None:
    services, fleet, token = world
    status, page, headers = _get(services, f"/campaigns/{fleet.campaign_id}", bearer(token))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    text = " ".join(parse(page).text)
    for iccid in CARDS:
        assert iccid in text
    assert REFUSED_REASON in text  # the reason as the card's page says it, its <...> shown, not markup
    assert "&lt;security status not satisfied&gt;" in page and "<security" not in page
    assert "6982: security status not satisfied" in text and "9000: success" in text
    assert "PoR 02 (CNTR_LOW)" in text  # a PoR failure has no R-APDU: its status is shown
    assert NAME in text and "&lt;update&gt; &amp;" in page
    rows = re.findall(r'<tr class="(\w+)">', page)
    assert sorted(rows) == sorted(["done", "failed", "failed", "sent", "queued"])
    por_row = page[page.index(CARDS[2]) :].split("</tr>")[0]
    assert '<td class="n">1</td>' in por_row  # its attempt counted


def test_the_state_filter_keeps_the_cards_in_that_state(world: tuple[ServerServices, Fleet, str]) -> None:
    services, fleet, token = world
    status, page, _ = _get(services, f"/campaigns/{fleet.campaign_id}?state=failed", bearer(token))
    assert status == 200
    text = " ".join(parse(page).text)
    assert CARDS[1] in text and CARDS[2] in text
    assert CARDS[0] not in text and CARDS[3] not in text and CARDS[4] not in text
    assert '<a href="/campaigns/1?state=failed" class="current">failed (2)</a>' in page
    status, page, _ = _get(services, f"/campaigns/{fleet.campaign_id}?state=cancelled", bearer(token))
    assert status == 200 and "no card cancelled" in page
    assert _get(services, f"/campaigns/{fleet.campaign_id}?state=<b>", bearer(token))[0] == 400
    assert _get(services, "/campaigns/99", bearer(token))[0] == 404
    assert _get(services, "/campaigns/x", bearer(token))[0] in (400, 404)


def test_the_list_links_each_campaign_and_its_states(world: tuple[ServerServices, Fleet, str]) -> None:
    services, fleet, token = world
    status, page, _ = _get(services, "/", bearer(token))
    assert status == 200
    links = parse(page).links
    assert f"/campaigns/{fleet.campaign_id}" in links
    assert f"/campaigns/{fleet.campaign_id}?state=failed" in links
    assert 'class="s-failed" style="width: 40.00%"' in page and 'class="s-done" style="width: 20.00%"' in page


def test_the_pages_want_the_token_and_a_browser_may_give_it_as_a_password(
    world: tuple[ServerServices, Fleet, str],
) -> None:
    services, fleet, token = world
    status, _, headers = _get(services, f"/campaigns/{fleet.campaign_id}", {})
    assert status == 401 and 'Basic realm="gpchannel"' in headers.getall("WWW-Authenticate")
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()
    assert _get(services, f"/campaigns/{fleet.campaign_id}", {"Authorization": f"Basic {basic}"})[0] == 200
    wrong = base64.b64encode(b"anyone:gpc1_nope").decode()
    assert _get(services, f"/campaigns/{fleet.campaign_id}", {"Authorization": f"Basic {wrong}"})[0] == 401


def _record(**kw: Any) -> SimpleNamespace:
    fields = {"id": 7, "name": "c", "transport": "scp80", "state": "done", "script": (b"\x00\xa4",), "target": b""}
    return SimpleNamespace(**(fields | kw))


def _job(job_id: int, state: str, **kw: Any) -> SimpleNamespace:
    fields = {"id": job_id, "card_id": job_id, "state": JobState(state), "attempts": 3, "reason": None,
              "results": (), "updated_at": datetime(2026, 12, 7, 3, 41, 30, tzinfo=UTC)}  # fmt: skip
    return SimpleNamespace(**(fields | kw))


def test_a_campaign_whose_cards_all_failed_shows_a_red_bar_not_a_full_one() -> None:
    progress = {JobState.FAILED: 3}
    page = campaigns_page([(_record(), progress)])
    assert 'class="s-failed" style="width: 100.00%"' in page
    assert "s-done" not in page.split("<tbody>")[1].split("</tbody>")[0]
    assert "0/3" not in page and "3/3" in page and "3 failed" in page


def test_every_value_from_the_store_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    card = SimpleNamespace(iccid=evil, psk_identity=None, msisdn=evil)
    jobs = [(_job(1, "failed", reason=evil), card)]
    page = campaign_page(_record(name=evil, transport=evil, state=evil), {JobState.FAILED: 1}, jobs)
    assert "<script" not in page and page.count("&lt;script&gt;") >= 5
    listing = campaigns_page([(_record(name=evil, transport=evil, state=evil), {})])
    assert "<script" not in listing


def test_a_large_campaign_pages_its_cards() -> None:
    jobs = [(_job(n, "done"), None) for n in (1, 2)]
    page = campaign_page(_record(), {JobState.DONE: 4}, jobs, state="done", next_after=2)
    assert '<a href="/campaigns/7?state=done&amp;after=2">next cards</a>' in page
    assert "card 1" in page and "2026-12-07 03:41:30 UTC" in page
    assert "next cards" not in campaign_page(_record(), {JobState.DONE: 2}, jobs)
