"""Seed material: the hex strings of the project's vector files (tests/vectors/<area>/*.json) and example files,
so mutations start from real encodings (the vectors come from independent implementations and cards)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

__all__ = ["ROOT", "VECTORS", "example_bytes", "vector_hex"]

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2}[ :]?)+$")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@cache
def vector_hex(*areas: str, min_size: int = 2, max_size: int = 4096) -> tuple[bytes, ...]:
    """Every hex string (``min_size``..``max_size`` bytes) in the JSON vector files of ``areas`` (folders under
    tests/vectors, or ``folder/file.json``), in a stable order, without duplicates."""
    out: dict[bytes, None] = {}
    for area in areas:
        path = VECTORS / area
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            for text in _strings(json.loads(file.read_text())):
                if _HEX.match(text.strip()):
                    data = bytes.fromhex(text.replace(" ", "").replace(":", ""))
                    if min_size <= len(data) <= max_size:
                        out[data] = None
    return tuple(out)


def example_bytes(*names: str) -> tuple[bytes, ...]:
    """Files of examples/ (``profiles/scp03.toml``, ...) as bytes."""
    return tuple((ROOT / "examples" / name).read_bytes() for name in names)
