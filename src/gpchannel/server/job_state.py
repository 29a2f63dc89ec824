"""The life cycle of a job, as two pure state machines: an enum of states and a transition table each.

**Stored** (:class:`JobState`, the ``jobs.state`` column), changed by the repository (:mod:`gpchannel.server.store`)::

    QUEUED --SEND (deliver_next_job / mark_sent)--> SENT --DONE / FAIL (complete_job)--> DONE | FAILED
      |  ^                                            |
      |  +-------------- RETRY (fail_job(retry_at)) --+      GIVE_UP (fail_job without retry_at) --> FAILED
      +--CANCEL (cancel_job / cancel_campaign)--> CANCELLED

RETRY and GIVE_UP apply to a QUEUED job too (a trigger that could not be sent). DONE, FAILED and CANCELLED are
final: no event applies to them (the repository leaves a final job unchanged: a duplicate PoR or a late answer is
harmless).

**In flight** (:class:`FlightState`): what an SMS worker holds in memory for a job it leased
(:mod:`gpchannel.server.scp80_worker`)::

    CLAIMED --SEND--> SENT (a secured packet out, waiting for its PoR: job SENT)
       |
       +--TRIGGER--> TRIGGERED (scp81+sms: the trigger SMS out, the job still QUEUED for the admin session)
                        |
                        +--FALL_BACK--> FALLBACK (no session in time, or the trigger refused) --SEND--> SENT

A flight leaves the worker (forgotten) when its job goes final or the lease is lost; that is not a state.

:func:`next_state` / :func:`next_flight_state` refuse an event that does not apply with
:class:`~gpchannel.errors.RepositoryError`. The tables are the only place these rules live.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from gpchannel.errors import RepositoryError

__all__ = [
    "FLIGHT_TRANSITIONS",
    "JOB_TRANSITIONS",
    "FlightEvent",
    "FlightState",
    "JobEvent",
    "JobState",
    "next_flight_state",
    "next_state",
    "sources",
    "target",
]


class JobState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobEvent(StrEnum):
    SEND = "send"  # a worker's mark_sent, or an admin session's deliver_next_job
    DONE = "done"  # the answer to the delivery: the script ran (complete_job)
    FAIL = "fail"  # the answer to the delivery: it failed (complete_job)
    RETRY = "retry"  # an attempt failed, the job is due again later (fail_job with retry_at)
    GIVE_UP = "give-up"  # an attempt failed, no more (fail_job)
    CANCEL = "cancel"  # an operator's cancel_job / cancel_campaign


JOB_TRANSITIONS: Mapping[tuple[JobState, JobEvent], JobState] = {
    (JobState.QUEUED, JobEvent.SEND): JobState.SENT,
    (JobState.QUEUED, JobEvent.RETRY): JobState.QUEUED,
    (JobState.QUEUED, JobEvent.GIVE_UP): JobState.FAILED,
    (JobState.QUEUED, JobEvent.CANCEL): JobState.CANCELLED,
    (JobState.SENT, JobEvent.DONE): JobState.DONE,
    (JobState.SENT, JobEvent.FAIL): JobState.FAILED,
    (JobState.SENT, JobEvent.RETRY): JobState.QUEUED,
    (JobState.SENT, JobEvent.GIVE_UP): JobState.FAILED,
}
"""(state, event) -> the next state; a pair not in the table is refused."""

_SOURCES: Mapping[JobEvent, tuple[JobState, ...]] = {
    event: tuple(s for s in JobState if (s, event) in JOB_TRANSITIONS) for event in JobEvent
}


def next_state(state: JobState | str, event: JobEvent) -> JobState:
    """The stored state after ``event``; RepositoryError when the event does not apply to ``state``."""
    current = JobState(state)
    following = JOB_TRANSITIONS.get((current, JobEvent(event)))
    if following is None:
        raise RepositoryError(f"a {current} job cannot take the event {JobEvent(event)}")
    return following


def sources(event: JobEvent) -> tuple[JobState, ...]:
    """The states ``event`` applies to, in declaration order (e.g. the WHERE of a bulk cancel)."""
    return _SOURCES[JobEvent(event)]


def target(event: JobEvent) -> JobState:
    """The one state ``event`` leads to from every state it applies to (a bulk UPDATE's new value)."""
    targets = {after for (_state, e), after in JOB_TRANSITIONS.items() if e is JobEvent(event)}
    if len(targets) != 1:
        raise RepositoryError(f"the event {JobEvent(event)} leads to {sorted(targets)}, not one state")
    return targets.pop()


class FlightState(StrEnum):
    CLAIMED = "claimed"  # leased by this worker, nothing sent yet (job QUEUED)
    TRIGGERED = "triggered"  # scp81+sms: the trigger SMS sent, the job QUEUED for the admin session
    FALLBACK = "fallback"  # scp81+sms: no session came; leased for the SMS fallback, nothing sent (job QUEUED)
    SENT = "sent"  # a secured packet with the script sent, waiting for its PoR (job SENT)

    @property
    def stored(self) -> JobState:
        """The job's stored state while the flight is in this state."""
        return JobState.SENT if self is FlightState.SENT else JobState.QUEUED

    @property
    def unsent(self) -> bool:
        """Nothing is on its way to the card yet: the flight waits for its turn to send."""
        return self in (FlightState.CLAIMED, FlightState.FALLBACK)


class FlightEvent(StrEnum):
    SEND = "send"  # the script's packet submitted (after mark_sent)
    TRIGGER = "trigger"  # the trigger SMS submitted (after next_counter)
    FALL_BACK = "fall-back"  # no admin session after the trigger: the script goes by SMS instead


FLIGHT_TRANSITIONS: Mapping[tuple[FlightState, FlightEvent], FlightState] = {
    (FlightState.CLAIMED, FlightEvent.SEND): FlightState.SENT,
    (FlightState.CLAIMED, FlightEvent.TRIGGER): FlightState.TRIGGERED,
    (FlightState.TRIGGERED, FlightEvent.FALL_BACK): FlightState.FALLBACK,
    (FlightState.FALLBACK, FlightEvent.SEND): FlightState.SENT,
}
"""(state, event) -> the next state of a job in flight; a pair not in the table is refused."""


def next_flight_state(state: FlightState | str, event: FlightEvent) -> FlightState:
    """The flight's state after ``event``; RepositoryError when the event does not apply to ``state``."""
    current = FlightState(state)
    following = FLIGHT_TRANSITIONS.get((current, FlightEvent(event)))
    if following is None:
        raise RepositoryError(f"a {current} job in flight cannot take the event {FlightEvent(event)}")
    return following
