"""``gpchannel inventory import`` and ``gpchannel campaign create|status|results|cancel`` against a running server
(run_server on free ports with an SMSC: the handset bridge in front of a fleet of emulated cards, all in a
background thread), a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import cli
from gpchannel.cli.settings import EXIT_FAILURE, EXIT_TRANSPORT, EXIT_USAGE
from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.fleet import Fleet, generate_fleet, write_inventory
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.server.app import ServerAddresses, run_server
from gpchannel.server.config import ServerServices
from tests.server.campaign_support import READ_SPN, RFM_TAR, SELECT_SPN, UPDATE_SPN, store
from tests.server.server_support import admin_token
from tests.smpp.conftest import free_port


@dataclass
class Live:
    services: ServerServices
    fleet: Fleet
    api_url: str
    master: bytes


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    master = os.urandom(16)
    fleet = generate_fleet(tmp_path / "fleet", 3, master_key=master)
    write_inventory(fleet, tmp_path / "inventory.csv")
    write_inventory(fleet, tmp_path / "references.csv", master_label="fleet")
    services = store(tmp_path)
    bridge = HandsetBridge(None, fleet=FleetHandsets(fleet), port=free_port())
    services = replace(services, config=replace(services.config, smpp=(f"127.0.0.1:{bridge.port}",)))
    monkeypatch.setenv("GPCHANNEL_API_TOKEN", admin_token(services))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    bound: list[ServerAddresses] = []

    def on_ready(addresses: ServerAddresses) -> None:
        bound.append(addresses)
        ready.set()

    async def both() -> None:
        bridge_stop = asyncio.Event()
        await bridge.start()
        serving = asyncio.create_task(bridge.serve(bridge_stop))
        try:
            await run_server(services.config, stop, on_ready=on_ready, services=services)
        finally:
            bridge_stop.set()
            await serving

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(both())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the server did not start"
        api = bound[0].api
        assert api is not None
        yield Live(services, fleet, f"http://127.0.0.1:{api[1]}", master)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        services.repository.close()


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_inventory_import_then_a_campaign_watched_to_the_end(live: Live, tmp_path: Path) -> None:
    api = ("--api", live.api_url)
    # References need the master key: refused without it, naming the row; imported with it.
    refused = _run("inventory", "import", str(tmp_path / "references.csv"), *api)
    assert (
        refused.exit_code == EXIT_USAGE
        and "line 2" in refused.output
        and "no master key named 'fleet'" in (refused.output)
    )
    imported = _run(
        "inventory", "import", str(tmp_path / "references.csv"), *api, env={"GPCHANNEL_MASTER_FLEET": live.master.hex()}
    )
    assert imported.exit_code == 0, imported.output
    assert "imported 3 card(s): 3 new, 0 updated, 3 SCP80 key set(s)" in imported.output
    assert live.master.hex() not in imported.output.lower()
    iccids = [c.iccid for c in live.fleet]
    created = _run(
        "campaign", "create", "--target", RFM_TAR, "--card", iccids[0], "--card", iccids[1], "--card", iccids[2],
        "--name", "spn", "--rate", "20", SELECT_SPN, UPDATE_SPN, READ_SPN, *api, "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    campaign_id = json.loads(created.output)["id"]
    watched = _run("campaign", "status", str(campaign_id), "--watch", "--interval", "0.05", *api)
    assert watched.exit_code == 0, watched.output
    assert f"campaign {campaign_id} (spn): finished; done 3" in watched.output
    listed = _run("campaign", "status", *api)
    assert listed.exit_code == 0 and listed.output.startswith("id  name") and "spn" in listed.output
    (entry,) = json.loads(_run("campaign", "status", *api, "--json").output)
    assert (entry["name"], entry["state"], entry["progress"]["done"]) == ("spn", "finished", 3)
    results = _run("campaign", "results", str(campaign_id), *api, "--json", "--fail-on-error")
    assert results.exit_code == 0, results.output
    rows = json.loads(results.output)
    assert sorted(r["iccid"] for r in rows) == sorted(iccids)
    assert all([x["sw"] for x in r["results"]] == ["9000"] * 3 for r in rows)
    table = _run("campaign", "results", str(campaign_id), *api)
    assert "41424344" in table.output and "done" in table.output


def test_cancel_and_errors(live: Live, tmp_path: Path) -> None:
    api = ("--api", live.api_url)
    assert _run("inventory", "import", str(tmp_path / "inventory.csv"), *api).exit_code == 0
    # SCP81 jobs wait for the cards' admin sessions (none comes here): cancel them all.
    created = _run(
        "campaign", "create", "--transport", "scp81", "--inventory", str(tmp_path / "inventory.csv"), "80CA006600",
        *api, "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    campaign_id = json.loads(created.output)["id"]
    cancelled = _run("campaign", "cancel", str(campaign_id), *api)
    assert cancelled.exit_code == 0 and f"campaign {campaign_id} cancelled: 3 card(s) not sent" in cancelled.output
    status = _run("campaign", "status", str(campaign_id), "--json", *api)
    assert json.loads(status.output)["progress"]["cancelled"] == 3
    failed = _run("campaign", "results", str(campaign_id), "--fail-on-error", *api)
    assert failed.exit_code == EXIT_FAILURE
    unknown = _run("campaign", "create", "--card", "8988211999999999999", "80CA006600", *api)
    assert unknown.exit_code == EXIT_FAILURE and "unknown card" in unknown.output
    bad = _run("campaign", "create", "--card", live.fleet.cards[0].iccid, "--rate", "0", "80CA006600", *api)
    assert bad.exit_code == EXIT_USAGE and "rate" in bad.output
    both = _run("campaign", "create", "80CA006600", *api)
    assert both.exit_code == EXIT_USAGE
    missing = _run("campaign", "status", "999", *api)
    assert missing.exit_code == EXIT_FAILURE and "no campaign 999" in missing.output
    down = _run("campaign", "status", "--api", "http://127.0.0.1:9")
    assert down.exit_code == EXIT_TRANSPORT


def test_server_campaign_options_are_checked(tmp_path: Path) -> None:
    for option in ("--campaign-rate", "--campaign-por-timeout", "--campaign-max-attempts"):
        result = _run("server", "--data", str(tmp_path), "--smpp", "127.0.0.1:2775", option, "0")
        assert result.exit_code == EXIT_USAGE and "campaign_" in result.output, result.output
