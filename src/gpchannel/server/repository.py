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

The facade joins one store per aggregate (:mod:`gpchannel.server.store`): cards, keys and counters
(:mod:`~gpchannel.server.store.cards`); jobs (:mod:`~gpchannel.server.store.jobs`) and the workers' leases
(:mod:`~gpchannel.server.store.leases`); campaigns (:mod:`~gpchannel.server.store.campaigns`); all on the
plumbing of :mod:`~gpchannel.server.store.core`. A job's states and their transitions are
:mod:`gpchannel.server.job_state`; the transports :mod:`gpchannel.server.transports`.

DONE, FAILED and CANCELLED are final: :meth:`Repository.complete_job` and :meth:`Repository.fail_job` leave a
final job unchanged (a duplicate PoR or a late response is harmless). ``attempts`` counts failed attempts (each
:meth:`Repository.fail_job`). A retried job loses its ``delivery_id``, so a late answer to the earlier attempt
completes nothing.
"""

from __future__ import annotations

from gpchannel.server.job_state import JobState
from gpchannel.server.store.admin import AdminOutcome, AdminStep, AdminStore, Completion
from gpchannel.server.store.campaigns import CampaignRecord, CampaignState, CampaignStore
from gpchannel.server.store.cards import KEY_PURPOSES, MAX_OTA_COUNTER, CardRecord, CardStore
from gpchannel.server.store.jobs import ApduResult, JobRecord, JobStore
from gpchannel.server.store.leases import LeaseStore
from gpchannel.server.transports import SCP81_TRANSPORTS, JobTransport

__all__ = [
    "KEY_PURPOSES",
    "MAX_OTA_COUNTER",
    "SCP81_TRANSPORTS",
    "AdminOutcome",
    "AdminStep",
    "ApduResult",
    "CampaignRecord",
    "CampaignState",
    "CardRecord",
    "Completion",
    "JobRecord",
    "JobState",
    "JobTransport",
    "Repository",
]


class Repository(CardStore, JobStore, LeaseStore, CampaignStore, AdminStore):
    """Storage of the OTA server on one database URL; migrates the schema to the latest revision when opened
    (``migrate=False``: refuse a database that is not at that revision instead). See the module docstring."""
