"""Block ciphers and MACs against published vectors (see tests/vectors/crypto/SOURCES.md).

The run turns CryptographyDeprecationWarning into an error (pyproject.toml), so every 3DES test here also checks
that 8- and 16-byte keys are expanded before they reach ``cryptography``.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.crypto.ciphers import (
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    constant_time_equal,
    des3_cbc_decrypt,
    des3_cbc_encrypt,
    des3_cbc_mac,
    des3_ecb_decrypt,
    des3_ecb_encrypt,
    des_cbc_encrypt,
    des_ecb_encrypt,
    expand_des_key,
    retail_mac,
)
from gpchannel.crypto.padding import pad80
from gpchannel.errors import IntegrityError
from tests.vectors import VectorCase, params

STD = "crypto/standards.json"


def _zero_pad(data: bytes) -> bytes:
    """ISO 9797-1 padding method 1 (00 up to the block, none for a full block or an empty string)."""
    return data + bytes(-len(data) % 8)


def _pad(data: bytes, method: int) -> bytes:
    return _zero_pad(data) if method == 1 else pad80(data)


# -- AES ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(STD, "aes-cmac") + params("crypto/gpshell.json", "aes-cmac"))
def test_aes_cmac(case: VectorCase) -> None:
    assert aes_cmac(case.hex_in("key"), case.hex_in("msg")) == case.hex_out("cmac")


@pytest.mark.parametrize("case", params("crypto/gsm0348.json", "mac_primitive"))
def test_gsm0348_mac_primitives(case: VectorCase) -> None:
    """gsm0348 SignatureManagerTest: DES CBC-MAC (FIPS 113) and AES-CMAC truncated to 4 and 8 bytes."""
    key, data = case.hex_in("key"), case.hex_in("data")
    if "CMAC" in case.notes:
        short, long = (bytes.fromhex(x.strip()) for x in str(case.expected["mac"]).split("/"))
        tag = aes_cmac(key, data)
        assert (tag[:4], tag[:8]) == (short, long)
    else:
        # DES (8-byte key) or 2-key 3DES with K1 = K2, zero padding (ISO 9797-1 method 1).
        assert des3_cbc_mac(key, _zero_pad(data)) == case.hex_out("mac")


@pytest.mark.parametrize("case", params(STD, "aes-ecb"))
def test_aes_ecb(case: VectorCase) -> None:
    key, pt, ct = case.hex_in("key"), case.hex_in("plaintext"), case.hex_out("ciphertext")
    assert aes_ecb_encrypt(key, pt) == ct
    assert aes_ecb_decrypt(key, ct) == pt


@pytest.mark.parametrize("case", params(STD, "aes-cbc"))
def test_aes_cbc(case: VectorCase) -> None:
    key, iv, pt, ct = case.hex_in("key"), case.hex_in("iv"), case.hex_in("plaintext"), case.hex_out("ciphertext")
    assert aes_cbc_encrypt(key, pt, iv) == ct
    assert aes_cbc_decrypt(key, ct, iv) == pt
    # The zero-IV default is what SCP03 uses for C-DECRYPTION (Amendment D, 6.2.6, ICV from an encrypted counter).
    assert aes_cbc_encrypt(key, pt) == aes_cbc_encrypt(key, pt, bytes(16))


# -- DES and 3DES ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(STD, "des-ecb"))
def test_des_ecb(case: VectorCase) -> None:
    key, pt, ct = case.hex_in("key"), case.hex_in("plaintext"), case.hex_out("ciphertext")
    assert des_ecb_encrypt(key, pt) == ct
    assert des3_ecb_encrypt(key, pt) == ct  # an 8-byte key is single DES
    assert des3_ecb_encrypt(key * 2, pt) == ct  # K1 = K2: 3DES degenerates to DES
    assert des3_ecb_decrypt(key, ct) == pt


@pytest.mark.parametrize("case", params(STD, "des-cbc"))
def test_des_cbc(case: VectorCase) -> None:
    key, iv, pt, ct = case.hex_in("key"), case.hex_in("iv"), case.hex_in("plaintext"), case.hex_out("ciphertext")
    assert des_cbc_encrypt(key, pt, iv) == ct
    assert des3_cbc_encrypt(key * 3, pt, iv) == ct
    assert des3_cbc_decrypt(key, ct, iv) == pt


@pytest.mark.parametrize("case", params(STD, "des3-ecb"))
def test_des3_three_key(case: VectorCase) -> None:
    key, pt, ct = case.hex_in("key"), case.hex_in("plaintext"), case.hex_out("ciphertext")
    assert len(key) == 24
    assert des3_ecb_encrypt(key, pt) == ct
    assert des3_ecb_decrypt(key, ct) == pt
    # CBC is ECB chained: the first block equals ECB of the first block with a zero IV.
    assert des3_cbc_encrypt(key, pt)[:8] == ct[:8]


def test_two_key_3des_is_k1_k2_k1() -> None:
    """A 16-byte key is keying option 2 (K3 = K1, NIST SP 800-67, 3.3): same result as the 24-byte K1 K2 K1."""
    k16 = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    assert expand_des_key(k16) == k16 + k16[:8]
    block = bytes(range(16))
    assert des3_ecb_encrypt(k16, block) == des3_ecb_encrypt(k16 + k16[:8], block)
    assert expand_des_key(k16[:8]) == k16[:8] * 3
    k24 = bytes(range(24))
    assert expand_des_key(k24) == k24


@pytest.mark.parametrize("n", [0, 7, 9, 15, 17, 23, 25, 32])
def test_bad_des_key_lengths(n: int) -> None:
    with pytest.raises(ValueError, match="8, 16 or 24"):
        des3_ecb_encrypt(bytes(n), bytes(8))


def test_no_deprecation_warning_for_any_key_length() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (8, 16, 24):
            des3_cbc_encrypt(bytes(range(n)), bytes(16))
            des3_ecb_decrypt(bytes(range(n)), bytes(8))


@pytest.mark.parametrize(
    "call",
    [
        lambda: des3_ecb_encrypt(bytes(16), bytes(7)),
        lambda: des3_cbc_decrypt(bytes(16), bytes(9)),
        lambda: aes_ecb_encrypt(bytes(16), bytes(15)),
        lambda: aes_cbc_decrypt(bytes(16), bytes(17)),
    ],
)
def test_unaligned_data_rejected(call: object) -> None:
    with pytest.raises(ValueError, match="multiple of"):
        call()  # type: ignore[operator]


@given(st.sampled_from([16, 24, 32]), st.binary(max_size=64), st.binary(min_size=16, max_size=16))
def test_aes_cbc_round_trip(key_len: int, data: bytes, iv: bytes) -> None:
    key = bytes(range(key_len))
    padded = pad80(data, 16)
    assert aes_cbc_decrypt(key, aes_cbc_encrypt(key, padded, iv), iv) == padded


@given(st.sampled_from([8, 16, 24]), st.binary(max_size=64), st.binary(min_size=8, max_size=8))
def test_des3_cbc_round_trip(key_len: int, data: bytes, iv: bytes) -> None:
    key = bytes(range(1, key_len + 1))
    padded = pad80(data)
    assert des3_cbc_decrypt(key, des3_cbc_encrypt(key, padded, iv), iv) == padded


# -- MACs (ISO/IEC 9797-1) ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(STD, "des-cbc-mac"))
def test_des_cbc_mac(case: VectorCase) -> None:
    """MAC algorithm 1 with DES: ``des3_cbc_mac`` with an 8-byte key (or K1 = K2)."""
    key = case.hex_in("key")
    data = _pad(case.hex_in("data"), int(case.inputs["padding"]))
    assert des3_cbc_mac(key, data) == case.hex_out("mac")
    assert des3_cbc_mac(key * 2, data) == case.hex_out("mac")


@pytest.mark.parametrize("case", params(STD, "retail-mac"))
def test_retail_mac(case: VectorCase) -> None:
    """MAC algorithm 3 (ISO 9797-1 Annex B.4; ANSI X9.19)."""
    key = case.hex_in("key")
    data = _pad(case.hex_in("data"), int(case.inputs["padding"]))
    mac = retail_mac(key, data)
    assert mac == case.hex_out("mac")
    # The chaining value form: MAC over the tail with the CBC state of the head as IV.
    assert retail_mac(key, data[8:], des_cbc_encrypt(key[:8], data[:8])) == mac
    # With K = K' the algorithm degenerates to MAC algorithm 1 with single DES.
    assert retail_mac(key[:8] * 2, data) == des3_cbc_mac(key[:8], data)


def test_retail_mac_single_block_and_errors() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    block = b"Now is t"
    assert retail_mac(key, block) == des3_ecb_encrypt(key, block)
    with pytest.raises(ValueError, match="at least one block"):
        retail_mac(key, b"")
    with pytest.raises(ValueError, match="16 bytes"):
        retail_mac(key[:8], block)
    with pytest.raises(ValueError, match="multiple of"):
        retail_mac(key, b"abc")


def test_constant_time_equal() -> None:
    assert constant_time_equal(b"\x01\x02", b"\x01\x02")
    assert not constant_time_equal(b"\x01\x02", b"\x01\x03")
    assert not constant_time_equal(b"\x01\x02", b"\x01\x02\x03")
    assert constant_time_equal(b"", b"")


# --------------------------------------------------------------------------------------------- AES-GCM

GCM = "crypto/gcm.json"


@pytest.mark.parametrize("case", params(GCM, "aes-gcm"))
def test_aes_gcm(case: VectorCase) -> None:
    """McGrew-Viega GCM test cases 13-16 (AES-256), the last with associated data."""
    key, nonce, aad = case.hex_in("key"), case.hex_in("nonce"), case.hex_in("aad")
    sealed = aes_gcm_encrypt(key, nonce, case.hex_in("plaintext"), aad)
    assert sealed == case.hex_out("ciphertext") + case.hex_out("tag")
    assert aes_gcm_decrypt(key, nonce, sealed, aad) == case.hex_in("plaintext")


def test_aes_gcm_refuses_tampering() -> None:
    key, nonce = bytes(range(32)), bytes(12)
    sealed = aes_gcm_encrypt(key, nonce, b"card key", b"card 1|kic|1")
    with pytest.raises(IntegrityError):
        aes_gcm_decrypt(key, nonce, sealed, b"card 2|kic|1")  # other associated data
    with pytest.raises(IntegrityError):
        aes_gcm_decrypt(key, nonce, bytes([sealed[0] ^ 1]) + sealed[1:], b"card 1|kic|1")
    with pytest.raises(IntegrityError):
        aes_gcm_decrypt(bytes(32), nonce, sealed, b"card 1|kic|1")  # another key
    with pytest.raises(ValueError, match="12 bytes"):
        aes_gcm_encrypt(key, bytes(8), b"x")
