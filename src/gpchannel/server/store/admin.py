"""The admin sessions' store rounds (SCP81, server/ras.py): the store work of many sessions in ONE transaction.

An admin session needs the store at two points: its first POST (is a script of this card still out? if not, the
card's next job) and each response POST (store the results, then the card's next job, or "nothing more"). Each
of these is one :class:`AdminStep`; :meth:`AdminStore.admin_round` runs the steps of every session that asked
meanwhile (server/admin_batch.py collects them) in one transaction: one commit for all of them (group commit),
the completions in one statement pass, the next jobs of all their cards in one query, their SENT marks in one
``executemany`` and their audit records in one :func:`gpchannel.server.audit.append_many`.

Each step gets what the single-job methods would have given it, in the order of the steps:
:meth:`JobStore.complete_job` for its completion (a final job unchanged, an unknown delivery None), then
:meth:`JobStore.deliver_next_job` for its card (the oldest QUEUED job of the transports, nothing when that one
is not yet due). A job is moved to SENT with its audit record in the transaction that commits the step, so a
script never leaves without both, and a step that names a card twice gets the card's jobs one after the other.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from gpchannel.errors import RepositoryError
from gpchannel.server import audit
from gpchannel.server.db import jobs
from gpchannel.server.job_state import JobEvent, JobState, next_state, sources
from gpchannel.server.store.core import StoreCore, check_aware
from gpchannel.server.store.jobs import ApduResult, JobRecord, audit_record, job_record
from gpchannel.server.transports import SCP81_TRANSPORTS, JobTransport

__all__ = ["AdminOutcome", "AdminStep", "AdminStore", "Completion"]


@dataclass(frozen=True)
class Completion:
    """The answer to one delivery (what :meth:`JobStore.complete_job` takes)."""

    delivery_id: str
    results: tuple[ApduResult, ...]
    state: JobState
    reason: str | None = None


@dataclass(frozen=True)
class AdminStep:
    """One session's store work: ``complete`` first (when given), then the card's next job (``deliver``).

    ``first``: the session's first POST. When the card has a job SENT by an admin session (``is_admin`` of
    :meth:`AdminStore.admin_round` says which: not one the SMS fallback sent), nothing is delivered and that job
    is returned as ``outstanding``: the session decides (resend or fail it, server/ras.py rules 3 and 4)."""

    card_id: int
    complete: Completion | None = None
    deliver: bool = True
    first: bool = False


@dataclass(frozen=True)
class AdminOutcome:
    completed: JobRecord | None = None
    """What complete_job would have returned (None: no completion, or an unknown delivery)."""
    outstanding: JobRecord | None = None
    """A ``first`` step's card had this admin delivery SENT: nothing was delivered."""
    delivered: JobRecord | None = None
    """The job moved to SENT for this step's card (its script is to leave now), or None: nothing more."""


_COMPLETE = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        results=bindparam("b_results", type_=jobs.c.results.type),
        reason=bindparam("b_reason"),
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)
_SEND = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        delivery_id=bindparam("b_delivery"),
        lease_owner=bindparam("b_owner"),
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)
"""Built once: the hot path pays for the statements' compiled-cache lookup only."""


class AdminStore(StoreCore):
    """Admin session rounds (part of the Repository facade)."""

    def admin_round(
        self,
        steps: Sequence[AdminStep],
        *,
        owner: str,
        now: datetime,
        is_admin: Callable[[JobRecord], bool],
        transports: Collection[JobTransport] = SCP81_TRANSPORTS,
    ) -> list[AdminOutcome]:
        """Every step in one transaction (module docstring); the outcomes in the order of the steps. A
        RepositoryError rolls the whole round back: run the steps one round each then, to find whose it was."""
        check_aware("now", now)
        if not steps:
            return []
        kinds = [JobTransport(t).value for t in transports]
        with self._write() as c:
            return [out for part in _parts(steps) for out in _round(c, part, kinds, owner, now, is_admin)]


def _parts(steps: Sequence[AdminStep]) -> list[list[AdminStep]]:
    """The steps cut where a first POST names a card an earlier step of the part named: it must see what that
    step delivered as outstanding, as it would one step at a time (the parts run in order, in one transaction)."""
    parts: list[list[AdminStep]] = [[]]
    named: set[int] = set()  # the cards the current part names (a set: a round holds hundreds of steps)
    for step in steps:
        if step.first and step.card_id in named:
            parts.append([])
            named = set()
        parts[-1].append(step)
        named.add(step.card_id)
    return parts


def _round(
    c: Connection,
    steps: Sequence[AdminStep],
    kinds: list[str],
    owner: str,
    now: datetime,
    is_admin: Callable[[JobRecord], bool],
) -> list[AdminOutcome]:
    completed = _complete_all(c, [s.complete for s in steps], now)
    outstanding = _outstanding(c, {s.card_id for s in steps if s.first}, kinds, is_admin)
    wanted = [s.deliver and not (s.first and s.card_id in outstanding) for s in steps]
    delivered = _deliver_all(c, [s.card_id for s, w in zip(steps, wanted, strict=True) if w], kinds, owner, now)
    queue = iter(delivered)
    return [
        AdminOutcome(
            completed=done,
            outstanding=outstanding.get(step.card_id) if step.first else None,
            delivered=next(queue) if want else None,
        )
        for step, done, want in zip(steps, completed, wanted, strict=True)
    ]


def _complete_all(c: Connection, completions: Sequence[Completion | None], now: datetime) -> list[JobRecord | None]:
    """complete_job for each completion, in order (None where there is none): the rows locked in one query,
    the changed ones updated in one executemany."""
    ids = sorted({x.delivery_id for x in completions if x is not None})
    if not ids:
        return [None] * len(completions)
    current = {
        row.delivery_id: job_record(row)
        for row in c.execute(select(jobs).where(jobs.c.delivery_id.in_(ids)).order_by(jobs.c.id).with_for_update())
    }
    out: list[JobRecord | None] = []
    changes: dict[int, dict[str, object]] = {}
    for completion in completions:
        if completion is None:
            out.append(None)
            continue
        state = JobState(completion.state)
        if state not in (JobState.DONE, JobState.FAILED):
            raise RepositoryError(f"a job completes as done or failed, not {state}")
        job = current.get(completion.delivery_id)
        event = JobEvent.DONE if state is JobState.DONE else JobEvent.FAIL
        if job is not None and job.state in sources(event):
            results = tuple(ApduResult(r.command, r.response, r.sw) for r in completion.results)
            job = replace(
                job, state=next_state(job.state, event), results=results, reason=completion.reason,
                lease_until=None, updated_at=now,
            )  # fmt: skip
            current[completion.delivery_id] = job
            changes[job.id] = {
                "b_id": job.id, "b_state": job.state.value, "b_results": [r.to_json() for r in results],
                "b_reason": completion.reason, "b_now": now,
            }  # fmt: skip
        out.append(job)
    if changes:
        c.execute(_COMPLETE, list(changes.values()))
    return out


def _outstanding(
    c: Connection, card_ids: set[int], kinds: list[str], is_admin: Callable[[JobRecord], bool]
) -> dict[int, JobRecord]:
    """The oldest admin delivery still SENT of each of these cards (JobStore.sent_job, SMS ones skipped)."""
    if not card_ids:
        return {}
    rows = c.execute(
        select(jobs)
        .where(jobs.c.card_id.in_(sorted(card_ids)), jobs.c.state == JobState.SENT.value, jobs.c.transport.in_(kinds))
        .order_by(jobs.c.id)
    )
    out: dict[int, JobRecord] = {}
    for row in rows:
        job = job_record(row)
        if job.card_id not in out and is_admin(job):
            out[job.card_id] = job
    return out


def _deliver_all(
    c: Connection, card_ids: list[int], kinds: list[str], owner: str, now: datetime
) -> list[JobRecord | None]:
    """deliver_next_job for each card, in order (a card named twice gets its next two jobs): the QUEUED jobs of
    all of them locked in one query, the SENT marks in one executemany, the audit records in one append."""
    if not card_ids:
        return []
    queued: dict[int, list[JobRecord]] = defaultdict(list)
    for row in c.execute(
        select(jobs)
        .where(jobs.c.card_id.in_(sorted(set(card_ids))), jobs.c.state == JobState.QUEUED.value,
               jobs.c.transport.in_(kinds))
        .order_by(jobs.c.id)
        .with_for_update()
    ):  # fmt: skip
        queued[row.card_id].append(job_record(row))
    out: list[JobRecord | None] = []
    for card_id in card_ids:
        waiting = queued[card_id]
        due = waiting[0].not_before if waiting else None
        if not waiting or (due is not None and due > now):
            out.append(None)  # nothing queued, or the next one is not due: a later job never overtakes it
            continue
        job = waiting.pop(0)
        sent = replace(
            job, state=next_state(job.state, JobEvent.SEND), delivery_id=secrets.token_hex(16),
            lease_owner=owner, lease_until=None, updated_at=now,
        )  # fmt: skip
        out.append(sent)
    leaving = [job for job in out if job is not None]
    if leaving:
        c.execute(
            _SEND,
            [{"b_id": j.id, "b_state": j.state.value, "b_delivery": j.delivery_id, "b_owner": owner, "b_now": now}
             for j in leaving],
        )  # fmt: skip
        records = [audit_record(j, owner, now, f"sent ({j.transport.value} admin session)") for j in leaving]
        audit.append_many(c, records)
    return out
