"""StateTemplate: a fleet card's initial state from the template equals the one built from its profile, for the
default base profile and for one that fixes the CPLC; a template that does not reproduce the profile is not
used; cards cloned from one template share nothing mutable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gpchannel.card.state_tracker import CHECK_ENV
from gpchannel.emulator.app import emulator_applets
from gpchannel.emulator.fleet import BASE_PROFILE, generate_fleet
from gpchannel.emulator.fleet_template import StateTemplate
from gpchannel.errors import ProfileError


def test_template_states_equal_the_profile_states(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path / "fleet", 12)
    registry = emulator_applets()
    for card in fleet.cards:
        assert fleet.initial_state(card, registry).to_dict() == fleet._personalised(card, registry).to_dict()
        assert fleet.initial_state(card).to_dict() == fleet._personalised(card, None).to_dict()
    assert all(template.active for template in fleet._templates.values())


def test_a_base_profile_with_its_own_cplc(tmp_path: Path) -> None:
    profile = BASE_PROFILE.replace("[card]\n", '[card]\ncplc = "' + "9F7F2A" * 14 + '"\n', 1)
    fleet = generate_fleet(tmp_path / "fleet", 5, profile=profile)
    for card in fleet.cards:
        state = fleet.initial_state(card)
        assert state.to_dict() == fleet._personalised(card, None).to_dict()
        assert state.cplc == bytes.fromhex("9F7F2A" * 14)


def test_a_template_that_differs_from_the_profile_is_not_used(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path / "fleet", 3)

    def lying_tables(n: int) -> tuple[str, dict[str, object], dict[str, object]]:
        iccid, ota, scp81 = fleet.card_tables(fleet.cards[n])
        return iccid, ota, {**scp81, "uri": "/elsewhere"}

    template = StateTemplate({}, lambda n: fleet._personalised(fleet.cards[n], None), lying_tables, 3)
    assert not template.active
    assert template.state(1).to_dict() == fleet._personalised(fleet.cards[1], None).to_dict()


def test_cards_from_one_template_stay_independent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two new cards opened from one template and changed differently (keys, applet data, lists, the OTA
    counter): neither sees the other's change, the template's next card is the profile's, and the state check
    finds every change tracked."""
    monkeypatch.setenv(CHECK_ENV, "1")
    fleet = generate_fleet(tmp_path / "fleet", 4)
    a, b = (fleet.open_card(card) for card in fleet.cards[:2])
    assert a.ctx.tracker.check_enabled and b.ctx.tracker.check_enabled
    isd = "A000000151000000"  # the committed forms share the template's parts (never changed in place)
    assert a.ctx.tracker.committed.entries["apps"][isd] is b.ctx.tracker.committed.entries["apps"][isd]
    sa, sb = a.ctx.state, b.ctx.state
    sa.isd.sd.keysets[0].sequence_counter = 7  # type: ignore[union-attr]
    sb.isd.sd.keysets[0].enc = bytes(16)  # type: ignore[union-attr]
    sa.applications[1].data["a"] = [1]
    sb.applications[1].implicit_selection.append(0x80)
    sa.ota["ota"]["keysets"][0]["counter"] = 5
    sb.load_files[0].modules.append(bytes.fromhex("A0000001515351"))
    for core in (a, b):
        core.ctx.tracker.accept(core.ctx.tracker.pending())
        core.ctx.tracker.check()
    assert sb.isd.sd.keysets[0].sequence_counter == 0  # type: ignore[union-attr]
    assert sa.isd.sd.keysets[0].enc == bytes.fromhex("404142434445464748494A4B4C4D4E4F")  # type: ignore[union-attr]
    assert "a" not in sb.applications[1].data and sa.applications[1].implicit_selection == []
    assert sb.ota["ota"]["keysets"][0]["counter"] == 0 and len(sa.load_files[0].modules) == 1
    for card in fleet.cards[2:]:
        assert fleet.initial_state(card).to_dict() == fleet._personalised(card, None).to_dict()
        assert fleet.initial_state(card, emulator_applets()).to_dict() == fleet.open_card(card).ctx.state.to_dict()


def test_the_card_tables_are_checked_per_shape(tmp_path: Path) -> None:
    """A card whose key has another length than the template's is checked, and refused as the profile would."""
    fleet = generate_fleet(tmp_path / "fleet", 3)
    cards = [*fleet.cards[:2], dataclasses.replace(fleet.cards[2], kic=bytes(5))]
    template = StateTemplate(
        {}, lambda n: fleet._personalised(cards[n], None), lambda n: fleet.card_tables(cards[n]), 2
    )
    assert template.active
    with pytest.raises(ProfileError, match=r"ota\.keysets\[0\]\.kic"):
        template.state(2)
