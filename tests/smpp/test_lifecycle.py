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
                print(f"bridge cycle {cycle} step {step}: second bridge exit {code}")
                _alive(second, code, f"cycle {cycle}: second bridge")
                assert code == EXIT_TRANSPORT and "cannot serve SMPP" in second.output, second.output
            else:
                run(_esme_round(port, step))
            code = bridge.stop(SIGNALS[cycle % 2])
        finally:
            bridge.kill()
        deaths += code < 0
        print(f"bridge cycle {cycle} step {step}: exit {code}")  # the long run's tally (pytest -s)
        _alive(bridge, code, f"cycle {cycle}: bridge")
        assert code == EXIT_OK and "bridge: stopped" in bridge.output, bridge.output
    assert deaths == 0


# ------------------------------------------------------------------------------------ the server and its worker


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """An inventory (CSV: the header, then one card a line) of more cards than cycles."""
    from gpchannel.emulator.fleet import generate_fleet, write_inventory

    base = tmp_path_factory.mktemp("fleet")
    write_inventory(generate_fleet(base / "fleet", CYCLES + 10), base / "inventory.csv")
    return (base / "inventory.csv").read_text().splitlines()


def _token(data: Path) -> str:
    """An admin token in the store of ``data``, made by the command operators use (printed alone on stdout)."""
    made = Proc("server", "token", "create", "--data", str(data), "--name", "life-cycles", "--scope", "admin")
    assert made.wait() == EXIT_OK, made.output
    return made.output.split()[-1]


def _campaign(api: str, token: str, inventory: list[str]) -> None:
    """A campaign over ``inventory`` (rate 0.2/s, burst 1: about one SMS per life of a worker process, so that
    each start finds a job to send and binds to the SMS centre)."""
    body = {
        "name": "life cycles",
        "transport": "scp80",
        "apdus": ["00A4080C047F206F46", "00B0000004"],
        "target": "B00001",
        "inventory": {"format": "csv", "data": "\n".join(inventory) + "\n"},
        "settings": {"rate": 0.2, "burst": 1, "por_timeout": 3600},
    }
    request = urllib.request.Request(
        f"{api}/api/v1/campaigns",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 201


def _worker_cycles(data: Path, inventory: list[str], worker_only: bool) -> None:
    """The server (its API gets a one-card campaign at each start) or a --worker-only worker (one job claimed
    at a time, GPCHANNEL_WORKER_BATCH=1, from a campaign of every card made beforehand)."""
    smsc_port = free_port()
    smsc = SmscThread(smsc_port)
    deaths = 0
    listeners = ["--admin", "127.0.0.1:0", "--api", "127.0.0.1:0"]
    token = _token(data)
    if worker_only:
        server = Proc("server", "--data", str(data), *listeners)
        try:
            _campaign(server.wait_line("api http://").split()[-1], token, inventory)
            assert server.stop(signal.SIGTERM) == EXIT_OK, server.output
        finally:
            server.kill()
    try:
        for cycle in range(CYCLES):
            step = cycle % 4
            if step != 3:
                smsc.up()
            system_id = "refused" if worker_only and step == 2 else "ota"
            args = ["server", "--data", str(data), "--smpp", f"127.0.0.1:{smsc_port}", "--smpp-system-id", system_id]
            taken = None
            if worker_only:
                args.append("--worker-only")
            elif step == 2:  # bind failure: the API's port is taken
                taken = socket.create_server(("127.0.0.1", 0))
                args += ["--admin", "127.0.0.1:0", "--api", f"127.0.0.1:{taken.getsockname()[1]}"]
            else:
                args += listeners
            binds = smsc.binds
            proc = Proc(*args, "--log-level", "info", env={"GPCHANNEL_WORKER_BATCH": "1"})
            try:
                if taken is not None:
                    code = proc.wait()
                    taken.close()
                    deaths += code < 0
                    print(f"server cycle {cycle} step {step}: exit {code}")
                    _alive(proc, code, f"cycle {cycle}: server on a taken port")
                    assert code == EXIT_TRANSPORT and "cannot listen" in proc.output, proc.output
                    smsc.down()
                    continue
                if not worker_only:
                    _campaign(proc.wait_line("api http://").split()[-1], token, [inventory[0], inventory[1 + cycle]])
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
            print(f"{args[-1]} cycle {cycle} step {step}: exit {code}")  # the long run's tally (pytest -s)
            _alive(proc, code, f"cycle {cycle}: server")
            assert code == EXIT_OK, proc.output
            if step != 3:
                smsc.down()
    finally:
        smsc.close()
    assert deaths == 0


def test_server_with_its_scp80_worker_life_cycles(tmp_path: Path, inventory: list[str]) -> None:
    _worker_cycles(tmp_path, inventory, worker_only=False)


def test_worker_only_life_cycles(tmp_path: Path, inventory: list[str]) -> None:
    _worker_cycles(tmp_path, inventory, worker_only=True)


def test_refused_bind_is_a_status_error() -> None:
    smsc = SmscThread(free_port())
    smsc.up()
    try:
        with pytest.raises(SmppStatusError) as info:
            run(OtaSmppClient.connect("127.0.0.1", smsc.port, "refused", "pw", source_addr=OTA_SERVER))
        assert info.value.command_status == 0x0F
    finally:
        smsc.close()
