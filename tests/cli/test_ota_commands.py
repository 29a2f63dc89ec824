"""``gpchannel ota build|parse|send``: the OTA server side against the in-process emulator, the counter store,
and pySim's packets and PoRs (tests/vectors/ota/pysim.json) through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import cli
from gpchannel.cli.ota_commands import CounterStore, proactive_submit
from gpchannel.cli.settings import EXIT_CARD_STATUS
from gpchannel.cli.target import emulator_transport
from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import DecodeError
from gpchannel.ota import SmsDeliver, SmsPpDownload, secured_message
from tests.card.harness import profile_text
from tests.vectors import cases

KIC = "000102030405060708090A0B0C0D0E0F"
KID = "101112131415161718191A1B1C1D1E1F"
OTA = f"""
[[ota.keysets]]
kvn = 1
kic = "{KIC}"
kic_algorithm = "aes-cbc"
kid = "{KID}"
kid_algorithm = "aes-cmac"
"""
SELECT_SPN = "00A4080C047F206F46"
UPDATE_SPN = "00D600000441424344"
READ_SPN = "00B0000004"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def target(tmp_path: Path) -> list[str]:
    profile = tmp_path / "card.toml"
    profile.write_text(profile_text() + OTA)
    return ["--profile", str(profile), "--counter-store", str(tmp_path / "counters.json")]


def test_send_to_the_emulator_then_counters_move_on(target: list[str], tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    result = run("ota", "send", SELECT_SPN, UPDATE_SPN, "--emulator", state, *target, "--json")
    assert result.exit_code == 0, result.output
    por = json.loads(result.stdout)
    assert (por["status"], por["counter"], por["authenticated"], por["executed"]) == ("00", 1, True, 2)
    result = run("ota", "send", SELECT_SPN, READ_SPN, "--emulator", state, *target, "--json")
    por = json.loads(result.stdout)
    assert por["counter"] == 2 and por["responses"] == [{"sw": "9000", "data": "41424344"}]
    assert CounterStore(tmp_path / "counters.json").last("8988211000000000001", 1) == 2
    # The card persisted its counter too: a packet with an old counter is refused with 02, nothing runs.
    result = run("ota", "send", SELECT_SPN, "00D600000458585858", "--emulator", state, *target, "--counter", "2")
    assert result.exit_code == EXIT_CARD_STATUS, result.output  # refused: exit 4, the PoR printed all the same
    assert "PoR status 02 (CNTR_LOW)" in result.stdout
    assert result.stderr.startswith("error: the card refused the packet: PoR status 02 (CNTR_LOW); the card has")
    # The PoR as SMS-SUBMITs (SPI2 b6): fetched with FETCH, two SMs for a 176-byte record, reassembled.
    record = bytes(range(176)).hex().upper()
    script = ["00A4080C047F106F3C", "00DC0104B0" + record, "00B2010400"]
    result = run("ota", "send", *script, "--emulator", state, *target, "--json", "--spi", "1639")
    assert result.exit_code == 0, result.output
    por = json.loads(result.stdout)
    assert (por["status"], por["authenticated"], por["responses"]) == ("00", True, [{"sw": "9000", "data": record}])
    # Human-readable output of a good one.
    result = run("ota", "send", SELECT_SPN, READ_SPN, "--emulator", state, *target)
    assert "PoR status 00 (POR_OK), counter 4, verified" in result.stdout and "41424344 9000" in result.stdout


def test_build_then_deliver_then_parse(target: list[str], tmp_path: Path) -> None:
    """The round trip by hand: build ENVELOPEs, play them to the emulator as a handset would, parse the PoR."""
    result = run("ota", "build", SELECT_SPN, UPDATE_SPN, *target, "--json")
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    assert built["counter"] == 1 and built["kvn"] == 1
    transport = emulator_transport(tmp_path / "state", Path(target[1]))
    por = b""
    for envelope in built["envelope"]:
        response = transport.transmit(CommandApdu.from_bytes(bytes.fromhex(envelope)))
        if response.sw >> 8 == 0x61:
            por = transport.transmit(CommandApdu(0x00, 0xC0, 0, 0, le=response.sw & 0xFF)).data
    assert por[:3] == b"\x02\x71\x00"
    result = run("ota", "parse", por.hex(), *target[:2], "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["status"], info["counter"], info["authenticated"]) == ("00", 1, True)
    # A PoR changed in one byte does not verify.
    tampered = por[:-1] + bytes((por[-1] ^ 0x01,))
    result = run("ota", "parse", tampered.hex(), *target[:2])
    assert result.exit_code == 1 and "does not verify" in result.stderr


def test_build_formats(target: list[str]) -> None:
    long_script = [SELECT_SPN] + [UPDATE_SPN] * 20
    result = run("ota", "build", *long_script, *target, "--format", "sms", "--counter", "7")
    lines = result.stdout.split()
    assert len(lines) == 2  # concatenated
    first = SmsDeliver.from_bytes(bytes.fromhex(lines[0]))
    assert (first.pid, first.dcs, first.udhi) == (0x7F, 0xF6, True)
    result = run("ota", "build", SELECT_SPN, *target, "--format", "envelope", "--sim")
    apdu = CommandApdu.from_bytes(bytes.fromhex(result.stdout.strip()))
    assert (apdu.cla, apdu.ins) == (0xA0, 0xC2)
    SmsPpDownload.from_apdu(apdu)
    result = run("ota", "build", SELECT_SPN, *target, "--format", "packet", "--expanded", "--spi", "1201")
    assert result.exit_code == 0
    packet = bytes.fromhex(result.stdout.strip())
    assert packet[3:5] == bytes.fromhex("1201") and packet.endswith(
        bytes.fromhex("AA0B2209") + bytes.fromhex(SELECT_SPN)
    )
    # An explicit --counter never lowers the store: the next default is above the highest sent.
    result = run("ota", "build", SELECT_SPN, *target, "--json", "--format", "packet")
    assert json.loads(result.stdout)["counter"] == 10  # 7, then 8 and 9 by default
    run("ota", "build", SELECT_SPN, *target, "--counter", "3")
    assert CounterStore(Path(target[3])).last("8988211000000000001", 1) == 10


def test_usage_errors(target: list[str], tmp_path: Path) -> None:
    assert run("ota", "build", SELECT_SPN).exit_code == 2  # no keys
    assert run("ota", "build", SELECT_SPN, *target, "--tar", "B0").exit_code == 2
    assert run("ota", "build", SELECT_SPN, *target, "--spi", "zz").exit_code == 2
    assert run("ota", "build", SELECT_SPN, "--kic", KIC, "--counter-store", str(tmp_path / "c.json")).exit_code == 2
    assert run("ota", "build", "00A4", *target).exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    with pytest.raises(DecodeError):
        CounterStore(bad).last("x", 1)
    with pytest.raises(DecodeError):
        proactive_submit(b"\x90\x00")


# --------------------------------------------------------------------------------------------- independent vectors


_ALGS = {"aes_cbc": ("aes-cbc", "aes-cmac"), "triple_des_cbc2": ("3des-2key", "3des-2key")}


def _key_options(keyset: dict[str, object]) -> list[str]:
    kic_alg, kid_alg = _ALGS[str(keyset["algo_crypt"])]
    return [
        *("--kic", str(keyset["kic"]), "--kid", str(keyset["kid"]), "--kvn", str(keyset["kic_idx"])),
        *("--kic-algorithm", kic_alg, "--kid-algorithm", kid_alg),
    ]


@pytest.mark.parametrize(
    "case",
    [c for c in cases("ota/pysim.json", "ota-sms-cmd-encode") if c.expected["encoded_cmd"].startswith("00")],
    ids=lambda c: c.source,
)
def test_build_matches_pysim(case: object, tmp_path: Path) -> None:
    from tests.vectors import VectorCase

    assert isinstance(case, VectorCase)
    args = [
        *("ota", "build", str(case.inputs["apdu"]), "--format", "packet", "--counter", "0"),
        *("--spi", str(case.inputs["spi_bytes"]), "--tar", str(case.inputs["tar"])),
        *("--counter-store", str(tmp_path / "c.json"), *_key_options(case.inputs["keyset"])),
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == case.expected["encoded_cmd"].upper()


@pytest.mark.parametrize("case", cases("ota/pysim.json", "ota-sms-por-decode"), ids=lambda c: c.source)
def test_parse_matches_pysim(case: object) -> None:
    from tests.vectors import VectorCase

    assert isinstance(case, VectorCase)
    args = [
        *("ota", "parse", str(case.inputs["encoded_resp"]), "--json", "--spi", str(case.inputs["spi_bytes"])),
        *_key_options(case.inputs["keyset"]),
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["status_name"] == case.expected["response_status"].upper()
    assert info["executed"] == case.expected["number_of_commands"]
    last = info["responses"][-1]
    assert last["sw"] == case.expected["last_status_word"].upper()
    assert last["data"] == case.expected["last_response_data"].upper()
    assert secured_message(bytes.fromhex(case.inputs["encoded_resp"])).response


def test_parse_refuses_garbage(target: list[str]) -> None:
    for garbage in ("00", "027100", "0271000005", "zz"):
        result = run("ota", "parse", garbage, *target[:2])
        assert result.exit_code in (1, 2)
        assert "Traceback" not in result.output


def test_global_options_are_used(target: list[str], tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    args = ["--emulator", state, "--profile", target[1], "ota", "send", SELECT_SPN, READ_SPN, "--json"]
    result = run(*args, "--counter-store", target[3])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["responses"] == [{"sw": "9000", "data": "FFFFFFFF"}]


def test_counter_store_keeps_cards_apart(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "sub" / "counters.json")
    assert store.last("card-a", 1) == 0
    store.record("card-a", 1, 5)
    store.record("card-b", 1, 2)
    store.record("card-a", 2, 9)
    store.record("card-a", 1, 3)  # never lowered
    assert (store.last("card-a", 1), store.last("card-a", 2), store.last("card-b", 1)) == (5, 9, 2)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["counters.json"]  # no temporary file left
    assert json.loads((tmp_path / "sub" / "counters.json").read_text()) == {
        "card-a": {"1": 5, "2": 9},
        "card-b": {"1": 2},
    }


def test_send_exits_4_when_the_card_refuses(target: list[str], tmp_path: Path) -> None:
    """A PoR status other than 00 (09: unknown TAR) or a last status word that is not success: exit 4 with the PoR
    printed and one error line; ``--ok-on-refusal`` keeps 0."""
    state = str(tmp_path / "state")
    unknown_tar = ["ota", "send", SELECT_SPN, "--emulator", state, *target, "--tar", "BADBAD"]
    result = run(*unknown_tar)
    assert result.exit_code == EXIT_CARD_STATUS, result.output
    assert "PoR status 09 (TAR_UNKNOWN)" in result.stdout
    assert result.stderr == (
        "error: the card refused the packet: PoR status 09 (TAR_UNKNOWN); no application with this TAR on the card: "
        "check --tar\n"
    )
    assert run(*unknown_tar, "--ok-on-refusal").exit_code == 0
    # The packet is taken, the script runs, its last command is refused (6A82: no such file).
    missing_file = ["ota", "send", "00A4080C047F206F47", "--emulator", state, *target, "--json"]
    result = run(*missing_file)
    assert result.exit_code == EXIT_CARD_STATUS, result.output
    por = json.loads(result.stdout)
    assert (por["status"], por["responses"][-1]["sw"]) == ("00", "6A82")
    assert result.stderr.startswith("error: the card ran the script but its last command answered 6A82")
    result = run(*missing_file, "--ok-on-refusal")
    assert result.exit_code == 0 and result.stderr == ""
