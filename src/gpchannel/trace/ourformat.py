"""gpchannel's own APDU trace format, printed by ``gpchannel --trace`` and read back by the trace inspector.

One exchange is two to four lines::

    C: 84F2200218705C4D16C7BAC5496AEE0ED9963222455472F3CFAC97BCCA00
    plain C: 80F22002024F0000
    R: E30D4F07A00000015153509F7001019000
    plain R: E30D4F07A00000015153509F7001019000

``C:`` is the command as sent (ISO/IEC 7816-4 encoding, hex), ``R:`` the response as received (data || SW1 SW2).
``plain C:`` / ``plain R:`` are optional: the command and response as the application sees them inside a secure
channel (GP 2.3.1, 10.8). A line starting with ``#`` is a comment; the first line is the header :data:`HEADER`.
The trace never contains keys: only what was on the wire and its plain form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gpchannel.codec.apdu import CommandApdu, ResponseApdu

__all__ = ["HEADER", "LINE_PATTERN", "format_exchange", "format_trace"]

HEADER = "# gpchannel trace v1"

LINE_PATTERN = re.compile(r"^\s*(plain\s+)?([CR]):\s*([0-9A-Fa-f ]*)\s*$")
"""A ``C:`` / ``R:`` / ``plain C:`` / ``plain R:`` line; groups: plain marker, C or R, hex."""


def format_exchange(
    command: CommandApdu,
    response: ResponseApdu | None,
    plain_command: CommandApdu | None = None,
    plain_response: ResponseApdu | None = None,
) -> list[str]:
    """The lines of one exchange (without newlines); the plain lines only where they are given."""
    lines = [f"C: {command}"]
    if plain_command is not None:
        lines.append(f"plain C: {plain_command}")
    if response is not None:
        lines.append(f"R: {response}")
        if plain_response is not None:
            lines.append(f"plain R: {plain_response}")
    return lines


def format_trace(
    exchanges: Iterable[tuple[CommandApdu, ResponseApdu | None, CommandApdu | None, ResponseApdu | None]],
) -> str:
    """A whole trace: the header, then each exchange ``(command, response, plain_command, plain_response)``."""
    lines = [HEADER]
    for command, response, plain_command, plain_response in exchanges:
        lines.extend(format_exchange(command, response, plain_command, plain_response))
    return "\n".join(lines) + "\n"
