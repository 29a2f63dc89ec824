"""Card Production Life Cycle data (CPLC, GET DATA tag ``9F7F``): decode and encode.

The CPLC is not defined by the GlobalPlatform Card Specification itself; GP 2.3.1 11.3.3.1 (Table 11-26) lists
tag ``9F7F`` among the data objects GET DATA may return, and its 42-byte layout comes from the Visa GlobalPlatform
Card Implementation Requirements, as GPShell (``getDataTest.c``) and GlobalPlatformPro decode it: 18 fixed-width
fields. Dates are ``Y DDD`` in four BCD nibbles: the last digit of the year, then the day of the year (001-366).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields

from gpchannel.codec.tlv import decode_length, tlv
from gpchannel.errors import DecodeError

__all__ = ["CPLC_LENGTH", "CPLC_TAG", "Cplc", "cplc_date", "encode_cplc_date"]

CPLC_TAG = 0x9F7F
CPLC_LENGTH = 42

_WIDTHS: dict[str, int] = {
    "ic_fabricator": 2,
    "ic_type": 2,
    "os_id": 2,
    "os_release_date": 2,
    "os_release_level": 2,
    "ic_fabrication_date": 2,
    "ic_serial_number": 4,
    "ic_batch_identifier": 2,
    "ic_module_fabricator": 2,
    "ic_module_packaging_date": 2,
    "icc_manufacturer": 2,
    "ic_embedding_date": 2,
    "ic_pre_personalizer": 2,
    "ic_pre_perso_equipment_date": 2,
    "ic_pre_perso_equipment_id": 4,
    "ic_personalizer": 2,
    "ic_personalization_date": 2,
    "ic_perso_equipment_id": 4,
}

_DATE_FIELDS = (
    "os_release_date",
    "ic_fabrication_date",
    "ic_module_packaging_date",
    "ic_embedding_date",
    "ic_pre_perso_equipment_date",
    "ic_personalization_date",
)


def _bcd_digits(raw: bytes) -> list[int] | None:
    digits = [n for b in raw for n in (b >> 4, b & 0x0F)]
    return None if any(d > 9 for d in digits) else digits


def cplc_date(raw: bytes, today: datetime.date) -> datetime.date | None:
    """The date a 2-byte CPLC ``Y DDD`` field stands for, or None when it is no date (0000, FFFF, day 0 or past
    the year's end, non-BCD).

    The field holds only the last digit of the year; the decade is the one of ``today`` unless that puts the date
    in the future, in which case it is the previous decade (as GlobalPlatformPro reads it). ``today`` is an
    argument because the core reads no clock.
    """
    if len(raw) != 2:
        raise ValueError(f"a CPLC date is 2 bytes, got {len(raw)}")
    digits = _bcd_digits(raw)
    if digits is None:
        return None
    year_digit = digits[0]
    day = digits[1] * 100 + digits[2] * 10 + digits[3]
    if day == 0:
        return None
    year = today.year - today.year % 10 + year_digit
    candidate = _day_of_year(year, day)
    if candidate is not None and candidate <= today:
        return candidate
    return _day_of_year(year - 10, day)


def _day_of_year(year: int, day: int) -> datetime.date | None:
    if year < 1:
        return None
    start = datetime.date(year, 1, 1)
    result = start + datetime.timedelta(days=day - 1)
    return result if result.year == year else None


def encode_cplc_date(date: datetime.date) -> bytes:
    """The 2-byte ``Y DDD`` form of ``date`` (the inverse of :func:`cplc_date` within one decade)."""
    day = date.timetuple().tm_yday
    text = f"{date.year % 10}{day:03d}"
    return bytes.fromhex(text)


@dataclass(frozen=True, slots=True)
class Cplc:
    """The 18 CPLC fields, each kept as the raw bytes the card sent (identifiers are opaque to the host)."""

    ic_fabricator: bytes
    ic_type: bytes
    os_id: bytes
    os_release_date: bytes
    os_release_level: bytes
    ic_fabrication_date: bytes
    ic_serial_number: bytes
    ic_batch_identifier: bytes
    ic_module_fabricator: bytes
    ic_module_packaging_date: bytes
    icc_manufacturer: bytes
    ic_embedding_date: bytes
    ic_pre_personalizer: bytes
    ic_pre_perso_equipment_date: bytes
    ic_pre_perso_equipment_id: bytes
    ic_personalizer: bytes
    ic_personalization_date: bytes
    ic_perso_equipment_id: bytes

    def __post_init__(self) -> None:
        for name, width in _WIDTHS.items():
            value = getattr(self, name)
            if len(value) != width:
                raise ValueError(f"CPLC field {name} is {width} bytes, got {len(value)}")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cplc:
        """Decode the GET DATA ``9F7F`` response: the 42 bytes, with or without the ``9F7F`` tag and length."""
        body = raw
        if len(raw) >= 2 and raw[:2] == b"\x9f\x7f":
            length, offset = decode_length(raw, 2)
            body = raw[offset:]
            if len(body) != length:
                raise DecodeError(f"CPLC tag says {length} bytes but {len(body)} follow", offset)
        if len(body) != CPLC_LENGTH:
            raise DecodeError(f"CPLC data is {CPLC_LENGTH} bytes, got {len(body)}", 0)
        values: dict[str, bytes] = {}
        offset = 0
        for name, width in _WIDTHS.items():
            values[name] = bytes(body[offset : offset + width])
            offset += width
        return cls(**values)

    def to_bytes(self, *, with_tag: bool = True) -> bytes:
        """The 42 data bytes, inside the ``9F7F`` TLV as GET DATA returns them unless ``with_tag`` is False."""
        body = b"".join(getattr(self, f.name) for f in fields(self))
        return tlv(CPLC_TAG, body) if with_tag else body

    def dates(self, today: datetime.date) -> dict[str, datetime.date | None]:
        """The date fields decoded with :func:`cplc_date`."""
        return {name: cplc_date(getattr(self, name), today) for name in _DATE_FIELDS}

    def as_dict(self) -> dict[str, str]:
        """Every field as upper-case hex, keyed by field name (for display and JSON)."""
        return {f.name: getattr(self, f.name).hex().upper() for f in fields(self)}
