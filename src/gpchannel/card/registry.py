"""The GlobalPlatform Registry operations of the OPEN (GP Card Specification 2.3.1, 6.4, 9.2, 9.5):
lookup by AID, partial AID and next occurrence for SELECT (11.9.2.3; ISO 7816-4 5.3.1.1), the Security Domain
hierarchy (associations), and the removal of entries for DELETE (11.2).
"""

from __future__ import annotations

from gpchannel.card.state import Application, CardState, LoadFile
from gpchannel.gp.lifecycle import is_selectable
from gpchannel.gp.privileges import Privilege

__all__ = [
    "associated_with",
    "delete_application",
    "delete_load_file",
    "find_for_select",
    "is_under",
    "load_file_of_module",
    "visible_to",
]


def find_for_select(state: CardState, aid: bytes, *, after: bytes | None = None) -> Application | None:
    """The application SELECT [by name] reaches: an exact match first, else the first (or, with ``after``, the
    next) application whose AID starts with ``aid`` (partial selection; GP 2.3.1 11.9.2.3).

    Only applications in a selectable state (SELECTABLE or later, not LOCKED) and Security Domains are
    candidates; the registry order is the order of installation.
    """
    candidates = [a for a in state.applications if a.aid.startswith(aid)]
    if after is not None and all(a.aid != after for a in candidates):
        after = None  # the current application does not match: "next" starts from the first occurrence
    if after is None:
        exact = next((a for a in candidates if a.aid == aid), None)
        if exact is not None:
            return exact
        return next((a for a in candidates if _selectable(state, a)), None)
    seen = False
    for app in candidates:
        if seen and _selectable(state, app):
            return app
        if app.aid == after:
            seen = True
    return None


def _selectable(state: CardState, app: Application) -> bool:
    return app.aid == state.isd_aid or is_selectable(app.lifecycle)


def is_under(state: CardState, aid: bytes, sd_aid: bytes) -> bool:
    """Whether ``aid`` (an application or load file) is associated, directly or indirectly, with ``sd_aid``."""
    seen: set[bytes] = set()
    current = aid
    while current not in seen:
        seen.add(current)
        if current == sd_aid:
            return True
        app = state.application(current)
        owner = app.sd_aid if app is not None else None
        if owner is None:
            load_file = state.load_file(current)
            owner = load_file.sd_aid if load_file is not None else None
        if owner is None or owner == current:
            return current == sd_aid
        current = owner
    return False


def visible_to(state: CardState, sd: Application) -> bool:
    """Whether ``sd`` sees the whole registry (the ISD, or the Global Registry privilege; 11.4.2.3)."""
    return sd.aid == state.isd_aid or Privilege.GLOBAL_REGISTRY in sd.privileges


def associated_with(state: CardState, sd_aid: bytes) -> list[Application]:
    """Applications and Security Domains directly associated with ``sd_aid`` (the SD itself excluded)."""
    return [a for a in state.applications if a.sd_aid == sd_aid and a.aid != sd_aid]


def load_file_of_module(state: CardState, module_aid: bytes) -> LoadFile | None:
    return next((f for f in state.load_files if module_aid in f.modules), None)


def delete_application(state: CardState, aid: bytes) -> None:
    state.applications = [a for a in state.applications if a.aid != aid]


def delete_load_file(state: CardState, aid: bytes) -> None:
    state.load_files = [f for f in state.load_files if f.aid != aid]
