"""How ``gpchannel`` prints: for a program reading its output, and for a person at a terminal.

* stdout is not a terminal (a pipe, a file, a test): tables are plain text, one row per line, every value in full
  (no truncation, no wrapping, no colour, no box); columns are padded with spaces so ``column``/``awk`` and a
  person both read them.
* stdout is a terminal: rich tables, where a column holding identifiers (AID, ICCID, MSISDN, hex data) never
  loses a character: a value too wide for its cell folds inside the cell (``overflow="fold"``) instead of being
  cut with an ellipsis.
* Plain lines (``console.print``) are never wrapped: the consoles below are created with ``soft_wrap``.
* Progress bars go to stderr and only when stderr is a terminal (:func:`progress`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["Column", "ProgressHook", "print_table", "progress", "stderr_console", "stdout_console"]


def stdout_console() -> Console:
    """The console of a command's results: plain lines are never wrapped, colour only on a terminal."""
    return Console(soft_wrap=True, highlight=False)


def stderr_console() -> Console:
    """The console of notes, warnings, traces and progress bars."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


@dataclass(frozen=True)
class Column:
    """A table column; ``identifier``: its values must never be cut (AIDs, ICCIDs, MSISDNs, hex)."""

    header: str
    identifier: bool = False


_MIN_IDENTIFIER_WIDTH = 8
"""At least this many characters of an identifier per line of its cell, where the terminal is wide enough."""


def print_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """Print a table as a rich table on a terminal, else as plain aligned text (see the module's docstring)."""
    if not console.is_terminal:
        _print_plain(console, columns, rows)
        return
    table = _fitting_table(console, title, columns, rows)
    console.print(table, soft_wrap=False, highlight=False)


def _table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], cap: int | None) -> Table:
    table = Table(title=title)
    for index, column in enumerate(columns):
        longest = max((len(row[index]) for row in rows), default=1)
        minimum = min(longest, cap) if column.identifier and cap is not None else None
        table.add_column(column.header, overflow="fold", no_wrap=False, min_width=minimum)
    for row in rows:
        table.add_row(*row)
    return table


def _fitting_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> Table:
    """The table with its identifier columns as wide as their longest value where the terminal has room, else
    24, 16 or :data:`_MIN_IDENTIFIER_WIDTH` wide, else as rich distributes the width (the values fold all the same): the
    first of these whose minimum width fits the terminal, so that nothing is cropped at its edge."""
    longest = max((len(cell) for row in rows for cell in row), default=1)
    for cap in (longest, 24, 16, _MIN_IDENTIFIER_WIDTH):
        table = _table(title, columns, rows, cap)
        if _rendered_width(table, console.width) <= console.width:
            return table
    return _table(title, columns, rows, None)


def _rendered_width(table: Table, width: int) -> int:
    """How wide ``table`` comes out on a terminal ``width`` columns wide, when nothing crops it."""
    probe = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    probe.print(table, crop=False)
    return max((len(line) for line in probe.file.getvalue().splitlines()), default=0)  # type: ignore[attr-defined]


def _print_plain(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    lines = [[c.header for c in columns], *[[cell or "-" for cell in row] for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    for line in lines:
        text = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        console.print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)


class ProgressHook:
    """``hook(done, total)``: advance a progress bar (a no-op when the bar is off)."""

    def __init__(self, bar: Progress | None, description: str) -> None:
        self._bar = bar
        self._task = bar.add_task(description, total=None) if bar is not None else None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)


@contextmanager
def progress(console: Console, description: str) -> Iterator[ProgressHook]:
    """A progress bar on ``console`` (stderr) while the block runs; nothing when it is not a terminal."""
    if not console.is_terminal:
        yield ProgressHook(None, description)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        yield ProgressHook(bar, description)
