"""Helpers of the life-cycle test: a command run as a process whose output lines are waited for, and an SMS centre
(gpchannel.smpp.smsc on its own event loop in a thread) that can go away and come back on the same port, counts
the binds it saw and refuses the system_id ``refused``."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time

from gpchannel.smpp.esme import BindMode
from gpchannel.smpp.pdu import BindBody, CommandStatus
from gpchannel.smpp.smsc import BoundEvent, SmscServer, SubmitSmEvent, UnboundEvent

__all__ = ["GPCHANNEL", "Proc", "SmscThread"]

GPCHANNEL = [sys.executable, "-c", "from gpchannel.cli.main import main; main()"]
WAIT = 30.0


class Proc:
    """``gpchannel ARGS`` with stdout and stderr merged; :meth:`wait_line` waits for a line holding a text."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [*GPCHANNEL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self.lines.append("")  # EOF marker
            self._seen.notify_all()

    @property
    def output(self) -> str:
        with self._seen:
            return "\n".join(self.lines)

    def wait_line(self, text: str, timeout: float = WAIT) -> str:
        """The first line holding ``text``; AssertionError when the process ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        start = 0
        with self._seen:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                start = len(self.lines)
                if self.lines and self.lines[-1] == "" and self.proc.poll() is not None:
                    ended = f"{self.args[0]} ended ({self.proc.returncode})"
                    raise AssertionError(f"{ended} before {text!r}:\n{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} from {self.args[0]} within {timeout} s:\n{self.output}")
                self._seen.wait(left)

    def stop(self, signum: signal.Signals) -> int:
        self.proc.send_signal(signum)
        return self.wait()

    def wait(self, timeout: float = WAIT) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.args[0]} did not end within {timeout} s:\n{self.output}") from None
        self._reader.join(WAIT)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class SmscThread:
    """An SMS centre on 127.0.0.1:``port`` in a thread: :meth:`up` listens, :meth:`down` unbinds everyone and
    stops listening; :meth:`wait_binds` waits until ``n`` binds were taken in all."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.binds = 0
        self.unbinds = 0
        self.submits = 0
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smsc", daemon=True)
        self._thread.start()
        self._server: SmscServer | None = None
        self._pump: asyncio.Future[None] | None = None
        self._ids = itertools.count(1)

    @staticmethod
    def _authorize(bind: BindBody, mode: BindMode) -> int:
        return CommandStatus.ESME_RINVSYSID if bind.system_id == "refused" else CommandStatus.ESME_ROK

    def _count(self, name: str) -> None:
        with self._changed:
            setattr(self, name, getattr(self, name) + 1)
            self._changed.notify_all()

    async def _up(self) -> None:
        server = SmscServer("127.0.0.1", self.port, authorize=self._authorize)
        await server.start()
        self._server = server
        self._pump = asyncio.ensure_future(self._events(server))

    async def _events(self, server: SmscServer) -> None:
        while True:
            event = await server.next()
            if isinstance(event, BoundEvent):
                self._count("binds")
            elif isinstance(event, UnboundEvent):
                self._count("unbinds")
            elif isinstance(event, SubmitSmEvent):
                event.accept(f"{next(self._ids):X}")
                self._count("submits")

    async def _down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
        if self._pump is not None:
            self._pump.cancel()

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(WAIT)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(WAIT)

    def wait_for(self, name: str, n: int, timeout: float = WAIT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: getattr(self, name) >= n, timeout):
                raise AssertionError(f"{name}: {getattr(self, name)} after {timeout} s, expected {n}")

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()
