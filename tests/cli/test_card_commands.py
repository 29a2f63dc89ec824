"""``gpchannel card serve`` as a process, where no pcscd is needed: against a vpcd port nothing listens on it says
so once on stderr, keeps retrying, and a SIGTERM ends it with exit 0."""

from __future__ import annotations

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


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30.0) -> list[str]:
    """stderr lines up to the one holding ``needle`` (fails at ``timeout`` or when the process ends first)."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {needle!r} on stderr in {timeout}s: {lines}"
            if selector.select(left):
                line = proc.stderr.readline()
                assert line, f"card serve ended before saying {needle!r}: {lines}"
                lines.append(line)
                if needle in line:
                    return lines


def test_serve_says_once_that_nothing_listens_on_the_vpcd_port(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "card"
    cmd = [str(GPCHANNEL), "card", "serve", "--profile", str(EXAMPLE), "--state", str(state), "--vpcd"]
    proc = subprocess.Popen([*cmd, f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True)
    try:
        lines = _read_until(proc, "nothing listens on vpcd")
        assert (
            f"nothing listens on vpcd at 127.0.0.1:{port}: is pcscd running with the vpcd driver? retrying every 2 s"
            in lines[-1]
        )
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "nothing listens" not in rest  # said once, however many retries
    assert "stopped" in rest
