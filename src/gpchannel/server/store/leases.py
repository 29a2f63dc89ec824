"""The workers' side of the job aggregate: leases on QUEUED jobs (claim, renew) and the SMS send that marks a
leased job SENT with a fresh OTA counter, in one transaction.

- :meth:`LeaseStore.claim_jobs` never gives the same job to two workers while its lease runs; a job whose lease
  expired (``lease_until < now``) while still QUEUED is claimable again, and the old owner's
  :meth:`LeaseStore.mark_sent` then raises :class:`~gpchannel.errors.LeaseLost`.
- :meth:`LeaseStore.mark_sent` advances the card's OTA counter (ETSI TS 102 225 5.1.1: the counter of a key set
  must never be used twice) and marks the job SENT in the same transaction as the lease check, so no counter
  value is ever handed out twice and a job is never SENT twice.
- :meth:`LeaseStore.mark_sent_many` is the same for several jobs in ONE transaction (group commit: one commit,
  one pass over the audit lock for a batch of sends); a job whose lease is lost is left out, the others are sent.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, or_, select, update

from gpchannel.errors import LeaseLost, RepositoryError
from gpchannel.server import audit
from gpchannel.server.db import card_keys, cards, jobs
from gpchannel.server.job_state import JobEvent, JobState, next_state, sources
from gpchannel.server.store.cards import CardRecord, advance_counter, advance_counters, card_record
from gpchannel.server.store.core import StoreCore, check_aware
from gpchannel.server.store.jobs import JobRecord, audit_record, audit_sent, job_record
from gpchannel.server.transports import JobTransport

__all__ = ["ClaimedBatch", "LeaseStore", "SendRequest"]

# The hot path's statements, built once (bound parameters; SQLAlchemy compiles each once per engine and caches it).
_LOCK_FOR_SEND = (
    select(jobs).where(jobs.c.id.in_(bindparam("ids", expanding=True))).order_by(jobs.c.id).with_for_update()
)
_MARK_SENT = (
    update(jobs)
    .where(jobs.c.id == bindparam("job"))
    .values(
        state=bindparam("state"),
        counter_used=bindparam("counter"),
        delivery_id=bindparam("delivery"),
        updated_at=bindparam("at"),
    )
)
_NOTE_SENT = (
    update(jobs)
    .where(jobs.c.delivery_id == bindparam("delivery"), jobs.c.state == bindparam("sent"))
    .values(reason=bindparam("reason"), updated_at=bindparam("at"))
)


@dataclass(frozen=True)
class ClaimedBatch:
    """What :meth:`LeaseStore.claim_batch` gives a worker: the jobs it now leases (oldest due first), their cards
    by id, and their cards' key rows, (card id, purpose, KVN) -> (blob, algorithm)."""

    jobs: list[JobRecord]
    cards: dict[int, CardRecord]
    keys: dict[tuple[int, str, int], tuple[bytes, str]]


@dataclass(frozen=True)
class SendRequest:
    """One job of :meth:`LeaseStore.mark_sent_many`: its id, the key set whose counter to advance, the delivery."""

    job_id: int
    kvn: int
    delivery_id: str


class LeaseStore(StoreCore):
    """Workers' leases on jobs and the counter-advancing send (part of the Repository facade)."""

    def claim_jobs(
        self,
        *,
        transports: Collection[JobTransport],
        owner: str,
        limit: int,
        lease_seconds: float,
        now: datetime,
        one_per_card: bool = False,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` due QUEUED jobs (not leased, or whose lease expired) to ``owner`` until
        ``now + lease_seconds``, oldest due first. Two workers never get the same job while its lease runs.

        ``one_per_card``: a card has at most one job of these transports in flight across all workers, taken in
        queue order. A job is skipped while its card has another one SENT or leased, or an older one QUEUED (even
        one not yet due), so an SCP80 card sees its packets, and their counters, one after the other.
        """
        check_aware("now", now)
        if limit <= 0:
            return []
        if lease_seconds <= 0:
            raise RepositoryError("lease_seconds must be positive")
        with self._write() as c:
            return self._claim(c, transports, owner, limit, lease_seconds, now, one_per_card)

    def _claim(
        self,
        c: Connection,
        transports: Collection[JobTransport],
        owner: str,
        limit: int,
        lease_seconds: float,
        now: datetime,
        one_per_card: bool,
    ) -> list[JobRecord]:
        """The claim of :meth:`claim_jobs` in ONE statement: ``UPDATE jobs ... WHERE id IN (SELECT id ... LIMIT n
        FOR UPDATE SKIP LOCKED) RETURNING *`` (SQLite has no row locks and needs none: the write transaction
        holds the database's write lock)."""
        kinds = [JobTransport(t).value for t in transports]
        until = now + timedelta(seconds=lease_seconds)
        due = jobs.alias("due")
        conditions = [
            due.c.state == JobState.QUEUED.value,
            due.c.transport.in_(kinds),
            due.c.not_before <= now,
            or_(due.c.lease_until.is_(None), due.c.lease_until < now),
        ]
        if one_per_card:
            # Two NOT EXISTS with equalities on (card_id, state): each is one probe of ix_jobs_card_id_state.
            sent = jobs.alias("sent")
            queued = jobs.alias("queued")
            conditions.append(
                ~select(sent.c.id)
                .where(
                    sent.c.card_id == due.c.card_id,
                    sent.c.state == JobState.SENT.value,
                    sent.c.transport.in_(kinds),
                )
                .exists()
            )
            conditions.append(
                ~select(queued.c.id)
                .where(
                    queued.c.card_id == due.c.card_id,
                    queued.c.state == JobState.QUEUED.value,
                    queued.c.transport.in_(kinds),
                    queued.c.id != due.c.id,
                    or_(queued.c.id < due.c.id, queued.c.lease_until >= now),
                )
                .exists()
            )
        chosen = (
            select(due.c.id)
            .where(*conditions)
            .order_by(due.c.not_before, due.c.id)
            .limit(limit)
            .with_for_update(of=due, skip_locked=True)
        )
        rows = c.execute(
            update(jobs)
            .where(jobs.c.id.in_(chosen))
            .values(lease_owner=owner, lease_until=until, updated_at=now)
            .returning(*jobs.c)
        ).all()
        return sorted((job_record(r) for r in rows), key=lambda j: (j.not_before or now, j.id))

    def claim_batch(
        self,
        *,
        transports: Collection[JobTransport],
        owner: str,
        limit: int,
        lease_seconds: float,
        now: datetime,
        key_purposes: Collection[str] = ("kic", "kid"),
    ) -> ClaimedBatch:
        """A worker's round in ONE transaction and three statements: :meth:`claim_jobs`, the claimed jobs'
        cards and their key rows of ``key_purposes`` (every KVN; the blobs the key provider opens, never keys)."""
        check_aware("now", now)
        if limit <= 0:
            return ClaimedBatch([], {}, {})
        if lease_seconds <= 0:
            raise RepositoryError("lease_seconds must be positive")
        with self._write() as c:
            claimed = self._claim(c, transports, owner, limit, lease_seconds, now, False)
            card_ids = sorted({j.card_id for j in claimed})
            if not card_ids:
                return ClaimedBatch(claimed, {}, {})
            found = {int(r.id): card_record(r) for r in c.execute(select(cards).where(cards.c.id.in_(card_ids)))}
            keys = {
                (int(r.card_id), str(r.purpose), int(r.kvn)): (bytes(r.blob), str(r.algorithm))
                for r in c.execute(
                    select(card_keys.c.card_id, card_keys.c.purpose, card_keys.c.kvn, card_keys.c.blob,
                           card_keys.c.algorithm)
                    .where(card_keys.c.card_id.in_(card_ids), card_keys.c.purpose.in_(sorted(key_purposes)))
                )
            }  # fmt: skip
        return ClaimedBatch(claimed, found, keys)

    def mark_sent(self, job_id: int, *, owner: str, kvn: int, delivery_id: str, now: datetime | None = None) -> int:
        """In one transaction: check that ``owner`` still holds the job's lease (else :class:`LeaseLost`; with
        ``now``, an expired lease counts as lost too), advance the card's OTA counter for key set ``kvn`` by one
        (a missing counter starts at 0, so the first is 1), store it and ``delivery_id`` on the job and mark it
        SENT. Returns the counter to put in the secured packet."""
        if now is not None:
            check_aware("now", now)
        stamp = now or self._clock()
        with self._write() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).one_or_none()
            if row is None:
                raise RepositoryError(f"no job {job_id}")
            if JobState(row.state) not in sources(JobEvent.SEND) or row.lease_owner != owner:
                raise LeaseLost(f"job {job_id} is {row.state}, leased to {row.lease_owner!r}, not {owner!r}")
            if now is not None and (row.lease_until is None or row.lease_until < now):
                raise LeaseLost(f"job {job_id}: the lease of {owner!r} expired")
            counter = advance_counter(self, c, row.card_id, kvn)
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=next_state(row.state, JobEvent.SEND).value,
                    counter_used=counter,
                    delivery_id=delivery_id,
                    updated_at=stamp,
                )
            )
            audit_sent(c, job_record(row), owner, stamp, f"sent ({row.transport} SMS, kvn {kvn})")
            return counter

    def mark_sent_many(
        self, requests: Sequence[SendRequest], *, owner: str, now: datetime
    ) -> dict[int, int | LeaseLost]:
        """:meth:`mark_sent` for every request in ONE transaction: each job id maps to its counter, or to the
        :class:`LeaseLost` that says why it was not sent (its lease is not ``owner``'s, or expired at ``now``).
        The job rows are locked first, in id order, and the audit records appended last (audit.append's lock
        order). A RepositoryError (an unknown job, an exhausted counter) rolls the whole batch back: call
        :meth:`mark_sent` per job then. The requests must name distinct jobs of distinct (card, KVN) pairs."""
        check_aware("now", now)
        if not requests:
            return {}
        by_id = {r.job_id: r for r in requests}
        if len(by_id) != len(requests):
            raise RepositoryError("mark_sent_many: a job is named twice")
        out: dict[int, int | LeaseLost] = {}
        with self._write() as c:
            rows = {row.id: row for row in c.execute(_LOCK_FOR_SEND, {"ids": sorted(by_id)})}
            sendable = []
            for job_id in sorted(by_id):
                row = rows.get(job_id)
                if row is None:
                    raise RepositoryError(f"no job {job_id}")
                if JobState(row.state) not in sources(JobEvent.SEND) or row.lease_owner != owner:
                    holder = row.lease_owner
                    out[job_id] = LeaseLost(f"job {job_id} is {row.state}, leased to {holder!r}, not {owner!r}")
                    continue
                if row.lease_until is None or row.lease_until < now:
                    out[job_id] = LeaseLost(f"job {job_id}: the lease of {owner!r} expired")
                    continue
                sendable.append((row, by_id[job_id]))
            if not sendable:
                return out
            counters = advance_counters(self, c, [(row.card_id, request.kvn) for row, request in sendable])
            changes = []
            for row, request in sendable:
                counter = counters[(row.card_id, request.kvn)]
                out[row.id] = counter
                changes.append(
                    {"job": row.id, "state": next_state(row.state, JobEvent.SEND).value, "counter": counter,
                     "delivery": request.delivery_id, "at": now}
                )  # fmt: skip
            c.execute(_MARK_SENT, changes)
            audit.append_many(c, [audit_record(job_record(row), owner, now, f"sent ({row.transport} SMS, kvn {r.kvn})")
                                  for row, r in sendable])  # fmt: skip
        return out

    def note_sent_jobs(self, notes: Sequence[tuple[str, str]]) -> int:
        """:meth:`JobStore.note_sent_job` for several (delivery id, reason) pairs in ONE transaction (a worker's
        delivery receipts of one round); how many notes were stored."""
        if not notes:
            return 0
        stamp = self._clock()
        with self._write() as c:
            result = c.execute(
                _NOTE_SENT, [{"delivery": d, "reason": reason, "at": stamp, "sent": JobState.SENT.value}
                             for d, reason in notes]
            )  # fmt: skip
            return int(result.rowcount)

    def renew_lease(self, job_ids: Sequence[int], *, owner: str, lease_seconds: float, now: datetime) -> list[int]:
        """Extend ``owner``'s leases on these jobs to ``now + lease_seconds``; returns the ids renewed (a job
        whose lease was taken over, or that left the queue, is not)."""
        check_aware("now", now)
        if not job_ids:
            return []
        until = now + timedelta(seconds=lease_seconds)
        with self._write() as c:
            renewed = list(
                c.execute(
                    update(jobs)
                    .where(
                        jobs.c.id.in_(list(job_ids)),
                        jobs.c.lease_owner == owner,
                        jobs.c.state.in_([JobState.QUEUED.value, JobState.SENT.value]),
                    )
                    .values(lease_until=until, updated_at=now)
                    .returning(jobs.c.id)
                ).scalars()
            )
        return sorted(renewed)
