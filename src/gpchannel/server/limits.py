"""Per-principal limits of the job API, so that one token cannot starve the others: requests per second (a
token bucket, burst = one second's worth, at least 1), scripts per hour (a sliding hour: a job is one script, a
campaign one per card) and the most cards one campaign may target. The server's defaults (``--api-rate``,
``--api-scripts-per-hour``, ``--api-max-campaign-cards``) apply to every principal; a token's ``limits``
override them for it.

State is in the memory of one server process (several API processes each count their own); a rate refusal says
how many seconds to wait (``Retry-After``). Called from the event loop only, so no lock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from gpchannel.server.tokens import Principal

__all__ = ["Limits"]

_HOUR = 3600.0


@dataclass
class Limits:
    rate: float = 50.0
    """Requests per second per principal (0: no limit)."""
    scripts_per_hour: int = 100_000
    """Scripts per hour per principal (0: no limit)."""
    campaign_cards: int = 0
    """Most cards in one campaign (0: no limit)."""
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False)
    _scripts: dict[str, deque[tuple[float, int]]] = field(default_factory=dict, repr=False)

    def _value(self, principal: Principal, name: str, default: float) -> float:
        return float(principal.limits.get(name, default))

    def request(self, principal: Principal, now: datetime) -> int | None:
        """Take one request from the principal's bucket: None, or the seconds to wait."""
        rate = self._value(principal, "rate", self.rate)
        if rate <= 0:
            return None
        t = now.timestamp()
        burst = max(rate, 1.0)
        tokens, last = self._buckets.get(principal.name, (burst, t))
        tokens = min(burst, tokens + max(0.0, t - last) * rate)
        if tokens < 1.0:
            self._buckets[principal.name] = (tokens, t)
            return max(1, math.ceil((1.0 - tokens) / rate))
        self._buckets[principal.name] = (tokens - 1.0, t)
        return None

    def scripts(self, principal: Principal, count: int, now: datetime) -> int | None:
        """Count ``count`` scripts for the principal: None, or the seconds until the hour has room (nothing is
        counted then)."""
        most = int(self._value(principal, "scripts_per_hour", self.scripts_per_hour))
        if most <= 0:
            return None
        t = now.timestamp()
        window = self._scripts.setdefault(principal.name, deque())
        while window and window[0][0] <= t - _HOUR:
            window.popleft()
        used = sum(n for _, n in window)
        if used + count > most:
            if count > most or not window:
                return int(_HOUR)
            freed, wait = used, 1
            for stamp, n in window:  # the oldest entries leave the hour first
                freed -= n
                wait = max(1, math.ceil(stamp + _HOUR - t))
                if freed + count <= most:
                    break
            return wait
        window.append((t, count))
        return None

    def give_back(self, principal: Principal, count: int, when: datetime) -> None:
        """Return ``count`` scripts counted at ``when`` (the write they were counted for failed)."""
        window = self._scripts.get(principal.name)
        entry = (when.timestamp(), count)
        if window is not None and entry in window:
            window.remove(entry)

    def max_campaign_cards(self, principal: Principal) -> int | None:
        most = int(self._value(principal, "max_campaign_cards", self.campaign_cards))
        return most if most > 0 else None
