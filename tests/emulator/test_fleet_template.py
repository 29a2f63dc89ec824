"""StateTemplate: a fleet card's initial state from the template equals the one built from its profile, for the
default base profile and for one that fixes the CPLC; a template that does not reproduce the profile is not
used."""

from __future__ import annotations

from pathlib import Path

from gpchannel.emulator.app import emulator_applets
from gpchannel.emulator.fleet import BASE_PROFILE, generate_fleet
from gpchannel.emulator.fleet_template import StateTemplate


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
