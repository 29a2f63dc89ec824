"""APDU scripts for ``gpchannel apdu --script FILE|-``, in the spirit of GPShell's ``send_apdu`` lines.

One command APDU per line, in hex as ``gpchannel apdu`` reads it (cli/apdu_text.py), optionally followed by the
status word expected, where ``X`` matches any hex digit::

    # select the ISD, then read its CPLC
    00A4040000             9000
    80CA9F7F00             9000   # CPLC
    00C0000000             61XX

``#`` starts a comment (a whole line or the end of one); blank lines are skipped. A line without an expected
status word expects success (9000, or a warning ISO 7816-4 counts as one). The last word of a line is read as the
expected status word when it is four characters of hex digits and ``X`` and the words before it form a command
APDU on their own; to send an APDU whose last space-separated group is four hex digits, write it without spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpchannel.cli.apdu_text import parse_apdu_text
from gpchannel.codec.apdu import CommandApdu

__all__ = ["ScriptLine", "SwPattern", "parse_script"]

_SW_WORD = re.compile(r"[0-9A-Fa-fXx]{4}")


@dataclass(frozen=True)
class SwPattern:
    """An expected status word, ``9000`` or ``61XX`` (``X``: any hex digit)."""

    text: str

    def matches(self, sw: int) -> bool:
        actual = f"{sw:04X}"
        return all(p in "Xx" or p.upper() == a for p, a in zip(self.text, actual, strict=True))

    def __str__(self) -> str:
        return self.text.upper()


@dataclass(frozen=True)
class ScriptLine:
    """One command of a script: its line number (from 1), the APDU and the status word expected (None:
    success)."""

    number: int
    command: CommandApdu
    expected: SwPattern | None


def _split_expected(words: list[str]) -> tuple[list[str], SwPattern | None]:
    if len(words) >= 2 and _SW_WORD.fullmatch(words[-1]):
        try:
            parse_apdu_text(" ".join(words[:-1]))
        except ValueError:
            return words, None
        return words[:-1], SwPattern(words[-1])
    return words, None


def parse_script(text: str, name: str = "script") -> list[ScriptLine]:
    """The script's commands; ValueError naming ``name`` and the line on a line that is not an APDU."""
    out: list[ScriptLine] = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        apdu_words, expected = _split_expected(words)
        if expected is None and _SW_WORD.fullmatch(words[-1]) and any(c in "Xx" for c in words[-1]):
            raise ValueError(f"{name} line {number}: the words before {words[-1]!r} are not a command APDU")
        try:
            command = parse_apdu_text(" ".join(apdu_words))
        except ValueError as exc:
            raise ValueError(f"{name} line {number}: {exc}") from None
        out.append(ScriptLine(number, command, expected))
    if not out:
        raise ValueError(f"{name}: no APDU in it (one hex APDU per line, # for comments)")
    return out
