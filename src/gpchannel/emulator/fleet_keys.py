"""The keys and numbers of a fleet's cards: the Luhn check digit of an ICCID and the per-card key diversification
(NIST SP 800-108 in counter mode over AES-CMAC; emulator/fleet.py's module docstring says why and how)."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

__all__ = ["diversify_card_key", "luhn_digit"]


def luhn_digit(digits: str) -> str:
    """The Luhn check digit of ``digits`` (ISO/IEC 7812-1 Annex B; the last digit of an ICCID, ITU-T E.118)."""
    total = 0
    for n, ch in enumerate(reversed(digits)):
        d = int(ch)
        if n % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def diversify_card_key(master: bytes, purpose: str, iccid: str, length: int = 16) -> bytes:
    """A card key from ``master`` (16, 24 or 32 bytes): SP 800-108 counter-mode KDF with AES-CMAC, label =
    ``purpose`` (ASCII), context = ``iccid`` (ASCII digits), ``length`` bytes (see the module docstring)."""
    if len(master) not in (16, 24, 32):
        raise ValueError(f"the master key is an AES key (16, 24 or 32 bytes), got {len(master)}")
    kdf = KBKDFCMAC(
        algorithm=algorithms.AES,
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=purpose.encode(),
        context=iccid.encode(),
        fixed=None,
    )
    return kdf.derive(master)
