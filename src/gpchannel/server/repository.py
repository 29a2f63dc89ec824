"""The OTA server's storage API: cards, their key references and OTA counters, jobs, campaigns.

Every other server module goes through :class:`Repository` (synchronous; asyncio code calls it with
``asyncio.to_thread``). It runs on SQLite (``sqlite:///PATH``; several processes may share the file) and on
PostgreSQL (``postgresql+psycopg://user@host:port/db``; many worker processes), with the same behaviour:

- Every method is one database transaction. Methods that read then write take the write lock first: on SQLite
  ``BEGIN IMMEDIATE``, on PostgreSQL row locks (``SELECT ... FOR UPDATE``, ``SKIP LOCKED`` when claiming).
- :meth:`Repository.claim_jobs` never gives the same job to two workers while its lease runs; a job whose lease
  expired (``lease_until < now``) while still QUEUED is claimable again, and the old owner's
  :meth:`Repository.mark_sent` then raises :class:`~gpchannel.errors.LeaseLost`.
- :meth:`Repository.mark_sent` advances the card's OTA counter (ETSI TS 102 225 5.1.1: the counter of a key set
  must never be used twice) and marks the job SENT in the same transaction as the lease check, so no counter value
  is ever handed out twice and a job is never SENT twice.
- Timestamps are timezone-aware UTC in and out. ``now`` is an argument wherever the time decides something (due
  jobs, leases); other timestamps (``updated_at``) come from the ``clock`` given to the constructor.

Job life cycle (``JobState``)::

    QUEUED --deliver_next_job / mark_sent--> SENT --complete_job--> DONE | FAILED
      |  ^                                     |
      |  +------- fail_job(retry_at=...) ------+
      +--cancel_job / cancel_campaign--> CANCELLED        fail_job() without retry_at --> FAILED

DONE, FAILED and CANCELLED are final: :meth:`Repository.complete_job` and :meth:`Repository.fail_job` leave a
final job unchanged (a duplicate PoR or a late response is harmless). ``attempts`` counts failed attempts (each
:meth:`Repository.fail_job`). A retried job loses its ``delivery_id``, so a late answer to the earlier attempt
completes nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Insert, Row, and_, func, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gpchannel.errors import LeaseLost, RepositoryError
from gpchannel.server import audit, db
from gpchannel.server.db import campaigns, card_keys, cards, jobs, ota_counters

__all__ = [
    "KEY_PURPOSES",
    "MAX_OTA_COUNTER",
    "SCP81_TRANSPORTS",
    "ApduResult",
    "CampaignRecord",
    "CampaignState",
    "CardRecord",
    "JobRecord",
    "JobState",
    "Repository",
    "Transport",
]


class JobState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class Transport(StrEnum):
    SCP81 = "scp81"  # the card opens an admin session (GP Amendment B) on its own or after a trigger
    SCP80 = "scp80"  # secured SMS (ETSI TS 102 225) sent by a campaign worker
    SCP81_SMS = "scp81+sms"  # SCP81, triggered by an SCP80 SMS carrying the tag-81 parameters


class CampaignState(StrEnum):
    RUNNING = "running"
    CANCELLED = "cancelled"
    FINISHED = "finished"


SCP81_TRANSPORTS: tuple[Transport, ...] = (Transport.SCP81, Transport.SCP81_SMS)

# What card_keys.purpose may hold: the SCP81 PSK, the SCP80 KIc/KID, the SCP02/03 key set (ENC/MAC/DEK).
KEY_PURPOSES = frozenset({"psk", "kic", "kid", "enc", "mac", "dek"})

# ETSI TS 102 225 5.1.1: the OTA counter (CNTR) is 5 bytes.
MAX_OTA_COUNTER = (1 << 40) - 1

_log = logging.getLogger(__name__)

# create_campaign refreshes the planner's statistics when it adds this many jobs or more.
_ANALYZE_AFTER_ROWS = 500

_MAX_TARGET = 16  # an AID is 5..16 bytes (ISO 7816-5), a TAR 3 bytes; b"" = the ISD


@dataclass(frozen=True)
class ApduResult:
    """One command of a job's script and the card's answer: ``response`` is the data without ``sw``."""

    command: bytes
    response: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise RepositoryError(f"status word {self.sw:#x} is not two bytes")

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command.hex(), "response": self.response.hex(), "sw": self.sw}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ApduResult:
        return cls(bytes.fromhex(value["command"]), bytes.fromhex(value["response"]), int(value["sw"]))


@dataclass(frozen=True)
class CardRecord:
    id: int
    iccid: str | None
    psk_identity: str | None
    msisdn: str | None
    ota: Mapping[str, Any]  # TARs, SPI/KIc/KID defaults, PSK kvn, ... (free-form JSON object)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class JobRecord:
    id: int
    campaign_id: int | None
    card_id: int
    transport: Transport
    target: bytes
    script: tuple[bytes, ...]
    state: JobState
    reason: str | None
    attempts: int
    delivery_id: str | None
    counter_used: int | None
    results: tuple[ApduResult, ...]
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    transport: Transport
    target: bytes
    script: tuple[bytes, ...]
    settings: Mapping[str, Any]
    state: CampaignState
    created_at: datetime
    updated_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Conflict(RepositoryError):
    """A unique or foreign key constraint refused a write (internal: some callers retry)."""


def _job_record(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        campaign_id=m["campaign_id"],
        card_id=m["card_id"],
        transport=Transport(m["transport"]),
        target=bytes.fromhex(m["target"]),
        script=tuple(bytes.fromhex(c) for c in m["script"]),
        state=JobState(m["state"]),
        reason=m["reason"],
        attempts=m["attempts"],
        delivery_id=m["delivery_id"],
        counter_used=m["counter_used"],
        results=tuple(ApduResult.from_json(r) for r in m["results"] or ()),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        not_before=m["not_before"],
        lease_owner=m["lease_owner"],
        lease_until=m["lease_until"],
    )


def _card_record(row: Row[Any]) -> CardRecord:
    m = row._mapping
    return CardRecord(
        id=m["id"],
        iccid=m["iccid"],
        psk_identity=m["psk_identity"],
        msisdn=m["msisdn"],
        ota=dict(m["ota"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _campaign_record(row: Row[Any]) -> CampaignRecord:
    m = row._mapping
    return CampaignRecord(
        id=m["id"],
        name=m["name"],
        transport=Transport(m["transport"]),
        target=bytes.fromhex(m["target"]),
        script=tuple(bytes.fromhex(c) for c in m["script"]),
        settings=dict(m["settings"]),
        state=CampaignState(m["state"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _audit_sent(c: Connection, job: JobRecord, owner: str, now: datetime, outcome: str) -> None:
    """A script leaves for a card: its audit record, in the transaction that marks the job SENT (audit.py)."""
    audit.append(
        c,
        principal=f"server:{owner}",
        action="script.sent",
        at=now,
        outcome=outcome,
        card_ids=[job.card_id],
        campaign_id=job.campaign_id,
        job_id=job.id,
        script_sha256=audit.script_sha256(job.script),
    )


def _check_script(script: Sequence[bytes]) -> list[str]:
    if isinstance(script, bytes | bytearray) or not script:
        raise RepositoryError("a script is a non-empty sequence of C-APDUs")
    for i, apdu in enumerate(script):
        if not isinstance(apdu, bytes | bytearray) or len(apdu) < 4:
            raise RepositoryError(f"script[{i}] is not a C-APDU (bytes, at least CLA INS P1 P2)")
    return [bytes(c).hex() for c in script]


def _check_target(target: bytes) -> str:
    if len(target) > _MAX_TARGET:
        raise RepositoryError(f"target of {len(target)} bytes: an AID has at most 16, a TAR 3")
    return bytes(target).hex()


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RepositoryError(f"{name} must be timezone-aware")


class Repository:
    """Storage of the OTA server on one database URL; migrates the schema to the latest revision when opened
    (``migrate=False``: refuse a database that is not at that revision instead)."""

    def __init__(self, url: str, *, migrate: bool = True, clock: Callable[[], datetime] = _utc_now) -> None:
        self.url = db.normalise_url(url)
        self._clock = clock
        self._engine: Engine = db.make_engine(self.url)
        # An in-memory SQLite database is one shared connection: use it one thread at a time.
        self._lock: threading.RLock | None = threading.RLock() if db.shares_one_connection(self._engine) else None
        self._local = threading.local()  # the connection of an atomic() block, per thread
        try:
            with self._guard():
                if migrate:
                    db.upgrade(self._engine)
                else:
                    current, head = db.current_revision(self._engine), db.head_revision()
                    if current != head:
                        raise RepositoryError(
                            f"database schema is at revision {current or 'none'}, this gpchannel needs {head}: "
                            "open it with migrate=True"
                        )
        except BaseException:
            self._engine.dispose()
            raise

    # --- plumbing -----------------------------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository({self._engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialises an in-memory database and turns driver errors into RepositoryError (the message never
        carries the statement's parameters: they may hold key references)."""
        with self._lock if self._lock is not None else nullcontext():
            try:
                yield
            except sa_exc.IntegrityError as exc:
                raise _Conflict(f"constraint violated: {str(exc.orig).strip()}") from exc
            except sa_exc.DBAPIError as exc:
                raise RepositoryError(f"database error: {str(exc.orig).strip()}") from exc
            except sa_exc.SQLAlchemyError as exc:
                raise RepositoryError(f"database error: {type(exc).__name__}") from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        current: Connection | None = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self._guard(), self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        current: Connection | None = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self._guard(), db.write_transaction(self._engine) as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read transaction (the atomic() block's connection when inside one)."""
        with self._read() as connection:
            yield connection

    def atomic_connection(self) -> Connection:
        """The connection of this thread's atomic() block (RepositoryError outside one)."""
        current: Connection | None = getattr(self._local, "connection", None)
        if current is None:
            raise RepositoryError("not inside Repository.atomic()")
        return current

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        """One write transaction for everything this thread does with the Repository inside the block (its
        methods join it instead of opening their own), e.g. a change and its audit record (audit.py): both are
        committed or neither. Nested blocks join the outer one."""
        with self._write() as connection:
            outer = getattr(self._local, "connection", None)
            self._local.connection = connection
            try:
                yield connection
            finally:
                self._local.connection = outer

    def _insert(self, table: Any) -> Insert:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    # --- cards and keys -----------------------------------------------------------------------------------------

    def upsert_card(
        self,
        *,
        iccid: str | None,
        psk_identity: str | None,
        msisdn: str | None = None,
        ota: Mapping[str, Any] | None = None,
    ) -> int:
        """The id of the card with this ICCID or PSK identity, created if neither is known. Given fields (not
        None) replace the stored ones; ``ota`` replaces the whole object. An ICCID and an identity that belong to
        two different cards are refused."""
        if iccid is None and psk_identity is None:
            raise RepositoryError("a card needs an ICCID or a PSK identity")
        try:
            return self._upsert_card(iccid, psk_identity, msisdn, ota)
        except _Conflict:
            # PostgreSQL: another transaction inserted the same card between our SELECT and INSERT.
            return self._upsert_card(iccid, psk_identity, msisdn, ota)

    def _upsert_card(
        self, iccid: str | None, psk_identity: str | None, msisdn: str | None, ota: Mapping[str, Any] | None
    ) -> int:
        now = self._clock()
        with self._write() as c:
            matches: list[Row[Any]] = []
            if iccid is not None:
                matches += c.execute(select(cards.c.id).where(cards.c.iccid == iccid).with_for_update()).all()
            if psk_identity is not None:
                matches += c.execute(
                    select(cards.c.id).where(cards.c.psk_identity == psk_identity).with_for_update()
                ).all()
            ids = sorted({r.id for r in matches})
            if len(ids) > 1:
                raise RepositoryError(f"ICCID {iccid} and PSK identity {psk_identity} belong to two cards {ids}")
            values: dict[str, Any] = {"updated_at": now}
            for name, value in (("iccid", iccid), ("psk_identity", psk_identity), ("msisdn", msisdn)):
                if value is not None:
                    values[name] = value
            if ota is not None:
                values["ota"] = dict(ota)
            if ids:
                c.execute(update(cards).where(cards.c.id == ids[0]).values(values))
                return int(ids[0])
            values.setdefault("ota", {})
            result = c.execute(cards.insert().values(created_at=now, **values).returning(cards.c.id))
            return int(result.scalar_one())

    def card(self, card_id: int) -> CardRecord | None:
        with self._read() as c:
            row = c.execute(select(cards).where(cards.c.id == card_id)).one_or_none()
        return None if row is None else _card_record(row)

    def card_by_identity(self, psk_identity: str) -> CardRecord | None:
        with self._read() as c:
            row = c.execute(select(cards).where(cards.c.psk_identity == psk_identity)).one_or_none()
        return None if row is None else _card_record(row)

    def card_by_iccid(self, iccid: str) -> CardRecord | None:
        with self._read() as c:
            row = c.execute(select(cards).where(cards.c.iccid == iccid)).one_or_none()
        return None if row is None else _card_record(row)

    def cards(self, *, after_id: int = 0, limit: int = 1000) -> list[CardRecord]:
        """Cards by id, ``limit`` at a time after ``after_id`` (keyset paging)."""
        with self._read() as c:
            rows = c.execute(select(cards).where(cards.c.id > after_id).order_by(cards.c.id).limit(limit)).all()
        return [_card_record(r) for r in rows]

    def set_card_key(self, card_id: int, purpose: str, kvn: int, blob: bytes, algorithm: str) -> None:
        """Store (or replace) the key provider's reference for the card's key ``purpose``/``kvn``. ``blob`` is
        a wrapped key or a token label, never a plain key (the provider's business)."""
        if purpose not in KEY_PURPOSES:
            raise RepositoryError(f"key purpose {purpose!r} is not one of {sorted(KEY_PURPOSES)}")
        if not 0 <= kvn <= 0xFF:
            raise RepositoryError(f"key version {kvn} is not one byte")
        values = {
            "card_id": card_id,
            "purpose": purpose,
            "kvn": kvn,
            "blob": bytes(blob),
            "algorithm": algorithm,
            "updated_at": self._clock(),
        }
        stmt = self._insert(card_keys).values(values)
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["card_id", "purpose", "kvn"],
            set_={"blob": stmt.excluded.blob, "algorithm": stmt.excluded.algorithm, "updated_at": values["updated_at"]},  # type: ignore[attr-defined]
        )
        with self._write() as c:
            self._require_card(c, card_id)
            c.execute(stmt)

    def card_key(self, card_id: int, purpose: str, kvn: int | None = None) -> tuple[int, bytes, str] | None:
        """``(kvn, blob, algorithm)`` of the card's key ``purpose`` at ``kvn`` (None: the highest version)."""
        query = select(card_keys.c.kvn, card_keys.c.blob, card_keys.c.algorithm).where(
            card_keys.c.card_id == card_id, card_keys.c.purpose == purpose
        )
        query = query.where(card_keys.c.kvn == kvn) if kvn is not None else query.order_by(card_keys.c.kvn.desc())
        with self._read() as c:
            row = c.execute(query.limit(1)).one_or_none()
        return None if row is None else (int(row.kvn), bytes(row.blob), str(row.algorithm))

    def set_counter(self, card_id: int, kvn: int, value: int) -> None:
        """Set the last OTA counter used with the card's key set ``kvn`` (an import, or after a card answered
        "counter low"); the next :meth:`mark_sent` uses ``value + 1``."""
        if not 0 <= value <= MAX_OTA_COUNTER:
            raise RepositoryError(f"OTA counter {value} does not fit 5 bytes")
        if not 0 <= kvn <= 0xFF:
            raise RepositoryError(f"key version {kvn} is not one byte")
        stmt = self._insert(ota_counters).values(card_id=card_id, kvn=kvn, value=value)
        stmt = stmt.on_conflict_do_update(index_elements=["card_id", "kvn"], set_={"value": value})  # type: ignore[attr-defined]
        with self._write() as c:
            self._require_card(c, card_id)
            c.execute(stmt)

    def counter(self, card_id: int, kvn: int) -> int | None:
        """The last OTA counter used with the card's key set ``kvn`` (None: never used)."""
        with self._read() as c:
            value = c.execute(
                select(ota_counters.c.value).where(ota_counters.c.card_id == card_id, ota_counters.c.kvn == kvn)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def next_counter(self, card_id: int, kvn: int) -> int:
        """Advance the card's OTA counter for key set ``kvn`` by one in one transaction (a missing counter starts
        at 0, so the first is 1) and return it: a packet that is not a job's script (the SCP80 trigger of an
        scp81+sms job, which stays QUEUED for the admin session) gets a counter never used before."""
        stmt = self._insert(ota_counters).values(card_id=card_id, kvn=kvn, value=1)
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["card_id", "kvn"], set_={"value": ota_counters.c.value + 1}
        ).returning(ota_counters.c.value)
        with self._write() as c:
            self._require_card(c, card_id)
            counter = int(c.execute(stmt).scalar_one())
            if counter > MAX_OTA_COUNTER:
                raise RepositoryError(f"OTA counter of card {card_id} key set {kvn} is exhausted")
            return counter

    @staticmethod
    def _require_card(c: Connection, card_id: int) -> None:
        if c.execute(select(cards.c.id).where(cards.c.id == card_id)).one_or_none() is None:
            raise RepositoryError(f"no card {card_id}")

    # --- jobs ---------------------------------------------------------------------------------------------------

    def add_job(
        self,
        *,
        card_id: int,
        transport: Transport,
        script: Sequence[bytes],
        target: bytes = b"",
        campaign_id: int | None = None,
        not_before: datetime | None = None,
    ) -> int:
        """Queue a script for a card; due at ``not_before`` (default: now). Returns the job id."""
        transport = Transport(transport)
        hex_script = _check_script(script)
        hex_target = _check_target(target)
        now = self._clock()
        if not_before is not None:
            _check_aware("not_before", not_before)
        with self._write() as c:
            self._require_card(c, card_id)
            result = c.execute(
                jobs.insert()
                .values(
                    campaign_id=campaign_id,
                    card_id=card_id,
                    transport=transport.value,
                    target=hex_target,
                    script=hex_script,
                    state=JobState.QUEUED.value,
                    attempts=0,
                    not_before=not_before or now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(jobs.c.id)
            )
            return int(result.scalar_one())

    def job(self, job_id: int) -> JobRecord | None:
        with self._read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
        return None if row is None else _job_record(row)

    def job_by_delivery(self, delivery_id: str) -> JobRecord | None:
        with self._read() as c:
            row = c.execute(select(jobs).where(jobs.c.delivery_id == delivery_id)).one_or_none()
        return None if row is None else _job_record(row)

    def jobs(
        self,
        *,
        card_id: int | None = None,
        campaign_id: int | None = None,
        state: JobState | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[JobRecord]:
        """Jobs by id, filtered, ``limit`` at a time after ``after_id`` (keyset paging)."""
        query = select(jobs).where(jobs.c.id > after_id)
        if card_id is not None:
            query = query.where(jobs.c.card_id == card_id)
        if campaign_id is not None:
            query = query.where(jobs.c.campaign_id == campaign_id)
        if state is not None:
            query = query.where(jobs.c.state == JobState(state).value)
        with self._read() as c:
            rows = c.execute(query.order_by(jobs.c.id).limit(limit)).all()
        return [_job_record(r) for r in rows]

    def deliver_next_job(
        self,
        card_id: int,
        *,
        owner: str,
        now: datetime,
        transports: Collection[Transport] = SCP81_TRANSPORTS,
    ) -> JobRecord | None:
        """SCP81: hand the card's next job to the admin session now talking to it (QUEUED -> SENT, a fresh random
        ``delivery_id``, ``lease_owner`` = ``owner``), or None.

        A card's jobs run in the order they were queued: the next one is its oldest QUEUED job of these
        transports, and when that one is not yet due (``not_before > now``, e.g. a retry's back-off) nothing is
        delivered, so a later script never overtakes an earlier one. A lease held by a trigger worker does not
        stop the delivery: the card is here.
        """
        _check_aware("now", now)
        kinds = [Transport(t).value for t in transports]
        with self._write() as c:
            row = c.execute(
                select(jobs)
                .where(jobs.c.card_id == card_id, jobs.c.state == JobState.QUEUED.value, jobs.c.transport.in_(kinds))
                .order_by(jobs.c.id)
                .limit(1)
                .with_for_update()
            ).one_or_none()
            if row is None or row.not_before > now:
                return None
            c.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(
                    state=JobState.SENT.value,
                    delivery_id=secrets.token_hex(16),
                    lease_owner=owner,
                    lease_until=None,
                    updated_at=now,
                )
            )
            job = _job_record(c.execute(select(jobs).where(jobs.c.id == row.id)).one())
            _audit_sent(c, job, owner, now, f"sent ({job.transport.value} admin session)")
            return job

    def sent_job(self, card_id: int, *, transports: Collection[Transport] = SCP81_TRANSPORTS) -> JobRecord | None:
        """The card's oldest job in state SENT over these transports (an admin session to resume), if any."""
        kinds = [Transport(t).value for t in transports]
        with self._read() as c:
            row = c.execute(
                select(jobs)
                .where(jobs.c.card_id == card_id, jobs.c.state == JobState.SENT.value, jobs.c.transport.in_(kinds))
                .order_by(jobs.c.id)
                .limit(1)
            ).one_or_none()
        return None if row is None else _job_record(row)

    def note_sent_job(self, delivery_id: str, reason: str) -> bool:
        """Record why a SENT job is still waiting (its admin session broke or stalled) without changing its state;
        a job no longer SENT under this delivery is left alone. True if the note was stored."""
        with self._write() as c:
            result = c.execute(
                update(jobs)
                .where(jobs.c.delivery_id == delivery_id, jobs.c.state == JobState.SENT.value)
                .values(reason=reason, updated_at=self._clock())
            )
            return bool(result.rowcount)

    def complete_job(
        self,
        delivery_id: str,
        results: Sequence[ApduResult],
        *,
        state: JobState = JobState.DONE,
        reason: str | None = None,
    ) -> JobRecord | None:
        """Record the answer to delivery ``delivery_id``: the job becomes ``state`` (DONE or FAILED) with its
        results. Idempotent: a job already final is returned unchanged; an unknown delivery (or one superseded
        by a retry) gives None."""
        state = JobState(state)
        if state not in (JobState.DONE, JobState.FAILED):
            raise RepositoryError(f"a job completes as done or failed, not {state}")
        payload = [ApduResult(r.command, r.response, r.sw).to_json() for r in results]
        now = self._clock()
        with self._write() as c:
            row = c.execute(select(jobs).where(jobs.c.delivery_id == delivery_id).with_for_update()).one_or_none()
            if row is None:
                return None
            if JobState(row.state) is not JobState.SENT:
                return _job_record(row)
            c.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(state=state.value, results=payload, reason=reason, lease_until=None, updated_at=now)
            )
            return _job_record(c.execute(select(jobs).where(jobs.c.id == row.id)).one())

    def fail_job(self, job_id: int, reason: str, *, retry_at: datetime | None = None) -> None:
        """A delivery attempt failed (``attempts`` + 1). With ``retry_at`` the job goes back to QUEUED, due then,
        with no lease and no delivery id; without, it is FAILED. A final job is left unchanged."""
        if retry_at is not None:
            _check_aware("retry_at", retry_at)
        now = self._clock()
        with self._write() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).one_or_none()
            if row is None:
                raise RepositoryError(f"no job {job_id}")
            if JobState(row.state).final:
                return
            values: dict[str, Any] = {
                "reason": reason,
                "attempts": row.attempts + 1,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
            if retry_at is not None:
                values.update(state=JobState.QUEUED.value, not_before=retry_at, delivery_id=None, counter_used=None)
            else:
                values.update(state=JobState.FAILED.value)
            c.execute(update(jobs).where(jobs.c.id == job_id).values(values))

    def cancel_job(self, job_id: int) -> bool:
        """QUEUED -> CANCELLED (True); a job already sent or final is not cancelled (False)."""
        now = self._clock()
        with self._write() as c:
            result = c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
                .values(state=JobState.CANCELLED.value, lease_owner=None, lease_until=None, updated_at=now)
            )
            return bool(result.rowcount == 1)

    # --- workers ------------------------------------------------------------------------------------------------

    def claim_jobs(
        self,
        *,
        transports: Collection[Transport],
        owner: str,
        limit: int,
        lease_seconds: float,
        now: datetime,
        one_per_card: bool = False,
    ) -> list[JobRecord]:
        """Lease up to ``limit`` due QUEUED jobs (not leased, or whose lease expired) to ``owner`` until
        ``now + lease_seconds``, oldest due first. Two workers never get the same job while its lease runs.

        ``one_per_card``: a card has at most one job of these transports in flight across all workers, taken in
        queue order. A job is skipped while its card has another one SENT or leased, or an older one QUEUED (even
        one not yet due), so an SCP80 card sees its packets, and their counters, one after the other.
        """
        _check_aware("now", now)
        if limit <= 0:
            return []
        if lease_seconds <= 0:
            raise RepositoryError("lease_seconds must be positive")
        kinds = [Transport(t).value for t in transports]
        until = now + timedelta(seconds=lease_seconds)
        conditions = [
            jobs.c.state == JobState.QUEUED.value,
            jobs.c.transport.in_(kinds),
            jobs.c.not_before <= now,
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
        ]
        if one_per_card:
            # Two NOT EXISTS with equalities on (card_id, state): each is one probe of ix_jobs_card_id_state.
            sent = jobs.alias("sent")
            queued = jobs.alias("queued")
            conditions.append(
                ~select(sent.c.id)
                .where(
                    sent.c.card_id == jobs.c.card_id,
                    sent.c.state == JobState.SENT.value,
                    sent.c.transport.in_(kinds),
                )
                .exists()
            )
            conditions.append(
                ~select(queued.c.id)
                .where(
                    queued.c.card_id == jobs.c.card_id,
                    queued.c.state == JobState.QUEUED.value,
                    queued.c.transport.in_(kinds),
                    queued.c.id != jobs.c.id,
                    or_(queued.c.id < jobs.c.id, queued.c.lease_until >= now),
                )
                .exists()
            )
        with self._write() as c:
            ids = list(
                c.execute(
                    select(jobs.c.id)
                    .where(*conditions)
                    .order_by(jobs.c.not_before, jobs.c.id)
                    .limit(limit)
                    .with_for_update(of=jobs, skip_locked=True)
                ).scalars()
            )
            if not ids:
                return []
            c.execute(
                update(jobs).where(jobs.c.id.in_(ids)).values(lease_owner=owner, lease_until=until, updated_at=now)
            )
            rows = c.execute(select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.not_before, jobs.c.id)).all()
        return [_job_record(r) for r in rows]

    def mark_sent(self, job_id: int, *, owner: str, kvn: int, delivery_id: str, now: datetime | None = None) -> int:
        """In one transaction: check that ``owner`` still holds the job's lease (else :class:`LeaseLost`; with
        ``now``, an expired lease counts as lost too), advance the card's OTA counter for key set ``kvn`` by one
        (a missing counter starts at 0, so the first is 1), store it and ``delivery_id`` on the job and mark it
        SENT. Returns the counter to put in the secured packet."""
        if now is not None:
            _check_aware("now", now)
        stamp = now or self._clock()
        with self._write() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).one_or_none()
            if row is None:
                raise RepositoryError(f"no job {job_id}")
            if row.state != JobState.QUEUED.value or row.lease_owner != owner:
                raise LeaseLost(f"job {job_id} is {row.state}, leased to {row.lease_owner!r}, not {owner!r}")
            if now is not None and (row.lease_until is None or row.lease_until < now):
                raise LeaseLost(f"job {job_id}: the lease of {owner!r} expired")
            stmt = self._insert(ota_counters).values(card_id=row.card_id, kvn=kvn, value=1)
            stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                index_elements=["card_id", "kvn"], set_={"value": ota_counters.c.value + 1}
            ).returning(ota_counters.c.value)
            counter = int(c.execute(stmt).scalar_one())
            if counter > MAX_OTA_COUNTER:
                raise RepositoryError(f"OTA counter of card {row.card_id} key set {kvn} is exhausted")
            c.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(state=JobState.SENT.value, counter_used=counter, delivery_id=delivery_id, updated_at=stamp)
            )
            _audit_sent(c, _job_record(row), owner, stamp, f"sent ({row.transport} SMS, kvn {kvn})")
            return counter

    def renew_lease(self, job_ids: Sequence[int], *, owner: str, lease_seconds: float, now: datetime) -> list[int]:
        """Extend ``owner``'s leases on these jobs to ``now + lease_seconds``; returns the ids renewed (a job
        whose lease was taken over, or that left the queue, is not)."""
        _check_aware("now", now)
        if not job_ids:
            return []
        until = now + timedelta(seconds=lease_seconds)
        with self._write() as c:
            renewed = list(
                c.execute(
                    update(jobs)
                    .where(
                        jobs.c.id.in_(list(job_ids)),
                        jobs.c.lease_owner == owner,
                        jobs.c.state.in_([JobState.QUEUED.value, JobState.SENT.value]),
                    )
                    .values(lease_until=until, updated_at=now)
                    .returning(jobs.c.id)
                ).scalars()
            )
        return sorted(renewed)

    # --- campaigns ----------------------------------------------------------------------------------------------

    def create_campaign(
        self,
        *,
        name: str,
        transport: Transport,
        script: Sequence[bytes],
        target: bytes,
        card_ids: Sequence[int],
        settings: Mapping[str, Any],
        not_before: datetime | None = None,
    ) -> int:
        """A RUNNING campaign and one QUEUED job per card (duplicates in ``card_ids`` count once), atomically."""
        transport = Transport(transport)
        hex_script = _check_script(script)
        hex_target = _check_target(target)
        if not_before is not None:
            _check_aware("not_before", not_before)
        now = self._clock()
        unique_ids = list(dict.fromkeys(card_ids))
        with self._write() as c:
            campaign_id = int(
                c.execute(
                    campaigns.insert()
                    .values(
                        name=name,
                        transport=transport.value,
                        target=hex_target,
                        script=hex_script,
                        settings=dict(settings),
                        state=CampaignState.RUNNING.value,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(campaigns.c.id)
                ).scalar_one()
            )
            known: set[int] = set()
            for start in range(0, len(unique_ids), 1000):
                chunk = unique_ids[start : start + 1000]
                known.update(c.execute(select(cards.c.id).where(cards.c.id.in_(chunk))).scalars())
            missing = [i for i in unique_ids if i not in known]
            if missing:
                raise RepositoryError(f"no card {missing[:10]}{' ...' if len(missing) > 10 else ''}")
            rows = [
                {
                    "campaign_id": campaign_id,
                    "card_id": card_id,
                    "transport": transport.value,
                    "target": hex_target,
                    "script": hex_script,
                    "state": JobState.QUEUED.value,
                    "attempts": 0,
                    "not_before": not_before or now,
                    "created_at": now,
                    "updated_at": now,
                }
                for card_id in unique_ids
            ]
            if rows:
                c.execute(jobs.insert(), rows)
        if len(rows) >= _ANALYZE_AFTER_ROWS:
            self._analyze_jobs()
        return campaign_id

    def _analyze_jobs(self) -> None:
        """Refresh the planner's statistics of ``jobs`` after a bulk insert: on a fresh table, before autovacuum
        runs, PostgreSQL otherwise plans ``claim_jobs(one_per_card=True)`` as a scan of the whole queue per
        candidate (seconds instead of milliseconds for 10,000 jobs). Best effort: a failure is only logged."""
        try:
            with self._write() as c:
                if self.dialect == "sqlite":
                    c.exec_driver_sql("PRAGMA analysis_limit = 1000")  # sample, do not read the whole table
                c.exec_driver_sql("ANALYZE jobs")
        except RepositoryError as exc:
            _log.info("ANALYZE jobs failed: %s", exc)

    def campaign(self, campaign_id: int) -> CampaignRecord | None:
        with self._read() as c:
            row = c.execute(select(campaigns).where(campaigns.c.id == campaign_id)).one_or_none()
        return None if row is None else _campaign_record(row)

    def campaigns(self) -> list[CampaignRecord]:
        with self._read() as c:
            rows = c.execute(select(campaigns).order_by(campaigns.c.id)).all()
        return [_campaign_record(r) for r in rows]

    def campaign_progress(self, campaign_id: int) -> dict[JobState, int]:
        """How many of the campaign's jobs are in each state (every state present, 0 when none)."""
        with self._read() as c:
            rows = c.execute(
                select(jobs.c.state, func.count()).where(jobs.c.campaign_id == campaign_id).group_by(jobs.c.state)
            ).all()
        progress = dict.fromkeys(JobState, 0)
        for state, count in rows:
            progress[JobState(state)] = int(count)
        return progress

    def cancel_campaign(self, campaign_id: int) -> int:
        """The campaign becomes CANCELLED (if RUNNING) and its QUEUED jobs CANCELLED; returns how many jobs.
        Jobs already SENT run to their end."""
        now = self._clock()
        with self._write() as c:
            state = c.execute(
                select(campaigns.c.state).where(campaigns.c.id == campaign_id).with_for_update()
            ).scalar_one_or_none()
            if state is None:
                raise RepositoryError(f"no campaign {campaign_id}")
            if state == CampaignState.RUNNING.value:
                c.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(state=CampaignState.CANCELLED.value, updated_at=now)
                )
            result = c.execute(
                update(jobs)
                .where(and_(jobs.c.campaign_id == campaign_id, jobs.c.state == JobState.QUEUED.value))
                .values(state=JobState.CANCELLED.value, lease_owner=None, lease_until=None, updated_at=now)
            )
            return int(result.rowcount)

    def set_campaign_state(self, campaign_id: int, state: CampaignState) -> None:
        """Record a campaign's state (e.g. FINISHED once no job is QUEUED or SENT: the campaign runner decides)."""
        state = CampaignState(state)
        with self._write() as c:
            result = c.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(state=state.value, updated_at=self._clock())
            )
            if result.rowcount != 1:
                raise RepositoryError(f"no campaign {campaign_id}")
