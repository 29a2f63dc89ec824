"""cli/apdu_script.py and ``gpchannel apdu --script FILE|-``: comments, expected status words with X, the
ambiguity rule, errors naming the line; the run stops at the first unexpected status word with exit code 4."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gpchannel.cli.apdu_script import SwPattern, parse_script
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.main import cli

SCRIPT = """\
# read the card data and the CPLC
80CA006600 9000
80 CA 9F 7F 00        # CPLC, success expected
80CA00FF00 6A88       # not there: expected
80CA00FE00 61XX
80CA006600
"""


def test_parse() -> None:
    lines = parse_script(SCRIPT)
    assert [line.number for line in lines] == [2, 3, 4, 5, 6]
    assert [str(line.expected) if line.expected else None for line in lines] == ["9000", None, "6A88", "61XX", None]
    assert lines[1].command.to_bytes().hex().upper() == "80CA9F7F00"


@pytest.mark.parametrize(
    ("pattern", "sw", "ok"),
    [("9000", 0x9000, True), ("61XX", 0x6110, True), ("61xx", 0x6A88, False), ("6A8X", 0x6A88, True)],
)
def test_sw_pattern(pattern: str, sw: int, ok: bool) -> None:
    assert SwPattern(pattern).matches(sw) is ok


def test_a_last_group_that_cannot_be_a_status_word_stays_in_the_apdu() -> None:
    (line,) = parse_script("80CA 9F7F")  # "80CA" alone is no APDU: the line is one APDU without an expectation
    assert line.expected is None and line.command.to_bytes().hex().upper() == "80CA9F7F"


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "no APDU"), ("# only\n\n", "no APDU"), ("9000\nzz 9000\n", "line 1"), ("00A4 61XX\n", "line 1")],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_script(text, "s.apdu")


@pytest.fixture
def card(tmp_path: Path) -> list[str]:
    made = CliRunner().invoke(cli, ["card", "init", "--example", "scp03", "--state", str(tmp_path / "card")])
    assert made.exit_code == 0, made.output
    return ["--emulator", str(tmp_path / "card")]


def test_script_stops_at_the_first_mismatch(card: list[str], tmp_path: Path) -> None:
    script = tmp_path / "s.apdu"
    script.write_text(SCRIPT)
    result = CliRunner().invoke(cli, [*card, "apdu", "--script", str(script)])
    assert result.exit_code == ExitCode.CARD_REFUSED
    assert len(result.stdout.splitlines()) == 4  # the 4th line's 6A88 did not match 61XX: the 5th was not sent
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {script} line 5: the card answered 6A88, expected 61XX; stopped"]


def test_script_from_stdin(card: list[str]) -> None:
    result = CliRunner().invoke(cli, [*card, "apdu", "--json", "--script", "-"], input="80CA006600 9000\n80CA9F7F00\n")
    assert result.exit_code == 0, result.output
    assert '"sw": "9000"' in result.stdout


def test_a_line_without_expectation_expects_success(card: list[str]) -> None:
    result = CliRunner().invoke(cli, [*card, "apdu", "--script", "-"], input="80CA00FF00\n80CA006600\n")
    assert result.exit_code == ExitCode.CARD_REFUSED
    assert "stdin line 1" in result.stderr and "expected success" in result.stderr
