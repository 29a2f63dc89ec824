"""The PC/SC fixtures of tests/io (pcscd started with scripts/pcscd.sh; skipped, saying why, only when it cannot
run), shared with the emulator's end-to-end tests."""

from __future__ import annotations

from tests.io.conftest import pcscd_readers, virtual_reader

__all__ = ["pcscd_readers", "virtual_reader"]
