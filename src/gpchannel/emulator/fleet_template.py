"""A fleet card's initial state from a template, not from its profile each time.

Every card of a fleet is the base profile with its own ICCID, ``[ota]`` key set and ``[scp81]`` PSK
(:meth:`gpchannel.emulator.fleet.Fleet.profile_of`). Building the state from the profile validates the whole
profile again for each card; here the base is built once (the JSON form of the first card's state) and a card's
state is that form with the fields its own values decide put back: CPLC, IIN, CIN and key diversification data
from the ICCID (as :func:`gpchannel.card.profile.profile_from_dict` derives them when the base profile does not set
them: GP 2.3.1 H.5 CPLC serial from the ICCID, IIN/CIN its packed BCD), and the OTA settings from the card's
tables, checked as the profile checks them.

The template is used only when it reproduces the profile's result: at its making, two cards are built both ways
and compared; on any difference (a base profile that derives something else from the card's fields) every card
is built from its profile, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from gpchannel.card.profile import generate_cplc
from gpchannel.card.profile_ota import check_ota, check_scp81
from gpchannel.card.state import CardState

__all__ = ["StateTemplate"]


def _bcd(digits: str) -> str:
    return (digits + "F" * (len(digits) % 2)).upper()


class StateTemplate:
    """Initial states of the cards of one base profile: ``build(card_index)`` is the slow, reference way (the
    profile); ``tables(card_index)`` gives the card's ICCID and its ``[ota]`` and ``[scp81]`` tables."""

    def __init__(
        self,
        base_card: Mapping[str, Any],
        build: Callable[[int], CardState],
        tables: Callable[[int], tuple[str, dict[str, Any], dict[str, Any]]],
        count: int,
    ) -> None:
        self._card = base_card
        self._build = build
        self._tables = tables
        self._json: str | None = None
        if count >= 1:
            first = build(0)
            self._json = json.dumps(first.to_dict())
            samples = [(0, first)] + ([(count - 1, build(count - 1))] if count > 1 else [])
            if any(self._fast(i).to_dict() != state.to_dict() for i, state in samples):
                self._json = None

    @property
    def active(self) -> bool:
        """Whether states come from the template (False: from the profile, each time)."""
        return self._json is not None

    def state(self, index: int) -> CardState:
        return self._build(index) if self._json is None else self._fast(index)

    def _fast(self, index: int) -> CardState:
        assert self._json is not None
        iccid, ota, scp81 = self._tables(index)
        raw = json.loads(self._json)
        card = self._card
        if "cplc" not in card:
            cplc = generate_cplc(iccid or "gpchannel")
            raw["cplc"] = cplc.hex().upper()
            if "kdd" not in card:
                raw["key_diversification_data"] = (cplc[0:4] + cplc[10:16]).hex().upper()
        if "iin" not in card:
            raw["iin"] = _bcd(iccid[:6]) if iccid else ""
        if "cin" not in card:
            raw["cin"] = _bcd(iccid) if iccid else ""
        raw["ota"] = {"ota": check_ota(ota), "scp81": check_scp81(scp81)}
        return CardState.from_dict(raw)
