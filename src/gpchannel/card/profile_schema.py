"""The shape of a card profile (docs/profile.md): every key the TOML may hold and the TOML type of its value, in
one table, checked before any value is read.

:func:`check_shape` walks a parsed profile (or one of its sections) against :data:`FIELDS` and raises
:class:`~gpchannel.errors.ProfileError` naming the key on an unknown key or a value of the wrong TOML type (a
list where a string belongs, a table where an integer belongs, ...). The loaders that come after it
(:mod:`gpchannel.card.profile`, :mod:`gpchannel.card.profile_ota`, :mod:`gpchannel.card.scp10_domain`, the host
tool's ``--profile``) check ranges, lengths, choices and consistency, and can rely on the types.

:func:`hex_field` is the profile's one reader of hex text (the TOML string of a key, an AID, a TAR, ...): the
core takes bytes, the profile is where text becomes them.

Paths: ``section.key``; an element of an array of tables is ``section.array[]`` (reported with its index).
Whether a key is required is the loaders' business (``gpchannel ota ... --profile`` reads a profile that need
not have an ``[isd]``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from typing import Any

from gpchannel.errors import ProfileError

__all__ = ["FIELDS", "Kind", "check_shape", "hex_field"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Kind(enum.Enum):
    """A TOML value type, with the words the error uses and the test."""

    STRING = ("a string", lambda v: isinstance(v, str))
    INTEGER = ("an integer", _is_int)
    BOOLEAN = ("true or false", lambda v: isinstance(v, bool))
    BYTE = ('a byte: an integer or a hex string such as "70"', lambda v: isinstance(v, str) or _is_int(v))
    TABLE = ("a table", lambda v: isinstance(v, dict))
    TABLES = ("an array of tables", lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v))
    NAMES = ("an array of strings or integers", lambda v: isinstance(v, list) and all(_is_str_or_int(i) for i in v))

    def __init__(self, words: str, test: Callable[[object], bool]) -> None:
        self.words = words
        self.test = test


def _is_str_or_int(value: object) -> bool:
    return isinstance(value, str) or _is_int(value)


FIELDS: dict[str, Kind] = {
    # [card]
    "card": Kind.TABLE,
    "card.iccid": Kind.STRING,
    "card.atr": Kind.STRING,
    "card.cplc": Kind.STRING,
    "card.lifecycle": Kind.STRING,
    "card.iin": Kind.STRING,
    "card.cin": Kind.STRING,
    "card.kdd": Kind.STRING,
    # [isd], [[isd.keysets]], [isd.scp10], [isd.scp11]
    "isd": Kind.TABLE,
    "isd.aid": Kind.STRING,
    "isd.scp": Kind.BYTE,
    "isd.i": Kind.BYTE,
    "isd.sequence_counter": Kind.INTEGER,
    "isd.privileges": Kind.STRING,
    "isd.keysets": Kind.TABLES,
    "isd.keysets[].kvn": Kind.INTEGER,
    "isd.keysets[].type": Kind.STRING,
    "isd.keysets[].enc": Kind.STRING,
    "isd.keysets[].mac": Kind.STRING,
    "isd.keysets[].dek": Kind.STRING,
    "isd.scp10": Kind.TABLE,
    "isd.scp10.private_key": Kind.STRING,
    "isd.scp10.certificate": Kind.STRING,
    "isd.scp10.trust_anchor": Kind.STRING,
    "isd.scp10.trust_anchor_id": Kind.STRING,
    "isd.scp10.card_id": Kind.STRING,
    "isd.scp10.options": Kind.NAMES,
    "isd.getdata_style": Kind.STRING,
    # [isd.scp11] (GP Card Specification v2.3 Amendment F; card/scp11_profile.py)
    "isd.scp11": Kind.TABLE,
    "isd.scp11.curve": Kind.STRING,
    "isd.scp11.keys": Kind.TABLES,
    "isd.scp11.keys[].kid": Kind.BYTE,
    "isd.scp11.keys[].kvn": Kind.BYTE,
    "isd.scp11.keys[].private_key": Kind.STRING,
    "isd.scp11.keys[].certificates": Kind.NAMES,
    "isd.scp11.keys[].ca_identifier": Kind.STRING,
    "isd.scp11.ca": Kind.TABLES,
    "isd.scp11.ca[].kid": Kind.BYTE,
    "isd.scp11.ca[].kvn": Kind.BYTE,
    "isd.scp11.ca[].certificate": Kind.STRING,
    "isd.scp11.ca[].public_key": Kind.STRING,
    "isd.scp11.ca[].allowlist": Kind.NAMES,
    "isd.scp11.ca[].ca_identifier": Kind.STRING,
    # [[applications]]
    "applications": Kind.TABLES,
    "applications[].aid": Kind.STRING,
    "applications[].kind": Kind.STRING,
    "applications[].sd": Kind.STRING,
    "applications[].privileges": Kind.STRING,
    "applications[].lifecycle": Kind.BYTE,
    "applications[].parameters": Kind.STRING,
    # [ota]: [[ota.keysets]] (ETSI TS 102 225 key sets), [[ota.tars]]
    "ota": Kind.TABLE,
    "ota.keysets": Kind.TABLES,
    "ota.keysets[].kvn": Kind.INTEGER,
    "ota.keysets[].kic": Kind.STRING,
    "ota.keysets[].kic_algorithm": Kind.STRING,
    "ota.keysets[].kid": Kind.STRING,
    "ota.keysets[].kid_algorithm": Kind.STRING,
    "ota.keysets[].counter": Kind.INTEGER,
    "ota.tars": Kind.TABLES,
    "ota.tars[].tar": Kind.STRING,
    "ota.tars[].target": Kind.STRING,
    "ota.tars[].msl": Kind.STRING,
    "ota.tars[].allow_single_des": Kind.BOOLEAN,
    # [scp81] (GP Amendment B PSK-TLS)
    "scp81": Kind.TABLE,
    "scp81.psk_identity": Kind.STRING,
    "scp81.psk": Kind.STRING,
    "scp81.server": Kind.STRING,
    "scp81.uri": Kind.STRING,
    "scp81.agent_id": Kind.STRING,
    "scp81.retries": Kind.INTEGER,
    "scp81.retry_delay": Kind.INTEGER,
}
"""Every key of a profile -> the TOML type of its value."""


def _children(schema_path: str) -> list[str]:
    prefix = f"{schema_path}." if schema_path else ""
    return sorted({f[len(prefix) :].split(".")[0].removesuffix("[]") for f in FIELDS if f.startswith(prefix)})


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def check_shape(raw: object, section: str = "") -> dict[str, Any]:
    """Check the keys and value types of ``raw``: the whole profile (``section`` empty) or the table of
    ``section`` (``"ota"``, ``"scp81"``, ``"isd.scp10"``). Returns ``raw``; raises ProfileError naming the key."""
    if not isinstance(raw, dict):
        got = f", got {raw!r}" if not isinstance(raw, list) else ""
        raise ProfileError(f"profile key {section or '(top level)'}: expected a table{got}")
    _walk(raw, section, section)
    return raw


def _walk(table: dict[str, Any], schema_path: str, shown: str) -> None:
    for name, value in table.items():
        field = _join(schema_path, name)
        where = _join(shown, name)
        kind = FIELDS.get(field)
        if kind is None:
            allowed = ", ".join(_children(schema_path))
            raise ProfileError(f"profile key {where}: unknown key; expected one of {allowed}")
        if not kind.test(value):
            raise ProfileError(f"profile key {where}: expected {kind.words}, got {_short(value)}")
        if kind is Kind.TABLE:
            _walk(value, field, where)
        elif kind is Kind.TABLES:
            for n, item in enumerate(value):
                _walk(item, f"{field}[]", f"{where}[{n}]")


def _short(value: object) -> str:
    """The offending value's TOML type (never the value: it may be a key)."""
    for kind, words in _TYPE_WORDS:
        if isinstance(value, kind):
            return words
    return type(value).__name__


_TYPE_WORDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (dict, "a table"),
    (list, "an array"),
)


def hex_field(value: object, key: str, sizes: Collection[int] | None = None, what: str = "") -> bytes:
    """The bytes of the hex text ``value`` of profile key ``key`` (spaces allowed); ProfileError naming the key
    when it is not a string of hex digits, or when its length is not in ``sizes`` (``what`` names the lengths, as
    in "an AID of 5 to 16")."""
    if not isinstance(value, str):
        raise ProfileError(f"profile key {key}: expected a string of hex digits, got {value!r}")
    try:
        out = bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise ProfileError(f"profile key {key}: expected hex digits (spaces allowed), got {value!r}") from None
    if sizes is not None and len(out) not in sizes:
        raise ProfileError(f"profile key {key}: expected {what or _lengths(sizes)} bytes, got {len(out)}")
    return out


def _lengths(sizes: Collection[int]) -> str:
    if isinstance(sizes, range) and sizes.step == 1 and len(sizes) > 2:
        return f"{sizes.start} to {sizes.stop - 1}"
    return " or ".join(str(n) for n in sorted(sizes))
