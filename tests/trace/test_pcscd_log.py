"""Real pcscd logs (``pcscd --foreground --apdu --debug``) of gpchannel's host and the emulator over vpcd.

tests/trace/record_pcscd.py recorded them (see tests/vectors/trace/SOURCES.md): SELECT, a session opened with the
GlobalPlatform test key (SCP02 i=55 level 03, SCP03 i=70 level 33) and four commands, then a session the host
abandoned after INITIALIZE UPDATE because its key (all zeros) was wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification
from gpchannel.scp.common import ScpProtocol, SecurityLevel
from gpchannel.trace import (
    Failure,
    KeyOptions,
    Role,
    TraceFormat,
    decode_trace,
    doctor,
    doctor_exchanges,
    parse_trace,
    trace_text,
)
from tests.vectors import VECTORS

KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
PLAIN = [
    CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256),
    CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256),
    CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256),
    CommandApdu(0x80, 0xCA, 0x00, 0xE0, le=256),
]
LOGS = {"02": (ScpProtocol.SCP02, 0x03), "03": (ScpProtocol.SCP03, 0x33)}


def _log(scp: str) -> str:
    return Path(VECTORS / "trace" / f"pcscd-emulator-scp{scp}.log").read_text()


@pytest.mark.parametrize("scp", sorted(LOGS))
def test_real_pcscd_log_decodes(scp: str) -> None:
    protocol, level = LOGS[scp]
    report = decode_trace(_log(scp), KeyOptions.single(KEY))
    assert report.format is TraceFormat.PCSCD and report.ok
    first, second = report.sessions
    assert first.protocol is protocol and first.level == SecurityLevel(level) and first.opened
    assert [e.plain_command for e in report.exchanges[first.first + 2 : first.last + 1]] == PLAIN
    assert all(e.response is not None and e.response.sw == 0x9000 for e in report.exchanges[3:7])
    assert second.checked and not second.opened and second.ok
    assert "no EXTERNAL AUTHENTICATE followed" in trace_text(report)
    assert [e.role for e in report.exchanges[:2]] == [Role.OUTSIDE, Role.INITIALIZE_UPDATE]


@pytest.mark.parametrize("scp", sorted(LOGS))
def test_real_pcscd_log_with_the_wrong_key(scp: str) -> None:
    report = decode_trace(_log(scp), KeyOptions.single(bytes(16)))
    assert [s.failure for s in report.sessions] == [Failure.CARD_CRYPTOGRAM, Failure.CARD_CRYPTOGRAM]
    failure = report.first_failure
    assert failure is not None and failure.index == 1


@pytest.mark.parametrize("scp", sorted(LOGS))
def test_real_pcscd_log_doctor(scp: str) -> None:
    exchanges = parse_trace(_log(scp))
    abandoned = exchanges[-1]
    assert abandoned.command.ins == 0x50 and abandoned.response is not None
    report = doctor(abandoned.command, abandoned.response, KEY)
    assert report.match is not None and report.match.diversification is Diversification.NONE
    assert doctor(abandoned.command, abandoned.response, bytes(16)).match is None


def test_coloured_pcscd_log() -> None:
    """pcscd --color wraps the time stamp and the message in terminal colour codes."""
    lines = []
    for line in _log("03").splitlines():
        stamp, _, rest = line.partition(" ")
        lines.append(f"\x1b[36m{stamp}\x1b[0m [140093] \x1b[34m{rest}\x1b[0m")
    report = decode_trace("\n".join(lines), KeyOptions.single(KEY))
    assert report.format is TraceFormat.PCSCD and report.ok and len(report.sessions) == 2


def test_responses_are_the_whole_sw_lines() -> None:
    (select, *_rest) = parse_trace(_log("02"))
    assert select.command == CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000151000000"), le=256)
    assert isinstance(select.response, ResponseApdu) and select.response.data.startswith(b"\x6f")


@pytest.mark.parametrize("scp", sorted(LOGS))
def test_doctor_on_every_initialize_update_of_a_log(scp: str) -> None:
    found = doctor_exchanges(parse_trace(_log(scp)), KEY)
    assert [e.index for e, _ in found] == [1, 8]
    assert all(r.match is not None and r.match.diversification is Diversification.NONE for _, r in found)
    assert all(r.match is None for _, r in doctor_exchanges(parse_trace(_log(scp)), bytes(16)))
