"""A SoftHSM2 token for the tests, made by the project's own scripts/softhsm.sh (test-only helper).

Each test session gets its own token store (``SOFTHSM_DIR`` under pytest's temporary directory), so runs never
see each other's keys. SoftHSM reads ``SOFTHSM2_CONF`` when the library is first initialised in the process, so
the variable is set for the whole session. With ``CI`` set, a token that cannot be made fails the test instead of
skipping it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["SoftHsm", "start_softhsm"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SoftHsm:
    lib: str
    token: str
    pin: str
    conf: str


_STARTED: SoftHsm | None = None


def start_softhsm(base: Path) -> SoftHsm:
    """Run ``scripts/softhsm.sh url`` with a store under ``base`` (once per process) and return its settings."""
    global _STARTED
    if _STARTED is not None:
        return _STARTED
    env = dict(os.environ, SOFTHSM_DIR=str(base / "softhsm"))
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "softhsm.sh"), "url"], env=env, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"scripts/softhsm.sh did not run: {exc}")
    if result.returncode != 0:
        _unavailable(f"scripts/softhsm.sh failed: {(result.stderr or result.stdout).strip()}")
    settings = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    os.environ["SOFTHSM2_CONF"] = settings["conf"]
    _STARTED = SoftHsm(settings["lib"], settings["token"], settings["pin"], settings["conf"])
    return _STARTED


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"SoftHSM2 is required in CI: {reason}")
    pytest.skip(reason)
