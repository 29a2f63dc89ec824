"""The job aggregate of the store: scripts queued for a card, their delivery and their outcome.

A job's state changes (``JobState``, :mod:`gpchannel.server.job_state`) happen here and in :mod:`.leases`
(the workers' claims). DONE, FAILED and CANCELLED are final: :meth:`JobStore.complete_job` and
:meth:`JobStore.fail_job` leave a final job unchanged (a duplicate PoR or a late response is harmless).
``attempts`` counts failed attempts (each :meth:`JobStore.fail_job`). A retried job loses its ``delivery_id``,
so a late answer to the earlier attempt completes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from gpchannel.errors import RepositoryError
from gpchannel.server import audit
from gpchannel.server.db import jobs
from gpchannel.server.job_state import JobEvent, JobState, next_state, sources, target
from gpchannel.server.store.cards import require_card
from gpchannel.server.store.core import StoreCore, check_aware, check_script, check_target
from gpchannel.server.transports import SCP81_TRANSPORTS, JobTransport

__all__ = ["ApduResult", "JobRecord", "JobStore", "audit_record", "audit_sent", "job_record"]


@dataclass(frozen=True)
class ApduResult:
    """One command of a job's script and the card's answer: ``response`` is the data without ``sw``."""

    command: bytes
    response: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise RepositoryError(f"status word {self.sw:#x} is not two bytes")

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command.hex(), "response": self.response.hex(), "sw": self.sw}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ApduResult:
        return cls(bytes.fromhex(value["command"]), bytes.fromhex(value["response"]), int(value["sw"]))


@dataclass(frozen=True)
class JobRecord:
    id: int
    campaign_id: int | None
    card_id: int
    transport: JobTransport
    target: bytes
    script: tuple[bytes, ...]
    state: JobState
    reason: str | None
    attempts: int
    delivery_id: str | None
    counter_used: int | None
    results: tuple[ApduResult, ...]
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


def job_record(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        campaign_id=m["campaign_id"],
        card_id=m["card_id"],
        transport=JobTransport(m["transport"]),
        target=bytes.fromhex(m["target"]),
        script=tuple(bytes.fromhex(c) for c in m["script"]),
        state=JobState(m["state"]),
        reason=m["reason"],
        attempts=m["attempts"],
        delivery_id=m["delivery_id"],
        counter_used=m["counter_used"],
        results=tuple(ApduResult.from_json(r) for r in m["results"] or ()),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        not_before=m["not_before"],
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
    )


def audit_record(job: JobRecord, owner: str, now: datetime, outcome: str) -> dict[str, Any]:
    """The audit record of a script leaving for a card (audit.append's keyword arguments)."""
    return {
        "principal": f"server:{owner}",
        "action": "script.sent",
        "at": now,
        "outcome": outcome,
        "card_ids": [job.card_id],
        "campaign_id": job.campaign_id,
        "job_id": job.id,
        "script_sha256": audit.script_sha256(job.script),
    }


def audit_sent(c: Connection, job: JobRecord, owner: str, now: datetime, outcome: str) -> None:
    """A script leaves for a card: its audit record, in the transaction that marks the job SENT (audit.py)."""
    audit.append(c, **audit_record(job, owner, now, outcome))


class JobStore(StoreCore):
    """Jobs: queued, delivered to an admin session, completed, failed, cancelled (part of the Repository facade)."""

    def add_job(
        self,
        *,
        card_id: int,
        transport: JobTransport,
        script: Sequence[bytes],
        target: bytes = b"",
        campaign_id: int | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Queue a script for a card; due at ``not_before`` (default: now). Returns the job id."""
        transport = JobTransport(transport)
        hex_script = check_script(script)
        hex_target = check_target(target)
        now = self._clock()
        if not_before is not None:
            check_aware("not_before", not_before)
        with self._write() as c:
            require_card(c, card_id)
            result = c.execute(
                jobs.insert()
                .values(
                    campaign_id=campaign_id,
                    card_id=card_id,
                    transport=transport.value,
                    target=hex_target,
                    script=hex_script,
                    state=JobState.QUEUED.value,
                    attempts=0,
                    not_before=not_before or now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(jobs.c.id)
            )
            return int(result.scalar_one())

    def job(self, job_id: int) -> JobRecord | None:
        with self._read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
        return None if row is None else job_record(row)

    def job_by_delivery(self, delivery_id: str) -> JobRecord | None:
        with self._read() as c:
            row = c.execute(select(jobs).where(jobs.c.delivery_id == delivery_id)).one_or_none()
        return None if row is None else job_record(row)

    def jobs(
        self,
        *,
        card_id: int | None = None,
        campaign_id: int | None = None,
        state: JobState | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[JobRecord]:
        """Jobs by id, filtered, ``limit`` at a time after ``after_id`` (keyset paging)."""
        query = select(jobs).where(jobs.c.id > after_id)
        if card_id is not None:
            query = query.where(jobs.c.card_id == card_id)
        if campaign_id is not None:
            query = query.where(jobs.c.campaign_id == campaign_id)
        if state is not None:
            query = query.where(jobs.c.state == JobState(state).value)
        with self._read() as c:
            rows = c.execute(query.order_by(jobs.c.id).limit(limit)).all()
        return [job_record(r) for r in rows]

    def deliver_next_job(
        self,
        card_id: int,
        *,
        owner: str,
        now: datetime,
        transports: Collection[JobTransport] = SCP81_TRANSPORTS,
    ) -> JobRecord | None:
        """SCP81: hand the card's next job to the admin session now talking to it (QUEUED -> SENT, a fresh random
        ``delivery_id``, ``lease_owner`` = ``owner``), or None.

        A card's jobs run in the order they were queued: the next one is its oldest QUEUED job of these
        transports, and when that one is not yet due (``not_before > now``, e.g. a retry's back-off) nothing is
        delivered, so a later script never overtakes an earlier one. A lease held by a trigger worker does not
        stop the delivery: the card is here.
        """
        check_aware("now", now)
        kinds = [JobTransport(t).value for t in transports]
        with self._write() as c:
            row = c.execute(
                select(jobs)
                .where(jobs.c.card_id == card_id, jobs.c.state == JobState.QUEUED.value, jobs.c.transport.in_(kinds))
                .order_by(jobs.c.id)
                .limit(1)
                .with_for_update()
            ).one_or_none()
            if row is None or row.not_before > now:
                return None
            c.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(
                    state=next_state(row.state, JobEvent.SEND).value,
                    delivery_id=secrets.token_hex(16),
                    lease_owner=owner,
                    lease_until=None,
                    updated_at=now,
                )
            )
            job = job_record(c.execute(select(jobs).where(jobs.c.id == row.id)).one())
            audit_sent(c, job, owner, now, f"sent ({job.transport.value} admin session)")
            return job

    def sent_job(self, card_id: int, *, transports: Collection[JobTransport] = SCP81_TRANSPORTS) -> JobRecord | None:
        """The card's oldest job in state SENT over these transports (an admin session to resume), if any."""
        kinds = [JobTransport(t).value for t in transports]
        with self._read() as c:
            row = c.execute(
                select(jobs)
                .where(jobs.c.card_id == card_id, jobs.c.state == JobState.SENT.value, jobs.c.transport.in_(kinds))
                .order_by(jobs.c.id)
                .limit(1)
            ).one_or_none()
        return None if row is None else job_record(row)

    def note_sent_job(self, delivery_id: str, reason: str) -> bool:
        """Record why a SENT job is still waiting (its admin session broke or stalled) without changing its state;
        a job no longer SENT under this delivery is left alone. True if the note was stored."""
        with self._write() as c:
            result = c.execute(
                update(jobs)
                .where(jobs.c.delivery_id == delivery_id, jobs.c.state == JobState.SENT.value)
                .values(reason=reason, updated_at=self._clock())
            )
            return bool(result.rowcount)

    def complete_job(
        self,
        delivery_id: str,
        results: Sequence[ApduResult],
        *,
        state: JobState = JobState.DONE,
        reason: str | None = None,
    ) -> JobRecord | None:
        """Record the answer to delivery ``delivery_id``: the job becomes ``state`` (DONE or FAILED) with its
        results. Idempotent: a job already final is returned unchanged; an unknown delivery (or one superseded
        by a retry) gives None."""
        state = JobState(state)
        if state not in (JobState.DONE, JobState.FAILED):
            raise RepositoryError(f"a job completes as done or failed, not {state}")
        event = JobEvent.DONE if state is JobState.DONE else JobEvent.FAIL
        payload = [ApduResult(r.command, r.response, r.sw).to_json() for r in results]
        now = self._clock()
        with self._write() as c:
            row = c.execute(select(jobs).where(jobs.c.delivery_id == delivery_id).with_for_update()).one_or_none()
            if row is None:
                return None
            if JobState(row.state) not in sources(event):
                return job_record(row)
            c.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(
                    state=next_state(row.state, event).value,
                    results=payload,
                    reason=reason,
                    lease_until=None,
                    updated_at=now,
                )
            )
            return job_record(c.execute(select(jobs).where(jobs.c.id == row.id)).one())

    def fail_job(self, job_id: int, reason: str, *, retry_at: datetime | None = None) -> None:
        """A delivery attempt failed (``attempts`` + 1). With ``retry_at`` the job goes back to QUEUED, due then,
        with no lease and no delivery id; without, it is FAILED. A final job is left unchanged."""
        if retry_at is not None:
            check_aware("retry_at", retry_at)
        now = self._clock()
        with self._write() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).one_or_none()
            if row is None:
                raise RepositoryError(f"no job {job_id}")
            event = JobEvent.GIVE_UP if retry_at is None else JobEvent.RETRY
            if JobState(row.state) not in sources(event):
                return  # final: left unchanged
            values: dict[str, Any] = {
                "reason": reason,
                "attempts": row.attempts + 1,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
            values["state"] = next_state(row.state, event).value
            if retry_at is not None:
                values.update(not_before=retry_at, delivery_id=None, counter_used=None)
            c.execute(update(jobs).where(jobs.c.id == job_id).values(values))

    def cancel_job(self, job_id: int) -> bool:
        """QUEUED -> CANCELLED (True); a job already sent or final is not cancelled (False)."""
        now = self._clock()
        with self._write() as c:
            result = c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_([s.value for s in sources(JobEvent.CANCEL)]))
                .values(state=target(JobEvent.CANCEL).value, lease_owner=None, lease_until=None, updated_at=now)
            )
            return bool(result.rowcount == 1)
