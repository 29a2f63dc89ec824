"""The card state's transaction engine: what one command changed, without serialising what it did not touch.

The tracker adopts a :class:`~gpchannel.card.state.CardState` (card/tracking.py: every write marks its unit) and
keeps the JSON form of what was last committed (:class:`~gpchannel.card.state_delta.Committed`). After a command:

- nothing marked: nothing changed, nothing is serialised, nothing is written;
- :meth:`StateTracker.pending` serialises only the marked units and returns the delta of those that really differ
  from the committed ones (card/state_delta.py), which the store persists; :meth:`StateTracker.accept` then makes
  it the committed state;
- :meth:`StateTracker.rollback` puts the marked units back from the committed JSON (a failed command), or from the
  committed state with a savepoint laid over it (a failed remote APDU of an OTA script, ETSI TS 102 226 5.1.1),
  without re-reading the rest.

A tracker serialises the state it adopts, unless the caller said what that gives (:func:`known_form`: a fleet
card built from a template, whose JSON form is mostly the template's, shared read-only: the committed form is only
ever read or replaced part by part, never changed in place).

The debug check (``check=True``, or ``GPCHANNEL_STATE_CHECK=1`` in the environment, as the test suite sets it)
compares, after every command, the full serialisation with the committed one: a change that escaped tracking
raises :class:`StateTrackingError`.
"""

from __future__ import annotations

import contextvars
import copy
import os
from typing import Any

from gpchannel.card.state import Application, CardState, LoadFile
from gpchannel.card.state_delta import BLOBS, LISTS, Committed
from gpchannel.card.state_fields import hex_text
from gpchannel.card.tracking import Tracked, TrackedList, Unit, adopt

__all__ = ["CHECK_ENV", "StateTracker", "StateTrackingError", "check_from_env", "known_form"]

CHECK_ENV = "GPCHANNEL_STATE_CHECK"
_ELEMENT: dict[str, tuple[str, str, type[Application] | type[LoadFile]]] = {
    "applications": ("app", "app_order", Application),
    "load_files": ("lf", "lf_order", LoadFile),
}
_ENTRY_KIND = {"apps": "app", "lfs": "lf"}
_known: contextvars.ContextVar[tuple[CardState, dict[str, Any]] | None] = contextvars.ContextVar(
    "known_form", default=None
)


def check_from_env() -> bool:
    return os.environ.get(CHECK_ENV, "") not in ("", "0")


_SCALARS = frozenset((str, int, float, bool, type(None)))


def plain_copy(value: Any) -> Any:
    """A deep copy of a JSON-form value (dicts, lists, scalars; tracked ones read without marking): what
    ``copy.deepcopy`` gives for them, at a fraction of its cost (no memo: a JSON form shares nothing)."""
    if isinstance(value, dict):
        return {k: v if type(v) in _SCALARS else plain_copy(v) for k, v in dict.items(value)}
    if isinstance(value, list):
        return [v if type(v) in _SCALARS else plain_copy(v) for v in list.__iter__(value)]
    return value


def known_form(state: CardState, raw: dict[str, Any]) -> None:
    """The next tracker of ``state`` made in this context (thread) takes ``raw`` as its JSON form (what
    ``state.to_dict()`` gives; parts of it may be shared with other states, so it must never be changed in place)
    instead of serialising the state. The debug check compares the two."""
    _known.set((state, raw))


def _form_of(state: CardState, check: bool) -> dict[str, Any]:
    hint = _known.get()
    _known.set(None)
    if hint is None or hint[0] is not state:
        return state.to_dict()
    raw: dict[str, Any] = hint[1]
    if check and raw != state.to_dict():
        raise StateTrackingError("the JSON form given for a new card's state is not the state's")
    return raw


class StateTrackingError(AssertionError):
    """The live state differs from what was committed although no change was tracked (a bug: a write that
    bypassed the tracked state objects)."""


class StateTracker:
    """Tracks one CardState (see the module docstring)."""

    def __init__(self, state: CardState, *, check: bool | None = None) -> None:
        self.check_enabled = check_from_env() if check is None else check
        self.version = 0
        """Counts the changes of the committed state (and rollbacks): with no unit marked, an answer computed from
        the state at one version holds until it moves (GET STATUS, SELECT)."""
        self.dirty: set[Unit] = set()
        self.units = {kind: Unit(self, kind) for kind in ("card", "app_order", "lf_order", *BLOBS)}
        self.state = state
        self.committed = Committed.split(_form_of(state, self.check_enabled))
        self._attach(state)
        self.dirty.clear()

    def __deepcopy__(self, memo: dict[int, Any]) -> StateTracker:
        """A tracker of a deep copy of the state, for a card copied whole (the fuzzer copies its templates so). The
        state objects' own deep copies are detached (card/tracking.py), so the copy attaches them anew; the committed
        state and the version come along, and a copy taken with marks pending counts everything as changed."""
        new = StateTracker.__new__(StateTracker)
        memo[id(self)] = new
        new.check_enabled = self.check_enabled
        new.version = self.version
        new.dirty = set()
        new.units = {kind: Unit(new, kind) for kind in self.units}
        new.committed = copy.deepcopy(self.committed, memo)
        new._attach(copy.deepcopy(self.state, memo))
        new.dirty.clear()
        if self.dirty:
            new.replace(new.state)
        return new

    # -- the Tracker protocol of card/tracking.py -------------------------------------------------------------
    def touch(self, unit: Unit) -> None:
        self.dirty.add(unit)

    def child(self, name: str, value: Any) -> Any:
        """A CardState field's value, adopted into its unit (the registry's entries each into their own)."""
        if name in _ELEMENT:
            order = self.units[_ELEMENT[name][1]]
            order.touch()
            return TrackedList(order, value, self._element_unit(_ELEMENT[name][0]))
        if name in BLOBS:
            self.units[name].touch()
            return adopt(value, self.units[name])
        return value

    def _element_unit(self, kind: str) -> Any:
        def unit_of(obj: object) -> Unit:
            unit = getattr(obj, "_unit", None) if isinstance(obj, Tracked) else None
            if isinstance(unit, Unit) and unit.tracker is self and unit.kind == kind and unit.obj is obj:
                return unit
            return Unit(self, kind, obj)

        return unit_of

    def _attach(self, state: CardState) -> None:
        self.state = state
        state._adopt(self.units["card"])

    # -- the engine -------------------------------------------------------------------------------------------
    def replace(self, state: CardState) -> None:
        """Track ``state`` instead (it replaced the live one): everything in it counts as changed."""
        self._attach(state)
        self.dirty.update(self.units.values())
        self.version += 1

    def pending(self) -> dict[str, Any] | None:
        """The delta of the marked units against the committed state; None when nothing was marked, {} when
        what was marked did not change."""
        if not self.dirty:
            return None
        state, committed = self.state, self.committed
        kinds = {unit.kind for unit in self.dirty}
        delta: dict[str, Any] = {}
        if "card" in kinds:
            header = state.header_dict()
            if header != committed.header:
                delta["card"] = header
        for name, entries, order_key in LISTS:
            kind, order_kind, _ = _ELEMENT[name]
            if kind not in kinds and order_kind not in kinds:
                continue
            items: list[Tracked] = getattr(state, name)
            live = {id(item) for item in items}
            done = committed.entries[entries]
            changed: dict[str, Any] = {}
            for unit in self.dirty:
                if unit.kind == kind and id(unit.obj) in live:
                    raw = unit.obj.to_dict()  # type: ignore[attr-defined]
                    if done.get(raw["aid"]) != raw:
                        changed[raw["aid"]] = raw
            order = [hex_text(item.aid) for item in items]  # type: ignore[attr-defined]
            if order != committed.orders[order_key]:
                present = set(order)
                changed.update({aid: None for aid in committed.orders[order_key] if aid not in present})
                for item, aid in zip(items, order, strict=True):
                    if aid not in done and aid not in changed:
                        changed[aid] = item.to_dict()  # type: ignore[attr-defined]
            if changed or order != committed.orders[order_key]:
                delta[entries] = changed
                delta[order_key] = order
        for blob in BLOBS:
            if blob in kinds:
                value = plain_copy(getattr(state, blob))
                if value != committed.blobs[blob]:
                    delta[blob] = value
        return delta

    def accept(self, delta: dict[str, Any] | None) -> None:
        """``delta`` (from :meth:`pending`) is durable: it is now the committed state."""
        if delta:
            self.committed.accept(delta)
            self.version += 1
        self.dirty.clear()

    def rollback(self, savepoint: dict[str, Any] | None = None) -> None:
        """Put every marked unit back as committed (with ``savepoint``, a :meth:`pending` delta, laid over)."""
        over = savepoint or {}
        view = self.committed.view(over) if over else self.committed
        kinds = {unit.kind for unit in self.dirty}
        state = self.state
        if "card" in kinds or "card" in over:
            for name, value in CardState.header_fields(view.header).items():
                object.__setattr__(state, name, value)
        for name, entries, order_key in LISTS:
            kind, order_kind, cls = _ELEMENT[name]
            if kind not in kinds and order_kind not in kinds and entries not in over:
                continue
            dirty = {id(unit.obj) for unit in self.dirty if unit.kind == kind}
            keep = {hex_text(item.aid): item for item in getattr(state, name) if id(item) not in dirty}
            changed = over.get(entries, {})
            items = [
                keep[aid] if aid in keep and aid not in changed else cls.from_dict(copy.deepcopy(raw), f"state.{name}")
                for aid in view.orders[order_key]
                for raw in (view.entries[entries][aid],)
            ]
            object.__setattr__(state, name, TrackedList(self.units[order_kind], items, self._element_unit(kind)))
        for blob in BLOBS:
            if blob in kinds or blob in over:
                object.__setattr__(state, blob, adopt(copy.deepcopy(view.blobs[blob]), self.units[blob]))
        self.dirty.clear()
        self._mark(over)
        self.version += 1

    def _mark(self, delta: dict[str, Any]) -> None:
        """Mark the units ``delta`` names (after a rollback to a savepoint: they still differ from the committed)."""
        if "card" in delta:
            self.dirty.add(self.units["card"])
        for name, entries, order_key in LISTS:
            if order_key in delta:
                self.dirty.add(self.units[_ELEMENT[name][1]])
            aids = set(delta.get(entries, {}))
            for item in getattr(self.state, name):
                if hex_text(item.aid) in aids:
                    self.dirty.add(item._unit)
        for blob in BLOBS:
            if blob in delta:
                self.dirty.add(self.units[blob])

    def check(self) -> None:
        """The debug check: raise StateTrackingError if the live state is not the committed one."""
        live, committed = self.state.to_dict(), self.committed.full()
        if live == committed:
            return
        parts = sorted(k for k in live.keys() | committed.keys() if live.get(k) != committed.get(k))
        raise StateTrackingError(f"the card state changed without being tracked (in {', '.join(parts)})")
