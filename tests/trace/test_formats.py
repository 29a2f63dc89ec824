"""Trace file formats: detection, parsing, our own format's round trip, T=0 GET RESPONSE folding."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError
from gpchannel.trace import (
    KeyOptions,
    Role,
    TraceExchange,
    TraceFormat,
    decode_trace,
    detect_format,
    join_get_response,
    parse_trace,
)
from gpchannel.trace.ourformat import HEADER, format_exchange, format_trace
from tests.trace.builders import Pair, loopback_trace


def _spaced(raw: bytes) -> str:
    return " ".join(f"{b:02X}" for b in raw)


def render_plain(pairs: list[Pair]) -> str:
    lines = ["# captured with a reader tool"]
    for n, (command, response) in enumerate(pairs):
        lines.append(f"C-APDU: {command}" if n % 2 else f"> {_spaced(command.to_bytes())}")
        if response is not None:
            lines.append(f"R-APDU {response}" if n % 2 else f"< {_spaced(response.to_bytes())}")
    return "\n".join(lines) + "\n"


def render_pcscd(pairs: list[Pair]) -> str:
    lines = ["00000000 pcscdaemon.c:355:main() pcscd set to foreground with debug send to stdout"]
    for n, (command, response) in enumerate(pairs):
        lines.append(f"{n * 7:08d} ifdwrapper.c:{500 + n}:IFDTransmit() APDU: {_spaced(command.to_bytes())}")
        if response is not None:
            lines.append(f"{n * 7 + 3:08d} SW: {_spaced(response.to_bytes())}")
    return "\r\n".join(lines) + "\r\n"


def render_gpshell(pairs: list[Pair], plain: list[CommandApdu | None]) -> str:
    lines = ["mode_211", "enable_trace", "establish_context", "card_connect", "select -AID A000000151000000"]
    for (command, response), plain_command in zip(pairs, plain, strict=True):
        lines.append(f"Command --> {plain_command or command}")
        lines.append(f"Wrapped command --> {command}")
        if response is not None:
            lines.append(f"Response <-- {response}")
    lines.append("card_disconnect")
    return "\n".join(lines) + "\n"


def render_gppro(pairs: list[Pair]) -> str:
    lines = ["# gp -d --list", "[INFO] GPSession - Using card master key(s)"]
    for command, response in pairs:
        raw = command.to_bytes()
        head = f"A>> T=1 (4+{len(command.data):04d}) {raw[:4].hex().upper()}"
        rest = raw[4:]
        lines.append(f"{head} {rest.hex().upper()}" if rest else head)
        if response is not None:
            sw = f"{response.sw:04X}"
            body = f"{response.data.hex().upper()} {sw}" if response.data else sw
            lines.append(f"A<< ({len(response.data):04d}+2) (12ms) {body}")
    return "\n".join(lines) + "\n"


def render_ours(pairs: list[Pair], plain: list[CommandApdu | None]) -> str:
    return format_trace((command, response, p, None) for (command, response), p in zip(pairs, plain, strict=True))


@pytest.fixture(scope="module")
def session() -> tuple[list[Pair], list[CommandApdu | None], KeyOptions]:
    pairs, plain_commands, _, keys = loopback_trace(3, 0x33, 0x70)
    plain: list[CommandApdu | None] = [None, None, *plain_commands]
    pairs[-1] = (pairs[-1][0], None)  # a trace may end before the last response
    return pairs, plain, KeyOptions(keys)


RENDERERS: dict[TraceFormat, Callable[[list[Pair], list[CommandApdu | None]], str]] = {
    TraceFormat.PLAIN: lambda pairs, _plain: render_plain(pairs),
    TraceFormat.PCSCD: lambda pairs, _plain: render_pcscd(pairs),
    TraceFormat.GPSHELL: render_gpshell,
    TraceFormat.GPPRO: lambda pairs, _plain: render_gppro(pairs),
    TraceFormat.GPCHANNEL: render_ours,
}


@pytest.mark.parametrize("fmt", list(TraceFormat), ids=lambda f: f.value)
def test_each_format_is_detected_parsed_and_decoded(
    fmt: TraceFormat, session: tuple[list[Pair], list[CommandApdu | None], KeyOptions]
) -> None:
    pairs, plain, keys = session
    text = RENDERERS[fmt](pairs, plain)
    assert detect_format(text) is fmt
    exchanges = parse_trace(text)
    assert [(e.command, e.response) for e in exchanges] == pairs
    assert [e.index for e in exchanges] == list(range(len(pairs)))
    lines = text.splitlines()
    for e in exchanges:
        assert str(e.command) in lines[e.line - 1].replace(" ", "") or fmt is TraceFormat.GPPRO
    report = decode_trace(text, keys)
    assert report.ok and report.format is fmt
    assert [e.plain_command for e in report.exchanges[2:]] == plain[2:]


def test_gpshell_keeps_the_recorded_plain_command(
    session: tuple[list[Pair], list[CommandApdu | None], KeyOptions],
) -> None:
    pairs, plain, _ = session
    exchanges = parse_trace(render_gpshell(pairs, plain), TraceFormat.GPSHELL)
    assert [e.recorded_plain_command for e in exchanges] == plain


def test_gpshell_without_wrapped_lines() -> None:
    text = "Command --> 00A4040008A000000151000000\nResponse <-- 6F108408A000000151000000A5049F6501FF9000\n"
    (exchange,) = parse_trace(text)
    assert exchange.command == CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000151000000"))
    assert exchange.response is not None and exchange.response.sw == 0x9000


def test_our_format_lines() -> None:
    command = CommandApdu(0x84, 0xCA, 0x00, 0x66, bytes(8), le=256)
    plain = CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256)
    lines = format_exchange(command, ResponseApdu(b"\x01"), plain, ResponseApdu(b"\x01"))
    assert lines == [f"C: {command}", f"plain C: {plain}", "R: 019000", "plain R: 019000"]
    text = HEADER + "\n" + "\n".join(lines) + "\n"
    (exchange,) = parse_trace(text)
    assert exchange.recorded_plain_command == plain
    assert exchange.recorded_plain_response == ResponseApdu(b"\x01")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello\nworld\n",
        "C-APDU: 80CA00\n",  # not a command APDU
        "> 80CA00660\n",  # odd number of hex digits
        "< 9000\n> 80CA006600\n",  # a response before any command
        "R: 9000\n",
    ],
)
def test_not_a_trace(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_trace(text)


def test_error_names_the_line() -> None:
    with pytest.raises(DecodeError, match="line 3") as info:
        parse_trace("# x\n> 00A4040000\n> 0A1\n")
    assert info.value.offset == len("# x\n> 00A4040000\n")


def test_t0_get_response_is_folded() -> None:
    pairs, _, plain_responses, keys = loopback_trace(3, 0x13, 0x70)
    command, response = pairs[3]
    assert response is not None and len(response.data) > 8
    split: list[Pair] = [
        *pairs[:3],
        (command, ResponseApdu(b"", 0x6100 | len(response.data))),
        (CommandApdu(0x00, 0xC0, 0x00, 0x00, le=len(response.data)), response),
        *pairs[4:],
    ]
    exchanges = [TraceExchange(n, n + 1, c, r) for n, (c, r) in enumerate(split)]
    joined = join_get_response(exchanges)
    assert [(e.command, e.response) for e in joined] == pairs
    text = format_trace((c, r, None, None) for c, r in split)
    report = decode_trace(text, KeyOptions(keys))
    assert report.ok and report.exchanges[3].plain_response == plain_responses[1]
    assert report.exchanges[3].index == 3 and report.exchanges[4].index == 5


def test_wrong_length_6c_is_replaced_by_the_repeated_command() -> None:
    first = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256)
    again = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4)
    exchanges = [
        TraceExchange(0, 1, first, ResponseApdu(b"", 0x6C04)),
        TraceExchange(1, 2, again, ResponseApdu(b"\x01\x02\x03\x04")),
    ]
    (joined,) = join_get_response(exchanges)
    assert joined.command == again and joined.response == ResponseApdu(b"\x01\x02\x03\x04")


def test_no_session_in_a_plain_trace() -> None:
    report = decode_trace("> 00A4040000\n< 9000\n", KeyOptions())
    assert report.ok and not report.sessions and report.exchanges[0].role is Role.OUTSIDE


_commands = st.builds(
    CommandApdu,
    st.integers(0, 0xFE),
    st.integers(0, 0xFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFF),
    st.binary(max_size=300),
    st.one_of(st.none(), st.integers(1, 256)),
)
_responses = st.builds(ResponseApdu, st.binary(max_size=300), st.integers(0, 0xFFFF))


@given(st.lists(st.tuples(_commands, st.one_of(st.none(), _responses), st.booleans()), max_size=8))
def test_our_format_round_trip(items: list[tuple[CommandApdu, ResponseApdu | None, bool]]) -> None:
    # a missing response can only be the last one: the next command line would start a new exchange anyway
    items = [(c, r if r is not None or n == len(items) - 1 else ResponseApdu(), p) for n, (c, r, p) in enumerate(items)]
    text = format_trace((c, r, c if p else None, None) for c, r, p in items)
    if not items:
        with pytest.raises(DecodeError):
            parse_trace(text)
        return
    exchanges = parse_trace(text)
    assert [(e.command, e.response) for e in exchanges] == [(c, r) for c, r, _ in items]
    assert [e.recorded_plain_command for e in exchanges] == [c if p else None for c, _, p in items]


@given(st.text(alphabet=st.sampled_from("0123456789ABCDEF <>:-CR\nAPDUSWplaincommandWrapped"), max_size=200))
def test_parsers_return_exchanges_or_raise_decode_error(text: str) -> None:
    try:
        exchanges = parse_trace(text)
    except DecodeError:
        return
    assert all(isinstance(e, TraceExchange) for e in exchanges)
    decode_trace(text, KeyOptions.single(bytes(16)))
