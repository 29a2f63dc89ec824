"""What a GlobalPlatformPro (``gp``) user expects of the command line: its environment variables, key
versions in hex, and a warning when a card still opens with the well-known test key.

* ``GP_KEY``, ``GP_KEY_ENC``, ``GP_KEY_MAC``, ``GP_KEY_DEK`` and ``GP_READER`` are read as aliases of
  ``GPCHANNEL_KEY``... (:data:`ENV_ALIASES`); when both spellings are set and differ, gpchannel's own wins and a
  note says so (the values are never printed: they are keys).
* A key version number (KVN, GP 2.3.1 11.1.8) is one byte that every output prints in hex: it is read in hex
  too, ``30`` and ``0x30`` being the same (:func:`parse_kvn`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import click

__all__ = [
    "ENV_ALIASES",
    "KVN_HELP",
    "TEST_KEY",
    "TEST_KEY_WARNING",
    "KvnType",
    "env_notes",
    "is_test_key",
    "kvn_option",
    "parse_kvn",
]

ENV_ALIASES: dict[str, str] = {
    "GPCHANNEL_READER": "GP_READER",
    "GPCHANNEL_KEY": "GP_KEY",
    "GPCHANNEL_KEY_ENC": "GP_KEY_ENC",
    "GPCHANNEL_KEY_MAC": "GP_KEY_MAC",
    "GPCHANNEL_KEY_DEK": "GP_KEY_DEK",
}
"""gpchannel's variable -> GlobalPlatformPro's spelling of it (read when gpchannel's is not set)."""

TEST_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
"""The GlobalPlatform test key every sample card ships with: anyone can open such a card's secure channel."""

TEST_KEY_WARNING = (
    "warning: this card opened its secure channel with the well-known test key 404142..4F: anyone can manage it "
    "(replace its keys with put-key before it leaves the lab)"
)

KVN_HELP = "hex, 30 and 0x30 are the same"


def env_notes(environ: Mapping[str, str] | None = None) -> list[str]:
    """A note per alias pair that is set both ways with different values (never showing the values)."""
    env = os.environ if environ is None else environ
    notes = []
    for ours, theirs in ENV_ALIASES.items():
        if ours in env and theirs in env and env[ours] != env[theirs]:
            notes.append(f"note: {ours} and {theirs} are both set and differ; {ours} is used")
    return notes


def is_test_key(*keys: bytes) -> bool:
    """Whether any of the static keys is the test key (a card with one test key is as open as with three)."""
    return any(key == TEST_KEY for key in keys)


def parse_kvn(text: str, what: str = "--kvn", low: int = 0, high: int = 0xFF) -> int:
    """A key version number in hex (``30``, ``0x30``, ``0X30``); ValueError naming ``what`` otherwise."""
    digits = text.strip()
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    try:
        if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError
        value = int(digits, 16)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a key version number (hex, e.g. 30 or 0x30)") from None
    if not low <= value <= high:
        raise ValueError(f"{what}: {text!r} is out of range ({low:02X}..{high:02X}, hex)")
    return value


def kvn_option(text: str | None, what: str, low: int = 0, high: int = 0xFF) -> int | None:
    """:func:`parse_kvn` for a click option (None when not given): a usage error naming the option."""
    if text is None:
        return None
    try:
        return parse_kvn(text, what, low, high)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class KvnType(click.ParamType):  # type: ignore[type-arg]
    """A click type for a key version number option: :func:`parse_kvn` within ``low..high``."""

    name = "KVN"

    def __init__(self, low: int = 0, high: int = 0xFF) -> None:
        self.low = low
        self.high = high

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_kvn(str(value), param.opts[0] if param is not None else "KVN", self.low, self.high)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
