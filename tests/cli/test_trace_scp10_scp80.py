"""``gpchannel trace decode`` and ``gpchannel keys doctor`` on SCP10 sessions and SCP80 traffic captured from the
emulator in-process (``--trace-file`` of ``--scp 10 list`` and of ``ota send``), and on pySim's packets as lines:
every check passes with the right keys; a changed byte is marked at its exchange (exit 3); a wrong key is named;
a missing secret is said; a replayed counter is marked; concatenated SMs are joined; the doctor picks the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import cli
from tests.card.harness import profile_text
from tests.cli.test_scp10_cli import host_options
from tests.vectors import cases

OTA = """
[[ota.keysets]]
kvn = 1
kic = "000102030405060708090A0B0C0D0E0F"
kic_algorithm = "aes-cbc"
kid = "101112131415161718191A1B1C1D1E1F"
kid_algorithm = "aes-cmac"
"""


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def scp10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PKI, and one trace per "i" (transport, agreement) of a level 33 session listing the card."""
    out = tmp_path_factory.mktemp("scp10trace")
    assert run("scp10", "make-pki", "--out", str(out / "pki")).exit_code == 0
    for option in ("transport", "agreement"):
        target = ["--emulator", str(out / option), "--profile", str(out / "pki" / "card.toml")]
        trace = ["--trace-file", str(out / f"{option}.txt")]
        result = run(*target, *trace, *host_options(out / "pki", option), "--security-level", "33", "list")
        assert result.exit_code == 0, result.output
    return out


def key(out: Path, who: str) -> list[str]:
    return [f"--scp10-{who}-key", str(out / "pki" / ("card.key.pem" if who == "card" else "oce.key.pem"))]


@pytest.mark.parametrize("option", ["transport", "agreement"])
def test_scp10_session_decodes(scp10: Path, option: str) -> None:
    result = run("trace", "decode", str(scp10 / f"{option}.txt"), *key(scp10, "card"), *key(scp10, "oce"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (session,) = data["sessions"]
    assert session["protocol"] == "SCP10" and session["level"] == "33" and session["checked"] and session["ok"]
    secured = [e for e in data["exchanges"] if e["role"] == "secured"]
    assert secured and all({"C-MAC", "decrypted", "R-MAC"} <= set(e["checks"]) for e in secured)
    recorded = (scp10 / f"{option}.txt").read_text()
    assert all(f"plain C: {e['plain_command']}" in recorded for e in secured)  # the host's own plain commands
    assert all(f"plain R: {e['plain_response']}" in recorded for e in secured)


def test_scp10_transport_needs_only_the_card_key(scp10: Path) -> None:
    result = run("trace", "decode", str(scp10 / "transport.txt"), *key(scp10, "card"))
    assert result.exit_code == 0 and "session keys recovered ok" in result.stdout
    alone = run("trace", "decode", str(scp10 / "transport.txt"), *key(scp10, "oce"))
    assert alone.exit_code == 0 and "not checked" in alone.stdout and "SK.SD.AUT (--scp10-card-key)" in alone.stdout


@pytest.mark.parametrize(("given", "missing"), [("card", "--scp10-oce-key"), ("oce", "--scp10-card-key")])
def test_scp10_agreement_says_which_secret_is_missing(scp10: Path, given: str, missing: str) -> None:
    result = run("trace", "decode", str(scp10 / "agreement.txt"), *key(scp10, given))
    assert result.exit_code == 0, result.output
    assert "- not checked" in result.stdout and missing in result.stdout and "cannot be read" in result.stdout


def test_scp10_changed_byte_is_marked(scp10: Path, tmp_path: Path) -> None:
    lines = (scp10 / "transport.txt").read_text().splitlines()
    at = max(i for i, line in enumerate(lines) if line.startswith("C: 8C"))  # the last secured command
    lines[at] = lines[at][:-4] + ("00" if lines[at][-4:-2] != "00" else "01") + lines[at][-2:]
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines) + "\n")
    result = run("trace", "decode", str(bad), *key(scp10, "card"))
    assert result.exit_code == 3
    assert f"(line {at + 1}), c-mac" in result.stderr and f"(line {at + 1}) secured" in result.stdout


def test_scp10_wrong_key_and_doctor(scp10: Path) -> None:
    wrong = ["--scp10-card-key", str(scp10 / "pki" / "oce.key.pem")]
    result = run("trace", "decode", str(scp10 / "transport.txt"), *wrong)
    assert result.exit_code == 3 and "wrong-key" in result.stderr and "SK.SD.AUT" in result.stderr
    trace = str(scp10 / "agreement.txt")
    doctor = run("keys", "doctor", "--from-trace", trace, *wrong, *key(scp10, "card"), *key(scp10, "oce"))
    assert doctor.exit_code == 0, doctor.output
    assert "no          card key oce.key.pem" in doctor.stdout and "match       card key card.key.pem" in doctor.stdout
    assert "match       OCE key oce.key.pem" in doctor.stdout
    none = run("keys", "doctor", "--from-trace", trace, *wrong, "--json")
    assert none.exit_code == 3 and json.loads(none.stdout)["scp10"][0]["ok"] is False


@pytest.fixture(scope="module")
def ota(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two OTA sends to the emulator: two APDUs, then an expanded script of 40 (three concatenated SMs)."""
    out = tmp_path_factory.mktemp("ota")
    (out / "card.toml").write_text(profile_text() + OTA)
    target = ["--emulator", str(out / "state"), "--profile", str(out / "card.toml")]
    store = ["--counter-store", str(out / "counters.json"), "--ok-on-refusal"]
    result = run(*target, "--trace-file", str(out / "one.txt"), "ota", "send", *store, "00A40004023F00", "80CA9F7F00")
    assert result.exit_code == 0, result.output
    many = ["80CA9F7F00", "00A40004023F00"] * 20
    result = run(*target, "--trace-file", str(out / "many.txt"), "ota", "send", *store, "--expanded", *many)
    assert result.exit_code == 0, result.output
    submit = ["--spi", "1639", "00A40004023F00"]  # the PoR in an SMS-SUBMIT: 91xx, FETCH, TERMINAL RESPONSE
    result = run(*target, "--trace-file", str(out / "submit.txt"), "ota", "send", *store, *submit)
    assert result.exit_code == 0, result.output
    return out


def test_scp80_envelopes_decode(ota: Path) -> None:
    profile = ["--profile", str(ota / "card.toml")]
    result = run(*profile, "trace", "decode", str(ota / "many.txt"), "--json")
    assert result.exit_code == 0, result.output
    (packet,) = json.loads(result.stdout)["scp80"]
    assert packet["segments"] == 3 and packet["script"] == "expanded" and len(packet["apdus"]) == 40
    assert packet["checks"] == ["CC", "deciphered", "PoR CC"] and packet["por_status"] == "00 POR_OK"
    assert packet["keyset"] == "profile OTA key set 1" and packet["counter"] == "0000000002"
    keys = ["--kic", "000102030405060708090A0B0C0D0E0F", "--kid", "101112131415161718191A1B1C1D1E1F"]
    text = run("trace", "decode", str(ota / "one.txt"), *keys)
    assert text.exit_code == 0 and "remote APDUs (compact):" in text.stdout and "PoR: status 00 POR_OK" in text.stdout


def test_scp80_por_fetched_from_send_short_message(ota: Path) -> None:
    result = run("--profile", str(ota / "card.toml"), "trace", "decode", str(ota / "submit.txt"), "--json")
    assert result.exit_code == 0, result.output
    (packet,) = json.loads(result.stdout)["scp80"]
    assert packet["spi"] == "1639" and packet["por_status"] == "00 POR_OK" and "PoR CC" in packet["checks"]


def test_scp80_replay_wrong_key_and_doctor(ota: Path, tmp_path: Path) -> None:
    one, many = (ota / "one.txt").read_text(), (ota / "many.txt").read_text()
    replayed = tmp_path / "replayed.txt"
    replayed.write_text(one + many + one.split("\n", 1)[1])
    profile = ["--profile", str(ota / "card.toml")]
    result = run(*profile, "trace", "decode", str(replayed))
    assert result.exit_code == 3 and "packet 3" in result.stderr and "replay" in result.stderr
    wrong = ["--kic", "00" * 16, "--kid", "11" * 16]
    bad = run("trace", "decode", str(ota / "one.txt"), *wrong)
    assert bad.exit_code == 3 and "rc-cc-ds" in bad.stderr and "--kic/--kid" in bad.stderr
    doctor = run(*profile, "keys", "doctor", "--from-trace", str(ota / "one.txt"), *wrong)
    assert doctor.exit_code == 0, doctor.output
    assert "verifies with the KID key of profile OTA key set 1" in doctor.stdout
    none = run("keys", "doctor", "--from-trace", str(ota / "one.txt"), *wrong, "--json")
    assert none.exit_code == 3 and json.loads(none.stdout)["scp80"][0]["ok"] is False


def test_scp80_pysim_packet_lines(tmp_path: Path) -> None:
    """pySim's AES-128 command packet and PoR (sysmocom SJA5) as a file of packets in hex."""
    (command,) = cases("ota/pysim.json", "ota-sms-cmd-encode")[:1]
    (por,) = [c for c in cases("ota/pysim.json", "ota-sms-por-decode") if "test_resp_aes128" in c.source]
    lines = tmp_path / "packets.txt"
    lines.write_text(f"# pySim\n{command.expected['encoded_cmd']}\n{por.inputs['encoded_resp']}\n")
    keyset = command.inputs["keyset"]
    result = run("trace", "decode", str(lines), "--kic", keyset["kic"], "--kid", keyset["kid"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "packets" and data["ok"]
    assert data["scp80"][0]["apdus"] == ["00A40004023F00"] and data["scp80"][0]["responses"] == ["6132"]
