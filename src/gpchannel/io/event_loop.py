"""The event loop of the long-running server process: uvloop (libuv's loop, in C) when it is installed (the
``server`` extra installs it where it builds), else asyncio's own.

Measured (bench/tls.py, bench/scp81.py): with asyncio's selector loop, the loop's own Python code (its run
queue, the selector, the socket transports) cost more CPU per PSK-TLS handshake than OpenSSL's handshake itself;
uvloop runs the same protocol code (io/tls_protocol.py) with the loop's part in C. The behaviour is asyncio's:
both loops implement the same API, and every test runs on asyncio's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on uvloop's loop when uvloop is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the server extra installs it
        return asyncio.run(main)
    return uvloop.run(main)
