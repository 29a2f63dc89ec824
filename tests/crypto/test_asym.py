"""RSA Scheme 1/2 and ECDSA (GP 2.3.1 B.3, B.4) against NIST CAVS, Wycheproof and NIST CSRC vectors."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gpchannel.crypto.asym import (
    AsymScheme,
    EcCurve,
    EcPublicKey,
    PrivateKey,
    load_private_key_pem,
    load_public_key_pem,
    rsa_public_key,
    scheme_of,
    verify,
)
from tests.vectors import VectorCase, cases, params

FILE = "tokens/asym.json"


@pytest.mark.parametrize("case", params(FILE, "rsa-pkcs1-sha1", "rsa-pss-sha256"))
def test_rsa_vectors(case: VectorCase) -> None:
    key = rsa_public_key(case.hex_in("n"), case.hex_in("e"))
    expected_scheme = AsymScheme.RSA_PKCS1_SHA1 if case.kind == "rsa-pkcs1-sha1" else AsymScheme.RSA_PSS_SHA256
    assert scheme_of(key) is expected_scheme
    assert verify(key, case.hex_in("msg"), case.hex_in("sig")) is case.expected["valid"]
    if case.expected["valid"]:
        tampered = bytearray(case.hex_in("sig"))
        tampered[-1] ^= 1
        assert not verify(key, case.hex_in("msg"), bytes(tampered))
        assert not verify(key, case.hex_in("msg") + b"\x00", case.hex_in("sig"))


def _cavs_private_key(case: VectorCase) -> PrivateKey:
    n, e, d = (int.from_bytes(case.hex_in(x), "big") for x in ("n", "e", "d"))
    p, q = int.from_bytes(case.hex_in("p"), "big"), int.from_bytes(case.hex_in("q"), "big")
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
    )
    pem = numbers.private_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return load_private_key_pem(pem)


def test_rsa_scheme1_signing_matches_cavs() -> None:
    """PKCS#1 v1.5 is deterministic: our signature of the CAVS message is the CAVS signature."""
    case = next(c for c in cases(FILE, "rsa-pkcs1-sha1") if c.expected["valid"])
    key = _cavs_private_key(case)
    assert key.scheme is AsymScheme.RSA_PKCS1_SHA1
    assert key.sign(case.hex_in("msg")) == case.hex_in("sig")
    assert key.public_key() == rsa_public_key(case.hex_in("n"), case.hex_in("e"))


@pytest.mark.parametrize("case", params(FILE, "ecdsa"))
def test_ecdsa_vector(case: VectorCase) -> None:
    msg = case.hex_in("msg")
    assert hashlib.sha256(msg).digest() == case.hex_out("hash")
    key = EcPublicKey(EcCurve[case.inputs["curve"]], b"\x04" + case.hex_in("qx") + case.hex_in("qy"))
    signature = case.hex_in("r") + case.hex_in("s")
    assert scheme_of(key) is AsymScheme.ECDSA
    assert verify(key, msg, signature) is case.expected["valid"]
    assert not verify(key, msg + b".", signature)
    assert not verify(key, msg, signature[:-1])  # plain r||s has a fixed length


@pytest.mark.parametrize("curve", [EcCurve.P256, EcCurve.P384, EcCurve.BRAINPOOL_P256R1])
def test_ecdsa_sign_verify_plain_format(curve: EcCurve) -> None:
    curves = {
        EcCurve.P256: ec.SECP256R1(),
        EcCurve.P384: ec.SECP384R1(),
        EcCurve.BRAINPOOL_P256R1: ec.BrainpoolP256R1(),
    }
    pem = ec.generate_private_key(curves[curve]).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = load_private_key_pem(pem)
    signature = key.sign(b"token data")
    public = key.public_key()
    assert isinstance(public, EcPublicKey) and public.curve is curve
    assert len(signature) == 2 * public.order_length
    assert verify(public, b"token data", signature)
    assert not verify(public, b"token datA", signature)


def test_rsa_scheme2_roundtrip_and_pem_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    key = load_private_key_pem(pem)
    assert key.scheme is AsymScheme.RSA_PSS_SHA256
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = load_public_key_pem(public_pem)
    assert public == key.public_key()
    signature = key.sign(b"lfdbh")
    assert verify(public, b"lfdbh", signature)
    assert not verify(public, b"lfdbi", signature)


def test_private_key_repr_has_no_key_material() -> None:
    case = next(c for c in cases(FILE, "rsa-pkcs1-sha1") if c.expected["valid"])
    key = _cavs_private_key(case)
    text = repr(key)
    assert case.inputs["d"][:16] not in text.lower() and "RSAPrivateKey" not in text


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="modulus"):
        rsa_public_key(bytes(64), b"\x03")
    with pytest.raises(ValueError, match="not on"):
        EcPublicKey(EcCurve.P256, b"\x04" + bytes(64))
    with pytest.raises(ValueError, match="PEM"):
        load_private_key_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
