"""The fleet generator: ICCIDs with their Luhn digit, per-card keys (random, or diversified from a master key and
checked against the openssl command line), the manifest round trip, the inventory, and a card's state created at
first use from its own keys."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from gpchannel.card.ota_targets import keyset_for
from gpchannel.emulator.fleet import (
    FLEET_FILE,
    Fleet,
    FleetSettings,
    diversify_card_key,
    generate_fleet,
    luhn_digit,
    write_inventory,
)
from gpchannel.errors import DecodeError, ProfileError
from tests.vectors import VectorCase, cases, params


@pytest.mark.parametrize("case", params("emulator/fleet_kdf.json", "fleet-key-diversification"))
def test_diversified_key_equals_openssl_kbkdf(case: VectorCase) -> None:
    key = diversify_card_key(
        case.hex_in("master"), case.inputs["purpose"], case.inputs["iccid"], int(case.inputs["length"])
    )
    assert key == case.hex_out("key")


def test_luhn_digit_of_the_iso_7812_example() -> None:
    (case,) = cases("emulator/fleet_kdf.json", "luhn")
    assert luhn_digit(case.inputs["digits"]) == case.expected["check"]


def test_master_key_must_be_an_aes_key() -> None:
    with pytest.raises(ValueError, match="AES key"):
        diversify_card_key(bytes(8), "KIC", "8988211000000000012")


def test_generated_fleet_has_unique_numbers_valid_iccids_and_distinct_random_keys(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path / "f", 50)
    assert len(fleet) == 50
    assert len({c.iccid for c in fleet}) == len({c.msisdn for c in fleet}) == 50
    for card in fleet:
        assert len(card.iccid) == 19 and card.iccid.startswith("89882110")
        assert luhn_digit(card.iccid[:-1]) == card.iccid[-1]
        assert card.psk_identity == card.iccid
    assert len({c.kic for c in fleet} | {c.kid for c in fleet} | {c.psk for c in fleet}) == 150
    assert "kic" not in repr(fleet.cards[0]).lower().replace("kic=", "")  # field names only, never key bytes
    assert fleet.cards[0].kic.hex() not in repr(fleet.cards[0]).lower()


def test_manifest_round_trips_and_is_private(tmp_path: Path) -> None:
    made = generate_fleet(tmp_path, 5, settings=FleetSettings(kvn=3), msisdn_prefix="3360", first=100)
    mode = stat.S_IMODE((tmp_path / FLEET_FILE).stat().st_mode)
    assert mode == 0o600
    loaded = Fleet.load(tmp_path)
    assert loaded.cards == made.cards
    assert loaded.settings == made.settings
    assert loaded.cards[0].msisdn == "336000000100"
    assert loaded.by_msisdn("336000000104") == loaded.cards[4]
    assert loaded.by_iccid(loaded.cards[2].iccid) == loaded.cards[2]
    assert loaded.by_msisdn("999") is None


def test_master_key_rebuilds_every_cards_keys_from_its_iccid(tmp_path: Path) -> None:
    master = bytes(range(16))
    fleet = generate_fleet(tmp_path, 3, master_key=master)
    for card in fleet:
        assert card.kic == diversify_card_key(master, "KIC", card.iccid)
        assert card.kid == diversify_card_key(master, "KID", card.iccid)
        assert card.psk == diversify_card_key(master, "PSK", card.iccid)


def test_existing_fleet_is_kept_unless_forced(tmp_path: Path) -> None:
    first = generate_fleet(tmp_path, 2)
    with pytest.raises(ProfileError, match="already holds a fleet"):
        generate_fleet(tmp_path, 2)
    again = generate_fleet(tmp_path, 2, force=True)
    assert again.cards[0].kic != first.cards[0].kic


def test_bad_base_profile_fails_at_generation(tmp_path: Path) -> None:
    with pytest.raises(ProfileError):
        generate_fleet(tmp_path, 1, profile='[card]\nlifecycle = "SECURED"\n')


def test_not_a_fleet_directory(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="fleet generate"):
        Fleet.load(tmp_path)
    (tmp_path / FLEET_FILE).write_text('{"format": 99}')
    with pytest.raises(DecodeError, match="format"):
        Fleet.load(tmp_path)


def test_card_state_is_created_at_first_use_with_the_cards_own_keys(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path, 3)
    card = fleet.cards[1]
    assert fleet.stored_state(card) is None
    assert fleet.ota_counter(card) == 0
    core = fleet.open_card(card)
    found = keyset_for(core.ctx.state, 1)
    assert found is not None
    assert (found[1].kic_key, found[1].kid_key) == (card.kic, card.kid)
    assert core.ctx.state.ota["scp81"]["psk"] == card.psk.hex().upper()
    assert core.ctx.state.ota["scp81"]["psk_identity"] == card.iccid
    assert fleet.stored_state(card) is None  # written at its first change only
    core.save()
    stored = fleet.stored_state(card)
    assert stored is not None and stored.cin.hex().startswith(card.iccid[:6])
    assert fleet.stored_state(fleet.cards[0]) is None  # the others stay untouched


def test_inventory_lists_every_card_with_its_keys(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path, 4)
    write_inventory(fleet, tmp_path / "inventory.csv")
    with (tmp_path / "inventory.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["iccid"] for r in rows] == [c.iccid for c in fleet]
    assert [bytes.fromhex(r["kic"]) for r in rows] == [c.kic for c in fleet]
    assert [bytes.fromhex(r["psk"]) for r in rows] == [c.psk for c in fleet]
    assert {(r["kvn"], r["tar"], r["spi"], r["counter"]) for r in rows} == {("1", "000000", "1619", "0")}


def test_inventory_with_key_references_holds_no_key(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path, 2, master_key=bytes(16))
    write_inventory(fleet, tmp_path / "inventory.csv", master_label="fleet")
    text = (tmp_path / "inventory.csv").read_text()
    assert text.count("master:fleet") == 6
    assert fleet.cards[0].kic.hex().upper() not in text
