"""The Remote Administration Server (server/ras.py) over real sockets on 127.0.0.1: our own card side (ram.client
over io.tls_stream's PSK-TLS) against ``run_server``, with the job store on SQLite.

Covers issue 7: a whole session with two jobs (results stored, 204), the targeted application header, the ETSI
content types, the resumption rule (docs/server.md), bad input (malformed HTTP, a response that is not TLV, a
non-ok script status, a client that stalls or disconnects mid-script, a wrong PSK, an unknown identity) and a
server restart that loses nothing and runs nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpchannel.codec.apdu import ResponseApdu
from gpchannel.errors import TlsError
from gpchannel.io.tls_policy import PskTlsPolicy, TlsVersion
from gpchannel.ota.remote_apdu import BadFormat, CommandScript, RApdu, ResponseScript
from gpchannel.ram.admin import ContentType, ScriptStatus
from gpchannel.ram.client import AdminServerError, ScriptDelivery, SessionEnd
from gpchannel.server.config import ServerServices
from gpchannel.server.ras import OUTCOME_UNKNOWN, results_of
from gpchannel.server.repository import JobRecord, JobState, JobTransport
from tests.server.server_support import AdminCard, answer, apdus_of, make_services, register, running

ICCID = "8988211000000000001"
IDENTITY = "8988211000000000001"
PSK = bytes.fromhex("0102030405060708090A0B0C0D0E0F10")
SELECT_ISD = bytes.fromhex("00A4040008A000000151000000")
GET_STATUS = bytes.fromhex("80F24002024F0000")
GET_DATA = bytes.fromhex("80CA006600")
ECHO_AID = bytes.fromhex("A0000000871002FF49FF0589")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServerServices]:
    svc = make_services(f"sqlite:///{tmp_path / 'ras.db'}", tmp_path)
    register(svc, ICCID, IDENTITY, PSK)
    yield svc
    svc.repository.close()


@pytest.fixture
def both_services(tmp_path: Path, repo_url: str) -> Iterator[ServerServices]:
    """As ``services``, on SQLite and on PostgreSQL (C's repo_url fixture)."""
    svc = make_services(repo_url, tmp_path)
    register(svc, ICCID, IDENTITY, PSK)
    yield svc
    svc.repository.close()


def card_id(services: ServerServices) -> int:
    card = services.repository.card_by_identity(IDENTITY)
    assert card is not None
    return card.id


def queue(services: ServerServices, *apdus: bytes, target: bytes = b"") -> int:
    return services.repository.add_job(
        card_id=card_id(services), transport=JobTransport.SCP81, script=list(apdus), target=target
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_two_jobs_then_204(both_services: ServerServices) -> None:
    services = both_services
    first = queue(services, SELECT_ISD, GET_STATUS)
    second = queue(services, GET_DATA)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            assert delivery.content_type is ContentType.GP_COMMAND
            assert delivery.targeted_application is None
            assert apdus_of(delivery.script) == [SELECT_ISD, GET_STATUS]
            assert delivery.next_uri.startswith("/gp/admin/")
            assert services.repository.job(first).state is JobState.SENT  # type: ignore[union-attr]
            body = answer(delivery.script, [0x9000, 0x6A88])
            delivery2 = await card.respond(delivery.next_uri, body, chunked=True)
            assert isinstance(delivery2, ScriptDelivery)
            assert apdus_of(delivery2.script) == [GET_DATA]
            assert delivery2.next_uri != delivery.next_uri
            end = await card.respond(delivery2.next_uri, answer(delivery2.script))
            assert isinstance(end, SessionEnd)
            await card.close()

    run(scenario)
    job1 = services.repository.job(first)
    job2 = services.repository.job(second)
    assert job1 is not None and job2 is not None
    assert job1.state is JobState.DONE and job1.reason is None
    assert [(r.command, r.response, r.sw) for r in job1.results] == [
        (SELECT_ISD, b"\xa4", 0x9000),
        (GET_STATUS, b"\xf2", 0x6A88),
    ]
    assert job2.state is JobState.DONE
    assert [(r.command, r.sw) for r in job2.results] == [(GET_DATA, 0x9000)]


def test_large_script_in_small_records(services: ServerServices) -> None:
    """A 40-command script (over 4 KiB) in TLS records of at most 256 plaintext bytes (cards with small buffers,
    ota-notes B.1), and its response POSTed chunked."""
    store = [bytes.fromhex("80E2000064") + bytes(range(100)) for _ in range(40)]
    job = queue(services, *store)

    async def scenario() -> None:
        async with running(services, max_record=256) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery) and apdus_of(delivery.script) == store
            assert len(delivery.script) > 4096
            end = await card.respond(delivery.next_uri, answer(delivery.script), chunked=True)
            assert isinstance(end, SessionEnd)
            await card.close()

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.DONE and len(record.results) == 40


def test_no_job_gives_204_at_once(services: ServerServices) -> None:
    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            assert isinstance(await card.first(), SessionEnd)
            await card.close()

    run(scenario)


def test_targeted_application_and_etsi_content_types(services: ServerServices) -> None:
    cid = card_id(services)
    services.repository.upsert_card(iccid=ICCID, psk_identity=IDENTITY, ota={"admin_content": "etsi"})
    job = queue(services, SELECT_ISD, target=ECHO_AID)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            assert delivery.content_type is ContentType.ETSI_COMMAND
            assert delivery.targeted_application is not None
            assert delivery.targeted_application.aid == ECHO_AID
            end = await card.respond(delivery.next_uri, answer(delivery.script), content_type=ContentType.ETSI_RESPONSE)
            assert isinstance(end, SessionEnd)
            await card.close()

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.DONE and record.card_id == cid


def test_script_status_not_ok_fails_the_job_and_the_session_goes_on(services: ServerServices) -> None:
    first = queue(services, SELECT_ISD)
    second = queue(services, GET_DATA, SELECT_ISD)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            nxt = await card.respond(delivery.next_uri, b"", status=ScriptStatus.UNKNOWN_APPLICATION)
            assert isinstance(nxt, ScriptDelivery)
            # a security error with the results of the commands run before it (SE admin agent variant)
            partial = answer(CommandScript.of(CommandScript.from_bytes(nxt.script).apdus[:1]).to_bytes(), [0x6982])
            request = (
                f"POST {nxt.next_uri} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "X-Admin-Protocol: globalplatform-remote-admin/1.0\r\nX-Admin-Script-Status: security-error\r\n"
                f"Content-Type: {ContentType.GP_RESPONSE.value}\r\nContent-Length: {len(partial)}\r\n\r\n"
            ).encode() + partial
            assert await card.raw(request) == (204, b"")
            await card.close()

    run(scenario)
    job1 = services.repository.job(first)
    assert job1 is not None and job1.state is JobState.FAILED
    assert job1.reason == "X-Admin-Script-Status: unknown-application" and job1.results == ()
    job2 = services.repository.job(second)
    assert job2 is not None and job2.state is JobState.FAILED
    assert job2.reason == "X-Admin-Script-Status: security-error"
    assert [(r.command, r.sw) for r in job2.results] == [(GET_DATA, 0x6982)]


def test_response_not_tlv_fails_the_job_with_400(services: ServerServices) -> None:
    job = queue(services, SELECT_ISD)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            error = await card.respond(delivery.next_uri, b"\xab\x05\x23\x02\x90")
            assert isinstance(error, AdminServerError) and error.status == 400
            await card.wait_closed()

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.FAILED
    assert record.reason is not None and record.reason.startswith("the response script is not valid TLV")


def test_malformed_http_gets_400_and_fails_the_outstanding_job(services: ServerServices) -> None:
    job = queue(services, SELECT_ISD)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            await card.stream.write(b"POST /gp/admin HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            raw = b""
            while chunk := await card.stream.read():
                raw += chunk
            assert raw.startswith(b"HTTP/1.1 400 ")

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.FAILED
    assert record.reason is not None and "malformed HTTP" in record.reason and "HTTP 400" in record.reason


def test_malformed_first_request_gets_400_and_runs_nothing(services: ServerServices) -> None:
    job = queue(services, SELECT_ISD)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            await card.stream.write(b"GARBAGE\r\n\r\n")
            raw = b""
            while chunk := await card.stream.read():
                raw += chunk
            assert raw.startswith(b"HTTP/1.1 400 ")

    run(scenario)
    assert services.repository.job(job).state is JobState.QUEUED  # type: ignore[union-attr]


def test_other_cards_delivery_is_404(services: ServerServices) -> None:
    other_psk = os.urandom(16)
    other = register(services, "8988211000000000002", "other-card", other_psk)
    other_job = services.repository.add_job(card_id=other, transport=JobTransport.SCP81, script=[SELECT_ISD])

    async def scenario() -> None:
        async with running(services) as server:
            thief = await AdminCard.connect(server.admin_port, "other-card", other_psk)
            delivery = await thief.first()
            assert isinstance(delivery, ScriptDelivery)
            await thief.close()
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            error = await card.respond(delivery.next_uri, answer(delivery.script), resume=True)
            assert isinstance(error, AdminServerError) and error.status == 404
            await card.wait_closed()

    run(scenario)
    record = services.repository.job(other_job)
    assert record is not None and record.state is JobState.SENT and record.results == ()


def test_resume_with_results_completes_the_sent_job_once(services: ServerServices) -> None:
    first = queue(services, SELECT_ISD)
    second = queue(services, GET_DATA)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            await card.close()  # the card ran the script, the connection broke before the response
            await _until(lambda: services.repository.job(first).reason is not None)  # type: ignore[union-attr]
            record = services.repository.job(first)
            assert record is not None and record.state is JobState.SENT
            assert record.reason is not None and "closed the connection" in record.reason

            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            nxt = await card.respond(delivery.next_uri, answer(delivery.script), resume=True)
            assert isinstance(nxt, ScriptDelivery) and apdus_of(nxt.script) == [GET_DATA]
            # Our answer (the second script) is lost; the card re-POSTs the first response: it is not stored
            # twice, and the second delivery, which never reached the card, is sent again.
            await card.close()
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            again = await card.respond(delivery.next_uri, answer(delivery.script, [0x6F00]), resume=True)
            assert isinstance(again, ScriptDelivery) and again.next_uri == nxt.next_uri
            assert isinstance(await card.run(again), SessionEnd)
            await card.close()

    run(scenario)
    job1 = services.repository.job(first)
    assert job1 is not None and job1.state is JobState.DONE and job1.reason is None
    assert [r.sw for r in job1.results] == [0x9000]
    assert services.repository.job(second).state is JobState.DONE  # type: ignore[union-attr]


def test_resume_without_results_resends_the_same_delivery(services: ServerServices) -> None:
    job = queue(services, SELECT_ISD, GET_DATA)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            await card.close()  # the script never reached the card's persistent store
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            again = await card.first(resume=True)
            assert isinstance(again, ScriptDelivery)
            assert again.next_uri == delivery.next_uri and again.script == delivery.script
            assert isinstance(await card.run(again), SessionEnd)
            await card.close()

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.DONE and len(record.results) == 2


def test_fresh_session_while_a_job_is_sent_fails_it_as_outcome_unknown(services: ServerServices) -> None:
    first = queue(services, SELECT_ISD)
    second = queue(services, GET_DATA)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            await card.close()
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            nxt = await card.first()  # no X-Admin-Resume: the card does not know the script
            assert isinstance(nxt, ScriptDelivery) and apdus_of(nxt.script) == [GET_DATA]
            assert isinstance(await card.run(nxt), SessionEnd)
            # The first job's results arriving late are not stored: it is final.
            card2 = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            assert isinstance(await card2.respond(delivery.next_uri, answer(delivery.script)), SessionEnd)
            await card.close()
            await card2.close()

    run(scenario)
    job1 = services.repository.job(first)
    assert job1 is not None and job1.state is JobState.FAILED and job1.reason == OUTCOME_UNKNOWN
    assert job1.results == ()
    assert services.repository.job(second).state is JobState.DONE  # type: ignore[union-attr]


def test_disconnect_mid_response_keeps_the_job_sent_with_the_reason(services: ServerServices) -> None:
    job = queue(services, SELECT_ISD)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            post = card.http.post_response(delivery.next_uri, answer(delivery.script))
            await card.stream.write(post[: len(post) - 3])
            await card.close()
            await _until(lambda: services.repository.job(job).reason is not None)  # type: ignore[union-attr]

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.SENT
    assert record.reason is not None and "in the middle of a request" in record.reason


def test_stalled_client_is_dropped_and_the_job_says_so(services: ServerServices) -> None:
    job = queue(services, SELECT_ISD)

    async def scenario() -> None:
        async with running(services, read_timeout=0.5) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            await card.wait_closed()  # the card says nothing more: the server gives up and closes
            await _until(lambda: services.repository.job(job).reason is not None)  # type: ignore[union-attr]

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.SENT
    assert record.reason is not None and "silent for 0.5 s" in record.reason


@pytest.mark.parametrize(
    ("identity", "psk", "alert"),
    [
        # the server cannot decrypt the client's Finished under the wrong key (RFC 5246 7.2.2)
        (IDENTITY, bytes(16), "bad_record_mac"),
        ("no-such-card", PSK, "unknown_psk_identity"),
        ("card-without-psk", PSK, "unknown_psk_identity"),
    ],
)
def test_wrong_psk_or_unknown_identity_gets_an_alert_and_runs_nothing(
    services: ServerServices, identity: str, psk: bytes, alert: str
) -> None:
    job = queue(services, SELECT_ISD)
    services.repository.upsert_card(iccid=None, psk_identity="card-without-psk")

    async def scenario() -> None:
        async with running(services) as server:
            with pytest.raises(TlsError) as caught:
                await AdminCard.connect(server.admin_port, identity, psk)
            assert caught.value.alert == alert

    run(scenario)
    record = services.repository.job(job)
    assert record is not None and record.state is JobState.QUEUED and record.delivery_id is None


def test_restart_loses_nothing_and_runs_nothing_twice(tmp_path: Path, repo_url: str) -> None:
    url = repo_url  # SQLite, and the scripts/postgres.sh cluster (marker postgres)
    master = os.urandom(32)
    services = make_services(url, tmp_path, master)
    register(services, ICCID, IDENTITY, PSK)
    first = queue(services, SELECT_ISD)
    second = queue(services, GET_DATA)
    held: dict[str, ScriptDelivery] = {}
    ran: list[bytes] = []

    async def before() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            held["d"] = delivery
            ran.append(delivery.script)
        # the server stopped with the card's connection open: the card sees the end of the stream
        assert await card.stream.read() == b""
        await card.close()

    run(before)
    services.repository.close()

    services = make_services(url, tmp_path, master)
    try:
        assert services.repository.job(first).state is JobState.SENT  # type: ignore[union-attr]

        async def after() -> None:
            async with running(services) as server:
                card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
                delivery = held["d"]
                nxt = await card.respond(delivery.next_uri, answer(delivery.script), resume=True)
                while isinstance(nxt, ScriptDelivery):
                    ran.append(nxt.script)
                    nxt = await card.respond(nxt.next_uri, answer(nxt.script))
                assert isinstance(nxt, SessionEnd)
                await card.close()
                card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
                assert isinstance(await card.first(), SessionEnd)
                await card.close()

        run(after)
        assert [apdus_of(s) for s in ran] == [[SELECT_ISD], [GET_DATA]]
        for job_id in (first, second):
            record = services.repository.job(job_id)
            assert record is not None and record.state is JobState.DONE and len(record.results) == 1
    finally:
        services.repository.close()


def test_results_of_pairs_commands_and_responses() -> None:
    now = datetime.now(UTC)
    script = (SELECT_ISD, GET_STATUS, GET_DATA)
    job = JobRecord(1, None, 1, JobTransport.SCP81, b"", script, JobState.SENT, None, 0, "d", None, (), now, now)
    ok = ResponseScript(tuple(RApdu(ResponseApdu(b"", 0x9000)) for _ in range(3)), executed=3)
    assert results_of(job, ok)[1:] == (JobState.DONE, None)
    short = ResponseScript((RApdu(ResponseApdu(b"", 0x9000)), RApdu(ResponseApdu(b"", 0x6A82))), executed=2)
    results, state, reason = results_of(job, short)
    assert state is JobState.FAILED and reason == "the card stopped after 2 of 3 commands (last status 6A82)"
    assert [r.command for r in results] == [SELECT_ISD, GET_STATUS]
    extra = ResponseScript(tuple(RApdu(ResponseApdu(b"", 0x9000)) for _ in range(4)))
    assert results_of(job, extra)[1] is JobState.FAILED
    bad = ResponseScript((RApdu(ResponseApdu(b"", 0x9000)), BadFormat(b"\x01")), executed=1)
    assert results_of(job, bad)[1:] == (JobState.FAILED, "the card reported a bad format TLV (90 01)")


async def _until(predicate: Callable[[], bool]) -> None:
    """Poll the store until ``predicate`` holds (bounded by the scenario's overall timeout)."""
    while not await asyncio.to_thread(predicate):
        await asyncio.sleep(0.02)


def test_a_job_sent_by_sms_is_left_to_its_por(services: ServerServices) -> None:
    """A scp81+sms job the SMS fallback sent as SCP80 (delivery id ``sms-...``) is not an admin delivery: a fresh
    admin session neither fails it nor resends it, and a POST to its id is 404."""
    repo = services.repository
    sms_job = repo.add_job(card_id=card_id(services), transport=JobTransport.SCP81_SMS, script=[SELECT_ISD])
    now = datetime.now(UTC)
    assert [
        j.id
        for j in repo.claim_jobs(transports=[JobTransport.SCP81_SMS], owner="w", limit=1, lease_seconds=60, now=now)
    ] == [sms_job]
    repo.mark_sent(sms_job, owner="w", kvn=1, delivery_id=f"sms-{sms_job}-1-w", now=now)
    admin_job = queue(services, GET_DATA)

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery) and apdus_of(delivery.script) == [GET_DATA]
            assert isinstance(await card.run(delivery), SessionEnd)
            await card.close()
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            error = await card.respond(f"/gp/admin/sms-{sms_job}-1-w", answer(delivery.script), resume=True)
            assert isinstance(error, AdminServerError) and error.status == 404
            await card.close()

    run(scenario)
    record = repo.job(sms_job)
    assert record is not None and record.state is JobState.SENT and record.reason is None
    assert repo.job(admin_job).state is JobState.DONE  # type: ignore[union-attr]


def test_legacy_tls_only_when_configured(services: ServerServices) -> None:
    old_card = PskTlsPolicy(
        ciphers=("PSK-AES128-CBC-SHA",), min_version=TlsVersion.TLS1_1, max_version=TlsVersion.TLS1_1
    )

    async def scenario() -> None:
        async with running(services) as server:
            with pytest.raises(TlsError):
                await AdminCard.connect(server.admin_port, IDENTITY, PSK, policy=old_card)
        async with running(services, legacy_tls=True) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK, policy=old_card)
            assert card.stream.cipher_name == "PSK-AES128-CBC-SHA" and card.stream.version == "TLSv1.1"
            assert isinstance(await card.first(), SessionEnd)
            await card.close()

    run(scenario)


def test_store_failure_gets_500_and_no_script(services: ServerServices) -> None:
    """The store fails under a session (here its jobs table is gone): the card gets 500, which its agent keeps
    its records through (docs/scp81.md), and the error is logged; no script leaves."""

    async def scenario() -> None:
        async with running(services) as server:
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            with services.repository.engine.begin() as connection:
                connection.exec_driver_sql("DROP TABLE jobs")
            error = await card.first()
            assert isinstance(error, AdminServerError) and error.status == 500
            await card.wait_closed()

    run(scenario)


def test_logs_hold_no_key_and_no_script(services: ServerServices, caplog: pytest.LogCaptureFixture) -> None:
    """Everything logged at DEBUG through a session, a wrong PSK and a malformed request: no PSK (hex or bytes),
    no script contents."""
    secret_apdu = bytes.fromhex("80D8000110") + bytes.fromhex("DEADBEEFCAFEF00D0123456789ABCDEF")
    queue(services, secret_apdu)
    queue(services, GET_DATA)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with running(services) as server:
            with pytest.raises(TlsError):
                await AdminCard.connect(server.admin_port, IDENTITY, bytes(16))
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(await card.run(delivery), SessionEnd)
            await card.close()
            queue(services, GET_DATA)
            card = await AdminCard.connect(server.admin_port, IDENTITY, PSK)
            delivery = await card.first()
            assert isinstance(delivery, ScriptDelivery)
            assert (await card.raw(b"POST / HTTP/1.1\r\nBroken\r\n\r\n"))[0] == 400

    run(scenario)
    text = caplog.text
    assert "admin session opened" in text and "malformed" in text  # the events are there
    for needle in (PSK.hex(), PSK.hex().upper(), repr(PSK)[2:-1], "DEADBEEFCAFEF00D", "deadbeefcafef00d"):
        assert needle not in text
