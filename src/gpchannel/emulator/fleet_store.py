"""Where a fleet card's state lives: its own state directory (io/store.py, ``cards/<ICCID>/``) plus its lines in the
fleet's journal (io/fleet_journal.py, ``cards.journal``), which a checkpoint folds back into the directories.

A card of a fleet commits through :class:`FleetCardStore`: each changing command appends its delta to the fleet
journal, whose group commit makes several cards' changes durable with one fdatasync, and the command's answer
(the PoR) is built only after that. Reading a card (:func:`card_raw`): the directory's state, or the card's
initial state from the manifest when it has none, then the card's journal lines in order. A checkpoint
(:func:`checkpoint_writer`) writes that state into the card's directory (temp file, fsync, rename, directory
fsync) before the journal is emptied, so after a clean stop the directories hold everything, in the format they
always had (docs/emulator.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gpchannel.card.state import CardState
from gpchannel.card.state_delta import apply_delta
from gpchannel.io.fleet_journal import FLEET_JOURNAL_FILE, FleetJournal, Records, read_fleet_journal
from gpchannel.io.store import DirectoryStore

__all__ = ["FleetCardStore", "FleetView", "card_raw", "checkpoint_writer", "stored_card_state"]


class FleetView(Protocol):
    """What this module reads of a :class:`gpchannel.emulator.fleet.Fleet` (cards are its ``FleetCard``)."""

    @property
    def directory(self) -> Path: ...

    def state_dir(self, card: Any) -> Path: ...

    def initial_state(self, card: Any) -> CardState: ...

    def by_iccid(self, iccid: str) -> Any: ...


def card_raw(
    directory: DirectoryStore, initial: Callable[[], CardState], records: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The JSON form of a card's committed state: ``directory``'s (or ``initial()``'s when the card has no
    directory yet but has ``records``) with ``records`` applied; None for a card never changed."""
    if records and "s" in records[0]:
        raw: dict[str, Any] | None = records[0]["s"]
        records = records[1:]
    else:
        raw = directory.load_raw()
        if raw is None:
            if not records:
                return None
            raw = initial().to_dict()
    assert raw is not None
    for record in records:
        raw = apply_delta(raw, record["d"])
    return raw


class FleetCardStore:
    """The DeltaStore of one fleet card (``key``: its ICCID) over ``journal`` and its state ``directory``."""

    def __init__(
        self, journal: FleetJournal, key: str, directory: DirectoryStore, initial: Callable[[], CardState]
    ) -> None:
        self.journal = journal
        self.key = key
        self.directory = directory
        self._initial = initial

    def load(self) -> CardState | None:
        records = self.journal.records_of(self.key)
        if not records:
            return self.directory.load()
        raw = card_raw(self.directory, self._initial, records)
        return None if raw is None else CardState.from_dict(raw)

    def commit(self, state: CardState) -> None:
        """The whole state, durably (one journal line)."""
        self.journal.append_state(self.key, state.to_dict())

    def commit_delta(self, delta: dict[str, Any], state: CardState) -> None:
        """One command's changes, durably: returns once a journal flush covering them is on disk."""
        self.journal.append_delta(self.key, delta)


def stored_card_state(fleet: FleetView, card: Any, journal: FleetJournal | None) -> CardState | None:
    """``card``'s committed state: its directory with its lines of ``journal`` (the open one) or, when the fleet
    has none open, of the journal file; None if the card was never used."""
    records = journal.records_of(card.iccid) if journal is not None else _file_records(fleet.directory, card.iccid)
    raw = card_raw(DirectoryStore(fleet.state_dir(card)), lambda: fleet.initial_state(card), records)
    return None if raw is None else CardState.from_dict(raw)


_read_cache: dict[Path, tuple[tuple[int, int], Records]] = {}


def _file_records(directory: Path, key: str) -> list[dict[str, Any]]:
    """``key``'s lines of the journal file in ``directory`` (parsed once per version of the file: a listing of
    every card's counter reads it once)."""
    path = directory / FLEET_JOURNAL_FILE
    try:
        info = path.stat()
    except FileNotFoundError:
        return []
    version = (info.st_size, info.st_mtime_ns)
    cached = _read_cache.get(path)
    if cached is None or cached[0] != version:
        _read_cache.clear()
        cached = _read_cache[path] = (version, read_fleet_journal(directory))
    return cached[1].get(key, [])


def checkpoint_writer(fleet: FleetView) -> Callable[[str, list[dict[str, Any]]], None]:
    """The ``write`` of :meth:`FleetJournal.checkpoint` for ``fleet``: each card's state into its own directory,
    durably (a key the fleet does not hold is left out: its lines have no card)."""

    def write(key: str, records: list[dict[str, Any]]) -> None:
        card = fleet.by_iccid(key)
        if card is None:
            return
        directory = DirectoryStore(fleet.state_dir(card))
        raw = card_raw(directory, lambda: fleet.initial_state(card), records)
        if raw is not None:
            directory.commit(CardState.from_dict(raw))

    return write
