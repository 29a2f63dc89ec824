"""Static key diversification: card keys derived from master keys and the key diversification data (KDD).

The KDD is the first 10 bytes of the INITIALIZE UPDATE response (GP 2.1.1 Table D-5, GP 2.2.1 Table E-8,
Amendment D Table 7-2). ``kt`` below is the key type byte: 01 for ENC, 02 for MAC, 03 for DEK. Each card key is
derived from the master key of the same role.

- EMV CPS 1.1 (EMV Card Personalization Specification 1.1, A.1.2; ``emv`` in GlobalPlatformPro):
  ``3DES-ECB(master, KDD[4..9] || F0 || kt || KDD[4..9] || 0F || kt)``.
- VISA2 (Visa GlobalPlatform 2.1.1 Card Implementation Requirements; ``visa2`` in GlobalPlatformPro and GPShell):
  ``3DES-ECB(master, KDD[0..1] || KDD[4..7] || F0 || kt || KDD[0..1] || KDD[4..7] || 0F || kt)``.
- KDF3 (GlobalPlatformPro's ``kdf3``, for SCP03 AES masters): block ``i`` (from 1) is
  ``AES-CMAC(master, i || 00 00 00 || kt || 00 || KDD)``; the blocks are concatenated and cut to the master key
  length. It has no L field and no 11-byte label, so it is *not* the Amendment D 4.1.5 session-key KDF.

EMV and VISA2 need 3DES (16-byte) masters and give 16-byte 3DES keys; KDF3 needs AES masters and keeps their
length. These formulas are checked against the key check values in GlobalPlatformPro's tests
(tests/vectors/diversification/).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from gpchannel.crypto.ciphers import aes_cmac, des3_ecb_encrypt
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import UnsupportedError

__all__ = ["Diversification", "KeyDiversificationSource", "KeyPurpose", "diversify", "diversify_key", "resolver"]

_KDD_LENGTH = 10


class Diversification(enum.Enum):
    """The key diversification scheme applied to master keys (see the module docstring)."""

    NONE = "none"
    EMV = "emv"
    VISA2 = "visa2"
    KDF3 = "kdf3"


class KeyPurpose(enum.IntEnum):
    """The key type byte ``kt`` mixed into the diversification input."""

    ENC = 0x01
    MAC = 0x02
    DEK = 0x03


class KeyDiversificationSource(Protocol):
    """Anything that carries the 10-byte KDD, such as :class:`gpchannel.scp.common.InitializeUpdateResponse`."""

    @property
    def key_diversification_data(self) -> bytes: ...


def _check_kdd(kdd: bytes) -> None:
    if len(kdd) != _KDD_LENGTH:
        raise ValueError(f"key diversification data is {_KDD_LENGTH} bytes, got {len(kdd)}")


def diversify_key(master: bytes, scheme: Diversification, purpose: KeyPurpose, kdd: bytes) -> bytes:
    """One card key from one master key (see the module docstring for the formulas)."""
    _check_kdd(kdd)
    kt = bytes((purpose,))
    if scheme is Diversification.NONE:
        return master
    if scheme is Diversification.EMV:
        if len(master) != 16:
            raise UnsupportedError(f"EMV CPS 1.1 diversification needs a 16-byte 3DES master key, got {len(master)}")
        return des3_ecb_encrypt(master, kdd[4:10] + b"\xf0" + kt + kdd[4:10] + b"\x0f" + kt)
    if scheme is Diversification.VISA2:
        if len(master) != 16:
            raise UnsupportedError(f"VISA2 diversification needs a 16-byte 3DES master key, got {len(master)}")
        part = kdd[0:2] + kdd[4:8]
        return des3_ecb_encrypt(master, part + b"\xf0" + kt + part + b"\x0f" + kt)
    if scheme is Diversification.KDF3:
        if len(master) not in (16, 24, 32):
            raise UnsupportedError(f"KDF3 diversification needs an AES master key, got {len(master)} bytes")
        out = b""
        counter = 1
        while len(out) < len(master):
            out += aes_cmac(master, bytes((counter,)) + b"\x00\x00\x00" + kt + b"\x00" + kdd)
            counter += 1
        return out[: len(master)]
    raise UnsupportedError(f"unknown diversification scheme {scheme!r}")  # pragma: no cover


def diversify(master: StaticKeys, scheme: Diversification, key_diversification_data: bytes) -> StaticKeys:
    """The card's static keys from the master key set ``master`` (same KVN and key type).

    Raises UnsupportedError when the scheme does not fit the key type (EMV and VISA2 need 3DES masters, KDF3
    needs AES masters) and ValueError when the KDD is not 10 bytes.
    """
    _check_kdd(key_diversification_data)
    if scheme is Diversification.NONE:
        return master
    wanted = KeyType.AES if scheme is Diversification.KDF3 else KeyType.DES3
    if master.key_type is not wanted:
        raise UnsupportedError(
            f"{scheme.name} diversification needs {wanted.name} master keys, got {master.key_type.name}"
        )
    kdd = key_diversification_data
    return StaticKeys(
        diversify_key(master.enc, scheme, KeyPurpose.ENC, kdd),
        diversify_key(master.mac, scheme, KeyPurpose.MAC, kdd),
        diversify_key(master.dek, scheme, KeyPurpose.DEK, kdd),
        master.kvn,
        master.key_type,
    )


def resolver(master: StaticKeys, scheme: Diversification) -> Callable[[KeyDiversificationSource], StaticKeys]:
    """A key resolver for the host channel classes (``gpchannel.scp.common.KeyResolver``).

    It diversifies ``master`` with the KDD of the INITIALIZE UPDATE response it is called with.
    """

    def resolve(response: KeyDiversificationSource) -> StaticKeys:
        return diversify(master, scheme, response.key_diversification_data)

    return resolve
