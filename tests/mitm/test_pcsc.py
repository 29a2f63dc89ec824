"""The attacker on a real PC/SC line: host -> attacker -> pcscd -> vpcd -> the emulator, for a subset of the
matrix (SCP03 at levels 01 and 33: a changed data byte, a replay, both impersonations), with the outcomes the
in-memory matrix asserts (tests/mitm/test_matrix.py, written from the specifications). Also the card served by
another process (``gpchannel card serve``), where the referee reads the store through its own session, and
``gpchannel demo mitm --pcsc``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpchannel.cli.main import cli
from gpchannel.mitm.attacks import Attack
from gpchannel.mitm.pcsc import ServedEmulator, free_vpcd_reader, reader_line
from gpchannel.mitm.scenario import profile_text, run_gp
from tests.mitm.test_matrix import check_gp_cell

pytestmark = pytest.mark.pcsc

ATTACKS = (Attack.MODIFY_DATA, Attack.REPLAY, Attack.IMPERSONATE_SERVER, Attack.IMPERSONATE_CARD)
CELLS = [(level, attack) for level in (0x01, 0x33) for attack in ATTACKS]


@pytest.fixture(scope="module")
def served(pcscd_readers: list[str]) -> Iterator[ServedEmulator]:
    with ServedEmulator() as emulator:
        yield emulator


@pytest.mark.parametrize(("level", "attack"), CELLS, ids=[f"03-{lv:02X}-{a.value}" for lv, a in CELLS])
def test_scp03_cell_through_pcscd(served: ServedEmulator, level: int, attack: Attack) -> None:
    o = run_gp(0x03, level, attack, transport=served.line(0x03))
    check_gp_cell(o, level, attack)
    assert o.events and o.events[0].label == "SELECT" and o.events[0].answer is not None


def test_a_read_at_01_sees_the_message_through_pcscd(served: ServedEmulator) -> None:
    o = run_gp(0x03, 0x01, Attack.READ, b"Hello", transport=served.line(0x03))
    check_gp_cell(o, 0x01, Attack.READ)
    assert "read back 'Hello'" in o.host


def _gpchannel() -> list[str]:
    script = Path(sys.executable).parent / "gpchannel"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from gpchannel.cli.main import main; main()"]


def test_a_card_served_by_another_process(pcscd_readers: list[str], tmp_path: Path) -> None:
    """``card serve`` of a state built from the demo profile: the referee reads the store over the line."""
    profile = tmp_path / "demo.toml"
    profile.write_text(profile_text(0x03))
    state = tmp_path / "state"
    reader, lock = free_vpcd_reader()
    log = tmp_path / "serve.log"
    with lock, log.open("wb") as sink:
        args = [*_gpchannel(), "card", "serve", "--profile", str(profile), "--state", str(state)]
        process = subprocess.Popen([*args, "--vpcd", f"127.0.0.1:{lock.port}"], stdout=sink, stderr=sink)
        try:
            line = reader_line(reader, timeout=20)
            modified = run_gp(0x03, 0x00, Attack.MODIFY_DATA, b"Hello", transport=line)
            check_gp_cell(modified, 0x00, Attack.MODIFY_DATA)  # the referee saw 'Jello' in the store
            refused = run_gp(0x03, 0x01, Attack.MODIFY_DATA, b"Hello", transport=line)
            check_gp_cell(refused, 0x01, Attack.MODIFY_DATA)
        finally:
            process.terminate()
            process.wait(10)


def test_demo_mitm_pcsc(pcscd_readers: list[str]) -> None:
    args = ["demo", "mitm", "--pcsc", "--scp", "03", "--level", "33", "--attack", "replay", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (cell,) = json.loads(result.output)["cells"]
    assert cell["attack"] == "replay" and cell["attack_succeeded"] is False


def test_demo_mitm_pcsc_refuses_scp80() -> None:
    result = CliRunner().invoke(cli, ["demo", "mitm", "--pcsc", "--scp", "80"])
    assert result.exit_code == 2 and "SCP80 travels by SMS" in result.output
