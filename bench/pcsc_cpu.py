"""CPU time per APDU of the PC/SC figures of bench/pcsc.py, each side on its own, without pcscd.

bench/pcsc.py times the emulator (``gpchannel card serve``) through pyscard -> pcscd -> vpcd in wall-clock time
on a shared machine. This module takes the two ends of that path apart and counts CPU time, which the machine's
other work does not inflate: the card side is the vpcd serving loop of ``card serve`` (gpchannel.io.vpcd, the
EmulatedCard and its Card built by ``open_card`` from the same profile into a fresh state directory) driven over
a socket pair by a thread that plays vpcd, its CPU clock read around each batch; the host side is the bench's own
work in its process (wrap, the Python part of ``PcscTransport.transmit``, unwrap), timed on the calling thread.
The null card (bench/pcsc_null.py) served by the same loop gives the loop's own cost.

``python -m bench.pcsc_cpu [N]`` prints microseconds of CPU per APDU for a plain SELECT, GET STATUS in an SCP03
i=70 level-33 session and in an SCP02 i=55 level-03 session; ``--profile`` adds the top of a cProfile of the
card's per-APDU path (the serving loop's ``handle``) for each.
"""

from __future__ import annotations

import cProfile
import gc
import os
import pstats
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.pcsc import DEFAULT_KEY, GET_STATUS_ISD, ISD_AID, PROFILE, PROFILE_SCP02, SELECT_ISD
from bench.pcsc_null import NullCard
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.emulator.agent import AgentRunner
from gpchannel.emulator.app import EmulatedCard, open_card
from gpchannel.io.pcsc import complete_exchange
from gpchannel.io.vpcd import Apdu, VirtualCard, VpcdFramer, _Session
from gpchannel.io.vpcd_notice import SlotNotice
from gpchannel.io.vpcd_watch import InsertionWatch
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_host import Scp03Host

__all__ = ["Figures", "measure"]

Exchange = Callable[[bytes], bytes]
"""C-APDU bytes out, R-APDU bytes back (through the serving loop)."""


class Figures:
    """CPU microseconds per APDU: the card process (its serving thread), the host's wrap/transmit/unwrap."""

    def __init__(self, card: float, host: float) -> None:
        self.card = card
        self.host = host


def _thread_clock(thread: threading.Thread) -> int:
    assert thread.ident is not None
    return time.pthread_getcpuclockid(thread.ident)


@contextmanager
def _served(card: VirtualCard) -> Iterator[tuple[Exchange, Callable[[], float]]]:
    """``card`` behind the vpcd serving loop on one end of a socket pair; yields (exchange, card CPU clock)."""
    with socket.create_server(("127.0.0.1", 0)) as server:  # TCP on loopback, as vpcd is
        ours = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    ours.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stop = threading.Event()
    session = _Session(
        card, theirs, None, True, 0.2, None, InsertionWatch(None), time.monotonic,
        SlotNotice("vpcd", 0, retry=1.0, silence=None),
    )  # fmt: skip
    thread = threading.Thread(target=session.run, args=(stop,), daemon=True)
    thread.start()
    clock = _thread_clock(thread)
    framer = VpcdFramer()

    def exchange(apdu: bytes) -> bytes:
        ours.sendall(VpcdFramer.encode(apdu))
        while True:
            messages = framer.feed(ours.recv(65536))
            if messages:
                message = messages[0]
                assert isinstance(message, Apdu)
                return message.data

    try:
        yield exchange, lambda: time.clock_gettime(clock)
    finally:
        stop.set()
        ours.close()
        thread.join(2)
        theirs.close()


@contextmanager
def _emulator(profile: Path) -> Iterator[EmulatedCard]:
    """The card as ``gpchannel card serve --profile`` builds it, on a fresh state directory."""
    with tempfile.TemporaryDirectory(prefix="gpchannel-cpu-") as tmp:
        card, _ = open_card(Path(tmp) / "state", profile)
        gc.collect()
        gc.freeze()
        emulated = EmulatedCard(card)
        emulated.agents = AgentRunner(card, emulated.lock)
        yield emulated
        gc.unfreeze()


def _transmit(exchange: Exchange) -> Callable[[CommandApdu], ResponseApdu]:
    """PcscTransport.transmit's Python part (complete_exchange, T=1) over ``exchange``."""
    return lambda command: complete_exchange(exchange, command)


Step = Callable[[Callable[[CommandApdu], ResponseApdu]], Callable[[], ResponseApdu]]


def _select(transmit: Callable[[CommandApdu], ResponseApdu]) -> Callable[[], ResponseApdu]:
    return lambda: transmit(SELECT_ISD)


def _scp03(transmit: Callable[[CommandApdu], ResponseApdu]) -> Callable[[], ResponseApdu]:
    keys = StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES)
    host = Scp03Host(keys, level=SecurityLevel(0x33), host_challenge=os.urandom(8), i_param=0x70, kvn=0x30, aid=ISD_AID)
    host.receive_initialize_update(transmit(host.initialize_update()))
    host.receive_external_authenticate(transmit(host.external_authenticate()))
    return lambda: host.unwrap(transmit(host.wrap(GET_STATUS_ISD)))


def _scp02(transmit: Callable[[CommandApdu], ResponseApdu]) -> Callable[[], ResponseApdu]:
    keys = StaticKeys.single(DEFAULT_KEY, 0x20, KeyType.DES3)
    host = Scp02Host(keys, level=SecurityLevel(0x03), host_challenge=os.urandom(8), i_param=0x55, kvn=0x20)
    host.receive_initialize_update(transmit(host.initialize_update()))
    host.receive_external_authenticate(transmit(host.external_authenticate()))
    return lambda: host.unwrap(transmit(host.wrap(GET_STATUS_ISD)))


FIGURES: tuple[tuple[str, Path, Step], ...] = (
    ("plain SELECT", PROFILE, _select),
    ("GET STATUS, SCP03 i=70 level 33", PROFILE, _scp03),
    ("GET STATUS, SCP02 i=55 level 03", PROFILE_SCP02, _scp02),
)


def _per_apdu(card: VirtualCard, step: Step, n: int, batches: int = 5) -> Figures:
    """The least CPU per APDU of ``batches`` batches (other threads and processes only ever add to a batch)."""
    with _served(card) as (exchange, card_clock):
        wire_time = 0.0

        def timed_exchange(apdu: bytes) -> bytes:  # the fake vpcd's own socket work is not the host's
            nonlocal wire_time
            start = time.thread_time()
            answer = exchange(apdu)
            wire_time += time.thread_time() - start
            return answer

        one = step(_transmit(timed_exchange))
        for _ in range(min(200, n)):
            one()
        best_card = best_host = float("inf")
        size = max(1, n // batches)
        for _ in range(batches):
            wire_time = 0.0
            card_start, host_start = card_clock(), time.thread_time()
            for _ in range(size):
                one()
            host = time.thread_time() - host_start - wire_time
            best_card = min(best_card, (card_clock() - card_start) / size)
            best_host = min(best_host, host / size)
    return Figures(best_card * 1e6, best_host * 1e6)


def _profile(card: EmulatedCard, step: Step, n: int, top: int) -> None:
    """cProfile of the card's per-APDU path (the serving loop's framing, handle and encoding) alone."""
    session = _Session.__new__(_Session)
    session.card, session.trace = card, None
    framer = VpcdFramer()
    profiler = cProfile.Profile(time.process_time)
    profiling = False

    def exchange(apdu: bytes) -> bytes:
        frame = VpcdFramer.encode(apdu)
        if profiling:
            profiler.enable()
        (message,) = framer.feed(frame)
        assert isinstance(message, Apdu)
        answer = session.handle(message)
        assert answer is not None
        out = VpcdFramer.encode(answer)
        if profiling:
            profiler.disable()
        return out[2:]

    one = step(_transmit(exchange))
    for _ in range(200):
        one()
    profiling = True
    for _ in range(n):
        one()
    pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime")).print_stats(top)


def measure(n: int = 5000) -> list[tuple[str, Figures]]:
    """Each figure's CPU per APDU, and the null card's (the serving loop alone) first."""
    _per_apdu(NullCard(), _select, n)  # warm-up: the first served figure runs slower (caches, clocks)
    figures = [("null card (the loop alone, SELECT)", _per_apdu(NullCard(), _select, n))]
    for name, profile, step in FIGURES:
        with _emulator(profile) as card:
            figures.append((name, _per_apdu(card, step, n)))
    return figures


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 5000
    for name, figures in measure(n):
        print(f"{name:<40} card {figures.card:7.1f} us   host {figures.host:7.1f} us")
    if "--profile" in sys.argv:
        for name, profile, step in FIGURES:
            print(f"--- {name}: the card's per-APDU path ---")
            with _emulator(profile) as card:
                _profile(card, step, n, 30)


if __name__ == "__main__":
    main()
