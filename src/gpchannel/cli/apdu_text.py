"""Reading APDUs, AIDs, keys, numbers and security levels as a person types them on the command line.

APDU text follows GlobalPlatformPro's parser for hex: whitespace, colons and ``0x`` prefixes are ignored; when
the bytes are not a well-formed command APDU (ISO 7816-3 12.1.3) but have a header and data, Lc is inserted.
"""

from __future__ import annotations

import re

from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import DecodeError
from gpchannel.scp.common import SecurityLevel

__all__ = ["SECURITY_LEVEL_NAMES", "parse_apdu_text", "parse_hex", "parse_int", "parse_security_level"]

SECURITY_LEVEL_NAMES = {
    "clr": 0x00,
    "mac": 0x01,
    "enc": 0x03,
    "mac+rmac": 0x11,
    "enc+rmac": 0x13,
    "enc+renc": 0x33,
    "rmac": 0x10,
}
"""The names ``--security-level`` takes besides a hex byte (P1 of EXTERNAL AUTHENTICATE, GP 2.3.1 Table 11-68)."""


def parse_security_level(text: str) -> SecurityLevel:
    """From a hex byte (``"33"``, ``"0x03"``) or a name (clr, mac, enc, mac+rmac, enc+rmac, enc+renc); ValueError
    when it is neither, or not a level of the symmetric protocols (:meth:`SecurityLevel.from_byte`)."""
    key = text.strip().lower()
    if key in SECURITY_LEVEL_NAMES:
        return SecurityLevel(SECURITY_LEVEL_NAMES[key])
    try:
        value = int(key, 16)
    except ValueError:
        raise ValueError(
            f"security level {text!r}: expected a hex byte (00, 01, 03, 11, 13, 33) or one of "
            f"{', '.join(SECURITY_LEVEL_NAMES)}"
        ) from None
    return SecurityLevel.from_byte(value)


_SEPARATORS = re.compile(r"0[xX]|[\s:]")


def parse_hex(text: str, what: str = "value") -> bytes:
    """Hex digits with optional spaces, colons and ``0x`` prefixes; ValueError naming ``what`` otherwise."""
    cleaned = _SEPARATORS.sub("", text)
    if len(cleaned) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", cleaned):
        raise ValueError(f"{what}: {text!r} is not an even number of hex digits")
    return bytes.fromhex(cleaned)


def parse_int(text: str, what: str = "number") -> int:
    """A decimal or ``0x``-hex integer."""
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text, 10)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is neither decimal nor 0x-hex") from None


def parse_apdu_text(text: str) -> CommandApdu:
    """A command APDU from hex text; ``00220000 11223344`` becomes ``00 22 00 00 04 11223344``."""
    if "{" in text or "[" in text:
        raise ValueError(f"APDU {text!r}: only hex is accepted (no structured payloads)")
    raw = parse_hex(text, "APDU")
    if len(raw) < 4:
        raise ValueError(f"APDU {text!r}: a command has at least the 4 header bytes")
    try:
        return CommandApdu.from_bytes(raw)
    except DecodeError:
        pass
    data = raw[4:]
    if len(data) > 65535:
        raise ValueError(f"APDU {text!r}: {len(data)} data bytes do not fit an APDU")
    try:
        return CommandApdu(raw[0], raw[1], raw[2], raw[3], data)
    except ValueError as exc:
        raise ValueError(f"APDU {text!r}: {exc}") from None
