"""cli/output.py: tables never cut an identifier, in a terminal of 80 or 40 columns (the value folds inside its
cell) or piped (plain text, every value in full, no colour); ``list``, ``info`` and ``apdu`` through the command
line, piped, keep every value on one line whatever COLUMNS says."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from gpchannel.cli.main import cli
from gpchannel.cli.output import Column, print_table, progress

AIDS = ["A0000000871002FF49FF0589", "A000000151000000", "A0000000620301010C01AABBCCDDEEFF00"]
ICCID = "89882110000000000017"
MSISDN = "491500000000017"
COLUMNS = (Column("kind"), Column("AID", identifier=True), Column("life cycle"), Column("privileges / modules"))
ROWS = [("application", aid, "SELECTABLE", "9EFE80 SecurityDomain, CardLock, CardTerminate") for aid in AIDS]
BOX = re.compile(r"[│┃|]")


def _render(width: int | None, terminal: bool, columns=COLUMNS, rows=ROWS) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=width or 80, color_system=None)
    print_table(console, "Card content", columns, rows)
    return out.getvalue()


def _column_text(text: str, index: int) -> str:
    """What column ``index`` of a rich table holds, its cells' lines joined (folded values join up again)."""
    parts = []
    for line in text.splitlines():
        cells = BOX.split(line)
        if len(cells) > index + 1:
            parts.append(cells[index + 1].strip())
    return "".join(parts)


@pytest.mark.parametrize("width", [80, 40])
def test_a_terminal_folds_identifiers_never_cuts_them(width: int) -> None:
    text = _render(width, terminal=True)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    body = [line for line in text.splitlines() if line.startswith("│")]
    assert body and all(line.endswith("│") for line in body), text  # the table fits: nothing cropped
    joined = _column_text(text, 1)
    for aid in AIDS:
        assert aid in joined, (aid, text)


@pytest.mark.parametrize("width", [80, 40])
def test_iccids_and_msisdns_fold_too(width: int) -> None:
    columns = (Column("card", True), Column("msisdn", True), Column("state"), Column("reason"))
    rows = [(ICCID, MSISDN, "failed", "the card did not answer within 30 s (3 attempts)")]
    text = _render(width, terminal=True, columns=columns, rows=rows)
    assert "…" not in text
    assert ICCID in _column_text(text, 0) and MSISDN in _column_text(text, 1)


def test_piped_tables_are_plain_full_values_one_row_per_line() -> None:
    text = _render(40, terminal=False)
    lines = text.splitlines()
    assert lines[0].split() == ["kind", "AID", "life", "cycle", "privileges", "/", "modules"]
    assert len(lines) == 1 + len(AIDS)
    for aid, line in zip(AIDS, lines[1:], strict=True):
        assert line.split()[1] == aid and "9EFE80 SecurityDomain, CardLock, CardTerminate" in line
    assert "\x1b[" not in text and "…" not in text and "│" not in text


def test_empty_cells_are_a_dash_when_piped() -> None:
    text = _render(None, terminal=False, columns=(Column("a"), Column("b")), rows=[("x", "")])
    assert text.splitlines()[1].split() == ["x", "-"]


def test_progress_only_on_a_terminal() -> None:
    quiet = Console(file=io.StringIO(), force_terminal=False)
    with progress(quiet, "LOAD") as hook:
        hook(1, 2)
    assert quiet.file.getvalue() == ""  # type: ignore[attr-defined]
    loud = Console(file=io.StringIO(), force_terminal=True, width=80)
    with progress(loud, "LOAD") as hook:
        hook(2, 2)
    assert "LOAD" in loud.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def card(tmp_path: Path) -> list[str]:
    made = CliRunner().invoke(cli, ["card", "init", "--example", "scp03", "--state", str(tmp_path / "card")])
    assert made.exit_code == 0, made.output
    return ["--emulator", str(tmp_path / "card")]


@pytest.mark.parametrize("columns", ["80", "40"])
def test_list_info_and_apdu_piped_keep_every_value_whole(card: list[str], columns: str) -> None:
    runner = CliRunner(env={"COLUMNS": columns})
    listed = runner.invoke(cli, [*card, "list"])
    assert listed.exit_code == 0, listed.output
    assert "A0000000871002FF49FF0589" in listed.stdout.split() and "…" not in listed.stdout
    info = runner.invoke(cli, [*card, "info"])
    assert info.exit_code == 0, info.output
    assert any(line.split()[:1] == ["cplc.ic_serial_number"] for line in info.stdout.splitlines())
    sent = runner.invoke(cli, [*card, "apdu", "80CA006600", "80CA9F7F00"])
    assert sent.exit_code == 0, sent.output
    lines = sent.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("66") and lines[1].startswith("9F7F2A")
    assert all(line.endswith("9000: success") for line in lines)


@pytest.mark.pcsc
def test_readers_json(pcscd_readers: list[str]) -> None:
    result = CliRunner().invoke(cli, ["readers", "--json"])
    assert result.exit_code == 0, result.output
    assert set(pcscd_readers) <= set(json.loads(result.stdout))
