"""The example card profiles shipped inside the package (``gpchannel/data/profiles/*.toml``), so that a pip user
can follow the README: ``gpchannel card init --example scp03 --state DIR``.

The repository's ``examples/profiles/*.toml`` are links to these files: one source of truth.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["example_names", "example_profile"]

_PACKAGE = "gpchannel.data"


def _profiles() -> dict[str, Path]:
    folder = resources.files(_PACKAGE) / "profiles"
    return {
        entry.name.removesuffix(".toml"): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    }


def example_names() -> list[str]:
    """The shipped examples' names (``scp02``, ``scp03``), sorted."""
    return sorted(_profiles())


def example_profile(name: str) -> Path:
    """The path of shipped example ``name`` (a name :func:`example_names` lists; KeyError otherwise)."""
    return _profiles()[name]
