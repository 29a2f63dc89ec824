"""The campaign aggregate of the store: a script for many cards, one job per card, created atomically."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, and_, func, select, update

from gpchannel.errors import RepositoryError
from gpchannel.server.db import campaigns, cards, jobs
from gpchannel.server.job_state import JobEvent, JobState, sources, target
from gpchannel.server.store.core import StoreCore, check_aware, check_script, check_target
from gpchannel.server.transports import JobTransport

__all__ = ["CampaignRecord", "CampaignState", "CampaignStore", "campaign_record"]

_log = logging.getLogger("gpchannel.server.repository")

# create_campaign refreshes the planner's statistics when it adds this many jobs or more.
_ANALYZE_AFTER_ROWS = 500


class CampaignState(StrEnum):
    RUNNING = "running"
    CANCELLED = "cancelled"
    FINISHED = "finished"


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    transport: JobTransport
    target: bytes
    script: tuple[bytes, ...]
    settings: Mapping[str, Any]
    state: CampaignState
    created_at: datetime
    updated_at: datetime


def campaign_record(row: Row[Any]) -> CampaignRecord:
    m = row._mapping
    return CampaignRecord(
        id=m["id"],
        name=m["name"],
        transport=JobTransport(m["transport"]),
        target=bytes.fromhex(m["target"]),
        script=tuple(bytes.fromhex(c) for c in m["script"]),
        settings=dict(m["settings"]),
        state=CampaignState(m["state"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class CampaignStore(StoreCore):
    """Campaigns and the jobs they queue (part of the Repository facade)."""

    def create_campaign(
        self,
        *,
        name: str,
        transport: JobTransport,
        script: Sequence[bytes],
        target: bytes,
        card_ids: Sequence[int],
        settings: Mapping[str, Any],
        not_before: datetime | None = None,
    ) -> int:
        """A RUNNING campaign and one QUEUED job per card (duplicates in ``card_ids`` count once), atomically."""
        transport = JobTransport(transport)
        hex_script = check_script(script)
        hex_target = check_target(target)
        if not_before is not None:
            check_aware("not_before", not_before)
        now = self._clock()
        unique_ids = list(dict.fromkeys(card_ids))
        with self._write() as c:
            campaign_id = int(
                c.execute(
                    campaigns.insert()
                    .values(
                        name=name,
                        transport=transport.value,
                        target=hex_target,
                        script=hex_script,
                        settings=dict(settings),
                        state=CampaignState.RUNNING.value,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(campaigns.c.id)
                ).scalar_one()
            )
            known: set[int] = set()
            for start in range(0, len(unique_ids), 1000):
                chunk = unique_ids[start : start + 1000]
                known.update(c.execute(select(cards.c.id).where(cards.c.id.in_(chunk))).scalars())
            missing = [i for i in unique_ids if i not in known]
            if missing:
                raise RepositoryError(f"no card {missing[:10]}{' ...' if len(missing) > 10 else ''}")
            rows = [
                {
                    "campaign_id": campaign_id,
                    "card_id": card_id,
                    "transport": transport.value,
                    "target": hex_target,
                    "script": hex_script,
                    "state": JobState.QUEUED.value,
                    "attempts": 0,
                    "not_before": not_before or now,
                    "created_at": now,
                    "updated_at": now,
                }
                for card_id in unique_ids
            ]
            if rows:
                c.execute(jobs.insert(), rows)
        if len(rows) >= _ANALYZE_AFTER_ROWS:
            self._analyze_jobs()
        return campaign_id

    def _analyze_jobs(self) -> None:
        """Refresh the planner's statistics of ``jobs`` after a bulk insert: on a fresh table, before autovacuum
        runs, PostgreSQL otherwise plans ``claim_jobs(one_per_card=True)`` as a scan of the whole queue per
        candidate (seconds instead of milliseconds for 10,000 jobs). Best effort: a failure is only logged."""
        try:
            with self._write() as c:
                if self.dialect == "sqlite":
                    c.exec_driver_sql("PRAGMA analysis_limit = 1000")  # sample, do not read the whole table
                c.exec_driver_sql("ANALYZE jobs")
        except RepositoryError as exc:
            _log.info("ANALYZE jobs failed: %s", exc)

    def campaign(self, campaign_id: int) -> CampaignRecord | None:
        with self._read() as c:
            row = c.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one_or_none()
        return None if row is None else campaign_record(row)

    def campaigns(self) -> list[CampaignRecord]:
        with self._read() as c:
            rows = c.execute(select(campaigns).order_by(campaigns.c.id)).all()
        return [campaign_record(r) for r in rows]

    def campaign_card_otas(self, campaign_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """The ``ota`` documents (where the inventory tags are) of the distinct cards of each campaign, in one
        query: what a token limited to a card tag needs to tell which campaigns it may see."""
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in campaign_ids}
        if not campaign_ids:
            return out
        with self._read() as c:
            pairs = (
                select(jobs.c.campaign_id, jobs.c.card_id)
                .where(jobs.c.campaign_id.in_(sorted(set(campaign_ids))))
                .distinct()
                .subquery()
            )
            rows = c.execute(select(pairs.c.campaign_id, cards.c.ota).join(cards, cards.c.id == pairs.c.card_id)).all()
        for campaign_id, ota in rows:
            out[int(campaign_id)].append(dict(ota or {}))
        return out

    def campaign_progress(self, campaign_id: int) -> dict[JobState, int]:
        """How many of the campaign's jobs are in each state (every state present, 0 when none)."""
        with self._read() as c:
            rows = c.execute(
                select(jobs.c.state, func.count()).where(jobs.c.campaign_id == campaign_id).group_by(jobs.c.state)
            ).all()
        progress = dict.fromkeys(JobState, 0)
        for state, count in rows:
            progress[JobState(state)] = int(count)
        return progress

    def cancel_campaign(self, campaign_id: int) -> int:
        """The campaign becomes CANCELLED (if RUNNING) and its QUEUED jobs CANCELLED; returns how many jobs.
        Jobs already SENT run to their end."""
        now = self._clock()
        with self._write() as c:
            state = c.execute(
                select(campaigns.c.state).where(campaigns.c.id == campaign_id).with_for_update()
            ).scalar_one_or_none()
            if state is None:
                raise RepositoryError(f"no campaign {campaign_id}")
            if state == CampaignState.RUNNING.value:
                c.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(state=CampaignState.CANCELLED.value, updated_at=now)
                )
            result = c.execute(
                update(jobs)
                .where(
                    and_(
                        jobs.c.campaign_id == campaign_id,
                        jobs.c.state.in_([s.value for s in sources(JobEvent.CANCEL)]),
                    )
                )
                .values(state=target(JobEvent.CANCEL).value, lease_owner=None, lease_until=None, updated_at=now)
            )
            return int(result.rowcount)

    def finish_campaign(self, campaign_id: int) -> bool:
        """RUNNING -> FINISHED; False when the campaign was not RUNNING (another process finished it first)."""
        with self._write() as c:
            result = c.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id, campaigns.c.state == CampaignState.RUNNING.value)
                .values(state=CampaignState.FINISHED.value, updated_at=self._clock())
            )
            return bool(result.rowcount == 1)

    def set_campaign_state(self, campaign_id: int, state: CampaignState) -> None:
        """Record a campaign's state (e.g. FINISHED once no job is QUEUED or SENT: the campaign runner decides)."""
        state = CampaignState(state)
        with self._write() as c:
            result = c.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(state=state.value, updated_at=self._clock())
            )
            if result.rowcount != 1:
                raise RepositoryError(f"no campaign {campaign_id}")
