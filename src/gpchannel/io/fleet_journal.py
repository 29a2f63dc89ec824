"""One journal for many cards, with group commit: several cards' changes made durable by one write and one
fdatasync (a fleet of emulated cards behind one bridge; docs/emulator.md says why and how it is read).

The file holds one line per committed change, ``<crc32 hex> <JSON>``, the JSON being ``{"c": key, "d": delta}``
(a card's delta, card/state_delta.py) or ``{"c": key, "s": state}`` (a card's whole JSON form). A card's state
is what its own state directory (io/store.py) holds, or its initial state when it has none, with the card's lines
applied in file order.

Group commit: :meth:`FleetJournal.append` queues a line and returns only once a flush covering it is durable. The
first waiting thread that finds no flush in progress writes every queued line in one ``write`` and calls
``fdatasync`` once; the others wait for it, so N cards committing at once cost one flush. A card's answer, built
after ``append`` returned, therefore never leaves before its new state (its OTA counter above all: ETSI TS 102
225 5.1.1, a counter value is never used twice) is on disk. A failed write is cut off again (``ftruncate`` to the
last durable length) and every line of that flush raises OSError (the card core then answers 6581 and rolls
the command back).

A SIGKILL or a power cut at any instant leaves each card at its state of just before or just after its last
change: ``open`` stops at the first torn or corrupt line (the flush that wrote it never returned, so no answer
depended on it) and cuts it off. A checkpoint (:meth:`FleetJournal.checkpoint`) writes the cards' states into
their own directories, durably, then empties the journal; a crash in between replays lines over states that
already hold them, which gives the same states (a delta sets whole units: the last write of a unit wins).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gpchannel.errors import InUseError
from gpchannel.io.journal_lines import encode_line, valid_lines

__all__ = ["FLEET_JOURNAL_FILE", "FleetJournal", "Records", "read_fleet_journal"]

FLEET_JOURNAL_FILE = "cards.journal"
_CHECKPOINT_BYTES = 8 * 1024 * 1024
"""The journal is due for a checkpoint past this size."""
_CHECKPOINT_THREADS = 8
"""Cards written at once by a checkpoint (each write is a few fsyncs)."""

Records = dict[str, list[dict[str, Any]]]
"""Key -> the records of that key in file order, each ``{"d": delta}`` or ``{"s": state}``."""


def _line(key: str, record: dict[str, Any]) -> bytes:
    return encode_line({"c": key, **record})


def _hold(fd: int, path: Path) -> None:
    """One writer per fleet: an exclusive ``flock`` on the journal, held while it is open (released by the kernel
    when the process ends, however it ends). A second writer's lines would interleave with the first's flushes
    and a checkpoint of either would cut the other's lines off."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise InUseError(
            f"{path} is held by another process (a bridge or `fleet agents` on this fleet): stop it first"
        ) from None


def _parse(journal: bytes) -> tuple[Records, int]:
    """The records of ``journal`` up to the first torn or corrupt line, and the length of that valid part."""
    records: Records = {}
    end = 0
    for raw, after in valid_lines(journal):
        key = raw.pop("c", None)
        if not isinstance(key, str):
            break
        if isinstance(raw.get("s"), dict):
            records[key] = [raw]  # a whole state: what came before it no longer matters
        elif isinstance(raw.get("d"), dict):
            records.setdefault(key, []).append(raw)
        else:
            break
        end = after
    return records, end


def read_fleet_journal(directory: str | os.PathLike[str]) -> Records:
    """The committed records of the journal in ``directory`` (read only: a torn tail is ignored, not cut)."""
    try:
        data = (Path(directory) / FLEET_JOURNAL_FILE).read_bytes()
    except FileNotFoundError:
        return {}
    return _parse(data)[0]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Entry:
    __slots__ = ("done", "error", "key", "line", "record")

    def __init__(self, key: str, record: dict[str, Any], line: bytes) -> None:
        self.key, self.record, self.line = key, record, line
        self.done = False
        self.error: BaseException | None = None


class FleetJournal:
    """The journal file ``cards.journal`` of ``directory`` (see the module docstring). Thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], *, checkpoint_bytes: int = _CHECKPOINT_BYTES) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FLEET_JOURNAL_FILE
        self.checkpoint_bytes = checkpoint_bytes
        self._cond = threading.Condition()
        self._queue: list[_Entry] = []
        self._flushing = False
        self._checkpointing = False
        self._fd: int | None = None
        self._broken: OSError | None = None
        """Set when a failed write could not be cut off again: every later append fails (the lines must stay
        the journal's valid end)."""
        self._size = 0
        self.flushes = 0
        """Flushes (fdatasync) so far: ``lines / flushes`` is the mean group size."""
        self.lines = 0
        self.records: Records = {}
        """The durable records by key since the last checkpoint (what :meth:`records_of` answers from)."""

    # -- opening and closing ----------------------------------------------------------------------------------
    def open(self) -> None:
        """Read the journal (cutting off a torn tail) and open it for appending; creates it when missing."""
        with self._cond:
            if self._fd is not None:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                _hold(fd, self.path)
                data = b""
                while chunk := os.read(fd, 1 << 20):
                    data += chunk
                self.records, valid = _parse(data)
                if valid != len(data):
                    os.ftruncate(fd, valid)
                    os.fsync(fd)
                if created:
                    _fsync_directory(self.directory)
            except BaseException:
                os.close(fd)
                raise
            self._fd, self._size, self._broken = fd, valid, None

    def close(self) -> None:
        """Close once every queued line is flushed (an append after this raises OSError)."""
        with self._cond:
            while self._flushing or self._checkpointing or self._queue:
                self._cond.wait()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    @property
    def size(self) -> int:
        return self._size

    def records_of(self, key: str) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.records.get(key, ()))

    # -- group commit -----------------------------------------------------------------------------------------
    def append_delta(self, key: str, delta: dict[str, Any]) -> None:
        """Make ``delta`` of ``key`` durable; returns once a flush covering it is on disk."""
        self._append(key, {"d": delta})

    def append_state(self, key: str, state: dict[str, Any]) -> None:
        """Make ``key``'s whole JSON form durable (it replaces the key's earlier records)."""
        self._append(key, {"s": state})

    def _append(self, key: str, record: dict[str, Any]) -> None:
        entry = _Entry(key, record, _line(key, record))
        with self._cond:
            while self._checkpointing:
                self._cond.wait()
            if self._fd is None:
                raise OSError("the fleet journal is not open")
            if self._broken is not None:
                raise OSError(f"the fleet journal is unusable until reopened: {self._broken}")
            self._queue.append(entry)
            while not entry.done:
                if self._flushing or self._checkpointing:
                    self._cond.wait()
                else:
                    self._flush()
        if entry.error is not None:
            raise OSError(f"the fleet journal could not be written: {entry.error}") from entry.error

    def _flush(self) -> None:
        """Write and fdatasync every queued line (called holding the lock, which it releases meanwhile)."""
        batch, self._queue = self._queue, []
        fd = self._fd
        self._flushing = True
        data = b"".join(entry.line for entry in batch)
        error: BaseException | None = None
        self._cond.release()
        try:
            if fd is None:
                raise OSError("the fleet journal is closed")
            _write_all(fd, data)
            os.fdatasync(fd)
        except OSError as exc:
            error = exc
            try:
                if fd is not None:
                    os.ftruncate(fd, self._size)
            except OSError as cut:
                # the torn lines stay: a later line written after them would be cut off by the next open, after
                # its answer left. No more appends until the journal is reopened (which cuts the torn tail).
                self._broken = cut
        finally:
            self._cond.acquire()
        self._flushing = False
        if error is None:
            self._size += len(data)
            self.flushes += 1
            self.lines += len(batch)
            for entry in batch:
                if "s" in entry.record:
                    self.records[entry.key] = [entry.record]
                else:
                    self.records.setdefault(entry.key, []).append(entry.record)
        for entry in batch:
            entry.done, entry.error = True, error
        self._cond.notify_all()

    # -- checkpoint -------------------------------------------------------------------------------------------
    def due(self) -> bool:
        """Whether the journal outgrew ``checkpoint_bytes``."""
        return self._size > self.checkpoint_bytes

    def checkpoint(self, write: Callable[[str, list[dict[str, Any]]], None]) -> int:
        """Call ``write(key, records)`` for every key with records, from a few threads (it must store that key's
        state durably elsewhere), then empty the journal; appends wait meanwhile. Returns the number of keys written. A
        ``write`` that raises leaves the journal whole (nothing is lost; the next checkpoint tries again)."""
        with self._cond:
            while self._flushing or self._checkpointing or self._queue:  # every queued line flushed first
                self._cond.wait()
            if self._fd is None or not self.records:
                return 0
            self._checkpointing = True
            items: Iterable[tuple[str, list[dict[str, Any]]]] = list(self.records.items())
        try:
            with ThreadPoolExecutor(_CHECKPOINT_THREADS) as pool:  # the writes wait on fsync: overlap them
                count = sum(1 for _ in pool.map(lambda item: write(*item), items))
            with self._cond:
                assert self._fd is not None
                os.ftruncate(self._fd, 0)
                os.fsync(self._fd)
                self._size = 0
                self.records = {}
            return count
        finally:
            with self._cond:
                self._checkpointing = False
                self._cond.notify_all()


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
