"""The vpcd reconnect trap through the real pcscd (gpchannel.io.vpcd_watch): the next ``gpchannel card serve``
is started and connected to vpcd (waiting in its listen backlog) while the served card still holds the slot;
the served card is killed with SIGKILL and a pyscard client at once disconnects with SCARD_UNPOWER_CARD, so the
first thing pcscd sends to the dead card is a power-down. vpcd's next presence poll then takes the waiting card
for the dead one: pcscd records no removal and no insertion and never powers it on (without the watch: 6 stuck
of 6 tries, each until the card was killed). With the watch the new card must answer an APDU with its own ATR
within 5 s of the kill, every time.

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
"""Seconds from the kill to the new card's first APDU exchange through pcscd."""

STUCK = "without powering it on"
"""The serve log's line when the watch found the connection stuck (and reconnected)."""


def test_a_card_waiting_when_the_last_is_killed_is_seen_within_5s(pcscd_readers: list[str], tmp_path: Path) -> None:
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
                state_dir, profile_path, atr = cards[round_ % 2]
                new: ServeProcess = start_serve(tmp_path, reader, state_dir, profile_path, atr, name=f"trap-{round_}")
                new.wait_log("connected to vpcd")  # in vpcd's backlog: the slot is still the old card's
                start = time.monotonic()
                serve.process.kill()
                with contextlib.suppress(CardConnectionException):
                    connection.disconnect()  # SCARD_UNPOWER_CARD: a power-down to the dead card sets the trap
                serve.process.wait()
                stuck += serve.text().count(STUCK)
                serve = new
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
    assert stuck, "the trap was never set: this test tested nothing"
