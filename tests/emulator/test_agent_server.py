"""End to end: a job queued through ``gpchannel server``'s JSON API reaches an emulated card over PSK-TLS (the
card agent, emulator/agent.py), runs through the card core, and its results come back through the API (issue 7,
"done when"). The server runs in the test's event loop (server/app.py run_server, SQLite in tmp_path, ports 0);
the card is the emulator's, kept in a state directory. Also: the card's connection breaks right after it ran the
script, and a restarted card re-posts its stored response on a new connection: the job completes once, with the
results of the one run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gpchannel.card.admin_trigger import pending_delivery
from gpchannel.card.dispatcher import Card
from gpchannel.emulator.agent import CardAgent, SessionStatus
from gpchannel.emulator.app import open_card
from gpchannel.io.store import DirectoryStore
from gpchannel.ram.client import AdminClientConnection, ScriptDelivery
from gpchannel.server.app import ServerAddresses, run_server
from gpchannel.server.config import ServerConfig
from tests.card.harness import profile_text
from tests.emulator.test_agent import GET_DATA_CPLC, IDENTITY, PSK, SSD, install_ssd, scp81_section
from tests.server.server_support import bearer, token_for

ICCID = "8988211000000000001"


@dataclass
class Running:
    admin: str
    api: aiohttp.ClientSession


@contextlib.asynccontextmanager
async def server(tmp_path: Path, **options: Any) -> AsyncIterator[Running]:
    config = ServerConfig(admin_port=0, api_port=0, data_dir=tmp_path / "server", **options)
    (tmp_path / "server").mkdir(exist_ok=True)
    token = token_for(config)
    stop = asyncio.Event()
    ready: asyncio.Future[ServerAddresses] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_server(config, stop, on_ready=ready.set_result))
    waiting: set[asyncio.Future[Any]] = {task, ready}
    done, _ = await asyncio.wait(waiting, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises the reason the server did not start
    addresses = ready.result()
    assert addresses.admin is not None and addresses.api is not None
    try:
        base = f"http://{addresses.api[0]}:{addresses.api[1]}"
        async with aiohttp.ClientSession(base_url=base, headers=bearer(token)) as api:
            yield Running(f"{addresses.admin[0]}:{addresses.admin[1]}", api)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def call(api: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
    async with api.request(method, f"/api/v1{path}", json=body) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def queue_job(running: Running, apdus: list[bytes]) -> int:
    await call(running.api, "POST", "/cards", {"iccid": ICCID, "psk_identity": IDENTITY.decode(), "psk": PSK.hex()})
    job = await call(running.api, "POST", "/jobs", {"card": {"iccid": ICCID}, "apdus": [a.hex() for a in apdus]})
    assert job["state"] == "queued"
    return int(job["id"])


def make_card(tmp_path: Path) -> Path:
    profile = tmp_path / "card.toml"
    profile.write_text(profile_text() + scp81_section())
    state = tmp_path / "state"
    open_card(state, profile)
    return state


def load(state: Path) -> Card:
    return open_card(state)[0]


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def test_job_from_the_api_runs_on_the_card_and_results_come_back(tmp_path: Path) -> None:
    state = make_card(tmp_path)

    async def scenario() -> tuple[dict[str, Any], Any]:
        async with server(tmp_path) as running:
            job_id = await queue_job(running, [install_ssd().to_bytes(), GET_DATA_CPLC.to_bytes()])
            agent = CardAgent(load(state), server=running.admin, retries=0, sleep=no_sleep, timeout=20)
            summary = await agent.run()
            job = await call(running.api, "GET", f"/jobs/{job_id}")
            return job, summary

    job, summary = asyncio.run(scenario())
    assert summary.status is SessionStatus.COMPLETED and (summary.scripts, summary.apdus) == (1, 2)
    assert job["state"] == "done", job
    sws = [str(r["sw"]).upper() for r in job["results"]]
    assert sws == ["9000", "9000"]
    assert bytes.fromhex(job["results"][1]["response"]).startswith(b"\x9f\x7f")  # the card's CPLC
    on_disk = DirectoryStore(state).load()
    assert on_disk is not None and on_disk.application(SSD) is not None


class _DropsAfterRunning(CardAgent):
    """The network goes away right after the card ran a script and stored its response (before the POST)."""

    drops = 1

    def _run(self, http: AdminClientConnection, delivery: ScriptDelivery) -> bytes:
        request = super()._run(http, delivery)
        if self.drops:
            self.drops -= 1
            raise ConnectionResetError("the bearer dropped (test)")
        return request


@pytest.mark.parametrize("restart", [False, True], ids=["retry", "restarted-card"])
def test_broken_session_completes_the_job_once(tmp_path: Path, restart: bool) -> None:
    state = make_card(tmp_path)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        async with server(tmp_path) as running:
            job_id = await queue_job(running, [install_ssd().to_bytes()])
            retries = 0 if restart else 1
            agent = _DropsAfterRunning(load(state), server=running.admin, retries=retries, sleep=no_sleep, timeout=20)
            summaries = [await agent.run()]
            between = await call(running.api, "GET", f"/jobs/{job_id}")
            if restart:
                again = CardAgent(load(state), server=running.admin, retries=0, sleep=no_sleep, timeout=20)
                summaries.append(await again.run())
            job = await call(running.api, "GET", f"/jobs/{job_id}")
            return between, job, summaries

    between, job, summaries = asyncio.run(scenario())
    if restart:
        assert summaries[0].status is SessionStatus.CONNECTION_FAILED and summaries[0].scripts == 1
        assert between["state"] == "sent"  # the server waits for the card's response
        assert summaries[1].status is SessionStatus.COMPLETED and summaries[1].resumed
        assert summaries[1].scripts == 0  # re-posted, not run again
    else:
        assert summaries[0].status is SessionStatus.COMPLETED and summaries[0].attempts == 2
        assert summaries[0].scripts == 1
    assert job["state"] == "done", job
    assert [str(r["sw"]).upper() for r in job["results"]] == ["9000"]  # a second run would have been 6A89
    on_disk = DirectoryStore(state).load()
    assert on_disk is not None and on_disk.application(SSD) is not None and pending_delivery(on_disk) is None


def test_long_script_in_small_records_and_a_chunked_response(tmp_path: Path) -> None:
    """60 commands: the script crosses several 256-byte TLS records (``--max-record 256``, for cards with small
    buffers, ota-notes B.1) and the ~3 KB response script goes back chunked; every result arrives."""
    state = make_card(tmp_path)

    async def scenario() -> dict[str, Any]:
        async with server(tmp_path, max_record=256) as running:
            job_id = await queue_job(running, [GET_DATA_CPLC.to_bytes()] * 60)
            agent = CardAgent(load(state), server=running.admin, retries=0, sleep=no_sleep, timeout=20)
            summary = await agent.run()
            assert summary.status is SessionStatus.COMPLETED and summary.apdus == 60
            job: dict[str, Any] = await call(running.api, "GET", f"/jobs/{job_id}")
            return job

    job = asyncio.run(scenario())
    assert job["state"] == "done", job
    assert [str(r["sw"]).upper() for r in job["results"]] == ["9000"] * 60
    assert all(bytes.fromhex(r["response"]).startswith(b"\x9f\x7f") for r in job["results"])
