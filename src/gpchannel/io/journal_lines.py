"""The line format of the emulator's journals (io/store.py: one card; io/fleet_journal.py: a fleet): one
committed change per line, ``<crc32 of the JSON, 8 hex digits> <JSON object>\\n``. A reader stops at the first line
that is torn (no newline yet), corrupt (a CRC that does not match) or not a JSON object: the append that wrote it
never returned, so nothing depended on it, and everything after it is cut off by the next writer."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

__all__ = ["encode_line", "valid_lines"]


def encode_line(record: dict[str, Any]) -> bytes:
    """``record`` as one journal line (compact JSON, sorted keys, its CRC-32 first)."""
    body = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def valid_lines(journal: bytes) -> Iterator[tuple[dict[str, Any], int]]:
    """Each record of ``journal`` in order, with the offset just past its line, up to the first torn or corrupt
    line (the offset of the last record yielded is the length of the journal's valid part)."""
    end = 0
    while True:
        newline = journal.find(b"\n", end)
        if newline < 0:
            return
        line = journal[end:newline]
        if len(line) < 10 or line[8:9] != b" ":
            return
        body = line[9:]
        try:
            if int(line[:8], 16) != zlib.crc32(body):
                return
            record = json.loads(body)
        except ValueError:
            return
        if not isinstance(record, dict):
            return
        end = newline + 1
        yield record, end
