"""``gpchannel fleet generate|show`` and ``gpchannel bridge --fleet`` as a process: a generated fleet's cards answer
OTA packets over SMPP with their own keys, and the bridge reports what the fleet did when SIGTERM stops it."""

from __future__ import annotations

import csv
import signal
from pathlib import Path

from click.testing import CliRunner

from gpchannel.cli.main import cli
from gpchannel.emulator.fleet import Fleet, diversify_card_key
from gpchannel.ota import ResponseStatus, unsecure_response
from gpchannel.smpp import OtaSmppClient
from tests.emulator.test_fleet_handsets import KIC, KID, SPI, _keys, _packet
from tests.smpp.conftest import free_port, run
from tests.smpp.test_cli import _first_line, _start


def test_generate_writes_the_fleet_and_its_inventory(tmp_path: Path) -> None:
    master = "000102030405060708090A0B0C0D0E0F"
    result = CliRunner().invoke(
        cli,
        ["fleet", "generate", "--count", "12", "--dir", str(tmp_path / "f"), "--master-key", master, "--kvn", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "12 cards" in result.output
    fleet = Fleet.load(tmp_path / "f")
    assert len(fleet) == 12 and fleet.settings.kvn == 2
    assert fleet.cards[5].kid == diversify_card_key(bytes.fromhex(master), "KID", fleet.cards[5].iccid)
    with (tmp_path / "f" / "inventory.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 12
    shown = CliRunner().invoke(cli, ["fleet", "show", str(tmp_path / "f"), "--cards", "2"])
    assert shown.exit_code == 0 and "12 cards, 0 used" in shown.output
    assert fleet.cards[0].kic.hex().upper() not in shown.output


def test_generate_refuses_bad_master_key_and_existing_fleet(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["fleet", "generate", "--count", "1", "--dir", str(tmp_path), "--master-key", "00"])
    assert bad.exit_code == 2 and "16, 24 or 32" in bad.output
    assert runner.invoke(cli, ["fleet", "generate", "--count", "1", "--dir", str(tmp_path)]).exit_code == 0
    again = runner.invoke(cli, ["fleet", "generate", "--count", "1", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already holds a fleet" in again.output  # as card init: pass --force


def test_bridge_process_in_front_of_a_fleet(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["fleet", "generate", "--count", "3", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    fleet = Fleet.load(tmp_path)
    port = free_port()
    proc = _start("--smpp", f"127.0.0.1:{port}", "--fleet", str(tmp_path))
    try:
        line = _first_line(proc)
        assert line.startswith(f"bridge: SMPP on 127.0.0.1:{port}, fleet of 3 cards"), line

        async def session() -> None:
            esme = await OtaSmppClient.connect("127.0.0.1", port, "ota", "pw", source_addr="4912345")
            async with esme:
                for card in fleet.cards[:2]:
                    await esme.submit_packet(card.msisdn, _packet(card, 5), receipt=False)
                    por, _ = await esme.wait_por(10)
                    assert por.originator == card.msisdn
                    response = unsecure_response(por.packet, spi=SPI, kic=KIC, kid=KID, keyset=_keys(card))
                    assert response.status is ResponseStatus.POR_OK

        run(session())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "fleet: 2 cards reached, 2 command packets, 2 taken by the cards; PoR statuses 00: 2" in out
    assert [fleet.ota_counter(c) for c in fleet.cards] == [5, 5, 0]
