"""The states of a job (``jobs.state``).

Job life cycle (``JobState``)::

    QUEUED --deliver_next_job / mark_sent--> SENT --complete_job--> DONE | FAILED
      |  ^                                     |
      |  +------- fail_job(retry_at=...) ------+
      +--cancel_job / cancel_campaign--> CANCELLED        fail_job() without retry_at --> FAILED
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobState"]


class JobState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)
