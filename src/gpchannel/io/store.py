"""Durable, atomic persistence of the card emulator's state in a directory (implements card.state.DeltaStore).

Two files (docs/storage.md says why this layout, with the measurements):

- ``state.json``: a full snapshot of the state (the JSON form of card/state.py, plus ``journal_generation``).
  :meth:`DirectoryStore.commit` writes ``state.json.tmp``, fsyncs it, renames it over ``state.json`` with
  ``os.replace`` (atomic on POSIX) and fsyncs the directory, then empties the journal.
- ``state.journal``: one line per committed command since that snapshot, ``<crc32 hex> <delta JSON>``, each
  delta (card/state_delta.py) holding only the units the command changed, tagged with the snapshot's
  generation (a random number drawn at each snapshot). :meth:`DirectoryStore.commit_delta` appends a line and
  fdatasyncs the file: one small write and one flush per changing command. When the journal outgrows the
  snapshot it is compacted into a new snapshot.

A SIGKILL or a power cut at any instant leaves the state of just before or just after the last commit:
``load`` replays the lines of the snapshot's generation and stops at the first torn or corrupt one (the
command whose line was cut never committed), which the next append cuts off. A leftover ``state.json.tmp`` is
ignored. A directory written before the journal existed (``state.json`` alone) loads as it is.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from gpchannel.card.state import CardState
from gpchannel.card.state_delta import apply_delta
from gpchannel.errors import DecodeError
from gpchannel.io.journal_lines import encode_line, valid_lines

__all__ = ["JOURNAL_FILE", "STATE_FILE", "DirectoryStore"]

STATE_FILE = "state.json"
JOURNAL_FILE = "state.journal"
_GENERATION = "journal_generation"
_COMPACT_MIN_BYTES = 256 * 1024
"""The journal is compacted once it is larger than this and than the snapshot."""


def _fsync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _make_directory(directory: Path) -> None:
    """Create ``directory`` and its missing parents, each new entry made durable (its parent fsynced)."""
    if directory.is_dir():
        return
    _make_directory(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return
    _fsync_directory(directory.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _record(generation: int, delta: dict[str, Any]) -> bytes:
    return encode_line({"g": generation, "d": delta})


def _replay(raw: dict[str, Any], journal: bytes, generation: int) -> tuple[dict[str, Any], int]:
    """``raw`` with the journal's records of ``generation`` applied, and the length of the journal's valid part."""
    end = 0
    for record, after in valid_lines(journal):
        if not isinstance(record.get("d"), dict):
            break
        if record.get("g") == generation:
            raw = apply_delta(raw, record["d"])
        end = after
    return raw, end


class DirectoryStore:
    """A DeltaStore over one directory (created on first commit)."""

    def __init__(self, directory: str | os.PathLike[str], *, compact_bytes: int = _COMPACT_MIN_BYTES) -> None:
        self.directory = Path(directory)
        self.compact_bytes = compact_bytes
        self._journal_fd: int | None = None
        self._generation = 0
        self._journal_size = 0
        self._snapshot_size = 0
        self._known = False  # whether _generation and _journal_size describe the directory (after load/commit)

    # The file paths are made at first use: a fleet opens a store per card, most of them never written.
    @functools.cached_property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    @functools.cached_property
    def journal_path(self) -> Path:
        return self.directory / JOURNAL_FILE

    @functools.cached_property
    def _tmp(self) -> Path:
        return self.directory / (STATE_FILE + ".tmp")

    def exists(self) -> bool:
        return self.path.is_file()

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None

    def __del__(self) -> None:
        self.close()

    def _read(self) -> tuple[dict[str, Any], int, int] | None:
        """(the replayed JSON form, its generation, the valid journal length); None without a snapshot."""
        path = os.path.join(self.directory, STATE_FILE)
        if not os.path.exists(path):  # as a read that finds no file, without raising (most fleet cards have none)
            return None
        try:
            with open(path, "rb") as file:
                text = file.read()
        except FileNotFoundError:
            return None
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise DecodeError(f"the state is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise DecodeError("state: expected an object")
        generation = raw.pop(_GENERATION, 0)
        self._snapshot_size = len(text)
        try:
            journal = self.journal_path.read_bytes()
        except FileNotFoundError:
            journal = b""
        raw, valid = _replay(raw, journal, generation)
        return raw, generation, valid

    def load_raw(self) -> dict[str, Any] | None:
        """The committed state's JSON form (card/state.py ``to_dict``), None if the directory holds none."""
        read = self._read()
        return None if read is None else read[0]

    def load(self) -> CardState | None:
        """The committed state, None if the directory holds none; DecodeError if it is not a state."""
        read = self._read()
        if read is None:
            return None
        raw, generation, valid = read
        state = CardState.from_dict(raw)
        self.close()
        self._generation, self._journal_size, self._known = generation, valid, True
        return state

    def _open_journal(self, valid: int) -> None:
        """Open the journal for appending, cutting off a torn tail after ``valid`` bytes."""
        created = not self.journal_path.exists()
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if os.fstat(fd).st_size != valid:
            os.ftruncate(fd, valid)
            os.fsync(fd)
        if created:
            _fsync_directory(self.directory)
        self._journal_fd = fd

    def commit(self, state: CardState) -> None:
        """Write ``state`` as a new snapshot (a new, random generation: journal lines of any earlier snapshot
        never apply to it) and empty the journal."""
        generation = int.from_bytes(os.urandom(6), "big") | 1
        raw = state.to_dict()
        raw[_GENERATION] = generation
        self._write_snapshot(json.dumps(raw, indent=1, sort_keys=True))
        self._generation, self._journal_size, self._known = generation, 0, True
        if self._journal_fd is not None or self.journal_path.exists():
            self.close()
            self._open_journal(0)

    def commit_delta(self, delta: dict[str, Any], state: CardState) -> None:
        """Append ``delta`` to the journal durably (one write, one fdatasync); compact when it grew large."""
        if self._journal_fd is None:
            if not self._known:
                read = self._read()
                if read is None:
                    self.commit(state)
                    return
                self._generation, self._journal_size = read[1], read[2]
            self._open_journal(self._journal_size)
        assert self._journal_fd is not None
        record = _record(self._generation, delta)
        _write_all(self._journal_fd, record)
        os.fdatasync(self._journal_fd)
        self._journal_size += len(record)
        if self._journal_size > max(self.compact_bytes, self._snapshot_size):
            self.commit(state)

    def _write_snapshot(self, text: str) -> None:
        """Atomically replace the snapshot file with ``text``."""
        _make_directory(self.directory)
        data = text.encode()
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._tmp, self.path)
        _fsync_directory(self.directory)
        self._snapshot_size = len(data)
