"""cli/examples.py: the example profiles ship inside the package (examples/profiles links to them)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from gpchannel.cli.examples import example_names, example_profile
from gpchannel.cli.main import cli

ROOT = Path(__file__).parents[2]


def test_the_examples_are_package_data_and_the_repository_links_to_them() -> None:
    assert example_names() == ["scp02", "scp03"]
    for name in example_names():
        shipped = example_profile(name)
        assert shipped.is_relative_to(ROOT / "src" / "gpchannel" / "data")
        assert (ROOT / "examples" / "profiles" / f"{name}.toml").resolve() == shipped.resolve()


def test_card_init_example(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["card", "init", "--example", "scp02", "--state", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(cli, ["card", "show", "--state", str(tmp_path / "c"), "--json"])
    assert '"scp": "02"' in shown.stdout
