"""APDUs/s through the real PC/SC stack (pyscard -> pcscd -> vpcd -> serve_vpcd) against a null card.

The null card answers 9000 at once, so the figure is the cost of the stack itself: two Unix-socket hops
(client <-> pcscd), the vpcd TCP hop and our loop. Needs a running pcscd (`scripts/pcscd.sh start`); it uses
a free vpcd slot. Run alone: `python -m bench.pcsc_null [N]`.
"""

from __future__ import annotations

import sys
import threading
import time

from bench.timing import Comparison
from gpchannel.codec.apdu import CommandApdu
from gpchannel.errors import TransportError
from gpchannel.io.pcsc import PcscTransport, card_present, list_readers
from gpchannel.io.transport import InProcessTransport, Transport
from gpchannel.io.vpcd import VpcdSlotLock, VpcdThread, vpcd_base_port

__all__ = ["NullCard", "in_process_rate", "pcsc_null_rate", "run"]

COMMAND = CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256)
_OK = b"\x90\x00"


class NullCard:
    """A VirtualCard that answers every command with 9000."""

    def atr(self) -> bytes:
        return bytes.fromhex("3B80800101")  # T=1

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        return _OK


def _claim_vpcd_slot(attempts: int = 50) -> tuple[str, VpcdSlotLock]:
    """A vpcd reader with no card, with its slot lock held (the last slot first: the emulator uses the first)."""
    pause = threading.Event()
    base = vpcd_base_port()
    for _ in range(attempts):
        readers = [r for r in list_readers() if "Virtual PCD" in r]
        if not readers:
            raise TransportError("pcscd lists no 'Virtual PCD' reader (is vsmartcard-vpcd installed?)")
        for reader in reversed(readers):
            lock = VpcdSlotLock(base + int(reader.split()[-1], 16))
            if lock.try_acquire():
                if not card_present(reader):
                    return reader, lock
                lock.release()
        pause.wait(0.1)
    raise TransportError("every vpcd slot holds a card: stop the other virtual card first")


def _rate(transport: Transport, n: int) -> float:
    for _ in range(min(50, n)):
        transport.transmit(COMMAND)
    start = time.perf_counter()
    for _ in range(n):
        transport.transmit(COMMAND)
    return n / (time.perf_counter() - start)


def pcsc_null_rate(n: int = 2000, *, quickack: bool = True) -> float:
    """APDUs/s of ``n`` exchanges with a null card through pcscd + vpcd (TCP_QUICKACK on the card side or not)."""
    reader, lock = _claim_vpcd_slot()
    port = lock.port
    with lock, VpcdThread(NullCard(), port=port, quickack=quickack) as runner:
        if not runner.wait_connected(1, timeout=20):
            raise TransportError(f"the null card could not reach vpcd on port {port}")
        with PcscTransport(reader, timeout=20) as transport:
            return _rate(transport, n)


def in_process_rate(n: int = 2000) -> float:
    """APDUs/s of the same exchanges with the null card called in-process (no PC/SC at all)."""
    return _rate(InProcessTransport(NullCard().transmit), n)


def run(n: int = 2000, n_without_quickack: int = 200) -> list[Comparison]:
    """The PC/SC figures beside their baselines: with vs without TCP_QUICKACK, and vs in-process.

    Without TCP_QUICKACK each exchange waits for a delayed ACK (vpcd writes the length and the APDU in two
    segments and Nagle holds the second until the first is acknowledged), about 50 ms, so that baseline runs
    fewer APDUs (``n_without_quickack``) to keep the benchmark short.
    """
    with_quickack = pcsc_null_rate(n, quickack=True)
    without_quickack = pcsc_null_rate(n_without_quickack, quickack=False)
    in_process = in_process_rate(n)
    return [
        Comparison("PC/SC null card, TCP_QUICKACK re-armed", with_quickack, "no TCP_QUICKACK", without_quickack),
        Comparison("PC/SC null card, TCP_QUICKACK re-armed", with_quickack, "in-process null card", in_process),
    ]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    for comparison in run(n):
        print(comparison.line())


if __name__ == "__main__":
    main()
