"""SCP81 admin sessions per second: N emulated card agents (emulator/agent.py, default 500) running GP Amendment B
sessions at once against ONE ``gpchannel server`` process on loopback (PSK-TLS admin listener + job API, SQLite).

Setup (not timed): the server is started as a subprocess on free ports with a fresh data directory; N cards are
registered through the job API (``POST /api/v1/cards``: ICCID, PSK identity, a random 16-byte PSK) and one job
is queued for each (``POST /api/v1/jobs``: INSTALL [for install and make selectable] of a Supplementary Security
Domain from the ROM SD package, a command that fails with 6A89 if it runs twice). The cards are in-memory
emulator cards (the same Card core as ``gpchannel card serve``; MemoryStore), built from one parsed profile.

Timed: all N agents start together in one asyncio loop (this process), each running one session: PSK-TLS
handshake, first POST, the job's script, its response POST, 204. Printed: sessions per second (N / wall time),
p50 / p99 of the per-session time, and the exactly-once check: every job is ``done`` in the server's database
with one R-APDU 9000, and every card ran exactly one script and holds the new SSD. The TLS handshake rate beside
``openssl s_server`` is A's bench/tls.py.

Run alone: ``python -m bench.scp81 [N]`` (or env ``GPCHANNEL_BENCH_AGENTS``).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.profile import mark_phase
from bench.timing import aim_note, cpu_seconds
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import CardState, LoadFile, MemoryStore
from gpchannel.emulator.agent import CardAgent, SessionStatus, SessionSummary
from gpchannel.emulator.app import SD_LOAD_FILE_AID, SD_MODULE_AID, emulator_applets
from gpchannel.errors import TransportError
from gpchannel.gp.install import InstallForInstall
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.host.commands import install_for_install_command
from gpchannel.io import event_loop

__all__ = ["Scp81Figures", "run"]

DEFAULT_AGENTS = 500
RATE_AIM = 300.0
"""sessions/s aimed at with 500 agents on one server process."""
SSD_AID = bytes.fromhex("A00000015153504101")
BASE_PROFILE = """
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


@dataclass(frozen=True)
class Scp81Figures:
    agents: int
    seconds: float
    p50: float
    p99: float
    completed: int
    jobs_done_once: int
    cards_ran_once: int
    problems: tuple[str, ...]
    setup_seconds: float = 0.0
    server_cpu: float | None = None
    """CPU seconds of the server process during the timed sessions (None without ``/proc``)."""
    client_cpu: float | None = None
    """CPU seconds of this process (the agents: TLS client, card emulator) during the timed sessions."""

    @property
    def rate(self) -> float:
        return self.agents / self.seconds if self.seconds else 0.0

    @property
    def exactly_once(self) -> bool:
        """Every job done once with one 9000, every card ran one script, and nothing else went wrong."""
        return not self.problems and self.jobs_done_once == self.agents == self.cards_ran_once

    def lines(self) -> list[str]:
        ok = self.exactly_once
        return [
            f"{'SCP81 admin sessions, ' + str(self.agents) + ' agents at once':<48} {self.rate:>10.0f} sessions/s"
            f"   ({aim_note(self.rate, RATE_AIM)}; {self.seconds:.1f} s wall; setup through the API "
            f"{self.setup_seconds:.1f} s, not timed)",
            f"{'session time p50 / p99':<48} {1000 * self.p50:>10.0f} ms / {1000 * self.p99:.0f} ms",
            f"{'every job ran exactly once':<48} {'yes' if ok else 'NO'}: {self.jobs_done_once}/{self.agents} jobs "
            f"done with one 9000, {self.cards_ran_once}/{self.agents} cards ran one script"
            f"{', completed sessions ' + str(self.completed) if self.completed != self.agents else ''}",
            *(
                [f"{'CPU per session: server / agents':<48} {1000 * self.server_cpu / self.agents:>10.2f} ms / "
                 f"{1000 * self.client_cpu / self.agents:.2f} ms   (server {self.agents / self.server_cpu:.0f} "
                 "sessions per CPU second)"]
                if self.server_cpu and self.client_cpu else []
            ),
            *(f"  problem: {p}" for p in self.problems[:10]),
        ]  # fmt: skip


def _cards(count: int) -> list[tuple[str, bytes, Card]]:
    base = load_profile(BASE_PROFILE)
    base.load_files.append(LoadFile(SD_LOAD_FILE_AID, base.isd_aid, [SD_MODULE_AID]))
    out = []
    applets = emulator_applets()
    for n in range(count):
        state: CardState = base.copy()
        identity = f"bench-{n:05d}"
        psk = os.urandom(16)
        state.ota["scp81"] = {"psk_identity": identity, "psk": psk.hex(), "server": "127.0.0.1:1", "uri": "/gp/admin"}
        store = MemoryStore()
        store.commit(state)
        out.append((identity, psk, Card(state, store, random=os.urandom, applets=applets)))
    return out


_API_HEADERS: dict[str, str] = {}


def _bench_token(data: Path) -> str:
    """An admin token for the bench's API calls, its request rate unlimited (the setup is not what is timed)."""
    from datetime import UTC, datetime

    from gpchannel.server.config import ServerConfig
    from gpchannel.server.repository import Repository
    from gpchannel.server.tokens import create_token

    data.mkdir(parents=True, exist_ok=True)
    with Repository(ServerConfig(data_dir=data).database_url) as repo:
        return create_token(repo, name="bench", scopes=["admin"], now=datetime.now(UTC), limits={"rate": 1e9})


def _start_server(data: Path) -> tuple[subprocess.Popen[str], tuple[str, int], str]:
    from bench.profile import profiled

    args = ["-c", "from gpchannel.cli.main import main; main()", "server"]
    args += ["--admin", "127.0.0.1:0", "--api", "127.0.0.1:0", "--data", str(data), "--log-level", "warning"]
    command = [sys.executable, *profiled("scp81-server", args)]
    env = dict(os.environ, GPCHANNEL_MASTER_KEY=os.urandom(32).hex())
    _API_HEADERS["Authorization"] = f"Bearer {_bench_token(data)}"
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    admin: tuple[str, int] | None = None
    api: str | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("admin "):
            host, _, port = line.split()[1].rpartition(":")
            admin = (host, int(port))
        elif line.startswith("api "):
            api = line.split()[1]
        elif line.strip() == "ready":
            break
    if admin is None or api is None:
        proc.kill()
        raise TransportError(f"gpchannel server did not start (exit status {proc.wait()})")
    return proc, admin, api


async def _setup(api: str, cards: list[tuple[str, bytes, Card]]) -> list[int]:
    install = install_for_install_command(
        InstallForInstall(SD_LOAD_FILE_AID, SD_MODULE_AID, SSD_AID, Privileges.of(Privilege.SECURITY_DOMAIN))
    )
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(base_url=api, headers=_API_HEADERS) as http:

        async def one(n: int, identity: str, psk: bytes) -> int:
            async with limit:
                card = {"iccid": f"89882{n:014d}", "psk_identity": identity, "psk": psk.hex()}
                async with http.post("/api/v1/cards", json=card) as response:
                    response.raise_for_status()
                job = {"card": {"psk_identity": identity}, "apdus": [install.to_bytes().hex()], "transport": "scp81"}
                async with http.post("/api/v1/jobs", json=job) as response:
                    response.raise_for_status()
                    body: dict[str, Any] = await response.json()
                    return int(body["id"])

        return list(await asyncio.gather(*(one(n, i, p) for n, (i, p, _) in enumerate(cards))))


async def _check(api: str, job_ids: list[int]) -> tuple[int, list[str]]:
    problems: list[str] = []
    done = 0
    async with aiohttp.ClientSession(base_url=api, headers=_API_HEADERS) as http:
        for job_id in job_ids:
            async with http.get(f"/api/v1/jobs/{job_id}") as response:
                job: dict[str, Any] = await response.json()
            results = job.get("results") or []
            sws = [str(r.get("sw", "")).upper() for r in results]
            if job.get("state") == "done" and sws == ["9000"]:
                done += 1
            else:
                problems.append(f"job {job_id}: {job.get('state')} {job.get('reason')} {sws}")
    return done, problems


async def _sessions(
    admin: tuple[str, int], cards: list[tuple[str, bytes, Card]]
) -> tuple[float, list[float], list[SessionSummary]]:
    times: list[float] = []

    async def one(card: Card) -> SessionSummary:
        agent = CardAgent(card, server=f"{admin[0]}:{admin[1]}", retries=3, delay_seconds=1, timeout=60.0)
        start = time.perf_counter()
        summary = await agent.run()
        times.append(time.perf_counter() - start)
        return summary

    start = time.perf_counter()
    summaries = await asyncio.gather(*(one(card) for _, _, card in cards))
    return time.perf_counter() - start, times, list(summaries)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def run(agents: int | None = None) -> Scp81Figures:
    """Start a server, run the sessions, check them; raises TransportError when the server cannot start."""
    count = agents or int(os.environ.get("GPCHANNEL_BENCH_AGENTS", DEFAULT_AGENTS))
    with tempfile.TemporaryDirectory(prefix="gpchannel-bench-scp81-") as tmp:
        proc, admin, api = _start_server(Path(tmp))
        try:
            started = time.perf_counter()
            cards = _cards(count)
            job_ids = asyncio.run(_setup(api, cards))
            setup = time.perf_counter() - started
            mark_phase(proc.pid, start=True)
            server_before, client_before = cpu_seconds(proc.pid), time.process_time()
            wall, times, summaries = event_loop.run(_sessions(admin, cards))  # the agents on the server's loop
            mark_phase(proc.pid, start=False)
            server_after, client_cpu = cpu_seconds(proc.pid), time.process_time() - client_before
            server_cpu = None if server_before is None or server_after is None else server_after - server_before
            done, problems = asyncio.run(_check(api, job_ids))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    completed = sum(1 for s in summaries if s.status is SessionStatus.COMPLETED)
    once = 0
    for (identity, _, card), summary in zip(cards, summaries, strict=True):
        if summary.scripts == 1 and summary.apdus == 1 and card.state.application(SSD_AID) is not None:
            once += 1
        else:
            problems.append(f"card {identity}: {summary.describe()}")
    return Scp81Figures(
        count, wall, statistics.median(times) if times else 0.0, _percentile(times, 0.99), completed, done, once,
        tuple(problems), setup, server_cpu, client_cpu,
    )  # fmt: skip


def main() -> None:
    agents = int(sys.argv[1]) if len(sys.argv) > 1 else None
    for line in run(agents).lines():
        print(line)


if __name__ == "__main__":
    main()
