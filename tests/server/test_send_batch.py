"""Group commit of the SCP80 sends (server/send_batch.py, Repository.mark_sent_many) on SQLite and PostgreSQL:
the same counters and LeaseLost as mark_sent job by job, one transaction for the sends that wait together, and a
batch that fails as a whole replayed job by job (each job meets its own error, the others are sent)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gpchannel.errors import CounterExhausted, LeaseLost, RepositoryError
from gpchannel.server.repository import MAX_OTA_COUNTER, JobState, JobTransport, Repository
from gpchannel.server.send_batch import SendBatch
from gpchannel.server.store.leases import SendRequest

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GET_DATA = bytes.fromhex("80CA004200")


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    with Repository(repo_url, clock=lambda: NOW) as repository:
        yield repository


def _jobs(repo: Repository, count: int, owner: str = "w1") -> list[int]:
    """``count`` cards with one SCP80 job each, claimed by ``owner``."""
    for n in range(count):
        card = repo.upsert_card(iccid=f"8988219{n:012d}", psk_identity=None, msisdn=f"4917{n:08d}")
        repo.add_job(card_id=card, transport=JobTransport.SCP80, script=[GET_DATA], not_before=NOW)
    claimed = repo.claim_jobs(transports=[JobTransport.SCP80], owner=owner, limit=count, lease_seconds=60, now=NOW)
    return sorted(job.id for job in claimed)


def test_mark_sent_many_gives_each_job_its_counter_and_leaves_out_a_lost_lease(repo: Repository) -> None:
    mine = _jobs(repo, 3)
    theirs = repo.add_job(card_id=repo.cards(limit=1)[0].id, transport=JobTransport.SCP80, script=[GET_DATA])
    requests = [SendRequest(job, 1, f"d-{job}") for job in [*mine, theirs]]
    out = repo.mark_sent_many(requests, owner="w1", now=NOW)
    assert [out[job] for job in mine] == [1, 1, 1]
    assert isinstance(out[theirs], LeaseLost)
    assert [repo.job(job).state for job in mine] == [JobState.SENT] * 3  # type: ignore[union-attr]
    assert repo.job(theirs).state is JobState.QUEUED  # type: ignore[union-attr]
    # the lease is checked against now: an expired one is lost too, and nothing is written for it
    more = _jobs(repo, 1, owner="w2")
    late = repo.mark_sent_many([SendRequest(more[0], 1, "late")], owner="w2", now=NOW + timedelta(seconds=61))
    assert isinstance(late[more[0]], LeaseLost)
    with pytest.raises(RepositoryError):
        repo.mark_sent_many([SendRequest(mine[0], 1, "x"), SendRequest(mine[0], 1, "y")], owner="w1", now=NOW)


def test_the_sends_that_wait_together_share_one_transaction(repo: Repository) -> None:
    jobs = _jobs(repo, 5)

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def main() -> tuple[list[int], int]:
        batch = SendBatch(repo, "w1", lambda: NOW, run)
        counters = await asyncio.gather(*(batch.mark_sent(job, kvn=1, delivery_id=f"d-{job}") for job in jobs))
        return list(counters), batch.batches

    counters, batches = asyncio.run(main())
    assert counters == [1] * 5 and batches == 1
    assert {repo.job(job).counter_used for job in jobs} == {1}  # type: ignore[union-attr]


def test_a_batch_that_fails_as_a_whole_is_replayed_job_by_job(repo: Repository) -> None:
    jobs = _jobs(repo, 2)

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def main() -> list[int | BaseException]:
        batch = SendBatch(repo, "w1", lambda: NOW, run)
        sends = [batch.mark_sent(job, kvn=1, delivery_id=f"d-{job}") for job in [*jobs, 999_999]]
        return list(await asyncio.gather(*sends, return_exceptions=True))

    first, second, unknown = asyncio.run(main())
    assert (first, second) == (1, 1)
    assert isinstance(unknown, RepositoryError)


def test_cards_by_id_reads_a_claimed_batch_in_one_query(repo: Repository) -> None:
    _jobs(repo, 3)
    ids = [card.id for card in repo.cards(limit=10)]
    found = repo.cards_by_id([*ids, 12345, ids[0]])
    assert sorted(found) == ids and found[ids[1]].msisdn == "491700000001"
    assert repo.cards_by_id([]) == {}


def test_a_batch_advances_every_counter_by_one_from_where_it_stands(repo: Repository) -> None:
    jobs = _jobs(repo, 3)
    cards = [repo.job(job).card_id for job in jobs]  # type: ignore[union-attr]
    repo.set_counter(cards[1], 1, 41)  # an imported counter: the next is 42, never a value used before
    repo.set_counter(cards[2], 2, 7)  # another key set of the same card is not touched
    out = repo.mark_sent_many([SendRequest(job, 1, f"d-{job}") for job in jobs], owner="w1", now=NOW)
    assert [out[job] for job in jobs] == [1, 42, 1]
    assert [repo.counter(card, 1) for card in cards] == [1, 42, 1] and repo.counter(cards[2], 2) == 7
    assert [repo.job(job).counter_used for job in jobs] == [1, 42, 1]  # type: ignore[union-attr]


def test_an_exhausted_counter_rolls_the_whole_batch_back(repo: Repository) -> None:
    jobs = _jobs(repo, 2)
    cards = [repo.job(job).card_id for job in jobs]  # type: ignore[union-attr]
    repo.set_counter(cards[1], 1, MAX_OTA_COUNTER)
    with pytest.raises(CounterExhausted, match="exhausted"):  # the upsert leaves a counter at its end alone
        repo.mark_sent_many([SendRequest(job, 1, f"d-{job}") for job in jobs], owner="w1", now=NOW)
    with pytest.raises(CounterExhausted):  # replayed alone, the job meets its own error (the sender fails it)
        repo.mark_sent(jobs[1], owner="w1", kvn=1, delivery_id="alone", now=NOW)
    # nothing of the batch was written: the first card's counter did not move, both jobs are still QUEUED
    assert repo.counter(cards[0], 1) is None and repo.counter(cards[1], 1) == MAX_OTA_COUNTER
    assert {repo.job(job).state for job in jobs} == {JobState.QUEUED}  # type: ignore[union-attr]


def test_two_jobs_of_one_card_and_key_set_in_one_batch_are_refused(repo: Repository) -> None:
    (job,) = _jobs(repo, 1)
    card = repo.job(job).card_id  # type: ignore[union-attr]
    other = repo.add_job(card_id=card, transport=JobTransport.SCP80, script=[GET_DATA], not_before=NOW)
    repo.claim_jobs(transports=[JobTransport.SCP80], owner="w1", limit=5, lease_seconds=60, now=NOW)
    with pytest.raises(RepositoryError, match="named twice"):
        repo.mark_sent_many([SendRequest(job, 1, "a"), SendRequest(other, 1, "b")], owner="w1", now=NOW)
    assert repo.counter(card, 1) is None  # replayed one by one, they would take 1 then 2


def test_receipt_notes_are_stored_together_and_only_on_jobs_still_sent(repo: Repository) -> None:
    jobs = _jobs(repo, 3)
    repo.mark_sent_many([SendRequest(job, 1, f"d-{job}") for job in jobs], owner="w1", now=NOW)
    repo.complete_job(f"d-{jobs[2]}", [], state=JobState.DONE)
    notes = [(f"d-{job}", f"delivered {job}") for job in jobs] + [("unknown", "x")]
    assert repo.note_sent_jobs(notes) == 2
    assert [repo.job(job).reason for job in jobs] == [f"delivered {jobs[0]}", f"delivered {jobs[1]}", None]  # type: ignore[union-attr]
    assert repo.note_sent_jobs([]) == 0
