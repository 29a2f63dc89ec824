"""Database fixtures of the server tests: ``sqlite_url``, ``postgres_url``, ``repo_url`` (both) and ``repository``.

PostgreSQL is the throwaway cluster of scripts/postgres.sh (started here when needed); every test that asks for
``postgres_url`` gets a database of its own, dropped afterwards, and the ``postgres`` marker. Where the cluster
cannot start, those tests skip with the reason; in CI (env CI=true) they fail instead.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gpchannel.server.repository import Repository

REPO = Path(__file__).resolve().parents[2]
POSTGRES_SCRIPT = REPO / "scripts" / "postgres.sh"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the cluster's ``gpchannel`` database, the cluster started by scripts/postgres.sh if needed."""
    try:
        started = subprocess.run(
            [str(POSTGRES_SCRIPT), "start"], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/postgres.sh start: {exc}")
    if started.returncode != 0:
        _unavailable(f"PostgreSQL cannot run here: {(started.stderr or started.stdout).strip()}")
    url = subprocess.run(
        [str(POSTGRES_SCRIPT), "url"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test cluster, dropped after the test."""
    name = f"gpc_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(make_url(postgres_server).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A database file in the test's temporary directory (created on first use)."""
    return f"sqlite:///{tmp_path / 'gpchannel-server.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def repo_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def repository(repo_url: str) -> Iterator[Repository]:
    """A migrated Repository on ``repo_url``, closed after the test."""
    repo = Repository(repo_url)
    try:
        yield repo
    finally:
        repo.close()
