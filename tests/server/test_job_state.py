"""gpchannel.server.job_state on its own: every allowed transition of both tables gives the table's state, every
other (state, event) pair is refused with RepositoryError, and the derived helpers agree with the tables."""

from __future__ import annotations

import itertools

import pytest

from gpchannel.errors import RepositoryError
from gpchannel.server.job_state import (
    FLIGHT_TRANSITIONS,
    JOB_TRANSITIONS,
    FlightEvent,
    FlightState,
    JobEvent,
    JobState,
    next_flight_state,
    next_state,
    sources,
    target,
)

ALLOWED_JOB = {
    (JobState.QUEUED, JobEvent.SEND): JobState.SENT,
    (JobState.QUEUED, JobEvent.RETRY): JobState.QUEUED,
    (JobState.QUEUED, JobEvent.GIVE_UP): JobState.FAILED,
    (JobState.QUEUED, JobEvent.CANCEL): JobState.CANCELLED,
    (JobState.SENT, JobEvent.DONE): JobState.DONE,
    (JobState.SENT, JobEvent.FAIL): JobState.FAILED,
    (JobState.SENT, JobEvent.RETRY): JobState.QUEUED,
    (JobState.SENT, JobEvent.GIVE_UP): JobState.FAILED,
}
ALLOWED_FLIGHT = {
    (FlightState.CLAIMED, FlightEvent.SEND): FlightState.SENT,
    (FlightState.CLAIMED, FlightEvent.TRIGGER): FlightState.TRIGGERED,
    (FlightState.TRIGGERED, FlightEvent.FALL_BACK): FlightState.FALLBACK,
    (FlightState.FALLBACK, FlightEvent.SEND): FlightState.SENT,
}
REFUSED_JOB = [p for p in itertools.product(JobState, JobEvent) if p not in ALLOWED_JOB]
REFUSED_FLIGHT = [p for p in itertools.product(FlightState, FlightEvent) if p not in ALLOWED_FLIGHT]


def test_the_tables_are_the_documented_ones() -> None:
    assert dict(JOB_TRANSITIONS) == ALLOWED_JOB
    assert dict(FLIGHT_TRANSITIONS) == ALLOWED_FLIGHT
    assert len(REFUSED_JOB) == len(JobState) * len(JobEvent) - 8
    assert len(REFUSED_FLIGHT) == len(FlightState) * len(FlightEvent) - 4


@pytest.mark.parametrize(("pair", "after"), list(ALLOWED_JOB.items()), ids=lambda v: str(v))
def test_every_allowed_job_transition(pair: tuple[JobState, JobEvent], after: JobState) -> None:
    state, event = pair
    assert next_state(state, event) is after
    assert next_state(state.value, event) is after  # the column's text works too


@pytest.mark.parametrize("pair", REFUSED_JOB, ids=lambda v: str(v))
def test_every_other_job_transition_is_refused(pair: tuple[JobState, JobEvent]) -> None:
    state, event = pair
    with pytest.raises(RepositoryError, match=f"a {state} job cannot take the event {event}"):
        next_state(state, event)


@pytest.mark.parametrize("state", [s for s in JobState if s.final])
def test_a_final_job_takes_no_event(state: JobState) -> None:
    for event in JobEvent:
        with pytest.raises(RepositoryError):
            next_state(state, event)


def test_final_states_are_exactly_those_without_a_way_out() -> None:
    leaving = {state for state, _event in JOB_TRANSITIONS}
    assert {s for s in JobState if s.final} == set(JobState) - leaving


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError):
        next_state("lost", JobEvent.SEND)
    with pytest.raises(ValueError):
        next_flight_state("lost", FlightEvent.SEND)


def test_sources_of_each_event() -> None:
    assert sources(JobEvent.SEND) == (JobState.QUEUED,)
    assert sources(JobEvent.CANCEL) == (JobState.QUEUED,)
    assert sources(JobEvent.DONE) == sources(JobEvent.FAIL) == (JobState.SENT,)
    assert sources(JobEvent.RETRY) == sources(JobEvent.GIVE_UP) == (JobState.QUEUED, JobState.SENT)
    for event in JobEvent:
        assert set(sources(event)) == {s for s, e in JOB_TRANSITIONS if e is event}


def test_each_event_leads_to_one_state() -> None:
    assert {e: target(e) for e in JobEvent} == {
        JobEvent.SEND: JobState.SENT,
        JobEvent.DONE: JobState.DONE,
        JobEvent.FAIL: JobState.FAILED,
        JobEvent.RETRY: JobState.QUEUED,
        JobEvent.GIVE_UP: JobState.FAILED,
        JobEvent.CANCEL: JobState.CANCELLED,
    }
    for event in JobEvent:
        assert {next_state(s, event) for s in sources(event)} == {target(event)}


@pytest.mark.parametrize(("pair", "after"), list(ALLOWED_FLIGHT.items()), ids=lambda v: str(v))
def test_every_allowed_flight_transition(pair: tuple[FlightState, FlightEvent], after: FlightState) -> None:
    state, event = pair
    assert next_flight_state(state, event) is after


@pytest.mark.parametrize("pair", REFUSED_FLIGHT, ids=lambda v: str(v))
def test_every_other_flight_transition_is_refused(pair: tuple[FlightState, FlightEvent]) -> None:
    state, event = pair
    with pytest.raises(RepositoryError, match=f"a {state} job in flight cannot take the event {event}"):
        next_flight_state(state, event)


def test_a_flight_state_names_the_stored_state_and_whether_it_waits_to_send() -> None:
    assert {s: s.stored for s in FlightState} == {
        FlightState.CLAIMED: JobState.QUEUED,
        FlightState.TRIGGERED: JobState.QUEUED,
        FlightState.FALLBACK: JobState.QUEUED,
        FlightState.SENT: JobState.SENT,
    }
    assert {s for s in FlightState if s.unsent} == {FlightState.CLAIMED, FlightState.FALLBACK}
    # each flight transition agrees with the stored machine: SEND is the stored SEND, the others keep QUEUED
    for (state, event), after in FLIGHT_TRANSITIONS.items():
        if state.stored is after.stored:
            assert after.stored is JobState.QUEUED
        else:
            assert event is FlightEvent.SEND
            assert next_state(state.stored, JobEvent.SEND) is after.stored
