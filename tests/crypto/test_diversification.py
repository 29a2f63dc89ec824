"""Key diversification (EMV CPS 1.1, VISA2, GlobalPlatformPro KDF3) against GlobalPlatformPro's vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.crypto.diversification import Diversification, KeyPurpose, diversify, diversify_key, resolver
from gpchannel.crypto.keys import KeyType, StaticKeys, kcv
from gpchannel.errors import UnsupportedError
from gpchannel.scp.common import InitializeUpdateResponse, KeyResolver, ScpProtocol
from tests.vectors import VectorCase, params

_FILE = "diversification/globalplatformpro.json"
_SCHEMES = {
    "diversification-emv-cps11": (Diversification.EMV, KeyType.DES3),
    "diversification-visa2": (Diversification.VISA2, KeyType.DES3),
    "diversification-kdf3": (Diversification.KDF3, KeyType.AES),
}


@pytest.mark.parametrize("case", params(_FILE, "kcv"))
def test_kcv(case: VectorCase) -> None:
    if "key_3des" in case.inputs:
        assert kcv(case.hex_in("key_3des"), KeyType.DES3) == case.hex_out("kcv")
    else:
        assert kcv(case.hex_in("key_aes"), KeyType.AES) == case.hex_out("kcv")


@pytest.mark.parametrize(
    "case",
    [p for p in params(_FILE, *_SCHEMES) if "kcv_enc" in p.values[0].expected],
)
def test_diversified_key_check_values(case: VectorCase) -> None:
    scheme, key_type = _SCHEMES[case.kind]
    master = StaticKeys.single(case.hex_in("master_key"), kvn=0x20, key_type=key_type)
    card = diversify(master, scheme, case.hex_in("kdd"))
    assert card.kcvs() == (case.hex_out("kcv_enc"), case.hex_out("kcv_mac"), case.hex_out("kcv_dek"))
    assert card.kvn == 0x20
    assert card.key_type is key_type
    assert card.key_length == len(master.enc)


@pytest.mark.parametrize(
    "case",
    [p for p in params(_FILE, "diversification-kdf3") if "derived_enc_key" in p.values[0].expected],
)
def test_kdf3_full_key(case: VectorCase) -> None:
    key = diversify_key(case.hex_in("master_key"), Diversification.KDF3, KeyPurpose.ENC, case.hex_in("kdd"))
    assert key == case.hex_out("derived_enc_key")


def test_each_role_uses_its_own_master() -> None:
    kdd = bytes(range(10))
    master = StaticKeys(b"\x11" * 16, b"\x22" * 16, b"\x33" * 16, key_type=KeyType.DES3)
    card = diversify(master, Diversification.VISA2, kdd)
    assert card.enc == diversify_key(b"\x11" * 16, Diversification.VISA2, KeyPurpose.ENC, kdd)
    assert card.mac == diversify_key(b"\x22" * 16, Diversification.VISA2, KeyPurpose.MAC, kdd)
    assert card.dek == diversify_key(b"\x33" * 16, Diversification.VISA2, KeyPurpose.DEK, kdd)


def test_none_returns_the_master() -> None:
    master = StaticKeys.single(bytes(range(16)))
    assert diversify(master, Diversification.NONE, bytes(10)) is master


@pytest.mark.parametrize(
    ("scheme", "key_type", "length"),
    [
        (Diversification.EMV, KeyType.AES, 16),
        (Diversification.VISA2, KeyType.AES, 16),
        (Diversification.KDF3, KeyType.DES3, 16),
        (Diversification.EMV, KeyType.DES3, 24),
    ],
)
def test_scheme_and_key_type_must_match(scheme: Diversification, key_type: KeyType, length: int) -> None:
    with pytest.raises(UnsupportedError):
        diversify(StaticKeys.single(bytes(length), key_type=key_type), scheme, bytes(10))


@pytest.mark.parametrize("n", [0, 9, 11])
def test_kdd_must_be_10_bytes(n: int) -> None:
    with pytest.raises(ValueError, match="10 bytes"):
        diversify(StaticKeys.single(bytes(16), key_type=KeyType.DES3), Diversification.EMV, bytes(n))


@given(kdd=st.binary(min_size=10, max_size=10))
def test_resolver_diversifies_with_the_response_kdd(kdd: bytes) -> None:
    master = StaticKeys.single(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), key_type=KeyType.DES3)
    resolve: KeyResolver = resolver(master, Diversification.EMV)
    response = InitializeUpdateResponse(kdd, 1, ScpProtocol.SCP01, None, bytes(8), bytes(8))
    assert resolve(response) == diversify(master, Diversification.EMV, kdd)


@given(kdd=st.binary(min_size=10, max_size=10), master=st.binary(min_size=16, max_size=16))
def test_kdd_bytes_that_the_scheme_ignores_do_not_matter(kdd: bytes, master: bytes) -> None:
    # VISA2 ignores KDD[2..3] and KDD[8..9]; EMV ignores KDD[0..3] (their formulas), which the vectors cannot show.
    other = bytes(b ^ 0xFF if i in (2, 3, 8, 9) else b for i, b in enumerate(kdd))
    assert diversify_key(master, Diversification.VISA2, KeyPurpose.MAC, kdd) == diversify_key(
        master, Diversification.VISA2, KeyPurpose.MAC, other
    )
    other = bytes(b ^ 0xFF if i < 4 else b for i, b in enumerate(kdd))
    assert diversify_key(master, Diversification.EMV, KeyPurpose.DEK, kdd) == diversify_key(
        master, Diversification.EMV, KeyPurpose.DEK, other
    )
