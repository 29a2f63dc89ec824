"""Store calls in flight, for a clean shutdown: the admin sessions (server/ras.py) run their store calls through a
:class:`StoreGate`, so that the server can refuse new ones and wait for the running ones before it closes the
store. A task cancelled while it awaits ``asyncio.to_thread`` leaves its thread running, and the PSK lookup runs in
the TLS listener's worker threads outside any task: without the gate, either could touch a closed store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from gpchannel.errors import RepositoryError

__all__ = ["StoreGate"]

_T = TypeVar("_T")


class StoreGate:
    """The admin side's store calls in flight (each in a worker thread), so that shutdown can refuse new ones and
    wait for the running ones before the store closes: a task cancelled while it awaits ``asyncio.to_thread``
    leaves its thread running, and a PSK lookup runs in the TLS listener's threads, outside any task."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._open = True

    def enter(self) -> bool:
        """Count one call in; False once the gate is shut (the caller must not touch the store)."""
        with self._cond:
            if not self._open:
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def shut(self, timeout: float) -> bool:
        """Refuse every later call and wait up to ``timeout`` s for the running ones; False if some still run."""
        with self._cond:
            self._open = False
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    async def call(self, fn: Callable[[], _T]) -> _T:
        """``fn()`` (a store call) in a worker thread, counted; RepositoryError once the gate is shut."""

        def guarded() -> _T:
            if not self.enter():
                raise RepositoryError("the server is shutting down: the store is closed")
            try:
                return fn()
            finally:
                self.leave()

        return await asyncio.to_thread(guarded)
