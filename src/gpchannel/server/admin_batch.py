"""Group commit of the admin sessions (SCP81): the store work that concurrent sessions ask for meanwhile, in ONE
transaction (Repository.admin_round) instead of one or more each.

Measured (docs/deploy.md): with 500 cards in session at once, a session spent most of the server's CPU in the
statements, commits and thread hand-offs of its own store calls (a SENT mark with its audit record, a completion,
a "nothing more" query), one transaction each, serialised on SQLite's write lock. Each session now asks
:meth:`AdminBatch.step` and waits; while one round's transaction runs, the steps of the other sessions queue,
and the next round takes them all (no timer: a lone session is not delayed). A session's answer leaves only
after the commit that covers its step, so a card never sees a script whose SENT mark and audit record are not
durable, nor a "done" whose results are not. A round that fails as a whole is replayed one step per transaction,
so each session meets the error its own step raises and the others go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gpchannel.errors import RepositoryError
from gpchannel.server.repository import AdminOutcome, AdminStep, JobRecord, Repository

__all__ = ["AdminBatch"]


@dataclass
class AdminBatch:
    """The pending admin steps of one server process and the rounds that commit them."""

    repo: Repository
    owner: str
    clock: Callable[[], datetime]
    is_admin: Callable[[JobRecord], bool]
    """Which SENT job an admin session sent (not the SMS fallback): AdminStep.first."""
    run: Callable[[Callable[[], Any]], Awaitable[Any]]
    """Runs a blocking repository call off the event loop (the sessions' StoreGate.call)."""
    limit: int = 500
    """Steps per transaction at most."""
    _pending: list[tuple[AdminStep, asyncio.Future[AdminOutcome]]] = field(default_factory=list)
    _flushing: asyncio.Task[None] | None = None
    rounds: int = 0
    """Transactions committed (for the logs and the bench)."""

    async def step(self, step: AdminStep) -> AdminOutcome:
        """The step's outcome, once the transaction that holds it is committed."""
        future: asyncio.Future[AdminOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((step, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the sessions woken with this one queue their steps
        while self._pending:
            batch, self._pending = self._pending[: self.limit], self._pending[self.limit :]
            try:
                await self._commit(batch)
            except BaseException as exc:  # every waiter learns what happened to its step
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    def _round(self, steps: list[AdminStep]) -> Callable[[], list[AdminOutcome]]:
        now = self.clock()
        return lambda: self.repo.admin_round(steps, owner=self.owner, now=now, is_admin=self.is_admin)

    async def _commit(self, batch: list[tuple[AdminStep, asyncio.Future[AdminOutcome]]]) -> None:
        try:
            outcomes: list[AdminOutcome] = await self.run(self._round([step for step, _ in batch]))
            self.rounds += 1
        except RepositoryError:
            if len(batch) == 1:
                raise
            for step, future in batch:  # replayed alone: each session meets its own error, the others go on
                try:
                    (outcome,) = await self.run(self._round([step]))
                except RepositoryError as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(outcome)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():  # its session may have been cancelled meanwhile
                future.set_result(outcome)
