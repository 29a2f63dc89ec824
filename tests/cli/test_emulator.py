"""The gpchannel command against the emulator in-process (``--emulator STATE_DIR --profile FILE``): the card
engine of gpchannel.card with its atomic directory store, built from the example profile the first time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import EXIT_AUTHENTICATION, EXIT_CARD_STATUS, cli
from tests.gp.test_cap import build_cap, components

pytest.importorskip("gpchannel.card.dispatcher", reason="the card emulator engine is not in this build")

EXAMPLE = Path(__file__).parents[2].parent / "shared" / "docs" / "example.toml"
NEW_KEY = "000102030405060708090A0B0C0D0E0F"


@pytest.fixture
def target(tmp_path: Path) -> list[str]:
    if not EXAMPLE.is_file():
        pytest.skip(f"the example profile is not at {EXAMPLE}")
    profile = tmp_path / "card.toml"
    shutil.copy(EXAMPLE, profile)
    return ["--emulator", str(tmp_path / "state"), "--profile", str(profile)]


def run(target: list[str], *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, [*target, *args], catch_exceptions=False)


def test_info_and_list(target: list[str]) -> None:
    result = run(target, "info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["secure_channel"]["scp"] == "03" and info["secure_channel"]["i"] == "70"
    assert info["secure_channel"]["kvn"] == "30"
    assert info["isd"] == "A000000151000000"
    result = run(target, "--security-level", "33", "list", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert items[0]["kind"] == "isd" and items[0]["lifecycle"] == "SECURED"
    assert any(i["aid"] == "A0000000871002FF49FF0589" and i["kind"] == "application" for i in items)


def test_put_key_then_use_it(target: list[str]) -> None:
    result = run(target, "--security-level", "enc", "put-key", "--new-kvn", "0x31", "--new-key", NEW_KEY)
    assert result.exit_code == 0, result.output
    assert run(target, "--kvn", "0x31", "--key", NEW_KEY, "list").exit_code == 0
    # The old key with the new KVN: the card's answer does not verify, and the tool says so.
    result = run(target, "--kvn", "0x31", "list")
    assert result.exit_code == EXIT_AUTHENTICATION
    assert "No EXTERNAL AUTHENTICATE was sent" in " ".join(result.stderr.split())


def test_load_install_lock_delete(target: list[str], tmp_path: Path) -> None:
    cap = tmp_path / "hello.cap"
    cap.write_bytes(build_cap(components(filler=30)))
    result = run(target, "--security-level", "enc", "load", str(cap), "--hash")
    assert result.exit_code == 0, result.output
    result = run(target, "install", "--cap", str(cap), "--instance", "A000000062030101AA")
    assert result.exit_code == 0, result.output
    items = json.loads(run(target, "list", "--json").stdout)
    load_files = [i for i in items if i["kind"] == "load-file"]
    assert load_files == [
        {
            "aid": "A0000000620301",
            "kind": "load-file",
            "lifecycle": "LOADED",
            "lifecycle_byte": "01",
            "privileges": "000000",
            "modules": ["A000000062030101", "A00000006203010C01"],
            **{k: v for k, v in load_files[0].items() if k in ("version", "security_domain")},
        }
    ]
    assert run(target, "set-status", "lock", "A000000062030101AA").exit_code == 0
    items = json.loads(run(target, "list", "--json").stdout)
    assert [i["lifecycle"] for i in items if i["aid"] == "A000000062030101AA"] == ["LOCKED(SELECTABLE)"]
    assert run(target, "set-status", "unlock", "A000000062030101AA").exit_code == 0
    assert run(target, "delete", "--related", "A0000000620301").exit_code == 0
    items = json.loads(run(target, "list", "--json").stdout)
    assert not any(i["aid"].startswith("A0000000620301") for i in items)
    result = run(target, "delete", "A0000000620301")
    assert result.exit_code == EXIT_CARD_STATUS and "6A88" in result.stderr


def test_apdu_through_the_channel(target: list[str]) -> None:
    result = run(target, "--security-level", "33", "apdu", "--json", "80CA004200", "80CA00C100")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out[0]["sw"] == "9000" and out[0]["data"].startswith("42")
