"""The PC/SC fixtures of tests/io (pcscd started with scripts/pcscd.sh; skipped, saying why, only when it cannot
run), for the attacker on a PC/SC line."""

from __future__ import annotations

from tests.io.conftest import pcscd_readers

__all__ = ["pcscd_readers"]
