"""Loader for the test vectors in tests/vectors/ (JSON lists of cases, each with its source).

Every file under tests/vectors/<area>/ is a JSON list of objects with ``source``, ``kind``, ``inputs``,
``expected`` and ``notes`` (the layout of ../shared/vectors/, from which they are copied). ``SOURCES.md`` in each
folder says which document, repository or card each file comes from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

VECTORS = Path(__file__).parent / "vectors"

__all__ = ["VECTORS", "VectorCase", "cases", "params"]


@dataclass(frozen=True)
class VectorCase:
    source: str
    kind: str
    inputs: dict[str, Any]
    expected: dict[str, Any]
    notes: str

    def hex_in(self, name: str) -> bytes:
        return bytes.fromhex(str(self.inputs[name]).replace(" ", ""))

    def hex_out(self, name: str) -> bytes:
        return bytes.fromhex(str(self.expected[name]).replace(" ", ""))


def cases(relpath: str, *kinds: str) -> list[VectorCase]:
    """The cases of ``tests/vectors/<relpath>`` whose kind is one of ``kinds`` (all when none is given)."""
    raw = json.loads((VECTORS / relpath).read_text())
    out = [
        VectorCase(c["source"], c["kind"], c.get("inputs", {}), c.get("expected", {}), c.get("notes", "")) for c in raw
    ]
    return [c for c in out if not kinds or c.kind in kinds]


def params(relpath: str, *kinds: str) -> list[Any]:
    """``cases`` as pytest params, each with its source as the id."""
    return [pytest.param(c, id=f"{c.kind}:{c.source.rsplit('/', 1)[-1]}") for c in cases(relpath, *kinds)]
