"""Key check values and static key sets (GP 2.3.1, 11.8.2.3 / B.6; Amendment D v1.1.1, 7.2.2)."""

from __future__ import annotations

import pytest

from gpchannel.crypto.keys import KeyType, StaticKeys, kcv
from tests.vectors import VectorCase, params


@pytest.mark.parametrize("case", params("crypto/globalplatformpro.json", "kcv"))
def test_globalplatformpro_kcv(case: VectorCase) -> None:
    if "key_3des" in case.inputs:
        assert kcv(case.hex_in("key_3des"), KeyType.DES3) == case.hex_out("kcv")
    else:
        assert kcv(case.hex_in("key_aes"), KeyType.AES) == case.hex_out("kcv")


@pytest.mark.parametrize("case", params("crypto/pysim.json", "gp-kcv-aes"))
def test_pysim_kcv_aes(case: VectorCase) -> None:
    keys = [bytes.fromhex(k) for k in case.inputs["keys"]]
    expected = tuple(bytes.fromhex(k) for k in case.expected["kcv"])
    assert tuple(kcv(k, KeyType.AES) for k in keys) == expected
    assert StaticKeys(keys[0], keys[1], keys[2], kvn=0x30).kcvs() == expected


def test_keys_never_in_repr() -> None:
    secret = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    keys = StaticKeys.single(secret, kvn=0x30, key_type=KeyType.DES3)
    text = repr(keys) + str(keys)
    for form in (secret.hex(), secret.hex().upper(), repr(secret)):
        assert form not in text
    assert "kvn=48" in text


@pytest.mark.parametrize(
    ("key_type", "length"),
    [(KeyType.DES3, 8), (KeyType.DES3, 32), (KeyType.AES, 8), (KeyType.AES, 20)],
)
def test_key_lengths_checked(key_type: KeyType, length: int) -> None:
    with pytest.raises(ValueError, match="key is") as info:
        StaticKeys.single(bytes(range(length)), key_type=key_type)
    assert bytes(range(length)).hex() not in str(info.value)


def test_kvn_checked() -> None:
    with pytest.raises(ValueError, match="kvn"):
        StaticKeys.single(bytes(16), kvn=256)
    assert StaticKeys.single(bytes(24), key_type=KeyType.DES3).key_length == 24
    assert KeyType.DES3.value == 0x80 and KeyType.AES.value == 0x88
