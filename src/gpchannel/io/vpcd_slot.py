"""An advisory lock on one vpcd slot between cooperating processes on this machine (see :class:`VpcdSlotLock`)."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from gpchannel.errors import TransportError

__all__ = ["VpcdSlotLock"]


class VpcdSlotLock:
    """An advisory lock on one vpcd slot (its TCP port) between cooperating processes on this machine.

    vpcd serves one card per slot; a second card's connection just waits in the listen backlog, and two test
    runs (or a test and the emulator) sharing a slot see each other's card. Whoever serves a card on a slot can
    hold ``<tmp>/gpchannel-vpcd-<port>.lock`` (``flock``, released when the process dies) for as long as it does;
    :meth:`try_acquire` takes it only if it is free.
    """

    def __init__(self, port: int, directory: str | None = None) -> None:
        self.port = port
        self.path = Path(directory or tempfile.gettempdir()) / f"gpchannel-vpcd-{port}.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if no other holder has it; True when this object holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> VpcdSlotLock:
        if not self.try_acquire():
            raise TransportError(f"vpcd slot on port {self.port} is in use by another process (lock {self.path})")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
