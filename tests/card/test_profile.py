"""Card profiles (../shared/docs/profile.md): the example loads; bad or inconsistent ones are refused with a
message that names the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.card.profile import DEFAULT_ATR, generate_cplc, load_profile, profile_from_dict
from gpchannel.crypto.keys import KeyType
from gpchannel.errors import ProfileError
from gpchannel.gp.lifecycle import CardLifeCycle
from tests.card.harness import ECHO_AID, ISD_AID, profile_text

EXAMPLE = Path("/work/shared/docs/example.toml")


def test_example_profile() -> None:
    text = EXAMPLE.read_text() if EXAMPLE.exists() else profile_text()
    state = load_profile(text)
    assert state.lifecycle is CardLifeCycle.SECURED
    assert state.isd_aid == ISD_AID and state.atr == DEFAULT_ATR
    assert state.isd.sd is not None and state.isd.sd.scp == 3 and state.isd.sd.i_param == 0x70
    (keyset,) = state.isd.sd.keysets
    assert keyset.kvn == 0x30 and keyset.key_type is KeyType.AES
    echo = state.application(ECHO_AID)
    assert echo is not None and echo.applet == "echo" and echo.lifecycle == 0x07
    assert len(state.cplc) == 42 and state.cplc == generate_cplc("8988211000000000001")
    assert state.key_diversification_data == state.cplc[0:4] + state.cplc[10:16]
    assert state.iin == bytes.fromhex("898821") and state.cin.hex().upper() == "8988211000000000001F"


def _replace(old: str, new: str, text: str | None = None) -> str:
    base = text or profile_text()
    assert old in base
    return base.replace(old, new, 1)


_KEYSET = '[[isd.keysets]]\nkvn = 0x30\nenc = "{k}"\nmac = "{k}"\ndek = "{k}"\n'.format(k="40" * 16)
_DUPLICATE_KVN = _replace("[[applications]]", _KEYSET + "\n[[applications]]")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (_replace('lifecycle = "SECURED"', 'lifecycle = "LOCKED"'), "card.lifecycle"),
        (_replace('aid = "A000000151000000"', 'aid = "A0"'), "isd.aid"),
        (_replace('scp = "03"', 'scp = "04"'), "isd.scp"),
        (_replace('i = "70"', 'i = "15"'), "isd.i"),
        (_replace("kvn = 0x30", "kvn = 0"), "isd.keysets[0].kvn"),
        (_replace('type = "aes"', 'type = "des3"'), "isd.keysets[0].type"),
        (_replace('enc = "404142434445464748494A4B4C4D4E4F"', 'enc = "4041"'), "isd.keysets[0].enc"),
        (_replace('mac = "404142434445464748494A4B4C4D4E4F"', 'mac = "XYZ"'), "isd.keysets[0].mac"),
        (_replace("sequence_counter = 0", "sequence_counter = -1"), "isd.sequence_counter"),
        (_replace('kind = "echo"', 'kind = "wallet"'), "applications[0].kind"),
        (_replace('sd = "A000000151000000"', 'sd = "A000000151000001"'), "applications[0].sd"),
        (_replace('privileges = "00"', 'privileges = "80"'), "applications[0].privileges"),
        (_replace('privileges = "00"', 'privileges = "0000"'), "applications[0].privileges"),
        (_replace('lifecycle = "SELECTABLE"', 'lifecycle = "GONE"'), "applications[0].lifecycle"),
        (_replace('aid = "A0000000871002FF49FF0589"', 'aid = "A000000151000000"'), "applications[0].aid"),
        (_replace("[card]", "[card]\ncolour = 1"), "card.colour"),
        (_replace("[card]", "[extras]\n[card]"), "extras"),
        (_DUPLICATE_KVN, "isd.keysets"),
        ("[card]\n", "isd"),
        ("this is = = not toml", "TOML"),
    ],
)
def test_bad_profiles_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ProfileError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_profile(text)


def test_scp02_profile_defaults_to_des3() -> None:
    text = profile_text("02", "55").replace('type = "aes"\n', "")
    state = load_profile(text)
    assert state.isd.sd is not None and state.isd.sd.keysets[0].key_type is KeyType.DES3


def test_profile_differences_name_kvns_and_kcvs_not_keys() -> None:
    from gpchannel.card.profile import profile_differences
    from gpchannel.card.state import KeySet

    profile = load_profile(profile_text())
    state = load_profile(profile_text())
    assert profile_differences(state, profile) == []
    assert state.isd.sd is not None
    state.isd.sd.keysets.append(KeySet(0x31, KeyType.AES, bytes(16), bytes(16), bytes(16)))
    state.applications = state.applications[:1]
    state.lifecycle = CardLifeCycle.CARD_LOCKED
    diff = profile_differences(state, profile)
    assert any("key set 31" in line and "absent" in line for line in diff)
    assert any("was deleted" in line for line in diff) and any("CARD_LOCKED" in line for line in diff)
    assert not any("00000000000000000000000000000000" in line for line in diff)


@given(st.text(max_size=300))
def test_any_text_gives_a_state_or_profile_error(text: str) -> None:
    try:
        load_profile(text)
    except ProfileError:
        pass


@given(
    st.dictionaries(
        st.sampled_from(["iccid", "atr", "cplc", "lifecycle", "kdd", "iin"]), st.text(max_size=90) | st.integers()
    )
)
def test_any_card_table_gives_a_state_or_profile_error(card: dict[str, object]) -> None:
    import tomllib

    raw = tomllib.loads(profile_text())
    raw["card"] = card
    try:
        profile_from_dict(raw)
    except ProfileError:
        pass


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('kic_algorithm = "aes-cbc"', 'kic_algorithm = "rot13"', "ota.keysets[0].kic_algorithm"),
        ('kic = "000102030405060708090A0B0C0D0E0F"', 'kic = "0001"', "ota.keysets[0].kic"),
        ('kid_algorithm = "aes-cmac"', 'kid_algorithm = "3des-3key"', "ota.keysets[0].kid"),
        ("\ncounter = 0", "\ncounter = -5", "ota.keysets[0].counter"),
        ('tar = "000000"', 'tar = "00"', "ota.tars[0].tar"),
        ('target = "A000000151000000"', 'target = "A0"', "ota.tars[0].target"),
        ('server = "127.0.0.1:8443"', 'server = "localhost"', "scp81.server"),
        ('uri = "/gp/admin"', 'uri = "gp/admin"', "scp81.uri"),
        ('psk = "0102030405060708090A0B0C0D0E0F10"', 'psk = "xyz"', "scp81.psk"),
        ("[scp81]", "[scp81]\nport = 1", "scp81.port"),
    ],
)
def test_ota_sections_are_checked(old: str, new: str, key: str) -> None:
    if not EXAMPLE.exists():
        pytest.skip("the example profile is not available")
    text = EXAMPLE.read_text()
    assert old in text
    with pytest.raises(ProfileError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_profile(text.replace(old, new, 1))


def test_ota_sections_are_kept() -> None:
    if not EXAMPLE.exists():
        pytest.skip("the example profile is not available")
    state = load_profile(EXAMPLE.read_text())
    assert state.ota["ota"]["keysets"][0]["kvn"] == 1
    assert state.ota["scp81"]["server"] == "127.0.0.1:8443"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('server = "127.0.0.1:8443"', 'server = "127.0.0.1:\u0668\u0664\u0664\u0663"', "scp81.server"),  # Arabic-Indic
        ('server = "127.0.0.1:8443"', 'server = "127.0.0.1:\u00b2"', "scp81.server"),  # a superscript two
        (
            'iccid = "8988211000000000001"',
            'iccid = "\u0668\u0669\u0668\u0668\u0662\u0661\u0661\u0660\u0660\u0660"',
            "card.iccid",
        ),
    ],
)
def test_non_ascii_digits_are_a_profile_error(old: str, new: str, key: str) -> None:
    """``str.isdigit`` takes other scripts' digits and superscripts: they must be refused with the key named,
    not reach ``int`` / ``bytes.fromhex`` (ValueError)."""
    if not EXAMPLE.exists():
        pytest.skip("the example profile is not available")
    text = EXAMPLE.read_text()
    assert old in text
    with pytest.raises(ProfileError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_profile(text.replace(old, new, 1))


def test_kic_algorithm_array_is_a_profile_error_not_a_type_error() -> None:
    # was TypeError: unhashable type: 'list' (from gpchannel card init --profile and any command given --profile)
    example = Path(__file__).parents[2] / "examples" / "profiles" / "scp03.toml"
    text = example.read_text().replace('kic_algorithm = "aes-cbc"', "kic_algorithm = []")
    with pytest.raises(ProfileError, match=r"ota\.keysets\[0\]\.kic_algorithm: expected a string"):
        load_profile(text)
