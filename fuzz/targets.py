"""The target table: every input gpchannel takes from outside, by area (each area's module lists its own)."""

from __future__ import annotations

from fuzz.engine import Target
from fuzz.targets_card import TARGETS as CARD
from fuzz.targets_config import TARGETS as CONFIG
from fuzz.targets_gp import TARGETS as GP
from fuzz.targets_ota import TARGETS as OTA
from fuzz.targets_ram import TARGETS as RAM

__all__ = ["ALL", "select"]

SMPP: tuple[Target, ...] = ()
"""SMPP 3.4 PDUs (the codec under gpchannel.smpp): add ``Target("smpp.pdu", seeds, decode)`` rows here once the
project's own PDU codec lands; the vectors are in tests/vectors/smpp."""

ALL: tuple[Target, ...] = GP + OTA + RAM + CONFIG + SMPP + CARD


def select(patterns: list[str] | None) -> tuple[Target, ...]:
    """The targets whose name starts with one of ``patterns`` (all when none)."""
    if not patterns:
        return ALL
    chosen = tuple(t for t in ALL if any(t.name.startswith(p) for p in patterns))
    if not chosen:
        raise SystemExit(f"no target matches {', '.join(patterns)}; known: {', '.join(t.name for t in ALL)}")
    return chosen
