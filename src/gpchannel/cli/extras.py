"""What to install when a command needs one of gpchannel's optional parts.

``pip install gpchannel`` gives the host tool and the card emulator. The OTA server's dependencies are the
``server`` extra, pyscard (PC/SC readers) the ``pcsc`` extra. The command line never imports them when it starts:
the commands that need them import them when they run, and :func:`missing_extra` turns the
``ModuleNotFoundError`` that reaches the command line's boundary (cli/guard.py) into one line saying what to
install. (A missing pyscard is reported where PC/SC is opened, gpchannel.io.pcsc, with the Debian packages.)
"""

from __future__ import annotations

__all__ = ["SERVER_EXTRA", "SERVER_PACKAGES", "missing_extra"]

SERVER_EXTRA = "pip install 'gpchannel[server]'"

SERVER_PACKAGES = frozenset({"sqlalchemy", "alembic", "psycopg", "psycopg_binary", "pkcs11", "aiohttp"})
"""The top-level modules of the ``server`` extra's distributions."""


def missing_extra(exc: BaseException) -> str | None:
    """The message for an import of a ``server`` extra's module that failed, else None."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    root = exc.name.split(".")[0]
    if root not in SERVER_PACKAGES:
        return None
    return f"this command needs the OTA server's dependencies ({root} is not installed): {SERVER_EXTRA}"
