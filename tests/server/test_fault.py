"""The fault test of issue 10 (deliverable 5): two worker PROCESSES share one PostgreSQL and run a 1,000-card SCP80
campaign against a fleet of emulated cards behind the handset bridge; one worker is killed with SIGKILL after
about 30 % of the cards were sent. Checked afterwards, from the database AND from the cards themselves:

- every card's job ends in a final state: DONE, or FAILED with a reason (none stays QUEUED or SENT);
- no card ran the script twice: each card's own SCP80 counter (persisted by its card core) and the bridge's count
  of command packets the card accepted are at most 1, and exactly 1 for every DONE job, whose counter it matches;
- no counter value was used twice: counter_used is unique per card and key set, every counter the store handed
  out is the one the card's counter reached, and no card answered a PoR with status 02 (counter low) or any
  other error;
- the surviving worker took over the dead one's leases: the jobs the dead worker had claimed but not sent were
  sent (and completed) by the survivor; the ones it had sent, whose PoR went to its dead SMPP bind, are FAILED
  with the "outcome unknown" reason, never resent (the card may have run them).

Campaign settings: max_attempts 1 (a missing PoR is never retried: the script is treated as not idempotent, see
gpchannel.server.campaigns), a short lease (3 s) so the takeover happens within the test. The workers are
``python -m gpchannel.server.worker`` processes (the same code as ``gpchannel server --worker-only``). The card
count can be lowered for a quick local run with GPCHANNEL_FAULT_CARDS (the default, 1000, is what CI runs).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.bridge_thread import BridgeThread
from gpchannel.emulator.fleet import Fleet, generate_fleet, write_inventory
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.server.campaigns import CampaignSettings, create_campaign
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.inventory import read_inventory
from gpchannel.server.inventory_import import import_inventory
from gpchannel.server.repository import JobRecord, JobState, JobTransport
from gpchannel.server.scp80_worker import ORPHAN_REASON
from gpchannel.server.services import open_services
from tests.smpp.conftest import free_port

pytestmark = pytest.mark.postgres

CARDS = int(os.environ.get("GPCHANNEL_FAULT_CARDS", "1000"))
KILL_AFTER = 0.30
LEASE_SECONDS = 3.0
POR_TIMEOUT = 30.0
RATE = 25.0
"""SMS per second per worker: both workers hold a backlog of claimed jobs (batch 100) when one is killed."""
DEADLINE = 150.0
MASTER_KEY = "5A" * 32
SCRIPT = [bytes.fromhex("80CA004200")]  # GET DATA (IIN) to the ISD: RAM, TAR 000000 (TS 102 226)
KVN = 1


def _worker(url: str, smpp: str, owner: str, data: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "gpchannel.server.worker", "--db", url, "--smpp", smpp, "--owner", owner]
    args += ["--data", str(data), "--lease-seconds", str(LEASE_SECONDS), "--poll-interval", "0.1"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            raise AssertionError("the worker did not start")
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"the worker did not start: {line!r} {err}")


def _all_jobs(services: ServerServices, campaign_id: int) -> list[JobRecord]:
    out: list[JobRecord] = []
    after = 0
    while batch := services.repository.jobs(campaign_id=campaign_id, after_id=after, limit=1000):
        out += batch
        after = batch[-1].id
    return out


@pytest.fixture
def services(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerServices]:
    monkeypatch.setenv("GPCHANNEL_MASTER_KEY", MASTER_KEY)
    opened = open_services(ServerConfig(data_dir=tmp_path, db_url=postgres_url))
    try:
        yield opened
    finally:
        opened.repository.close()


def _import(services: ServerServices, inventory: Path) -> list[int]:
    cards = read_inventory(inventory)
    chunks = [cards[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:  # the import is round-trip bound: a few connections in parallel
        results = list(pool.map(lambda chunk: import_inventory(services.repository, services.keys, chunk), chunks))
    ids = {
        card.iccid: card_id
        for chunk, r in zip(chunks, results, strict=True)
        for card, card_id in zip(chunk, r.card_ids, strict=True)
    }
    return [ids[c.iccid] for c in cards]


def test_sigkill_of_one_of_two_workers_in_the_middle_of_a_campaign(
    services: ServerServices, postgres_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    fleet = generate_fleet(tmp_path / "fleet", CARDS)
    write_inventory(fleet, tmp_path / "inventory.csv")
    card_ids = _import(services, tmp_path / "inventory.csv")
    print(f"\nfault test: {CARDS} cards imported in {time.monotonic() - started:.1f} s")
    assert len(card_ids) == CARDS
    settings = CampaignSettings(rate=RATE, burst=20, max_attempts=1, por_timeout=POR_TIMEOUT)
    campaign = create_campaign(
        services.repository,
        name="fault",
        transport=JobTransport.SCP80,
        script=SCRIPT,
        card_ids=card_ids,
        settings=settings,
    )
    handsets = FleetHandsets(fleet)
    port = free_port()
    env = {**os.environ, "GPCHANNEL_MASTER_KEY": MASTER_KEY}
    smpp = f"127.0.0.1:{port}"
    with BridgeThread(HandsetBridge(None, port=port, fleet=handsets, queue_size=CARDS + 100)):
        a = _worker(postgres_url, smpp, "worker-a", tmp_path, env)
        b = _worker(postgres_url, smpp, "worker-b", tmp_path, env)
        try:
            _wait_ready(a)
            _wait_ready(b)
            held_by_a = _kill_when_sent(services, campaign, a)
            print(f"fault test: worker-a killed at {time.monotonic() - started:.1f} s")
            _wait_final(services, campaign, started)
        finally:
            for proc in (a, b):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            _, err_b = b.communicate(timeout=30)
            a.communicate(timeout=30)
    assert a.returncode == -signal.SIGKILL
    assert b.returncode == 0, err_b
    _check(services, campaign, fleet, handsets, held_by_a)


def _kill_when_sent(services: ServerServices, campaign: int, victim: subprocess.Popen[str]) -> list[JobRecord]:
    """SIGKILL ``victim`` once KILL_AFTER of the cards were sent; the jobs it held then (claimed, not yet sent)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        progress = services.repository.campaign_progress(campaign)
        gone = sum(n for state, n in progress.items() if state is not JobState.QUEUED)
        if gone >= KILL_AFTER * CARDS:
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            # A COMMIT the victim wrote to its socket just before dying is still run by its PostgreSQL backend,
            # a few milliseconds later: let those land before reading what it held. Its leases were renewed at
            # most a third of LEASE_SECONDS ago, so nobody can take them over during this pause.
            time.sleep(LEASE_SECONDS / 6)
            jobs = _all_jobs(services, campaign)
            return [j for j in jobs if j.state is JobState.QUEUED and j.lease_owner == "worker-a"]
        if victim.poll() is not None:
            raise AssertionError(f"worker-a died by itself: {victim.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError("the campaign did not reach the kill point")


def _wait_final(services: ServerServices, campaign: int, started: float) -> None:
    while time.monotonic() - started < DEADLINE:
        progress = services.repository.campaign_progress(campaign)
        if progress.get(JobState.QUEUED, 0) == 0 and progress.get(JobState.SENT, 0) == 0:
            return
        time.sleep(0.25)
    reasons = Counter(j.reason for j in _all_jobs(services, campaign) if j.state is JobState.FAILED)
    raise AssertionError(
        f"jobs still open after {DEADLINE} s: {services.repository.campaign_progress(campaign)}; failed: {reasons}"
    )


def _check(
    services: ServerServices, campaign: int, fleet: Fleet, handsets: FleetHandsets, held_by_a: list[JobRecord]
) -> None:
    repo = services.repository
    jobs = _all_jobs(services, campaign)
    assert len(jobs) == CARDS
    states = Counter(j.state for j in jobs)
    # 1. every job is final, a failure always says why
    assert set(states) <= {JobState.DONE, JobState.FAILED}, states
    assert all(j.reason for j in jobs if j.state is JobState.FAILED)
    by_card = {c.id: c for c in (repo.card(j.card_id) for j in jobs) if c is not None}
    # 2. no card ran the script twice (the cards' own counters and the bridge's count of accepted packets)
    for job in jobs:
        record = by_card[job.card_id]
        card = fleet.by_iccid(record.iccid or "")
        assert card is not None
        ran = handsets.activity[card.iccid].accepted if card.iccid in handsets.activity else 0
        stored = fleet.ota_counter(card)
        assert ran <= 1 and stored <= 1, (job, ran, stored)
        if job.state is JobState.DONE:
            assert (ran, stored, job.counter_used) == (1, 1, 1), job
            assert job.results and job.results[-1].sw == 0x9000
        else:
            assert (job.reason, job.lease_owner) == (ORPHAN_REASON, "worker-a"), job  # sent by the dead worker
    # 3. no counter value used twice: unique per (card, kvn); the store's counter is where the card's is
    used = Counter((j.card_id, j.counter_used) for j in jobs if j.counter_used is not None)
    assert max(used.values()) == 1
    for job in jobs:
        assert repo.counter(job.card_id, KVN) == (1 if job.counter_used is not None else None)
    totals = handsets.totals()
    assert set(totals.statuses) <= {0}, totals.statuses  # no 02 (nor any error) from any card
    assert totals.packets == totals.accepted
    # 4. the survivor took the dead worker's leases over and completed those jobs
    assert held_by_a, "worker-a held no claimed job when it was killed: the takeover was not exercised"
    final = {j.id: j for j in jobs}
    for job in held_by_a:
        assert final[job.id].state is JobState.DONE and final[job.id].lease_owner == "worker-b", final[job.id]
    orphans = [j for j in jobs if j.state is JobState.FAILED]
    print(
        f"\nfault test: {CARDS} cards, {states[JobState.DONE]} done, {len(orphans)} failed (sent by the killed "
        f"worker, outcome unknown), {len(held_by_a)} leases taken over; PoRs {totals.pors}, statuses "
        f"{dict(totals.statuses)}"
    )
