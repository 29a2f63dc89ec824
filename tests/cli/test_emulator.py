"""The gpchannel command against the emulator, in-process (``--emulator STATE_DIR --profile FILE``) and through
the real PC/SC stack (``--reader``: the same card served on a vpcd slot of pcscd): the card engine of
gpchannel.card with its atomic directory store, built from the example profile the first time."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import EXIT_AUTHENTICATION, EXIT_CARD_STATUS, cli
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from tests.emulator.pyscard_user import served
from tests.gp.test_cap import build_cap, components

pytest.importorskip("gpchannel.card.dispatcher", reason="the card emulator engine is not in this build")

EXAMPLE = Path(__file__).parents[2] / "examples" / "profiles" / "scp03.toml"
NEW_KEY = "000102030405060708090A0B0C0D0E0F"


@pytest.fixture(params=["in-process", pytest.param("pcsc", marks=pytest.mark.pcsc)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """The global options that reach the card: ``--emulator`` in-process, or ``--reader`` through pcscd."""
    profile = tmp_path / "card.toml"
    shutil.copy(EXAMPLE, profile)
    if request.param == "in-process":
        yield ["--emulator", str(tmp_path / "state"), "--profile", str(profile)]
        return
    readers: list[str] = request.getfixturevalue("pcscd_readers")
    with served(readers, tmp_path / "state", profile) as card:
        yield ["--reader", card.reader]


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
    # The card's ROM holds the Security Domain package besides the file just loaded.
    assert any(i["aid"] == "A0000001515350" and i["kind"] == "load-file" for i in items)
    load_files = [i for i in items if i["kind"] == "load-file" and i["aid"] != "A0000001515350"]
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


def test_create_ssd_then_use_its_keys(target: list[str]) -> None:
    ssd = "A00000015153504101"
    result = run(
        target, "--security-level", "enc", "create-ssd", ssd, "--privileges", "CardReset", "--ssd-key", NEW_KEY
    )
    assert result.exit_code == 0, result.output
    items = json.loads(run(target, "list", "--json").stdout)
    assert [i["kind"] for i in items if i["aid"] == ssd] == ["ssd"]
    # The new SSD answers with its own keys, and not with the ISD's.
    assert run(target, "--isd", ssd, "--key", NEW_KEY, "list").exit_code == 0
    assert run(target, "--isd", ssd, "list").exit_code != 0


def test_store_data_to_an_application(target: list[str]) -> None:
    result = run(target, "--security-level", "enc", "store-data", "--to", "A0000000871002FF49FF0589", "0102", "0304")
    assert result.exit_code == 0, result.output


def test_apdu_through_the_channel(target: list[str]) -> None:
    result = run(target, "--security-level", "33", "apdu", "--json", "80CA004200", "80CA00C100")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out[0]["sw"] == "9000" and out[0]["data"].startswith("42")


def _profile(
    tmp_path: Path, scp: str, i: str, kvn: int, key_type: str, keys: tuple[str, str, str] | None = None
) -> Path:
    text = EXAMPLE.read_text()
    for old, new in (
        ('scp = "03"', f'scp = "{scp}"'),
        ('i = "70"', f'i = "{i}"'),
        ("kvn = 0x30", f"kvn = 0x{kvn:02X}"),
        ('type = "aes"', f'type = "{key_type}"'),
    ):
        assert old in text
        text = text.replace(old, new, 1)
    if keys is not None:
        default = "404142434445464748494A4B4C4D4E4F"
        for name, value in zip(("enc", "mac", "dek"), keys, strict=True):
            text = text.replace(f'{name} = "{default}"', f'{name} = "{value}"', 1)
    path = tmp_path / f"card-{scp}-{i}-{kvn:02X}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("scp", "i", "kvn", "key_type", "level"),
    [
        ("03", "00", 0x20, "aes", "03"),
        ("03", "10", 0xFF, "aes", "03"),
        ("03", "70", 0x30, "aes", "33"),
        ("02", "15", 0x20, "des3", "03"),
        ("02", "55", 0xFF, "des3", "01"),
        ("02", "55", 0x30, "des3", "11"),
        ("01", "05", 0x01, "des3", "03"),
    ],
)
def test_protocols_detected(tmp_path: Path, scp: str, i: str, kvn: int, key_type: str, level: str) -> None:
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(_profile(tmp_path, scp, i, kvn, key_type))]
    result = run(target, "--security-level", level, "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["kind"] == "isd"
    info = json.loads(run(target, "info", "--json").stdout)["secure_channel"]
    assert (info["scp"], info["kvn"]) == (scp, f"{kvn:02X}")
    if scp == "03":
        assert info["i"] == i


@pytest.mark.parametrize(
    ("scp", "i", "key_type", "scheme"),
    [("03", "70", "aes", "kdf3"), ("02", "55", "des3", "emv"), ("02", "15", "des3", "visa2")],
)
def test_diversified_card_keys(tmp_path: Path, scp: str, i: str, key_type: str, scheme: str) -> None:
    # The KDD is the card's (derived from its identity, the same for the same profile): read it first.
    probe = ["--emulator", str(tmp_path / "probe"), "--profile", str(_profile(tmp_path, scp, i, 0x30, key_type))]
    kdd = bytes.fromhex(json.loads(run(probe, "info", "--json").stdout)["secure_channel"]["key_diversification_data"])
    master = StaticKeys.single(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), 0x30, KeyType[key_type.upper()])
    card_keys = diversify(master, Diversification(scheme), kdd)
    values = (card_keys.enc.hex(), card_keys.mac.hex(), card_keys.dek.hex())
    diversified = _profile(tmp_path, scp, i, 0x30, key_type, values)
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(diversified)]
    # The profile holds the card's (diversified) keys; the host is given the master key and the scheme.
    master_hex = master.enc.hex()
    result = run(target, "--key", master_hex, "--kdf", scheme, "list", "--json")
    assert result.exit_code == 0, result.output
    result = run(target, "--key", master_hex, "list")  # the master key itself is not the card's key
    assert result.exit_code == EXIT_AUTHENTICATION


def test_app_uses_the_applications_own_key_version(tmp_path: Path) -> None:
    """With --profile, --app opens the application's channel with the card's first key set of that application,
    not the profile's ISD KVN (30): an SSD whose only key set is 21 answers (issue 15; before, 6A88)."""
    options = ["--emulator", str(tmp_path / "state"), "--profile", str(EXAMPLE)]
    ssd = "A00000015153504101"
    made = CliRunner().invoke(cli, [*options, "create-ssd", ssd, "--ssd-key", "40" * 16, "--ssd-kvn", "0x21"])
    assert made.exit_code == 0, made.output
    listed = CliRunner().invoke(cli, [*options, "--key", "40" * 16, "--app", ssd, "apdu", "80CA006600"])
    assert "6A88" not in listed.output and listed.exit_code == 0, listed.output
    explicit = CliRunner().invoke(cli, [*options, "--key", "40" * 16, "--app", ssd, "--kvn", "0x30", "list"])
    assert explicit.exit_code == EXIT_CARD_STATUS and "6A88" in explicit.stderr  # --kvn still wins
