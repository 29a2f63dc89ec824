"""Campaigns: one script run on a set of cards over SCP80 (SMS through SMPP), SCP81 (RAM over HTTP), or SCP81
with an SCP80 trigger (Amendment B Table 3-3, ota-notes B.3) and SMS fallback.

A campaign is a row (name, transport, target, script, :class:`CampaignSettings`) and one job per card
(Repository.create_campaign). Each job follows the per-card state machine below (the states are the
Repository's :class:`JobState`; :data:`TRANSITIONS` is the table, :func:`next_state` checks a move)::

    QUEUED --claim/mark_sent--> SENT --PoR (00) / session done--> DONE
      ^   \\                      |--PoR error, final (01 02 03 04 05 06 07 09 0A)--> FAILED (reason)
      |    \\--cancel--> CANCELLED |--no PoR in por_timeout, or transient error-->
      |                          |      attempts < max_attempts: QUEUED again, not before now + backoff
      +--------------------------+      else FAILED ("no PoR after N attempts")

SCP81 jobs are taken by the admin server when the card opens its session (``deliver_next_job``); an
``scp81+sms`` job additionally gets an SCP80 trigger SMS (tag 81, GP Amendment B Table 3-3) to the ISD's TAR
from the SCP80 worker and, when no session completed it within ``trigger_timeout``, runs its script over SCP80
SMS instead (:mod:`gpchannel.server.scp80_worker`).

Retry rule (the exact one; a demanding OTA engineer asks): a retry is a *new* command packet with a *new*
counter (Repository.mark_sent advances the (card, KVN) counter in the same transaction as the send), so the
packet sent earlier can never run twice (the card refuses an old counter with 02). A PoR that never came does
not say whether the card ran the script (the SMS-DELIVER-REPORT may be lost after the card acted), so a retry
may run a script a second time: ``max_attempts`` 1 (no retry on a missing PoR) is the setting for scripts that
are not idempotent; the default (3) suits idempotent RAM/RFM scripts. A PoR with a final error status is never
retried: 02/03/04 mean the server's counter is out of step with the card's, which needs an operator, and
01/05/06/09/0A mean wrong keys or TAR. 08 (more time) and an undelivered SMS are retried like a missing PoR.

Backoff: attempt ``n`` (1 for the first retry) waits ``min(backoff_max, backoff_base * backoff_factor**(n-1))``
seconds, no jitter (the rate limiter already spreads sends). Rate limits are token buckets
(:class:`TokenBucket`) with an injected clock: one per campaign (``rate`` messages per second, ``burst``) and one
per SMPP bind in the worker. They hold per worker process: N workers on one campaign send up to N x rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import InventoryError, LocalProtocolError, RepositoryError
from gpchannel.ota.spi import Spi
from gpchannel.server import audit
from gpchannel.server.inventory import ISD_TAR
from gpchannel.server.repository import CampaignState, JobState, JobTransport

if TYPE_CHECKING:
    from gpchannel.server.repository import CardRecord, Repository

__all__ = [
    "TRANSITIONS",
    "CampaignSettings",
    "JobEvent",
    "ScriptFormat",
    "TokenBucket",
    "create_campaign",
    "finish_if_done",
    "next_state",
    "parse_script",
    "parse_target",
    "resolve_cards",
    "retry_at",
]


class ScriptFormat(StrEnum):
    """How an SCP80 script travels (TS 102 226 5.1 compact: the last R-APDU only; 5.2 expanded: every one)."""

    COMPACT = "compact"
    EXPANDED = "expanded"


@dataclass(frozen=True)
class CampaignSettings:
    """The knobs of one campaign (stored with it as JSON; unknown keys are refused)."""

    rate: float = 10.0
    """SMS per second for this campaign (per worker process)."""
    burst: int = 10
    """Messages that may leave at once after a quiet time (the bucket's size)."""
    max_attempts: int = 3
    """Sends per card, the first included (1 = never retry)."""
    backoff_base: float = 30.0
    backoff_factor: float = 2.0
    backoff_max: float = 3600.0
    por_timeout: float = 120.0
    """Seconds after the submit_sm for the PoR; then the job is retried or failed."""
    trigger_timeout: float = 300.0
    """scp81+sms: seconds after the trigger SMS for the card's admin session; then the SMS fallback."""
    script_format: ScriptFormat = ScriptFormat.EXPANDED
    kvn: int | None = None
    """SCP80 key set; None = the card's own (inventory ``scp80_kvn``)."""
    spi: str | None = None
    """SCP80 SPI (hex), None = the card's for that key set (inventory), else 1619."""
    fallback_tar: str | None = None
    """scp81+sms: the TAR of the SMS fallback (hex); None = the ISD's RAM TAR 000000 (target '' only)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        if not 1 <= self.max_attempts <= 100:
            raise ValueError(f"max_attempts must be 1..100, got {self.max_attempts}")
        for name in ("backoff_base", "backoff_max", "por_timeout", "trigger_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value}")
        if self.por_timeout <= 0 or self.trigger_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if not (math.isfinite(self.backoff_factor) and self.backoff_factor >= 1):
            raise ValueError(f"backoff_factor must be at least 1, got {self.backoff_factor}")
        if self.kvn is not None and not 1 <= self.kvn <= 15:
            raise ValueError(f"kvn must be 1..15, got {self.kvn}")
        if self.spi is not None:
            Spi.from_bytes(_hex(self.spi, "spi", (2,)))
        if self.fallback_tar is not None:
            _hex(self.fallback_tar, "fallback_tar", (3,))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["script_format"] = str(self.script_format)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, *, defaults: CampaignSettings | None = None) -> CampaignSettings:
        """Settings from JSON (missing keys: ``defaults``); ValueError naming a bad or unknown key."""
        base = (defaults or cls()).to_dict()
        if raw is None:
            return cls._of(base)
        if not isinstance(raw, Mapping):
            raise ValueError("settings must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        base.update(raw)
        return cls._of(base)

    @classmethod
    def _of(cls, raw: Mapping[str, Any]) -> CampaignSettings:
        try:
            return cls(
                rate=float(raw["rate"]),
                burst=_int(raw["burst"], "burst"),
                max_attempts=_int(raw["max_attempts"], "max_attempts"),
                backoff_base=float(raw["backoff_base"]),
                backoff_factor=float(raw["backoff_factor"]),
                backoff_max=float(raw["backoff_max"]),
                por_timeout=float(raw["por_timeout"]),
                trigger_timeout=float(raw["trigger_timeout"]),
                script_format=ScriptFormat(raw["script_format"]),
                kvn=None if raw["kvn"] is None else _int(raw["kvn"], "kvn"),
                spi=None if raw["spi"] is None else str(raw["spi"]),
                fallback_tar=None if raw["fallback_tar"] is None else str(raw["fallback_tar"]),
            )
        except (TypeError, KeyError) as exc:
            raise ValueError(f"bad settings: {exc}") from None

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1 = the first retry)."""
        if retry < 1:
            return 0.0
        try:
            delay = self.backoff_base * self.backoff_factor ** (retry - 1)
        except OverflowError:
            return self.backoff_max
        return min(self.backoff_max, delay)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{name} must be an integer")
    try:
        return int(value, 0) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _hex(text: str, name: str, lengths: Sequence[int] | None = None) -> bytes:
    try:
        value = bytes.fromhex(text.replace(" ", ""))
    except (ValueError, AttributeError):
        raise ValueError(f"{name}: hex digits expected") from None
    if lengths is not None and len(value) not in lengths:
        raise ValueError(f"{name}: {' or '.join(map(str, lengths))} bytes expected, got {len(value)}")
    return value


def retry_at(settings: CampaignSettings, attempts: int, now: datetime) -> datetime | None:
    """When a job that just failed its ``attempts``-th send (1 = the first) goes again; None = no more tries."""
    if attempts >= settings.max_attempts:
        return None
    return now + timedelta(seconds=settings.backoff(attempts))


# --------------------------------------------------------------------------------------------- state machine


class JobEvent(StrEnum):
    """What happens to a job (the transitions of the per-card state machine)."""

    SEND = "send"  # claimed and handed to SMPP (counter advanced), or taken by an SCP81 session
    DONE = "done"  # PoR 00 / admin session completed the script
    FINAL_ERROR = "final-error"  # a PoR error status that a retry cannot fix, or a refused submit
    RETRY = "retry"  # no PoR in time / undelivered / transient SMPP error, attempts left
    GIVE_UP = "give-up"  # the same, no attempts left
    CANCEL = "cancel"  # the campaign or job was cancelled (only QUEUED jobs move)


def _transitions() -> dict[tuple[str, JobEvent], str]:
    return {
        ("queued", JobEvent.SEND): "sent",
        ("queued", JobEvent.CANCEL): "cancelled",
        ("queued", JobEvent.FINAL_ERROR): "failed",  # e.g. no keys for the card: refused before sending
        ("sent", JobEvent.DONE): "done",
        ("sent", JobEvent.FINAL_ERROR): "failed",
        ("sent", JobEvent.RETRY): "queued",
        ("sent", JobEvent.GIVE_UP): "failed",
    }


TRANSITIONS: Mapping[tuple[str, JobEvent], str] = _transitions()
"""(state, event) -> new state; any pair not listed is illegal (a final state never moves)."""


def next_state(state: JobState | str, event: JobEvent) -> str:
    """The state after ``event``; :class:`LocalProtocolError` when the state machine does not allow it."""
    new = TRANSITIONS.get((str(state), event))
    if new is None:
        raise LocalProtocolError(f"a job in state {state} cannot take the event {event}")
    return new


# --------------------------------------------------------------------------------------------- rate limit


class TokenBucket:
    """A token bucket: ``rate`` tokens per second up to ``burst``; ``clock`` gives seconds (any origin).

    :meth:`take` spends a token and returns 0, or returns how many seconds until one is there (nothing spent).
    Sans-I/O: the caller sleeps, tests move the clock.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if not (rate > 0 and burst >= 1):
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def available(self) -> float:
        self._refill()
        return self._tokens

    def take(self, tokens: float = 1.0) -> float:
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate


# --------------------------------------------------------------------------------------------- creation


def parse_script(apdus: Iterable[str | bytes]) -> list[bytes]:
    """The C-APDUs of a script from hex strings (spaces allowed) or bytes; ValueError for a bad one."""
    out = []
    for n, item in enumerate(apdus, start=1):
        raw = item if isinstance(item, bytes) else _hex(str(item), f"APDU {n}")
        try:
            CommandApdu.from_bytes(raw)
        except ValueError as exc:
            raise ValueError(f"APDU {n}: {exc}") from None
        out.append(raw)
    if not out:
        raise ValueError("a script has at least one APDU")
    return out


def parse_target(transport: JobTransport | str, target: str | None) -> bytes:
    """The job target: for scp80 a TAR (3 bytes; '' = each card's inventory TAR, else the ISD's 000000), for
    scp81 / scp81+sms an AID (5..16 bytes; '' = the ISD)."""
    raw = _hex(target or "", "target")
    if not raw:
        return b""
    if str(transport) == "scp80":
        if len(raw) != 3:
            raise ValueError(f"target: an SCP80 target is a 3-byte TAR, got {len(raw)} bytes")
    elif not 5 <= len(raw) <= 16:
        raise ValueError(f"target: an SCP81 target is an AID (5..16 bytes), got {len(raw)}")
    return raw


def resolve_cards(
    repository: Repository, cards: Iterable[str], visible: Callable[[CardRecord], bool] = lambda _: True
) -> list[int]:
    """Card ids for ICCIDs (or PSK identities); :class:`InventoryError` naming the first unknown one (its index
    from 1 as the line), a card the caller may not see (``visible``) counting as unknown. Duplicates are dropped
    (a campaign runs once per card)."""
    ids: list[int] = []
    seen: set[int] = set()
    for n, name in enumerate(cards, start=1):
        key = str(name).strip()
        record: CardRecord | None = repository.card_by_iccid(key.upper()) or repository.card_by_identity(key)
        if record is None or not visible(record):
            raise InventoryError(f"unknown card {key!r} (import it first)", line=n, field="cards")
        if record.id not in seen:
            seen.add(record.id)
            ids.append(record.id)
    if not ids:
        raise InventoryError("a campaign needs at least one card", field="cards")
    return ids


def create_campaign(
    repository: Repository,
    *,
    name: str,
    transport: JobTransport | str,
    script: Sequence[bytes],
    card_ids: Sequence[int],
    target: bytes = b"",
    settings: CampaignSettings | None = None,
) -> int:
    """Create the campaign and its per-card jobs (QUEUED, one transaction in the Repository); returns its id.
    ValueError for a combination the transports cannot run."""
    kind = JobTransport(str(transport))
    settings = settings or CampaignSettings()
    if kind is JobTransport.SCP81_SMS and target and settings.fallback_tar is None:
        raise ValueError("an scp81+sms campaign with a target AID needs settings.fallback_tar for the SMS fallback")
    if not card_ids:
        raise ValueError("a campaign needs at least one card")
    try:
        return repository.create_campaign(
            name=name,
            transport=kind,
            script=list(script),
            target=target,
            card_ids=list(card_ids),
            settings=settings.to_dict(),
        )
    except RepositoryError:
        raise


def scp80_tar(card_ota: Mapping[str, Any], target: bytes, kvn: int) -> bytes:
    """The TAR an SCP80 job goes to: its target, else the card's inventory TAR for ``kvn``, else the ISD's."""
    if target:
        return target
    entry = (card_ota.get("scp80") or {}).get(str(kvn)) or {}
    tar = entry.get("tar") if isinstance(entry, Mapping) else None
    try:
        return bytes.fromhex(tar) if isinstance(tar, str) and len(tar) == 6 else ISD_TAR
    except ValueError:
        return ISD_TAR


def finish_if_done(repository: Repository, campaign_id: int, *, by: str, at: datetime) -> bool:
    """A RUNNING campaign whose jobs are all final becomes FINISHED (True when it is finished now).

    The change and its ``campaign.finish`` audit record (principal ``by``: the server part that noticed) are one
    transaction; of several processes noticing the same end, one writes it."""
    record = repository.campaign(campaign_id)
    if record is None or record.state is not CampaignState.RUNNING:
        return record is not None and record.state is CampaignState.FINISHED
    with repository.atomic() as c:
        progress = repository.campaign_progress(campaign_id)
        if progress.get(JobState.QUEUED, 0) or progress.get(JobState.SENT, 0):
            return False
        if repository.finish_campaign(campaign_id):
            counts = ", ".join(f"{n} {state.value}" for state, n in sorted(progress.items()) if n)
            audit.append(c, principal=by, action="campaign.finish", at=at, campaign_id=campaign_id, outcome=counts)
    return True
