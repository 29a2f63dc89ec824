"""The OTA server's audit trail: an append-only, hash-chained log of who did what.

Every state-changing API call and every script that leaves for a card appends one record through
:func:`append`, on the connection of the transaction that makes the change (Repository.atomic), so the record
and the change are committed together or not at all. A record holds the time, the principal (a token's name,
``local-admin`` for the command line, the sending process's owner name for a script that leaves), the action,
the card ids or the campaign / job id, the SHA-256 of the script (:func:`script_sha256`) and the outcome; never
a key, a PSK, a token or a script's content.

Chain: record ``n`` stores ``prev_hash`` = the hash of record ``n - 1`` (64 zeros for the first) and
``hash = SHA-256(prev_hash || canonical(record n))``, the canonical form being the record's fields (its id
included) as JSON with sorted keys and no spaces. Appends take a lock first (SQLite: the write transaction's;
PostgreSQL: ``pg_advisory_xact_lock``), so ids follow the chain. :func:`verify` walks the chain and names each
edited record (content no longer matches its hash), each deleted one (a gap in the ids) and each inserted one
(its successor links past it). It cannot see the last records removed, nor a chain rewritten from the start by
someone who can write the database: compare the head hash with one exported elsewhere (docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select

from gpchannel.errors import RepositoryError
from gpchannel.server.db import AUDIT_LOCK_KEY, audit_log, is_postgresql

__all__ = ["GENESIS", "AuditReport", "append", "append_many", "export", "record_hash", "script_sha256", "verify"]

GENESIS = "0" * 64
_FIELDS = ("id", "at", "principal", "action", "card_ids", "campaign_id", "job_id", "script_sha256", "outcome")


def script_sha256(script: Iterable[bytes]) -> str:
    """SHA-256 (hex) of a script: its C-APDUs concatenated in order (what the card is asked to run)."""
    digest = hashlib.sha256()
    for apdu in script:
        digest.update(apdu)
    return digest.hexdigest()


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps({k: record[k] for k in _FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def record_hash(prev_hash: str, record: dict[str, Any]) -> str:
    """The chain hash of a record (a dict with the fields of :func:`export`)."""
    return hashlib.sha256(prev_hash.encode("ascii") + _canonical(record)).hexdigest()


def _as_dict(row: Row[Any]) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": int(m["id"]),
        "at": m["at"].isoformat(),
        "principal": m["principal"],
        "action": m["action"],
        "card_ids": [int(x) for x in m["card_ids"]],
        "campaign_id": m["campaign_id"],
        "job_id": m["job_id"],
        "script_sha256": m["script_sha256"],
        "outcome": m["outcome"],
        "prev_hash": m["prev_hash"],
        "hash": m["hash"],
    }


def append(
    c: Connection,
    *,
    principal: str,
    action: str,
    at: datetime,
    outcome: str = "ok",
    card_ids: Sequence[int] = (),
    campaign_id: int | None = None,
    job_id: int | None = None,
    script_sha256: str | None = None,
) -> int:
    """Append one record on ``c`` (inside the change's transaction: call it last, after the change's own row
    locks, so the audit lock is always taken last). Returns its id."""
    if is_postgresql(c):
        c.exec_driver_sql(f"SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY})")
    last = c.execute(select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).one_or_none()
    record_id = 1 if last is None else int(last.id) + 1
    prev = GENESIS if last is None else str(last.hash)
    values: dict[str, Any] = {
        "id": record_id,
        "at": at,
        "principal": principal,
        "action": action,
        "card_ids": [int(x) for x in card_ids],
        "campaign_id": campaign_id,
        "job_id": job_id,
        "script_sha256": script_sha256,
        "outcome": outcome,
    }
    c.execute(audit_log.insert().values(**values, prev_hash=prev, hash=""))
    # hash what the database gives back (its timestamp precision), so verify recomputes the same bytes
    row = c.execute(select(audit_log).where(audit_log.c.id == record_id)).one()
    stored = _as_dict(row)
    c.execute(audit_log.update().where(audit_log.c.id == record_id).values(hash=record_hash(prev, stored)))
    return record_id


def append_many(c: Connection, records: Sequence[Mapping[str, Any]]) -> list[int]:
    """:func:`append` for several records (each a mapping of append's keyword arguments) in one pass: the lock
    once, the chain's head once, and ONE insert of all the rows with their hashes. The chain is the one that as
    many :func:`append` calls would make. Returns their ids, in order.

    The hashes are computed before the insert, over the values as the database gives them back: the timestamp as
    :class:`~gpchannel.server.db.UtcDateTime` stores and returns it (aware UTC, microseconds on both SQLite and
    PostgreSQL), the card ids as JSON integers. So the lock is held for three statements and the commit instead of
    five (no read back, no update of the hashes): on PostgreSQL every worker's sends pass this lock one batch at a
    time, and its hold time bounds them all (docs/deploy.md)."""
    if not records:
        return []
    rows = [
        {
            "at": _stored_time(r["at"]),
            "principal": r["principal"],
            "action": r["action"],
            "card_ids": [int(x) for x in r.get("card_ids", ())],
            "campaign_id": r.get("campaign_id"),
            "job_id": r.get("job_id"),
            "script_sha256": r.get("script_sha256"),
            "outcome": r.get("outcome", "ok"),
        }
        for r in records
    ]
    if is_postgresql(c):
        c.exec_driver_sql(f"SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY})")
    last = c.execute(_HEAD).one_or_none()
    first = 1 if last is None else int(last.id) + 1
    prev = GENESIS if last is None else str(last.hash)
    for record_id, row in enumerate(rows, start=first):
        row["id"] = record_id
        chained = record_hash(prev, {**row, "at": row["at"].isoformat()})
        row["prev_hash"], row["hash"], prev = prev, chained, chained
    c.execute(audit_log.insert(), rows)
    return [int(row["id"]) for row in rows]


_HEAD = select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)


def _stored_time(at: datetime) -> datetime:
    """``at`` as the audit log gives it back (UtcDateTime: aware, UTC, microseconds); RepositoryError for a naive
    one (as UtcDateTime refuses it)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise RepositoryError(f"naive datetime {at.isoformat()}: timestamps must be timezone-aware")
    return at.astimezone(UTC)


@dataclass
class AuditReport:
    """What :func:`verify` found: the number of records, the head (last) hash and the problems, one line each."""

    records: int = 0
    head: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine, *, head: str | None = None) -> AuditReport:
    """Walk the whole chain; ``head``: a head hash exported earlier, which must still be in the chain."""
    report = AuditReport()
    seen: dict[str, int] = {GENESIS: 0}
    prev_id, prev_stored, prev_computed = 0, GENESIS, GENESIS
    with engine.connect() as c:
        rows = c.execute(select(audit_log).order_by(audit_log.c.id)).all()
    for row in rows:
        record = _as_dict(row)
        rid = record["id"]
        computed = record_hash(record["prev_hash"], record)
        if computed != record["hash"]:
            report.problems.append(f"record {rid}: edited (its content does not match its hash)")
        linked = record["prev_hash"] in (prev_stored, prev_computed)
        if not linked:
            if record["prev_hash"] in seen and seen[record["prev_hash"]] < prev_id:
                first = seen[record["prev_hash"]]
                report.problems.append(
                    f"record(s) after {first} and before {rid} inserted: record {rid} links to record {first}"
                )
            elif rid != prev_id + 1:
                report.problems.append(f"record(s) {prev_id + 1}..{rid - 1} deleted (record {rid} links elsewhere)")
            else:
                report.problems.append(
                    f"record {rid}: does not link to record {prev_id} (that one was rewritten, or records "
                    "were deleted or inserted before it)"
                )
        elif rid != prev_id + 1:
            report.problems.append(f"record id(s) {prev_id + 1}..{rid - 1} missing")
        seen[record["hash"]] = rid
        prev_id, prev_stored, prev_computed = rid, record["hash"], computed
        report.records += 1
    report.head = prev_stored
    if head is not None and head not in seen:
        report.problems.append(
            f"the exported head {head[:16]}... is not in the chain: records were removed from its end or the "
            "chain was rewritten"
        )
    return report


def export(engine: Engine, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """The records (all, or those at or after ``since``) in chain order, as JSON-ready dicts."""
    query = select(audit_log).order_by(audit_log.c.id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    with engine.connect() as c:
        return [_as_dict(r) for r in c.execute(query).all()]


def count(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(audit_log)).scalar_one())
