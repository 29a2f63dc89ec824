"""The OTA counter store of ``gpchannel ota``: the last counter sent per card and KVN, kept in a local JSON file
written atomically *before* a packet leaves, so the next packet is always higher than any the card accepted
(ETSI TS 102 225 5.1.1, CNTR; ota-notes E.5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from gpchannel.errors import DecodeError

__all__ = ["CounterStore", "default_counter_store"]


def default_counter_store() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gpchannel" / "ota-counters.json"


class CounterStore:
    """The last counter sent per card and KVN, in a JSON file replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, int]]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise DecodeError(f"the counter store {self.path} is not valid JSON") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise DecodeError(f"the counter store {self.path} is not a {{card: {{kvn: counter}}}} object")
        return raw

    def last(self, card: str, kvn: int) -> int:
        return int(self._load().get(card, {}).get(str(kvn), 0))

    def record(self, card: str, kvn: int, counter: int) -> None:
        """Keep ``counter`` as the last one sent (never lowers what is stored)."""
        data = self._load()
        entry = data.setdefault(card, {})
        entry[str(kvn)] = max(counter, int(entry.get(str(kvn), 0)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(data, indent=1, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself is durable
        finally:
            os.close(directory)
