"""``gpchannel scp11 make-pki`` and ``--scp 11a|11b|11c`` against the emulator in process (the same sessions go
through pcscd in tests/emulator/test_scp11_yubikit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import cli


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp11") / "pki"
    result = run("scp11", "make-pki", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def options(pki: Path, variant: str, trust: str = "card-ca.cert.pem") -> list[str]:
    return [
        "--profile",
        str(pki / "card.toml"),
        "--scp",
        variant,
        "--scp11-key",
        str(pki / "oce.key.pem"),
        "--scp11-chain",
        str(pki / "oce-ca.cert.pem"),
        "--scp11-chain",
        str(pki / "oce.cert.pem"),
        "--scp11-trust",
        str(pki / trust),
    ]


def test_make_pki_writes_the_files(pki: Path) -> None:
    names = {p.name for p in pki.iterdir()}
    assert {"card.toml", "card-ca.cert.pem", "sd-13.key.pem", "oce-ca.cert.pem", "oce.key.pem"} <= names
    assert (pki / "oce.key.pem").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("variant", ["11a", "11b", "11c"])
def test_list_through_scp11(pki: Path, tmp_path: Path, variant: str) -> None:
    result = run("--emulator", str(tmp_path / "state"), *options(pki, variant), "list", "--json")
    assert result.exit_code == 0, result.output
    assert "A000000151000000" in result.stdout


def test_card_chain_from_another_ca_is_one_error_line(pki: Path, tmp_path: Path) -> None:
    result = run("--emulator", str(tmp_path / "state"), *options(pki, "11b", "oce-ca.cert.pem"), "list")
    assert result.exit_code != 0 and result.output.startswith("error: the card's certificate chain")


def test_scp11a_without_oce_key_is_a_usage_error(pki: Path, tmp_path: Path) -> None:
    result = run("--emulator", str(tmp_path / "state"), "--profile", str(pki / "card.toml"), "--scp", "11a", "list")
    assert result.exit_code != 0 and "error" in result.output.lower()


def test_generate_and_delete_keys(pki: Path, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    out = tmp_path / "pub.pem"
    result = run("--emulator", state, *options(pki, "11a"), "scp11", "generate-key", "--kvn", "02", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    result = run("--emulator", state, *options(pki, "11c"), "scp11", "generate-key", "--kvn", "03", "--replace", "02")
    assert result.exit_code == 0 and result.stdout.startswith("-----BEGIN PUBLIC KEY-----"), result.output
    refused = run("--emulator", state, *options(pki, "11b"), "scp11", "generate-key", "--kvn", "04")
    assert refused.exit_code != 0 and refused.output.startswith("error: ") and "6982" in refused.output
    result = run("--emulator", state, *options(pki, "11a"), "delete-key", "--kid", "13", "--kvn", "03")
    assert result.exit_code == 0 and "KID 13 KVN 03" in result.output, result.output
    again = run("--emulator", state, *options(pki, "11a"), "delete-key", "--kid", "13", "--kvn", "03")
    assert again.exit_code != 0 and again.output.startswith("error: ") and "6A88" in again.output
    usage = run("--emulator", state, *options(pki, "11a"), "delete-key")
    assert usage.exit_code == 2 and "--kid" in usage.output
    bad = run("--emulator", state, *options(pki, "11a"), "scp11", "generate-key", "--kid", "10", "--kvn", "02")
    assert bad.exit_code == 2
