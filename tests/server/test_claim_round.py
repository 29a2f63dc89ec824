"""server/claim_round.py and Repository.claim_batch on SQLite and PostgreSQL: a round's claim leases the due jobs
once (oldest first), with their cards and key rows in the same transaction, their campaigns' settings read once,
and the key sets of the cards reachable by SMS opened; jobs the worker already holds get none."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gpchannel.server.campaigns import CampaignSettings, create_campaign
from gpchannel.server.claim_round import SettingsCache, claim_round
from gpchannel.server.keys import DbKeyProvider
from gpchannel.server.repository import JobState, JobTransport, Repository

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MASTER = bytes(range(32))
GET_DATA = bytes.fromhex("80CA004200")


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    with Repository(repo_url, clock=lambda: NOW) as repository:
        yield repository


def _cards(repo: Repository, count: int, *, msisdn: bool = True) -> list[int]:
    keys = DbKeyProvider(repo, MASTER)
    ids = []
    for n in range(count):
        card = repo.upsert_card(iccid=f"8988219{n:012d}", psk_identity=None, msisdn=f"4917{n:08d}" if msisdn else None)
        keys.store_card_keys(card, {("kic", 1): (bytes([n]) * 16, "aes-cbc"), ("kid", 1): (b"\x22" * 16, "aes-cmac")})
        ids.append(card)
    return ids


def test_claim_batch_leases_due_jobs_once_with_their_cards_and_key_rows(repo: Repository) -> None:
    cards = _cards(repo, 3)
    later = repo.add_job(
        card_id=cards[0], transport=JobTransport.SCP80, script=[GET_DATA], not_before=NOW + timedelta(1)
    )
    jobs = [repo.add_job(card_id=c, transport=JobTransport.SCP80, script=[GET_DATA], not_before=NOW) for c in cards]
    admin = repo.add_job(card_id=cards[0], transport=JobTransport.SCP81, script=[GET_DATA], not_before=NOW)
    first = repo.claim_batch(transports=[JobTransport.SCP80], owner="w1", limit=2, lease_seconds=60, now=NOW)
    assert [j.id for j in first.jobs] == jobs[:2]  # oldest due first, not the later one, not the SCP81 one
    assert {j.lease_owner for j in first.jobs} == {"w1"} and {j.state for j in first.jobs} == {JobState.QUEUED}
    assert first.jobs[0].lease_until == NOW + timedelta(seconds=60)
    assert sorted(first.cards) == cards[:2] and first.cards[cards[1]].msisdn == "491700000001"
    assert sorted(first.keys) == sorted((c, p, 1) for c in cards[:2] for p in ("kic", "kid"))
    second = repo.claim_batch(transports=[JobTransport.SCP80], owner="w2", limit=5, lease_seconds=60, now=NOW)
    assert [j.id for j in second.jobs] == [jobs[2]]  # a leased job is nobody else's
    empty = repo.claim_batch(transports=[JobTransport.SCP80], owner="w3", limit=5, lease_seconds=60, now=NOW)
    assert (empty.jobs, empty.cards, empty.keys) == ([], {}, {})
    assert repo.claim_batch(transports=[JobTransport.SCP80], owner="w3", limit=0, lease_seconds=60, now=NOW).jobs == []
    assert repo.job(later).lease_owner is None and repo.job(admin).lease_owner is None  # type: ignore[union-attr]


def test_claim_round_reads_each_campaign_once_and_opens_the_key_sets(repo: Repository) -> None:
    cards = _cards(repo, 3)
    unreachable = _cards(repo, 4, msisdn=False)[3]  # the 4th card has no MSISDN in this second call
    settings = CampaignSettings(rate=5, kvn=1)
    campaign = create_campaign(
        repo, name="c", transport=JobTransport.SCP80, script=[GET_DATA], card_ids=[*cards, unreachable],
        settings=settings,
    )  # fmt: skip
    reads: list[int] = []
    cache = SettingsCache(repo, CampaignSettings())
    real = repo.campaign

    def counted(campaign_id: int) -> object:
        reads.append(campaign_id)
        return real(campaign_id)

    repo.campaign = counted  # type: ignore[method-assign, assignment]
    held = repo.jobs(campaign_id=campaign, limit=1)[0].id
    round_ = claim_round(
        repo, DbKeyProvider(repo, MASTER), transports=[JobTransport.SCP80], owner="w", limit=10, lease_seconds=60,
        now=NOW + timedelta(seconds=1), settings_of=cache, held={held},
    )  # fmt: skip
    assert len(round_.claimed) == 4 and reads == [campaign]
    assert {c.settings.rate for c in round_.claimed} == {5.0}
    assert sorted(round_.keysets) == [(cards[1], 1), (cards[2], 1)]  # not the held job's, not the unreachable card's
    assert round_.keysets[(cards[1], 1)].kic_key == b"\x01" * 16


def test_settings_cache_defaults_for_jobs_without_a_campaign_and_reads_a_campaign_once(repo: Repository) -> None:
    (card,) = _cards(repo, 1)
    defaults = CampaignSettings(rate=3)
    cache = SettingsCache(repo, defaults)
    job = repo.job(repo.add_job(card_id=card, transport=JobTransport.SCP80, script=[GET_DATA]))
    assert job is not None and cache.cached(job) is defaults and cache(job) is defaults
    campaign = create_campaign(repo, name="c", transport=JobTransport.SCP80, script=[GET_DATA], card_ids=[card])
    (queued,) = [j for j in repo.jobs(campaign_id=campaign)]
    assert cache.cached(queued) is None
    assert cache(queued).rate == CampaignSettings().rate and cache.cached(queued) is not None
