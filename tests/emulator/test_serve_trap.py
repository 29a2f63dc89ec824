"""The vpcd reconnect trap through the real pcscd (gpchannel.io.vpcd_watch): a served card is killed with
SIGKILL, a pyscard client then disconnects with SCARD_UNPOWER_CARD (so the first thing pcscd sends to the dead
card is a power-down), and the next ``gpchannel card serve`` starts at once, without waiting for the reader to
show empty. Without the watch vpcd takes the new card for the dead one about every other time and pcscd never
powers it on; with it, the new card must answer an APDU with its own ATR within 5 s, every time.

``GPCHANNEL_TRAP_ROUNDS`` sets the number of kills (default 20).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
from smartcard.Exceptions import CardConnectionException

from tests.emulator.pyscard_user import claimed_reader, profile
from tests.emulator.test_serve import ServeProcess, start_serve

pytestmark = pytest.mark.pcsc

WITHIN = 5.0
"""Seconds from starting the new ``card serve`` to its first APDU exchange through pcscd."""

STUCK = "without powering it on"
"""The serve log's line when the watch found the connection stuck (and reconnected)."""


def test_a_card_served_at_once_after_a_kill_is_seen_within_5s(pcscd_readers: list[str], tmp_path: Path) -> None:
    rounds = int(os.environ.get("GPCHANNEL_TRAP_ROUNDS", "20"))
    # Two cards with their own ATRs, served in turn: the new card is never taken for the one just killed.
    cards: list[tuple[Path, Path, bytes]] = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        profile_path, _, atr = profile(tmp_path / name, "03")
        cards.append((tmp_path / name / "state", profile_path, atr))
    took: list[float] = []
    stuck = 0
    started = time.monotonic()
    with claimed_reader(pcscd_readers) as reader:
        state_dir, profile_path, atr = cards[0]
        serve: ServeProcess = start_serve(tmp_path, reader, state_dir, profile_path, atr, name="trap-0")
        try:
            connection = serve.connect()
            for round_ in range(1, rounds + 1):
                serve.process.kill()
                serve.process.wait()
                stuck += serve.text().count(STUCK)
                with contextlib.suppress(CardConnectionException):
                    connection.disconnect()  # SCARD_UNPOWER_CARD: a power-down to the dead card sets the trap
                state_dir, profile_path, atr = cards[round_ % 2]
                start = time.monotonic()
                serve = start_serve(tmp_path, reader, state_dir, profile_path, atr, name=f"trap-{round_}")
                connection = serve.connect(timeout=20)  # its ATR and one APDU exchange
                took.append(time.monotonic() - start)
            with contextlib.suppress(CardConnectionException):
                connection.disconnect()
            assert serve.terminate() == 0, serve.text()
            stuck += serve.text().count(STUCK)
        finally:
            if serve.process.poll() is None:
                serve.process.kill()
                serve.process.wait()
    seen = sum(t < WITHIN for t in took)
    print(
        f"{seen} of {rounds} new cards seen within {WITHIN:.0f}s (slowest {max(took):.2f}s, median "
        f"{sorted(took)[len(took) // 2]:.2f}s); {stuck} stuck connections reopened; {time.monotonic() - started:.1f}s"
    )
    assert seen == rounds, [round(t, 2) for t in took]
