"""The audit chain (server/audit.py) on SQLite and PostgreSQL: ``gpchannel audit verify`` names a deleted, an
inserted and an edited record; a campaign's records match its jobs (created through the API, its scripts taken
by the same Repository call as the admin sessions use); no key, PSK or script content in the records."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from sqlalchemy import select, text

from gpchannel.cli.main import cli
from gpchannel.errors import RepositoryError
from gpchannel.server import audit, db
from gpchannel.server.api import build_api
from gpchannel.server.repository import JobState, Repository
from gpchannel.server.tokens import create_token, revoke_token
from tests.server.server_support import admin_token, bearer, make_services

SCRIPT = ["00A40004023F00", "00B0000010"]
PSK_HEX = "0102030405060708090A0B0C0D0E0F10"


def _chain(repo_url: str, n: int = 5) -> None:
    with Repository(repo_url) as repo:
        now = datetime.now(UTC)
        for i in range(n):
            create_token(repo, name=f"t{i}", scopes=["read"], now=now)
        revoke_token(repo, "t0", now=now)


def _verify(repo_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--db", repo_url], catch_exceptions=False)
    return result.exit_code, result.output


def _sql(repo_url: str, *statements: str) -> None:
    engine = db.make_engine(repo_url)
    try:
        with engine.begin() as c:
            for statement in statements:
                c.execute(text(statement))
    finally:
        engine.dispose()


def test_an_intact_chain_verifies(repo_url: str) -> None:
    _chain(repo_url)
    code, output = _verify(repo_url)
    assert code == 0 and "6 record(s)" in output and "TAMPERED" not in output, output


def test_append_many_makes_the_chain_that_appends_one_by_one_make(repo_url: str) -> None:
    """audit.append_many (the group-committed sends' records): the chain verifies, links to the records before
    and after it, and holds each record's fields in order."""
    _chain(repo_url, 2)
    engine = db.make_engine(repo_url)
    at = datetime.now(UTC)
    records = [
        {"principal": "server:w", "action": "script.sent", "at": at, "card_ids": [n], "job_id": n, "outcome": "sent"}
        for n in (7, 8, 9)
    ]
    try:
        with engine.begin() as c:
            ids = audit.append_many(c, records)
            after = audit.append(c, principal="server:w", action="script.sent", at=at, card_ids=[10], job_id=10)
            assert audit.append_many(c, []) == []
        with engine.connect() as c:
            rows = c.execute(select(db.audit_log).order_by(db.audit_log.c.id)).all()
    finally:
        engine.dispose()
    assert ids == [4, 5, 6] and after == 7
    assert [(r.id, r.job_id, list(r.card_ids), r.outcome) for r in rows[3:]] == [
        (4, 7, [7], "sent"), (5, 8, [8], "sent"), (6, 9, [9], "sent"), (7, 10, [10], "ok"),
    ]  # fmt: skip
    assert all(r.prev_hash == p.hash for p, r in pairwise(rows))
    code, output = _verify(repo_url)
    assert code == 0 and "7 record(s)" in output and "TAMPERED" not in output, output


def test_append_many_hashes_what_the_database_gives_back(repo_url: str) -> None:
    """append_many computes the hashes before its insert (no read back): over a time with another UTC offset and
    microseconds, one record alone and a batch, the chain verifies, and the stored times are the same instants."""
    _chain(repo_url, 1)
    engine = db.make_engine(repo_url)
    at = datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    try:
        with engine.begin() as c:
            assert audit.append_many(c, [{"principal": "server:w", "action": "script.sent", "at": at}]) == [3]
            records = [
                {"principal": "server:w", "action": "script.sent", "at": at, "card_ids": [n, 2**40], "job_id": n,
                 "campaign_id": 2**33, "script_sha256": "ab" * 32, "outcome": "sent (scp80 SMS, kvn 1) \u00e9"}
                for n in (1, 2)
            ]  # fmt: skip
            assert audit.append_many(c, records) == [4, 5]
        with pytest.raises(RepositoryError), engine.begin() as c:
            audit.append_many(c, [{"principal": "p", "action": "a", "at": datetime(2026, 1, 1)}])
        stored = audit.export(engine)
    finally:
        engine.dispose()
    assert [datetime.fromisoformat(r["at"]) for r in stored[2:]] == [at, at, at]
    code, output = _verify(repo_url)
    assert code == 0 and "5 record(s)" in output and "TAMPERED" not in output, output


def test_verify_names_a_deleted_record(repo_url: str) -> None:
    _chain(repo_url)
    _sql(repo_url, "DELETE FROM audit_log WHERE id = 3")
    code, output = _verify(repo_url)
    assert code == 1 and "record(s) 3..3 deleted" in output, output


def test_verify_names_an_edited_record(repo_url: str) -> None:
    _chain(repo_url)
    _sql(repo_url, "UPDATE audit_log SET principal = 'someone-else' WHERE id = 4")
    code, output = _verify(repo_url)
    assert code == 1 and "record 4: edited" in output, output
    assert output.count("TAMPERED") == 1, output


def test_verify_names_a_rehashed_edit_and_an_inserted_record(repo_url: str) -> None:
    _chain(repo_url)
    engine = db.make_engine(repo_url)
    try:
        rows = audit.export(engine)
        # an insertion between records 2 and 3, made to look right: later ids moved up, its own hash computed
        forged = {**rows[1], "id": 3, "action": "token.create", "outcome": "created intruder (admin)"}
        forged["prev_hash"] = rows[1]["hash"]
        forged["hash"] = audit.record_hash(forged["prev_hash"], forged)
        with engine.begin() as c:
            for row in reversed(rows[2:]):  # renumber 3.. -> 4.. (and re-hash each one's own content)
                moved = {**row, "id": row["id"] + 1}
                c.execute(
                    db.audit_log.update()
                    .where(db.audit_log.c.id == row["id"])
                    .values(id=moved["id"], hash=audit.record_hash(row["prev_hash"], moved))
                )
            c.execute(
                db.audit_log.insert().values(
                    **{k: v for k, v in forged.items() if k != "at"}, at=datetime.fromisoformat(forged["at"])
                )
            )
    finally:
        engine.dispose()
    code, output = _verify(repo_url)
    assert code == 1 and "before 4 inserted: record 4 links to record 2" in output, output


def test_verify_with_an_exported_head_sees_records_cut_from_the_end(repo_url: str, tmp_path: Path) -> None:
    _chain(repo_url)
    exported = CliRunner().invoke(cli, ["audit", "export", "--db", repo_url, "--json"], catch_exceptions=False)
    assert exported.exit_code == 0
    document = json.loads(exported.output)
    assert len(document["records"]) == 6
    _sql(repo_url, "DELETE FROM audit_log WHERE id = 6")
    assert _verify(repo_url)[0] == 0  # the chain alone cannot tell
    result = CliRunner().invoke(cli, ["audit", "verify", "--db", repo_url, "--head", document["head"]])
    assert result.exit_code == 1 and "not in the chain" in result.output


def test_a_campaigns_audit_records_match_its_jobs(repo_url: str, tmp_path: Path) -> None:
    services = make_services(repo_url, tmp_path)
    repo = services.repository
    token = admin_token(services, name="ops")

    async def scenario() -> dict[str, Any]:
        headers = bearer(token)
        async with TestClient(TestServer(build_api(services), host="127.0.0.1"), headers=headers) as client:
            for n in (1, 2, 3):
                body = {"iccid": f"898821100000000000{n}", "psk_identity": f"c{n}", "psk": PSK_HEX}
                assert (await client.post("/api/v1/cards", json=body)).status == 201
            cards = [f"898821100000000000{n}" for n in (1, 2, 3)]
            campaign_body: dict[str, Any] = {"transport": "scp81", "apdus": SCRIPT, "cards": cards}
            reply = await client.post("/api/v1/campaigns", json=campaign_body)
            assert reply.status == 201
            created: dict[str, Any] = await reply.json()
            return created

    try:
        campaign = asyncio.run(scenario())
        jobs = repo.jobs(campaign_id=campaign["id"])
        for job in jobs:  # the card's admin session takes its script (ras.py calls exactly this)
            sent = repo.deliver_next_job(job.card_id, owner="test-owner", now=datetime.now(UTC))
            assert sent is not None and sent.id == job.id and sent.state is JobState.SENT
        records = audit.export(repo.engine)
    finally:
        repo.close()
    digest = audit.script_sha256(bytes.fromhex(a) for a in SCRIPT)
    (create,) = [r for r in records if r["action"] == "campaign.create"]
    assert create["principal"] == "ops" and create["campaign_id"] == campaign["id"]
    assert sorted(create["card_ids"]) == sorted(j.card_id for j in jobs) and create["script_sha256"] == digest
    sent_records = [r for r in records if r["action"] == "script.sent"]
    assert sorted((r["job_id"], r["card_ids"][0]) for r in sent_records) == sorted((j.id, j.card_id) for j in jobs)
    assert {r["campaign_id"] for r in sent_records} == {campaign["id"]}
    assert {r["script_sha256"] for r in sent_records} == {digest}
    assert {r["principal"] for r in sent_records} == {"server:test-owner"}
    registered = [r for r in records if r["action"] == "card.register"]
    assert len(registered) == 3 and all("psk set" in r["outcome"] for r in registered)
    dump = json.dumps(records).upper()
    assert PSK_HEX not in dump and not any(a in dump for a in SCRIPT) and token.upper() not in dump
    assert audit.verify(db.make_engine(repo_url)).ok


def test_a_refused_change_leaves_no_record_and_a_failed_one_none_either(repo_url: str, tmp_path: Path) -> None:
    services = make_services(repo_url, tmp_path)
    token = admin_token(services)

    async def scenario() -> None:
        async with TestClient(TestServer(build_api(services), host="127.0.0.1"), headers=bearer(token)) as client:
            before = audit.count(services.repository.engine)
            reply = await client.post("/api/v1/jobs", json={"card": {"id": 99}, "apdus": SCRIPT})
            assert reply.status == 404
            assert audit.count(services.repository.engine) == before

    try:
        asyncio.run(scenario())
        with services.repository.engine.connect() as c:
            assert c.execute(select(db.jobs)).all() == []
    finally:
        services.repository.close()
