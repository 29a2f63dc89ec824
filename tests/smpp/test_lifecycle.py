"""Every life cycle of the processes that load the SMS stack, run as real processes: ``gpchannel bridge``,
``gpchannel server`` with its SCP80 worker, ``gpchannel server --worker-only``. Each goes through cycles of
start, bind failure (the port taken; for the worker, the SMSC refusing its bind), SIGTERM, SIGINT, its SMPP peer
gone (an ESME vanishing without unbind; the SMSC stopping under a bound worker, or absent at start) and back.
Each cycle asserts the documented exit code (0 after SIGTERM/SIGINT, 5 for a port the bridge or the server
cannot listen on) and, above all, never a death by signal (a negative returncode).

30 cycles of each by default; GPCHANNEL_LIFECYCLE_CYCLES=500 for the long run (docs/smpp.md has its figures).
Every wait is for an event: a line the process prints, a bind the SMS centre counts, the process's end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpchannel.errors import SmppStatusError
from gpchannel.smpp import DeliveryReceipt, OtaSmppClient
from gpchannel.smpp.esme import Esme
from tests.smpp.conftest import CARD_NUMBER, OTA_SERVER, free_port, run
from tests.smpp.lifecycle_support import Proc, SmscThread

CYCLES = int(os.environ.get("GPCHANNEL_LIFECYCLE_CYCLES", "30"))
EXIT_OK, EXIT_TRANSPORT = 0, 5
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _alive(proc: Proc, code: int, what: str) -> None:
    assert code >= 0, f"{what}: killed by signal {-code}:\n{proc.output}"


# ------------------------------------------------------------------------------------------------ the bridge


async def _esme_round(port: int, step: int) -> None:
    """step 0: a submit and its receipt, then unbind; 1: bind and vanish (no unbind); 3: stay bound (the bridge's
    stop unbinds it)."""
    if step == 1:
        esme = await Esme.bind("127.0.0.1", port, "vanishing", "pw")
        esme.session._writer.transport.abort()  # the peer is gone: no unbind, a reset connection
        await esme.session.wait_closed()
        return
    client = await OtaSmppClient.connect("127.0.0.1", port, "ota", "pw", source_addr=OTA_SERVER)
    async with client:
        sent = await client.submit_user_data(CARD_NUMBER, [b"\x02\x70\x00" + bytes(20)])
        receipt = await client.next_event(10)
        assert isinstance(receipt, DeliveryReceipt) and receipt.message_id == sent.message_ids[0]


def test_bridge_life_cycles() -> None:
    deaths = 0
    for cycle in range(CYCLES):
        step = cycle % 4
        port = free_port()
        bridge = Proc("bridge", "--smpp", f"127.0.0.1:{port}", "--sink")
        try:
            bridge.wait_line(f"bridge: SMPP on 127.0.0.1:{port}")
            if step == 2:  # bind failure: a second bridge on the taken port
                second = Proc("bridge", "--smpp", f"127.0.0.1:{port}", "--sink")
                code = second.wait()
                deaths += code < 0
                _alive(second, code, f"cycle {cycle}: second bridge")
                assert code == EXIT_TRANSPORT and "cannot serve SMPP" in second.output, second.output
            else:
                run(_esme_round(port, step))
            code = bridge.stop(SIGNALS[cycle % 2])
        finally:
            bridge.kill()
        deaths += code < 0
        _alive(bridge, code, f"cycle {cycle}: bridge")
        assert code == EXIT_OK and "bridge: stopped" in bridge.output, bridge.output
    assert deaths == 0


# ------------------------------------------------------------------------------------ the server and its worker


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data directory whose store holds a campaign of enough cards that each start of a worker finds one job
    to send (rate 0.2/s, burst 1: about one SMS per process life), so each binds to the SMS centre."""
    from gpchannel.emulator.fleet import generate_fleet, write_inventory

    base = tmp_path_factory.mktemp("lifecycle")
    fleet = generate_fleet(base / "fleet", 2 * CYCLES + 10)
    write_inventory(fleet, base / "inventory.csv")
    data = base / "data"
    data.mkdir()
    server = Proc("server", "--data", str(data), "--admin", "127.0.0.1:0", "--api", "127.0.0.1:0")
    try:
        api = server.wait_line("api http://").split()[-1]
        body = {
            "name": "life cycles",
            "transport": "scp80",
            "apdus": ["00A4080C047F206F46", "00B0000004"],
            "target": "B00001",
            "inventory": {"format": "csv", "data": (base / "inventory.csv").read_text()},
            "settings": {"rate": 0.2, "burst": 1, "por_timeout": 3600},
        }
        request = urllib.request.Request(
            f"{api}/api/v1/campaigns",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 (a local http URL)
            assert reply.status == 201
        assert server.stop(signal.SIGTERM) == EXIT_OK, server.output
    finally:
        server.kill()
    yield data


def _worker_cycles(data: Path, worker_only: bool) -> None:
    smsc_port = free_port()
    smsc = SmscThread(smsc_port)
    deaths = 0
    mode = ["--worker-only"] if worker_only else ["--admin", "127.0.0.1:0", "--api", "127.0.0.1:0"]
    try:
        for cycle in range(CYCLES):
            step = cycle % 4
            if step != 3:
                smsc.up()
            system_id = "refused" if worker_only and step == 2 else "ota"
            args = ["server", "--data", str(data), "--smpp", f"127.0.0.1:{smsc_port}", "--smpp-system-id", system_id]
            taken = None
            if step == 2 and not worker_only:  # bind failure: the API's port is taken
                taken = socket.create_server(("127.0.0.1", 0))
                mode_args = ["--admin", "127.0.0.1:0", "--api", f"127.0.0.1:{taken.getsockname()[1]}"]
            else:
                mode_args = mode
            binds = smsc.binds
            proc = Proc(*args, *mode_args, "--log-level", "info")
            try:
                if taken is not None:
                    code = proc.wait()
                    taken.close()
                    deaths += code < 0
                    _alive(proc, code, f"cycle {cycle}: server on a taken port")
                    assert code == EXIT_TRANSPORT and "cannot listen" in proc.output, proc.output
                    smsc.down()
                    continue
                proc.wait_line("ready")
                if step in (2, 3):  # the SMSC refuses the bind, or is not there
                    proc.wait_line("SMPP bind failed")
                else:
                    smsc.wait_for("binds", binds + 1)
                    if step == 1:  # the SMSC goes away under the bound worker, and comes back
                        smsc.down()
                        smsc.up()
                code = proc.stop(SIGNALS[cycle % 2])
            finally:
                proc.kill()
            deaths += code < 0
            _alive(proc, code, f"cycle {cycle}: server")
            assert code == EXIT_OK, proc.output
            if step != 3:
                smsc.down()
    finally:
        smsc.close()
    assert deaths == 0


def test_server_with_its_scp80_worker_life_cycles(store: Path) -> None:
    _worker_cycles(store, worker_only=False)


def test_worker_only_life_cycles(store: Path) -> None:
    _worker_cycles(store, worker_only=True)


def test_refused_bind_is_a_status_error() -> None:
    smsc = SmscThread(free_port())
    smsc.up()
    try:
        with pytest.raises(SmppStatusError) as info:
            run(OtaSmppClient.connect("127.0.0.1", smsc.port, "refused", "pw", source_addr=OTA_SERVER))
        assert info.value.command_status == 0x0F
    finally:
        smsc.close()

