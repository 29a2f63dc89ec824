"""The claim of a worker's round in one trip to the database thread: the jobs, their cards, their campaigns'
settings and their SCP80 key sets (:class:`gpchannel.server.scp80_worker.Scp80Worker`).

Measured (docs/deploy.md): per card, a worker went to the database for the claim, the card, and each of the two
keys of the key set, one transaction and one thread-pool trip each. Now :meth:`Repository.claim_batch` claims
the round's jobs and reads their cards and key rows in ONE transaction, and the key sets are opened from those
rows (:mod:`gpchannel.server.key_batch`) in the same thread, before the event loop sees the batch. Exactly once
is untouched: a claim is a lease, nothing is sent here; the counter advance and the SENT mark stay in the send's
transaction (:mod:`gpchannel.server.send_batch`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from gpchannel.keystore import KeyProvider
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.server.campaigns import CampaignSettings
from gpchannel.server.key_batch import resolve_keysets
from gpchannel.server.repository import CardRecord, JobRecord, Repository
from gpchannel.server.senders.sms import kvn_for, msisdn_of
from gpchannel.server.transports import JobTransport

__all__ = ["Claimed", "ClaimedRound", "SettingsCache", "claim_round"]

_log = logging.getLogger("gpchannel.server.scp80_worker")


@dataclass(frozen=True)
class Claimed:
    """A job leased this round, its card (None: no longer in the store) and its campaign's settings."""

    job: JobRecord
    card: CardRecord | None
    settings: CampaignSettings


@dataclass(frozen=True)
class ClaimedRound:
    """The jobs of a round (oldest due first) and the key sets found for them, by (card id, KVN)."""

    claimed: list[Claimed]
    keysets: dict[tuple[int, int], Scp80KeySet]


def claim_round(
    repo: Repository,
    keys: KeyProvider,
    *,
    transports: Collection[JobTransport],
    owner: str,
    limit: int,
    lease_seconds: float,
    now: datetime,
    settings_of: Callable[[JobRecord], CampaignSettings],
    held: Collection[int] = (),
) -> ClaimedRound:
    """Claim up to ``limit`` jobs for ``owner`` with their cards and key rows (one transaction), then their
    settings (``settings_of``, which may read a campaign) and the key sets of the cards that can be reached by
    SMS. Jobs in ``held`` (already held by the worker) are returned without key sets. Blocking: run it in a
    thread."""
    batch = repo.claim_batch(transports=transports, owner=owner, limit=limit, lease_seconds=lease_seconds, now=now)
    claimed = [Claimed(job, batch.cards.get(job.card_id), settings_of(job)) for job in batch.jobs]
    wanted = [
        (c.card, kvn_for(c.card, c.settings))
        for c in claimed
        if c.card is not None and c.job.id not in held and msisdn_of(c.card) is not None
    ]
    return ClaimedRound(claimed, resolve_keysets(keys, batch.keys, repo, wanted))


class SettingsCache:
    """The settings of each campaign a worker met (read once, from its ``settings`` JSON over ``defaults``; bad
    settings are logged and the defaults apply)."""

    def __init__(self, repo: Repository, defaults: CampaignSettings) -> None:
        self.repo = repo
        self.defaults = defaults
        self._known: dict[int, CampaignSettings] = {}

    def cached(self, job: JobRecord) -> CampaignSettings | None:
        """The job's settings when no read is needed, else None."""
        return self.defaults if job.campaign_id is None else self._known.get(job.campaign_id)

    def __call__(self, job: JobRecord) -> CampaignSettings:
        """The job's settings, its campaign read if not yet known (blocking: in a thread, or when cached)."""
        found = self.cached(job)
        if found is not None:
            return found
        assert job.campaign_id is not None
        record = self.repo.campaign(job.campaign_id)
        raw = getattr(record, "settings", None) if record is not None else None
        try:
            found = CampaignSettings.from_dict(raw, defaults=self.defaults)
        except ValueError as exc:
            _log.error("campaign %d has bad settings (%s): the worker's defaults apply", job.campaign_id, exc)
            found = self.defaults
        self._known[job.campaign_id] = found
        return found
