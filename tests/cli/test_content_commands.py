"""``gpchannel load`` and ``delete`` against the emulator: the 6985 hints read from the card's registry (the
package is already there; it still has instances), ``load --force`` with and without ``--related``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.main import cli
from tests.gp.test_cap import build_cap, components

PACKAGE = "A0000000620301"
APPLET = "A000000062030101"


@pytest.fixture
def card(tmp_path: Path) -> list[str]:
    made = CliRunner().invoke(cli, ["card", "init", "--example", "scp03", "--state", str(tmp_path / "card")])
    assert made.exit_code == 0, made.output
    (tmp_path / "p.cap").write_bytes(build_cap(components()))
    return ["--emulator", str(tmp_path / "card")]


def run(card: list[str], *args: str) -> Result:
    return CliRunner().invoke(cli, [*card, *args])


def error(result: Result) -> str:
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_load_twice_says_the_package_is_there(card: list[str], tmp_path: Path) -> None:
    cap = str(tmp_path / "p.cap")
    assert run(card, "load", cap).exit_code == 0
    again = run(card, "load", cap)
    assert again.exit_code == ExitCode.CARD_REFUSED
    assert "6985" in error(again) and f"package {PACKAGE} is already on the card" in error(again)
    assert "--force" in error(again)


def test_delete_with_instances_names_them_then_force_related(card: list[str], tmp_path: Path) -> None:
    cap = str(tmp_path / "p.cap")
    assert run(card, "load", cap).exit_code == 0
    assert run(card, "install", "--cap", cap).exit_code == 0
    refused = run(card, "delete", PACKAGE)
    assert refused.exit_code == ExitCode.CARD_REFUSED
    assert f"package {PACKAGE} has instances {APPLET}" in error(refused) and "--related" in error(refused)
    forced = run(card, "load", "--force", cap)  # the instance is still there: the same hint
    assert forced.exit_code == ExitCode.CARD_REFUSED and f"has instances {APPLET}" in error(forced)
    forced = run(card, "load", "--force", "--related", cap)
    assert forced.exit_code == 0, forced.output
    assert f"deleted package {PACKAGE} and its instances (--force)" in forced.stdout
    assert f"loaded package {PACKAGE}" in forced.stdout
    listed = run(card, "list")
    assert APPLET not in [line.split()[1] for line in listed.stdout.splitlines()[1:]]


def test_force_on_a_card_without_the_package_just_loads(card: list[str], tmp_path: Path) -> None:
    result = run(card, "load", "--force", str(tmp_path / "p.cap"))
    assert result.exit_code == 0, result.output
    assert "deleted" not in result.stdout and f"loaded package {PACKAGE}" in result.stdout
