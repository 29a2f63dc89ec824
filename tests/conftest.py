"""Shared test configuration: hypothesis profiles (no deadlines: speed is measured in `make bench`)."""

from __future__ import annotations

import os

# pytest's unraisable-exception hook imports tracemalloc lazily; when a garbage-collected pyscard connection
# (left over from a deliberate pcscd restart) raises in __del__ during that very import, the hook fails on the
# half-imported module. Importing it up front keeps the hook working (and the warning filtered, see pyproject).
import tracemalloc  # noqa: F401

from hypothesis import HealthCheck, settings

# The card state engine's debug check (card/state_tracker.py): after every command, the full serialisation must
# equal the committed state, so a change that escapes tracking fails the test. Child processes inherit it.
os.environ.setdefault("GPCHANNEL_STATE_CHECK", "1")

# too_slow is a timing check: on a loaded machine it fails a test whose examples are fine, so no profile keeps it.
_UNTIMED = [HealthCheck.too_slow]
settings.register_profile("default", deadline=None, max_examples=60, suppress_health_check=_UNTIMED)
settings.register_profile("ci", deadline=None, max_examples=60, suppress_health_check=_UNTIMED, derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=1000, suppress_health_check=_UNTIMED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))
