"""SCP80 algorithms: key sets, the ciphers of KIc, the RC/CC of KID, and their binding to keys.

ETSI TS 102 225 5.1.2 (ciphering: DES/3DES in outer CBC with a zero ICV, DES in ECB, AES in CBC with a zero
ICV), 5.1.3 (RC: CRC16/CRC32 of ISO/IEC 13239; CC: DES/3DES CBC-MAC with the input zero-padded to a multiple
of 8 and the padding never transmitted; AES-CMAC of NIST SP 800-38B over the unpadded input, truncated). The
primitives themselves come from :mod:`gpchannel.crypto.ciphers`.

A :class:`Scp80KeySet` binds its keys to algorithms. A KIc/KID naming another algorithm than the one the key set is
bound to is refused (an algorithm downgrade: ota-notes E.2), and single DES is refused unless the key set allows
it (E.1). The implicit codings (b2b1 = 00) take the algorithm of the key set.

KIc and KID keys are bytes, or :class:`gpchannel.crypto.ciphers.SymmetricKey` handles (keys in a PKCS#11
token): the ciphering is then the handle's CBC (zero ICV) or ECB, the DES CC the last block of its CBC encryption
of the zero-padded input (ISO/IEC 9797-1 MAC algorithm 1) and the AES CC its CMAC. A handle whose block size
does not fit the algorithm (an AES key named by a 3DES KIc) is refused like a wrong key length.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from gpchannel.crypto import ciphers
from gpchannel.crypto.ciphers import KeyMaterial, key_length
from gpchannel.errors import UnsupportedError
from gpchannel.ota.spi import AlgorithmFamily, CipherAlgorithm, Integrity, Kic, Kid, MacAlgorithm, RcAlgorithm

__all__ = [
    "KIC_ALGORITHMS",
    "KID_ALGORITHMS",
    "Scp80KeySet",
    "compute_check",
    "crc16_x25",
    "decrypt",
    "encrypt",
    "key_lengths",
    "key_shape",
    "resolve_check",
    "resolve_cipher",
]

KIC_ALGORITHMS: Mapping[str, CipherAlgorithm] = {
    "des-cbc": CipherAlgorithm.DES_CBC,
    "3des-2key": CipherAlgorithm.DES3_2KEY_CBC,
    "3des-3key": CipherAlgorithm.DES3_3KEY_CBC,
    "aes-cbc": CipherAlgorithm.AES_CBC,
}
"""The KIc algorithm names of card profiles, inventories, key stores and the CLI (TS 102 225 5.1.2): the one table
of those names; their key lengths come from :func:`key_lengths`."""
KID_ALGORITHMS: Mapping[str, MacAlgorithm] = {
    "des-cbc-mac": MacAlgorithm.DES_CBC_MAC,
    "3des-2key": MacAlgorithm.DES3_2KEY_CBC_MAC,
    "3des-3key": MacAlgorithm.DES3_3KEY_CBC_MAC,
    "aes-cmac": MacAlgorithm.AES_CMAC,
}
"""The KID (cryptographic checksum) algorithm names (TS 102 225 5.1.3), as :data:`KIC_ALGORITHMS`."""

_CIPHER_KEY_LENGTHS: dict[CipherAlgorithm, tuple[int, ...]] = {
    CipherAlgorithm.DES_CBC: (8,),
    CipherAlgorithm.DES_ECB: (8,),
    CipherAlgorithm.DES3_2KEY_CBC: (16,),
    CipherAlgorithm.DES3_3KEY_CBC: (24,),
    CipherAlgorithm.DES3_ECB: (16, 24),
    CipherAlgorithm.AES_CBC: (16, 24, 32),
}
_MAC_KEY_LENGTHS: dict[MacAlgorithm, tuple[int, ...]] = {
    MacAlgorithm.DES_CBC_MAC: (8,),
    MacAlgorithm.DES3_2KEY_CBC_MAC: (16,),
    MacAlgorithm.DES3_3KEY_CBC_MAC: (24,),
    MacAlgorithm.AES_CMAC: (16, 24, 32),
}
_RC_LENGTHS = {RcAlgorithm.CRC16: 2, RcAlgorithm.CRC32: 4, RcAlgorithm.XOR4: 4, RcAlgorithm.XOR8: 8}


def key_lengths(algorithm: CipherAlgorithm | MacAlgorithm) -> tuple[int, ...]:
    """The key lengths (bytes) ``algorithm`` takes: TS 102 225 5.1.2 (KIc) and 5.1.3 (KID)."""
    if isinstance(algorithm, CipherAlgorithm):
        return _CIPHER_KEY_LENGTHS[algorithm]
    return _MAC_KEY_LENGTHS[algorithm]


_T = TypeVar("_T", CipherAlgorithm, MacAlgorithm, RcAlgorithm)
_R = TypeVar("_R")
_SINGLE_DES = (CipherAlgorithm.DES_CBC, CipherAlgorithm.DES_ECB, MacAlgorithm.DES_CBC_MAC)


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Scp80KeySet:
    """One SCP80 key set (one KVN): the ciphering key (KIc), the RC/CC key (KID) and their algorithms.

    ``cipher`` / ``mac`` / ``rc`` bind the key set to one algorithm each: ``None`` accepts what the KIc/KID byte
    names (a sender's convenience); a value is required for the implicit codings and makes any other explicit
    coding a security error. ``cmac_length`` is the AES-CMAC truncation (8, or 4 where configured: TS 102 225
    5.1.3; ota-notes F.2). Single DES (KIc/KID nibble 1, KIc D) is refused unless ``allow_single_des``.
    Keys never appear in the repr.
    """

    kic_key: KeyMaterial = field(default=b"", repr=False)
    kid_key: KeyMaterial = field(default=b"", repr=False)
    cipher: CipherAlgorithm | None = None
    mac: MacAlgorithm | None = None
    rc: RcAlgorithm | None = None
    cmac_length: int = 8
    allow_single_des: bool = False

    def __post_init__(self) -> None:
        if self.cmac_length not in (4, 8):
            raise ValueError(f"cmac_length must be 4 or 8, got {self.cmac_length}")


def _bind(named: _T | None, family: AlgorithmFamily, bound: _T | None, what: str) -> _T:
    if family is AlgorithmFamily.IMPLICIT:
        if bound is None:
            raise UnsupportedError(f"{what} codes an implicit algorithm and the key set names none")
        return bound
    if named is None:
        raise UnsupportedError(f"{what} codes a proprietary or reserved algorithm")
    if bound is not None and bound is not named:
        raise UnsupportedError(f"{what} names another algorithm than the key set is bound to")
    return named


def _refuse_single_des(alg: object, keyset: Scp80KeySet) -> None:
    if alg in _SINGLE_DES and not keyset.allow_single_des:
        raise UnsupportedError("single DES is refused for this key set (TS 102 225 keeps it for legacy only)")


_RESOLVED: dict[tuple[object, ...], Any] = {}
"""Algorithms already resolved for a KIc or KID and what of a key set decides it (never the key values): a
packet stream resolves the same ones every time."""
_RESOLVED_MAX = 256


def key_shape(key: KeyMaterial) -> object:
    """What of a key the algorithm checks look at: its length (a key object: its length and block size)."""
    return len(key) if isinstance(key, bytes) else (key.key_length, key.block_size)


_shape = key_shape


def _memo(key: tuple[object, ...], byte: object, resolve: Callable[[], _R]) -> _R:
    """``resolve()``, remembered under ``key`` (errors are not remembered). Keys hold object identities (enum
    members, and ``byte``, the KIc or KID, kept alive with the value so that its identity is never reused)."""
    found = _RESOLVED.get(key)
    if found is not None:
        return cast(_R, found[1])
    value = resolve()
    if len(_RESOLVED) >= _RESOLVED_MAX:
        _RESOLVED.clear()
    _RESOLVED[key] = (byte, value)
    return value


def resolve_cipher(kic: Kic, keyset: Scp80KeySet) -> CipherAlgorithm:
    """The ciphering algorithm for ``kic`` under ``keyset``; :class:`UnsupportedError` when refused."""
    shape = (id(kic), id(keyset.cipher), keyset.allow_single_des, _shape(keyset.kic_key))
    return _memo(shape, kic, lambda: _resolve_cipher(kic, keyset))


def _resolve_cipher(kic: Kic, keyset: Scp80KeySet) -> CipherAlgorithm:
    alg = _bind(kic.cipher, kic.family, keyset.cipher, "KIc")
    _refuse_single_des(alg, keyset)
    _check_key(keyset.kic_key, _CIPHER_KEY_LENGTHS[alg], alg.block_size, alg.value)
    return alg


def resolve_check(integrity: Integrity, kid: Kid, keyset: Scp80KeySet) -> tuple[MacAlgorithm | RcAlgorithm | None, int]:
    """The RC/CC algorithm and its length L for ``integrity`` under ``kid`` and ``keyset``."""
    key = keyset.kid_key
    shape = (id(integrity), id(kid), id(keyset.mac), id(keyset.rc), keyset.cmac_length, keyset.allow_single_des)
    return _memo((*shape, _shape(key)), kid, lambda: _resolve_check(integrity, kid, keyset))


def _resolve_check(
    integrity: Integrity, kid: Kid, keyset: Scp80KeySet
) -> tuple[MacAlgorithm | RcAlgorithm | None, int]:
    if integrity is Integrity.NONE:
        return None, 0
    if integrity is Integrity.DS:
        raise UnsupportedError("digital signatures are not defined by TS 102 225 (implicit or proprietary)")
    if integrity is Integrity.RC:
        rc = _bind(kid.rc, kid.family, keyset.rc, "KID (RC)")
        return rc, _RC_LENGTHS[rc]
    mac = _bind(kid.mac, kid.family, keyset.mac, "KID (CC)")
    _refuse_single_des(mac, keyset)
    _check_key(keyset.kid_key, _MAC_KEY_LENGTHS[mac], 16 if mac is MacAlgorithm.AES_CMAC else 8, mac.value)
    return mac, (keyset.cmac_length if mac is MacAlgorithm.AES_CMAC else 8)


def _check_key(key: KeyMaterial, lengths: tuple[int, ...], block_size: int, name: str) -> None:
    if key_length(key) not in lengths:
        raise UnsupportedError(f"{name} needs a key of {lengths} bytes")
    if not isinstance(key, bytes) and key.block_size != block_size:
        raise UnsupportedError(f"{name} needs a key of a {block_size}-byte block cipher")


def _zero_pad(data: bytes, block: int) -> bytes:
    return data + bytes(-len(data) % block)


def _xor_blocks(data: bytes, size: int) -> bytes:
    acc = 0
    padded = _zero_pad(data, size)
    for i in range(0, len(padded), size):
        acc ^= int.from_bytes(padded[i : i + size], "big")
    return acc.to_bytes(size, "big")


def crc16_x25(data: bytes) -> int:
    """CRC-16 of ISO/IEC 13239 (X.25): polynomial 1021 reflected, initial FFFF, final XOR FFFF."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def compute_check(alg: MacAlgorithm | RcAlgorithm | None, keyset: Scp80KeySet, data: bytes) -> bytes:
    """RC/CC over ``data`` (TS 102 225 5.1.3); empty for no integrity."""
    if alg is None:
        return b""
    if alg is RcAlgorithm.CRC16:
        return crc16_x25(data).to_bytes(2, "big")
    if alg is RcAlgorithm.CRC32:
        return zlib.crc32(data).to_bytes(4, "big")
    if alg is RcAlgorithm.XOR4:
        return _xor_blocks(data, 4)
    if alg is RcAlgorithm.XOR8:
        return _xor_blocks(data, 8)
    key = keyset.kid_key
    if alg is MacAlgorithm.AES_CMAC:
        tag = ciphers.aes_cmac(key, data) if isinstance(key, bytes) else key.cmac(data)
        return tag[: keyset.cmac_length]
    # DES / 3DES CBC-MAC: zero padding to a multiple of 8, never transmitted.
    if isinstance(key, bytes):
        return ciphers.des3_cbc_mac(key, _zero_pad(data, 8))
    return key.encrypt_cbc(_zero_pad(data, 8), bytes(8))[-8:]


def encrypt(alg: CipherAlgorithm, key: KeyMaterial, data: bytes) -> bytes:
    """Cipher ``data`` (already a multiple of the block size) with a zero ICV in CBC."""
    if not isinstance(key, bytes):
        if alg in (CipherAlgorithm.DES_ECB, CipherAlgorithm.DES3_ECB):
            return key.encrypt_ecb(data)
        return key.encrypt_cbc(data, bytes(alg.block_size))
    if alg is CipherAlgorithm.AES_CBC:
        return ciphers.aes_cbc_encrypt(key, data)
    if alg in (CipherAlgorithm.DES_ECB, CipherAlgorithm.DES3_ECB):
        return ciphers.des3_ecb_encrypt(key, data)
    return ciphers.des3_cbc_encrypt(key, data)


def decrypt(alg: CipherAlgorithm, key: KeyMaterial, data: bytes) -> bytes:
    """Inverse of :func:`encrypt`; ``data`` must be a multiple of the block size."""
    if not isinstance(key, bytes):
        if alg in (CipherAlgorithm.DES_ECB, CipherAlgorithm.DES3_ECB):
            return key.decrypt_ecb(data)
        return key.decrypt_cbc(data, bytes(alg.block_size))
    if alg is CipherAlgorithm.AES_CBC:
        return ciphers.aes_cbc_decrypt(key, data)
    if alg in (CipherAlgorithm.DES_ECB, CipherAlgorithm.DES3_ECB):
        return ciphers.des3_ecb_decrypt(key, data)
    return ciphers.des3_cbc_decrypt(key, data)
