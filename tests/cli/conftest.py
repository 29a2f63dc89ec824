"""The PC/SC fixtures of tests/io (pcscd started with scripts/pcscd.sh; skipped, saying why, only when it cannot
run), for the command line's tests through the real PC/SC stack."""

from __future__ import annotations

from tests.io.conftest import pcscd_readers

__all__ = ["pcscd_readers"]
