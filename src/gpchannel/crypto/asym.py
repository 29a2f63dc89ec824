"""Asymmetric signatures for tokens, receipts and DAPs (GP Card Specification 2.3.1, Appendix B.3, B.4).

Three schemes, chosen by the key as Table C-1 says:

* RSA Scheme 1 (B.3.1.1), 1024-bit keys: RSASSA-PKCS1-v1_5 with SHA-1.
* RSA Scheme 2 (B.3.2.1), keys longer than 1024 bits: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt of 32 bytes.
* ECC (B.4.3): ECDSA over P-256/P-384/P-521 or brainpool r1 curves, SHA-256/384/512 by the key length
  (Table B-3); the signature in plain format (r || s, each as long as the order, TR-03111).

Public keys are plain values (:class:`~gpchannel.crypto.rsa.RsaPublicKey`, the project's one RSA key type, built
here by :func:`rsa_public_key` with the 1024-bit floor of Table C-1; :class:`EcPublicKey`
with the curve and the uncompressed point ``04 || X || Y``), as a card stores them. Private keys
(:class:`PrivateKey`) come from PEM files on the host; their repr shows the scheme, never key material.

PSS and ECDSA signing draw their salt or nonce from the library's CSPRNG: those two schemes are randomised
by definition and are only used off card (tokens, DAPs); everything the card does (verification) is
deterministic.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from gpchannel.crypto.rsa import RsaPublicKey

__all__ = [
    "AsymScheme",
    "EcCurve",
    "EcPublicKey",
    "PrivateKey",
    "PublicKey",
    "RsaPublicKey",
    "load_private_key_pem",
    "load_public_key_pem",
    "rsa_public_key",
    "scheme_of",
    "verify",
]


class AsymScheme(enum.Enum):
    """The asymmetric signature schemes of GP 2.3.1 Appendix B."""

    RSA_PKCS1_SHA1 = "RSA Scheme 1 (B.3.1.1): RSASSA-PKCS1-v1_5, SHA-1"
    RSA_PSS_SHA256 = "RSA Scheme 2 (B.3.2.1): RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32"
    ECDSA = "ECDSA (B.4.3), plain r||s"


class EcCurve(enum.IntEnum):
    """Curves by their key parameter reference (GP 2.3.1, Table B-2); the t1 twists are not offered."""

    P256 = 0x00
    P384 = 0x01
    P521 = 0x02
    BRAINPOOL_P256R1 = 0x03
    BRAINPOOL_P384R1 = 0x05
    BRAINPOOL_P512R1 = 0x07


_CURVES: dict[EcCurve, ec.EllipticCurve] = {
    EcCurve.P256: ec.SECP256R1(),
    EcCurve.P384: ec.SECP384R1(),
    EcCurve.P521: ec.SECP521R1(),
    EcCurve.BRAINPOOL_P256R1: ec.BrainpoolP256R1(),
    EcCurve.BRAINPOOL_P384R1: ec.BrainpoolP384R1(),
    EcCurve.BRAINPOOL_P512R1: ec.BrainpoolP512R1(),
}


def _curve_of(curve: ec.EllipticCurve) -> EcCurve:
    for member, known in _CURVES.items():
        if known.name == curve.name:
            return member
    raise ValueError(f"curve {curve.name} is not one of GP 2.3.1 Table B-2's")


def _ecdsa_hash(curve: EcCurve) -> hashes.HashAlgorithm:
    """Table B-3: SHA-256 for 256-383-bit keys, SHA-384 for 384-511, SHA-512 from 512."""
    size = _CURVES[curve].key_size
    if size >= 512:
        return hashes.SHA512()
    return hashes.SHA384() if size >= 384 else hashes.SHA256()


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def rsa_public_key(modulus: bytes | int, exponent: bytes | int) -> RsaPublicKey:
    """The RSA public key of a token, receipt or DAP scheme: big-endian bytes (the A1 / A0 components of PUT KEY)
    or ints; ValueError below the 1024 bits of Table C-1, or for an even modulus or an exponent below 3."""
    n = modulus if isinstance(modulus, int) else int.from_bytes(modulus, "big")
    e = exponent if isinstance(exponent, int) else int.from_bytes(exponent, "big")
    if n.bit_length() < 1024 or not n & 1:
        raise ValueError(f"an RSA modulus of {n.bit_length()} bits is not a usable key (1024 bits or more)")
    if e < 3:
        raise ValueError("the RSA public exponent must be at least 3")
    return RsaPublicKey(n, e)


@dataclass(frozen=True, slots=True)
class EcPublicKey:
    """An ECC public key: its curve and the uncompressed point ``04 || X || Y`` (B.4.4)."""

    curve: EcCurve
    point: bytes

    def __post_init__(self) -> None:
        self._key()

    def _key(self) -> ec.EllipticCurvePublicKey:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[self.curve], self.point)
        except ValueError:
            raise ValueError(f"the point is not on {self.curve.name}") from None

    @property
    def order_length(self) -> int:
        return (_CURVES[self.curve].key_size + 7) // 8


PublicKey = RsaPublicKey | EcPublicKey


def scheme_of(key: PublicKey) -> AsymScheme:
    """The scheme Table C-1 assigns to a key: RSA 1024 -> Scheme 1, longer RSA -> Scheme 2, ECC -> ECDSA."""
    if isinstance(key, EcPublicKey):
        return AsymScheme.ECDSA
    return AsymScheme.RSA_PKCS1_SHA1 if key.bits <= 1024 else AsymScheme.RSA_PSS_SHA256


def verify(key: PublicKey, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid signature of ``data`` under ``key`` in the key's scheme."""
    try:
        if isinstance(key, EcPublicKey):
            size = key.order_length
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key._key().verify(encode_dss_signature(r, s), data, ec.ECDSA(_ecdsa_hash(key.curve)))
        elif scheme_of(key) is AsymScheme.RSA_PKCS1_SHA1:
            key.to_cryptography().verify(signature, data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (B.3.1.1)
        else:
            key.to_cryptography().verify(signature, data, _pss(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """An RSA or ECC private key (host side: token, DAP and receipt signing). The repr shows no key material."""

    _key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def scheme(self) -> AsymScheme:
        return scheme_of(self.public_key())

    def public_key(self) -> PublicKey:
        public = self._key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return rsa_public_key(numbers.n, numbers.e)
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return EcPublicKey(_curve_of(public.curve), point)

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` in the key's scheme (B.3.1.1, B.3.2.1 or B.4.3, plain r||s)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            curve = _curve_of(key.curve)
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_ecdsa_hash(curve))))
            size = (key.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if key.key_size <= 1024:
            return key.sign(data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (B.3.1.1)
        return key.sign(data, _pss(), hashes.SHA256())


def load_private_key_pem(pem: bytes) -> PrivateKey:
    """An unencrypted PKCS#1/PKCS#8/SEC1 PEM private key; ValueError when it is none of RSA or a GP curve."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key: {type(exc).__name__}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ValueError(f"an RSA key of {key.key_size} bits is below GP's 1024 (Table C-1)")
        return PrivateKey(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _curve_of(key.curve)
        return PrivateKey(key)
    raise ValueError("only RSA and ECC private keys sign tokens, receipts and DAPs (Table C-1)")


def load_public_key_pem(pem: bytes) -> PublicKey:
    """A PEM public key (SubjectPublicKeyInfo or PKCS#1 RSA) as an :data:`PublicKey` value."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {type(exc).__name__}") from None
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return rsa_public_key(numbers.n, numbers.e)
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return EcPublicKey(_curve_of(key.curve), point)
    raise ValueError("only RSA and ECC public keys verify tokens and DAPs (Table C-1)")
