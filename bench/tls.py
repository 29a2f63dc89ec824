"""PSK-TLS handshakes per second: our serve_psk (io/tls_stream.py) against ``openssl s_server`` on the same suite.

Both servers run in a process of their own on 127.0.0.1 and are driven by the same client: our engine over
asyncio (``open_psk_stream``), one connection after the other (openssl s_server serves connections one at a
time; ``openssl s_time`` cannot do PSK). Each handshake is a full one: TCP connect, PSK-TLS 1.2 handshake,
close_notify, TCP close. Two ratios, ours / openssl's: by wall clock (handshakes per second; the client's own
cost, the same Python engine in both runs, sits inside both figures and pulls this ratio toward 1), and by the
server's CPU time (handshakes per CPU second of the server process alone, its user + system time read from
``/proc/<pid>/stat`` before and after the timed loop: what the aim of 0.7, openssl's CPU cost within 1.4x, is
about). Without ``/proc`` only the wall-clock ratio is printed.

Run alone with ``python -m bench.tls``; ``python -m bench.tls --serve CIPHER`` is the server process it spawns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.timing import Comparison, aim_note, cpu_seconds, ratio_text
from gpchannel.errors import TransportError
from gpchannel.io import event_loop
from gpchannel.io.tls_policy import PskTlsPolicy
from gpchannel.io.tls_psk import PskClientContext, PskServerContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream, serve_psk

__all__ = ["run"]

PSK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
IDENTITY = "bench-card"
SUITES = ("PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256")
REPO = Path(__file__).resolve().parents[1]
CPU_AIM = 0.7
"""Handshakes per server CPU second, ours / openssl's (openssl's CPU cost within 1.4x)."""


async def _serve(cipher: str) -> None:
    async def handler(stream: PskStream) -> None:
        await stream.read()  # until the client's close_notify

    context = PskServerContext({IDENTITY.encode(): PSK}.get, PskTlsPolicy(ciphers=(cipher,)))
    server = await serve_psk(handler, "127.0.0.1", 0, context, handshake_timeout=10)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def _start_ours(cipher: str) -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.tls", "--serve", cipher], stdout=subprocess.PIPE, cwd=REPO, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("PORT "):
        proc.kill()
        raise TransportError(f"bench server did not start: {line!r}")
    return proc, int(line.split()[1])


def _start_openssl(cipher: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("openssl")
    if binary is None:
        raise TransportError("the openssl command line is not installed")
    proc = subprocess.Popen(
        [binary, "s_server", "-accept", "127.0.0.1:0", "-nocert", "-psk", PSK.hex(), "-psk_identity", IDENTITY,
         "-tls1_2", "-cipher", cipher, "-no_ticket", "-ign_eof"],
        stdin=subprocess.PIPE,  # kept open: s_server stops at EOF on stdin
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    for _ in range(20):
        line = proc.stdout.readline().decode()
        if line.startswith("ACCEPT"):
            # s_server reports every connection on stdout (-quiet would hide the ACCEPT line too): drain it
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, int(line.rsplit(":", 1)[1])
        if not line:
            break
    proc.kill()
    raise TransportError("openssl s_server did not start")


async def _handshakes(port: int, cipher: str, seconds: float, pid: int) -> tuple[int, float, float | None]:
    """Sequential full handshakes against 127.0.0.1:port (after a short warm-up): how many, in how many seconds,
    and the CPU seconds the server process ``pid`` spent on them (None without ``/proc``)."""
    context = PskClientContext(IDENTITY.encode(), PSK, PskTlsPolicy(ciphers=(cipher,)))

    async def one() -> None:
        stream = await open_psk_stream("127.0.0.1", port, context, timeout=10)
        if stream.cipher_name != cipher:
            raise TransportError(f"negotiated {stream.cipher_name}, expected {cipher}")
        await stream.close()

    for _ in range(10):
        await one()
    count = 0
    cpu_start = cpu_seconds(pid)
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        await one()
        count += 1
        elapsed = time.perf_counter() - start
    cpu_end = cpu_seconds(pid)
    return count, elapsed, (None if cpu_start is None or cpu_end is None else cpu_end - cpu_start)


def _measure(start: str, cipher: str, seconds: float) -> tuple[int, float, float | None]:
    proc, port = _start_ours(cipher) if start == "ours" else _start_openssl(cipher)
    try:
        return asyncio.run(_handshakes(port, cipher, seconds, proc.pid))
    finally:
        proc.kill()
        proc.wait()


class CpuLine:
    """Handshakes per server CPU second, ours beside openssl's, and the ratio beside its aim."""

    def __init__(self, cipher: str, ours: float, theirs: float) -> None:
        self.cipher, self.ours, self.theirs = cipher, ours, theirs

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs if self.theirs else 0.0

    def line(self) -> str:
        return (
            f"{'  same, per server CPU second':<48} {self.ours:>10.0f} handshakes/CPU-s   openssl s_server "
            f"{self.theirs:>10.0f}   ratio {ratio_text(self.ratio, CPU_AIM)}  ({aim_note(self.ratio, CPU_AIM)})"
        )


def run(seconds: float = 1.0) -> list[Comparison | CpuLine]:
    """Two lines per suite: our serve_psk's handshakes per wall-clock second beside openssl s_server's, then per
    server CPU second (left out without ``/proc``). TransportError if openssl is missing."""
    results: list[Comparison | CpuLine] = []
    for cipher in SUITES:
        # best of two alternating rounds: the machine is shared, and a slow moment should not decide the ratio
        # by CPU: all the handshakes of both rounds over all the server's CPU seconds (the clock ticks at 10 ms)
        ours = theirs = 0.0
        counts = {"ours": 0, "openssl": 0}
        cpus: dict[str, float | None] = {"ours": 0.0, "openssl": 0.0}
        for _ in range(2):
            for who in ("ours", "openssl"):
                count, wall, cpu = _measure(who, cipher, seconds / 2)
                if who == "ours":
                    ours = max(ours, count / wall)
                else:
                    theirs = max(theirs, count / wall)
                counts[who] += count
                spent = cpus[who]
                cpus[who] = None if cpu is None or spent is None else spent + cpu
        ours_cpu, theirs_cpu = (counts[w] / c if (c := cpus[w]) else None for w in ("ours", "openssl"))
        results.append(
            Comparison(f"PSK-TLS 1.2 {cipher}: serve_psk", ours, "openssl s_server", theirs, unit="handshakes/s")
        )
        if ours_cpu and theirs_cpu:
            results.append(CpuLine(cipher, ours_cpu, theirs_cpu))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--serve", metavar="CIPHER", help="internal: run the benchmark's serve_psk process")
    args = parser.parse_args()
    if args.serve:
        event_loop.run(_serve(args.serve))  # the event loop of `gpchannel server`
        return
    print("== PSK-TLS handshakes (same client: our engine over asyncio, sequential connections) ==")
    for line in run(args.seconds):
        print(line.line())


if __name__ == "__main__":
    main()
