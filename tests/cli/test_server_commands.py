"""``gpchannel ram push|status|results|cancel`` against a running server (run_server on free ports in a thread, a
real SQLite store), the job completed by a card over PSK-TLS (our own card side); and ``gpchannel server``'s
option checks."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import cli
from gpchannel.cli.settings import EXIT_CARD_STATUS, EXIT_FAILURE, EXIT_TRANSPORT, EXIT_USAGE
from gpchannel.ram.client import ScriptDelivery, SessionEnd
from gpchannel.server.app import ServerAddresses, run_server
from gpchannel.server.config import ServerServices
from tests.server.server_support import AdminCard, admin_token, answer, make_services, register

ICCID = "8988211000000000001"
IDENTITY = "cli-card"
PSK = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
SELECT = "00A4040008A000000151000000"
GET_DATA = "80CA006600"


@dataclass
class Live:
    services: ServerServices
    admin_port: int
    api_url: str
    token_file: Path


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    services = make_services(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    register(services, ICCID, IDENTITY, PSK)
    token_file = tmp_path / "api.token"
    token_file.write_text(admin_token(services) + "\n")
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    bound: list[ServerAddresses] = []

    def on_ready(addresses: ServerAddresses) -> None:
        bound.append(addresses)
        ready.set()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(run_server(services.config, stop, on_ready=on_ready, services=services))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the server did not start"
        admin, api = bound[0].admin, bound[0].api
        assert admin is not None and api is not None
        yield Live(services, admin[1], f"http://127.0.0.1:{api[1]}", token_file)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        services.repository.close()


def ram(live: Live, *args: str) -> Result:
    command = ["ram", *args, "--api", live.api_url, "--api-token-file", str(live.token_file)]
    return CliRunner().invoke(cli, command, catch_exceptions=False)


def card_session(live: Live, sws: list[int]) -> None:
    """One admin session of the card: every script answered with ``sws``."""

    async def session() -> None:
        card = await AdminCard.connect(live.admin_port, IDENTITY, PSK)
        event = await card.first()
        while isinstance(event, ScriptDelivery):
            event = await card.respond(event.next_uri, answer(event.script, sws))
        assert isinstance(event, SessionEnd)
        await card.close()

    asyncio.run(asyncio.wait_for(session(), 30))


def test_push_status_results(live: Live) -> None:
    pushed = ram(live, "push", "--card", ICCID, "--json", SELECT, "80CA0066 00")
    assert pushed.exit_code == 0, pushed.output
    job = json.loads(pushed.output)
    assert job["state"] == "queued" and job["apdus"] == [SELECT, GET_DATA]
    job_id = str(job["id"])

    status = ram(live, "status", job_id)
    assert status.exit_code == 0 and f"job {job_id} (card 1, 2 APDUs): queued" in status.output
    waiting = ram(live, "results", job_id)
    assert waiting.exit_code == EXIT_FAILURE and "no results yet" in waiting.output

    card_session(live, [0x9000, 0x6A88])

    table = ram(live, "status")
    assert table.exit_code == 0 and "done" in table.output
    results = ram(live, "results", job_id)
    assert results.exit_code == EXIT_CARD_STATUS, results.output  # the second command answered 6A88
    assert "6A88" in results.output and SELECT in results.output
    assert results.stderr == f"error: job {job_id}: the card refused 1 of 2 command(s) (status words above)\n"
    assert ram(live, "results", job_id, "--ok-on-refusal").exit_code == 0
    as_json = json.loads(ram(live, "results", job_id, "--json").stdout)
    assert as_json["state"] == "done"
    assert [r["sw"] for r in as_json["results"]] == ["9000", "6A88"]
    listed = json.loads(ram(live, "status", "--state", "done", "--identity", IDENTITY, "--json").output)
    assert [j["id"] for j in listed] == [job["id"]]


def test_push_by_identity_with_target_and_all_9000(live: Live) -> None:
    pushed = ram(live, "push", "--identity", IDENTITY, "--target", "A0000000871002FF49FF0589", SELECT)
    assert pushed.exit_code == 0 and "job 1 queued" in pushed.output
    card_session(live, [0x9000])
    results = ram(live, "results", "1")
    assert results.exit_code == 0 and "9000" in results.output
    record = live.services.repository.job(1)
    assert record is not None and record.target == bytes.fromhex("A0000000871002FF49FF0589")


def test_cancel(live: Live) -> None:
    assert ram(live, "push", "--card", ICCID, SELECT).exit_code == 0
    cancelled = ram(live, "cancel", "1")
    assert cancelled.exit_code == 0 and "job 1 cancelled" in cancelled.output
    status = ram(live, "results", "1")
    assert status.exit_code == EXIT_FAILURE


def test_push_wait_gives_up_on_an_unfinished_job(live: Live) -> None:
    pushed = ram(live, "push", "--card", ICCID, "--wait", "0", SELECT)
    assert pushed.exit_code == EXIT_FAILURE and "job 1 queued" in pushed.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["push", "--card", "8988211000000000009", SELECT], EXIT_FAILURE, "no card with iccid"),
        (["push", "--card", ICCID, "00A4"], EXIT_USAGE, "APDU"),
        (["push", SELECT], EXIT_USAGE, "give --card ICCID or --identity ID"),
        (["push", "--card", ICCID, "--target", "A0", SELECT], EXIT_USAGE, "target: an AID"),
        (["status", "99"], EXIT_FAILURE, "no job 99"),
        (["results", "99"], EXIT_FAILURE, "no job 99"),
    ],
)
def test_errors(live: Live, args: list[str], code: int, message: str) -> None:
    result = ram(live, *args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_api_unreachable_is_a_transport_failure() -> None:
    result = CliRunner().invoke(cli, ["ram", "status", "--api", "http://127.0.0.1:9"], catch_exceptions=False)
    assert result.exit_code == EXIT_TRANSPORT and "cannot be reached" in result.output
    result = CliRunner().invoke(cli, ["ram", "status", "--api", "ftp://x"], catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE


def test_server_options_are_checked(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["server", "--admin", "127.0.0.1:99999", "--data", str(tmp_path)])
    assert result.exit_code == EXIT_USAGE and "port must be 0..65535" in result.output
    every = ["--legacy-tls", "--allow-null-tls", "--read-timeout", "5", "--admin-path", "/ras", "--keys", "db"]
    result = CliRunner().invoke(cli, ["server", "--data", str(tmp_path), *every, "--max-record", "10"])
    assert result.exit_code == EXIT_USAGE and "max_record must be 64..16384" in result.output
    result = CliRunner().invoke(cli, ["server", "--data", str(tmp_path), "--worker-only"])
    assert result.exit_code == EXIT_USAGE and "--worker-only needs --smpp" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[card]\niccid = "8988211000000000001"\n')
    result = CliRunner().invoke(
        cli, ["server", "--admin", ":0", "--api", ":0", "--data", str(tmp_path), "--profile", str(bad)]
    )
    assert result.exit_code == EXIT_USAGE and "bad.toml" in result.output  # a profile error: a usage error


def test_results_of_a_job_the_card_refused_by_its_por(live: Live) -> None:
    """An SCP80 job fails on a PoR status other than 00 (the worker's reason, stored as it stores it): exit 4, or 0
    with --ok-on-refusal; a job that failed short of the card stays 1 either way."""
    assert ram(live, "push", "--card", ICCID, "--transport", "scp80", SELECT).exit_code == 0
    assert ram(live, "push", "--card", ICCID, "--transport", "scp80", SELECT).exit_code == 0
    live.services.repository.fail_job(1, "PoR status 02 (CNTR_LOW)")
    live.services.repository.fail_job(2, "no PoR after 3 attempt(s)")
    refused = ram(live, "results", "1")
    assert refused.exit_code == EXIT_CARD_STATUS, refused.output
    assert refused.stderr == "error: job 1: the card refused the packet: PoR status 02 (CNTR_LOW)\n"
    assert ram(live, "results", "1", "--ok-on-refusal").exit_code == 0
    lost = ram(live, "results", "2", "--ok-on-refusal")
    assert lost.exit_code == EXIT_FAILURE and lost.stderr == "error: job 2 failed: no PoR after 3 attempt(s)\n"
