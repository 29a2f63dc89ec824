"""The trace checker of each protocol, by SCP identifier: how the trace inspector and the key doctor find the
checker of a session from its parsed INITIALIZE UPDATE response, in one table rather than an if-chain per module.

The keys are the identifiers of :data:`gpchannel.scp.registry.PROTOCOLS` initiated by INITIALIZE UPDATE (SCP01,
SCP02, SCP03: GP 2.1.1 Appendix D, GP 2.2.1 Appendix E, Amendment D); ``tests/trace/test_checkers.py`` checks that
each of them has one. A protocol initiated by steps (SCP10) has no INITIALIZE UPDATE to start a check from: its
sessions start at MANAGE SECURITY ENVIRONMENT (:mod:`gpchannel.trace.scp10_checker`).
"""

from __future__ import annotations

from collections.abc import Callable

from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import UnsupportedError
from gpchannel.scp.common import InitializeUpdateResponse, ScpProtocol, protocol_name
from gpchannel.trace.scp02_checker import Scp02Checker
from gpchannel.trace.verifiers import Checker, Scp01Checker, Scp03Checker

__all__ = ["CHECKERS", "CheckerFactory", "checker_for"]

CheckerFactory = Callable[[StaticKeys, bytes, InitializeUpdateResponse, "int | None"], Checker]
"""(card keys, host challenge, parsed INITIALIZE UPDATE response, i when known) -> the session's checker."""

CHECKERS: dict[int, CheckerFactory] = {
    ScpProtocol.SCP01: Scp01Checker,
    ScpProtocol.SCP02: Scp02Checker,
    ScpProtocol.SCP03: Scp03Checker,
}


def checker_for(
    keys: StaticKeys, host_challenge: bytes, parsed: InitializeUpdateResponse, i: int | None, *, what: str
) -> Checker:
    """The checker of ``parsed.protocol``; UnsupportedError naming ``what`` when there is none."""
    factory = CHECKERS.get(parsed.protocol)
    if factory is None:
        raise UnsupportedError(f"{what} {protocol_name(parsed.protocol)}")
    return factory(keys, host_challenge, parsed, i)
