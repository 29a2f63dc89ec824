"""Campaigns at scale (issue 10, deliverable 6): cards per second and p50 / p99 per card, on SQLite and on
PostgreSQL with 1, 2 and 4 worker processes, and the exactly-once check of every run.

**SCP80** (default 10,000 cards, env ``GPCHANNEL_BENCH_CAMPAIGN_CARDS``): one campaign (GET DATA to the ISD's RAM
TAR, SPI 1619: CC, AES ciphering, counter) run by N ``python -m gpchannel.server.worker`` processes against the
handset bridge in sink mode (an SMPP server that accepts and receipts every valid submit_sm). Per card, each
worker claims the job (FOR UPDATE SKIP LOCKED on PostgreSQL), advances the card's counter in the send's
transaction, builds and secures the packet with the card's keys (AES-GCM-wrapped in the database), stores it as
SENT and hands it to SMPP (submit_sm, acknowledged). Timed: from the campaign's creation (the workers are up and
idle) until every job is SENT. Per card: from the claim (the lease's start: ``lease_until - lease``) to the SMS's
delivery receipt noted on the job (the sink receipts every submit_sm at once), waiting behind the other jobs of
its claimed batch included. Exactly once: every job SENT once with counter 1, every card's counter
1, and the bridge received exactly one submit_sm per card number.

**SCP81** (default 1,000 cards, env ``GPCHANNEL_BENCH_CAMPAIGN_AGENTS``): one campaign (INSTALL [for install] of
a Supplementary Security Domain, which fails with 6A89 if it runs twice) delivered by N ``gpchannel server``
processes (PSK-TLS admin listener; the cards split evenly between them) to N x (cards / N) emulated card agents
(emulator/agent.py, all started at once in this process; the card cores of bench/scp81.py). Timed: all the
sessions; per card: one whole admin session (handshake, first POST, script, response, 204). Exactly once: every
job DONE with one 9000, every card ran one script and holds the new SSD. SQLite runs one server process only
(one writer; several processes on one SQLite file is not a deployment anyone should run).

Set-up (not timed): cards and their keys are written in bulk (one transaction per 1,000 cards, keys wrapped by
the DbKeyProvider as an import would), since the inventory import's per-card transactions would dominate the
run time; the import itself is exercised by the tests. PostgreSQL is the throwaway cluster of
scripts/postgres.sh (a fresh database per run); without it the PostgreSQL rows say why they are missing.

Run alone: ``python -m bench.campaign`` (``--scp80-cards``, ``--scp81-cards``, ``--workers 1,2,4``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench.profile import profiled
from bench.timing import aim_note
from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.bridge_thread import BridgeThread
from gpchannel.server.campaigns import CampaignSettings, create_campaign
from gpchannel.server.config import ServerConfig, ServerServices
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import JobState, JobTransport
from gpchannel.server.services import open_services

__all__ = ["CampaignRow", "main", "run"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCP80_CARDS = 10_000
DEFAULT_SCP81_CARDS = 1_000
DEFAULT_WORKERS = (1, 2, 4)
LEASE_SECONDS = 600.0
"""Long: no lease is renewed during a run, so ``lease_until - LEASE_SECONDS`` is the claim time."""
MASTER_KEY = os.urandom(32).hex()
BATCH = 50
"""Jobs a worker claims per round: the per-card time includes the wait behind the others of its batch."""
SMPP_WINDOW = BATCH
"""submit_sm a worker has in flight before their _resp (the SMSC's window): a round's batch at once."""
GET_DATA_IIN = bytes.fromhex("80CA004200")
RUN_TIMEOUT = 300.0
PROGRESS_POLL = 0.05
"""Seconds between two looks at the campaign's progress: the end of a run is known to within this (0.25 s was
up to a tenth of a 2,000-card run)."""
AIMS: dict[tuple[str, str, int], float] = {("SCP80", "sqlite", 1): 500.0, ("SCP80", "postgresql", 4): 1000.0}
"""cards/s aimed at, claim to submit_sm: SQLite with one worker, PostgreSQL with four."""


@dataclass(frozen=True)
class CampaignRow:
    """One line of the table."""

    transport: str
    store: str
    processes: int
    cards: int
    seconds: float
    p50: float
    p99: float
    once: bool
    note: str = ""

    @property
    def rate(self) -> float:
        return self.cards / self.seconds if self.seconds else 0.0

    @property
    def aim(self) -> float | None:
        """cards/s aimed at for this configuration (AIMS), None where there is none."""
        return AIMS.get((self.transport, self.store, self.processes))

    def line(self) -> str:
        check = "yes" if self.once else "NO"
        aim = f"  ({aim_note(self.rate, self.aim)})" if self.aim is not None else ""
        return (
            f"{self.transport:<6} {self.store:<10} {self.processes:>4} {self.cards:>7} {self.rate:>10.0f} "
            f"{1000 * self.p50:>9.0f} {1000 * self.p99:>9.0f}   {check}{aim}{'  ' + self.note if self.note else ''}"
        )


HEADER = f"{'': <6} {'store':<10} {'proc':>4} {'cards':>7} {'cards/s':>10} {'p50 ms':>9} {'p99 ms':>9}   exactly once"


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


# --------------------------------------------------------------------------------------------- stores


def _postgres_server() -> str | None:
    """The URL of the scripts/postgres.sh cluster (started if needed), None if it cannot run here."""
    script = REPO / "scripts" / "postgres.sh"
    try:
        started = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=300, check=False)
        if started.returncode != 0:
            print(f"(PostgreSQL cannot run here: {(started.stderr or started.stdout).strip()})")
            return None
        return subprocess.run(
            [str(script), "url"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"(PostgreSQL cannot run here: {exc})")
        return None


@contextmanager
def _database(store: str, server: str | None, tmp: Path) -> Iterator[str]:
    """A fresh database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if store == "sqlite":
        yield f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    assert server is not None
    name = f"gpc_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(server).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def _services(url: str, data: Path) -> Iterator[ServerServices]:
    os.environ["GPCHANNEL_MASTER_KEY"] = MASTER_KEY
    services = open_services(ServerConfig(data_dir=data, db_url=url))
    try:
        yield services
    finally:
        services.repository.close()


class _KeyRows:
    """What DbKeyProvider.store_card_keys writes, kept as rows for one bulk insert."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def set_card_key(self, card_id: int, purpose: str, kvn: int, blob: bytes, algorithm: str) -> None:
        self.rows.append({"card_id": card_id, "purpose": purpose, "kvn": kvn, "blob": blob, "algorithm": algorithm})

    def card_key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, bytes, str] | None:
        return None


KeyMap = dict[tuple[str, int], tuple[bytes, str]]


def _seed(services: ServerServices, cards: Sequence[dict[str, Any]], keys: Sequence[KeyMap]) -> list[int]:
    """Write ``cards`` (iccid, psk_identity, msisdn, ota) with ids 1..n and their keys ((purpose, kvn) ->
    (key, algorithm)), wrapped by the DbKeyProvider under the bench's master key, in bulk."""
    from gpchannel.server.db import card_keys
    from gpchannel.server.db import cards as cards_table

    now = datetime.now(UTC)
    wrapper = DbKeyProvider(_KeyRows(), bytes.fromhex(MASTER_KEY))
    engine = services.repository.engine
    ids = list(range(1, len(cards) + 1))
    for start in range(0, len(cards), 1000):
        chunk = range(start, min(start + 1000, len(cards)))
        rows = [{"id": ids[n], **cards[n], "created_at": now, "updated_at": now} for n in chunk]
        sink = _KeyRows()
        wrapper.repository = sink
        for n in chunk:
            wrapper.store_card_keys(ids[n], keys[n])
        for row in sink.rows:
            row["updated_at"] = now
        with engine.begin() as c:
            c.execute(cards_table.insert(), rows)
            c.execute(card_keys.insert(), sink.rows)
    if services.repository.dialect == "postgresql":
        with engine.begin() as c:
            c.execute(text("SELECT setval(pg_get_serial_sequence('cards', 'id'), (SELECT max(id) FROM cards))"))
    return ids


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, GPCHANNEL_MASTER_KEY=MASTER_KEY)
    return subprocess.Popen(
        [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def _ready(proc: subprocess.Popen[str]) -> list[str]:
    """The lines a process printed up to ``ready``; RuntimeError if it ended first."""
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            return lines
        lines.append(line.strip())
    raise RuntimeError(f"the process ended before it was ready (exit status {proc.wait()})")


def _stop(procs: Sequence[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------- SCP80


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_scp80(store: str, url: str, workers: int, count: int, data: Path) -> CampaignRow:
    with _services(url, data) as services:
        cards = [
            {
                "iccid": f"8988219{n:012d}",
                "psk_identity": None,
                "msisdn": f"4917{n:08d}",
                "ota": {"msisdn": f"4917{n:08d}", "scp80": {"1": {"tar": "000000", "spi": "1619"}}, "scp80_kvn": 1},
            }
            for n in range(count)
        ]
        keys = [{("kic", 1): (os.urandom(16), "aes-cbc"), ("kid", 1): (os.urandom(16), "aes-cmac")} for _ in cards]
        ids = _seed(services, cards, keys)
        port = _free_port()
        bridge = HandsetBridge(None, port=port, queue_size=count + 100, track_destinations=True)
        with BridgeThread(bridge):
            args = ["-m", "gpchannel.server.worker", "--db", url, "--smpp", f"127.0.0.1:{port}", "--data", str(data)]
            args += ["--lease-seconds", str(LEASE_SECONDS), "--batch", str(BATCH), "--poll-interval", "0.05"]
            args += ["--link-rate", "1000000", "--max-in-flight", str(count + 1)]  # the sink sends no PoR
            args += ["--smpp-window", str(SMPP_WINDOW)]
            procs = [_spawn(profiled("scp80-worker", [*args, "--owner", f"bench-{n}"])) for n in range(workers)]
            try:
                for proc in procs:
                    _ready(proc)
                start = time.perf_counter()
                settings = CampaignSettings(rate=1e6, burst=10_000, max_attempts=1, por_timeout=3600)
                campaign = create_campaign(
                    services.repository, name="bench", transport=JobTransport.SCP80, script=[GET_DATA_IIN],
                    card_ids=ids, settings=settings,
                )  # fmt: skip
                while True:
                    progress = services.repository.campaign_progress(campaign)
                    if progress.get(JobState.QUEUED, 0) == 0:
                        break
                    if time.perf_counter() - start > RUN_TIMEOUT:
                        raise RuntimeError(f"SCP80 campaign not sent after {RUN_TIMEOUT} s: {progress}")
                    time.sleep(PROGRESS_POLL)
                seconds = time.perf_counter() - start
            finally:
                _stop(procs)
        latencies, once, note = _scp80_check(services, campaign, count, bridge)
    return CampaignRow(
        "SCP80", store, workers, count, seconds, statistics.median(latencies), _percentile(latencies, 0.99), once, note
    )


def _scp80_check(
    services: ServerServices, campaign: int, count: int, bridge: HandsetBridge
) -> tuple[list[float], bool, str]:
    from gpchannel.server.db import jobs, ota_counters

    lease = timedelta(seconds=LEASE_SECONDS)
    latencies = []
    problems = []
    with services.repository.engine.connect() as c:
        rows = c.execute(
            select(jobs.c.state, jobs.c.counter_used, jobs.c.updated_at, jobs.c.lease_until).where(
                jobs.c.campaign_id == campaign
            )
        ).all()
        counters: dict[int, int] = dict(
            c.execute(select(ota_counters.c.value, func.count()).group_by(ota_counters.c.value)).all()
        )
    for state, counter, updated, until in rows:
        if state != JobState.SENT.value or counter != 1:
            problems.append(f"{state}/{counter}")
        elif until is not None:
            claimed = _aware(until) - lease
            latencies.append((_aware(updated) - claimed).total_seconds())
    destinations = bridge.destinations or {}
    once = (
        not problems
        and len(rows) == count
        and counters == {1: count}
        and len(destinations) == count
        and set(destinations.values()) == {1}
    )
    note = (
        "" if once else f"jobs {len(rows)}, problems {problems[:3]}, counters {counters}, numbers {len(destinations)}"
    )
    return latencies or [0.0], once, note


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------- SCP81


AGENT_PROCESSES = 2
"""The emulated cards run in this many processes (fixed, so the rows compare the server side)."""


def _identity(n: int) -> str:
    return f"bench81-{n:06d}"


def _psk(seed: bytes, n: int) -> bytes:
    """The PSK of card ``n``: both the parent (which stores it) and the agent process (which uses it) derive it."""
    return hashlib.sha256(seed + n.to_bytes(4, "big")).digest()[:16]


def _agent_cards(seed: bytes, numbers: Sequence[int]) -> list[tuple[str, bytes, Any]]:
    """In-memory card cores (bench/scp81.py's base profile and applets) with the bench's identities and PSKs."""
    from bench.scp81 import BASE_PROFILE
    from gpchannel.card.dispatcher import Card
    from gpchannel.card.profile import load_profile
    from gpchannel.card.state import LoadFile, MemoryStore
    from gpchannel.emulator.app import SD_LOAD_FILE_AID, SD_MODULE_AID, emulator_applets

    base = load_profile(BASE_PROFILE)
    base.load_files.append(LoadFile(SD_LOAD_FILE_AID, base.isd_aid, [SD_MODULE_AID]))
    applets = emulator_applets()
    out = []
    for n in numbers:
        state = base.copy()
        psk = _psk(seed, n)
        state.ota["scp81"] = {
            "psk_identity": _identity(n),
            "psk": psk.hex(),
            "server": "127.0.0.1:1",
            "uri": "/gp/admin",
        }
        store = MemoryStore()
        store.commit(state)
        out.append((_identity(n), psk, Card(state, store, random=os.urandom, applets=applets)))
    return out


def agents_child(seed_hex: str, numbers: Sequence[int], admins: Sequence[tuple[str, int]]) -> None:
    """``python -m bench.campaign --agents-child``: build the cards, print ``ready``, wait for a line on stdin,
    run every card's session (card ``n`` against ``admins[n % len(admins)]``), print one JSON line per card."""
    from bench.scp81 import SSD_AID, _sessions
    from gpchannel.emulator.agent import SessionStatus

    cards = _agent_cards(bytes.fromhex(seed_hex), numbers)
    groups: dict[int, list[tuple[str, bytes, Any]]] = {}
    for n, card in zip(numbers, cards, strict=True):
        groups.setdefault(n % len(admins), []).append(card)
    print("ready", flush=True)
    sys.stdin.readline()

    async def sessions() -> list[tuple[float, list[float], list[Any]]]:
        return list(await asyncio.gather(*(_sessions(admins[k], group) for k, group in groups.items())))

    results = asyncio.run(sessions())
    for group, (_, times, summaries) in zip(groups.values(), results, strict=True):
        # _sessions records the times in completion order: only their distribution is reported
        for (identity, _, card), summary in zip(group, summaries, strict=True):
            once = (
                summary.status is SessionStatus.COMPLETED
                and summary.scripts == 1
                and card.state.application(SSD_AID) is not None
            )
            print(json.dumps({"card": identity, "once": once}))
        for seconds in times:
            print(json.dumps({"seconds": seconds}))
    sys.stdout.flush()


def run_scp81(store: str, url: str, servers: int, count: int, data: Path) -> CampaignRow:
    from bench.scp81 import SSD_AID
    from gpchannel.gp.install import InstallForInstall
    from gpchannel.gp.privileges import Privilege, Privileges
    from gpchannel.host.commands import install_for_install_command
    from gpchannel.server.app import PSK_KVN

    seed = os.urandom(16)
    with _services(url, data) as services:
        cards = [
            {"iccid": f"8988218{n:012d}", "psk_identity": _identity(n), "msisdn": None, "ota": {"psk_kvn": PSK_KVN}}
            for n in range(count)
        ]
        keys = [{("psk", PSK_KVN): (_psk(seed, n), "tls-psk")} for n in range(count)]
        ids = _seed(services, cards, keys)
        install = install_for_install_command(
            InstallForInstall(
                bytes.fromhex("A0000001515350"), bytes.fromhex("A000000151535041"), SSD_AID,
                Privileges.of(Privilege.SECURITY_DOMAIN),
            )
        ).to_bytes()  # fmt: skip
        campaign = create_campaign(
            services.repository, name="bench81", transport=JobTransport.SCP81, script=[install], card_ids=ids,
        )  # fmt: skip
        procs: list[subprocess.Popen[str]] = []
        children: list[subprocess.Popen[str]] = []
        admins: list[str] = []
        try:
            for _ in range(servers):
                proc = _spawn(profiled(
                    "scp81-server",
                    ["-c", "from gpchannel.cli.main import main; main()", "server", "--admin", "127.0.0.1:0",
                     "--api", "127.0.0.1:0", "--db", url, "--data", str(data), "--log-level", "warning"],
                ))  # fmt: skip
                procs.append(proc)
                admins += [line.split()[1] for line in _ready(proc) if line.startswith("admin ")]
            for k in range(AGENT_PROCESSES):
                numbers = ",".join(str(n) for n in range(k, count, AGENT_PROCESSES))
                child = subprocess.Popen(
                    [sys.executable, "-m", "bench.campaign", "--agents-child", seed.hex(), numbers, *admins],
                    cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )  # fmt: skip
                children.append(child)
                _ready(child)
            start = time.perf_counter()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            outputs = [child.communicate(timeout=RUN_TIMEOUT)[0] for child in children]
            seconds = time.perf_counter() - start
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            _stop(procs)
        records = [json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")]
        times = [float(r["seconds"]) for r in records if "seconds" in r]
        ran = sum(1 for r in records if r.get("once"))
        jobs = []
        after = 0
        while batch := services.repository.jobs(campaign_id=campaign, after_id=after, limit=1000):
            jobs += batch
            after = batch[-1].id
    done = sum(1 for j in jobs if j.state is JobState.DONE and [r.sw for r in j.results] == [0x9000])
    once = done == count == ran == len(times)
    note = "" if once else f"jobs done {done}/{count}, cards ran one script {ran}/{count}, sessions {len(times)}"
    return CampaignRow(
        "SCP81", store, servers, count, seconds, statistics.median(times or [0.0]), _percentile(times, 0.99), once,
        note,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- the table


def run(
    scp80_cards: int | None = None, scp81_cards: int | None = None, workers: Sequence[int] = DEFAULT_WORKERS
) -> list[CampaignRow]:
    """Every configuration; a row that cannot run is left out with a printed reason."""
    n80 = (
        scp80_cards
        if scp80_cards is not None
        else int(os.environ.get("GPCHANNEL_BENCH_CAMPAIGN_CARDS", DEFAULT_SCP80_CARDS))
    )
    n81 = (
        scp81_cards
        if scp81_cards is not None
        else int(os.environ.get("GPCHANNEL_BENCH_CAMPAIGN_AGENTS", DEFAULT_SCP81_CARDS))
    )
    server = _postgres_server()
    configs = [("sqlite", 1)] + ([("postgresql", n) for n in workers] if server is not None else [])
    rows: list[CampaignRow] = []
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="gpchannel-bench-campaign-") as tmp:
        for kind, runner, count in (("SCP80", run_scp80, n80), ("SCP81", run_scp81, n81)):
            if count <= 0:
                continue
            for store, processes in configs:
                data = Path(tmp) / f"{kind}-{store}-{processes}"
                data.mkdir()
                try:
                    with _database(store, server, Path(tmp)) as url:
                        rows.append(runner(store, url, processes, count, data))
                except (RuntimeError, OSError) as exc:
                    print(f"{kind} {store} x{processes}: not measured: {exc}")
                    continue
                print(rows[-1].line(), flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> list[CampaignRow]:
    parser = argparse.ArgumentParser(prog="python -m bench.campaign")
    parser.add_argument(
        "--scp80-cards", type=int, help=f"default {DEFAULT_SCP80_CARDS} (env GPCHANNEL_BENCH_CAMPAIGN_CARDS)"
    )
    parser.add_argument(
        "--scp81-cards", type=int, help=f"default {DEFAULT_SCP81_CARDS} (env GPCHANNEL_BENCH_CAMPAIGN_AGENTS)"
    )
    parser.add_argument("--workers", default="1,2,4", help="PostgreSQL worker / server process counts")
    parser.add_argument("--agents-child", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.agents_child:
        seed, numbers, *admins = args.agents_child
        addresses = [(a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in admins]
        agents_child(seed, [int(n) for n in numbers.split(",") if n], addresses)
        return []
    workers = tuple(int(n) for n in args.workers.split(","))
    rows = run(args.scp80_cards, args.scp81_cards, workers)
    print("every job ran exactly once: " + ("yes, in every run" if rows and all(r.once for r in rows) else "NO"))
    return rows


if __name__ == "__main__":
    main()
