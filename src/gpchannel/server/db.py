"""The OTA server's tables (SQLAlchemy 2 Core), its engines and its migrations.

One schema serves both databases: SQLite (one file, the default; several processes may share it) and PostgreSQL
through psycopg 3 (several worker processes on several machines). Column types are the portable ones:
``sqlalchemy.JSON``, ``LargeBinary``, ``BigInteger`` and :class:`UtcDateTime` (a ``DateTime(timezone=True)``
that only accepts timezone-aware values and always gives back aware UTC ones, since SQLite stores naive text).

The schema itself is created and evolved by the Alembic scripts in ``migrations/`` (:func:`upgrade`), never by
``metadata.create_all``: the tables below describe what the latest migration builds, and a test checks that the
two agree.

SQLite connections run in WAL mode with ``synchronous=FULL`` (a committed OTA counter survives a power cut), a
busy timeout and foreign keys on. pysqlite's own transaction handling
is switched off (it would not put DDL in a transaction and cannot say ``BEGIN IMMEDIATE``): each transaction
emits its own ``BEGIN``, and a connection with the execution option ``sqlite_begin="IMMEDIATE"`` takes SQLite's
write lock at once (see :func:`write_transaction`), so two processes never read the same queue state and then
both write it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from gpchannel.errors import RepositoryError
from gpchannel.server.job_state import JobState
from gpchannel.server.transports import TRANSPORT_NAMES

__all__ = [
    "AUDIT_LOCK_KEY",
    "CAMPAIGN_STATES",
    "JOB_STATES",
    "MIGRATIONS_DIR",
    "SQLITE_BUSY_TIMEOUT_MS",
    "TRANSPORTS",
    "Id",
    "UtcDateTime",
    "alembic_config",
    "api_tokens",
    "audit_log",
    "campaigns",
    "card_keys",
    "cards",
    "current_revision",
    "downgrade",
    "head_revision",
    "is_postgresql",
    "is_sqlite",
    "jobs",
    "make_engine",
    "metadata",
    "normalise_url",
    "ota_counters",
    "shares_one_connection",
    "upgrade",
    "write_transaction",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000

# The values the CHECK constraints allow (the first migration keeps its own literal copy; a test checks both).
JOB_STATES = tuple(s.value for s in JobState)
CAMPAIGN_STATES = ("running", "cancelled", "finished")
TRANSPORTS = TRANSPORT_NAMES

# Same names on both databases, so migrations can refer to constraints.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that refuses naive datetimes and returns aware UTC ones on both databases.

    SQLite keeps the UTC wall time as fixed-width text (so ``<`` and ``ORDER BY`` stay correct); PostgreSQL keeps
    a ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise RepositoryError(f"naive datetime {value.isoformat()}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Row ids: BIGINT on PostgreSQL, INTEGER on SQLite (only "INTEGER PRIMARY KEY" is SQLite's autoincrementing rowid).
Id = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


cards = Table(
    "cards",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("iccid", Text, nullable=True, unique=True),
    Column("psk_identity", Text, nullable=True, unique=True),
    Column("msisdn", Text, nullable=True),
    Column("ota", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("iccid IS NOT NULL OR psk_identity IS NOT NULL", name="identified"),
)

card_keys = Table(
    "card_keys",
    metadata,
    Column("card_id", Id, ForeignKey("cards.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("kvn", Integer, nullable=False),
    # The key provider's reference: a wrapped key (DbKeyProvider) or a token label (PKCS#11); never a plain key.
    Column("blob", LargeBinary, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("card_id", "purpose", "kvn"),
    CheckConstraint("kvn >= 0 AND kvn <= 255", name="kvn"),
)

ota_counters = Table(
    "ota_counters",
    metadata,
    Column("card_id", Id, ForeignKey("cards.id", ondelete="CASCADE"), nullable=False),
    Column("kvn", Integer, nullable=False),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("card_id", "kvn"),
    # ETSI TS 102 225 5.1.1: the counter is 5 bytes.
    CheckConstraint("value >= 0 AND value <= 1099511627775", name="value"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("transport", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("script", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(_in("state", CAMPAIGN_STATES), name="state"),
    CheckConstraint(_in("transport", TRANSPORTS), name="transport"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("campaign_id", Id, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=True),
    Column("card_id", Id, ForeignKey("cards.id", ondelete="CASCADE"), nullable=False),
    Column("transport", Text, nullable=False),
    Column("target", Text, nullable=False),  # hex AID (SCP81) or TAR (SCP80); '' = the ISD
    Column("script", JSON, nullable=False),  # list of hex C-APDUs
    Column("state", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("lease_owner", Text, nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("delivery_id", Text, nullable=True, unique=True),
    Column("counter_used", BigInteger, nullable=True),
    Column("results", JSON, nullable=True),  # list of {"command", "response", "sw"}
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(_in("state", JOB_STATES), name="state"),
    CheckConstraint(_in("transport", TRANSPORTS), name="transport"),
    CheckConstraint("attempts >= 0", name="attempts"),
    Index(None, "state", "transport", "not_before"),
    Index(None, "card_id", "state"),
    Index(None, "campaign_id", "state"),
)


api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("key_id", Text, nullable=False, unique=True),  # the token's public lookup part (gpc1_<key_id>_...)
    Column("salt", LargeBinary, nullable=False),
    Column("digest", LargeBinary, nullable=False),  # HMAC-SHA256(salt, secret): never the token itself
    Column("scopes", JSON, nullable=False),
    Column("cards_tag", Text, nullable=True),
    Column("limits", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("principal", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("card_ids", JSON, nullable=False),
    Column("campaign_id", BigInteger, nullable=True),
    Column("job_id", BigInteger, nullable=True),
    Column("script_sha256", Text, nullable=True),
    Column("outcome", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
)

# pg_advisory_xact_lock key held while a record is appended to the audit chain (audit.py): one writer at a time.
AUDIT_LOCK_KEY = 0x67706361  # "gpca"


# --- engines ---------------------------------------------------------------------------------------------------

_PG_SCHEMES = re.compile(r"^(postgres|postgresql)(\+psycopg2?)?://")


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3 (``postgresql+psycopg://``); others are kept."""
    return _PG_SCHEMES.sub("postgresql+psycopg://", url, count=1)


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgresql(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def _sqlite_memory(url: str) -> bool:
    database = make_url(url).database
    return database in (None, "", ":memory:") or "mode=memory" in url


def shares_one_connection(engine: Engine) -> bool:
    """True for an in-memory SQLite engine: its one connection must be used by one thread at a time."""
    return isinstance(engine.pool, StaticPool)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the connection settings this module's docstring describes.

    ``sqlite://`` (in memory) gets one shared connection (StaticPool); the Repository serialises its use.
    """
    url = normalise_url(url)
    name = make_url(url).get_backend_name()
    if name == "sqlite":
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        if _sqlite_memory(url):
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, hide_parameters=True, **kwargs)
        _configure_sqlite(engine)
        return engine
    if name == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, hide_parameters=True, **kwargs)
    raise RepositoryError(f"unsupported database URL scheme {name!r}: use sqlite:///PATH or postgresql+psycopg://")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's "begin" event below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed transaction survives a power cut too (NORMAL, in WAL mode, may lose the last
            # ones): an OTA counter handed out must never be handed out again (ETSI TS 102 225 5.1.1).
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise RepositoryError(f"bad sqlite_begin {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the database's write lock from its first statement
    (``BEGIN IMMEDIATE``), so what it reads cannot change before it writes; on PostgreSQL a plain transaction
    (the statements lock rows themselves, ``SELECT ... FOR UPDATE``)."""
    with engine.connect() as connection:
        if is_sqlite(connection):
            connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


# --- migrations ------------------------------------------------------------------------------------------------

# pg_advisory_xact_lock key: concurrent servers/workers starting on one empty database migrate one at a time.
_MIGRATION_LOCK_KEY = 0x67706368  # "gpch"
# Alembic keeps the running migration's context in module globals (alembic.context, alembic.op): two threads of
# one process must never run commands at the same time, even on two different databases.
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code (no alembic.ini): the scripts shipped in the package and, when
    given, the connection to migrate (env.py uses it as is, inside its transaction)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RepositoryError(f"no Alembic revision in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (None: an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` in one transaction, one process (and one thread) at a time."""
    with _ALEMBIC_LOCK, write_transaction(engine) as connection:
        if is_postgresql(connection):
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Migrate the database down to ``revision`` (``base``: no tables at all) in one transaction."""
    with _ALEMBIC_LOCK, write_transaction(engine) as connection:
        if is_postgresql(connection):
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        command.downgrade(alembic_config(connection), revision)
