"""The gpchannel command line end to end against the fake GP card (tests/host/fakecard.py), in-process: every
command, --json outputs, --trace, key sources, errors a person can act on, and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import EXIT_AUTHENTICATION, EXIT_CARD_STATUS, EXIT_TRANSPORT, EXIT_USAGE, cli
from gpchannel.crypto.keys import StaticKeys
from tests.gp.test_cap import build_cap, components
from tests.host.fakecard import DEFAULT_KEY, FakeCard

WRONG_KEY = "00112233445566778899AABBCCDDEEFF"


def run(fake: FakeCard, *args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", **(env or {})})
    obj = {"transport_factory": lambda: fake, "random": lambda n: bytes(range(n))}
    return runner.invoke(cli, list(args), obj=obj, catch_exceptions=False)


def test_list_json() -> None:
    result = run(FakeCard(), "--kvn", "0x30", "--security-level", "mac", "list", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [i["kind"] for i in items] == ["isd", "application", "ssd", "application", "load-file"]
    assert items[0] == {
        "aid": "A000000151000000",
        "kind": "isd",
        "lifecycle": "SECURED",
        "lifecycle_byte": "0F",
        "privileges": "9EFE80",
        "privilege_names": items[0]["privilege_names"],
    }
    assert items[3]["lifecycle"] == "LOCKED(INSTALLED)"
    assert items[4]["modules"] == ["A000000062030101"]
    assert items[4]["lifecycle"] == "LOADED"


def test_list_table_scp02_detected_i55() -> None:
    result = run(FakeCard(protocol=2, i_param=0x55, kvn=0x20), "list")
    assert result.exit_code == 0, result.output
    assert "A0000000620301010C01" in result.stdout and "load-file" in result.stdout


def test_info_json() -> None:
    result = run(FakeCard(), "info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["secure_channel"] == {
        "scp": "03",
        "i": "70",
        "kvn": "30",
        "key_diversification_data": "00010203040506070809",
        "sequence_counter": "000002",
    }
    assert info["cplc"]["ic_fabricator"] == "4790"
    assert info["iin"] == "123456"
    assert info["card_recognition_data"]["scp"] == [{"scp": "03", "i": "70"}]
    assert info["extended_card_resources"]["free_volatile_memory"] == 0x086A
    assert [k["key_id"] for k in info["key_information"]] == [1, 2, 3]


def test_info_table() -> None:
    result = run(FakeCard(), "info")
    assert result.exit_code == 0, result.output
    assert "cplc.ic_serial_number" in result.stdout and "34295220" in result.stdout


def test_apdu_json_and_status_words() -> None:
    fake = FakeCard()
    result = run(fake, "--security-level", "enc", "apdu", "--json", "80CA006600", "80 CA 00 99 00")
    assert result.exit_code == EXIT_CARD_STATUS  # the second one is 6A88
    out = json.loads(result.stdout)
    assert out[0]["sw"] == "9000" and out[0]["data"].startswith("664D")
    assert out[1]["sw"] == "6A88" and "not found" in out[1]["meaning"]
    assert [c.p2 for c in fake.received if c.ins == 0xCA] == [0x66, 0x99]


def test_trace_shows_wire_and_plain() -> None:
    result = run(FakeCard(), "--trace", "apdu", "80CA004200")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()  # gpchannel's trace format (gpchannel.trace.ourformat)
    assert lines[0] == "# gpchannel trace v1"
    assert any(line.startswith("C: 8050000008") for line in lines)  # INITIALIZE UPDATE on the wire
    wrapped = next(n for n, line in enumerate(lines) if line.startswith("C: 84CA004208"))  # SM CLA, Lc 08 = C-MAC
    assert lines[wrapped + 1 : wrapped + 3] == ["plain C: 80CA004200", "R: 42031234569000"]
    assert not any(line.startswith("plain R:") for line in lines)  # level 01: the response is not protected


def test_wrong_key_says_what_to_do() -> None:
    fake = FakeCard()
    result = run(fake, "--key", WRONG_KEY, "list")
    assert result.exit_code == EXIT_AUTHENTICATION
    text = " ".join(result.stderr.split())
    assert "did not verify" in text and "card cryptogram could not be verified" in text
    assert "No EXTERNAL AUTHENTICATE was sent" in text
    kcv = StaticKeys.single(bytes.fromhex(WRONG_KEY)).kcvs()[0].hex().upper()
    assert kcv in result.stderr.replace("\n", "")
    assert WRONG_KEY not in result.stderr.upper() and DEFAULT_KEY.hex().upper() not in result.stderr.upper()
    assert not any(c.ins == 0x82 for c in fake.received)


def test_bad_key_text_is_not_echoed() -> None:
    result = run(FakeCard(), "--key", "404142434445464748494A4B4C4D4E4Z", "list")
    assert result.exit_code == EXIT_USAGE
    assert "4E4Z" not in result.output


def test_key_from_environment_and_split_keys() -> None:
    result = run(FakeCard(), "list", env={"GPCHANNEL_KEY": WRONG_KEY})
    assert result.exit_code == EXIT_AUTHENTICATION
    key = DEFAULT_KEY.hex()
    result = run(FakeCard(), "--key-enc", key, "--key-mac", key, "--key-dek", key, "list")
    assert result.exit_code == 0, result.output
    result = run(FakeCard(), "--key-enc", key, "list")
    assert result.exit_code == EXIT_USAGE


def test_profile(tmp_path: Path) -> None:
    profile = tmp_path / "card.toml"
    profile.write_text(
        '[isd]\naid = "A000000151000000"\nscp = "03"\ni = "70"\n'
        f'[[isd.keysets]]\nkvn = 0x30\ntype = "aes"\nenc = "{DEFAULT_KEY.hex()}"\nmac = "{DEFAULT_KEY.hex()}"\n'
        f'dek = "{DEFAULT_KEY.hex()}"\n'
    )
    fake = FakeCard()
    result = run(fake, "--profile", str(profile), "list", "--json")
    assert result.exit_code == 0, result.output
    assert fake.received[0].data == bytes.fromhex("A000000151000000")  # the profile's ISD, selected directly


def test_put_key() -> None:
    fake = FakeCard()
    new = "000102030405060708090A0B0C0D0E0F"
    result = run(fake, "--security-level", "enc", "put-key", "--new-kvn", "0x31", "--new-key", new)
    assert result.exit_code == 0, result.output
    assert fake.keysets[0x31].enc == bytes.fromhex(new)
    assert StaticKeys.single(bytes.fromhex(new)).kcvs()[0].hex().upper() in result.stdout


def test_put_key_diversified() -> None:
    fake = FakeCard()
    result = run(fake, "put-key", "--new-kvn", "0x31", "--new-key", DEFAULT_KEY.hex(), "--new-kdf", "kdf3")
    assert result.exit_code == 0, result.output
    assert fake.keysets[0x31].enc != DEFAULT_KEY


def test_delete_load_install(tmp_path: Path) -> None:
    fake = FakeCard()
    assert run(fake, "delete", "A0000000620301010C01").exit_code == 0
    result = run(fake, "delete", "A0000000620301010C01")
    assert result.exit_code == EXIT_CARD_STATUS and "6A88" in result.stderr
    cap = tmp_path / "hello.cap"
    cap.write_bytes(build_cap(components(filler=30)))
    result = run(fake, "load", str(cap), "--hash", "--block-size", "100")
    assert result.exit_code == 0, result.output
    assert "A0000000620301" in result.stdout
    assert [n for n, _ in fake.applied if n.startswith("load:")][-1].startswith("load:80:")
    result = run(fake, "install", "--cap", str(cap), "--instance", "A000000062030101FF", "--privileges", "CardReset")
    assert result.exit_code == 0, result.output
    assert any(e.aid == bytes.fromhex("A000000062030101FF") for _, e in fake.registry)


def test_store_data_and_set_status() -> None:
    fake = FakeCard()
    assert run(fake, "store-data", "--p1", "01", "0102", "0304").exit_code == 0
    assert fake.applied[-2:] == [("store:01:0", b"\x01\x02"), ("store:81:1", b"\x03\x04")]
    assert run(fake, "set-status", "lock", "A0000000620301010C01").exit_code == 0
    assert fake.applied[-1][0] == "status:40:80"
    assert run(fake, "set-status", "card-lock").exit_code == 0
    assert fake.applied[-1][0] == "status:80:7F"
    result = run(fake, "set-status", "terminate")
    assert result.exit_code == EXIT_USAGE and "--yes-terminate-the-card" in result.output
    assert run(fake, "set-status", "terminate", "--yes-terminate-the-card").exit_code == 0
    assert fake.applied[-1][0] == "status:80:FF"


def test_create_ssd() -> None:
    fake = FakeCard()
    result = run(fake, "create-ssd", "A00000015153504102", "--privileges", "CardReset")
    assert result.exit_code == 0, result.output
    assert any(e.aid == bytes.fromhex("A00000015153504102") for _, e in fake.registry)


@pytest.mark.parametrize("level", ["00", "01", "03", "13", "33", "clr", "mac+rmac", "enc+renc"])
def test_security_levels(level: str) -> None:
    result = run(FakeCard(), "--security-level", level, "apdu", "80CA004500")
    assert result.exit_code == 0, result.output
    assert "9000" in result.stdout


def test_bad_level_is_a_usage_error() -> None:
    result = run(FakeCard(), "--security-level", "02", "list")
    assert result.exit_code == EXIT_USAGE


def test_info_on_a_card_that_refuses_initialize_update() -> None:
    # KVN 0x40 does not exist on the card: INITIALIZE UPDATE answers 6A88, the rest is still shown.
    result = run(FakeCard(), "--kvn", "0x40", "info", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert "secure_channel" not in info
    assert info["iin"] == "123456"
    assert any("6A88" in p for p in info["problems"])


def test_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    import gpchannel.cli.main as main_module

    monkeypatch.setattr(main_module, "list_readers", lambda: ["Virtual PCD 00 00", "Virtual PCD 00 01"])
    result = CliRunner().invoke(cli, ["readers"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.splitlines() == ["Virtual PCD 00 00", "Virtual PCD 00 01"]
    monkeypatch.setattr(main_module, "list_readers", lambda: [])
    result = CliRunner().invoke(cli, ["readers"], catch_exceptions=False)
    assert result.exit_code == EXIT_TRANSPORT and "pcscd" in result.stderr


def test_reader_goes_to_the_pcsc_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """--reader (or GPCHANNEL_READER) opens gpchannel.io.transport.PcscTransport with the substring."""
    import sys
    import types

    opened: list[str] = []

    def pcsc(substring: str) -> FakeCard:
        opened.append(substring)
        return FakeCard()

    fake_module = types.ModuleType("gpchannel.io.transport")
    fake_module.PcscTransport = pcsc  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpchannel.io.transport", fake_module)
    result = CliRunner().invoke(cli, ["--reader", "PCD 00 01", "list", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = CliRunner(env={"GPCHANNEL_READER": "PCD 00 02"}).invoke(cli, ["list"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert opened == ["PCD 00 01", "PCD 00 02"]
