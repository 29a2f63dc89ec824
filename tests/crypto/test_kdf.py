"""The SCP03 KDF (Amendment D v1.1.1, 4.1.5; NIST SP 800-108 counter mode with AES-CMAC) against pySim and
GlobalPlatformPro vectors."""

from __future__ import annotations

import pytest

from gpchannel.crypto.ciphers import aes_cmac
from gpchannel.crypto.kdf import DerivationConstant, scp03_kdf
from gpchannel.crypto.keys import KeyType, kcv
from tests.vectors import VectorCase, params


@pytest.mark.parametrize("case", params("crypto/pysim.json", "scp03-session-keys"))
def test_pysim_session_keys(case: VectorCase) -> None:
    enc, mac = case.hex_in("key_enc"), case.hex_in("key_mac")
    context = case.hex_in("host_challenge") + case.hex_in("card_challenge")
    bits = 8 * len(enc)
    s_enc = scp03_kdf(enc, DerivationConstant.S_ENC, context, bits)
    s_mac = scp03_kdf(mac, DerivationConstant.S_MAC, context, bits)
    assert s_enc == case.hex_out("s_enc")
    assert s_mac == case.hex_out("s_mac")
    assert scp03_kdf(mac, DerivationConstant.S_RMAC, context, bits) == case.hex_out("s_rmac")
    # Cryptograms: 64 bits from S-MAC (Amendment D, 6.2.2.2 and 6.2.2.3).
    assert scp03_kdf(s_mac, DerivationConstant.CARD_CRYPTOGRAM, context, 64) == case.hex_out("card_cryptogram")
    assert scp03_kdf(s_mac, DerivationConstant.HOST_CRYPTOGRAM, context, 64) == case.hex_out("host_cryptogram")


@pytest.mark.parametrize("case", params("crypto/globalplatformpro.json", "session-keys-scp03"))
def test_globalplatformpro_session_key_kcvs(case: VectorCase) -> None:
    key, context = case.hex_in("static_key"), case.hex_in("context")
    derived = {
        "kcv_s_enc": scp03_kdf(key, DerivationConstant.S_ENC, context, 128),
        "kcv_s_mac": scp03_kdf(key, DerivationConstant.S_MAC, context, 128),
        "kcv_s_rmac": scp03_kdf(key, DerivationConstant.S_RMAC, context, 128),
        "kcv_dek_static": key,
    }
    for name, value in derived.items():
        assert kcv(value, KeyType.AES) == case.hex_out(name), name


@pytest.mark.parametrize("case", params("crypto/globalplatformpro.json", "kdf-raw"))
def test_globalplatformpro_counter_mode_prf(case: VectorCase) -> None:
    """The SP 800-108 PRF step CMAC(key, a || i || b) that scp03_kdf builds on (BouncyCastle layout)."""
    key = case.hex_in("key")
    out = aes_cmac(key, case.hex_in("prefix_a") + b"\x01" + case.hex_in("suffix_b"))
    assert len(out) == case.inputs["bytes"]
    assert kcv(out, KeyType.AES) == case.hex_out("kcv_aes_of_output")


def test_multi_block_output_uses_the_counter() -> None:
    """L > 128 bits takes CMAC blocks with i = 1, 2, ... and the same L in every block (SP 800-108, 5.1)."""
    key, context = bytes(range(16)), bytes(range(16, 32))
    out = scp03_kdf(key, DerivationConstant.S_ENC, context, 256)
    label = bytes(11) + b"\x04" + b"\x00" + (256).to_bytes(2, "big")
    assert out == aes_cmac(key, label + b"\x01" + context) + aes_cmac(key, label + b"\x02" + context)
    assert scp03_kdf(key, DerivationConstant.S_ENC, context, 192) != out[:24]  # L is part of the input


@pytest.mark.parametrize("bits", [0, -8, 12])
def test_bad_lengths(bits: int) -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        scp03_kdf(bytes(16), DerivationConstant.S_ENC, b"", bits)


def test_constants() -> None:
    """Amendment D v1.1.1, Table 4-1."""
    assert [int(c) for c in DerivationConstant] == [0x00, 0x01, 0x02, 0x04, 0x06, 0x07]
