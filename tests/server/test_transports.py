"""gpchannel.server.transports is the one list of transports: the tables' CHECK constraints derive from it, the
first migration's literal copy agrees with it, and the built-in senders cover it exactly."""

from __future__ import annotations

import importlib.util
import re

from gpchannel.server import db
from gpchannel.server.job_state import JobState
from gpchannel.server.senders import SENDERS
from gpchannel.server.transports import SCP81_TRANSPORTS, TRANSPORT_NAMES, JobTransport


def _first_migration() -> object:
    path = db.MIGRATIONS_DIR / "versions" / "0001_initial.py"
    spec = importlib.util.spec_from_file_location("gpc_migration_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _values(check: str) -> tuple[str, ...]:
    match = re.fullmatch(r"\w+ IN \((.*)\)", check)
    assert match is not None, check
    return tuple(v.strip().strip("'") for v in match.group(1).split(","))


def test_the_first_migration_keeps_a_copy_that_agrees() -> None:
    migration = _first_migration()
    assert _values(migration._TRANSPORTS) == TRANSPORT_NAMES  # type: ignore[attr-defined]
    assert _values(migration._JOB_STATES) == tuple(s.value for s in JobState)  # type: ignore[attr-defined]


def test_the_tables_derive_from_the_one_list() -> None:
    assert db.TRANSPORTS == TRANSPORT_NAMES == tuple(t.value for t in JobTransport) == ("scp81", "scp80", "scp81+sms")
    assert db.JOB_STATES == tuple(s.value for s in JobState)
    for table in (db.jobs, db.campaigns):
        checks = {str(c.name): str(getattr(c, "sqltext", "")) for c in table.constraints}
        assert _values(checks[f"ck_{table.name}_transport"]) == TRANSPORT_NAMES


def test_every_transport_has_one_sender_and_the_worker_claims_the_sms_ones() -> None:
    assert sorted(SENDERS.transports()) == sorted(TRANSPORT_NAMES)
    assert SENDERS.claimed() == (JobTransport.SCP80, JobTransport.SCP81_SMS)
    assert set(SCP81_TRANSPORTS) == {JobTransport.SCP81, JobTransport.SCP81_SMS}
