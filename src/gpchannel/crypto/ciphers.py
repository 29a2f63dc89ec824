"""Block ciphers and MACs: the only module that imports ``cryptography``.

- DES and two- or three-key 3DES in ECB and CBC (keys of 8, 16 or 24 bytes; 8- and 16-byte keys are expanded to
  24 bytes here, since cryptography >= 47 warns on short TripleDES keys);
- AES-128/192/256 in ECB and CBC;
- the full 3DES CBC-MAC (ISO/IEC 9797-1 MAC algorithm 1 with 3DES), the retail MAC (ISO/IEC 9797-1 MAC
  algorithm 3 with DES) and AES-CMAC (NIST SP 800-38B).

Inputs to the block functions must already be padded; MAC functions take unpadded data where the algorithm
pads (CMAC) and padded data where the caller chooses the padding (the DES MACs, as GlobalPlatform specifies).
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = [
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "constant_time_equal",
    "des3_cbc_decrypt",
    "des3_cbc_encrypt",
    "des3_cbc_mac",
    "des3_ecb_decrypt",
    "des3_ecb_encrypt",
    "des_cbc_encrypt",
    "des_ecb_encrypt",
    "expand_des_key",
    "retail_mac",
]

_ZERO8 = bytes(8)
_ZERO16 = bytes(16)


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


_Mode = modes.ECB | modes.CBC


def _run(cipher: Cipher[_Mode], data: bytes, encrypt: bool) -> bytes:
    if encrypt:
        enc = cipher.encryptor()
        return enc.update(data) + enc.finalize()
    dec = cipher.decryptor()
    return dec.update(data) + dec.finalize()


def _des3(key: bytes, mode: _Mode) -> Cipher[_Mode]:
    return Cipher(TripleDES(expand_des_key(key)), mode)


def des3_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 8)
    return _run(_des3(key, modes.ECB()), data, True)


def des3_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 8)
    return _run(_des3(key, modes.ECB()), data, False)


def des3_cbc_encrypt(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    _check_blocks(data, 8)
    return _run(_des3(key, modes.CBC(iv)), data, True)


def des3_cbc_decrypt(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    _check_blocks(data, 8)
    return _run(_des3(key, modes.CBC(iv)), data, False)


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
    chain = iv
    if len(data) > 8:
        chain = des_cbc_encrypt(key[:8], data[:-8], iv)[-8:]
    last = bytes(a ^ b for a, b in zip(chain, data[-8:], strict=True))
    return des3_ecb_encrypt(key, last)


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 16)
    return _run(Cipher(algorithms.AES(key), modes.ECB()), data, True)


def aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    _check_blocks(data, 16)
    return _run(Cipher(algorithms.AES(key), modes.ECB()), data, False)


def aes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = _ZERO16) -> bytes:
    _check_blocks(data, 16)
    return _run(Cipher(algorithms.AES(key), modes.CBC(iv)), data, True)


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = _ZERO16) -> bytes:
    _check_blocks(data, 16)
    return _run(Cipher(algorithms.AES(key), modes.CBC(iv)), data, False)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), the full 16-byte tag."""
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs or cryptograms in constant time."""
    return hmac.compare_digest(a, b)
