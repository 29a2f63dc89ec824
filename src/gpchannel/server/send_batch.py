"""Group commit of the workers' sends: the ``mark_sent`` of the jobs a worker sends in one round, in ONE
transaction (Repository.mark_sent_many) instead of one transaction each.

Measured (docs/deploy.md): an SCP80 send spent most of its CPU in the statements and commits of its own
``mark_sent`` transaction (lease check, counter advance, job update, audit record), and on PostgreSQL every one
took the audit chain's lock until its commit, so the sends of all workers queued on one lock, one commit at a
time. The sends of one round run concurrently (scp80_worker._send); each asks :meth:`SendBatch.mark_sent`
and waits; the first request of a round schedules a flush, which takes every request queued by then and marks
them all in one transaction. What each caller gets back is what ``mark_sent`` would have given it: its counter,
or :class:`~gpchannel.errors.LeaseLost`. Exactly once is unchanged: the lease check, the counter advance and the
SENT mark of each job are still in one transaction (the batch's), and a batch that fails as a whole (an exhausted
counter, a vanished job) is replayed job by job with ``mark_sent``, so each job meets the error it would have
met alone (ETSI TS 102 225 5.1.1: a counter value is never used twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gpchannel.errors import LeaseLost, RepositoryError
from gpchannel.server.repository import Repository
from gpchannel.server.store.leases import SendRequest

__all__ = ["SendBatch"]


@dataclass
class SendBatch:
    """The pending ``mark_sent`` requests of one worker and the flush that commits them together."""

    repo: Repository
    owner: str
    clock: Callable[[], datetime]
    run: Callable[..., Awaitable[Any]]
    """Runs a blocking repository call off the event loop (the worker's ``db``)."""
    limit: int = 500
    """Requests per transaction at most."""
    _pending: list[tuple[SendRequest, asyncio.Future[int]]] = field(default_factory=list)
    _flushing: asyncio.Task[None] | None = None
    batches: int = 0
    """Transactions committed (for the stats and the bench)."""

    async def mark_sent(self, job_id: int, *, kvn: int, delivery_id: str) -> int:
        """The job's counter once its batch is committed; LeaseLost if the lease is no longer ours."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((SendRequest(job_id, kvn, delivery_id), future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other sends of this round queue their requests
        while self._pending:
            batch, self._pending = self._pending[: self.limit], self._pending[self.limit :]
            try:
                await self._commit(batch)
            except BaseException as exc:  # every waiter learns what happened to its send
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise

    async def _commit(self, batch: list[tuple[SendRequest, asyncio.Future[int]]]) -> None:
        now = self.clock()
        requests = [request for request, _ in batch]
        try:
            results: dict[int, int | LeaseLost] = await self.run(
                self.repo.mark_sent_many, requests, owner=self.owner, now=now
            )
            self.batches += 1
        except RepositoryError:
            for request, future in batch:  # replayed alone: each job meets its own error, the others are sent
                try:
                    counter = await self.run(
                        self.repo.mark_sent, request.job_id, owner=self.owner, kvn=request.kvn,
                        delivery_id=request.delivery_id, now=now,
                    )  # fmt: skip
                except (LeaseLost, RepositoryError) as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(int(counter))
            return
        for request, future in batch:
            result = results[request.job_id]
            if isinstance(result, LeaseLost):
                future.set_exception(result)
            else:
                future.set_result(result)
