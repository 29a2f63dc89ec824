"""``gpchannel trace decode`` and ``gpchannel keys doctor`` end to end (issue 9).

- Traces the host tool itself records (``--trace`` / ``--trace-file``) against the emulator in-process
  (``--emulator DIR --profile``: examples/profiles/scp03.toml, or it with another protocol and i): SCP01 i=05/15,
  SCP02 i=55/15 and SCP03 i=70/00/10 at their levels, decoded back; every check passes and the plain commands and
  responses the inspector computes are the ones the host recorded beside the wire. The --trace format also round
  trips under hypothesis.
- GPShell's traces (tests/vectors/trace/gpshell.json, kaoh/globalplatform's cmocka tests; an independent source)
  written out in GPShell's own format and decoded with the case's keys; pcscd's real logs.
- Tampered traces: the exit code is 3 and the message names the exchange and the line.
- The key doctor offline (GPShell's INITIALIZE UPDATE exchanges), on a trace file, and against the emulator (keys
  static or diversified EMV / VISA2 / KDF3), where it must send only SELECT and INITIALIZE UPDATE.
- One real-stack test (``pcsc``): the host tool through pcscd and vpcd to the emulator, recorded and decoded.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from gpchannel.cli.main import EXIT_AUTHENTICATION, EXIT_CARD_STATUS, EXIT_TRANSPORT, EXIT_USAGE, cli
from gpchannel.cli.render import trace_printer, trace_writer
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.host.session import Exchange
from gpchannel.trace import TraceFormat, detect_format, parse_trace
from tests.codec.test_apdu import command_apdus
from tests.io.conftest import Serve, pcscd_readers, virtual_reader
from tests.trace.builders import gpshell_trace
from tests.vectors import VECTORS, VectorCase, cases, params

pytest.importorskip("gpchannel.card.dispatcher", reason="the card emulator engine is not in this build")

__all__ = ["pcscd_readers", "virtual_reader"]  # the PC/SC fixtures of tests/io, for the pcsc test below

PROFILES = Path(__file__).parents[2] / "examples" / "profiles"
GPSHELL = "trace/gpshell.json"
TEST_KEY = "404142434445464748494A4B4C4D4E4F"
WRONG_KEY = "000102030405060708090A0B0C0D0E0F"


def counter_random(n: int) -> bytes:
    """The host's challenges, fixed so that every run records the same SCP03 traces (i=70: the card's challenge
    is pseudo-random, from its counter)."""
    return bytes((0xA5 + k) & 0xFF for k in range(n))


def run(*args: str, stdin: str | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200"})
    return runner.invoke(cli, list(args), input=stdin, obj={"random": counter_random}, catch_exceptions=False)


def emulator(tmp_path: Path, profile: str) -> list[str]:
    path = tmp_path / profile
    shutil.copy(PROFILES / profile, path)
    return ["--emulator", str(tmp_path / "state"), "--profile", str(path)]


def variant(tmp_path: Path, scp: str, i: str, key_type: str, keys: tuple[bytes, bytes, bytes] | None = None) -> Path:
    """examples/profiles/scp03.toml with another protocol, i, key type and (optionally) ISD keys."""
    text = (PROFILES / "scp03.toml").read_text()
    changes = [('scp = "03"', f'scp = "{scp}"'), ('i = "70"', f'i = "{i}"'), ('type = "aes"', f'type = "{key_type}"')]
    if keys is not None:
        for name, key in zip(NAMES, keys, strict=True):
            changes.append((f'{name} = "{TEST_KEY}"', f'{name} = "{key.hex().upper()}"'))
    for old, new in changes:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / f"card-{scp}-{i}.toml"
    path.write_text(text)
    return path


NAMES = ("enc", "mac", "dek")


def record(tmp_path: Path, target: list[str], *args: str) -> Path:
    """Run a host command with --trace and --trace-file; both give the same trace."""
    trace = tmp_path / "trace.txt"
    result = run(*target, "--trace", "--trace-file", str(trace), *args)
    assert result.exit_code == 0, result.output
    assert without_warnings(result.stderr) == trace.read_text()
    return trace


def without_warnings(stderr: str) -> str:
    """stderr less the test key's warning (the profiles here use the test keys): the trace alone."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not line.startswith("warning: "))


def decode_json(*args: str) -> tuple[int, Any]:
    result = run("trace", "decode", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


LEVELS = [("03", "70", level) for level in ("01", "03", "11", "13", "33")] + [
    ("03", "00", "03"),
    ("03", "10", "03"),
    ("02", "55", "01"),
    ("02", "55", "03"),
    ("02", "55", "11"),
    ("02", "15", "03"),
    ("01", "05", "03"),
    ("01", "15", "01"),
]


@pytest.mark.parametrize(("scp", "i", "level"), LEVELS)
def test_host_trace_decodes(tmp_path: Path, scp: str, i: str, level: str) -> None:
    profile = variant(tmp_path, scp, i, "aes" if scp == "03" else "des3")
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(profile)]
    trace = record(tmp_path, target, "--security-level", level, "list")
    text = trace.read_text()
    assert text.startswith("# gpchannel trace v1\nC: ")
    code, report = decode_json(str(trace))
    assert code == 0 and report["ok"] is True and report["format"] == "gpchannel"
    (session,) = report["sessions"]
    assert session["protocol"] == f"SCP{scp}" and session["level"] == level and session["opened"]
    # The plain commands and responses the inspector computed are the ones the host recorded beside the wire.
    recorded = parse_trace(text)
    secured = [e for e in report["exchanges"] if e["role"] == "secured"]
    assert len(secured) >= 2
    for exchange in secured:
        host = recorded[exchange["index"]]
        host_plain_command = host.recorded_plain_command or host.command
        assert exchange["plain_command"] == str(host_plain_command)
        host_plain_response = host.recorded_plain_response or host.response
        assert exchange["plain_response"] == str(host_plain_response)
    if level != "01":  # C-DECRYPTION: the wire data is not the plain data
        assert any(e["plain_command"] != e["command"] for e in secured)


def test_host_trace_text_output(tmp_path: Path) -> None:
    trace = record(tmp_path, emulator(tmp_path, "scp03.toml"), "--security-level", "33", "list")
    result = run("trace", "decode", str(trace))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "keys: default test key, diversification none" in out
    assert "session 1: SCP03 i=70 KVN 30 level 33" in out and "every check passed" in out
    assert "[C-MAC ok, decrypted ok, R-MAC ok]" in out
    assert "plain 80F28002024F0000" in out  # GET STATUS of the ISD, decrypted
    assert TEST_KEY not in out.upper()


def test_global_key_options_and_stdin(tmp_path: Path) -> None:
    trace = record(tmp_path, emulator(tmp_path, "scp02.toml"), "--security-level", "03", "list")
    # The global options (here the profile's key set and i=55) serve as the decoder's keys.
    result = run("--profile", str(PROFILES / "scp02.toml"), "trace", "decode", "-", stdin=trace.read_text())
    assert result.exit_code == 0, result.output
    assert "session 1: SCP02 i=55 KVN 20 level 03" in result.stdout and "profile scp02.toml" in result.stdout
    # The command's own key options win over the global ones.
    result = run("--key", TEST_KEY, "trace", "decode", "--key", WRONG_KEY, str(trace))
    assert result.exit_code == EXIT_AUTHENTICATION
    # Without keys, the sessions are found and listed, nothing checked.
    code, report = decode_json("--key", WRONG_KEY, "--no-keys", str(trace))
    assert code == 0 and report["sessions"][0]["checked"] is False


def test_wrong_key_points_at_initialize_update_and_the_doctor(tmp_path: Path) -> None:
    trace = record(tmp_path, emulator(tmp_path, "scp03.toml"), "--security-level", "03", "list")
    result = run("trace", "decode", "--key", WRONG_KEY, str(trace))
    assert result.exit_code == EXIT_AUTHENTICATION
    message = " ".join(result.stderr.split())
    assert "the trace does not verify: exchange #1 (line 4), card-cryptogram" in message
    assert f"gpchannel keys doctor --from-trace {trace}" in message
    assert WRONG_KEY not in result.output.upper()


responses = st.builds(ResponseApdu, st.binary(max_size=300), st.integers(0, 0xFFFF))
exchanges = st.builds(
    Exchange, command_apdus(), responses, st.one_of(st.none(), command_apdus()), st.one_of(st.none(), responses)
)


@given(st.lists(exchanges, min_size=1, max_size=4))
def test_trace_format_round_trip(recorded: list[Exchange]) -> None:
    """What --trace prints (even on a narrow terminal) and --trace-file writes reads back as the same exchanges."""
    printed, written = io.StringIO(), io.StringIO()
    printer = trace_printer(Console(file=printed, width=40, color_system=None))
    writer = trace_writer(written)
    for exchange in recorded:
        printer(exchange)
        writer(exchange)
    assert printed.getvalue() == written.getvalue()
    assert detect_format(written.getvalue()) is TraceFormat.GPCHANNEL
    parsed = parse_trace(written.getvalue())
    assert [(e.command, e.response) for e in parsed] == [(x.command, x.response) for x in recorded]
    for read, x in zip(parsed, recorded, strict=True):
        assert read.recorded_plain_command == (x.plain_command if x.plain_command != x.command else None)
        assert read.recorded_plain_response == (x.plain_response if x.plain_response != x.response else None)


def _tamper(text: str, line_number: int, position: int) -> str:
    """Flip one hex digit of line ``line_number`` (1-based) at character ``position`` after the ``C: `` marker."""
    lines = text.splitlines()
    marker, _, hexpart = lines[line_number - 1].partition(": ")
    digit = hexpart[position]
    flipped = "0" if digit != "0" else "1"
    lines[line_number - 1] = f"{marker}: {hexpart[:position]}{flipped}{hexpart[position + 1 :]}"
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("where", ["mac", "data", "response"])
def test_tampered_host_trace(tmp_path: Path, where: str) -> None:
    trace = record(tmp_path, emulator(tmp_path, "scp03.toml"), "--security-level", "33", "list")
    text = trace.read_text()
    exchanges = parse_trace(text)
    target = next(e for e in exchanges if e.command.cla == 0x84 and e.command.ins == 0xF2)  # first GET STATUS
    lines = text.splitlines()
    if where == "response":
        assert target.response is not None and target.response.data
        line = next(n for n in range(target.line, len(lines) + 1) if lines[n - 1].startswith("R: "))
        position = 4  # a byte of the encrypted response data
    else:
        line = target.line
        hex_length = len(lines[line - 1]) - 3
        position = hex_length - 6 if where == "mac" else 12  # the last C-MAC byte (before Le), or the first data byte
    tampered = tmp_path / "tampered.txt"
    tampered.write_text(_tamper(text, line, position))
    result = run("trace", "decode", str(tampered))
    assert result.exit_code == EXIT_AUTHENTICATION, result.output
    message = " ".join(result.stderr.split())
    expected = "r-mac" if where == "response" else "c-mac"
    assert f"the trace does not verify: exchange #{target.index} (line {target.line}), {expected}" in message
    assert f"!!#{target.index} (line {target.line})" in result.stdout
    code, report = decode_json(str(tampered))
    assert code == EXIT_AUTHENTICATION and report["first_failure"] == target.index


def _gpshell_text(case: VectorCase, tamper: bool = False) -> tuple[str, list[str]]:
    """The case as GPShell's trace prints it, and the decoder's key options for it."""
    pairs, _ = gpshell_trace(case)
    lines = []
    for n, (command, response) in enumerate(pairs):
        raw = bytearray(command.to_bytes())
        if tamper and n == len(pairs) - 1:
            raw[5] ^= 0x01  # the first data byte of the last command
        lines.append(f"Wrapped command --> {raw.hex().upper()}")
        if response is not None:
            lines.append(f"Response <-- {response.to_bytes().hex().upper()}")
    i = case.inputs
    if "master_key" in i:
        keys = ["--key", i["master_key"], "--kdf", Diversification[i["derivation"]].value]
    elif "key_enc" in i:
        keys = ["--key-enc", i["key_enc"], "--key-mac", i["key_mac"], "--key-dek", i["key_dek"]]
    else:
        keys = ["--key-enc", i["enc"], "--key-mac", i["mac"], "--key-dek", i["dek"]]
    return "\n".join(lines) + "\n", keys


@pytest.mark.parametrize("case", params(GPSHELL))
def test_gpshell_traces(tmp_path: Path, case: VectorCase) -> None:
    text, keys = _gpshell_text(case)
    path = tmp_path / "gpshell.log"
    path.write_text(text)
    code, report = decode_json(*keys, str(path))
    assert code == 0 and report["ok"] is True and report["format"] == TraceFormat.GPSHELL.value
    (session,) = report["sessions"]
    assert session["protocol"] == f"SCP{case.kind[3:5]}"
    assert session["level"] == f"{int(case.inputs['security_level'], 16):02X}"
    plain = [e["plain_command"] for e in report["exchanges"][2:]]
    expected = [str(CommandApdu.from_bytes(bytes.fromhex(c))) for c in case.inputs.get("plain_cmds", [])]
    assert plain == expected[: len(plain)]
    # One byte changed in the last command: the decoder points at it.
    path.write_text(_gpshell_text(case, tamper=True)[0])
    result = run("trace", "decode", *keys, str(path))
    assert result.exit_code == EXIT_AUTHENTICATION
    last = len(report["exchanges"]) - 1
    line = text.count("\n", 0, text.rindex("Wrapped command")) + 1
    assert f"exchange #{last} (line {line})" in " ".join(result.stderr.split())


def test_gpshell_visa2_needs_kdf(tmp_path: Path) -> None:
    case = next(c for c in cases(GPSHELL, "scp01-trace") if "master_key" in c.inputs and "plain_cmds" in c.inputs)
    text, _ = _gpshell_text(case)
    path = tmp_path / "gpshell.log"
    path.write_text(text)
    result = run("trace", "decode", "--key", case.inputs["master_key"], str(path))
    assert result.exit_code == EXIT_AUTHENTICATION
    assert "exchange #0 (line 1), card-cryptogram" in " ".join(result.stderr.split())
    # The global --kdf serves the command too.
    assert run("--kdf", "visa2", "trace", "decode", "--key", case.inputs["master_key"], str(path)).exit_code == 0
    # The doctor on the same trace says how the key is used.
    result = run("keys", "doctor", "--key", case.inputs["master_key"], "--from-trace", str(path))
    assert result.exit_code == 0, result.output
    assert "the key works as master key with VISA2 diversification for SCP01 key set 01" in result.stdout


@pytest.mark.parametrize("scp", ["02", "03"])
def test_real_pcscd_logs(scp: str) -> None:
    """pcscd's own APDU log of a session (tests/vectors/trace/SOURCES.md): the first session opens and verifies,
    the second one (the host's key was all zeros) never opened; with the zero key, exchange #1 fails."""
    log = str(VECTORS / "trace" / f"pcscd-emulator-scp{scp}.log")
    code, report = decode_json(log)
    assert code == 0 and report["format"] == "pcscd"
    assert [(s["opened"], s["ok"]) for s in report["sessions"]] == [(True, True), (False, True)]
    result = run("trace", "decode", "--key", "00" * 16, log)
    assert result.exit_code == EXIT_AUTHENTICATION
    assert "exchange #1 (line" in result.stderr and "card-cryptogram" in result.stderr
    result = run("keys", "doctor", "--from-trace", log, "--key", "00" * 16)
    assert result.exit_code == EXIT_AUTHENTICATION and result.stdout.count("no combination reproduces") == 2


def test_bad_input() -> None:
    assert run("trace", "decode", "/nonexistent/trace.txt").exit_code == EXIT_USAGE
    result = run("trace", "decode", "-", stdin="hello\nworld\n")
    assert result.exit_code == 1 and "no APDU trace found" in result.stderr
    assert run("trace", "decode", "--scp01-i", "55", "-", stdin="C: 00A4040000\n").exit_code == EXIT_USAGE
    assert run("trace", "decode", "--scp02-i", "99", "-", stdin="C: 00A4040000\n").exit_code == EXIT_USAGE
    assert run("trace", "decode", "--key-enc", TEST_KEY, "-", stdin="C: 00A4040000\n").exit_code == EXIT_USAGE
    assert run("keys", "doctor", "--command", "8050000008" + "11" * 8 + "00").exit_code == EXIT_USAGE
    result = run("trace", "decode", "--format", "gpshell", "-", stdin="C: 00A4040000\nR: 9000\n")
    assert result.exit_code == 1 and "no exchange of the gpshell format" in result.stderr


# -- the key doctor -------------------------------------------------------------------------------------------------
DOCTOR_CASES = [c for c in cases(GPSHELL) if "initialize_update_cmd" in c.inputs]


@pytest.mark.parametrize("case", DOCTOR_CASES, ids=lambda c: f"{c.kind}:{c.source.rsplit('/', 1)[-1]}")
def test_doctor_offline(case: VectorCase) -> None:
    i = case.inputs
    key = i.get("master_key") or i.get("enc") or i.get("key_enc")
    assert isinstance(key, str)
    exchange = ["--command", i["initialize_update_cmd"], "--response", i["initialize_update_resp"]]
    result = run("keys", "doctor", "--key", key, "--json", *exchange)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    scheme = Diversification[i["derivation"]].value if "derivation" in i else "none"
    assert report["match"]["diversification"] == scheme
    assert report["protocol"] == f"SCP{case.kind[3:5]}"
    assert report["initialize_update"]["response"] == i["initialize_update_resp"].upper()
    result = run("keys", "doctor", "--key", WRONG_KEY, *exchange)
    assert result.exit_code == EXIT_AUTHENTICATION
    assert "no combination reproduces the card cryptogram" in result.stdout


def test_doctor_refused_initialize_update() -> None:
    result = run("keys", "doctor", "--command", "8050300008" + "11" * 8 + "00", "--response", "6A88")
    assert result.exit_code == EXIT_CARD_STATUS
    assert "INITIALIZE UPDATE answered 6A88" in result.stdout and "KVN" in result.stdout


@pytest.mark.parametrize(("profile", "scp"), [("scp03.toml", "03"), ("scp02.toml", "02")])
def test_doctor_against_the_emulator(tmp_path: Path, profile: str, scp: str) -> None:
    target = emulator(tmp_path, profile)
    trace = tmp_path / "doctor.txt"
    result = run(*target, "--trace-file", str(trace), "keys", "doctor", "--key", TEST_KEY, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["protocol"] == f"SCP{scp}" and report["match"] == {"diversification": "none", "role": "static key"}
    sent = [e.command.ins for e in parse_trace(trace.read_text())]
    assert sent == [0xA4, 0x50]  # SELECT and INITIALIZE UPDATE only: never EXTERNAL AUTHENTICATE
    result = run(*target, "--trace-file", str(trace), "keys", "doctor", "--key", WRONG_KEY)
    assert result.exit_code == EXIT_AUTHENTICATION
    assert "no EXTERNAL AUTHENTICATE sent" in result.stdout
    assert [e.command.ins for e in parse_trace(trace.read_text())] == [0xA4, 0x50]
    # What the doctor printed is enough to run it again offline.
    lines = {line.split(":")[0].strip(): line.split(":")[1].strip() for line in result.stdout.splitlines()[1:3]}
    offline = run("keys", "doctor", "--key", TEST_KEY, "--command", lines["C"], "--response", lines["R"])
    assert offline.exit_code == 0 and "the key works as static key" in offline.stdout


@pytest.mark.parametrize(
    ("scp", "i", "key_type", "scheme"),
    [
        ("03", "70", "aes", "kdf3"),
        ("02", "55", "des3", "emv"),
        ("02", "15", "des3", "visa2"),
        ("01", "05", "des3", "visa2"),
    ],
)
def test_doctor_finds_the_diversification(tmp_path: Path, scp: str, i: str, key_type: str, scheme: str) -> None:
    """A card whose keys are diversified from the test key: the doctor says so, and the trace decodes with --kdf."""
    probe = ["--emulator", str(tmp_path / "probe"), "--profile", str(variant(tmp_path, scp, i, key_type))]
    info = run(*probe, "info", "--json")
    kdd = bytes.fromhex(json.loads(info.stdout)["secure_channel"]["key_diversification_data"])
    master = StaticKeys.single(bytes.fromhex(TEST_KEY), 0x30, KeyType[key_type.upper()])
    card_keys = diversify(master, Diversification(scheme), kdd)
    profile = variant(tmp_path, scp, i, key_type, (card_keys.enc, card_keys.mac, card_keys.dek))
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(profile)]
    result = run(*target, "keys", "doctor", "--key", TEST_KEY, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["match"] == {"diversification": scheme, "role": "master key"}
    assert report["key_diversification_data"] == kdd.hex().upper()
    trace = tmp_path / "trace.txt"
    assert run(*target, "--trace-file", str(trace), "--key", TEST_KEY, "--kdf", scheme, "list").exit_code == 0
    assert run("trace", "decode", "--key", TEST_KEY, "--kdf", scheme, str(trace)).exit_code == 0
    assert run("trace", "decode", "--key", TEST_KEY, str(trace)).exit_code == EXIT_AUTHENTICATION


def test_doctor_on_a_host_trace_with_the_wrong_key(tmp_path: Path) -> None:
    target = emulator(tmp_path, "scp03.toml")
    trace = tmp_path / "trace.txt"
    result = run(*target, "--key", WRONG_KEY, "--trace-file", str(trace), "list")
    assert result.exit_code == EXIT_AUTHENTICATION  # the host stopped after INITIALIZE UPDATE
    result = run("keys", "doctor", "--key", TEST_KEY, "--from-trace", str(trace), "--json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["reports"]
    assert report["match"]["role"] == "static key" and report["index"] == 1 and report["line"] == 4
    assert run("keys", "doctor", "--key", WRONG_KEY, "--from-trace", str(trace)).exit_code == EXIT_AUTHENTICATION


# -- the real PC/SC stack ---------------------------------------------------------------------------------------------
DISTURBED = (EXIT_CARD_STATUS, EXIT_TRANSPORT)
"""What another PC/SC client of the shared pcscd (a reset, a SELECT on the same slot) does to a session."""


@pytest.mark.pcsc
def test_session_through_pcscd_decodes(tmp_path: Path, virtual_reader: Serve) -> None:
    """The host tool through pyscard, pcscd and vpcd to the emulator: the trace it records decodes and verifies,
    and the doctor works through the reader. On a machine where other PC/SC clients share pcscd, a session they
    disturb (reset, 6982 after their SELECT) is recorded again, up to three times; the checks stay the same."""
    from gpchannel.emulator.app import EmulatedCard, open_card

    card, _ = open_card(tmp_path / "state", PROFILES / "scp03.toml")
    trace = tmp_path / "pcsc.txt"
    for _attempt in range(3):
        with virtual_reader(EmulatedCard(card)) as reader:
            args = ("--reader", reader.name, "--security-level", "33", "--trace-file", str(trace), "list", "--json")
            result = run(*args)
            doctor_result = run("--reader", reader.name, "keys", "doctor", "--key", WRONG_KEY)
        if result.exit_code not in DISTURBED and doctor_result.exit_code not in DISTURBED:
            break
    assert result.exit_code == 0, result.output
    assert any(item["kind"] == "isd" for item in json.loads(result.stdout))
    assert doctor_result.exit_code == EXIT_AUTHENTICATION, doctor_result.output
    assert "no combination reproduces the card cryptogram of SCP03 key set 30" in " ".join(doctor_result.stdout.split())
    code, report = decode_json(str(trace))
    assert code == 0 and report["ok"] is True
    (session,) = report["sessions"]
    assert session["protocol"] == "SCP03" and session["level"] == "33" and session["opened"]
    assert any(e["plain_command"] == "80F28002024F0000" for e in report["exchanges"])
