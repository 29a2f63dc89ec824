"""``trace decode --scp11-session-keys`` on an SCP11 session recorded between our host and card (plain format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.serialization import Encoding

from gpchannel.cli.main import EXIT_AUTHENTICATION, EXIT_USAGE, cli
from gpchannel.scp.scp11 import Scp11Variant
from gpchannel.scp.scp11_pki import Scp11Pki, make_pki
from tests.scp.test_scp11 import NOW
from tests.trace.test_scp11_checker import hex_keys, record


@pytest.fixture(scope="module")
def pki() -> Scp11Pki:
    return make_pki(NOW)


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)


def write_trace(pki: Scp11Pki, tmp_path: Path) -> tuple[Path, str]:
    exchanges, keys, _ = record(pki, Scp11Variant.A)
    lines: list[str] = []
    for e in exchanges:
        assert e.response is not None
        lines += [f"C-APDU {e.command.to_bytes().hex()}", f"R-APDU {e.response.to_bytes().hex()}"]
    path = tmp_path / "scp11.trace"
    path.write_text("\n".join(lines) + "\n")
    return path, hex_keys(keys)


def test_decode_with_session_keys(pki: Scp11Pki, tmp_path: Path) -> None:
    path, keys = write_trace(pki, tmp_path)
    result = run("trace", "decode", "--json", str(path), "--scp11-session-keys", keys)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (session,) = data["sessions"]
    assert session["protocol"] == "SCP11" and session["failure"] is None
    assert keys.split(":")[1] not in result.output  # keys are never printed


def test_decode_with_a_key_file_and_another_sessions_keys(pki: Scp11Pki, tmp_path: Path) -> None:
    path, keys = write_trace(pki, tmp_path)
    (tmp_path / "other").mkdir()
    _, other = write_trace(pki, tmp_path / "other")
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# two sessions\n{other}\n{keys}\n")
    assert run("trace", "decode", str(path), "--scp11-session-keys", f"@{key_file}").exit_code == 0
    result = run("trace", "decode", str(path), "--scp11-session-keys", other)
    assert result.exit_code == EXIT_AUTHENTICATION and "receipt" in result.output


def test_malformed_session_keys_are_a_usage_error(pki: Scp11Pki, tmp_path: Path) -> None:
    path, _ = write_trace(pki, tmp_path)
    result = run("trace", "decode", str(path), "--scp11-session-keys", "00112233")
    assert result.exit_code == EXIT_USAGE and result.output.count("error:") == 1
    result = run("trace", "decode", str(path), "--scp11-session-keys", f"@{tmp_path / 'missing'}")
    assert result.exit_code == EXIT_USAGE


def test_keys_doctor_reads_scp11_sessions(pki: Scp11Pki, tmp_path: Path) -> None:
    path, keys = write_trace(pki, tmp_path)
    out = tmp_path / "pki"
    assert run("scp11", "make-pki", "--out", str(out)).exit_code == 0  # another PKI: its anchors do not fit
    good = tmp_path / "card-ca.pem"
    good.write_bytes(pki.card_ca.public_bytes(Encoding.PEM))
    oce = tmp_path / "oce-ca.pem"
    oce.write_bytes(pki.oce_ca.public_bytes(Encoding.PEM))
    args = ["keys", "doctor", "--from-trace", str(path), "--scp11-oce-ca", str(oce), "--scp11-session-keys", keys]
    result = run(*args, "--scp11-card-ca", str(good))
    assert result.exit_code == 0, result.output
    assert "SCP11a key agreement" in result.output and "session key set 1" in result.output
    result = run(*args, "--scp11-card-ca", str(out / "card-ca.cert.pem"), "--json")
    assert result.exit_code == EXIT_AUTHENTICATION
    (diagnosis,) = json.loads(result.stdout)["scp11"]
    assert "does not verify" in diagnosis["card_chain"] and diagnosis["session_keys"] == 0
