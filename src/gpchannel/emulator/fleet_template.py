"""A fleet card's initial state from a template, not from its profile each time.

Every card of a fleet is the base profile with its own ICCID, ``[ota]`` key set and ``[scp81]`` PSK
(:meth:`gpchannel.emulator.fleet.Fleet.profile_of`). Building the state from the profile validates the whole
profile again for each card; here the base is built once (the first card's state) and a card's
state is that form with the fields its own values decide put back: CPLC, IIN, CIN and key diversification data
from the ICCID (as :func:`gpchannel.card.profile.profile_from_dict` derives them when the base profile does not set
them: GP 2.3.1 H.5 CPLC serial from the ICCID, IIN/CIN its packed BCD), and the OTA settings from the card's
tables, checked as the profile checks them.

The template is used only when it reproduces the profile's result: at its making, two cards are built both ways
and compared; on any difference (a base profile that derives something else from the card's fields) every card
is built from its profile, as before.

Cost per card: the base state is parsed once; a card's state is a clone of it (:func:`clone`: new containers and
state objects all the way down, the immutable values shared, no parsing) with the card's own fields set. The
card's tables are checked once per *shape* (:func:`_shape`: the tables with each key and PSK replaced by its
length and whether it is hex, the PSK identity and agent id by whether they are non-empty strings; or the shape
the caller gives, which must say as much): the checks of card/profile_ota.py depend on nothing else, so two cards
of one shape pass or fail them alike. The card's JSON form (:meth:`StateTemplate.state_and_form`) is the
template's with the card's own fields: its tracker need not serialise it (card/state_tracker.py ``known_form``).
"""

from __future__ import annotations

import copy
import enum
import string
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from gpchannel.card.profile import generate_cplc
from gpchannel.card.profile_ota import check_ota, check_scp81
from gpchannel.card.state import CardState
from gpchannel.card.state_tracker import plain_copy
from gpchannel.card.tracking import Tracked
from gpchannel.gp.privileges import Privileges

__all__ = ["StateTemplate", "clone"]

_SHARED = frozenset((bytes, str, int, bool, float, type(None), Privileges))
_KEYS = frozenset(("kic", "kid", "psk"))
_NAMES = frozenset(("psk_identity", "agent_id"))
_HEX = frozenset(string.hexdigits + " ")


def _bcd(digits: str) -> str:
    return (digits + "F" * (len(digits) % 2)).upper()


def clone(value: Any) -> Any:
    """A deep copy of a state value not yet adopted by a tracker (card/tracking.py): new lists, dicts and state
    objects, immutable values (bytes, text, numbers, enums, privileges) shared; anything else deep-copied."""
    kind = type(value)
    if kind in _SHARED or isinstance(value, enum.Enum):
        return value
    if kind is list:
        return [clone(v) for v in value]
    if kind is dict:
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, Tracked) and getattr(value, "_unit", None) is None:
        new = object.__new__(kind)
        for name in value._fields():
            field = getattr(value, name)
            object.__setattr__(new, name, field if type(field) in _SHARED else clone(field))
        return new
    return copy.deepcopy(value)


def _shape(value: Any, name: str = "") -> Any:
    """What the profile checks of a card's tables see (see the module docstring), hashable."""
    if isinstance(value, dict):
        return tuple(sorted((k, _shape(v, k)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_shape(v) for v in value)
    if isinstance(value, str) and name in _KEYS:
        return ("key", len(value), _HEX.issuperset(value))
    if isinstance(value, str) and name in _NAMES:
        return ("name", bool(value))
    return (type(value).__name__, value)


class StateTemplate:
    """Initial states of the cards of one base profile: ``build(card_index)`` is the slow, reference way (the
    profile); ``tables(card_index)`` gives the card's ICCID and its ``[ota]`` and ``[scp81]`` tables."""

    def __init__(
        self,
        base_card: Mapping[str, Any],
        build: Callable[[int], CardState],
        tables: Callable[[int], tuple[str, dict[str, Any], dict[str, Any]]],
        count: int,
        shape: Callable[[int], Hashable] | None = None,
    ) -> None:
        self._card = base_card
        self._build = build
        self._tables = tables
        self._shape_of = shape
        self._base: CardState | None = None
        self._form: dict[str, Any] = {}
        self._shapes: set[Any] = set()
        if count >= 1:
            first = build(0)
            self._form = first.to_dict()
            self._base = CardState.from_dict(copy.deepcopy(self._form))
            samples = [(0, first)] + ([(count - 1, build(count - 1))] if count > 1 else [])
            if any(self._fast(i).to_dict() != state.to_dict() for i, state in samples):
                self._base = None

    @property
    def active(self) -> bool:
        """Whether states come from the template (False: from the profile, each time)."""
        return self._base is not None

    def state(self, index: int) -> CardState:
        return self._build(index) if self._base is None else self._fast(index)

    def state_and_form(self, index: int) -> tuple[CardState, dict[str, Any] | None]:
        """The card's state and, from the template, its JSON form (for :func:`known_form`; the parts it shares
        with the template's must not be changed in place), else None."""
        if self._base is None:
            return self._build(index), None
        state = self._fast(index)
        return state, {**self._form, **state.header_dict(), "ota": plain_copy(state.ota)}

    def _fast(self, index: int) -> CardState:
        assert self._base is not None
        iccid, ota, scp81 = self._tables(index)
        shape = _shape((ota, scp81)) if self._shape_of is None else self._shape_of(index)
        if shape not in self._shapes:
            check_ota(ota)
            check_scp81(scp81)
            self._shapes.add(shape)
        state: CardState = clone(self._base)
        card = self._card
        own: dict[str, Any] = {"ota": {"ota": ota, "scp81": scp81}}
        if "cplc" not in card:
            own["cplc"] = cplc = generate_cplc(iccid or "gpchannel")
            if "kdd" not in card:
                own["key_diversification_data"] = cplc[0:4] + cplc[10:16]
        if "iin" not in card:
            own["iin"] = bytes.fromhex(_bcd(iccid[:6])) if iccid else b""
        if "cin" not in card:
            own["cin"] = bytes.fromhex(_bcd(iccid)) if iccid else b""
        for name, value in own.items():
            object.__setattr__(state, name, value)
        return state
