"""Sans-I/O watch over one vpcd connection: was the card inserted, or did vpcd take it for the previous card?

vpcd (vsmartcard 3.3's ``libifdvpcd``) accepts a card's connection only inside pcscd's presence poll, and only
when it holds no card socket; it drops a dead card's socket silently when a send fails, in any call. When the
first thing sent to a killed card is a power-down (pcscd's idle power-down, or a client's disconnect with
SCARD_UNPOWER_CARD), that send "succeeds", the next send fails outside a presence poll, and the following poll
accepts the next card's connection as if it were the old card still there: pcscd records no removal and no
insertion and never powers the new card on. The new card then hears nothing but ATR requests (control 04) of
the presence polls, while the reader shows the old card's ATR, or none.

On a real insertion pcscd powers the card on (control 01) right after the poll that found it; so
:class:`InsertionWatch` counts the card inserted at the first power on (01) or reset (02), and calls the
connection *stuck* when vpcd has sent nothing but ATR requests (or power-offs) for ``patience`` seconds after it
first spoke. The socket loop (:func:`gpchannel.io.vpcd.serve_vpcd`) then closes, rests, and reconnects: the
next presence poll finds the closed socket (a removal) and a later one accepts the new connection (an insertion,
with its power on). A C-APDU also ends the watch: vpcd then believes a powered card is there and a client uses
it, so the connection is kept.
"""

from __future__ import annotations

__all__ = ["DEFAULT_PATIENCE", "DEFAULT_REST", "MAX_PATIENCE", "InsertionWatch", "next_patience"]

DEFAULT_PATIENCE = 1.5
"""Seconds of nothing but ATR requests after which a connection is taken as stuck (pcscd polls every 0.4 s)."""

DEFAULT_REST = 1.0
"""Seconds between closing a stuck connection and reconnecting: at least one presence poll must find no card."""

MAX_PATIENCE = 30.0
"""The longest patience: after each stuck connection in a row the next one is given twice as long, so a pcscd
that never powers cards on by itself (auto power-on disabled) sees a card flap at most every 30 s."""

_INSERTING = frozenset({0x01, 0x02})
"""vpcd.h VPCD_CTRL_ON and VPCD_CTRL_RESET (gpchannel.io.vpcd.VpcdControl)."""
_POLLING = frozenset({0x04, 0x00})
"""VPCD_CTRL_ATR (every presence poll) and VPCD_CTRL_OFF."""


class InsertionWatch:
    """Feed it every message vpcd sends on one connection (:meth:`control` with a control code, :meth:`apdu`
    for a C-APDU); ask :meth:`stuck` between them.

    It reads no clock: ``now`` is the caller's monotonic time in seconds (so the logic is tested without
    sleeping). ``patience`` None never calls the connection stuck.
    """

    __slots__ = ("_armed", "_started", "inserted", "patience")

    def __init__(self, patience: float | None = DEFAULT_PATIENCE) -> None:
        self.patience = patience
        self.inserted = False
        """True once vpcd powered the card on or reset it on this connection."""
        self._started: float | None = None
        self._armed = patience is not None

    def _start(self, now: float) -> None:
        if self._started is None:
            self._started = now  # vpcd speaks first once it accepted the connection

    def control(self, code: int, now: float) -> bool:
        """Note a control message; True only for the one that makes the card count as inserted."""
        self._start(now)
        if code in _INSERTING:
            self._armed = False
            if not self.inserted:
                self.inserted = True
                return True
        elif code not in _POLLING:
            self._armed = False  # a control code this module does not know: not the stuck pattern
        return False

    def apdu(self, now: float) -> None:
        """Note a C-APDU: vpcd believes a powered card is there and a client uses it; the watch ends."""
        self._start(now)
        self._armed = False

    def deadline(self) -> float | None:
        """The time at which the connection becomes stuck if nothing else arrives; None if it cannot."""
        if not self._armed or self._started is None or self.patience is None:
            return None
        return self._started + self.patience

    def stuck(self, now: float) -> bool:
        """True when vpcd has spoken on this connection, ``patience`` seconds ago, with nothing but ATR requests
        and power-offs since: it took this card for the one before (close, rest and reconnect)."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline


def next_patience(patience: float, stuck: bool, base: float = DEFAULT_PATIENCE) -> float:
    """The patience for the next connection: ``base`` after a connection that was not stuck, doubled (up to
    MAX_PATIENCE) after one that was."""
    return min(max(patience, base) * 2, MAX_PATIENCE) if stuck else base
