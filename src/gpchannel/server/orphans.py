"""The crash rule of the SCP80 worker (:mod:`gpchannel.server.scp80_worker`): SMS jobs left SENT by a worker that
stopped.

Nobody holds such a job in memory and its PoR (if any) went to the dead bind. Any worker's round FAILS the SMS jobs
in state SENT that it does not hold and whose send (``updated_at``) is older than their ``por_timeout`` +
``lease_seconds`` (the grace lets a live owner's own timeout act first), with the reason :data:`ORPHAN_REASON`. It
does not resend them: the packet may have run on the card (ETSI TS 102 225 5.1.1: a counter value is never used
twice, and a script is never run twice blindly); an operator decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any, Protocol

from gpchannel.server.campaigns import CampaignSettings
from gpchannel.server.job_state import JobState
from gpchannel.server.repository import JobRecord, Repository
from gpchannel.server.sender import SenderRegistry

__all__ = ["ORPHAN_REASON", "OrphanCounts", "settle_orphans"]

_log = logging.getLogger("gpchannel.server.scp80_worker")

ORPHAN_REASON = "outcome unknown: the worker that sent it stopped before its PoR came (not resent)"


class OrphanCounts(Protocol):
    failed: int


async def settle_orphans(
    *,
    repo: Repository,
    db: Callable[..., Awaitable[Any]],
    senders: SenderRegistry,
    held: Collection[int],
    settings_for: Callable[[JobRecord], Awaitable[CampaignSettings]],
    lease_seconds: float,
    stats: OrphanCounts,
    now: datetime,
) -> None:
    """FAIL the orphaned SENT jobs (see the module docstring); ``held``: the job ids the calling worker holds."""
    after = 0
    while True:
        sent: list[JobRecord] = await db(repo.jobs, state=JobState.SENT, after_id=after, limit=1000)
        if not sent:
            return
        for job in sent:
            sender = senders.get(job.transport)
            if job.id in held or sender is None or not sender.settles_orphan(job):
                continue  # an admin session's delivery follows the admin server's rules
            settings = await settings_for(job)
            if job.updated_at + timedelta(seconds=settings.por_timeout + lease_seconds) > now:
                continue
            stats.failed += 1
            _log.warning(
                "job %d: SENT by %s, no PoR since %s: failed, outcome unknown",
                job.id,
                job.lease_owner,
                job.updated_at.isoformat(),
            )
            await db(repo.complete_job, job.delivery_id or "", [], state=JobState.FAILED, reason=ORPHAN_REASON)
        after = sent[-1].id
