"""``gpchannel card serve`` as a process, where no pcscd is needed: against a vpcd port nothing listens on it says
so once on stderr, keeps retrying, and a SIGTERM ends it with exit 0."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "profiles" / "scp03.toml"
GPCHANNEL = Path(sys.executable).with_name("gpchannel")


def _free_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30.0) -> tuple[list[str], str]:
    """stderr lines up to the one holding ``needle``, and what came after it in the same reads (fails at ``timeout``
    or when the process ends first). Reads the pipe itself: a buffered readline could keep a second line that
    arrived with the first out of the selector's sight."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    lines: list[str] = []
    pending = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} on stderr in {timeout}s: {lines}"
            if selector.select(left):
                chunk = os.read(fd, 65536)
                assert chunk, f"card serve ended before saying {needle!r}: {lines}"
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    lines.append(line.decode() + "\n")
                    if needle in lines[-1]:
                        return lines, pending.decode()


def test_serve_says_once_that_nothing_listens_on_the_vpcd_port(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "card"
    cmd = [str(GPCHANNEL), "card", "serve", "--profile", str(EXAMPLE), "--state", str(state), "--vpcd"]
    proc = subprocess.Popen([*cmd, f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        lines, after = _read_until(proc, "nothing listens on vpcd")
        assert (
            f"nothing listens on vpcd at 127.0.0.1:{port}: is pcscd running with the vpcd driver? retrying every 2 s"
            in lines[-1]
        )
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
        rest = after + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "nothing listens" not in rest  # said once, however many retries
    assert "stopped" in rest
