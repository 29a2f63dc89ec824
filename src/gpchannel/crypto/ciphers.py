"""Block ciphers and MACs: with crypto/block_engine.py (cipher contexts kept per key), the only modules that
import ``cryptography`` for them:

- DES and two- or three-key 3DES in ECB and CBC (keys of 8, 16 or 24 bytes; 8- and 16-byte keys are expanded to
  24 bytes here, since cryptography >= 47 warns on short TripleDES keys);
- AES-128/192/256 in ECB and CBC;
- the full 3DES CBC-MAC (ISO/IEC 9797-1 MAC algorithm 1 with 3DES), the retail MAC (ISO/IEC 9797-1 MAC
  algorithm 3 with DES) and AES-CMAC (NIST SP 800-38B);
- AES-GCM (NIST SP 800-38D) with associated data, for keys wrapped at rest (``gpchannel.server.keys``).

A key is bytes, or a :class:`SymmetricKey`: a key held elsewhere (a PKCS#11 token, ``gpchannel.io.pkcs11``)
that runs the block operations itself and never shows its value. The SCP80 algorithms
(:mod:`gpchannel.ota.algorithms`) and the SCP03 KDF (:mod:`gpchannel.crypto.kdf`) accept both
(:data:`KeyMaterial`).

Inputs to the block functions must already be padded; MAC functions take unpadded data where the algorithm
pads (CMAC) and padded data where the caller chooses the padding (the DES MACs, as GlobalPlatform specifies).
"""

from __future__ import annotations

import hmac
from typing import Protocol, TypeAlias, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gpchannel.crypto.block_engine import BlockEngine, engine, retail_engines
from gpchannel.errors import IntegrityError

__all__ = [
    "KeyMaterial",
    "SymmetricKey",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "constant_time_equal",
    "des3_cbc_decrypt",
    "des3_cbc_encrypt",
    "des3_cbc_mac",
    "des3_ecb_decrypt",
    "des3_ecb_encrypt",
    "des_cbc_encrypt",
    "des_ecb_encrypt",
    "expand_des_key",
    "key_length",
    "retail_mac",
]

_ZERO8 = bytes(8)
_ZERO16 = bytes(16)


@runtime_checkable
class SymmetricKey(Protocol):
    """A DES/3DES or AES key that performs its own block operations (e.g. inside a PKCS#11 token).

    ``block_size`` is 8 for DES and 3DES keys, 16 for AES keys; ``key_length`` is the key's length in bytes as
    the protocols count it (8, 16 or 24 for DES keys; 16, 24 or 32 for AES). The ECB and CBC operations take
    whole blocks and no padding; ``cmac`` is AES-CMAC (NIST SP 800-38B, full 16-byte tag) and exists for AES keys
    only. Implementations must not expose the key value (not in ``repr`` either).
    """

    @property
    def block_size(self) -> int: ...

    @property
    def key_length(self) -> int: ...

    def encrypt_ecb(self, data: bytes) -> bytes: ...

    def decrypt_ecb(self, data: bytes) -> bytes: ...

    def encrypt_cbc(self, data: bytes, iv: bytes) -> bytes: ...

    def decrypt_cbc(self, data: bytes, iv: bytes) -> bytes: ...

    def cmac(self, data: bytes) -> bytes: ...


KeyMaterial: TypeAlias = bytes | SymmetricKey
"""A key's value, or a handle that runs the operations (see :class:`SymmetricKey`)."""


def key_length(key: KeyMaterial) -> int:
    """The length in bytes of a key value or of a :class:`SymmetricKey`."""
    return len(key) if isinstance(key, bytes) else key.key_length


def expand_des_key(key: bytes) -> bytes:
    """A 24-byte 3DES key from an 8 (single DES), 16 (K1 K2 -> K1 K2 K1) or 24-byte key."""
    if len(key) == 24:
        return key
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 8:
        return key * 3
    raise ValueError(f"a DES key is 8, 16 or 24 bytes, got {len(key)}")


def _check_blocks(data: bytes, size: int) -> None:
    if len(data) % size:
        raise ValueError(f"data must be a multiple of {size} bytes, got {len(data)}")


def _des3(key: bytes) -> BlockEngine:
    return engine("des3", expand_des_key(key))


def des3_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 8)
    return _des3(key).ecb_encrypt(data)


def des3_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 8)
    return _des3(key).ecb_decrypt(data)


def des3_cbc_encrypt(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    _check_blocks(data, 8)
    cipher = _des3(key)
    cipher.check_iv(iv)
    return cipher.cbc_encrypt(data, iv)


def des3_cbc_decrypt(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    _check_blocks(data, 8)
    cipher = _des3(key)
    cipher.check_iv(iv)
    return cipher.cbc_decrypt(data, iv)


def des_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """Single DES (``key`` is 8 bytes, or the first 8 bytes of a longer key are used)."""
    return des3_ecb_encrypt(key[:8], data)


def des_cbc_encrypt(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    return des3_cbc_encrypt(key[:8], data, iv)


def des3_cbc_mac(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    """Full 3DES CBC-MAC (ISO 9797-1 MAC algorithm 1): the last block of 3DES-CBC over padded ``data``."""
    return des3_cbc_encrypt(key, data, iv)[-8:]


def retail_mac(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (retail MAC) over padded ``data`` with a 16-byte ``key``.

    Single DES CBC with the left half over every block, then decrypt with the right half and encrypt with the
    left half on the final block (equivalently, 3DES on the last block).
    """
    if len(key) != 16:
        raise ValueError(f"a retail MAC key is 16 bytes (K and K'), got {len(key)}")
    _check_blocks(data, 8)
    if not data:
        raise ValueError("retail MAC needs at least one block")
    if len(iv) != 8:
        raise ValueError(f"Invalid IV size ({len(iv)}) for CBC.")
    single, full = retail_engines(key)
    chain = iv
    if len(data) > 8:
        chain = single.cbc_encrypt(data[:-8], iv)[-8:]  # single DES: K1 K1 K1
    last = int.from_bytes(chain, "big") ^ int.from_bytes(data[-8:], "big")
    return full.ecb_encrypt(last.to_bytes(8, "big"))


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 16)
    return engine("aes", key).ecb_encrypt(data)


def aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 16)
    return engine("aes", key).ecb_decrypt(data)


def aes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = _ZERO16) -> bytes:
    _check_blocks(data, 16)
    cipher = engine("aes", key)
    cipher.check_iv(iv)
    return cipher.cbc_encrypt(data, iv)


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = _ZERO16) -> bytes:
    _check_blocks(data, 16)
    cipher = engine("aes", key)
    cipher.check_iv(iv)
    return cipher.cbc_decrypt(data, iv)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), the full 16-byte tag."""
    return engine("aes", key).cmac(data)


def aes_gcm_encrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """AES-GCM (NIST SP 800-38D): ``ciphertext || 16-byte tag``. ``nonce`` is 12 bytes and must never repeat
    under one key (callers draw it at random)."""
    if len(nonce) != 12:
        raise ValueError(f"an AES-GCM nonce is 12 bytes here, got {len(nonce)}")
    return AESGCM(key).encrypt(nonce, data, aad)


def aes_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes = b"") -> bytes:
    """Inverse of :func:`aes_gcm_encrypt`; :class:`IntegrityError` when the tag does not verify (wrong key,
    other associated data, or altered ciphertext: GCM cannot tell which)."""
    if len(nonce) != 12:
        raise ValueError(f"an AES-GCM nonce is 12 bytes here, got {len(nonce)}")
    try:
        return AESGCM(key).decrypt(nonce, data, aad)
    except InvalidTag:
        raise IntegrityError("AES-GCM tag did not verify") from None


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs or cryptograms in constant time."""
    return hmac.compare_digest(a, b)
