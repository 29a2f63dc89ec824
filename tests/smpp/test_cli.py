"""``gpchannel bridge`` as a process: the emulator behind it answers an OTA packet over SMPP, SIGTERM stops it
(exit 0, its counts printed); usage errors and a taken port."""

from __future__ import annotations

import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpchannel.cli.main import cli
from gpchannel.ota import ResponseStatus, Spi, unsecure_response
from gpchannel.ota.remote_apdu import CompactResponse
from gpchannel.smpp import OtaSmppClient
from tests.emulator.test_bridge import KEYS, KIC, KID, PROFILE, READ_SPN, SELECT_SPN, _packet
from tests.smpp.conftest import CARD_NUMBER, free_port, run

GPCHANNEL = [sys.executable, "-c", "from gpchannel.cli.main import main; main()"]


def _first_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            raise AssertionError("the bridge printed nothing")
    return proc.stdout.readline()


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*GPCHANNEL, "bridge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_bridge_process_with_the_emulator(tmp_path: Path) -> None:
    port = free_port()
    proc = _start("--smpp", f"127.0.0.1:{port}", "--emulator", str(tmp_path / "state"), "--profile", str(PROFILE))
    try:
        line = _first_line(proc)
        assert line.startswith(f"bridge: SMPP on 127.0.0.1:{port}, card"), line
        spi = Spi.from_bytes(bytes.fromhex("1619"))

        async def session() -> None:
            esme = await OtaSmppClient.connect("127.0.0.1", port, "ota", "pw", source_addr="4912345")
            async with esme:
                await esme.submit_packet(CARD_NUMBER, _packet(spi, 1, SELECT_SPN, READ_SPN))
                por, receipts = await esme.wait_por(10)
            response = unsecure_response(por.packet, spi=spi, kic=KIC, kid=KID, keyset=KEYS)
            assert (response.status, response.authenticated) == (ResponseStatus.POR_OK, True)
            assert CompactResponse.from_bytes(response.data).last.sw == 0x9000 and len(receipts) == 1

        run(session())
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "submit_sm accepted 1, refused 0; card took 1, refused 0; PoR deliver_sm 1, receipts 1" in out


def test_taken_port_is_exit_5() -> None:
    port = free_port()
    first = _start("--smpp", f"127.0.0.1:{port}", "--sink")
    try:
        assert "sink" in _first_line(first)
        second = _start("--smpp", f"127.0.0.1:{port}", "--sink")
        _, err = second.communicate(timeout=20)
        assert second.returncode == 5 and "cannot serve SMPP" in err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=20)
    assert first.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--sink", "--reader", "x"],
        ["--sink", "--smpp", "localhost"],
        ["--sink", "--smpp", "127.0.0.1:port"],
        ["--sink", "--smpp", "127.0.0.1:70000"],
    ],
)
def test_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["bridge", *args])
    assert result.exit_code == 2, result.output
