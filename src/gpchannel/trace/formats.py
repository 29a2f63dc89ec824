"""APDU trace files: detect the format and read the exchanges (command, response) in order.

Formats read (one exchange = a command line, then its response line):

- ``plain``: hex lines marked ``C-APDU`` / ``R-APDU`` (a colon is optional) or ``>`` / ``<``.
- ``pcscd``: pcscd's debug log with APDU logging (``pcscd --foreground --debug --apdu``): ``APDU: 80 50 ..`` and
  ``SW: .. 90 00`` lines, whatever prefix (time stamp, file and line) precedes them.
- ``gpshell``: GPShell's ``enable_trace`` output: ``Command --> ..`` (the plain command), ``Wrapped command --> ..``
  (what went to the card) and ``Response <-- ..``.
- ``gppro``: GlobalPlatformPro's ``-d`` output: ``A>> T=1 (4+0008) 80500000 08 .. 00`` and
  ``A<< (0028+2) (12ms) .. 9000``.
- ``gpchannel``: our own ``--trace`` output (:mod:`gpchannel.trace.ourformat`), with optional plain lines.

Every other line is ignored. The responses are data || SW1 SW2 (ISO/IEC 7816-4, 5.1 and 5.6). Parsers return the
exchanges or raise :class:`~gpchannel.errors.DecodeError`, whose ``offset`` is the character offset of the line in
the text (the message names the line number).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError
from gpchannel.trace.ourformat import LINE_PATTERN

__all__ = ["TraceExchange", "TraceFormat", "detect_format", "join_get_response", "parse_trace"]


class TraceFormat(enum.Enum):
    """The trace file formats the inspector reads (see the module docstring)."""

    GPCHANNEL = "gpchannel"
    GPSHELL = "gpshell"
    GPPRO = "gppro"
    PCSCD = "pcscd"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class TraceExchange:
    """One command as it went to the card and the card's response (None when the trace ends before it).

    ``line`` is the 1-based line of the command in the trace. ``recorded_plain_command`` /
    ``recorded_plain_response`` are the plain forms the trace itself shows (GPShell's ``Command -->``, our
    ``plain C:``), kept for reference; the inspector computes its own.
    """

    index: int
    line: int
    command: CommandApdu
    response: ResponseApdu | None
    recorded_plain_command: CommandApdu | None = None
    recorded_plain_response: ResponseApdu | None = None


_HEX = r"([0-9A-Fa-f][0-9A-Fa-f \t]*)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes (pcscd --color) are removed before a line is read."""
_GPSHELL_PLAIN = re.compile(r"^\s*Command\s*-->\s*" + _HEX + r"\s*$")
_GPSHELL_WIRE = re.compile(r"^\s*Wrapped command\s*-->\s*" + _HEX + r"\s*$")
_GPSHELL_RESPONSE = re.compile(r"^\s*Response\s*<--\s*" + _HEX + r"\s*$")
_GPPRO_COMMAND = re.compile(r"A>>\s*(?:T=\S+\s*)?(?:\([^)]*\)\s*)*" + _HEX + r"\s*$")
_GPPRO_RESPONSE = re.compile(r"A<<\s*(?:\([^)]*\)\s*)*" + _HEX + r"\s*$")
_PCSCD_COMMAND = re.compile(r"(?<![\w-])APDU:\s*" + _HEX + r"\s*$")
_PCSCD_RESPONSE = re.compile(r"(?<![\w-])SW:\s*" + _HEX + r"\s*$")
_PLAIN_COMMAND = re.compile(r"^\s*(?:C-APDU\s*:?|>)\s*" + _HEX + r"\s*$", re.IGNORECASE)
_PLAIN_RESPONSE = re.compile(r"^\s*(?:R-APDU\s*:?|<)\s*" + _HEX + r"\s*$", re.IGNORECASE)

_MARKERS: dict[TraceFormat, tuple[re.Pattern[str], ...]] = {
    TraceFormat.GPCHANNEL: (LINE_PATTERN,),
    TraceFormat.GPSHELL: (_GPSHELL_WIRE, _GPSHELL_PLAIN, _GPSHELL_RESPONSE),
    TraceFormat.GPPRO: (_GPPRO_COMMAND, _GPPRO_RESPONSE),
    TraceFormat.PCSCD: (_PCSCD_COMMAND, _PCSCD_RESPONSE),
    TraceFormat.PLAIN: (_PLAIN_COMMAND, _PLAIN_RESPONSE),
}


def detect_format(text: str) -> TraceFormat:
    """The format of ``text``: the first of gpchannel, GPShell, GPPro, pcscd, plain with a command line in it.

    DecodeError when no line of any known format is found.
    """
    lines = [_ANSI.sub("", line) for line in text.splitlines()]
    for fmt, patterns in _MARKERS.items():
        commands = patterns[:2] if fmt is TraceFormat.GPSHELL else patterns[:1]
        if any(p.search(line) for p in commands for line in lines):
            if fmt is TraceFormat.GPCHANNEL and not any(_our_kind(line) == "C" for line in lines):
                continue
            return fmt
    raise DecodeError("no APDU trace found: no line looks like a command of a known trace format", offset=0)


def _our_kind(line: str) -> str | None:
    match = LINE_PATTERN.match(line)
    if match is None:
        return None
    return ("plain " if match.group(1) else "") + match.group(2)


def _hex(text: str, number: int, offset: int) -> bytes:
    compact = re.sub(r"\s+", "", text)
    try:
        return bytes.fromhex(compact)
    except ValueError:
        raise DecodeError(f"line {number}: {compact[:40]!r} is not an even number of hex digits", offset) from None


class _Builder:
    """Pairs command and response events into exchanges."""

    def __init__(self) -> None:
        self.items: list[list[object]] = []  # [line, command, response, plain command, plain response]

    def command(self, raw: bytes, number: int, offset: int, plain: CommandApdu | None = None) -> None:
        self.items.append([number, _command(raw, number, offset), None, plain, None])

    def plain_command(self, raw: bytes, number: int, offset: int) -> None:
        if not self.items:
            raise DecodeError(f"line {number}: a plain command before any command", offset)
        self.items[-1][3] = _command(raw, number, offset)

    def response(self, raw: bytes, number: int, offset: int, *, plain: bool = False) -> None:
        if not self.items or (self.items[-1][2] is not None and not plain):
            raise DecodeError(f"line {number}: a response without a command before it", offset)
        try:
            response = ResponseApdu.from_bytes(raw)
        except DecodeError as exc:
            raise DecodeError(f"line {number}: {exc}", offset) from None
        self.items[-1][4 if plain else 2] = response

    def exchanges(self) -> list[TraceExchange]:
        out = []
        for index, (line, command, response, plain_command, plain_response) in enumerate(self.items):
            assert isinstance(line, int) and isinstance(command, CommandApdu)
            assert response is None or isinstance(response, ResponseApdu)
            assert plain_command is None or isinstance(plain_command, CommandApdu)
            assert plain_response is None or isinstance(plain_response, ResponseApdu)
            out.append(TraceExchange(index, line, command, response, plain_command, plain_response))
        return out


def _command(raw: bytes, number: int, offset: int) -> CommandApdu:
    try:
        return CommandApdu.from_bytes(raw)
    except (DecodeError, ValueError) as exc:
        raise DecodeError(f"line {number}: not a command APDU: {exc}", offset) from None


def parse_trace(text: str, fmt: TraceFormat | None = None) -> list[TraceExchange]:
    """The exchanges of a trace, in order; the format is detected when ``fmt`` is None.

    GPShell's ``Command -->`` line is the plain command; the ``Wrapped command -->`` after it is what the card
    received (when no wrapped line follows, the command went as it is).
    """
    fmt = detect_format(text) if fmt is None else fmt
    builder = _Builder()
    pending: tuple[bytes, int, int] | None = None  # GPShell: a "Command -->" not yet followed by its wrapped form
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        here = offset
        offset += len(line)
        line = _ANSI.sub("", line.rstrip("\r\n"))
        if fmt is TraceFormat.GPCHANNEL:
            match = LINE_PATTERN.match(line)
            if match is None:
                continue
            raw = _hex(match.group(3), number, here)
            if match.group(2) == "C":
                if match.group(1):
                    builder.plain_command(raw, number, here)
                else:
                    builder.command(raw, number, here)
            else:
                builder.response(raw, number, here, plain=bool(match.group(1)))
        elif fmt is TraceFormat.GPSHELL:
            if match := _GPSHELL_WIRE.match(line):
                plain = None
                if pending is not None:
                    plain = _command(*pending)
                    pending = None
                wire = _hex(match.group(1), number, here)
                builder.command(wire, number, here, plain if plain is None or plain.to_bytes() != wire else None)
            elif match := _GPSHELL_PLAIN.match(line):
                if pending is not None:
                    builder.command(*pending)
                pending = (_hex(match.group(1), number, here), number, here)
            elif match := _GPSHELL_RESPONSE.match(line):
                if pending is not None:
                    builder.command(*pending)
                    pending = None
                builder.response(_hex(match.group(1), number, here), number, here)
        else:
            command_pattern, response_pattern = _MARKERS[fmt][0], _MARKERS[fmt][1]
            if match := command_pattern.search(line):
                builder.command(_hex(match.group(1), number, here), number, here)
            elif match := response_pattern.search(line):
                builder.response(_hex(match.group(1), number, here), number, here)
    if pending is not None:
        builder.command(*pending)
    return builder.exchanges()


def join_get_response(exchanges: list[TraceExchange]) -> list[TraceExchange]:
    """Fold T=0 transport exchanges into the commands they belong to (ISO/IEC 7816-3, 12.2; 7816-4, 5.3.4).

    A ``61XX`` answer followed by GET RESPONSE (INS C0, no secure messaging) gets the GET RESPONSE data appended
    and its final status word; a ``6CXX`` answer followed by the same command with Le = XX is replaced by the
    repeated exchange. The indexes and lines of the kept exchanges do not change.
    """
    out: list[TraceExchange] = []
    for exchange in exchanges:
        if out:
            last = out[-1]
            previous = last.response
            command = exchange.command
            if (
                previous is not None
                and previous.sw1 == 0x61
                and command.ins == 0xC0
                and not command.cla & 0x0C
                and exchange.response is not None
            ):
                joined = ResponseApdu(previous.data + exchange.response.data, exchange.response.sw)
                out[-1] = TraceExchange(last.index, last.line, last.command, joined, last.recorded_plain_command)
                continue
            if (
                previous is not None
                and previous.sw1 == 0x6C
                and command.header() == last.command.header()
                and command.data == last.command.data
            ):
                out[-1] = TraceExchange(last.index, last.line, command, exchange.response, last.recorded_plain_command)
                continue
        out.append(exchange)
    return out
