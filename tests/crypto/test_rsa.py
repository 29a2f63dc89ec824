"""gpchannel.crypto.rsa: key generation from injected randomness, raw RSA, PKCS#1 v1.5 and ISO/IEC 9796-2 DS1.

The openssl-made vectors for these operations are exercised in tests/scp/test_scp10_vectors.py (kinds
``*_signature_*`` and ``certificate_*``); here: the properties and failure modes.
"""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.crypto.rsa import (
    RsaPrivateKey,
    RsaPublicKey,
    generate_private_key,
    iso9796_2_ds1_open,
    iso9796_2_ds1_sign,
    pkcs1_v15_sign_sha1,
    pkcs1_v15_verify_sha1,
    sha1,
)
from gpchannel.errors import DecodeError, SecurityError
from tests.scp.test_scp10 import Drbg


@cache
def key(seed: bytes = b"rsa", bits: int = 768) -> RsaPrivateKey:
    return generate_private_key(bits, Drbg(seed))


def test_generation_is_exact_and_reproducible() -> None:
    assert key().public.n.bit_length() == 768
    assert generate_private_key(768, Drbg(b"rsa")).public == key().public
    assert key(b"other").public != key().public
    with pytest.raises(ValueError, match="multiple of 16"):
        generate_private_key(1000, Drbg(b"x"))


def test_serialisation_round_trips() -> None:
    k = key()
    assert RsaPrivateKey.from_pem_or_der(k.to_pem()).public == k.public
    assert RsaPublicKey.from_pem_or_der(k.public.to_pem()) == k.public
    assert RsaPublicKey.from_pem_or_der(k.public.to_der()) == k.public
    for bad in (b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"):
        with pytest.raises(DecodeError):
            RsaPublicKey.from_pem_or_der(bad)
        with pytest.raises(DecodeError):
            RsaPrivateKey.from_pem_or_der(bad)


def test_private_values_stay_out_of_repr() -> None:
    k = key()
    text = repr(k)
    assert str(k._d) not in text and hex(k._d)[2:20] not in text


def test_raw_operations_invert_and_bound_the_input() -> None:
    k = key()
    block = bytes(range(1, 97))
    assert k.public.raw(k.raw(block)) == block
    with pytest.raises(SecurityError):
        k.public.raw(b"\xff" * k.public.size)


def test_pkcs1_rejects_other_messages_keys_and_lengths() -> None:
    k, other = key(), key(b"other")
    signature = pkcs1_v15_sign_sha1(k, b"message")
    assert pkcs1_v15_verify_sha1(k.public, b"message", signature)
    assert not pkcs1_v15_verify_sha1(k.public, b"messagf", signature)
    assert not pkcs1_v15_verify_sha1(other.public, b"message", signature)
    assert not pkcs1_v15_verify_sha1(k.public, b"message", signature[1:])


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_ds1_round_trip(data: st.DataObject) -> None:
    k = key()
    recoverable = data.draw(st.binary(min_size=k.public.size - 22, max_size=k.public.size - 22))
    rest = data.draw(st.binary(max_size=40))
    signature = iso9796_2_ds1_sign(k, recoverable, rest)
    assert int.from_bytes(signature, "big") <= k.public.n // 2  # min(S, N - S)
    assert iso9796_2_ds1_open(k.public, signature) == (recoverable, sha1(recoverable + rest))


def test_ds1_failures() -> None:
    k, other = key(), key(b"other")
    with pytest.raises(ValueError, match="recoverable"):
        iso9796_2_ds1_sign(k, b"short", b"")
    signature = iso9796_2_ds1_sign(k, bytes(k.public.size - 22), b"")
    with pytest.raises(SecurityError):
        iso9796_2_ds1_open(other.public, signature)
    with pytest.raises(SecurityError):
        iso9796_2_ds1_open(k.public, signature[1:])
