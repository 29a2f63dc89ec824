"""Key sets, algorithm binding and the RC/CC primitives (TS 102 225 5.1.2-5.1.3) against the gsm0348 vectors."""

from __future__ import annotations

import pytest

from gpchannel.errors import UnsupportedError
from gpchannel.ota.algorithms import Scp80KeySet, compute_check, crc16_x25, resolve_check, resolve_cipher
from gpchannel.ota.spi import (
    AlgorithmFamily,
    CipherAlgorithm,
    Integrity,
    Kic,
    Kid,
    MacAlgorithm,
    RcAlgorithm,
)
from tests.vectors import VectorCase, params

GSM = "ota/gsm0348.json"

_UNKEYED = {"6DD4": RcAlgorithm.CRC16, "3FCA88C5": RcAlgorithm.CRC32, "0404040C": RcAlgorithm.XOR4}
_KEYED = {8: MacAlgorithm.DES_CBC_MAC, 16: MacAlgorithm.DES3_2KEY_CBC_MAC}


@pytest.mark.parametrize("case", params(GSM, "mac_primitive"))
def test_gsm0348_checks(case: VectorCase) -> None:
    key, data, macs = case.hex_in("key"), case.hex_in("data"), case.expected["mac"].split(" / ")
    if not key:
        alg = _UNKEYED.get(macs[0], RcAlgorithm.XOR8)
        assert compute_check(alg, Scp80KeySet(), data) == bytes.fromhex(macs[0])
    elif len(macs) == 2:  # AES-CMAC truncated to 4 and to 8 bytes
        for mac in macs:
            keyset = Scp80KeySet(kid_key=key, cmac_length=len(mac) // 2)
            assert compute_check(MacAlgorithm.AES_CMAC, keyset, data) == bytes.fromhex(mac)
    else:  # DES / 3DES CBC-MAC, zero padding (an already padded input gives the same MAC)
        keyset = Scp80KeySet(kid_key=key, allow_single_des=True)
        assert compute_check(_KEYED[len(key)], keyset, data) == bytes.fromhex(macs[0])


def test_crc16_check_value() -> None:
    # The catalogue check value of CRC-16/X-25 (ISO/IEC 13239) over "123456789".
    assert crc16_x25(b"123456789") == 0x906E


def test_single_des_refused_by_default() -> None:
    for kic, kid in [
        (Kic.for_cipher(CipherAlgorithm.DES_CBC), None),
        (Kic.for_cipher(CipherAlgorithm.DES_ECB), None),
        (None, Kid.for_mac(MacAlgorithm.DES_CBC_MAC)),
    ]:
        keyset = Scp80KeySet(bytes(8), bytes(8))
        with pytest.raises(UnsupportedError, match="single DES"):
            if kic is not None:
                resolve_cipher(kic, keyset)
            else:
                assert kid is not None
                resolve_check(Integrity.CC, kid, keyset)
    allowed = Scp80KeySet(bytes(8), bytes(8), allow_single_des=True)
    assert resolve_cipher(Kic.for_cipher(CipherAlgorithm.DES_CBC), allowed) is CipherAlgorithm.DES_CBC


def test_binding() -> None:
    bound = Scp80KeySet(bytes(16), bytes(16), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC, cmac_length=4)
    assert resolve_cipher(Kic(3, AlgorithmFamily.IMPLICIT, 0), bound) is CipherAlgorithm.AES_CBC
    assert resolve_check(Integrity.CC, Kid.for_mac(MacAlgorithm.AES_CMAC), bound) == (MacAlgorithm.AES_CMAC, 4)
    with pytest.raises(UnsupportedError, match="another algorithm"):
        resolve_cipher(Kic.for_cipher(CipherAlgorithm.DES3_2KEY_CBC), bound)
    with pytest.raises(UnsupportedError, match="implicit"):
        resolve_cipher(Kic(3, AlgorithmFamily.IMPLICIT, 0), Scp80KeySet(bytes(16)))
    with pytest.raises(UnsupportedError, match="proprietary"):
        resolve_cipher(Kic(3, AlgorithmFamily.PROPRIETARY, 0), bound)
    with pytest.raises(UnsupportedError, match="proprietary"):
        resolve_cipher(Kic(3, AlgorithmFamily.AES, 1), bound)  # AES mode 01 is RFU
    with pytest.raises(UnsupportedError, match="key of"):
        resolve_cipher(Kic.for_cipher(CipherAlgorithm.DES3_3KEY_CBC), Scp80KeySet(bytes(16)))
    with pytest.raises(UnsupportedError, match="digital signatures"):
        resolve_check(Integrity.DS, Kid.for_mac(MacAlgorithm.AES_CMAC), bound)
    assert resolve_check(Integrity.RC, Kid.for_rc(RcAlgorithm.CRC32), bound) == (RcAlgorithm.CRC32, 4)
    assert resolve_check(Integrity.NONE, Kid(0, AlgorithmFamily.IMPLICIT, 0), bound) == (None, 0)
    with pytest.raises(ValueError, match="cmac_length"):
        Scp80KeySet(cmac_length=16)


def test_keys_not_in_repr() -> None:
    keyset = Scp80KeySet(bytes.fromhex("0badc0de" * 4), bytes.fromhex("deadbeef" * 4))
    assert "0badc0de" not in repr(keyset).lower()
    assert "deadbeef" not in repr(keyset).lower()
    assert "b'" not in repr(keyset)
