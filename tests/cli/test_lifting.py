"""cli/lifting.py: global options after the command are read as if they came before it; a command's own option
of the same name keeps its place; unknown options and everything after ``--`` are left for click."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gpchannel.cli.lifting import lift_global_options
from gpchannel.cli.main import cli


def lift(*args: str) -> list[str]:
    with click.Context(cli, help_option_names=["-h", "--help"]) as ctx:
        return lift_global_options(cli, ctx, list(args))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("list", "--reader", "X"), ["--reader", "X", "list"]),
        (("list", "-r", "X", "--json"), ["-r", "X", "list", "--json"]),
        (("list", "--reader=X"), ["--reader=X", "list"]),
        (("list", "-rX"), ["-rX", "list"]),
        (("--kvn", "30", "list", "-K", "31"), ["--kvn", "30", "-K", "31", "list"]),
        (("list", "-d", "-k", "40" * 16), ["-d", "-k", "40" * 16, "list"]),
        (("list", "--kvn", "-1"), ["--kvn", "-1", "list"]),
        (("card", "serve", "--state", "s", "--trace"), ["card", "serve", "--state", "s", "--trace"]),
        (("card", "init", "--profile", "p", "--state", "s"), ["card", "init", "--profile", "p", "--state", "s"]),
        (("card", "show", "--state", "s", "-r", "X"), ["-r", "X", "card", "show", "--state", "s"]),
        (("apdu", "--plain", "--", "--reader"), ["apdu", "--plain", "--", "--reader"]),
        (("list", "--nosuchoption"), ["list", "--nosuchoption"]),
        (("apdu", "--script", "-", "-r", "X"), ["-r", "X", "apdu", "--script", "-"]),
    ],
)
def test_lifting(args: tuple[str, ...], expected: list[str]) -> None:
    assert lift(*args) == expected


def test_global_options_after_the_command_reach_the_card(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["card", "init", "--example", "scp03", "--state", str(tmp_path / "c")])
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        cli, ["list", "--json", "--emulator", str(tmp_path / "c"), "-K", "30", "-k", "404142434445464748494A4B4C4D4E4F"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["aid"] == "A000000151000000"
    wrong = runner.invoke(cli, ["list", "--emulator", str(tmp_path / "c"), "--key", "41" * 16])
    assert wrong.exit_code == 3, wrong.output
