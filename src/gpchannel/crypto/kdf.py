"""The SCP03 key derivation function (Amendment D v1.1.1, 4.1.5).

NIST SP 800-108 in counter mode with AES-CMAC as PRF, in the data layout GlobalPlatform fixes:
``label (11 x 00 || derivation constant) || 00 || L (2 bytes, in bits) || i (1 byte) || context``.

The key may be a :class:`gpchannel.crypto.ciphers.SymmetricKey` (a key in a PKCS#11 token): the PRF calls are
then its own AES-CMAC, and only the derived bytes leave the token.
"""

from __future__ import annotations

from enum import IntEnum

from gpchannel.crypto.ciphers import KeyMaterial, aes_cmac

__all__ = ["DerivationConstant", "scp03_kdf"]


class DerivationConstant(IntEnum):
    """Amendment D v1.1.1, Table 4-1."""

    CARD_CRYPTOGRAM = 0x00
    HOST_CRYPTOGRAM = 0x01
    CARD_CHALLENGE = 0x02
    S_ENC = 0x04
    S_MAC = 0x06
    S_RMAC = 0x07


def scp03_kdf(key: KeyMaterial, constant: int, context: bytes, length_bits: int) -> bytes:
    """Derive ``length_bits`` bits from ``key`` with the given derivation constant and context."""
    if length_bits <= 0 or length_bits % 8:
        raise ValueError(f"length_bits must be a positive multiple of 8, got {length_bits}")
    out = bytearray()
    counter = 1
    prf = key.cmac if not isinstance(key, bytes) else (lambda message: aes_cmac(key, message))
    prefix = bytes(11) + bytes((constant,)) + b"\x00" + length_bits.to_bytes(2, "big")
    while len(out) * 8 < length_bits:
        out += prf(prefix + bytes((counter,)) + context)
        counter += 1
    return bytes(out[: length_bits // 8])
