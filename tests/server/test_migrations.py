"""The server schema's Alembic migrations on SQLite and PostgreSQL: upgrade from empty, downgrade to base and up
again, agreement with gpchannel.server.db's tables, concurrent first opens, and shipping in the package."""

from __future__ import annotations

import fnmatch
import threading
import tomllib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from gpchannel.errors import RepositoryError
from gpchannel.server import db
from gpchannel.server.repository import JobTransport, Repository

TABLES = {"cards", "card_keys", "ota_counters", "campaigns", "jobs", "api_tokens", "audit_log"}
REPO = Path(__file__).resolve().parents[2]


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_head_from_empty_builds_what_db_py_describes(repo_url: str) -> None:
    engine = db.make_engine(repo_url)
    try:
        assert db.current_revision(engine) is None
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision() == db.head_revision()
        assert _tables(repo_url) == TABLES | {"alembic_version"}
        with engine.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), db.metadata)
        assert diff == []
        indexes = {i["name"] for i in inspect(engine).get_indexes("jobs")}
        assert "ix_jobs_state_transport_not_before" in indexes
        db.upgrade(engine)  # at head already: nothing to do
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_downgrade_base_then_upgrade_again(repo_url: str) -> None:
    with Repository(repo_url) as repo:
        repo.upsert_card(iccid="1", psk_identity="a")
    engine = db.make_engine(repo_url)
    try:
        db.downgrade(engine, "base")
        assert db.current_revision(engine) is None
        assert _tables(repo_url) & TABLES == set()
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()
    with Repository(repo_url, migrate=False) as repo:
        assert repo.cards() == []
        card_id = repo.upsert_card(iccid="1", psk_identity="a")
        assert repo.add_job(card_id=card_id, transport=JobTransport.SCP81, script=[b"\x80\xca\x00\x66"]) >= 1


def test_migrate_false_refuses_a_database_not_at_head(repo_url: str) -> None:
    with pytest.raises(RepositoryError, match="revision none"):
        Repository(repo_url, migrate=False)
    Repository(repo_url).close()
    Repository(repo_url, migrate=False).close()


def test_concurrent_first_opens_migrate_once(repo_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            Repository(repo_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = db.make_engine(repo_url)
    try:
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_threads_opening_different_databases_at_once(tmp_path: Path) -> None:
    """Alembic's context is process-global: migrations of different databases in threads must not mix."""
    urls = [f"sqlite:///{tmp_path / f'db{n}.sqlite'}" for n in range(6)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(urls))

    def open_it(url: str) -> None:
        try:
            barrier.wait()
            with Repository(url) as repo:
                repo.upsert_card(iccid=url, psk_identity=None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for url in urls:
        with Repository(url, migrate=False) as repo:
            assert [c.iccid for c in repo.cards()] == [url]


def test_env_py_connects_itself_given_only_a_url(repo_url: str) -> None:
    """What the alembic command line does with an ini file naming sqlalchemy.url."""
    config = db.alembic_config()
    config.set_main_option("sqlalchemy.url", repo_url)
    command.upgrade(config, "head")
    assert _tables(repo_url) >= TABLES
    command.downgrade(config, "base")
    assert _tables(repo_url) & TABLES == set()


def test_check_constraints_hold_in_the_database(repo_url: str) -> None:
    with Repository(repo_url) as repo:
        card_id = repo.upsert_card(iccid="1", psk_identity="a")
        job_id = repo.add_job(card_id=card_id, transport=JobTransport.SCP80, script=[b"\x80\xca\x00\x66"])
        for statement in (
            f"UPDATE jobs SET state = 'lost' WHERE id = {job_id}",
            f"UPDATE jobs SET transport = 'carrier-pigeon' WHERE id = {job_id}",
            f"UPDATE jobs SET card_id = {card_id + 99} WHERE id = {job_id}",  # foreign key
            f"INSERT INTO ota_counters (card_id, kvn, value) VALUES ({card_id}, 1, {1 << 40})",
        ):
            with pytest.raises(IntegrityError), repo.engine.begin() as c:
                c.execute(text(statement))


def test_migrations_are_package_data() -> None:
    """The wheel must carry env.py, script.py.mako and versions/*.py: pyproject's package-data globs cover them."""
    files = [p.relative_to(REPO / "src" / "gpchannel").as_posix() for p in db.MIGRATIONS_DIR.rglob("*")]
    files = [f for f in files if _is_source(f)]
    assert {"server/migrations/env.py", "server/migrations/script.py.mako"} <= set(files)
    assert "server/migrations/versions/0001_initial.py" in files
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gpchannel"]
    for f in files:
        assert any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in globs), f


def _is_source(relative: str) -> bool:
    return "__pycache__" not in relative and (relative.endswith(".py") or relative.endswith(".mako"))
