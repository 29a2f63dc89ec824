"""io/collector: a server's collector settings (one collection, the survivors frozen, a larger young generation),
and the scoped form that gives everything back."""

from __future__ import annotations

import gc

from gpchannel.io.collector import YOUNG_THRESHOLD, server_collector, settle_server


def test_settle_server_freezes_and_sets_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        assert settle_server() == before
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_server_collector_gives_the_settings_back() -> None:
    before = gc.get_threshold()
    with server_collector(5000):
        assert gc.get_threshold()[0] == 5000 and gc.get_freeze_count() > 0
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle: still collected under the server's settings
        del garbage
        assert gc.collect() >= 1
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
