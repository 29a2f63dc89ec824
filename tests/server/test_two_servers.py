"""Past one machine: two ``gpchannel server`` processes in front of one PostgreSQL, sharing nothing else (each its
own admin listener and job API, its own data directory), card agents spread over both: every job exactly once.

The cards and their SCP81 jobs are registered through the first server's API (the second reads them from the
database); half the card agents run their session against one server, half against the other, all at once.
Then every card opens a second session on the *other* server (with SO_REUSEPORT: wherever the kernel sends it):
it must find nothing to run (the job is DONE in the shared store, so neither process hands it out again).
Checked: every job DONE with exactly one R-APDU 9000, read through both APIs; every card ran exactly one script
and holds the new Supplementary Security Domain (INSTALL [for install] of an existing AID fails with 6A89, so a
second run would show). Run twice: each process on a port of its own (the agents pick one), and both on one
port with SO_REUSEPORT (``gpchannel server --admin-reuse-port``: the kernel spreads the connections over the
processes). The processes are waited for by the lines they print (``admin ...``, ``api ...``, ``ready``), never
by a sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import LoadFile, MemoryStore
from gpchannel.emulator.agent import CardAgent, SessionStatus, SessionSummary
from gpchannel.emulator.app import SD_LOAD_FILE_AID, SD_MODULE_AID, emulator_applets
from gpchannel.gp.install import InstallForInstall
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.host.commands import install_for_install_command
from gpchannel.server.repository import Repository
from gpchannel.server.tokens import create_token

CARDS = 24
SSD_AID = bytes.fromhex("A00000015153504101")
PROFILE = """
[card]
iccid = "8988211000000000001"
lifecycle = "SECURED"

[isd]
aid = "A000000151000000"
scp = "03"
i = "70"

[[isd.keysets]]
kvn = 0x30
type = "aes"
enc = "404142434445464748494A4B4C4D4E4F"
mac = "404142434445464748494A4B4C4D4E4F"
dek = "404142434445464748494A4B4C4D4E4F"
"""


class Server:
    """One ``gpchannel server`` process: its admin address and API URL, read from its stdout."""

    def __init__(self, url: str, data: Path, master_key: str, admin: str = "127.0.0.1:0", shared: bool = False) -> None:
        data.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "gpchannel.cli.main", "server", "--admin", admin]
        command += ["--admin-reuse-port"] if shared else []
        command += ["--api", "127.0.0.1:0", "--db", url, "--data", str(data), "--log-level", "warning"]
        env = dict(os.environ, GPCHANNEL_MASTER_KEY=master_key)
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.admin = ""
        self.api = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("admin "):
                self.admin = line.split()[1]
            elif line.startswith("api "):
                self.api = line.split()[1]
            elif line.strip() == "ready":
                break
        assert self.admin and self.api, f"the server did not start (exit status {self.proc.poll()})"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def two_servers(url: str, tmp_path: Path, *, shared: bool) -> Iterator[tuple[Server, Server]]:
    """Two processes: each on a port of its own, or (``shared``) both on one port with SO_REUSEPORT."""
    master_key = os.urandom(32).hex()
    servers: list[Server] = []
    try:
        servers.append(Server(url, tmp_path / "a", master_key, shared=shared))
        admin = servers[0].admin if shared else "127.0.0.1:0"
        servers.append(Server(url, tmp_path / "b", master_key, admin, shared=shared))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def cards(count: int) -> list[tuple[str, bytes, Card]]:
    base = load_profile(PROFILE)
    base.load_files.append(LoadFile(SD_LOAD_FILE_AID, base.isd_aid, [SD_MODULE_AID]))
    applets = emulator_applets()
    out = []
    for n in range(count):
        state = base.copy()
        identity = f"two-{n:03d}"
        psk = os.urandom(16)
        state.ota["scp81"] = {"psk_identity": identity, "psk": psk.hex(), "server": "127.0.0.1:1", "uri": "/gp/admin"}
        store = MemoryStore()
        store.commit(state)
        out.append((identity, psk, Card(state, store, random=os.urandom, applets=applets)))
    return out


async def register(api: str, token: str, deck: list[tuple[str, bytes, Card]]) -> list[int]:
    install = install_for_install_command(
        InstallForInstall(SD_LOAD_FILE_AID, SD_MODULE_AID, SSD_AID, Privileges.of(Privilege.SECURITY_DOMAIN))
    )
    ids = []
    async with aiohttp.ClientSession(base_url=api, headers={"Authorization": f"Bearer {token}"}) as http:
        for n, (identity, psk, _) in enumerate(deck):
            card = {"iccid": f"89882{n:014d}", "psk_identity": identity, "psk": psk.hex()}
            async with http.post("/api/v1/cards", json=card) as response:
                assert response.status < 300, await response.text()
            job = {"card": {"psk_identity": identity}, "apdus": [install.to_bytes().hex()], "transport": "scp81"}
            async with http.post("/api/v1/jobs", json=job) as response:
                assert response.status < 300, await response.text()
                ids.append(int((await response.json())["id"]))
    return ids


async def sessions(deck: list[tuple[str, bytes, Card]], admins: list[str]) -> list[SessionSummary]:
    """Card n against ``admins[n % len(admins)]``, all at once."""
    agents = [
        CardAgent(card, server=admins[n % len(admins)], retries=3, delay_seconds=1, timeout=60.0)
        for n, (_, _, card) in enumerate(deck)
    ]
    return list(await asyncio.gather(*(agent.run() for agent in agents)))


async def job_states(api: str, token: str, ids: list[int]) -> list[tuple[str, list[str]]]:
    out = []
    async with aiohttp.ClientSession(base_url=api, headers={"Authorization": f"Bearer {token}"}) as http:
        for job_id in ids:
            async with http.get(f"/api/v1/jobs/{job_id}") as response:
                job: dict[str, Any] = await response.json()
            out.append((str(job.get("state")), [str(r.get("sw", "")).upper() for r in job.get("results") or []]))
    return out


@pytest.mark.parametrize("shared", [False, True], ids=["two-ports", "one-port-so-reuseport"])
def test_two_server_processes_on_one_postgresql_run_every_job_exactly_once(
    postgres_url: str, tmp_path: Path, shared: bool
) -> None:
    with Repository(postgres_url) as repo:  # migrates the fresh database once, before either process opens it
        token = create_token(repo, name="two-servers", scopes=["admin"], now=datetime.now(UTC), limits={"rate": 1e9})
    deck = cards(CARDS)
    with two_servers(postgres_url, tmp_path, shared=shared) as (a, b):
        if shared:  # one port: the kernel spreads the connections over the two processes
            assert a.admin == b.admin
        ids = asyncio.run(register(a.api, token, deck))
        first = asyncio.run(sessions(deck, [a.admin, b.admin]))
        # the second round: every card on the other server than the first time
        second = asyncio.run(sessions(deck, [b.admin, a.admin]))
        seen_by_a = asyncio.run(job_states(a.api, token, ids))
        seen_by_b = asyncio.run(job_states(b.api, token, ids))
    assert [s.status for s in first] == [SessionStatus.COMPLETED] * CARDS, [s.describe() for s in first]
    assert [(s.scripts, s.apdus) for s in first] == [(1, 1)] * CARDS
    assert [s.status for s in second] == [SessionStatus.COMPLETED] * CARDS, [s.describe() for s in second]
    assert [(s.scripts, s.apdus) for s in second] == [(0, 0)] * CARDS
    assert seen_by_a == seen_by_b == [("done", ["9000"])] * CARDS
    assert all(card.state.application(SSD_AID) is not None for _, _, card in deck)
