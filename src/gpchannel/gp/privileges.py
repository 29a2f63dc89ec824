"""Privileges of Security Domains and Applications (GP Card Specification 2.3.1, 6.6 and 11.1.2).

Privileges are coded on three bytes (Tables 11-7 to 11-9). Most are one bit each; two share bits with the
Security Domain privilege: DAP Verification is ``b8 b7`` of byte 1 with ``b1 = 0`` and Mandated DAP
Verification is ``b8 b7 b1``; Delegated Management is ``b8 b6``. Hence these three imply Security Domain, and
:meth:`Privileges.from_bytes` refuses a byte 1 that sets them without ``b8``.

Older cards (GP 2.1.1) answer GET STATUS with a one-byte privileges field (tag C5 with length 1, or the one
byte of the P2=00 format); :meth:`Privileges.from_bytes` accepts 1 or 3 bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gpchannel.errors import DecodeError

__all__ = ["Privilege", "Privileges"]


class Privilege(enum.Enum):
    """One privilege; the value is the privilege number of Tables 11-7 to 11-9."""

    SECURITY_DOMAIN = 0
    DAP_VERIFICATION = 1
    DELEGATED_MANAGEMENT = 2
    CARD_LOCK = 3
    CARD_TERMINATE = 4
    CARD_RESET = 5
    CVM_MANAGEMENT = 6
    MANDATED_DAP_VERIFICATION = 7
    TRUSTED_PATH = 8
    AUTHORIZED_MANAGEMENT = 9
    TOKEN_MANAGEMENT = 10
    GLOBAL_DELETE = 11
    GLOBAL_LOCK = 12
    GLOBAL_REGISTRY = 13
    FINAL_APPLICATION = 14
    GLOBAL_SERVICE = 15
    RECEIPT_GENERATION = 16
    CIPHERED_LOAD_FILE_DATA_BLOCK = 17
    CONTACTLESS_ACTIVATION = 18
    CONTACTLESS_SELF_ACTIVATION = 19

    @property
    def mask(self) -> int:
        """The bits this privilege sets in the 24-bit value (byte 1 most significant)."""
        return _MASKS[self]

    @property
    def camel_name(self) -> str:
        """The name as GlobalPlatformPro spells it (``SecurityDomain``, ``CVMManagement``, ...)."""
        return _CAMEL[self]

    @classmethod
    def from_name(cls, name: str) -> Privilege:
        """From ``SECURITY_DOMAIN``, ``security-domain`` or ``SecurityDomain`` (case-insensitive)."""
        key = name.strip().replace("-", "").replace("_", "").replace(" ", "").lower()
        for privilege in cls:
            if key in (privilege.name.replace("_", "").lower(), privilege.camel_name.lower()):
                return privilege
        raise ValueError(f"unknown privilege {name!r}; expected one of {', '.join(p.camel_name for p in cls)}")


_B1, _B2, _B3 = 16, 8, 0
_MASKS: dict[Privilege, int] = {
    Privilege.SECURITY_DOMAIN: 0x80 << _B1,
    Privilege.DAP_VERIFICATION: 0xC0 << _B1,
    Privilege.DELEGATED_MANAGEMENT: 0xA0 << _B1,
    Privilege.CARD_LOCK: 0x10 << _B1,
    Privilege.CARD_TERMINATE: 0x08 << _B1,
    Privilege.CARD_RESET: 0x04 << _B1,
    Privilege.CVM_MANAGEMENT: 0x02 << _B1,
    Privilege.MANDATED_DAP_VERIFICATION: 0xC1 << _B1,
    Privilege.TRUSTED_PATH: 0x80 << _B2,
    Privilege.AUTHORIZED_MANAGEMENT: 0x40 << _B2,
    Privilege.TOKEN_MANAGEMENT: 0x20 << _B2,
    Privilege.GLOBAL_DELETE: 0x10 << _B2,
    Privilege.GLOBAL_LOCK: 0x08 << _B2,
    Privilege.GLOBAL_REGISTRY: 0x04 << _B2,
    Privilege.FINAL_APPLICATION: 0x02 << _B2,
    Privilege.GLOBAL_SERVICE: 0x01 << _B2,
    Privilege.RECEIPT_GENERATION: 0x80 << _B3,
    Privilege.CIPHERED_LOAD_FILE_DATA_BLOCK: 0x40 << _B3,
    Privilege.CONTACTLESS_ACTIVATION: 0x20 << _B3,
    Privilege.CONTACTLESS_SELF_ACTIVATION: 0x10 << _B3,
}
_CAMEL: dict[Privilege, str] = {
    Privilege.SECURITY_DOMAIN: "SecurityDomain",
    Privilege.DAP_VERIFICATION: "DAPVerification",
    Privilege.DELEGATED_MANAGEMENT: "DelegatedManagement",
    Privilege.CARD_LOCK: "CardLock",
    Privilege.CARD_TERMINATE: "CardTerminate",
    Privilege.CARD_RESET: "CardReset",
    Privilege.CVM_MANAGEMENT: "CVMManagement",
    Privilege.MANDATED_DAP_VERIFICATION: "MandatedDAPVerification",
    Privilege.TRUSTED_PATH: "TrustedPath",
    Privilege.AUTHORIZED_MANAGEMENT: "AuthorizedManagement",
    Privilege.TOKEN_MANAGEMENT: "TokenManagement",
    Privilege.GLOBAL_DELETE: "GlobalDelete",
    Privilege.GLOBAL_LOCK: "GlobalLock",
    Privilege.GLOBAL_REGISTRY: "GlobalRegistry",
    Privilege.FINAL_APPLICATION: "FinalApplication",
    Privilege.GLOBAL_SERVICE: "GlobalService",
    Privilege.RECEIPT_GENERATION: "ReceiptGeneration",
    Privilege.CIPHERED_LOAD_FILE_DATA_BLOCK: "CipheredLoadFileDataBlock",
    Privilege.CONTACTLESS_ACTIVATION: "ContactlessActivation",
    Privilege.CONTACTLESS_SELF_ACTIVATION: "ContactlessSelfActivation",
}
_RFU_MASK = 0x0F  # byte 3, b4-b1: RFU, ignored by the card (11.1)


@dataclass(frozen=True, slots=True)
class Privileges:
    """A set of privileges with the three-byte coding of GP 2.3.1, 11.1.2."""

    members: frozenset[Privilege] = frozenset()

    @classmethod
    def of(cls, *privileges: Privilege) -> Privileges:
        return cls(frozenset(privileges))

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Privileges:
        return cls(frozenset(Privilege.from_name(n) for n in names))

    @classmethod
    def from_int(cls, value: int) -> Privileges:
        """From the 24-bit value (byte 1 most significant); see :meth:`from_bytes` for the rules."""
        return cls.from_bytes(value.to_bytes(3, "big"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Privileges:
        """Decode one or three bytes (Tables 11-7 to 11-9); RFU bits of byte 3 are ignored."""
        if len(raw) not in (1, 3):
            raise DecodeError(f"privileges are 1 or 3 bytes, got {len(raw)}", offset=0)
        b1 = raw[0]
        if not b1 & 0x80 and b1 & 0x60:
            raise DecodeError(f"privileges byte 1 {b1:02X}: DAP Verification / Delegated Management need b8", 0)
        if b1 & 0x01 and not b1 & 0x40:
            raise DecodeError(f"privileges byte 1 {b1:02X}: b1 (Mandated DAP) needs b8 and b7", 0)
        value = int.from_bytes(bytes(raw) + bytes(3 - len(raw)), "big")
        found: set[Privilege] = set()
        for privilege, mask in _MASKS.items():
            if value & mask == mask:
                found.add(privilege)
        # DAP Verification and Mandated DAP Verification share b8 b7; b1 tells them apart.
        if Privilege.MANDATED_DAP_VERIFICATION in found:
            found.discard(Privilege.DAP_VERIFICATION)
        return cls(frozenset(found))

    def to_int(self) -> int:
        value = 0
        for privilege in self.members:
            value |= privilege.mask
        return value

    def to_bytes(self) -> bytes:
        """The three-byte coding."""
        return self.to_int().to_bytes(3, "big")

    def __contains__(self, item: object) -> bool:
        return item in self.members

    def __iter__(self) -> Iterator[Privilege]:
        return iter(sorted(self.members, key=lambda p: p.value))

    def __len__(self) -> int:
        return len(self.members)

    def __or__(self, other: Privileges) -> Privileges:
        return Privileges(self.members | other.members)

    def names(self) -> list[str]:
        """The GlobalPlatformPro-style names in privilege-number order."""
        return [p.camel_name for p in self]

    @property
    def is_security_domain(self) -> bool:
        return Privilege.SECURITY_DOMAIN in self.members

    def normalized(self) -> Privileges:
        """Add the Security Domain privilege where another privilege implies it (its bits include b8)."""
        if any(p.mask & (0x80 << _B1) for p in self.members):
            return Privileges(self.members | {Privilege.SECURITY_DOMAIN})
        return self

    def __str__(self) -> str:
        return ", ".join(self.names()) or "none"
