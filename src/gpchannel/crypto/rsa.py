"""RSA and SHA for SCP10 (GP Card Specification 2.2.1, Appendix F.2.1 and F.2.2).

Like :mod:`gpchannel.crypto.ciphers` (symmetric) and :mod:`gpchannel.crypto.asym` (GP 2.3.1 B.3/B.4 token and
DAP signatures), this module may import ``cryptography``: here for RSA and SHA only, for SCP10. It provides:

- :class:`RsaPublicKey` (n, e) and :class:`RsaPrivateKey` (whose private values never appear in a repr);
- key generation from an *injected* random source (sans-I/O and reproducible: :func:`generate_private_key`);
- the raw RSA operations (``x^e mod n`` / ``x^d mod n``) that ISO/IEC 9796-2 and the "min(S, N - S)" rule of
  F.1.4.3 need, and the RSAES-PKCS1-v1_5 block layout of Table F-32;
- RSASSA-PKCS1-v1_5 with SHA-1 (signature without message recovery, F.2.1) through ``cryptography``;
- ISO/IEC 9796-2 Digital Signature scheme 1 with partial recovery and SHA-1 (signature with message recovery,
  F.2.1): the block ``6A || M1 || SHA-1(M1 || M2) || BC``;
- DER/PEM (de)serialisation from and to bytes (no files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gpchannel.errors import DecodeError, SecurityError

__all__ = [
    "RsaPrivateKey",
    "RsaPublicKey",
    "generate_private_key",
    "iso9796_2_ds1_open",
    "iso9796_2_ds1_sign",
    "pkcs1_v15_sign_sha1",
    "pkcs1_v15_verify_sha1",
    "sha1",
]

_SMALL_PRIMES = tuple(p for p in range(3, 2000, 2) if all(p % q for q in range(3, int(p**0.5) + 1, 2)))


def sha1(data: bytes) -> bytes:
    """SHA-1, the default SCP10 digest (F.2.2; OID 1.3.14.3.2.26)."""
    return hashlib.sha1(data).digest()  # noqa: S324 - mandated by GP 2.2.1 F.2.2


@dataclass(frozen=True, slots=True)
class RsaPublicKey:
    """An RSA public key: modulus ``n`` and public exponent ``e``; the one RSA public key type of the project
    (SCP10 certificates and trust points here; tokens, receipts and DAPs in :mod:`gpchannel.crypto.asym`; the
    A1 / A0 components of PUT KEY as :attr:`modulus_bytes` / :attr:`exponent_bytes`)."""

    n: int
    e: int

    def __post_init__(self) -> None:
        if self.n < 3 or self.n % 2 == 0 or self.e < 3 or self.e % 2 == 0:
            raise ValueError("an RSA public key needs an odd modulus and an odd exponent >= 3")

    @property
    def size(self) -> int:
        """The modulus length in bytes (the signature and block length, F.2.1)."""
        return (self.n.bit_length() + 7) // 8

    @classmethod
    def from_bytes(cls, modulus: bytes, exponent: bytes) -> RsaPublicKey:
        """The key of a big-endian modulus and exponent (the A1 / A0 key components, GP 2.3.1 Table 11-16)."""
        return cls(int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big"))

    @property
    def bits(self) -> int:
        """The modulus length in bits (Table C-1 chooses the scheme by it)."""
        return self.n.bit_length()

    @property
    def modulus_bytes(self) -> bytes:
        return self.n.to_bytes(self.size, "big")

    @property
    def exponent_bytes(self) -> bytes:
        return self.e.to_bytes((self.e.bit_length() + 7) // 8, "big")

    def raw(self, data: bytes) -> bytes:
        """``data^e mod n`` on a block of the modulus length (the RSA public operation)."""
        x = _to_int(data, self.n)
        return pow(x, self.e, self.n).to_bytes(self.size, "big")

    def to_cryptography(self) -> rsa.RSAPublicKey:
        """The key as the ``cryptography`` library's object, for its verifiers."""
        return rsa.RSAPublicNumbers(self.e, self.n).public_key()

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER."""
        return self.to_cryptography().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_pem(self) -> bytes:
        return self.to_cryptography().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_pem_or_der(cls, data: bytes) -> RsaPublicKey:
        """Load a SubjectPublicKeyInfo (PEM or DER); raises DecodeError when it is not an RSA public key."""
        try:
            key = (
                serialization.load_pem_public_key(data)
                if data.lstrip().startswith(b"-----")
                else serialization.load_der_public_key(data)
            )
        except ValueError as exc:
            raise DecodeError(f"not a public key: {type(exc).__name__}") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise DecodeError("not an RSA public key")
        numbers = key.public_numbers()
        return cls(numbers.n, numbers.e)


@dataclass(frozen=True, slots=True)
class RsaPrivateKey:
    """An RSA private key. Only the public half appears in its repr."""

    public: RsaPublicKey
    _key: rsa.RSAPrivateKey = field(repr=False, compare=False)
    _d: int = field(repr=False)

    @classmethod
    def from_numbers(cls, p: int, q: int, e: int = 65537) -> RsaPrivateKey:
        """Build from the two primes (the CRT values are computed)."""
        n = p * q
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, n)
        )
        return cls(RsaPublicKey(n, e), numbers.private_key(), d)

    @classmethod
    def from_pem_or_der(cls, data: bytes) -> RsaPrivateKey:
        """Load an unencrypted PKCS#1 or PKCS#8 private key (PEM or DER); raises DecodeError otherwise."""
        try:
            key = (
                serialization.load_pem_private_key(data, None)
                if data.lstrip().startswith(b"-----")
                else serialization.load_der_private_key(data, None)
            )
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"not an unencrypted private key: {type(exc).__name__}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DecodeError("not an RSA private key")
        numbers = key.private_numbers()
        return cls(RsaPublicKey(numbers.public_numbers.n, numbers.public_numbers.e), key, numbers.d)

    def to_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted (for the CLI to write test PKIs; never logged)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def raw(self, data: bytes) -> bytes:
        """``data^d mod n`` ("signing" in the sense of F.2.1: deciphering a block with the private key)."""
        n = self.public.n
        return pow(_to_int(data, n), self._d, n).to_bytes(self.public.size, "big")


def _to_int(data: bytes, n: int) -> int:
    x = int.from_bytes(data, "big")
    if x >= n:
        raise SecurityError("RSA input is not smaller than the modulus")
    return x


# -- key generation (injected randomness) -------------------------------------------------------------------------
def _is_probable_prime(n: int, random: Callable[[int], bytes], rounds: int = 40) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    size = (n.bit_length() + 7) // 8
    for _ in range(rounds):
        a = 2 + int.from_bytes(random(size), "big") % (n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, e: int, random: Callable[[int], bytes]) -> int:
    while True:
        candidate = int.from_bytes(random(bits // 8), "big") | (0b11 << (bits - 2)) | 1
        if candidate % e != 1 and _is_probable_prime(candidate, random):
            return candidate


def generate_private_key(bits: int, random: Callable[[int], bytes], e: int = 65537) -> RsaPrivateKey:
    """A ``bits``-bit RSA key (bits a multiple of 16, >= 512) from the random source (Miller-Rabin, 40 rounds).

    Both primes have their two top bits set, so the modulus has exactly ``bits`` bits (F.1.4.3 needs the card and
    off-card moduli to have the same length).
    """
    if bits < 512 or bits % 16:
        raise ValueError(f"RSA key size must be a multiple of 16 and at least 512 bits, got {bits}")
    while True:
        p, q = _prime(bits // 2, e, random), _prime(bits // 2, e, random)
        if p != q:
            return RsaPrivateKey.from_numbers(max(p, q), min(p, q), e)


# -- RSASSA-PKCS1-v1_5 (signature without message recovery, F.2.1) ------------------------------------------------
def pkcs1_v15_sign_sha1(key: RsaPrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-1 over ``message`` (Tables F-4 and F-8: 00 01 FF.. 00 DigestInfo)."""
    return key._key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - GP 2.2.1 F.2.2


def pkcs1_v15_verify_sha1(key: RsaPublicKey, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid RSASSA-PKCS1-v1_5 SHA-1 signature of ``message`` under ``key``."""
    if len(signature) != key.size:
        return False
    try:
        key.to_cryptography().verify(signature, message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    except InvalidSignature:
        return False
    return True


# -- ISO/IEC 9796-2 digital signature scheme 1 (signature with message recovery, F.2.1) ------------------------
def iso9796_2_ds1_sign(key: RsaPrivateKey, recoverable: bytes, rest: bytes) -> bytes:
    """Sign ``M = recoverable || rest`` with partial recovery: block ``6A || recoverable || SHA-1(M) || BC``.

    ``recoverable`` must fill the block exactly (modulus length - 22 bytes). Returns ``min(S, N - S)`` where
    ``S = block^d mod N`` (ISO/IEC 9796-2 DS1 with an RSA key; F.1.4.3 and F.1.4.4).
    """
    size = key.public.size
    if len(recoverable) != size - 22:
        raise ValueError(f"the recoverable part must be {size - 22} bytes for this key, got {len(recoverable)}")
    block = b"\x6a" + recoverable + sha1(recoverable + rest) + b"\xbc"
    s = int.from_bytes(key.raw(block), "big")
    return min(s, key.public.n - s).to_bytes(size, "big")


def iso9796_2_ds1_open(key: RsaPublicKey, signature: bytes) -> tuple[bytes, bytes]:
    """Recover ``(recoverable, hash)`` from a DS1 signature made by :func:`iso9796_2_ds1_sign`.

    Raises SecurityError when the block is not ``6A .. BC`` (the caller then checks the hash over M1 || M2).
    """
    if len(signature) != key.size:
        raise SecurityError(f"signature is {len(signature)} bytes, the key needs {key.size}")
    j = int.from_bytes(key.raw(signature), "big")
    if j & 0x0F != 0x0C:
        j = key.n - j
    block = j.to_bytes(key.size, "big")
    if block[0] != 0x6A or block[-1] != 0xBC:
        raise SecurityError("ISO/IEC 9796-2 block has a wrong header or trailer")
    return block[1:-21], block[-21:-1]
