"""The profile's shape table (gpchannel.card.profile_schema): every key of docs/profile.md is in it, and a value
of the wrong TOML type anywhere is a ProfileError naming the key, never a TypeError from the loaders behind it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gpchannel.card.profile import load_profile, profile_from_dict
from gpchannel.card.profile_ota import check_ota, check_scp81
from gpchannel.card.profile_schema import FIELDS, Kind, check_shape, hex_field
from gpchannel.errors import ProfileError

EXAMPLE = Path(__file__).parents[2] / "examples" / "profiles" / "scp03.toml"
_WRONG: dict[Kind, object] = {
    Kind.STRING: [],
    Kind.INTEGER: "1",
    Kind.BOOLEAN: 1,
    Kind.BYTE: [1],
    Kind.TABLE: [1],
    Kind.TABLES: {"a": 1},
    Kind.NAMES: [{}],
}


def _leaf_paths(raw: dict[str, Any], prefix: str = "") -> list[tuple[str, list[str | int]]]:
    """(schema path, access path) of every value in the example profile."""
    out: list[tuple[str, list[str | int]]] = []
    for name, value in raw.items():
        field = f"{prefix}.{name}" if prefix else name
        out.append((field, [name]))
        if isinstance(value, dict):
            out += [(f, [name, *p]) for f, p in _leaf_paths(value, field)]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out += [(f, [name, 0, *p]) for f, p in _leaf_paths(value[0], f"{field}[]")]
    return out


def test_every_key_of_the_example_is_in_the_table() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    assert check_shape(raw) is raw
    for field, _ in _leaf_paths(raw):
        assert field in FIELDS


@pytest.mark.parametrize("field", sorted({f for f, _ in _leaf_paths(tomllib.loads(EXAMPLE.read_text()))}))
def test_a_wrong_type_anywhere_is_a_profile_error_naming_the_key(field: str) -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    path = dict(_leaf_paths(raw))[field]
    holder: Any = raw
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = _WRONG[FIELDS[field]]
    shown = ".".join(str(p) for p in path).replace(".0.", "[0].")
    with pytest.raises(ProfileError, match=re.escape(f"profile key {shown}: expected {FIELDS[field].words}")):
        profile_from_dict(raw)


def test_kic_algorithm_array_through_check_ota() -> None:
    # was TypeError: unhashable type: 'list' (gpchannel card init --profile, any command given --profile)
    text = EXAMPLE.read_text().replace('kic_algorithm = "aes-cbc"', "kic_algorithm = []")
    with pytest.raises(ProfileError, match=r"ota\.keysets\[0\]\.kic_algorithm: expected a string, got an array"):
        load_profile(text)
    with pytest.raises(ProfileError, match="kic_algorithm"):
        check_ota(tomllib.loads(text)["ota"])


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        ({"keysets": [{"kid_algorithm": {"a": 1}}]}, None, "kid_algorithm: expected a string, got a table"),
        ({"tars": [{"allow_single_des": "yes"}]}, None, "allow_single_des: expected true or false"),
        ({"keysets": "x"}, None, "ota.keysets: expected an array of tables"),
        ({"tars": [1]}, None, "ota.tars: expected an array of tables"),
        ({"spam": 1}, None, "ota.spam: unknown key; expected one of keysets, tars"),
        ([], None, "ota: expected a table"),
    ],
)
def test_check_ota_types(section: object, value: object, message: str) -> None:
    del value
    with pytest.raises(ProfileError, match=message):
        check_ota(section)


def test_scp81_psk_of_the_wrong_type_is_named_without_its_value() -> None:
    with pytest.raises(ProfileError) as info:
        check_scp81({"psk_identity": "x", "psk": 12345678, "server": "h:1"})
    assert "scp81.psk: expected a string, got an integer" in str(info.value)
    assert "12345678" not in str(info.value)


def test_hex_field_is_the_profiles_one_hex_reader() -> None:
    assert hex_field("A0 00 00 01 51", "isd.aid", range(5, 17)) == bytes.fromhex("A000000151")
    with pytest.raises(ProfileError, match=re.escape("profile key card.kdd: expected 10 bytes, got 2")):
        hex_field("0102", "card.kdd", (10,))
    with pytest.raises(ProfileError, match=re.escape("isd.aid: expected an AID of 5 to 16 bytes, got 1")):
        hex_field("01", "isd.aid", range(5, 17), "an AID of 5 to 16")
    with pytest.raises(ProfileError, match=re.escape("ota.keysets[0].tar: expected hex digits")):
        hex_field("zz", "ota.keysets[0].tar", (3,))
    with pytest.raises(ProfileError, match="expected a string of hex digits"):
        hex_field(12, "card.cin")
    with pytest.raises(ProfileError, match="expected 16 or 24 bytes"):
        hex_field("00" * 8, "k", (16, 24))
