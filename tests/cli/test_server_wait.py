"""``gpchannel server wait`` (cli/server_wait.py) against a real ``gpchannel server`` process started in the
background, as the README does: it returns once both listeners answer, stops at once when the server process
ended before serving, and gives up after its timeout with exit 5."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from gpchannel.cli.exit_codes import ExitCode

GPCHANNEL = [sys.executable, "-c", "from gpchannel.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gpchannel(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPCHANNEL_")}
    return subprocess.run([*GPCHANNEL, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_wait_returns_once_a_background_server_serves(tmp_path: Path) -> None:
    admin, api = _free_port(), _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*GPCHANNEL, "server", "--data", str(tmp_path / "srv"), "--admin", f"127.0.0.1:{admin}",
         "--api", f"127.0.0.1:{api}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        done = _gpchannel(
            "server", "wait", "--api", f"http://127.0.0.1:{api}", "--admin", f"127.0.0.1:{admin}",
            "--pid", str(server.pid), "--timeout", "60",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("server ready")
        with socket.create_connection(("127.0.0.1", api), timeout=5):  # it really listens now
            pass
        assert "ready" in (tmp_path / "server.log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_wait_stops_at_once_when_the_server_ended(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    started = time.monotonic()
    done = _gpchannel("server", "wait", "--api", f"http://127.0.0.1:{_free_port()}", "--pid", str(ended.pid))
    assert done.returncode == ExitCode.FAILURE, done.stderr
    assert time.monotonic() - started < 20  # not the 30 s timeout
    assert done.stderr.count("error:") == 1 and f"process {ended.pid}" in done.stderr


def test_wait_gives_up_after_its_timeout(tmp_path: Path) -> None:
    port = _free_port()
    done = _gpchannel("server", "wait", "--api", f"http://127.0.0.1:{port}", "--admin", f"127.0.0.1:{port}",
                      "--timeout", "0.5")  # fmt: skip
    assert done.returncode == ExitCode.TRANSPORT
    assert "not ready after 0.5 s" in done.stderr and f"the job API http://127.0.0.1:{port}" in done.stderr
