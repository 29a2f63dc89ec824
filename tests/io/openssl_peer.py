"""The openssl command line as an independent PSK-TLS peer, for tests (marker ``openssl``).

- :func:`require_openssl` finds the binary (skips when absent; fails under CI=true, where it must be installed).
- :func:`s_client` runs ``openssl s_client`` against a local port: sends ``stdin`` and collects everything until
  the process exits (it exits when the server sends close_notify or the handshake fails) or ``timeout`` passes.
- :class:`SServer` runs ``openssl s_server -nocert -psk ...`` on a free 127.0.0.1 port (read from its
  ``ACCEPT host:port`` line); ``-rev`` makes it answer each line reversed, so data flows both ways.

Used by tests/io/test_tls_stream.py and reusable by the server (D) and card agent (E) tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

import pytest

__all__ = ["OpensslResult", "SServer", "openssl_version", "require_openssl", "s_client", "spawn_s_client"]


def require_openssl() -> str:
    """Path of the openssl binary; skip the test if there is none (fail under CI=true)."""
    path = shutil.which("openssl")
    if path is None:
        reason = "the openssl command line is not installed (apt package openssl; scripts/bootstrap.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def openssl_version() -> str:
    """``openssl version`` output, e.g. "OpenSSL 3.0.19 27 Jan 2026"."""
    import subprocess

    return subprocess.run([require_openssl(), "version"], capture_output=True, text=True, check=True).stdout.strip()


@dataclass(frozen=True)
class OpensslResult:
    """What an openssl process printed and how it ended (returncode None = killed after the timeout)."""

    returncode: int | None
    stdout: bytes
    stderr: bytes

    @property
    def output(self) -> str:
        """stdout and stderr together, as text (openssl spreads its diagnostics over both)."""
        return (self.stdout + b"\n" + self.stderr).decode("utf-8", "replace")


async def _collect(proc: asyncio.subprocess.Process, timeout: float) -> OpensslResult:
    assert proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
            code: int | None = await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        stdout, stderr = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
        await proc.wait()
        code = None
    return OpensslResult(code, stdout, stderr)


def _s_client_args(port: int, psk: bytes, identity: str, cipher: str, version: str, extra: Sequence[str]) -> list[str]:
    return [
        require_openssl(),
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-psk",
        psk.hex(),
        "-psk_identity",
        identity,
        version,
        "-cipher",
        cipher,
        *extra,
    ]


async def spawn_s_client(
    port: int, *, psk: bytes, identity: str, cipher: str, version: str = "-tls1_2", extra: Sequence[str] = ()
) -> asyncio.subprocess.Process:
    """An interactive ``openssl s_client`` (stdin, stdout and stderr piped; stderr merged into stdout). Without
    -quiet / -ign_eof, a line "R" on stdin asks for a renegotiation and "Q" quits."""
    return await asyncio.create_subprocess_exec(
        *_s_client_args(port, psk, identity, cipher, version, extra),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def s_client(
    port: int,
    *,
    psk: bytes,
    identity: str,
    cipher: str,
    version: str = "-tls1_2",
    extra: Sequence[str] = ("-quiet",),
    stdin: bytes = b"",
    timeout: float = 20.0,
) -> OpensslResult:
    """``openssl s_client -connect 127.0.0.1:PORT -psk HEX -psk_identity ID VERSION -cipher CIPHER EXTRA...``,
    fed ``stdin`` (then EOF, which s_client ignores with -quiet / -ign_eof: it keeps reading until the server
    closes)."""
    proc = await asyncio.create_subprocess_exec(
        *_s_client_args(port, psk, identity, cipher, version, extra),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    with contextlib.suppress(ConnectionError):
        proc.stdin.write(stdin)
        await proc.stdin.drain()
        proc.stdin.close()
    return await _collect(proc, timeout)


_ACCEPT = re.compile(rb"ACCEPT\s+\[?([0-9.:a-fA-F]+?)\]?:(\d+)")


@dataclass
class SServer:
    """``openssl s_server -accept 127.0.0.1:0 -nocert -psk HEX -psk_identity ID VERSION -cipher CIPHER EXTRA``
    as an async context manager; ``port`` is known once entered. Default EXTRA: ``-rev -naccept 1``."""

    psk: bytes = field(repr=False)
    identity: str
    cipher: str
    version: str = "-tls1_2"
    extra: Sequence[str] = ("-rev", "-naccept", "1")
    port: int = 0
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _banner: bytes = b""

    async def __aenter__(self) -> SServer:
        args = [
            require_openssl(),
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-nocert",
            "-psk",
            self.psk.hex(),
            "-psk_identity",
            self.identity,
            self.version,
            "-cipher",
            self.cipher,
            *self.extra,
        ]
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        async with asyncio.timeout(20):
            while True:
                line = await self._proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"openssl s_server exited before listening: {self._banner!r}")
                self._banner += line
                match = _ACCEPT.search(line)
                if match:
                    self.port = int(match.group(2))
                    return self

    async def finish(self, timeout: float = 20.0) -> OpensslResult:
        """Wait for the server to exit (``-naccept``) and return everything it printed after ACCEPT."""
        assert self._proc is not None
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        result = await _collect(self._proc, timeout)
        return OpensslResult(result.returncode, self._banner + result.stdout, result.stderr)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
