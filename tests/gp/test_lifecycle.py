"""Life cycle coding and transitions (GP 2.3.1, chapter 5 and Tables 11-3 to 11-6)."""

from __future__ import annotations

import pytest

from gpchannel.errors import DecodeError
from gpchannel.gp import lifecycle as lc
from gpchannel.gp.lifecycle import CardLifeCycle


def test_card_coding_table_11_6() -> None:
    assert [int(c) for c in CardLifeCycle] == [0x01, 0x07, 0x0F, 0x7F, 0xFF]
    assert CardLifeCycle.from_byte(0x0F) is CardLifeCycle.SECURED
    with pytest.raises(DecodeError):
        CardLifeCycle.from_byte(0x03)
    assert CardLifeCycle.from_name("card_locked") is CardLifeCycle.CARD_LOCKED
    with pytest.raises(ValueError, match="OP_READY"):
        CardLifeCycle.from_name("LOCKED")


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (CardLifeCycle.OP_READY, CardLifeCycle.INITIALIZED, True),
        (CardLifeCycle.INITIALIZED, CardLifeCycle.SECURED, True),
        (CardLifeCycle.SECURED, CardLifeCycle.CARD_LOCKED, True),
        (CardLifeCycle.CARD_LOCKED, CardLifeCycle.SECURED, True),  # reversible (5.1.1.4)
        (CardLifeCycle.OP_READY, CardLifeCycle.TERMINATED, True),  # from any state (5.1.1.5)
        (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED, True),
        (CardLifeCycle.SECURED, CardLifeCycle.INITIALIZED, False),  # irreversible (5.1.1.3)
        (CardLifeCycle.INITIALIZED, CardLifeCycle.OP_READY, False),
        (CardLifeCycle.INITIALIZED, CardLifeCycle.CARD_LOCKED, False),  # only from SECURED
        (CardLifeCycle.TERMINATED, CardLifeCycle.SECURED, False),
        (CardLifeCycle.SECURED, CardLifeCycle.SECURED, False),
    ],
)
def test_card_transitions_figure_5_1(current: CardLifeCycle, target: CardLifeCycle, allowed: bool) -> None:
    assert current.can_become(target) is allowed


def test_application_transitions_figure_5_2() -> None:
    lc.check_application_transition(0x03, 0x07)
    lc.check_application_transition(0x07, 0x0F)  # into an application specific state
    lc.check_application_transition(0x07, 0x87)  # lock
    lc.check_application_transition(0x87, 0x07)  # back to the previous state
    lc.check_application_transition(0x03, 0x83)
    for current, target in [(0x07, 0x03), (0x83, 0x07), (0x07, 0x83), (0x0F, 0x07), (0x07, 0x05)]:
        with pytest.raises(ValueError):
            lc.check_application_transition(current, target)


def test_sd_transitions_figure_5_3() -> None:
    lc.check_sd_transition(0x03, 0x07)
    lc.check_sd_transition(0x07, 0x0F)
    lc.check_sd_transition(0x0F, 0x8F)
    lc.check_sd_transition(0x8F, 0x0F)
    for current, target in [(0x0F, 0x07), (0x8F, 0x07), (0x07, 0x8F), (0x07, 0x17)]:
        with pytest.raises(ValueError):
            lc.check_sd_transition(current, target)


def test_selectable_and_names() -> None:
    assert lc.is_selectable(0x07) and lc.is_selectable(0x0F) and lc.is_selectable(0x7F)
    assert not lc.is_selectable(0x03) and not lc.is_selectable(0x87)
    assert lc.application_state_name(0x87) == "LOCKED(SELECTABLE)"
    assert lc.sd_state_name(0x0F) == "PERSONALIZED"
    assert lc.application_state_name(0x1F) == "APPLICATION_SPECIFIC(1F)"
