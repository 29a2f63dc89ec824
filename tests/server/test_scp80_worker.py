"""The SCP80 worker end to end: store -> worker -> SMPP (OtaSmppClient) -> handset bridge -> emulated cards
(the fleet's card cores, their own SCP80 checks) -> PoRs -> results in the store and the API; the cards' replay
check refusing a reused counter (status 02); receipts; expanded and compact scripts; the crash rule."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from gpchannel.server.campaigns import CampaignSettings, ScriptFormat, create_campaign
from gpchannel.server.config import ServerServices
from gpchannel.server.repository import CampaignState, JobState, JobTransport
from gpchannel.server.scp80_worker import ORPHAN_REASON, WorkerSettings
from tests.io.conftest import Serve, pcscd_readers, virtual_reader  # noqa: F401 (fixtures)
from tests.server.campaign_support import (
    READ_SPN,
    RFM_TAR,
    SELECT_SPN,
    UPDATE_SPN,
    Clock,
    bridge_for,
    fleet_services,
    settle,
    worker_on,
)
from tests.server.server_support import running
from tests.smpp.conftest import run

SCRIPT = [bytes.fromhex(SELECT_SPN), bytes.fromhex(UPDATE_SPN), bytes.fromhex(READ_SPN)]


def _final(services: ServerServices, campaign_id: int) -> bool:
    progress = services.repository.campaign_progress(campaign_id)
    return progress[JobState.QUEUED] == 0 and progress[JobState.SENT] == 0


def test_campaign_over_scp80_to_emulated_cards_end_to_end(tmp_path: Path) -> None:
    services, fleet = fleet_services(tmp_path, 4)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    campaign = create_campaign(
        repo, name="spn", transport=JobTransport.SCP80, script=SCRIPT, card_ids=ids, target=bytes.fromhex(RFM_TAR)
    )

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge, worker_on(services, bridge) as worker:
            await settle(worker, lambda: _final(services, campaign))
            assert worker.stats.sent == 4 and worker.stats.pors == 4 and worker.stats.unmatched_pors == 0
            assert worker.stats.receipts == 4  # one DELIVRD receipt per (single-segment) submit_sm
            await worker.tick()  # the campaign is noticed as finished
        # The results through the JSON API of a running server (D's app with G's routes).
        async with running(services) as server, aiohttp.ClientSession(headers=server.headers) as http:
            async with http.get(f"{server.api_url}/api/v1/campaigns/{campaign}") as reply:
                body = await reply.json()
            assert body["state"] == "finished"
            assert body["progress"] == {"queued": 0, "sent": 0, "done": 4, "failed": 0, "cancelled": 0, "total": 4}
            async with http.get(f"{server.api_url}/api/v1/campaigns/{campaign}/results") as reply:
                results = (await reply.json())["results"]
            async with http.get(f"{server.api_url}/") as reply:
                page = await reply.text()
            assert reply.content_type == "text/html" and "spn" in page and "4/4" in page
        assert sorted(r["iccid"] for r in results) == sorted(c.iccid for c in fleet)
        for row in results:
            assert (row["state"], row["reason"], row["counter"]) == ("done", None, 1)
            assert [(r["command"], r["sw"]) for r in row["results"]] == [
                (SELECT_SPN, "9000"),
                (UPDATE_SPN, "9000"),
                (READ_SPN, "9000"),
            ]
            assert row["results"][2]["response"] == "41424344"  # what the UPDATE wrote, read back

    run(scenario(), timeout=120)
    # Each card accepted exactly one packet and holds the counter the server used.
    for card in fleet:
        record = repo.card_by_iccid(card.iccid)
        assert record is not None
        assert fleet.ota_counter(card) == repo.counter(record.id, fleet.settings.kvn) == 1
    assert repo.campaign(campaign).state is CampaignState.FINISHED  # type: ignore[union-attr]


def test_a_reused_counter_is_refused_by_the_card_with_status_02(tmp_path: Path) -> None:
    """The server's counter is set back (a restored backup): the next packet carries a counter the card already
    took, the card's replay check answers PoR 02 and the job fails with that reason, never retried; the second
    campaign after the operator raised the counter goes through."""
    services, fleet = fleet_services(tmp_path, 2)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    tar = bytes.fromhex(RFM_TAR)

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge, worker_on(services, bridge) as worker:
            first = create_campaign(repo, name="a", transport="scp80", script=SCRIPT, card_ids=ids, target=tar)
            await settle(worker, lambda: _final(services, first))
            repo.set_counter(ids[0], fleet.settings.kvn, 0)  # counter 1 will be sent again to card 0
            second = create_campaign(repo, name="b", transport="scp80", script=SCRIPT, card_ids=ids, target=tar)
            await settle(worker, lambda: _final(services, second))
            jobs = {j.card_id: j for j in repo.jobs(campaign_id=second)}
            assert jobs[ids[0]].state is JobState.FAILED
            assert jobs[ids[0]].reason == "PoR status 02 (CNTR_LOW)" and jobs[ids[0]].attempts == 1
            assert jobs[ids[0]].counter_used == 1
            assert jobs[ids[1]].state is JobState.DONE and jobs[ids[1]].counter_used == 2
            repo.set_counter(ids[0], fleet.settings.kvn, 5)
            third = create_campaign(repo, name="c", transport="scp80", script=SCRIPT, card_ids=ids[:1], target=tar)
            await settle(worker, lambda: _final(services, third))
            (job,) = repo.jobs(campaign_id=third)
            assert (job.state, job.counter_used) == (JobState.DONE, 6)

    run(scenario(), timeout=120)
    card0 = next(c for c in fleet if repo.card_by_iccid(c.iccid).id == ids[0])  # type: ignore[union-attr]
    assert fleet.ota_counter(card0) == 6


def test_compact_script_gives_the_last_response(tmp_path: Path) -> None:
    services, fleet = fleet_services(tmp_path, 1)
    repo = services.repository
    (card,) = fleet
    record = repo.card_by_iccid(card.iccid)
    assert record is not None
    settings = CampaignSettings(script_format=ScriptFormat.COMPACT)
    campaign = create_campaign(
        repo,
        name="compact",
        transport=JobTransport.SCP80,
        script=SCRIPT,
        card_ids=[record.id],
        target=bytes.fromhex(RFM_TAR),
        settings=settings,
    )

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge, worker_on(services, bridge) as worker:
            await settle(worker, lambda: _final(services, campaign))

    run(scenario(), timeout=60)
    (job,) = repo.jobs(campaign_id=campaign)
    assert job.state is JobState.DONE
    assert [(r.command.hex().upper(), r.response, r.sw) for r in job.results] == [(READ_SPN, b"ABCD", 0x9000)]


def test_a_command_the_card_refuses_stops_the_script_and_says_so(tmp_path: Path) -> None:
    services, fleet = fleet_services(tmp_path, 1)
    repo = services.repository
    (card,) = fleet
    record = repo.card_by_iccid(card.iccid)
    assert record is not None
    missing = bytes.fromhex("00A4080C047F206FFF")  # no such EF
    campaign = create_campaign(
        repo,
        name="refused",
        transport=JobTransport.SCP80,
        script=[missing, bytes.fromhex(READ_SPN)],
        card_ids=[record.id],
        target=bytes.fromhex(RFM_TAR),
    )

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge, worker_on(services, bridge) as worker:
            await settle(worker, lambda: _final(services, campaign))

    run(scenario(), timeout=60)
    (job,) = repo.jobs(campaign_id=campaign)
    assert job.state is JobState.DONE  # the PoR came (00); the SW tells what the card did
    assert [r.sw for r in job.results] == [0x6A82]
    assert job.reason == "1 of 2 commands executed, last SW 6A82"


def test_crash_rule_fails_an_orphaned_sent_job_without_resending(tmp_path: Path) -> None:
    """Worker A marks a job SENT and dies before the PoR; worker B, after por_timeout + lease, fails it with
    "outcome unknown" (never resent: the counter was used once), and takes A's QUEUED job once its lease ran out."""
    clock = Clock()
    services, fleet = fleet_services(tmp_path, 2, clock)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    settings = CampaignSettings(por_timeout=30)
    campaign = create_campaign(
        repo,
        name="crash",
        transport=JobTransport.SCP80,
        script=SCRIPT,
        card_ids=ids,
        target=bytes.fromhex(RFM_TAR),
        settings=settings,
    )
    claimed = repo.claim_jobs(transports=[JobTransport.SCP80], owner="dead", limit=2, lease_seconds=60, now=clock())
    assert len(claimed) == 2
    repo.mark_sent(claimed[0].id, owner="dead", kvn=1, delivery_id="sms-dead-1", now=clock())

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge, worker_on(services, bridge, WorkerSettings(lease_seconds=60)) as b:
            await b.tick()
            await b.drain(0.1)
            assert b.stats.sent == 0  # the dead worker's lease still runs
            clock.advance(61)  # its lease on the QUEUED job ran out; the SENT one is not old enough yet
            await settle(b, lambda: repo.job(claimed[1].id).state is JobState.DONE)  # type: ignore[union-attr]
            assert repo.job(claimed[0].id).state is JobState.SENT  # type: ignore[union-attr]
            clock.advance(30)  # 91 s > por_timeout 30 + lease 60
            await b.tick()
            orphan = repo.job(claimed[0].id)
            assert orphan is not None and (orphan.state, orphan.reason) == (JobState.FAILED, ORPHAN_REASON)
            assert b.stats.sent == 1

    run(scenario(), timeout=60)
    assert repo.counter(ids[0], 1) == 1 and repo.counter(ids[1], 1) == 1  # each counter used once
    assert _final(services, campaign)


def test_undelivered_sms_is_retried_with_a_new_counter(tmp_path: Path) -> None:
    """A number the SMSC cannot reach (the bridge refuses the submit_sm with ESME_RINVDSTADR): a transient error,
    so the job goes back to the queue due after the backoff, is sent again with a NEW counter, then fails when
    its attempts are used up."""
    clock = Clock()
    services, fleet = fleet_services(tmp_path, 1, clock)
    repo = services.repository
    (card,) = fleet
    record = repo.card_by_iccid(card.iccid)
    assert record is not None
    repo.upsert_card(iccid=card.iccid, psk_identity=card.psk_identity, msisdn="4999999999")
    settings = CampaignSettings(max_attempts=2, backoff_base=10)
    campaign = create_campaign(
        repo, name="lost", transport="scp80", script=SCRIPT, card_ids=[record.id], target=b"", settings=settings
    )

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge, worker_on(services, bridge) as worker:
            await worker.tick()
            (job,) = repo.jobs(campaign_id=campaign)
            assert (job.state, job.attempts) == (JobState.QUEUED, 1)
            assert job.reason is not None and "refused the submit_sm" in job.reason
            assert job.not_before == clock() + timedelta(seconds=10)
            await worker.tick()
            assert worker.stats.claimed == 1  # not due yet
            clock.advance(10)
            await worker.tick()
            (job,) = repo.jobs(campaign_id=campaign)
            assert (job.state, job.attempts) == (JobState.FAILED, 2)
            assert job.reason is not None and job.reason.endswith("after 2 attempt(s)")

    run(scenario(), timeout=60)
    assert repo.counter(record.id, 1) == 2  # two packets built, two counters: none reused


def test_campaign_through_the_api_of_a_server_with_an_smsc(tmp_path: Path) -> None:
    """`gpchannel server --smpp`: the inventory and the campaign go in through the JSON API, the server's own
    SCP80 worker sends through the bridge, the progress and the results come back through the API."""
    from gpchannel.emulator.fleet import generate_fleet, write_inventory
    from tests.server.campaign_support import store

    fleet = generate_fleet(tmp_path / "fleet", 3)
    write_inventory(fleet, tmp_path / "inventory.csv")
    services = store(tmp_path)
    inventory = (tmp_path / "inventory.csv").read_text()

    async def scenario() -> None:
        async with bridge_for(fleet) as bridge:
            smsc = (f"127.0.0.1:{bridge.port}",)
            async with (
                running(services, smpp=smsc, source_addr="4912345") as server,
                aiohttp.ClientSession(headers=server.headers) as http,
            ):
                api = f"{server.api_url}/api/v1"
                body = {
                    "name": "rfm <spn>",
                    "transport": "scp80",
                    "apdus": [SELECT_SPN, UPDATE_SPN, READ_SPN],
                    "target": RFM_TAR,
                    "inventory": {"format": "csv", "data": inventory},
                    "settings": {"rate": 50, "burst": 5},
                }
                async with http.post(f"{api}/campaigns", json=body) as reply:
                    assert reply.status == 201, await reply.text()
                    created = await reply.json()
                assert created["progress"]["total"] == 3 and created["settings"]["rate"] == 50
                for _ in range(600):
                    async with http.get(f"{api}/campaigns/{created['id']}") as reply:
                        state = await reply.json()
                    if state["state"] == "finished":
                        break
                    await asyncio.sleep(0.05)
                assert state["progress"]["done"] == 3, state
                async with http.get(f"{api}/campaigns/{created['id']}/results?state=done") as reply:
                    rows = (await reply.json())["results"]
                assert {r["msisdn"] for r in rows} == {c.msisdn for c in fleet}
                assert all(
                    r["results"][-1] == {"command": READ_SPN, "response": "41424344", "sw": "9000"} for r in rows
                )
                async with http.get(f"{server.api_url}/") as reply:
                    page = await reply.text()
                assert "rfm &lt;spn&gt;" in page and "<spn>" not in page  # escaped

    run(scenario(), timeout=120)


def test_scp81_with_sms_trigger_and_sms_fallback(tmp_path: Path) -> None:
    """scp81+sms: the worker sends each card the SCP80 trigger (81 00 to the ISD's TAR); the card records it
    (PoR 00, 9000). Card A then opens its admin session (E's card agent, PSK-TLS to D's server) and its job is
    done there; card B never calls: after trigger_timeout the script goes by SMS to the ISD instead."""
    from gpchannel.emulator.agent import CardAgent, SessionStatus

    clock = Clock()
    services, fleet = fleet_services(tmp_path, 2, clock)
    repo = services.repository
    card_a, card_b = fleet.cards
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    get_data = bytes.fromhex("80CA006600")
    settings = CampaignSettings(trigger_timeout=30)
    campaign = create_campaign(
        repo, name="ram", transport=JobTransport.SCP81_SMS, script=[get_data], card_ids=ids, settings=settings
    )

    async def scenario() -> None:
        async with (
            bridge_for(fleet) as bridge,
            worker_on(services, bridge) as worker,
            running(services) as server,
        ):
            await worker.tick()
            await worker.drain(0.3)
            assert (worker.stats.triggers, worker.stats.sent, worker.stats.pors) == (2, 0, 2)
            jobs = {j.card_id: j for j in repo.jobs(campaign_id=campaign)}
            assert all(j.state is JobState.QUEUED for j in jobs.values())  # waiting for the sessions
            core = fleet.open_card(card_a)
            agent = CardAgent(core, server=f"127.0.0.1:{server.admin_port}", retries=0)
            summary = await agent.run()
            assert summary.status is SessionStatus.COMPLETED and summary.scripts == 1, summary
            done = repo.jobs(campaign_id=campaign, state=JobState.DONE)
            assert [j.card_id for j in done] == [ids[0]]
            await worker.tick()  # card A's job left the queue: the worker lets it go
            clock.advance(30)
            await worker.tick()  # card B: no session in time -> SMS fallback
            await settle(worker, lambda: _final(services, campaign))
            assert worker.stats.sent == 1
        jobs = {j.card_id: j for j in repo.jobs(campaign_id=campaign)}
        by_session, by_sms = jobs[ids[0]], jobs[ids[1]]
        assert by_session.state is JobState.DONE and not (by_session.delivery_id or "").startswith("sms-")
        assert by_sms.state is JobState.DONE and (by_sms.delivery_id or "").startswith("sms-")
        for job in (by_session, by_sms):
            ((command, response, sw),) = [(r.command, r.response, r.sw) for r in job.results]
            assert (command, sw) == (get_data, 0x9000) and response[:1] == b"\x66"
        # Counters: B took the trigger (1) and the fallback (2); A the trigger only. Each once, in order.
        assert (repo.counter(ids[0], 1), repo.counter(ids[1], 1)) == (1, 2)

    run(scenario(), timeout=120)
    assert fleet.ota_counter(card_b) == 2


@pytest.mark.pcsc
def test_campaign_to_a_card_through_pcscd(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The same path with the card behind pcscd + vpcd (the emulator served on a virtual reader, the bridge
    opening it as a PC/SC reader), the card's keys from an inventory in the example profile's values."""
    serve: Serve = request.getfixturevalue("virtual_reader")  # tests/io's pcscd + vpcd fixtures
    from gpchannel.emulator.app import EmulatedCard, open_card
    from gpchannel.emulator.bridge import HandsetBridge
    from gpchannel.emulator.handset import HandsetCard
    from gpchannel.io.pcsc import PcscTransport
    from gpchannel.server.inventory import parse_inventory
    from gpchannel.server.inventory_import import import_inventory
    from tests.server.campaign_support import store
    from tests.smpp.conftest import CARD_NUMBER, free_port, serving

    profile = Path(__file__).resolve().parents[2] / "examples" / "profiles" / "scp03.toml"
    card, _ = open_card(tmp_path / "state", profile)
    services = store(tmp_path)
    inventory = (
        "iccid,msisdn,kvn,kic,kic_algorithm,kid,kid_algorithm,tar\n"
        f"8988211000000000001,{CARD_NUMBER},1,000102030405060708090A0B0C0D0E0F,aes-cbc,"
        "101112131415161718191A1B1C1D1E1F,aes-cmac,B00001\n"
    )
    (card_id,) = import_inventory(services.repository, services.keys, parse_inventory(inventory)).card_ids
    campaign = create_campaign(services.repository, name="pcsc", transport="scp80", script=SCRIPT, card_ids=[card_id])
    with serve(EmulatedCard(card)) as reader:
        transport = PcscTransport(reader.name)
        try:

            async def scenario() -> None:
                bridge = HandsetBridge(HandsetCard(transport), port=free_port())
                async with serving(bridge), worker_on(services, bridge) as worker:
                    await settle(worker, lambda: _final(services, campaign), wait=0.2)

            run(scenario(), timeout=90)
        finally:
            transport.close()
    (job,) = services.repository.jobs(campaign_id=campaign)
    assert (job.state, job.counter_used) == (JobState.DONE, 1)
    assert [(r.sw, r.response) for r in job.results] == [(0x9000, b""), (0x9000, b""), (0x9000, b"ABCD")]


def test_no_smsc_uses_no_attempt_and_no_counter(tmp_path: Path) -> None:
    """While the SMSC cannot be reached nothing is marked sent (no attempt, no counter used); binds are tried
    once per reconnect_seconds; once the SMSC is there the campaign runs."""
    from gpchannel.server.scp80_worker import Scp80Worker, SmsLink
    from gpchannel.smpp import OtaSmppClient
    from tests.smpp.conftest import OTA_SERVER, free_port

    clock = Clock()
    services, fleet = fleet_services(tmp_path, 2, clock)
    repo = services.repository
    ids = [c.id for c in (repo.card_by_iccid(card.iccid) for card in fleet) if c is not None]
    campaign = create_campaign(repo, name="late", transport="scp80", script=SCRIPT, card_ids=ids, target=b"")
    port = free_port()
    binds: list[int] = []

    async def connect() -> SmsLink:
        binds.append(1)
        return await OtaSmppClient.connect("127.0.0.1", port, "w", "secret", source_addr=OTA_SERVER, timeout=2)

    async def scenario() -> None:
        worker = Scp80Worker(services, None, owner="w", settings=WorkerSettings(reconnect_seconds=5), connect=connect)
        for _ in range(3):
            await worker.tick()
        assert len(binds) == 1 and worker.held() == 2
        assert all((j.state, j.attempts, j.counter_used) == (JobState.QUEUED, 0, None) for j in repo.jobs())
        from gpchannel.emulator.bridge import HandsetBridge
        from gpchannel.emulator.fleet_handsets import FleetHandsets

        bridge = HandsetBridge(None, fleet=FleetHandsets(fleet), port=port)
        stop = asyncio.Event()
        await bridge.start()
        serving = asyncio.create_task(bridge.serve(stop))
        try:
            clock.advance(5)
            await settle(worker, lambda: _final(services, campaign))
        finally:
            stop.set()
            await serving
            if worker.link is not None:
                await worker.link.close()
        assert len(binds) == 2

    run(scenario(), timeout=60)
    assert {j.state for j in repo.jobs(campaign_id=campaign)} == {JobState.DONE}
    assert [repo.counter(i, 1) for i in ids] == [1, 1]
