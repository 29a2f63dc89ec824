"""The SCP81 side of a fleet: each card of a fleet directory opens its administration session (GP Amendment B over
PSK-TLS, :class:`gpchannel.emulator.agent.CardAgent`) to the OTA server, runs what the server has for it and
keeps the result in its state directory, as a real card does when its session is triggered or its timer fires.

The fleet's cards inside the handset bridge answer SMS only; this is how an ``scp81`` campaign reaches the same
cards (``gpchannel fleet agents DIR``). A card the server has nothing for ends its session at once (204).

One card, one driver at a time: a handset bridge serving the same fleet keeps the cards it opened in memory, so
a session here that changes a card (keys, content) is not seen by the bridge's copy, whose next change would
overwrite it. Run SCP81 sessions that change cards while no bridge serves the fleet (read-only scripts, such as
the GET DATA of scripts/campaign-demo.sh, are harmless).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from gpchannel.emulator.agent import CardAgent, SessionStatus, SessionSummary
from gpchannel.emulator.fleet import Fleet, FleetCard

__all__ = ["FleetSession", "run_fleet_sessions"]


@dataclass(frozen=True)
class FleetSession:
    """One card's session: the card and what its agent reported."""

    card: FleetCard
    summary: SessionSummary

    @property
    def completed(self) -> bool:
        return self.summary.status is SessionStatus.COMPLETED


async def run_fleet_sessions(
    fleet: Fleet,
    *,
    cards: Sequence[FleetCard] | None = None,
    server: str | None = None,
    concurrency: int = 50,
    timeout: float = 30.0,
) -> list[FleetSession]:
    """One session per card (``cards``, default the whole fleet), at most ``concurrency`` at once, each to
    ``server`` (``host:port``; default the card's own ``[scp81] server``, i.e. the fleet's). The card cores
    are opened from their state directories and their changes committed there. Never raises for a session that
    failed: its summary says why."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    limit = asyncio.Semaphore(concurrency)

    async def one(card: FleetCard) -> FleetSession:
        async with limit:
            core = await asyncio.to_thread(fleet.open_card, card)
            agent = CardAgent(core, server=server, timeout=timeout)
            return FleetSession(card, await agent.run())

    return list(await asyncio.gather(*(one(card) for card in (cards if cards is not None else fleet.cards))))
