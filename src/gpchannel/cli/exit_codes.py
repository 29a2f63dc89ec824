"""The exit codes of ``gpchannel`` (one table, listed in ``gpchannel --help``) and the table that maps an error
class to its code.

Every command ends with one of :class:`ExitCode`'s values; a failure prints one line starting ``error:`` on
stderr that says what went wrong and what to do. Library errors are mapped by :func:`exit_code_for`, which walks
the error's class hierarchy through :data:`ERROR_EXIT_CODES` (the most specific class listed wins).
"""

from __future__ import annotations

from enum import IntEnum

from gpchannel.errors import (
    AuthenticationError,
    CardError,
    CardStatusError,
    DecodeError,
    GPChannelError,
    InventoryError,
    ProfileError,
    TransportError,
    UnsupportedError,
)

__all__ = ["ERROR_EXIT_CODES", "ExitCode", "epilog", "exit_code_for"]


class ExitCode(IntEnum):
    """What a ``gpchannel`` exit status means (see :data:`MEANING`)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    AUTHENTICATION = 3
    CARD_REFUSED = 4
    TRANSPORT = 5
    INTERNAL = 70  # EX_SOFTWARE of BSD's sysexits.h
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "the operation failed (malformed data in a file or from the card, a failed job, ...)",
    ExitCode.USAGE: "usage error: a bad option, argument or profile (nothing was sent)",
    ExitCode.AUTHENTICATION: "the card cryptogram or a trace check did not verify (wrong keys)",
    ExitCode.CARD_REFUSED: "the card refused: a status word other than success, or a PoR status other than 00",
    ExitCode.TRANSPORT: "no reader, card, SMSC or server reachable, or a part this install lacks (an extra)",
    ExitCode.INTERNAL: "internal error: a bug (please report it; GPCHANNEL_DEBUG=1 shows the traceback)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}

ERROR_EXIT_CODES: dict[type[BaseException], ExitCode] = {
    AuthenticationError: ExitCode.AUTHENTICATION,
    CardStatusError: ExitCode.CARD_REFUSED,
    CardError: ExitCode.CARD_REFUSED,
    TransportError: ExitCode.TRANSPORT,
    UnsupportedError: ExitCode.TRANSPORT,
    ProfileError: ExitCode.USAGE,
    InventoryError: ExitCode.USAGE,
    DecodeError: ExitCode.FAILURE,
    GPChannelError: ExitCode.FAILURE,
    ConnectionError: ExitCode.TRANSPORT,
    OSError: ExitCode.FAILURE,  # a file that cannot be read or written: the message names it
}
"""Error class -> exit code. An error not listed here (nor any of its bases) is an internal error."""


def exit_code_for(error: BaseException) -> ExitCode | None:
    """The exit code of ``error``: that of the first class of its MRO in :data:`ERROR_EXIT_CODES`, else None."""
    for cls in type(error).__mro__:
        code = ERROR_EXIT_CODES.get(cls)
        if code is not None:
            return code
    return None


def epilog() -> str:
    """The exit code table for ``gpchannel --help`` (``\\b`` keeps click from rewrapping it)."""
    lines = [f"  {int(code):>3}  {MEANING[code]}" for code in ExitCode]
    return "\b\nExit codes:\n" + "\n".join(lines)
