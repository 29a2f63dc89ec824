"""Campaigns (server/campaigns.py): settings, the per-card state machine, backoff, the token bucket; and the state
machine driven for real with an injected clock: the SCP80 worker against the handset bridge in sink mode (the
SMSC accepts and receipts, no card answers: no PoR ever comes), so retries, backoff, give-up, cancel and the rate
limit are seen in the store, step by step."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from gpchannel.errors import InventoryError, LocalProtocolError
from gpchannel.server.campaigns import (
    TRANSITIONS,
    CampaignSettings,
    JobEvent,
    ScriptFormat,
    TokenBucket,
    create_campaign,
    next_state,
    parse_script,
    parse_target,
    resolve_cards,
    retry_at,
)
from gpchannel.server.repository import CampaignState, JobState, JobTransport
from gpchannel.server.scp80_worker import WorkerSettings
from tests.server.campaign_support import RFM_TAR, SELECT_SPN, Clock, bridge_for, fleet_services, worker_on
from tests.server.server_support import running
from tests.smpp.conftest import run

SCRIPT = [bytes.fromhex(SELECT_SPN)]


# --------------------------------------------------------------------------------------------- pure parts


def test_settings_round_trip_and_validation() -> None:
    settings = CampaignSettings(rate=2.5, max_attempts=1, script_format=ScriptFormat.COMPACT, spi="1639", kvn=2)
    assert CampaignSettings.from_dict(settings.to_dict()) == settings
    assert CampaignSettings.from_dict(None) == CampaignSettings()
    assert CampaignSettings.from_dict({"rate": 1}, defaults=settings).kvn == 2
    cases: list[tuple[dict[str, object], str]] = [
        ({"rate": 0}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"burst": 0}, "burst"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"por_timeout": 0}, "timeouts"),
        ({"kvn": 16}, "kvn"),
        ({"spi": "FF00"}, "reserved"),
        ({"fallback_tar": "00"}, "fallback_tar"),
        ({"script_format": "xml"}, "xml"),
        ({"colour": "red"}, "unknown setting"),
        ({"burst": True}, "burst"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=words):
            CampaignSettings.from_dict(bad)


def test_backoff_and_retry_at() -> None:
    settings = CampaignSettings(max_attempts=4, backoff_base=30, backoff_factor=2, backoff_max=100)
    assert [settings.backoff(n) for n in range(5)] == [0.0, 30.0, 60.0, 100.0, 100.0]
    clock = Clock()
    assert retry_at(settings, 1, clock()) == clock() + timedelta(seconds=30)
    assert retry_at(settings, 3, clock()) == clock() + timedelta(seconds=100)
    assert retry_at(settings, 4, clock()) is None  # the 4th send was the last
    assert retry_at(CampaignSettings(max_attempts=1), 1, clock()) is None
    assert CampaignSettings(backoff_factor=1e308, backoff_max=7).backoff(5) == 7


def test_state_machine_table() -> None:
    assert next_state(JobState.QUEUED, JobEvent.SEND) == "sent"
    assert next_state("sent", JobEvent.RETRY) == "queued"
    assert next_state(JobState.SENT, JobEvent.DONE) == "done"
    assert next_state(JobState.SENT, JobEvent.GIVE_UP) == "failed"
    assert next_state(JobState.QUEUED, JobEvent.CANCEL) == "cancelled"
    for final in ("done", "failed", "cancelled"):
        for event in JobEvent:
            with pytest.raises(LocalProtocolError):
                next_state(final, event)
    with pytest.raises(LocalProtocolError, match="sent cannot take the event cancel"):
        next_state(JobState.SENT, JobEvent.CANCEL)  # a packet that left cannot be called back
    assert {state for state, _ in TRANSITIONS} == {"queued", "sent"}


def test_token_bucket_with_an_injected_clock() -> None:
    now = [100.0]
    bucket = TokenBucket(2.0, 3, lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # nothing spent
    now[0] += 0.5
    assert bucket.take() == 0.0 and bucket.take() == pytest.approx(0.5)
    now[0] += 60
    assert bucket.available() == 3.0  # never more than the burst
    now[0] -= 30  # a clock going back refills nothing and breaks nothing
    assert bucket.available() == 3.0
    with pytest.raises(ValueError):
        TokenBucket(0, 1, lambda: 0.0)


def test_script_target_and_card_parsing(tmp_path: Path) -> None:
    assert parse_script(["00A4 080C 047F206F46", bytes.fromhex("00B0000004")])[0] == bytes.fromhex(SELECT_SPN)
    for bad in ([], ["zz"], ["00A4"]):
        with pytest.raises(ValueError):
            parse_script(bad)
    assert parse_target("scp80", "b00001") == bytes.fromhex("B00001") and parse_target("scp80", None) == b""
    assert parse_target(JobTransport.SCP81, "A000000151000000") == bytes.fromhex("A000000151000000")
    with pytest.raises(ValueError, match="3-byte TAR"):
        parse_target("scp80", "A000000151000000")
    with pytest.raises(ValueError, match="AID"):
        parse_target("scp81", "B00001")
    services, fleet = fleet_services(tmp_path, 2)
    repo = services.repository
    first, second = fleet.cards
    ids = resolve_cards(repo, [first.iccid, second.psk_identity, first.iccid])
    assert len(ids) == 2  # a card once
    with pytest.raises(InventoryError, match="line 2, cards: unknown card"):
        resolve_cards(repo, [first.iccid, "nobody"])
    with pytest.raises(ValueError, match="fallback_tar"):
        create_campaign(
            repo, name="x", transport="scp81+sms", script=SCRIPT, card_ids=ids, target=bytes.fromhex("A0000001515350")
        )


# --------------------------------------------------------------------------------------------- driven for real


def test_no_por_retries_with_backoff_then_gives_up(tmp_path: Path) -> None:
    clock = Clock()
    services, fleet = fleet_services(tmp_path, 1, clock)
    repo = services.repository
    (card,) = [repo.card_by_iccid(c.iccid) for c in fleet]
    assert card is not None
    settings = CampaignSettings(max_attempts=3, por_timeout=60, backoff_base=30, backoff_factor=2)
    campaign = create_campaign(
        repo, name="r", transport="scp80", script=SCRIPT, card_ids=[card.id], target=bytes.fromhex(RFM_TAR),
        settings=settings,
    )  # fmt: skip

    def job() -> tuple[JobState, int, int | None]:
        (record,) = repo.jobs(campaign_id=campaign)
        return record.state, record.attempts, record.counter_used

    async def scenario() -> None:
        async with bridge_for(None) as sink, worker_on(services, sink) as worker:
            await worker.tick()
            await worker.drain(0.2)
            assert job() == (JobState.SENT, 0, 1) and worker.stats.receipts == 1  # DELIVRD, but no PoR
            (record,) = repo.jobs(campaign_id=campaign)
            assert record.reason == "SMS delivered (receipt 00000001), waiting for the PoR"  # the receipt, recorded
            clock.advance(59)
            await worker.tick()
            assert job()[0] is JobState.SENT
            clock.advance(1)  # the PoR timeout
            await worker.tick()
            assert job() == (JobState.QUEUED, 1, None)
            (record,) = repo.jobs(campaign_id=campaign)
            assert (
                record.not_before == clock() + timedelta(seconds=30)
                and record.reason == "no PoR within 60 s (the SMS was delivered)"
            )
            clock.advance(29)
            await worker.tick()
            assert job() == (JobState.QUEUED, 1, None)  # backoff not over
            clock.advance(1)
            await worker.tick()
            assert job() == (JobState.SENT, 1, 2)  # a NEW counter
            clock.advance(60)
            await worker.tick()
            assert job() == (JobState.QUEUED, 2, None)
            clock.advance(60)  # second backoff: 30 * 2
            await worker.tick()
            assert job() == (JobState.SENT, 2, 3)
            clock.advance(60)
            await worker.tick()
            assert job() == (JobState.FAILED, 3, 3)
            (record,) = repo.jobs(campaign_id=campaign)
            assert record.reason == "no PoR within 60 s after 3 attempt(s)"
            assert sink.stats.accepted == 3 and worker.stats.retried == 2
        assert repo.campaign(campaign).state is CampaignState.FINISHED  # type: ignore[union-attr]

    run(scenario(), timeout=60)
    assert repo.counter(card.id, 1) == 3


def test_rate_limit_per_campaign(tmp_path: Path) -> None:
    clock = Clock()
    services, fleet = fleet_services(tmp_path, 6, clock)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    settings = CampaignSettings(rate=2, burst=2, por_timeout=3600)
    create_campaign(repo, name="slow", transport="scp80", script=SCRIPT, card_ids=ids, target=b"", settings=settings)

    async def scenario() -> None:
        async with bridge_for(None) as sink, worker_on(services, sink) as worker:
            sent = []
            for _ in range(4):
                await worker.tick()
                await worker.tick()  # a second round at the same instant sends nothing more
                sent.append(worker.stats.sent)
                clock.advance(0.5)  # one more token
            assert sent == [2, 3, 4, 5]
            assert worker.held() == 6  # all claimed; the rest wait for tokens under a renewed lease
            clock.advance(0.5)
            await worker.tick()
            assert worker.stats.sent == 6 and sink.stats.accepted == 6

    run(scenario(), timeout=60)


def test_cancel_stops_what_was_not_sent(tmp_path: Path) -> None:
    clock = Clock()
    services, fleet = fleet_services(tmp_path, 5, clock)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    settings = CampaignSettings(rate=1, burst=2, por_timeout=60, max_attempts=3)
    campaign = create_campaign(
        repo, name="stop", transport="scp80", script=SCRIPT, card_ids=ids, target=b"", settings=settings
    )

    async def scenario() -> None:
        async with bridge_for(None) as sink, worker_on(services, sink, WorkerSettings(lease_seconds=30)) as worker:
            await worker.tick()
            assert worker.stats.sent == 2
            async with running(services) as server, aiohttp.ClientSession(headers=server.headers) as http:
                url = f"{server.api_url}/api/v1/campaigns/{campaign}/cancel"
                async with http.post(url) as reply:
                    body = await reply.json()
            assert (body["state"], body["cancelled_jobs"]) == ("cancelled", 3)
            assert body["progress"] == {"queued": 0, "sent": 2, "done": 0, "failed": 0, "cancelled": 3, "total": 5}
            clock.advance(10)  # a third of the lease: the leases are renewed, the cancelled jobs' are not
            await worker.tick()  # the claimed, unsent jobs lost their lease: nothing more leaves
            assert worker.stats.sent == 2 and worker.held() == 2 and sink.stats.accepted == 2
            clock.advance(60)
            await worker.tick()  # the sent ones time out: not retried, the campaign is cancelled
            progress = repo.campaign_progress(campaign)
            assert (progress[JobState.FAILED], progress[JobState.CANCELLED], progress[JobState.QUEUED]) == (2, 3, 0)
            failed = repo.jobs(campaign_id=campaign, state=JobState.FAILED)
            assert {j.reason for j in failed} == {"no PoR within 60 s (campaign cancelled)"}
            assert worker.stats.sent == 2
        assert repo.campaign(campaign).state is CampaignState.CANCELLED  # type: ignore[union-attr]

    run(scenario(), timeout=60)


def test_api_refuses_bad_campaigns(tmp_path: Path) -> None:
    services, fleet = fleet_services(tmp_path, 1)
    iccid = fleet.cards[0].iccid

    async def scenario() -> None:
        async with running(services) as server, aiohttp.ClientSession(headers=server.headers) as http:
            api = f"{server.api_url}/api/v1"
            cases = [
                ({"apdus": ["00A4"], "cards": [iccid]}, 400, "APDU 1"),
                ({"apdus": [SELECT_SPN], "cards": [iccid], "transport": "fax"}, 400, "transport"),
                ({"apdus": [SELECT_SPN], "cards": [iccid], "target": "A0000001"}, 400, "3-byte TAR"),
                ({"apdus": [SELECT_SPN]}, 400, "not both"),
                ({"apdus": [SELECT_SPN], "cards": ["nobody"]}, 404, "unknown card"),
                ({"apdus": [SELECT_SPN], "cards": [iccid], "settings": {"rate": -1}}, 400, "rate"),
                ({"apdus": [SELECT_SPN], "cards": [iccid], "colour": 1}, 400, "unknown field"),
                ({"apdus": [SELECT_SPN], "inventory": {"data": "iccid,kvn\n89882110000000000019,99\n"}}, 400, "line 2"),
            ]
            for body, status, words in cases:
                async with http.post(f"{api}/campaigns", json=body) as reply:
                    answer = await reply.json()
                assert (reply.status, answer["status"]) == (status, status), (body, answer)
                assert words in answer["error"], (body, answer)
            async with http.post(f"{api}/inventory", data=b"iccid\n12\n", headers={"Content-Type": "text/csv"}) as r:
                assert r.status == 400 and "line 2, iccid" in (await r.json())["error"]
            for path in ("/campaigns/7", "/campaigns/x/results", "/campaigns/7/results"):
                async with http.get(api + path) as reply:
                    assert reply.status == 404
            async with http.post(f"{api}/campaigns/7/cancel") as reply:
                assert reply.status == 404
            async with http.get(f"{server.api_url}/") as reply:
                assert "no campaign yet" in await reply.text()

    run(scenario(), timeout=60)


def test_two_workers_split_a_rate_limited_campaign(tmp_path: Path) -> None:
    """A worker holds at most one batch of claimed, unsent jobs: the rest stay in the queue for the others."""
    clock = Clock()
    services, fleet = fleet_services(tmp_path, 6, clock)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    settings = CampaignSettings(rate=1, burst=1, por_timeout=3600)
    create_campaign(repo, name="split", transport="scp80", script=SCRIPT, card_ids=ids, target=b"", settings=settings)
    small = WorkerSettings(batch=2)

    async def scenario() -> None:
        async with (
            bridge_for(None) as sink,
            worker_on(services, sink, small, owner="w1") as first,
            worker_on(services, sink, small, owner="w2") as second,
        ):
            await first.tick()
            await second.tick()
            assert (first.stats.claimed, first.stats.sent, second.stats.claimed, second.stats.sent) == (2, 1, 2, 1)
            await first.tick()  # no token yet; it holds one unsent job, claims one more (batch 2)
            assert (first.stats.claimed, first.held()) == (3, 3)
            clock.advance(1)
            for worker in (first, second, first, second):
                await worker.tick()
            assert first.stats.sent + second.stats.sent == 4
            assert first.stats.claimed + second.stats.claimed == 6  # every job claimed once: no job sent twice
            assert sink.stats.accepted == 4

    run(scenario(), timeout=60)


def test_cards_that_cannot_be_reached_fail_with_the_reason(tmp_path: Path) -> None:
    from gpchannel.server.inventory import parse_inventory
    from gpchannel.server.inventory_import import import_inventory

    services, _ = fleet_services(tmp_path, 1)
    repo = services.repository
    text = (
        "iccid,msisdn,psk_identity,psk\n"
        "8988211000000000091,,no-number,0102030405060708090A0B0C0D0E0F10\n"
        "8988211000000000092,4915999,no-keys,0102030405060708090A0B0C0D0E0F10\n"
    )
    no_number, no_keys = import_inventory(repo, services.keys, parse_inventory(text)).card_ids
    campaign = create_campaign(
        repo, name="x", transport="scp80", script=SCRIPT, card_ids=[no_number, no_keys], target=b""
    )

    async def scenario() -> None:
        async with bridge_for(None) as sink, worker_on(services, sink) as worker:
            await worker.tick()
            assert sink.stats.accepted == 0

    run(scenario(), timeout=60)
    jobs = {j.card_id: j for j in repo.jobs(campaign_id=campaign)}
    assert jobs[no_number].state is JobState.FAILED and "no MSISDN" in (jobs[no_number].reason or "")
    assert jobs[no_keys].state is JobState.FAILED and "no SCP80 key set 1" in (jobs[no_keys].reason or "")
    assert repo.campaign(campaign).state is CampaignState.FINISHED  # type: ignore[union-attr]
    assert repo.counter(no_keys, 1) is None  # nothing was sent, no counter used


def test_the_end_of_a_campaign_is_audited_once(repo_url: str, tmp_path: Path) -> None:
    """finish_if_done writes FINISHED and its ``campaign.finish`` record in one transaction; a second process that
    notices the same end (here: a second call) writes neither again. The chain still verifies."""
    from datetime import UTC, datetime

    from gpchannel.server import audit
    from gpchannel.server.campaigns import finish_if_done
    from tests.server.server_support import make_services

    services = make_services(repo_url, tmp_path)
    repo = services.repository
    try:
        card = repo.upsert_card(iccid="8988211000000000001", psk_identity="card-1")
        campaign = create_campaign(repo, name="c", transport="scp81", script=SCRIPT, card_ids=[card])
        assert not finish_if_done(repo, campaign, by="server:api", at=datetime.now(UTC))  # its job is queued
        (job,) = repo.jobs(campaign_id=campaign)
        repo.fail_job(job.id, "unreachable")
        for _ in range(2):
            assert finish_if_done(repo, campaign, by="server:api", at=datetime.now(UTC))
        records = [r for r in audit.export(repo.engine) if r["action"] == "campaign.finish"]
        assert len(records) == 1 and records[0]["campaign_id"] == campaign
        assert records[0]["principal"] == "server:api" and "1 failed" in records[0]["outcome"]
        assert repo.campaign(campaign).state is CampaignState.FINISHED  # type: ignore[union-attr]
        assert audit.verify(repo.engine).ok
    finally:
        repo.close()
