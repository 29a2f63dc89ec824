"""The command line's outermost error boundary: every way out of ``gpchannel`` is one ``error: ...`` line on
stderr and a code of :class:`~gpchannel.cli.exit_codes.ExitCode`, never a traceback.

* click's usage errors (unknown option, bad value, missing argument) keep their code (2) and print as one line
  naming the option and where the help is;
* an error of the project's tree (or an ``OSError``) that a command let through is mapped by
  :func:`~gpchannel.cli.exit_codes.exit_code_for`;
* a module of an extra that is not installed (``gpchannel[server]``): what to install (cli/extras.py);
* anything else is a bug: ``error: internal error: <type>: <message> (set GPCHANNEL_DEBUG=1 for the traceback)``
  and :attr:`ExitCode.INTERNAL` (the traceback is printed first when ``GPCHANNEL_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from gpchannel.cli.exit_codes import ExitCode, exit_code_for
from gpchannel.cli.extras import missing_extra

__all__ = ["DEBUG_ENV", "GuardedGroup", "error_line", "run_guarded"]

DEBUG_ENV = "GPCHANNEL_DEBUG"


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr (plain text: the message is never styled nor wrapped)."""
    click.echo(f"error: {message}", err=True)


def _usage_message(error: click.ClickException) -> str:
    message = error.format_message()
    ctx = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_guarded(body: Callable[[], Any]) -> int:
    """Run ``body`` (click's main in non-standalone mode) and turn whatever it raises into an exit code."""
    try:
        result = body()
    except SystemExit:
        raise
    except click.exceptions.NoArgsIsHelpError as exc:  # `gpchannel ota` alone: the help, as click shows it
        exc.show()
        error_line(f"give a command (see '{exc.ctx.command_path} --help')" if exc.ctx else "give a command")
        return int(exc.exit_code)
    except click.ClickException as exc:
        error_line(_usage_message(exc))
        return int(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        error_line("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # the last resort: every cause found is fixed where it is raised
        extra = missing_extra(exc)  # a command of an extra that is not installed (cli/extras.py)
        if extra is not None:
            error_line(extra)
            return ExitCode.TRANSPORT
        code = exit_code_for(exc)
        if code is None:
            if _debug():
                traceback.print_exc(file=sys.stderr)
            error_line(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for the traceback)")
            return ExitCode.INTERNAL
        error_line(str(exc) or type(exc).__name__)
        return code
    # click returns the code of an explicit ctx.exit (e.g. --help) in non-standalone mode, else the result.
    return result if isinstance(result, int) and not isinstance(result, bool) else ExitCode.OK


class GuardedGroup(click.Group):
    """A click group whose ``main`` (the console script's, and CliRunner's) goes through :func:`run_guarded`."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def body() -> Any:
            expand = windows_expand_args
            return click.Group.main(
                self, args, prog_name, complete_var, standalone_mode=False, windows_expand_args=expand, **extra
            )

        if not standalone_mode:
            return body()
        sys.exit(run_guarded(body))
