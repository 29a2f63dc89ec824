"""gpchannel.server.repository on SQLite and PostgreSQL (every test runs on both through ``repository``/``repo_url``).

The concurrency tests use real threads and real processes on one database: claims never overlap, OTA counters
are handed out once each, a job is SENT once, an expired lease is taken over and its old owner gets LeaseLost.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gpchannel.errors import LeaseLost, RepositoryError
from gpchannel.server.repository import (
    MAX_OTA_COUNTER,
    ApduResult,
    CampaignState,
    JobState,
    JobTransport,
    Repository,
)

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
APDU = bytes.fromhex("80CA006600")
APDU2 = bytes.fromhex("80F28000024F00")


class FixedClock:
    """The repository's clock for ``updated_at``: set by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def repo(repo_url: str, clock: FixedClock) -> Any:
    r = Repository(repo_url, clock=clock)
    yield r
    r.close()


def _card(repo: Repository, n: int = 1) -> int:
    return repo.upsert_card(iccid=f"894400000000000000{n:02d}", psk_identity=f"card-{n}")


# --- cards ---------------------------------------------------------------------------------------------------------


def test_upsert_card_creates_then_finds_by_either_identifier(repo: Repository) -> None:
    card_id = repo.upsert_card(iccid="8944001", psk_identity="id-1", msisdn="+33600000001", ota={"tar": "b00010"})
    assert repo.upsert_card(iccid="8944001", psk_identity=None) == card_id
    assert repo.upsert_card(iccid=None, psk_identity="id-1") == card_id
    card = repo.card(card_id)
    assert card is not None
    assert (card.iccid, card.psk_identity, card.msisdn, dict(card.ota)) == (
        "8944001",
        "id-1",
        "+33600000001",
        {"tar": "b00010"},
    )
    assert card.created_at == T0
    assert repo.card_by_identity("id-1") == card
    assert repo.card_by_iccid("8944001") == card
    assert repo.card(card_id + 1000) is None
    assert repo.card_by_identity("nobody") is None
    assert repo.card_by_iccid("0") is None


def test_upsert_card_updates_given_fields_only(repo: Repository, clock: FixedClock) -> None:
    card_id = repo.upsert_card(iccid="8944001", psk_identity=None, msisdn="+1", ota={"a": 1})
    clock.now = T0 + timedelta(hours=1)
    assert repo.upsert_card(iccid="8944001", psk_identity="id-new", ota={"b": [1, 2]}) == card_id
    card = repo.card(card_id)
    assert card is not None
    assert (card.psk_identity, card.msisdn, dict(card.ota)) == ("id-new", "+1", {"b": [1, 2]})
    assert (card.created_at, card.updated_at) == (T0, T0 + timedelta(hours=1))


def test_upsert_card_refuses_identifiers_of_two_cards_and_none(repo: Repository) -> None:
    repo.upsert_card(iccid="1", psk_identity="a")
    repo.upsert_card(iccid="2", psk_identity="b")
    with pytest.raises(RepositoryError, match="two cards"):
        repo.upsert_card(iccid="1", psk_identity="b")
    with pytest.raises(RepositoryError, match="ICCID or a PSK identity"):
        repo.upsert_card(iccid=None, psk_identity=None)


def test_cards_paging(repo: Repository) -> None:
    ids = [_card(repo, n) for n in range(5)]
    assert [c.id for c in repo.cards(limit=3)] == ids[:3]
    assert [c.id for c in repo.cards(after_id=ids[2])] == ids[3:]


def test_concurrent_upserts_of_one_card_give_one_id(repo: Repository) -> None:
    ids: list[int] = []
    barrier = threading.Barrier(6)

    def upsert() -> None:
        barrier.wait()
        ids.append(repo.upsert_card(iccid="8944999", psk_identity="same"))

    threads = [threading.Thread(target=upsert) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 6
    assert len(set(ids)) == 1
    assert len(repo.cards()) == 1


# --- keys and counters ---------------------------------------------------------------------------------------------


def test_card_keys_by_version_and_latest(repo: Repository) -> None:
    card_id = _card(repo)
    repo.set_card_key(card_id, "kic", 1, b"wrapped-1", "aes-cbc")
    repo.set_card_key(card_id, "kic", 3, b"wrapped-3", "aes-cbc")
    repo.set_card_key(card_id, "psk", 1, b"\x00\xff" * 20, "psk")
    assert repo.card_key(card_id, "kic", 1) == (1, b"wrapped-1", "aes-cbc")
    assert repo.card_key(card_id, "kic") == (3, b"wrapped-3", "aes-cbc")
    assert repo.card_key(card_id, "psk") == (1, b"\x00\xff" * 20, "psk")
    assert repo.card_key(card_id, "kid") is None
    assert repo.card_key(card_id, "kic", 2) is None
    repo.set_card_key(card_id, "kic", 1, b"rewrapped", "des3-cbc")
    assert repo.card_key(card_id, "kic", 1) == (1, b"rewrapped", "des3-cbc")


@pytest.mark.parametrize(("purpose", "kvn"), [("master", 1), ("kic", -1), ("kic", 256)])
def test_card_key_refuses_bad_purpose_and_version(repo: Repository, purpose: str, kvn: int) -> None:
    card_id = _card(repo)
    with pytest.raises(RepositoryError):
        repo.set_card_key(card_id, purpose, kvn, b"x", "aes")


def test_card_key_of_unknown_card_is_refused(repo: Repository) -> None:
    with pytest.raises(RepositoryError, match="no card"):
        repo.set_card_key(12345, "kic", 1, b"x", "aes")
    with pytest.raises(RepositoryError, match="no card"):
        repo.set_counter(12345, 1, 5)


def test_set_counter_then_mark_sent_continues_from_it(repo: Repository) -> None:
    card_id = _card(repo)
    assert repo.counter(card_id, 1) is None
    repo.set_counter(card_id, 1, 41)
    assert repo.counter(card_id, 1) == 41
    job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU], not_before=T0)
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=1, lease_seconds=60, now=T0)
    assert repo.mark_sent(job_id, owner="w", kvn=1, delivery_id="d-1") == 42
    assert repo.counter(card_id, 1) == 42
    assert repo.counter(card_id, 2) is None


@pytest.mark.parametrize("value", [-1, MAX_OTA_COUNTER + 1])
def test_set_counter_refuses_values_beyond_five_bytes(repo: Repository, value: int) -> None:
    card_id = _card(repo)
    with pytest.raises(RepositoryError, match="5 bytes"):
        repo.set_counter(card_id, 1, value)


# --- jobs ----------------------------------------------------------------------------------------------------------


def test_add_job_round_trip(repo: Repository) -> None:
    card_id = _card(repo)
    job_id = repo.add_job(
        card_id=card_id, transport=JobTransport.SCP81, script=[APDU, APDU2], target=bytes.fromhex("A000000151000000")
    )
    job = repo.job(job_id)
    assert job is not None
    assert (job.card_id, job.campaign_id, job.transport, job.target, job.script) == (
        card_id,
        None,
        JobTransport.SCP81,
        bytes.fromhex("A000000151000000"),
        (APDU, APDU2),
    )
    assert (job.state, job.attempts, job.reason, job.delivery_id, job.counter_used, job.results) == (
        JobState.QUEUED,
        0,
        None,
        None,
        None,
        (),
    )
    assert job.created_at == job.updated_at == job.not_before == T0
    assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
    assert repo.job(job_id + 1000) is None


def test_times_in_other_zones_are_stored_as_utc(repo: Repository) -> None:
    card_id = _card(repo)
    paris = timezone(timedelta(hours=2))
    job_id = repo.add_job(
        card_id=card_id,
        transport=JobTransport.SCP80,
        script=[APDU],
        not_before=datetime(2026, 11, 26, 14, 0, tzinfo=paris),
    )
    job = repo.job(job_id)
    assert job is not None and job.not_before == T0 and job.not_before.tzinfo == UTC
    # Due exactly at 12:00 UTC, whichever zone `now` is given in.
    assert (
        repo.claim_jobs(
            transports=[JobTransport.SCP80],
            owner="w",
            limit=5,
            lease_seconds=5,
            now=datetime(2026, 11, 26, 13, 59, tzinfo=paris),
        )
        == []
    )
    claimed = repo.claim_jobs(
        transports=[JobTransport.SCP80],
        owner="w",
        limit=5,
        lease_seconds=5,
        now=datetime(2026, 11, 26, 14, 0, tzinfo=paris),
    )
    assert [j.id for j in claimed] == [job_id]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"script": []}, "non-empty"),
        ({"script": b"\x80\xca\x00\x66"}, "non-empty"),
        ({"script": [b"\x80\xca\x00"]}, "C-APDU"),
        ({"target": bytes(17)}, "target"),
        ({"not_before": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"card_id": 98765}, "no card"),
    ],
)
def test_add_job_refuses(repo: Repository, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"card_id": _card(repo), "transport": JobTransport.SCP81, "script": [APDU]}
    args.update(kwargs)
    with pytest.raises(RepositoryError, match=match):
        repo.add_job(**args)


def test_jobs_filters_and_paging(repo: Repository) -> None:
    a, b = _card(repo, 1), _card(repo, 2)
    ids = [repo.add_job(card_id=c, transport=JobTransport.SCP81, script=[APDU]) for c in (a, b, a, b, a)]
    assert repo.cancel_job(ids[4])
    assert [j.id for j in repo.jobs()] == ids
    assert [j.id for j in repo.jobs(card_id=a)] == [ids[0], ids[2], ids[4]]
    assert [j.id for j in repo.jobs(card_id=a, state=JobState.QUEUED)] == [ids[0], ids[2]]
    assert [j.id for j in repo.jobs(state=JobState.CANCELLED)] == [ids[4]]
    assert [j.id for j in repo.jobs(after_id=ids[1], limit=2)] == ids[2:4]
    assert repo.jobs(campaign_id=1) == []


def test_deliver_next_job_in_queue_order_with_fresh_delivery_ids(repo: Repository) -> None:
    card_id = _card(repo)
    other = _card(repo, 2)
    first = repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])  # not an SCP81 job
    second = repo.add_job(card_id=card_id, transport=JobTransport.SCP81_SMS, script=[APDU2])
    repo.add_job(card_id=other, transport=JobTransport.SCP81, script=[APDU])
    assert repo.sent_job(card_id) is None
    job = repo.deliver_next_job(card_id, owner="ras-1", now=T0)
    assert job is not None and job.id == first
    assert (job.state, job.lease_owner) == (JobState.SENT, "ras-1")
    assert job.delivery_id is not None and len(job.delivery_id) == 32
    assert repo.sent_job(card_id) == job
    job2 = repo.deliver_next_job(card_id, owner="ras-1", now=T0)
    assert job2 is not None and job2.id == second and job2.delivery_id != job.delivery_id
    assert repo.deliver_next_job(card_id, owner="ras-1", now=T0) is None
    assert repo.job_by_delivery(job.delivery_id) == repo.job(first)


def test_deliver_next_job_waits_for_a_job_not_yet_due_and_keeps_order(repo: Repository) -> None:
    card_id = _card(repo)
    later = repo.add_job(
        card_id=card_id, transport=JobTransport.SCP81, script=[APDU], not_before=T0 + timedelta(minutes=5)
    )
    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU2])
    assert repo.deliver_next_job(card_id, owner="ras", now=T0) is None
    job = repo.deliver_next_job(card_id, owner="ras", now=T0 + timedelta(minutes=5))
    assert job is not None and job.id == later


def test_complete_job_is_idempotent(repo: Repository, clock: FixedClock) -> None:
    card_id = _card(repo)
    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU, APDU2])
    job = repo.deliver_next_job(card_id, owner="ras", now=T0)
    assert job is not None and job.delivery_id is not None
    results = [ApduResult(APDU, bytes.fromhex("9F7F2A"), 0x9000), ApduResult(APDU2, b"", 0x6A88)]
    clock.now = T0 + timedelta(seconds=3)
    done = repo.complete_job(job.delivery_id, results)
    assert done is not None
    assert (done.state, done.results, done.updated_at) == (JobState.DONE, tuple(results), T0 + timedelta(seconds=3))
    clock.now = T0 + timedelta(seconds=9)
    again = repo.complete_job(job.delivery_id, [], state=JobState.FAILED, reason="late duplicate")
    assert again == done
    assert repo.job(job.id) == done
    assert repo.sent_job(card_id) is None
    assert repo.complete_job("no-such-delivery", results) is None


def test_complete_job_as_failed_and_refuses_other_states(repo: Repository) -> None:
    card_id = _card(repo)
    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    job = repo.deliver_next_job(card_id, owner="ras", now=T0)
    assert job is not None and job.delivery_id is not None
    with pytest.raises(RepositoryError, match="done or failed"):
        repo.complete_job(job.delivery_id, [], state=JobState.QUEUED)
    failed = repo.complete_job(job.delivery_id, [], state=JobState.FAILED, reason="security-error")
    assert failed is not None and (failed.state, failed.reason) == (JobState.FAILED, "security-error")


def test_fail_job_with_retry_requeues_and_forgets_the_delivery(repo: Repository) -> None:
    card_id = _card(repo)
    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    job = repo.deliver_next_job(card_id, owner="ras", now=T0)
    assert job is not None and job.delivery_id is not None
    repo.fail_job(job.id, "session broken", retry_at=T0 + timedelta(minutes=1))
    retried = repo.job(job.id)
    assert retried is not None
    assert (retried.state, retried.attempts, retried.reason, retried.delivery_id, retried.lease_owner) == (
        JobState.QUEUED,
        1,
        "session broken",
        None,
        None,
    )
    assert retried.not_before == T0 + timedelta(minutes=1)
    # A late answer to the first attempt completes nothing.
    assert repo.complete_job(job.delivery_id, [ApduResult(APDU, b"", 0x9000)]) is None
    assert repo.deliver_next_job(card_id, owner="ras", now=T0 + timedelta(seconds=59)) is None
    second = repo.deliver_next_job(card_id, owner="ras", now=T0 + timedelta(minutes=1))
    assert second is not None and second.id == job.id and second.delivery_id not in (None, job.delivery_id)


def test_fail_job_without_retry_is_final(repo: Repository) -> None:
    card_id = _card(repo)
    job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])
    repo.fail_job(job_id, "no PoR")
    job = repo.job(job_id)
    assert job is not None and (job.state, job.attempts, job.reason) == (JobState.FAILED, 1, "no PoR")
    repo.fail_job(job_id, "again", retry_at=T0)  # final: unchanged
    assert repo.job(job_id) == job
    with pytest.raises(RepositoryError, match="no job"):
        repo.fail_job(job_id + 100, "x")


def test_cancel_job_only_while_queued(repo: Repository) -> None:
    card_id = _card(repo)
    queued = repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    assert repo.cancel_job(queued)
    job = repo.job(queued)
    assert job is not None and job.state is JobState.CANCELLED
    assert not repo.cancel_job(queued)
    sent_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    sent = repo.deliver_next_job(card_id, owner="ras", now=T0)
    assert sent is not None and sent.id == sent_id
    assert not repo.cancel_job(sent_id)
    assert not repo.cancel_job(sent_id + 100)


# --- workers -------------------------------------------------------------------------------------------------------


def test_claim_jobs_takes_due_unleased_jobs_of_the_transports(repo: Repository) -> None:
    card_id = _card(repo)
    due = [repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU]) for _ in range(3)]
    repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU], not_before=T0 + timedelta(seconds=1))
    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    claimed = repo.claim_jobs(transports=[JobTransport.SCP80], owner="w1", limit=2, lease_seconds=30, now=T0)
    assert [j.id for j in claimed] == due[:2]
    assert all(j.lease_owner == "w1" and j.lease_until == T0 + timedelta(seconds=30) for j in claimed)
    assert all(j.state is JobState.QUEUED for j in claimed)
    rest = repo.claim_jobs(transports=[JobTransport.SCP80], owner="w2", limit=10, lease_seconds=30, now=T0)
    assert [j.id for j in rest] == due[2:]
    assert repo.claim_jobs(transports=[JobTransport.SCP80], owner="w3", limit=10, lease_seconds=30, now=T0) == []
    assert repo.claim_jobs(transports=[JobTransport.SCP80], owner="w3", limit=0, lease_seconds=30, now=T0) == []


def test_expired_lease_is_taken_over_and_the_old_owner_loses_it(repo: Repository) -> None:
    card_id = _card(repo)
    job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])
    assert [
        j.id for j in repo.claim_jobs(transports=[JobTransport.SCP80], owner="dead", limit=5, lease_seconds=10, now=T0)
    ] == [job_id]
    # Still leased at the last instant of the lease, claimable right after.
    assert (
        repo.claim_jobs(
            transports=[JobTransport.SCP80], owner="w2", limit=5, lease_seconds=10, now=T0 + timedelta(seconds=10)
        )
        == []
    )
    taken = repo.claim_jobs(
        transports=[JobTransport.SCP80], owner="w2", limit=5, lease_seconds=10, now=T0 + timedelta(seconds=11)
    )
    assert [(j.id, j.lease_owner) for j in taken] == [(job_id, "w2")]
    with pytest.raises(LeaseLost):
        repo.mark_sent(job_id, owner="dead", kvn=1, delivery_id="d-dead")
    assert repo.counter(card_id, 1) is None  # the loser used no counter
    assert repo.mark_sent(job_id, owner="w2", kvn=1, delivery_id="d-w2") == 1
    job = repo.job(job_id)
    assert job is not None and (job.state, job.counter_used, job.delivery_id) == (JobState.SENT, 1, "d-w2")


def test_mark_sent_twice_or_after_cancel_or_expiry_is_lease_lost(repo: Repository) -> None:
    card_id = _card(repo)
    a, b, c = (repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU]) for _ in range(3))
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=3, lease_seconds=10, now=T0)
    assert repo.mark_sent(a, owner="w", kvn=1, delivery_id="d-a") == 1
    with pytest.raises(LeaseLost):
        repo.mark_sent(a, owner="w", kvn=1, delivery_id="d-a2")
    assert repo.cancel_job(b)
    with pytest.raises(LeaseLost):
        repo.mark_sent(b, owner="w", kvn=1, delivery_id="d-b")
    with pytest.raises(LeaseLost, match="expired"):
        repo.mark_sent(c, owner="w", kvn=1, delivery_id="d-c", now=T0 + timedelta(seconds=11))
    assert repo.mark_sent(c, owner="w", kvn=1, delivery_id="d-c", now=T0 + timedelta(seconds=10)) == 2
    with pytest.raises(RepositoryError, match="no job"):
        repo.mark_sent(c + 100, owner="w", kvn=1, delivery_id="d-x")


def test_mark_sent_counters_per_key_set_and_card(repo: Repository) -> None:
    a, b = _card(repo, 1), _card(repo, 2)
    jobs = [repo.add_job(card_id=c, transport=JobTransport.SCP80, script=[APDU]) for c in (a, a, b, a)]
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=10, lease_seconds=10, now=T0)
    used = [
        repo.mark_sent(j, owner="w", kvn=kvn, delivery_id=f"d{j}") for j, kvn in zip(jobs, (1, 1, 1, 2), strict=True)
    ]
    assert used == [1, 2, 1, 1]


def test_mark_sent_refuses_a_counter_beyond_five_bytes(repo: Repository) -> None:
    card_id = _card(repo)
    repo.set_counter(card_id, 1, MAX_OTA_COUNTER)
    job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=1, lease_seconds=10, now=T0)
    with pytest.raises(RepositoryError):
        repo.mark_sent(job_id, owner="w", kvn=1, delivery_id="d")
    job = repo.job(job_id)
    assert job is not None and job.state is JobState.QUEUED
    assert repo.counter(card_id, 1) == MAX_OTA_COUNTER


def test_mark_sent_refuses_a_delivery_id_used_before(repo: Repository) -> None:
    card_id = _card(repo)
    a, b = (repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU]) for _ in range(2))
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=2, lease_seconds=10, now=T0)
    repo.mark_sent(a, owner="w", kvn=1, delivery_id="same")
    with pytest.raises(RepositoryError):
        repo.mark_sent(b, owner="w", kvn=1, delivery_id="same")
    assert repo.counter(card_id, 1) == 1  # the refused transaction used no counter


def test_renew_lease_keeps_the_job_away_from_others(repo: Repository) -> None:
    card_id = _card(repo)
    mine, theirs = (repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU]) for _ in range(2))
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="me", limit=1, lease_seconds=10, now=T0)
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="them", limit=1, lease_seconds=10, now=T0)
    assert repo.renew_lease([mine, theirs], owner="me", lease_seconds=30, now=T0 + timedelta(seconds=5)) == [mine]
    assert repo.renew_lease([], owner="me", lease_seconds=30, now=T0) == []
    later = T0 + timedelta(seconds=20)
    claimed = repo.claim_jobs(transports=[JobTransport.SCP80], owner="other", limit=5, lease_seconds=10, now=later)
    assert [j.id for j in claimed] == [theirs]
    assert repo.mark_sent(mine, owner="me", kvn=1, delivery_id="d", now=later) == 1


def test_claim_one_per_card_in_queue_order(repo: Repository) -> None:
    x, y = _card(repo, 1), _card(repo, 2)
    x_jobs = [repo.add_job(card_id=x, transport=JobTransport.SCP80, script=[APDU]) for _ in range(3)]
    y_job = repo.add_job(card_id=y, transport=JobTransport.SCP80, script=[APDU])
    repo.add_job(card_id=y, transport=JobTransport.SCP81, script=[APDU])  # another transport: no influence

    def claim(owner: str, at: datetime = T0) -> list[int]:
        got = repo.claim_jobs(
            transports=[JobTransport.SCP80], owner=owner, limit=10, lease_seconds=10, now=at, one_per_card=True
        )
        return [j.id for j in got]

    assert claim("a") == [x_jobs[0], y_job]
    assert claim("b") == []  # x's first job is leased
    assert claim("b", T0 + timedelta(seconds=11)) == [x_jobs[0], y_job]  # leases expired: taken over
    repo.mark_sent(x_jobs[0], owner="b", kvn=1, delivery_id="x0")
    repo.mark_sent(y_job, owner="b", kvn=1, delivery_id="y0")
    repo.complete_job("y0", [ApduResult(APDU, b"", 0x9000)])
    assert claim("c", T0 + timedelta(seconds=20)) == []  # x's first job is SENT
    repo.complete_job("x0", [ApduResult(APDU, b"", 0x9000)])
    assert claim("b", T0 + timedelta(seconds=20)) == [x_jobs[1]]
    repo.fail_job(x_jobs[1], "no PoR", retry_at=T0 + timedelta(minutes=5))
    # The retried job is not due; the card's next job still waits behind it.
    assert claim("c", T0 + timedelta(seconds=40)) == []
    assert claim("c", T0 + timedelta(minutes=5)) == [x_jobs[1]]
    # Without the option, jobs of one card go out together.
    assert [
        j.id
        for j in repo.claim_jobs(
            transports=[JobTransport.SCP80], owner="d", limit=10, lease_seconds=10, now=T0 + timedelta(minutes=5)
        )
    ] == [x_jobs[2]]


def test_next_counter_outside_a_job(repo: Repository) -> None:
    card_id = _card(repo)
    assert [repo.next_counter(card_id, 1) for _ in range(3)] == [1, 2, 3]
    job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=1, lease_seconds=10, now=T0)
    assert repo.mark_sent(job_id, owner="w", kvn=1, delivery_id="d") == 4
    assert repo.next_counter(card_id, 2) == 1
    with pytest.raises(RepositoryError, match="no card"):
        repo.next_counter(card_id + 100, 1)
    repo.set_counter(card_id, 3, MAX_OTA_COUNTER)
    with pytest.raises(RepositoryError):
        repo.next_counter(card_id, 3)
    assert repo.counter(card_id, 3) == MAX_OTA_COUNTER


def test_note_sent_job_only_while_sent(repo: Repository, clock: FixedClock) -> None:
    card_id = _card(repo)
    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
    job = repo.deliver_next_job(card_id, owner="ras", now=T0)
    assert job is not None and job.delivery_id is not None
    clock.now = T0 + timedelta(seconds=5)
    assert repo.note_sent_job(job.delivery_id, "session broke")
    noted = repo.job(job.id)
    assert noted is not None
    assert (noted.state, noted.reason, noted.updated_at) == (JobState.SENT, "session broke", clock.now)
    repo.complete_job(job.delivery_id, [ApduResult(APDU, b"", 0x9000)], reason=None)
    assert not repo.note_sent_job(job.delivery_id, "too late")
    assert not repo.note_sent_job("unknown", "x")
    done = repo.job(job.id)
    assert done is not None and (done.state, done.reason) == (JobState.DONE, None)


# --- campaigns -----------------------------------------------------------------------------------------------------


def test_campaign_jobs_progress_and_cancel(repo: Repository) -> None:
    cards = [_card(repo, n) for n in range(4)]
    campaign_id = repo.create_campaign(
        name="applet update",
        transport=JobTransport.SCP80,
        script=[APDU, APDU2],
        target=bytes.fromhex("B00010"),
        card_ids=[*cards, cards[0]],
        settings={"spi": "1621", "retries": 3},
    )
    campaign = repo.campaign(campaign_id)
    assert campaign is not None
    assert (campaign.name, campaign.transport, campaign.target, campaign.script, dict(campaign.settings)) == (
        "applet update",
        JobTransport.SCP80,
        bytes.fromhex("B00010"),
        (APDU, APDU2),
        {"spi": "1621", "retries": 3},
    )
    assert (campaign.state, campaign.created_at) == (CampaignState.RUNNING, T0)
    assert repo.campaigns() == [campaign]
    jobs = repo.jobs(campaign_id=campaign_id)
    assert sorted(j.card_id for j in jobs) == sorted(cards)
    assert all(j.target == bytes.fromhex("B00010") and j.script == (APDU, APDU2) for j in jobs)
    claimed = repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=1, lease_seconds=10, now=T0)
    repo.mark_sent(claimed[0].id, owner="w", kvn=1, delivery_id="d1")
    assert repo.campaign_progress(campaign_id) == {
        JobState.QUEUED: 3,
        JobState.SENT: 1,
        JobState.DONE: 0,
        JobState.FAILED: 0,
        JobState.CANCELLED: 0,
    }
    assert repo.cancel_campaign(campaign_id) == 3
    progress = repo.campaign_progress(campaign_id)
    assert (progress[JobState.CANCELLED], progress[JobState.SENT], progress[JobState.QUEUED]) == (3, 1, 0)
    cancelled = repo.campaign(campaign_id)
    assert cancelled is not None and cancelled.state is CampaignState.CANCELLED
    assert repo.cancel_campaign(campaign_id) == 0
    assert repo.campaign(campaign_id + 1) is None
    with pytest.raises(RepositoryError, match="no campaign"):
        repo.cancel_campaign(campaign_id + 1)


def test_campaign_with_an_unknown_card_creates_nothing(repo: Repository) -> None:
    card_id = _card(repo)
    with pytest.raises(RepositoryError, match="no card"):
        repo.create_campaign(
            name="x", transport=JobTransport.SCP81, script=[APDU], target=b"", card_ids=[card_id, 4242], settings={}
        )
    assert repo.campaigns() == []
    assert repo.jobs() == []


def test_set_campaign_state(repo: Repository) -> None:
    campaign_id = repo.create_campaign(
        name="x", transport=JobTransport.SCP81, script=[APDU], target=b"", card_ids=[_card(repo)], settings={}
    )
    repo.set_campaign_state(campaign_id, CampaignState.FINISHED)
    campaign = repo.campaign(campaign_id)
    assert campaign is not None and campaign.state is CampaignState.FINISHED
    with pytest.raises(RepositoryError, match="no campaign"):
        repo.set_campaign_state(campaign_id + 1, CampaignState.FINISHED)


# --- opening -------------------------------------------------------------------------------------------------------


def test_two_repositories_share_one_database(repo_url: str) -> None:
    with Repository(repo_url) as first, Repository(repo_url) as second:
        card_id = first.upsert_card(iccid="1", psk_identity="a")
        assert second.card(card_id) == first.card(card_id)


def test_unreachable_database_is_a_repository_error_without_the_password() -> None:
    with pytest.raises(RepositoryError) as info:
        Repository("postgresql+psycopg://user:secret@127.0.0.1:1/none")  # nothing listens on port 1
    assert "secret" not in str(info.value)


def test_repr_hides_the_password(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    with_password = make_url(postgres_url).set(password="secret").render_as_string(hide_password=False)
    with Repository(with_password) as repo:  # the test cluster trusts local connections: any password
        assert "secret" not in repr(repo)
        assert repo.dialect == "postgresql"


def test_in_memory_sqlite_works_across_threads() -> None:
    with Repository("sqlite://") as repo:
        card_id = _card(repo)
        errors: list[BaseException] = []

        def add() -> None:
            try:
                for _ in range(20):
                    repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[APDU])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=add) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(repo.jobs()) == 80


def test_naive_now_is_refused(repo: Repository) -> None:
    naive = datetime(2026, 1, 1)
    with pytest.raises(RepositoryError, match="timezone-aware"):
        repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=1, lease_seconds=1, now=naive)
    with pytest.raises(RepositoryError, match="timezone-aware"):
        repo.deliver_next_job(1, owner="w", now=naive)


# --- concurrency ---------------------------------------------------------------------------------------------------

QUEUE_SIZE = 500


def _fill_queue(repo: Repository, cards: int = 25) -> set[int]:
    card_ids = [_card(repo, n) for n in range(cards)]
    campaign_id = repo.create_campaign(
        name="load",
        transport=JobTransport.SCP80,
        script=[APDU],
        target=bytes.fromhex("B00010"),
        card_ids=card_ids,
        settings={},
    )
    ids = {j.id for j in repo.jobs(campaign_id=campaign_id)}
    for n in range(QUEUE_SIZE - len(ids)):
        ids.add(repo.add_job(card_id=card_ids[n % cards], transport=JobTransport.SCP80, script=[APDU]))
    assert len(ids) == QUEUE_SIZE
    return ids


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            barrier.wait()
            target(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _claim_one(repo: Repository, owner: str, batch: int) -> list[int]:
    claimed = repo.claim_jobs(
        transports=[JobTransport.SCP80], owner=owner, limit=batch, lease_seconds=600, now=T0 + timedelta(seconds=1)
    )
    return [j.id for j in claimed]


def _claim_all(repo: Repository, owner: str, batch: int) -> list[int]:
    got: list[int] = []
    while claimed := repo.claim_jobs(
        transports=[JobTransport.SCP80], owner=owner, limit=batch, lease_seconds=600, now=T0 + timedelta(seconds=1)
    ):
        got += [j.id for j in claimed]
    return got


def test_threads_claim_each_job_once(repo: Repository) -> None:
    ids = _fill_queue(repo)
    per_thread: dict[int, list[int]] = {}
    first_claims = threading.Barrier(8, timeout=120)

    def worker(n: int) -> None:
        # Every thread holds a batch before any goes on, so all of them compete for the rest (without this a fast
        # thread could empty the queue before the others were scheduled, and the test proved nothing: it failed
        # the "competed" check on a loaded machine).
        first = _claim_one(repo, f"thread-{n}", batch=7)
        first_claims.wait()
        per_thread[n] = first + _claim_all(repo, f"thread-{n}", batch=7)

    _run_threads(8, worker)
    claimed = [i for got in per_thread.values() for i in got]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert all(per_thread[n] for n in range(8))  # the threads really competed
    owners = {j.id: j.lease_owner for j in repo.jobs(limit=QUEUE_SIZE)}
    for n, got in per_thread.items():
        assert all(owners[i] == f"thread-{n}" for i in got)


def _process_worker(url: str, owner: str, start: Any, out: Any) -> None:
    """Claims jobs in batches and sends each at once: (job id, card id, counter) per job."""
    repo = Repository(url)
    sent: list[tuple[int, int, int]] = []
    try:
        start.wait()
        while claimed := repo.claim_jobs(
            transports=[JobTransport.SCP80], owner=owner, limit=5, lease_seconds=600, now=T0 + timedelta(seconds=1)
        ):
            for job in claimed:
                sent.append((job.id, job.card_id, repo.mark_sent(job.id, owner=owner, kvn=1, delivery_id=f"d{job.id}")))
        out.put((owner, sent))
    finally:
        repo.close()


def test_processes_claim_each_job_once_and_never_share_a_counter(repo_url: str, repo: Repository) -> None:
    ids = _fill_queue(repo)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(repo_url, f"proc-{n}", start, out)) for n in range(2)]
    for p in procs:
        p.start()
    start.set()
    results = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(results) == 2
    sent = [s for got in results.values() for s in got]
    assert sorted(job_id for job_id, _, _ in sent) == sorted(ids)
    per_card: dict[int, list[int]] = {}
    for _, card_id, counter in sent:
        per_card.setdefault(card_id, []).append(counter)
    for card_id, counters in per_card.items():
        assert sorted(counters) == list(range(1, len(counters) + 1)), card_id
        assert repo.counter(card_id, 1) == len(counters)


def test_mark_sent_from_eight_threads_hands_out_each_counter_once(repo: Repository) -> None:
    card_id = _card(repo)
    n_jobs = 120
    job_ids = [repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU]) for _ in range(n_jobs)]
    counters: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        owner = f"w{n}"
        while claimed := repo.claim_jobs(
            transports=[JobTransport.SCP80], owner=owner, limit=3, lease_seconds=600, now=T0
        ):
            for job in claimed:
                value = repo.mark_sent(job.id, owner=owner, kvn=1, delivery_id=f"d-{job.id}")
                with lock:
                    counters.append(value)

    _run_threads(8, worker)
    assert sorted(counters) == list(range(1, n_jobs + 1))
    assert repo.counter(card_id, 1) == n_jobs
    sent = repo.jobs(card_id=card_id, limit=n_jobs)
    assert sorted(j.counter_used or 0 for j in sent) == list(range(1, n_jobs + 1))
    assert {j.id for j in sent} == set(job_ids)


def test_one_job_marked_sent_concurrently_is_sent_once(repo: Repository) -> None:
    """Eight threads race to send the same job (as if its lease had been handed out twice): one wins."""
    card_id = _card(repo)
    job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w", limit=1, lease_seconds=600, now=T0)
    wins: list[int] = []
    losses: list[int] = []

    def worker(n: int) -> None:
        try:
            wins.append(repo.mark_sent(job_id, owner="w", kvn=1, delivery_id=f"d-{n}"))
        except LeaseLost:
            losses.append(n)

    _run_threads(8, worker)
    assert (wins, len(losses)) == ([1], 7)
    assert repo.counter(card_id, 1) == 1


def test_one_per_card_under_eight_threads(repo: Repository) -> None:
    """Workers send each card's jobs one at a time, in queue order, with counters 1, 2, 3, ... per card."""
    card_ids = [_card(repo, n) for n in range(12)]
    for _ in range(5):
        for card_id in card_ids:
            repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[APDU])
    in_flight: set[int] = set()
    sent: dict[int, list[tuple[int, int]]] = {c: [] for c in card_ids}
    lock = threading.Lock()
    violations: list[str] = []

    def worker(n: int) -> None:
        owner = f"w{n}"
        idle = 0
        while idle < 50:
            claimed = repo.claim_jobs(
                transports=[JobTransport.SCP80], owner=owner, limit=2, lease_seconds=600, now=T0, one_per_card=True
            )
            if not claimed:
                idle += 1
                threading.Event().wait(0.005)
                continue
            idle = 0
            for job in claimed:
                with lock:
                    if job.card_id in in_flight:
                        violations.append(f"card {job.card_id}: job {job.id} while another is in flight")
                    in_flight.add(job.card_id)
                counter = repo.mark_sent(job.id, owner=owner, kvn=1, delivery_id=f"d-{job.id}")
                with lock:
                    sent[job.card_id].append((job.id, counter))
                    in_flight.discard(job.card_id)  # before the job is final in the database
                repo.complete_job(f"d-{job.id}", [ApduResult(APDU, b"", 0x9000)])

    _run_threads(8, worker)
    assert violations == []
    for card_id, order in sent.items():
        assert [job_id for job_id, _ in order] == sorted(job_id for job_id, _ in order)
        assert [counter for _, counter in order] == [1, 2, 3, 4, 5], card_id


def test_takeover_under_load(repo: Repository) -> None:
    """A worker that stops renewing loses its jobs to another; its late mark_sent calls all fail."""
    ids = _fill_queue(repo)
    slow = repo.claim_jobs(transports=[JobTransport.SCP80], owner="slow", limit=50, lease_seconds=5, now=T0)
    assert len(slow) == 50
    after = T0 + timedelta(seconds=6)
    taken: list[int] = []
    while claimed := repo.claim_jobs(
        transports=[JobTransport.SCP80], owner="fast", limit=100, lease_seconds=60, now=after
    ):
        taken += [j.id for j in claimed]
    assert sorted(taken) == sorted(ids)
    for job in slow[:10]:
        with pytest.raises(LeaseLost):
            repo.mark_sent(job.id, owner="slow", kvn=1, delivery_id=f"slow-{job.id}")


def test_sqlite_file_is_in_wal_mode(sqlite_url: str, tmp_path: Path) -> None:
    with Repository(sqlite_url) as repo, repo.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert (tmp_path / "gpchannel-server.db").exists()
