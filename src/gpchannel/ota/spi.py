"""SPI, KIc and KID: the security parameters of an SCP80 command packet.

ETSI TS 102 225 5.1.1 (ex GSM 03.48 / TS 23.048 Table 2): the two-byte Security Parameter Indicator says what
the sender applied (RC/CC/DS, ciphering, counter mode) and what the receiver shall answer (PoR, its security and
its return path); KIc and KID each name a key version (high nibble) and an algorithm (low nibble).

Every bit of the SPI is decoded; reserved bits set raise :class:`DecodeError` (a receiver answers those with a
security error PoR, see :func:`gpchannel.ota.scp80.por_status`). The low nibble of KIc/KID is kept as its
two fields (algorithm family b2b1, mode b4b3), so that any byte round-trips; the ``cipher`` / ``mac`` / ``rc``
properties name the algorithm where the specification defines one and return ``None`` otherwise (implicit,
proprietary or RFU codings), leaving the decision to the key set (:class:`gpchannel.ota.scp80.Scp80KeySet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from gpchannel.errors import DecodeError

__all__ = [
    "AlgorithmFamily",
    "CipherAlgorithm",
    "CounterMode",
    "Integrity",
    "Kic",
    "Kid",
    "MacAlgorithm",
    "PorMode",
    "PorTransport",
    "RcAlgorithm",
    "Spi",
    "meets_minimum_security",
]


class Integrity(IntEnum):
    """SPI1 b2b1 (command) and SPI2 b4b3 (PoR): redundancy check, cryptographic checksum or digital signature."""

    NONE = 0
    RC = 1
    CC = 2
    DS = 3


class CounterMode(IntEnum):
    """SPI1 b5b4 (TS 102 225 5.1.1).

    ``ONE_HIGHER`` (11) is GSM 03.48's "process only if CNTR is exactly one higher than the RE's value"; later
    releases may have made it RFU (ota-notes F.1). gpchannel implements the 03.48 meaning.
    """

    NO_COUNTER = 0
    NO_CHECK = 1
    HIGHER = 2
    ONE_HIGHER = 3


class PorMode(IntEnum):
    """SPI2 b2b1: no PoR, PoR required, PoR only on error; 11 is reserved (kept so that every SPI decodes)."""

    NONE = 0
    ALWAYS = 1
    ON_ERROR = 2
    RESERVED = 3


class PorTransport(IntEnum):
    """SPI2 b6 (SMS only; TS 31.115): PoR in the SMS-DELIVER-REPORT (RP-ACK/RP-ERROR) or in an SMS-SUBMIT."""

    DELIVER_REPORT = 0
    SUBMIT = 1


_SPI1_RESERVED = 0xE0
_SPI2_RESERVED = 0xC0


@dataclass(frozen=True, slots=True)
class Spi:
    """The Security Parameter Indicator (TS 102 225 5.1.1), two bytes."""

    integrity: Integrity = Integrity.CC
    ciphered: bool = True
    counter_mode: CounterMode = CounterMode.HIGHER
    por: PorMode = PorMode.ALWAYS
    por_integrity: Integrity = Integrity.CC
    por_ciphered: bool = True
    por_transport: PorTransport = PorTransport.DELIVER_REPORT

    def to_bytes(self) -> bytes:
        b1 = self.integrity | (0x04 if self.ciphered else 0) | (self.counter_mode << 3)
        b2 = self.por | (self.por_integrity << 2) | (0x10 if self.por_ciphered else 0) | (self.por_transport << 5)
        return bytes((b1, b2))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Spi:
        """Decode two bytes; reserved bits (SPI1 b8..b6, SPI2 b8b7) set raise :class:`DecodeError`."""
        if len(raw) != 2:
            raise DecodeError(f"SPI is 2 bytes, got {len(raw)}", offset=min(len(raw), 2))
        b1, b2 = raw
        if b1 & _SPI1_RESERVED:
            raise DecodeError(f"SPI1 {b1:02X} has reserved bits b8..b6 set", offset=0)
        if b2 & _SPI2_RESERVED:
            raise DecodeError(f"SPI2 {b2:02X} has reserved bits b8b7 set", offset=1)
        return _SPI_TABLE[(b1 << 8) | b2]

    @classmethod
    def _decode(cls, b1: int, b2: int) -> Spi:
        return cls(
            integrity=Integrity(b1 & 3),
            ciphered=bool(b1 & 0x04),
            counter_mode=CounterMode((b1 >> 3) & 3),
            por=PorMode(b2 & 3),
            por_integrity=Integrity((b2 >> 2) & 3),
            por_ciphered=bool(b2 & 0x10),
            por_transport=PorTransport((b2 >> 5) & 1),
        )


def meets_minimum_security(spi: Spi, msl: int) -> bool:
    """Whether a command's SPI1 reaches a Minimum Security Level coded like SPI1 (the MSL parameter of a
    TAR's install parameters, TS 102 226 8.2.1.3.2.4 [M]: ota-notes F.5).

    Each field must be at least the MSL's: RC/CC/DS (none < RC < CC < DS), ciphering, and the counter mode
    (none < available < higher; "one higher" counts as at least "higher").
    """
    if not 0 <= msl <= 0x1F:
        raise ValueError(f"an MSL is an SPI1 value 00..1F, got {msl:#x}")
    required = _SPI_TABLE[msl << 8]
    return (
        spi.integrity >= required.integrity
        and (spi.ciphered or not required.ciphered)
        and spi.counter_mode >= required.counter_mode
    )


# Every valid SPI decoded once (32 x 64 values): decoding is then a lookup (an immutable table, not a cache).
_SPI_TABLE: dict[int, Spi] = {(b1 << 8) | b2: Spi._decode(b1, b2) for b1 in range(0x20) for b2 in range(0x40)}


class AlgorithmFamily(IntEnum):
    """KIc/KID b2b1: algorithm known implicitly by both entities, DES family, AES, proprietary."""

    IMPLICIT = 0
    DES = 1
    AES = 2
    PROPRIETARY = 3


class CipherAlgorithm(Enum):
    """Ciphering algorithms of KIc (TS 102 225 5.1.2). ``DES3_ECB`` has no KIc coding: it exists only as the
    implicit algorithm of a key set (the gsm0348 library's behaviour for KIc b2b1 = 00, see its vectors)."""

    DES_CBC = "DES-CBC"
    DES3_2KEY_CBC = "3DES-2KEY-CBC"
    DES3_3KEY_CBC = "3DES-3KEY-CBC"
    DES_ECB = "DES-ECB"
    AES_CBC = "AES-CBC"
    DES3_ECB = "3DES-ECB"

    @property
    def block_size(self) -> int:
        return 16 if self is CipherAlgorithm.AES_CBC else 8


class MacAlgorithm(Enum):
    """Cryptographic checksum algorithms of KID when SPI says CC (TS 102 225 5.1.3)."""

    DES_CBC_MAC = "DES-CBC-MAC"
    DES3_2KEY_CBC_MAC = "3DES-2KEY-CBC-MAC"
    DES3_3KEY_CBC_MAC = "3DES-3KEY-CBC-MAC"
    AES_CMAC = "AES-CMAC"


class RcAlgorithm(Enum):
    """Redundancy checks of KID when SPI says RC (TS 102 225 5.1.3): CRC16 and CRC32. ``XOR4`` and ``XOR8`` are
    proprietary checks with no KID coding (the gsm0348 library's, usable only as a key set's implicit check)."""

    CRC16 = "CRC16"
    CRC32 = "CRC32"
    XOR4 = "XOR4"
    XOR8 = "XOR8"


_DES_CIPHERS = (
    CipherAlgorithm.DES_CBC,
    CipherAlgorithm.DES3_2KEY_CBC,
    CipherAlgorithm.DES3_3KEY_CBC,
    CipherAlgorithm.DES_ECB,
)
_DES_MACS = (MacAlgorithm.DES_CBC_MAC, MacAlgorithm.DES3_2KEY_CBC_MAC, MacAlgorithm.DES3_3KEY_CBC_MAC)
_CRCS = (RcAlgorithm.CRC16, RcAlgorithm.CRC32)


def _check_nibble(name: str, value: int) -> None:
    if not 0 <= value <= 15:
        raise ValueError(f"{name} must be 0..15, got {value}")


@dataclass(frozen=True, slots=True)
class _KeyByte:
    kvn: int
    family: AlgorithmFamily
    mode: int
    """b4b3 of the low nibble (0..3)."""

    def __post_init__(self) -> None:
        _check_nibble("kvn", self.kvn)
        if not 0 <= self.mode <= 3:
            raise ValueError(f"mode (b4b3) must be 0..3, got {self.mode}")

    def to_bytes(self) -> bytes:
        return bytes(((self.kvn << 4) | (self.mode << 2) | self.family,))

    @property
    def value(self) -> int:
        return self.to_bytes()[0]


_DECODED: dict[tuple[type, bytes], _KeyByte] = {}
"""KIc and KID bytes already decoded (immutable values)."""


def _split(raw: bytes, name: str) -> tuple[int, AlgorithmFamily, int]:
    if len(raw) != 1:
        raise DecodeError(f"{name} is 1 byte, got {len(raw)}", offset=min(len(raw), 1))
    b = raw[0]
    return b >> 4, AlgorithmFamily(b & 3), (b >> 2) & 3


@dataclass(frozen=True, slots=True)
class Kic(_KeyByte):
    """KIc (TS 102 225 5.1.2): key version ``kvn`` (b8..b5) and the ciphering algorithm (b4..b1)."""

    @property
    def cipher(self) -> CipherAlgorithm | None:
        """The algorithm this byte names, or ``None`` (implicit, proprietary, or an RFU AES mode)."""
        if self.family is AlgorithmFamily.DES:
            return _DES_CIPHERS[self.mode]
        if self.family is AlgorithmFamily.AES and self.mode == 0:
            return CipherAlgorithm.AES_CBC
        return None

    @classmethod
    def for_cipher(cls, cipher: CipherAlgorithm, kvn: int = 1) -> Kic:
        """The KIc naming ``cipher`` in key version ``kvn`` (``DES3_ECB`` has no coding: ValueError)."""
        if cipher is CipherAlgorithm.AES_CBC:
            return cls(kvn, AlgorithmFamily.AES, 0)
        if cipher is CipherAlgorithm.DES3_ECB:
            raise ValueError("3DES-ECB has no KIc coding; use an implicit KIc with a key set that names it")
        return cls(kvn, AlgorithmFamily.DES, _DES_CIPHERS.index(cipher))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Kic:
        found = _DECODED.get((cls, raw)) if type(raw) is bytes else None
        if found is None:
            found = cls(*_split(raw, "KIc"))
            if type(raw) is bytes:
                _DECODED[(cls, raw)] = found  # one byte: at most 256 values per class
        return found  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Kid(_KeyByte):
    """KID (TS 102 225 5.1.3): key version ``kvn`` and the RC or CC algorithm, read per the SPI's integrity."""

    @property
    def mac(self) -> MacAlgorithm | None:
        """The CC algorithm this byte names (when SPI1 says CC), or ``None`` (implicit, proprietary, RFU)."""
        if self.family is AlgorithmFamily.DES and self.mode < 3:
            return _DES_MACS[self.mode]
        if self.family is AlgorithmFamily.AES and self.mode == 0:
            return MacAlgorithm.AES_CMAC
        return None

    @property
    def rc(self) -> RcAlgorithm | None:
        """The RC algorithm this byte names (when SPI1 says RC): b2b1 = 01 with b4b3 00 CRC16, 01 CRC32."""
        if self.family is AlgorithmFamily.DES and self.mode < 2:
            return _CRCS[self.mode]
        return None

    @classmethod
    def for_mac(cls, mac: MacAlgorithm, kvn: int = 1) -> Kid:
        if mac is MacAlgorithm.AES_CMAC:
            return cls(kvn, AlgorithmFamily.AES, 0)
        return cls(kvn, AlgorithmFamily.DES, _DES_MACS.index(mac))

    @classmethod
    def for_rc(cls, rc: RcAlgorithm, kvn: int = 1) -> Kid:
        if rc not in _CRCS:
            raise ValueError(f"{rc.value} has no KID coding; use an implicit KID with a key set that names it")
        return cls(kvn, AlgorithmFamily.DES, _CRCS.index(rc))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Kid:
        found = _DECODED.get((cls, raw)) if type(raw) is bytes else None
        if found is None:
            found = cls(*_split(raw, "KID"))
            if type(raw) is bytes:
                _DECODED[(cls, raw)] = found  # one byte: at most 256 values per class
        return found  # type: ignore[return-value]
