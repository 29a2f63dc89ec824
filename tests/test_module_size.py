"""Every module of src/gpchannel is at most 500 lines (docs/design.md: small modules, each owning one thing; split
one that would grow past it). The check counts lines as ``wc -l`` does."""

from __future__ import annotations

from pathlib import Path

import gpchannel

MAX_LINES = 500
ROOT = Path(gpchannel.__file__).parent


def oversized(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules under ``root`` longer than ``limit`` lines -> their length."""
    sizes = {str(p.relative_to(root.parent)): p.read_bytes().count(b"\n") for p in sorted(root.rglob("*.py"))}
    return {name: n for name, n in sizes.items() if n > limit}


def test_no_module_is_over_500_lines() -> None:
    assert len(list(ROOT.rglob("*.py"))) > 100
    assert oversized(ROOT) == {}


def test_the_check_finds_a_long_module(tmp_path: Path) -> None:
    package = tmp_path / "gpchannel"
    package.mkdir()
    (package / "short.py").write_text("x = 1\n" * MAX_LINES)
    (package / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert oversized(package) == {"gpchannel/long.py": MAX_LINES + 1}
