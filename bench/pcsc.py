"""APDUs/s to the card emulator through the real PC/SC stack (pyscard -> pcscd -> vpcd -> serve_vpcd -> Card),
beside a null card (bench/pcsc_null.py: answers 9000 at once) measured in the same run on the same path.

The figures and their aims (each a ratio to the null card's rate in the same run): a plain SELECT of the ISD
(0.9: the emulator adds little to the stack's own cost); GET STATUS inside an SCP03 session at level 33 (i=70:
C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION, Amendment D 6.2.4-6.2.7; 0.6, the crypto of both sides included) and
inside an SCP02 session at level 03 (i=55, C-MAC and C-DECRYPTION, GP 2.3.1 E.4; 0.6); and PUT KEY replacing a
key set in the SCP03 session, a durable write per command, reported per second (no aim: the disk's flush rate
sets it).
Both cards run as their own processes, as ``gpchannel card serve`` does for users (the emulator is exactly that
command). Each figure is the best of its batches (the machine's other work only ever slows a batch); with two free
vpcd slots both cards are served at once and their batches alternate, otherwise they are measured in turn. The
aims are checked against the null card's best phase (the strictest baseline); the line saying how the figures were
taken also gives each ratio to the null card's batches of the figure's own phase, taken at the same moments.
Needs pcscd (`scripts/pcscd.sh start`) and a free vpcd slot; when PC/SC is not available, :func:`run` raises
TransportError with the reason. Run alone: `python -m bench.pcsc [N]`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.timing import Comparison
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import CardStatusError, TransportError
from gpchannel.io.pcsc import PcscTransport, card_present, list_readers
from gpchannel.io.vpcd import VpcdSlotLock, vpcd_base_port
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.put_key import PutKeyData, put_key_command
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_host import Scp03Host

__all__ = ["run"]

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "examples" / "profiles" / "scp03.toml"
PROFILE_SCP02 = REPO / "examples" / "profiles" / "scp02.toml"
ISD_AID = bytes.fromhex("A000000151000000")
DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
SELECT_ISD = CommandApdu(0x00, 0xA4, 0x04, 0x00, ISD_AID, le=256)
GET_STATUS_ISD = CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256)


def _rate(exchange: Callable[[], ResponseApdu], n: int, batches: int = 10) -> float:
    """The best rate of ``batches`` batches of ``n / batches`` exchanges (after a warm-up): the machine's other
    work (2 cores, shared with other processes) slows some batches, never speeds one up."""
    for _ in range(min(50, n)):
        exchange()
    size = max(1, n // batches)
    best = 0.0
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(size):
            exchange()
        best = max(best, size / (time.perf_counter() - start))
    return best


def _check(response: ResponseApdu, what: str) -> ResponseApdu:
    if response.sw != 0x9000:
        raise CardStatusError(response.sw, f"{what} in the PC/SC benchmark")
    return response


def _claim_slot(attempts: int = 50) -> tuple[str, VpcdSlotLock]:
    """A vpcd reader with no card, its slot lock held (last slot first, as bench/pcsc_null.py does)."""
    pause = threading.Event()
    for _ in range(attempts):
        readers = [r for r in list_readers() if "Virtual PCD" in r]
        if not readers:
            raise TransportError("pcscd lists no 'Virtual PCD' reader (is vsmartcard-vpcd installed?)")
        for reader in reversed(readers):
            lock = VpcdSlotLock(vpcd_base_port() + int(reader.split()[-1], 16))
            if lock.try_acquire():
                if not card_present(reader):
                    return reader, lock
                lock.release()
        pause.wait(0.1)
    raise TransportError("every vpcd slot holds a card: stop the other virtual card first")


_NULL_CARD = (
    "import sys; from bench.pcsc_null import NullCard; from gpchannel.io.vpcd import serve_vpcd; "
    "serve_vpcd(NullCard(), port=int(sys.argv[1]))"
)
_GPCHANNEL = "from gpchannel.cli.main import main; main()"


@contextmanager
def _card_process(args: Callable[[int], list[str]]) -> Iterator[PcscTransport]:
    """Run a virtual card as its own process (as ``gpchannel card serve`` runs for users) on a claimed vpcd slot;
    yields a PcscTransport to it."""
    reader, lock = _claim_slot()
    with lock:
        process = subprocess.Popen(args(lock.port), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with PcscTransport(reader, timeout=20) as transport:
                yield transport
        except TransportError as exc:
            if process.poll() is not None:
                assert process.stderr is not None
                raise TransportError(f"{exc}; the card process said: {process.stderr.read().decode()[-500:]}") from exc
            raise
        finally:
            process.terminate()
            process.wait(10)


def _null_card(port: int) -> list[str]:
    return [sys.executable, "-c", _NULL_CARD, str(port)]


@contextmanager
def _emulator(profile: Path = PROFILE) -> Iterator[PcscTransport]:
    """``gpchannel card serve`` on a fresh state directory built from ``profile`` (examples/profiles)."""
    with tempfile.TemporaryDirectory(prefix="gpchannel-bench-") as tmp:
        state = str(Path(tmp) / "state")

        def serve(port: int) -> list[str]:
            return [sys.executable, "-c", _GPCHANNEL, "card", "serve", "--profile", str(profile), "--state", state,
                    "--vpcd", f"127.0.0.1:{port}"]  # fmt: skip

        with _card_process(serve) as transport:
            yield transport


def _select(transport: PcscTransport) -> Callable[[], ResponseApdu]:
    return lambda: _check(transport.transmit(SELECT_ISD), "SELECT")


def _scp03_session(transport: PcscTransport, level: int) -> Scp03Host:
    keys = StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.AES)
    host = Scp03Host(
        keys, level=SecurityLevel(level), host_challenge=os.urandom(8), i_param=0x70, kvn=0x30, aid=ISD_AID
    )
    host.receive_initialize_update(transport.transmit(host.initialize_update()))
    host.receive_external_authenticate(transport.transmit(host.external_authenticate()))
    return host


def _get_status(transport: PcscTransport, level: int = 0x33) -> Callable[[], ResponseApdu]:
    """Open an SCP03 session at ``level``; the callable sends one wrapped GET STATUS and unwraps the answer."""
    host = _scp03_session(transport, level)
    return lambda: _check(host.unwrap(transport.transmit(host.wrap(GET_STATUS_ISD))), "GET STATUS")


def _get_status_scp02(transport: PcscTransport) -> Callable[[], ResponseApdu]:
    """Open an SCP02 session (i=55) at level 03; the callable sends one wrapped GET STATUS and unwraps it."""
    keys = StaticKeys.single(DEFAULT_KEY, 0x20, KeyType.DES3)
    host = Scp02Host(keys, level=SecurityLevel(0x03), host_challenge=os.urandom(8), i_param=0x55, kvn=0x20)
    host.receive_initialize_update(transport.transmit(host.initialize_update()))
    host.receive_external_authenticate(transport.transmit(host.external_authenticate()))
    return lambda: _check(host.unwrap(transport.transmit(host.wrap(GET_STATUS_ISD))), "GET STATUS (SCP02)")


def _put_key(transport: PcscTransport) -> Callable[[], ResponseApdu]:
    """In an SCP03 session at level 03, PUT KEY adds key set 31, then each call replaces it (a durable write)."""
    host = _scp03_session(transport, 0x03)
    counter = iter(range(1, 1 << 30))

    def one() -> ResponseApdu:
        n = next(counter)
        keys = StaticKeys.single(bytes([n % 251 + 1]) * 16, 0x31, KeyType.AES)
        data = PutKeyData.from_static_keys(keys, host.encrypt_key)
        command = put_key_command(data, key_id=1, old_kvn=0 if n == 1 else 0x31)
        return _check(host.unwrap(transport.transmit(host.wrap(command))), "PUT KEY")

    return one


def _interleaved(exchanges: list[Callable[[], ResponseApdu]], n: int, batches: int = 20) -> list[float]:
    """The best batch rate of each exchange, their batches taken in turn so that all see the same moments."""
    size = max(1, n // batches)
    for exchange in exchanges:
        for _ in range(min(50, n)):
            exchange()
    best = [0.0] * len(exchanges)
    for _ in range(batches):
        for k, exchange in enumerate(exchanges):
            start = time.perf_counter()
            for _ in range(size):
                exchange()
            best[k] = max(best[k], size / (time.perf_counter() - start))
    return best


SELECT_AIM = 0.9
SESSION_AIM = 0.6


def run(n: int = 2000) -> tuple[list[Comparison], str]:
    """The emulator's PC/SC figures beside the null card's, and how they were taken; TransportError when pcscd
    is not available or no two vpcd slots are free (the null card and the emulator are served at once, their
    batches alternated: the fairest comparison on a shared machine)."""
    with contextlib.ExitStack() as stack:
        null_transport = stack.enter_context(_card_process(_null_card))
        null = _select(null_transport)
        with _emulator() as emulator:
            # SELECT ends a secure channel session (GP 2.3.1, 10.2.3): each emulator figure takes turns with the null
            # card in its own phase, and the null card's best of all phases is the baseline.
            null_1, select = _interleaved([null, _select(emulator)], n)
            null_2, status = _interleaved([null, _get_status(emulator)], n)
            put_key = _rate(_put_key(emulator), max(50, n // 10), batches=5)
        with _emulator(PROFILE_SCP02) as emulator:
            null_3, status_02 = _interleaved([null, _get_status_scp02(emulator)], n)
    best = max(null_1, null_2, null_3)
    how = (
        "both cards served at once, batches alternated, best of 20; each ratio is to the null card's best phase, to"
        f" its own phase's: SELECT {select / null_1:.2f}, SCP03 {status / null_2:.2f}, SCP02 {status_02 / null_3:.2f}"
    )
    return [
        Comparison("PC/SC emulator: plain SELECT", select, "null card", best, aim=SELECT_AIM),
        Comparison("PC/SC emulator: GET STATUS, SCP03 i=70 level 33", status, "null card", best, aim=SESSION_AIM),
        Comparison("PC/SC emulator: GET STATUS, SCP02 i=55 level 03", status_02, "null card", best, aim=SESSION_AIM),
        Comparison("PC/SC emulator: PUT KEY (durable write), SCP03", put_key, "null card", best),
    ], how


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    try:
        comparisons, how = run(n)
    except TransportError as exc:
        print(f"PC/SC benchmark skipped: pcscd is not available ({exc})")
        return
    print(f"({how})")
    for comparison in comparisons:
        print(comparison.line())


if __name__ == "__main__":
    main()
