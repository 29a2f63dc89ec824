"""PSK-TLS handshakes per second: our serve_psk (io/tls_stream.py) against ``openssl s_server`` on the same suite.

Both servers run in a process of their own on 127.0.0.1 and are driven by the same client: our engine over
asyncio (``open_psk_stream``), one connection after the other (openssl s_server serves connections one at a
time; ``openssl s_time`` cannot do PSK). Each handshake is a full one: TCP connect, PSK-TLS 1.2 handshake,
close_notify, TCP close. The ratio is ours / openssl's; the client's own cost is in both figures.

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

from bench.timing import Comparison
from gpchannel.errors import TransportError
from gpchannel.io.tls_policy import PskTlsPolicy
from gpchannel.io.tls_psk import PskClientContext, PskServerContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream, serve_psk

__all__ = ["run"]

PSK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
IDENTITY = "bench-card"
SUITES = ("PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256")
REPO = Path(__file__).resolve().parents[1]


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


async def _handshakes(port: int, cipher: str, seconds: float) -> float:
    """Sequential full handshakes per second against 127.0.0.1:port (after a short warm-up)."""
    context = PskClientContext(IDENTITY.encode(), PSK, PskTlsPolicy(ciphers=(cipher,)))

    async def one() -> None:
        stream = await open_psk_stream("127.0.0.1", port, context, timeout=10)
        if stream.cipher_name != cipher:
            raise TransportError(f"negotiated {stream.cipher_name}, expected {cipher}")
        await stream.close()

    for _ in range(10):
        await one()
    count = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        await one()
        count += 1
        elapsed = time.perf_counter() - start
    return count / elapsed


def _measure(start: str, cipher: str, seconds: float) -> float:
    proc, port = _start_ours(cipher) if start == "ours" else _start_openssl(cipher)
    try:
        return asyncio.run(_handshakes(port, cipher, seconds))
    finally:
        proc.kill()
        proc.wait()


def run(seconds: float = 1.0) -> list[Comparison]:
    """One line per suite: our serve_psk's handshakes/s beside openssl s_server's (TransportError if openssl is
    missing)."""
    results: list[Comparison] = []
    for cipher in SUITES:
        # best of two alternating rounds: the machine is shared, and a slow moment should not decide the ratio
        ours = theirs = 0.0
        for _ in range(2):
            ours = max(ours, _measure("ours", cipher, seconds / 2))
            theirs = max(theirs, _measure("openssl", cipher, seconds / 2))
        results.append(
            Comparison(f"PSK-TLS 1.2 {cipher}: serve_psk", ours, "openssl s_server", theirs, unit="handshakes/s")
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--serve", metavar="CIPHER", help="internal: run the benchmark's serve_psk process")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    print("== PSK-TLS handshakes (same client: our engine over asyncio, sequential connections) ==")
    for line in run(args.seconds):
        print(line.line())


if __name__ == "__main__":
    main()
