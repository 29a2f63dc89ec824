"""Atomic persistence of the card emulator's state in a directory (implements card.state.StateStore).

``commit`` writes ``state.json.tmp``, flushes and fsyncs it, renames it over ``state.json`` with
``os.replace`` (atomic on POSIX) and fsyncs the directory so the rename itself is durable. A SIGKILL or a
power cut at any instant therefore leaves either the previous ``state.json`` or the new one, complete; a
leftover ``state.json.tmp`` is ignored and overwritten by the next commit.
"""

from __future__ import annotations

import os
from pathlib import Path

from gpchannel.card.state import CardState

__all__ = ["STATE_FILE", "DirectoryStore"]

STATE_FILE = "state.json"


class DirectoryStore:
    """A StateStore over one directory (created on first commit)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE
        self._tmp = self.directory / (STATE_FILE + ".tmp")

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> CardState | None:
        """The committed state, None if the directory holds none; DecodeError if the file is not a state."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        return CardState.from_json(text)

    def commit(self, state: CardState) -> None:
        self.write_text(state.to_json())

    def write_text(self, text: str) -> None:
        """Atomically replace the state file with ``text``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = text.encode()
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._tmp, self.path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
