"""cli/conventions.py: key versions in hex (30 and 0x30 alike), GlobalPlatformPro's environment variables as
aliases (a note when both spellings differ, never the values), the test key's warning; and --version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpchannel.cli.conventions import env_notes, is_test_key, parse_kvn
from gpchannel.cli.main import cli

TEST_KEY = "404142434445464748494A4B4C4D4E4F"
NEW_KEY = "000102030405060708090A0B0C0D0E0F"


@pytest.mark.parametrize(("text", "value"), [("30", 0x30), ("0x30", 0x30), ("0X7f", 0x7F), ("01", 1), ("FF", 0xFF)])
def test_kvn_is_hex(text: str, value: int) -> None:
    assert parse_kvn(text) == value


@pytest.mark.parametrize("text", ["", "0x", "zz", "-1", "100", "3 0", "1.5"])
def test_kvn_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--kvn"):
        parse_kvn(text)


def test_env_notes_only_when_both_differ() -> None:
    assert env_notes({"GPCHANNEL_KEY": "a", "GP_KEY": "a"}) == []
    assert env_notes({"GP_KEY": "a"}) == []
    notes = env_notes({"GPCHANNEL_KEY_ENC": "secret1", "GP_KEY_ENC": "secret2"})
    assert len(notes) == 1 and "GPCHANNEL_KEY_ENC" in notes[0] and "secret" not in notes[0]


def test_is_test_key() -> None:
    assert is_test_key(bytes.fromhex(NEW_KEY), bytes.fromhex(TEST_KEY))
    assert not is_test_key(bytes.fromhex(NEW_KEY))


@pytest.fixture
def card(tmp_path: Path) -> list[str]:
    made = CliRunner().invoke(cli, ["card", "init", "--example", "scp03", "--state", str(tmp_path / "card")])
    assert made.exit_code == 0, made.output
    return ["--emulator", str(tmp_path / "card")]


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    base: dict[str, str | None] = {k: None for k in ("GPCHANNEL_KEY", "GP_KEY", "GPCHANNEL_READER", "GP_READER")}
    result = CliRunner(env={**base, **(env or {})}).invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_gp_key_is_an_alias_and_gpchannel_key_wins(card: list[str]) -> None:
    code, _, err = run(*card, "list", env={"GP_KEY": NEW_KEY})
    assert code == 3, err  # GP_KEY was read: the card's key is the test key
    code, _, err = run(*card, "list", env={"GP_KEY": NEW_KEY, "GPCHANNEL_KEY": TEST_KEY})
    assert code == 0, err
    assert "note: GPCHANNEL_KEY and GP_KEY are both set and differ; GPCHANNEL_KEY is used" in err
    assert NEW_KEY not in err and TEST_KEY not in err


def test_the_test_key_warning_and_kvn_in_hex(card: list[str]) -> None:
    code, _, err = run(*card, "--kvn", "30", "list")
    assert code == 0 and "warning: this card opened its secure channel with the well-known test key" in err
    code, out, err = run(*card, "--security-level", "enc", "put-key", "--new-kvn", "31", "--new-key", NEW_KEY)
    assert code == 0, err
    assert "key set 31 written" in out
    code, out, err = run(*card, "list", "--json", "-K", "0x31", "-k", NEW_KEY)
    assert code == 0, err
    assert "warning" not in err and json.loads(out)[0]["aid"] == "A000000151000000"


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("gpchannel, version ")
    assert run("-V")[1] == out


def test_ota_build_reads_its_kvn_in_hex_too(tmp_path: Path) -> None:
    store = ["--counter-store", str(tmp_path / "c.json"), "--tar", "B00001", "00A40004022FE2"]
    for kvn in ("0x01", "01", "1"):
        code, out, err = run("ota", "build", "--example", "scp03", "--kvn", kvn, "--json", *store)
        assert code == 0, err
        assert json.loads(out)["kvn"] == 1
