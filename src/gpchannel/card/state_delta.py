"""One command's changes to the card state, in the JSON form the stores write (card/state.py ``to_dict``).

A delta is a JSON object with only the parts that changed:

- ``"card"``: the card's own fields (``CardState.header_dict``), whole;
- ``"apps"``: registry entries by AID (upper-case hex), each the entry's whole JSON form, or null when the entry
  was deleted; ``"app_order"``: the AIDs of the registry in order (present whenever ``"apps"`` is);
- ``"lfs"`` / ``"lf_order"``: the same for the Executable Load Files;
- ``"ota"``, ``"files"``: the OTA settings and the file system, whole.

:func:`apply_delta` applies one to a full JSON form (what a store replays from its journal); :class:`Committed`
is the tracker's copy of what was last committed, split in those parts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LISTS", "Committed", "apply_delta"]

LISTS = (("applications", "apps", "app_order"), ("load_files", "lfs", "lf_order"))
"""(attribute / JSON key of the full form, delta key of the entries, delta key of the order)."""
BLOBS = ("ota", "files")
_PARTS = ("applications", "load_files", *BLOBS)


def _apply_list(items: list[dict[str, Any]], changed: dict[str, Any], order: list[str]) -> list[dict[str, Any]]:
    by_aid = {item["aid"]: item for item in items}
    for aid, value in changed.items():
        if value is None:
            by_aid.pop(aid, None)
        else:
            by_aid[aid] = value
    return [by_aid[aid] for aid in order if aid in by_aid]


def apply_delta(raw: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """``raw`` (a full JSON form of a state) with ``delta`` applied; ``raw`` itself is left unchanged."""
    out = dict(raw)
    if "card" in delta:
        out.update(delta["card"])
    for name, entries, order in LISTS:
        if entries in delta or order in delta:
            current = out.get(name, [])
            wanted = delta.get(order, [item["aid"] for item in current])
            out[name] = _apply_list(current, delta.get(entries, {}), wanted)
    for blob in BLOBS:
        if blob in delta:
            out[blob] = delta[blob]
    return out


@dataclass
class Committed:
    """What was last committed, split in the parts a delta names."""

    header: dict[str, Any]
    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """By delta key ("apps", "lfs"): AID -> JSON form."""
    orders: dict[str, list[str]] = field(default_factory=dict)
    blobs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def split(cls, full: dict[str, Any]) -> Committed:
        out = cls({k: v for k, v in full.items() if k not in _PARTS})
        for name, entries, order in LISTS:
            items = full.get(name, [])
            out.entries[entries] = {item["aid"]: item for item in items}
            out.orders[order] = [item["aid"] for item in items]
        for blob in BLOBS:
            out.blobs[blob] = full.get(blob, {})
        return out

    def full(self) -> dict[str, Any]:
        out = dict(self.header)
        for name, entries, order in LISTS:
            out[name] = [self.entries[entries][aid] for aid in self.orders[order]]
        for blob in BLOBS:
            out[blob] = self.blobs[blob]
        return out

    def accept(self, delta: dict[str, Any]) -> None:
        """Make ``delta`` part of the committed state (its dicts are kept as they are: never the live ones)."""
        if "card" in delta:
            self.header = delta["card"]
        for _, entries, order in LISTS:
            for aid, value in delta.get(entries, {}).items():
                if value is None:
                    self.entries[entries].pop(aid, None)
                else:
                    self.entries[entries][aid] = value
            if order in delta:
                self.orders[order] = list(delta[order])
        for blob in BLOBS:
            if blob in delta:
                self.blobs[blob] = delta[blob]

    def view(self, over: dict[str, Any]) -> Committed:
        """The committed state with ``over`` (a delta not committed, e.g. a savepoint) laid over it."""
        out = Committed(
            self.header,
            {k: dict(v) for k, v in self.entries.items()},
            {k: list(v) for k, v in self.orders.items()},
            dict(self.blobs),
        )
        out.accept(copy.deepcopy(over))
        return out
