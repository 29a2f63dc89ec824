"""The cyclic garbage collector's settings for a long-running server process that keeps many small objects alive.

The fleet bridge (``bridge --fleet``) opens one card core per card it serves and keeps up to thousands of them in
memory: each is a few hundred small objects (its state, the state tracker, the handset), all long-lived. With the
interpreter's default thresholds (a young collection every 700 net allocations, an older one every 10 of those)
the collector walks those survivors again and again and takes about a fifth of the bridge's CPU per new card
(measured with bench/fleet.py: docs/emulator.md). :func:`settle_server` does what a server does at start:

- one full collection, then ``gc.freeze()``: what was loaded to start (modules, the fleet's manifest, templates)
  lives as long as the process, so no collection walks it again (as ``card serve`` does);
- a young generation of ``YOUNG_THRESHOLD`` net allocations: the objects a request makes mostly die by reference
  counting, so fewer, larger young collections cost less in all; cyclic garbage waits a little longer (a few MB
  at most).

Nothing else changes: every object is still collected; only how often the collector looks.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "server_collector", "settle_server"]

YOUNG_THRESHOLD = 10_000
"""Net allocations between two young collections in a server process (the interpreter's default is 700)."""


def settle_server(young: int = YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Collect once, freeze what survives (see the module docstring) and set the young generation's threshold;
    the older generations' thresholds stay as they are. Returns the thresholds before."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(max(young, 1), before[1], before[2])
    return before


@contextmanager
def server_collector(young: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """:func:`settle_server` for a part of a process (a benchmark of the server's path run among others): the
    thresholds and the frozen objects are given back at the end."""
    before = settle_server(young)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
