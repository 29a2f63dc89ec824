"""A campaign in every job state, with a failed card whose reason holds HTML, for the tests of the campaign pages
(tests/server/test_web.py and test_web_browser.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gpchannel.server.campaigns import create_campaign
from gpchannel.server.config import ServerServices
from gpchannel.server.repository import ApduResult, JobState

__all__ = ["CARDS", "NAME", "REFUSED_REASON", "Fleet", "campaign_with_failures"]

NAME = 'SPN <update> & "read"'
CARDS = [f"89882110000000000{n:02d}" for n in range(1, 6)]
REFUSED_REASON = "the card refused GET DATA: 6982 <security status not satisfied>"
POR_REASON = "PoR status 02 (CNTR_LOW)"
GET_DATA, GET_STATUS = bytes.fromhex("80CA006600"), bytes.fromhex("80F28002024F00")


@dataclass(frozen=True)
class Fleet:
    campaign_id: int
    card_ids: list[int]


def campaign_with_failures(services: ServerServices) -> Fleet:
    """Five cards: 1 done (SW 9000), 2 failed on the card's 6982 (the reason holds ``<...>``), 3 failed on a PoR
    status, 4 sent, 5 queued."""
    repo = services.repository
    ids = [
        repo.upsert_card(iccid=iccid, psk_identity=f"card-{n}", msisdn=f"+4915550000{n}")
        for n, iccid in enumerate(CARDS, 1)
    ]
    campaign = create_campaign(repo, name=NAME, transport="scp81", script=[GET_DATA, GET_STATUS], card_ids=ids)
    jobs = {job.card_id: job for job in repo.jobs(campaign_id=campaign)}
    now = datetime.now(UTC)

    def deliver(card_id: int) -> str:
        job = repo.deliver_next_job(card_id, owner="test", now=now)
        assert job is not None and job.delivery_id is not None
        return job.delivery_id

    ok = [ApduResult(GET_DATA, bytes.fromhex("6600"), 0x9000), ApduResult(GET_STATUS, b"", 0x9000)]
    repo.complete_job(deliver(ids[0]), ok)
    refused = [ApduResult(GET_DATA, b"", 0x6982)]
    repo.complete_job(deliver(ids[1]), refused, state=JobState.FAILED, reason=REFUSED_REASON)
    repo.fail_job(jobs[ids[2]].id, POR_REASON)
    deliver(ids[3])
    return Fleet(campaign, ids)
