"""Sans-I/O notices of one vpcd slot for the person who started the card: is anything listening, does vpcd
accept this card?

vpcd (vsmartcard's ``libifdvpcd``, loaded by pcscd) listens on one TCP port per reader slot and serves one card
per slot: it ``accept``s a card's connection inside pcscd's presence poll (every 0.4 s) only while it holds no
card socket. So two things look alike from the card's side and are told apart here:

- nothing listens on the port (pcscd stopped, or running without the vpcd driver): the connection is refused.
  :meth:`SlotNotice.refused` says so once, then stays quiet while the loop retries; :meth:`SlotNotice.connected`
  says so again when a connection succeeds after that.
- another card holds the slot: the TCP connection succeeds (it waits in vpcd's listen backlog) but vpcd never
  sends anything on it, not even the ATR request of its presence poll. :meth:`SlotNotice.check` says so once
  ``silence`` seconds after connecting; the connection is kept (vpcd accepts it from the backlog as soon as the
  slot is free), and :meth:`SlotNotice.heard` says so when vpcd speaks at last.

Nothing here reads a clock or a socket: ``now`` is the caller's monotonic time in seconds.
"""

from __future__ import annotations

import logging

__all__ = ["DEFAULT_SILENCE", "SlotNotice"]

DEFAULT_SILENCE = 2.0
"""Seconds of silence after connecting before the slot is reported as held by another card: vpcd speaks
(an ATR request) at the first presence poll after accepting, and pcscd polls every 0.4 s."""


class SlotNotice:
    """What a card serving vpcd at ``host:port`` tells its user: feed it the loop's events, it logs the notices.

    ``retry`` is the longest wait between connection attempts (said in the notice); ``silence`` None never
    reports a silent vpcd.
    """

    __slots__ = ("_heard", "_log", "_opened", "_refused", "_silent", "host", "port", "retry", "silence")

    def __init__(
        self,
        host: str,
        port: int,
        *,
        retry: float,
        silence: float | None = DEFAULT_SILENCE,
        log: logging.Logger | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.retry = retry
        self.silence = silence
        self._log = log or logging.getLogger("gpchannel.io.vpcd")
        self._refused = False
        self._opened: float | None = None
        self._heard = False
        self._silent = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def refused(self, error: OSError) -> None:
        """A connection attempt failed: said once (WARNING) until the next successful connection."""
        if self._refused:
            self._log.debug("vpcd at %s still not reachable (%s)", self.address, error)
            return
        self._refused = True
        self._log.warning(
            "nothing listens on vpcd at %s: is pcscd running with the vpcd driver? retrying every %g s (%s)",
            self.address,
            self.retry,
            error.strerror or error,
        )

    def connected(self, now: float) -> None:
        """A TCP connection to vpcd is open (it may only sit in vpcd's listen backlog)."""
        if self._refused:
            self._log.warning("vpcd at %s is listening now: connected to vpcd at %s", self.address, self.address)
        else:
            self._log.info("connected to vpcd at %s", self.address)
        self._refused = False
        self._opened = now
        self._heard = False
        self._silent = False

    def heard(self) -> None:
        """vpcd sent something on this connection: it accepted the card."""
        if self._silent:
            self._log.warning("vpcd at %s speaks now: the slot is free and this card is in it", self.address)
        self._heard = True
        self._silent = False

    def deadline(self) -> float | None:
        """When the silence becomes worth reporting; None when it cannot (any more) on this connection."""
        if self.silence is None or self._opened is None or self._heard or self._silent:
            return None
        return self._opened + self.silence

    def check(self, now: float) -> bool:
        """Report a silent vpcd once per connection, when ``now`` is past :meth:`deadline`; True when it did."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return False
        self._silent = True
        self._log.warning(
            "connected to vpcd at %s but it sends nothing: another card may hold this slot "
            "(try --vpcd %s:%d for the next slot); waiting for the slot",
            self.address,
            self.host,
            self.port + 1,
        )
        return True
