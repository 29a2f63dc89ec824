"""SCP80 end to end through the real PC/SC stack: ``gpchannel ota send --reader`` -> pcscd -> vpcd -> the emulator
(its state directory, built from a profile with ``[[ota.keysets]]``). RFM: UPDATE BINARY then READ BINARY of
EF_SPN through TAR B00001; RAM: GET STATUS through the ISD at 000000; a replayed counter gets 02 and does not
run; the card's counter survives a restart of the emulator (a new process view of the same state directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.main import cli
from gpchannel.emulator.app import EmulatedCard, open_card
from tests.card.harness import profile_text
from tests.io.conftest import Serve

pytestmark = pytest.mark.pcsc

OTA = """
[[ota.keysets]]
kvn = 1
kic = "000102030405060708090A0B0C0D0E0F"
kic_algorithm = "aes-cbc"
kid = "101112131415161718191A1B1C1D1E1F"
kid_algorithm = "aes-cmac"
"""
SELECT_SPN = "00A4080C047F206F46"


def _send(reader: str, options: list[str], *apdus: str, code: ExitCode = ExitCode.OK) -> dict[str, object]:
    result: Result = CliRunner().invoke(
        cli, ["ota", "send", *apdus, "--reader", reader, "--json", *options], catch_exceptions=False
    )
    assert result.exit_code == code, result.output
    out = json.loads(result.stdout)
    assert isinstance(out, dict)
    return out


def test_ota_through_pcscd(virtual_reader: Serve, tmp_path: Path) -> None:
    profile = tmp_path / "card.toml"
    profile.write_text(profile_text() + OTA)
    state = tmp_path / "state"
    options = ["--profile", str(profile), "--counter-store", str(tmp_path / "counters.json")]
    card, _ = open_card(state, profile)
    served = EmulatedCard(card)
    with virtual_reader(served) as reader:
        por = _send(reader.name, options, SELECT_SPN, "00D600000441424344")
        assert (por["status"], por["counter"], por["authenticated"], por["executed"]) == ("00", 1, True, 2)
        por = _send(reader.name, options, SELECT_SPN, "00B0000004")
        assert por["responses"] == [{"sw": "9000", "data": "41424344"}]
        por = _send(reader.name, options, "80F24002024F0000", "--tar", "000000")
        assert por["status"] == "00"
        responses = por["responses"]
        assert isinstance(responses, list) and responses[0]["sw"] == "9000"
        assert "A0000000871002FF49FF0589" in responses[0]["data"]  # the echo application of the profile
        # The emulator restarts on the same state directory (a new Card read from it, behind the same reader):
        # the counter (3) is still there, so a replay gets 02 and does not run.
        served.card, _ = open_card(state, profile)
        replay = _send(
            reader.name, [*options, "--counter", "3"], SELECT_SPN, "00D600000458585858", code=ExitCode.CARD_REFUSED
        )  # the card refused: exit 4 (cli/exit_codes.py)
        assert (replay["status"], replay["authenticated"]) == ("02", True)
        por = _send(reader.name, options, SELECT_SPN, "00B0000004")
        assert por["counter"] == 4 and por["responses"] == [{"sw": "9000", "data": "41424344"}]
