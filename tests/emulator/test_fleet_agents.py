"""``gpchannel fleet agents``: the cards of a generated fleet open their SCP81 sessions (PSK-TLS, GP Amendment B)
to a real ``gpchannel server`` process and run an scp81 campaign's jobs, each exactly once (a second round finds
nothing to do), with the results in the server's store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpchannel.cli.main import cli
from gpchannel.emulator.fleet import generate_fleet, write_inventory
from gpchannel.server.campaigns import create_campaign
from gpchannel.server.config import ServerConfig
from gpchannel.server.inventory import read_inventory
from gpchannel.server.inventory_import import import_inventory
from gpchannel.server.repository import JobState, JobTransport
from gpchannel.server.services import open_services

MASTER_KEY = "3C" * 32
GET_DATA_IIN = bytes.fromhex("80CA004200")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A gpchannel server process on SQLite: (its admin address, its database URL)."""
    monkeypatch.setenv("GPCHANNEL_MASTER_KEY", MASTER_KEY)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    code = "from gpchannel.cli.main import main; main()"
    args = [sys.executable, "-c", code, "server", "--admin", "127.0.0.1:0", "--api", "127.0.0.1:0", "--db", url]
    args += ["--data", str(tmp_path), "--log-level", "warning"]
    env = {**os.environ, "GPCHANNEL_MASTER_KEY": MASTER_KEY}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    admin = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("admin "):
                admin = line.split()[1]
            if line.strip() == "ready":
                break
        assert admin is not None, proc.communicate(timeout=10)
        yield admin, url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_fleet_cards_run_an_scp81_campaign_once(server: tuple[str, str], tmp_path: Path) -> None:
    admin, url = server
    fleet = generate_fleet(tmp_path / "fleet", 6)
    write_inventory(fleet, tmp_path / "fleet" / "inventory.csv")
    services = open_services(ServerConfig(data_dir=tmp_path, db_url=url))
    try:
        inventory = read_inventory(tmp_path / "fleet" / "inventory.csv")
        imported = import_inventory(services.repository, services.keys, inventory)
        chosen = list(imported.card_ids[:4])
        campaign = create_campaign(
            services.repository, name="scp81", transport=JobTransport.SCP81, script=[GET_DATA_IIN], card_ids=chosen
        )
        first = CliRunner().invoke(cli, ["fleet", "agents", str(tmp_path / "fleet"), "--server", admin])
        assert first.exit_code == 0, first.output
        assert "6 sessions, 6 completed, 4 script(s) run" in first.output
        jobs = services.repository.jobs(campaign_id=campaign)
        assert [j.state for j in jobs] == [JobState.DONE] * 4
        assert all([r.sw for r in j.results] == [0x9000] for j in jobs)
        again = CliRunner().invoke(cli, ["fleet", "agents", str(tmp_path / "fleet"), "--server", admin, "--cards", "3"])
        assert again.exit_code == 0, again.output
        assert "3 sessions, 3 completed, 0 script(s) run" in again.output
    finally:
        services.repository.close()


def test_unreachable_server_is_exit_1(tmp_path: Path) -> None:
    generate_fleet(tmp_path, 2)
    result = CliRunner().invoke(cli, ["fleet", "agents", str(tmp_path), "--server", "127.0.0.1:1", "--timeout", "2"])
    assert result.exit_code == 1
    assert "0 completed" in result.output
