"""The worker process entry: its options (environment and command line), and worker-only processes on SQLite
running a campaign against a fleet of emulated cards behind the handset bridge, started both ways
(``python -m gpchannel.server.worker`` and ``gpchannel server --worker-only``) and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.bridge_thread import BridgeThread
from gpchannel.emulator.fleet import generate_fleet, write_inventory
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.server.campaigns import CampaignSettings, create_campaign
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.inventory import read_inventory
from gpchannel.server.inventory_import import import_inventory
from gpchannel.server.repository import JobState, JobTransport
from gpchannel.server.services import open_services
from gpchannel.server.worker import WorkerOptions, main, run_worker
from tests.server.test_fault import _wait_ready
from tests.smpp.conftest import free_port

MASTER_KEY = "A5" * 32


def test_options_from_the_environment() -> None:
    env = {
        "GPCHANNEL_WORKER_LEASE_SECONDS": "2.5",
        "GPCHANNEL_WORKER_BATCH": "7",
        "GPCHANNEL_WORKER_MAX_IN_FLIGHT": "9",
    }
    assert WorkerOptions.from_env({**env, "OTHER": "x"}) == WorkerOptions(lease_seconds=2.5, batch=7, max_in_flight=9)
    assert WorkerOptions.from_env({}) == WorkerOptions()
    with pytest.raises(ValueError, match="GPCHANNEL_WORKER_BATCH"):
        WorkerOptions.from_env({"GPCHANNEL_WORKER_BATCH": "many"})
    with pytest.raises(ValueError, match="positive"):
        WorkerOptions(lease_seconds=0)
    with pytest.raises(ValueError, match="batch"):
        WorkerOptions(batch=0)
    assert WorkerOptions.from_env({"GPCHANNEL_WORKER_SMPP_WINDOW": "50"}).smpp_window == 50
    assert WorkerOptions().smpp_window == 10  # SMPP 3.4's usual window unless the SMSC's contract says more
    with pytest.raises(ValueError, match="smpp_window"):
        WorkerOptions(smpp_window=0)


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPCHANNEL_WORKER_LEASE_SECONDS", "-1")
    assert main(["--db", "sqlite:///x.db", "--smpp", "127.0.0.1:1"]) == 2
    assert "positive" in capsys.readouterr().err


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerServices]:
    monkeypatch.setenv("GPCHANNEL_MASTER_KEY", MASTER_KEY)
    opened = open_services(ServerConfig(data_dir=tmp_path, db_url=f"sqlite:///{tmp_path / 'store.db'}"))
    try:
        yield opened
    finally:
        opened.repository.close()


def test_worker_needs_an_smsc(services: ServerServices) -> None:
    with pytest.raises(ValueError, match="--smpp"):
        asyncio.run(run_worker(services, stop=asyncio.Event()))


@pytest.mark.parametrize("entry", ["module", "server-cli"])
def test_worker_process_runs_a_campaign_against_the_fleet(services: ServerServices, tmp_path: Path, entry: str) -> None:
    fleet = generate_fleet(tmp_path / "fleet", 12)
    write_inventory(fleet, tmp_path / "inventory.csv")
    ids = import_inventory(services.repository, services.keys, read_inventory(tmp_path / "inventory.csv")).card_ids
    campaign = create_campaign(
        services.repository,
        name="w",
        transport=JobTransport.SCP80,
        script=[bytes.fromhex("80CA004200")],
        card_ids=list(ids),
        settings=CampaignSettings(rate=100, burst=20),
    )
    port = free_port()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "GPCHANNEL_MASTER_KEY": MASTER_KEY, "GPCHANNEL_WORKER_LEASE_SECONDS": "5"}
    if entry == "module":
        args = [sys.executable, "-m", "gpchannel.server.worker", "--db", url, "--smpp", f"127.0.0.1:{port}"]
    else:
        code = "from gpchannel.cli.main import main; main()"
        args = [sys.executable, "-c", code, "server", "--worker-only", "--db", url, "--data", str(tmp_path)]
        args += ["--smpp", f"127.0.0.1:{port}", "--log-level", "warning"]
    handsets = FleetHandsets(fleet)
    with BridgeThread(HandsetBridge(None, port=port, fleet=handsets)):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_ready(proc)
            deadline = time.monotonic() + 60
            while services.repository.campaign_progress(campaign).get(JobState.DONE, 0) < len(ids):
                assert time.monotonic() < deadline, services.repository.campaign_progress(campaign)
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    if entry == "module":
        assert "worker: stopped; claimed 12, sent 12" in out
    assert [fleet.ota_counter(c) for c in fleet] == [1] * 12
    assert handsets.totals().statuses == {0: 12}
