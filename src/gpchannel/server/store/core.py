"""The store's plumbing: one database URL, its transactions and the ``atomic()`` block every aggregate shares.

:class:`StoreCore` is the base of the aggregate stores (:mod:`.cards`, :mod:`.jobs`, :mod:`.leases`,
:mod:`.campaigns`) that :class:`gpchannel.server.repository.Repository` joins into one facade:

- Every method is one database transaction. Methods that read then write take the write lock first: on SQLite
  ``BEGIN IMMEDIATE``, on PostgreSQL row locks (``SELECT ... FOR UPDATE``, ``SKIP LOCKED`` when claiming).
- Inside :meth:`StoreCore.atomic` every method of this thread joins the block's transaction instead.
- Driver errors become :class:`~gpchannel.errors.RepositoryError` whose message never carries the statement's
  parameters (they may hold key references).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gpchannel.errors import RepositoryError
from gpchannel.server import db

__all__ = ["Conflict", "StoreCore", "check_aware", "check_script", "check_target", "utc_now"]

_MAX_TARGET = 16  # an AID is 5..16 bytes (ISO 7816-5), a TAR 3 bytes; b"" = the ISD


def utc_now() -> datetime:
    return datetime.now(UTC)


class Conflict(RepositoryError):
    """A unique or foreign key constraint refused a write (internal: some callers retry)."""


def check_script(script: Sequence[bytes]) -> list[str]:
    if isinstance(script, bytes | bytearray) or not script:
        raise RepositoryError("a script is a non-empty sequence of C-APDUs")
    for i, apdu in enumerate(script):
        if not isinstance(apdu, bytes | bytearray) or len(apdu) < 4:
            raise RepositoryError(f"script[{i}] is not a C-APDU (bytes, at least CLA INS P1 P2)")
    return [bytes(c).hex() for c in script]


def check_target(target: bytes) -> str:
    if len(target) > _MAX_TARGET:
        raise RepositoryError(f"target of {len(target)} bytes: an AID has at most 16, a TAR 3")
    return bytes(target).hex()


def check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RepositoryError(f"{name} must be timezone-aware")


class StoreCore:
    """Storage of the OTA server on one database URL; migrates the schema to the latest revision when opened
    (``migrate=False``: refuse a database that is not at that revision instead)."""

    def __init__(self, url: str, *, migrate: bool = True, clock: Callable[[], datetime] = utc_now) -> None:
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
                raise Conflict(f"constraint violated: {str(exc.orig).strip()}") from exc
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

    @contextmanager
    def read_block(self) -> Iterator[Connection]:
        """One read transaction for every read this thread makes with the Repository inside the block (e.g. the
        PSK lookup's card and key: one connection, one BEGIN and COMMIT instead of two). Nothing inside may
        write. Inside an atomic() block it joins that block's transaction."""
        current: Connection | None = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self._read() as connection:
            self._local.connection = connection
            try:
                yield connection
            finally:
                self._local.connection = None

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
