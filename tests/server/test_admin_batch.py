"""Group commit of the admin sessions (server/admin_batch.py, Repository.admin_round in server/store/admin.py) on
SQLite and PostgreSQL: each step gets what complete_job and deliver_next_job give one at a time (same order,
same "not due" rule, a final job unchanged), every script that leaves has its SENT mark and its audit record in
the round's transaction, the steps that wait together share one transaction, and a round that fails as a whole
is replayed step by step."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gpchannel.errors import RepositoryError
from gpchannel.server import audit
from gpchannel.server.admin_batch import AdminBatch
from gpchannel.server.db import audit_log
from gpchannel.server.ras_results import admin_delivery
from gpchannel.server.repository import (
    AdminStep,
    ApduResult,
    Completion,
    JobRecord,
    JobState,
    JobTransport,
    Repository,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GET_DATA = bytes.fromhex("80CA004200")


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    with Repository(repo_url, clock=lambda: NOW) as repository:
        yield repository


def _card(repo: Repository, n: int, jobs: int = 1, not_before: datetime = NOW) -> tuple[int, list[int]]:
    card = repo.upsert_card(iccid=f"8988219{n:012d}", psk_identity=f"card-{n}")
    ids = [
        repo.add_job(card_id=card, transport=JobTransport.SCP81, script=[GET_DATA, bytes([n, 0, 0, 0])],
                     not_before=not_before)
        for _ in range(jobs)
    ]  # fmt: skip
    return card, ids


def _audit_count(repo: Repository) -> int:
    with repo.reading() as c:
        return int(c.execute(select(func.count()).select_from(audit_log)).scalar_one())


def test_a_round_delivers_each_card_its_oldest_job_with_its_audit_record(repo: Repository) -> None:
    a, a_jobs = _card(repo, 1, jobs=2)
    b, b_jobs = _card(repo, 2)
    late, _ = _card(repo, 3, not_before=NOW + timedelta(hours=1))
    empty = repo.upsert_card(iccid="89882190000000000009", psk_identity="card-9")
    steps = [AdminStep(a, first=True), AdminStep(b), AdminStep(late), AdminStep(empty), AdminStep(a)]
    out = repo.admin_round(steps, owner="ras", now=NOW, is_admin=admin_delivery)
    delivered = [o.delivered for o in out]
    assert [j.id if j else None for j in delivered] == [a_jobs[0], b_jobs[0], None, None, a_jobs[1]]
    for job in (j for j in delivered if j is not None):
        stored = repo.job(job.id)
        assert stored is not None and stored.state is JobState.SENT and stored.delivery_id == job.delivery_id
        assert stored.lease_owner == "ras" and job.delivery_id is not None and len(job.delivery_id) == 32
    assert _audit_count(repo) == 3 and audit.verify(repo.engine).ok
    records = audit.export(repo.engine)
    assert [r["job_id"] for r in records] == [a_jobs[0], b_jobs[0], a_jobs[1]]
    assert records[0]["script_sha256"] == audit.script_sha256([GET_DATA, bytes([1, 0, 0, 0])])


def test_completions_are_stored_once_and_the_next_job_follows(repo: Repository) -> None:
    card, jobs = _card(repo, 1, jobs=2)
    (first,) = repo.admin_round([AdminStep(card)], owner="ras", now=NOW, is_admin=admin_delivery)
    assert first.delivered is not None and first.delivered.delivery_id is not None
    results = (ApduResult(GET_DATA, b"\x01", 0x9000), ApduResult(bytes([1, 0, 0, 0]), b"", 0x9000))
    done = Completion(first.delivered.delivery_id, results, JobState.DONE)
    step = AdminStep(card, complete=done)
    out = repo.admin_round([step, AdminStep(card, complete=done, deliver=False)], owner="ras", now=NOW,
                           is_admin=admin_delivery)  # fmt: skip
    assert out[0].completed is not None and out[0].completed.state is JobState.DONE
    assert out[0].delivered is not None and out[0].delivered.id == jobs[1]
    assert out[1].completed == out[0].completed and out[1].delivered is None  # already final: unchanged
    stored = repo.job(jobs[0])
    assert stored is not None and stored.state is JobState.DONE and stored.results == results
    # an unknown delivery completes nothing; a state other than done/failed is refused
    (unknown,) = repo.admin_round([AdminStep(card, complete=Completion("nope", (), JobState.FAILED), deliver=False)],
                                  owner="ras", now=NOW, is_admin=admin_delivery)  # fmt: skip
    assert unknown.completed is None
    with pytest.raises(RepositoryError):
        repo.admin_round([AdminStep(card, complete=Completion("x", (), JobState.SENT))], owner="ras", now=NOW,
                         is_admin=admin_delivery)  # fmt: skip


def test_a_first_step_reports_an_outstanding_admin_delivery_and_delivers_nothing(repo: Repository) -> None:
    card, jobs = _card(repo, 1, jobs=2)
    repo.admin_round([AdminStep(card)], owner="ras", now=NOW, is_admin=admin_delivery)
    (out,) = repo.admin_round([AdminStep(card, first=True)], owner="ras", now=NOW, is_admin=admin_delivery)
    assert out.outstanding is not None and out.outstanding.id == jobs[0] and out.delivered is None
    assert repo.job(jobs[1]).state is JobState.QUEUED  # type: ignore[union-attr]


def test_two_first_steps_of_one_card_in_one_round_act_as_one_after_the_other(repo: Repository) -> None:
    """Two sessions of one card opening at once (a duplicate trigger): the second sees the first one's delivery as
    outstanding, as it would one step at a time; the card's second job does not overtake its first."""
    card, jobs = _card(repo, 1, jobs=2)
    first, second = repo.admin_round([AdminStep(card, first=True)] * 2, owner="ras", now=NOW, is_admin=admin_delivery)
    assert first.delivered is not None and first.delivered.id == jobs[0] and first.outstanding is None
    assert second.delivered is None and second.outstanding is not None and second.outstanding.id == jobs[0]
    assert repo.job(jobs[1]).state is JobState.QUEUED  # type: ignore[union-attr]


def _batch(repo: Repository, calls: list[int]) -> AdminBatch:
    async def run(fn: Callable[[], Any]) -> Any:
        calls.append(1)
        return await asyncio.to_thread(fn)

    return AdminBatch(repo, "ras", lambda: NOW, admin_delivery, run)


def test_the_steps_that_wait_together_share_one_transaction(repo: Repository) -> None:
    cards = [_card(repo, n) for n in range(6)]
    calls: list[int] = []

    async def main() -> list[JobRecord | None]:
        batch = _batch(repo, calls)
        outs = await asyncio.gather(*(batch.step(AdminStep(card, first=True)) for card, _ in cards))
        assert batch.rounds == 1
        return [o.delivered for o in outs]

    delivered = asyncio.run(main())
    assert [j.id if j else None for j in delivered] == [jobs[0] for _, jobs in cards]
    assert len(calls) == 1 and _audit_count(repo) == 6


def test_a_failing_round_is_replayed_step_by_step(repo: Repository) -> None:
    good, jobs = _card(repo, 1)
    bad = AdminStep(good, complete=Completion("x", (), JobState.CANCELLED), deliver=False)
    calls: list[int] = []

    async def main() -> tuple[Any, ...]:
        batch = _batch(repo, calls)
        return tuple(await asyncio.gather(batch.step(AdminStep(good)), batch.step(bad), return_exceptions=True))

    ok, failed = asyncio.run(main())
    assert isinstance(failed, RepositoryError)
    assert ok.delivered is not None and ok.delivered.id == jobs[0]
    assert len(calls) == 3  # the round, then each step alone
    assert _audit_count(repo) == 1 and audit.verify(repo.engine).ok
