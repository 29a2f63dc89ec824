"""InsertionWatch (the vpcd reconnect trap) with hand-given times: no sockets, no sleeping."""

from __future__ import annotations

import pytest

from gpchannel.io.vpcd import VpcdControl
from gpchannel.io.vpcd_watch import DEFAULT_PATIENCE, MAX_PATIENCE, InsertionWatch, next_patience

OFF, ON, RESET, ATR = (int(c) for c in (VpcdControl.POWER_OFF, VpcdControl.POWER_ON, VpcdControl.RESET, 0x04))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_connection_vpcd_never_spoke_on_is_not_stuck(clock: Clock) -> None:
    # Still in vpcd's listen backlog (another card holds the slot): nothing to conclude, however long.
    watch = InsertionWatch(1.5)
    clock.now += 3600
    assert watch.deadline() is None and not watch.stuck(clock.now)


def test_only_atr_requests_for_the_patience_is_stuck(clock: Clock) -> None:
    watch = InsertionWatch(1.5)
    assert not watch.control(ATR, clock.now)  # the presence poll that accepted the connection
    assert watch.deadline() == 101.5
    for _ in range(3):
        clock.now += 0.4
        assert not watch.control(ATR, clock.now)
        assert not watch.stuck(clock.now)
    clock.now = 101.4999
    assert not watch.stuck(clock.now)
    clock.now = 101.5
    assert watch.stuck(clock.now) and not watch.inserted


def test_power_offs_do_not_disarm_it(clock: Clock) -> None:
    # A power-down to a card never powered on this connection is vpcd talking to the card before.
    watch = InsertionWatch(1.5)
    watch.control(ATR, clock.now)
    watch.control(OFF, clock.now)
    clock.now += 1.5
    assert watch.stuck(clock.now)


@pytest.mark.parametrize("code", [ON, RESET])
def test_power_on_or_reset_is_the_insertion(clock: Clock, code: int) -> None:
    watch = InsertionWatch(1.5)
    watch.control(ATR, clock.now)
    clock.now += 0.01
    assert watch.control(code, clock.now) is True  # reported once ...
    assert watch.inserted
    assert (
        watch.control(ON, clock.now) is False and watch.control(RESET, clock.now) is False
    )  # ... not again on this connection
    clock.now += 3600
    watch.control(OFF, clock.now)  # pcscd's idle power-down, then polls only: the card is still in the reader
    watch.control(ATR, clock.now)
    assert watch.deadline() is None and not watch.stuck(clock.now)


def test_power_on_as_the_first_message(clock: Clock) -> None:
    watch = InsertionWatch(1.5)
    assert watch.control(ON, clock.now)
    clock.now += 10
    assert not watch.stuck(clock.now)


def test_an_apdu_disarms_it_without_an_insertion(clock: Clock) -> None:
    # vpcd believes a powered card is there and a client uses it: keep the connection.
    watch = InsertionWatch(1.5)
    watch.control(ATR, clock.now)
    watch.apdu(clock.now)
    clock.now += 10
    assert not watch.stuck(clock.now) and not watch.inserted


def test_an_unknown_control_code_disarms_it(clock: Clock) -> None:
    watch = InsertionWatch(1.5)
    watch.control(ATR, clock.now)
    watch.control(0x7F, clock.now)
    clock.now += 10
    assert not watch.stuck(clock.now)


def test_no_patience_never_stuck(clock: Clock) -> None:
    watch = InsertionWatch(None)
    watch.control(ATR, clock.now)
    clock.now += 3600
    assert watch.deadline() is None and not watch.stuck(clock.now)


def test_the_clock_starts_at_the_first_message(clock: Clock) -> None:
    watch = InsertionWatch(1.5)
    clock.now += 60  # connected long ago, in the backlog
    watch.control(ATR, clock.now)
    clock.now += 1.0
    assert not watch.stuck(clock.now)
    clock.now += 0.5
    assert watch.stuck(clock.now)


def test_patience_doubles_while_stuck_and_resets_after_an_insertion() -> None:
    patience = DEFAULT_PATIENCE
    seen = []
    for _ in range(7):
        patience = next_patience(patience, stuck=True)
        seen.append(patience)
    assert seen == [3.0, 6.0, 12.0, 24.0, MAX_PATIENCE, MAX_PATIENCE, MAX_PATIENCE]
    assert next_patience(patience, stuck=False) == DEFAULT_PATIENCE
    assert next_patience(0.2, stuck=True, base=0.2) == 0.4
