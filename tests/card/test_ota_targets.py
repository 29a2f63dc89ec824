"""Receiving entities and key sets of the card's SCP80 side (card/ota_targets.py): TAR lookup order, MSLs, the
toolkit parameters of install parameters (ETSI TS 102 226 8.2.1.3.2.2), key sets bound to their algorithms."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gpchannel.card.ota_targets import (
    DEFAULT_MSL,
    RAM_ISD_TAR,
    RFM_TAR,
    TarEntry,
    keyset_for,
    store_counter,
    stored_counter,
    tar_entry,
    toolkit_parameters,
)
from gpchannel.card.profile import load_profile
from gpchannel.ota import CipherAlgorithm, MacAlgorithm
from tests.card.harness import ECHO_AID, ISD_AID, profile_text

APP_TAR = bytes.fromhex("C00001")
# EA { 80: priority 01, timers 00, menu text 10, 0 menu entries, channels 00, MSL (1) 12, TARs (3) C00001,
# services 00 }
TOOLKIT = bytes.fromhex("EA0E800C01001000000112 03C00001 00".replace(" ", ""))
OTA = """
[[ota.keysets]]
kvn = 2
kic = "000102030405060708090A0B0C0D0E0F1011121314151617"
kic_algorithm = "3des-3key"
kid = "101112131415161718191A1B1C1D1E1F"
kid_algorithm = "aes-cmac"
counter = 41

[[ota.tars]]
tar = "B00011"
msl = "12"

[[ota.tars]]
tar = "000000"
target = "A0000000871002FF49FF0589"
allow_single_des = true
"""


def test_toolkit_parameters() -> None:

    assert toolkit_parameters(TOOLKIT[2:]) == (b"\x12", [APP_TAR])
    with_menu = bytes.fromhex("8012 01001002 0101 0202 00 00 06 C00001C00002 00".replace(" ", ""))
    assert toolkit_parameters(with_menu) == (b"", [APP_TAR, bytes.fromhex("C00002")])
    for broken in (b"", b"\x80", bytes.fromhex("80020100"), bytes.fromhex("800501001000"), TOOLKIT[2:-2]):
        assert toolkit_parameters(broken) is None
    assert toolkit_parameters(bytes.fromhex("8107") + TOOLKIT[4:]) is None  # not the toolkit parameters (80)


def test_tar_lookup_order_and_msl() -> None:
    state = load_profile(profile_text())
    assert tar_entry(state, RAM_ISD_TAR) == TarEntry(RAM_ISD_TAR, ISD_AID, DEFAULT_MSL)
    assert tar_entry(state, RFM_TAR) == TarEntry(RFM_TAR, b"", DEFAULT_MSL)
    assert tar_entry(state, APP_TAR) is None
    echo = state.application(ECHO_AID)
    assert echo is not None
    echo.system_parameters = TOOLKIT[2:]
    assert tar_entry(state, APP_TAR) == TarEntry(APP_TAR, ECHO_AID, 0x12)
    # The profile comes first: here it sends 000000 elsewhere and makes B00011 an RFM TAR with its own MSL.
    state = load_profile(profile_text() + OTA)
    assert tar_entry(state, RAM_ISD_TAR) == TarEntry(RAM_ISD_TAR, ECHO_AID, DEFAULT_MSL, allow_single_des=True)
    entry = tar_entry(state, bytes.fromhex("B00011"))
    assert entry == TarEntry(bytes.fromhex("B00011"), b"", 0x12) and entry.rfm


def test_keysets_are_bound_and_counters_kept() -> None:
    state = load_profile(profile_text() + OTA)
    assert keyset_for(state, 1) is None
    found = keyset_for(state, 2)
    assert found is not None
    index, keyset = found
    assert (index, keyset.cipher, keyset.mac, keyset.allow_single_des) == (
        0,
        CipherAlgorithm.DES3_3KEY_CBC,
        MacAlgorithm.AES_CMAC,
        False,
    )
    assert "0001020304" not in repr(keyset)
    assert stored_counter(state, index) == 41 and stored_counter(state, -1) == 0
    store_counter(state, index, 42)
    assert stored_counter(state.copy(), index) == 42


@given(st.binary(max_size=64))
def test_toolkit_parameters_never_raise(raw: bytes) -> None:
    found = toolkit_parameters(raw)
    assert found is None or all(len(tar) == 3 for tar in found[1])
