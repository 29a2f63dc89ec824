"""The attacker on a real PC/SC line: host -> attacker -> pcscd -> vpcd -> the emulator (or any served card).

:func:`gpchannel.mitm.scenario.run_gp` takes a ``transport`` factory; this module gives two:

* :class:`ServedEmulator`: the emulator served on a vpcd slot from this process (the card core behind
  :func:`~gpchannel.io.vpcd.serve_vpcd`, as ``gpchannel card serve`` runs it: power and reset end every
  session), with a fresh card built from the demo profile for each cell, so every attack meets the state the
  story expects; the card stays in this process, so the referee reads the store directly.
* :func:`reader_line`: a card some other process serves (``gpchannel card serve`` of a state directory built
  from :func:`~gpchannel.mitm.scenario.profile_text`) in the reader named ``NAME``; the referee then reads the
  store through its own honest session (:func:`~gpchannel.mitm.scenario.referee_read`).

The attacker only ever wraps :class:`~gpchannel.io.pcsc.PcscTransport`: what it sees is what crosses pcscd.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from gpchannel.card.dispatcher import Card
from gpchannel.errors import TransportError
from gpchannel.io.pcsc import PcscTransport, card_present, list_readers
from gpchannel.io.transport import Transport
from gpchannel.io.vpcd import VpcdSlotLock, VpcdThread, vpcd_base_port
from gpchannel.mitm.scenario import demo_card

__all__ = ["VPCD_READER", "ServedEmulator", "free_vpcd_reader", "reader_line"]

VPCD_READER = "Virtual PCD"
"""The name pcscd gives the readers of the vsmartcard vpcd driver."""
Line = Callable[[], tuple[Transport, Card | None]]


class _CurrentCard:
    """The :class:`~gpchannel.io.vpcd.VirtualCard` vpcd drives: whichever demo card is in place."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self._lock = threading.Lock()

    def swap(self, card: Card) -> None:
        with self._lock:
            self.card = card

    def atr(self) -> bytes:
        with self._lock:
            return self.card.atr

    def power_on(self) -> None:
        self.reset()

    def power_off(self) -> None:
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.card.reset()

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            return self.card.process(apdu)


def _slot(reader: str) -> int:
    """The vpcd slot of a reader named like "Virtual PCD 00 01" (its last field)."""
    try:
        return int(reader.split()[-1], 16)
    except (IndexError, ValueError):
        raise TransportError(f"{reader!r} is not a vpcd reader") from None


def free_vpcd_reader(attempts: int = 50) -> tuple[str, VpcdSlotLock]:
    """A vpcd reader with no card in it, its slot lock held (the last slot first: the others default to 00)."""
    readers = [r for r in list_readers() if VPCD_READER in r]
    if not readers:
        raise TransportError(f"pcscd lists no {VPCD_READER!r} reader: start pcscd with the vpcd driver")
    base = vpcd_base_port()
    pause = threading.Event()
    for _ in range(attempts):
        for reader in reversed(readers):
            lock = VpcdSlotLock(base + _slot(reader))
            if not lock.try_acquire():
                continue
            if not card_present(reader):
                return reader, lock
            lock.release()
        pause.wait(0.1)
    raise TransportError(f"every vpcd slot holds a card: {', '.join(readers)}")


class ServedEmulator:
    """The emulator on a free vpcd slot, a fresh demo card per cell: ``with ServedEmulator() as served:``.

    ``served.line(scp)`` is the ``transport`` factory of :func:`~gpchannel.mitm.scenario.run_gp`.
    """

    def __init__(self, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self.reader, self._lock = free_vpcd_reader()
        self._face = _CurrentCard(demo_card(0x03))
        self._thread = VpcdThread(self._face, port=self._lock.port)

    def __enter__(self) -> ServedEmulator:
        self._thread.start()
        if not self._thread.wait_connected(1, timeout=self.timeout):
            self.close()
            raise TransportError(f"the emulator never reached vpcd on port {self._lock.port}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._thread.close()
        self._lock.release()

    def line(self, scp: int) -> Line:
        def open_line() -> tuple[Transport, Card | None]:
            card = demo_card(scp)
            self._face.swap(card)
            return PcscTransport(self.reader, timeout=self.timeout), card

        return open_line


def reader_line(reader: str, timeout: float = 10.0) -> Line:
    """The card in ``reader`` (served by another process); the referee reads it through its own session."""

    def open_line() -> tuple[Transport, Card | None]:
        return PcscTransport(reader, timeout=timeout), None

    return open_line
