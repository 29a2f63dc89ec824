"""Static key sets and key check values (GP 2.3.1, 11.8.2.3 and Amendment D v1.1.1, 7.2.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from gpchannel.crypto.ciphers import aes_ecb_encrypt, des3_ecb_encrypt

__all__ = ["KeyType", "StaticKeys", "kcv"]


class KeyType(Enum):
    """The algorithm family of a key set (GP 2.3.1, Table 11-16: 80 = DES, 88 = AES)."""

    DES3 = 0x80
    AES = 0x88

    @property
    def allowed_lengths(self) -> tuple[int, ...]:
        return (16, 24) if self is KeyType.DES3 else (16, 24, 32)


def kcv(key: bytes, key_type: KeyType) -> bytes:
    """The 3-byte key check value: 3DES over 8 x 00, AES over 16 x 01 (Amendment D, 7.2.2)."""
    if key_type is KeyType.DES3:
        return des3_ecb_encrypt(key, bytes(8))[:3]
    return aes_ecb_encrypt(key, b"\x01" * 16)[:3]


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """One key set: the static ENC, MAC and DEK keys of a key version number.

    Key values are excluded from ``repr`` so they never reach a log by accident.
    """

    enc: bytes = field(repr=False)
    mac: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    kvn: int = 0
    key_type: KeyType = KeyType.AES

    def __post_init__(self) -> None:
        if not 0 <= self.kvn <= 0xFF:
            raise ValueError(f"kvn must be a byte (0..255), got {self.kvn}")
        for name in ("enc", "mac", "dek"):
            n = len(getattr(self, name))
            if n not in self.key_type.allowed_lengths:
                raise ValueError(
                    f"{name} key is {n} bytes; a {self.key_type.name} key is one of {self.key_type.allowed_lengths}"
                )

    @classmethod
    def single(cls, key: bytes, kvn: int = 0, key_type: KeyType = KeyType.AES) -> StaticKeys:
        """One key used as ENC, MAC and DEK (as the GlobalPlatform default test keys are)."""
        return cls(key, key, key, kvn, key_type)

    @property
    def key_length(self) -> int:
        return len(self.enc)

    def kcvs(self) -> tuple[bytes, bytes, bytes]:
        """The key check values of ENC, MAC and DEK: safe to show a person, unlike the keys."""
        return tuple(kcv(k, self.key_type) for k in (self.enc, self.mac, self.dek))  # type: ignore[return-value]
