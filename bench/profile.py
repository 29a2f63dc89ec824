"""Where a server process spends its CPU: yappi on the processes a bench starts, summed by cost centre.

With ``GPCHANNEL_BENCH_PROFILE=DIR`` in the environment, bench/scp81.py and bench/campaign.py start every
``gpchannel server`` and ``python -m gpchannel.server.worker`` process under yappi (CPU clock, every thread:
the server runs its database calls in a thread pool, which cProfile would not see), the profile written to
``DIR/<role>-<pid>.prof`` (pstats format) when the process stops on SIGTERM. ``python -m bench.profile
[--top] FILE...`` then prints, per file, the process's CPU time split into cost centres: the own time
(``tottime``) of every function, summed by the module it lives in and mapped onto the centres of
:data:`CENTRES` (the first that matches the function's file path wins), and the call counts that say how many
statements and commits the process made.

The profiler itself slows a Python-heavy process by a factor of about 1.5 to 2: the shares are what to read,
not the absolute seconds.
"""

from __future__ import annotations

import os
import pstats
import runpy
import signal
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CENTRES", "mark_phase", "profiled", "report"]

ENV = "GPCHANNEL_BENCH_PROFILE"
REPO = Path(__file__).resolve().parents[1]

CENTRES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("database driver (sqlite3 / psycopg)", ("sqlite3", "_sqlite3", "psycopg", "psycopg_pool", "psycopg_binary")),
    ("SQLAlchemy (statement building, rows)", ("sqlalchemy",)),
    ("repository / job state (server/store)", ("gpchannel/server/store", "gpchannel/server/repository",
                                               "gpchannel/server/job_state", "gpchannel/server/db")),
    ("TLS engine (io/tls_*)", ("gpchannel/io/tls",)),
    ("crypto (cryptography, hashlib, hmac)", ("cryptography", "hashlib", "hmac", "_hashlib", "gpchannel/crypto")),
    ("HTTP (aiohttp, multidict, yarl)", ("aiohttp", "multidict", "yarl", "http/")),
    ("JSON", ("json/", "_json")),
    ("packet building (ota, scp, gp, codec)", ("gpchannel/ota", "gpchannel/scp", "gpchannel/gp", "gpchannel/codec")),
    ("SMPP", ("gpchannel/smpp",)),
    ("server logic (senders, ras, workers, api)", ("gpchannel/server",)),
    ("asyncio loop, sockets, selectors", ("asyncio", "selectors", "socket", "ssl")),
    ("thread pool hand-off (threading, futures)", ("threading", "concurrent/futures", "queue")),
    ("HTTP/1.1 parser (h11)", ("h11",)),
    ("logging", ("logging",)),
)  # fmt: skip

CALLS: tuple[tuple[str, str, str], ...] = (
    ("statements executed (Cursor.execute)", "execute", "sqlite3|psycopg"),
    ("commits", "commit", "sqlite3|psycopg"),
    ("SQLAlchemy Connection.execute", "execute", "sqlalchemy/engine/base"),
)
"""(label, function name, a '|'-separated list of path fragments one of which the function's file holds)."""


def profiled(role: str, args: list[str]) -> list[str]:
    """``args`` (a Python command line without the interpreter: ``-m mod ...`` or ``-c code ...``) under cProfile
    when the environment asks for it; ``args`` unchanged otherwise."""
    target = os.environ.get(ENV)
    if not target:
        return args
    Path(target).mkdir(parents=True, exist_ok=True)
    if args[0] == "-c":  # the server's entry point, run as a module
        args = ["-m", "gpchannel.cli.main", *args[2:]]
    if args[0] != "-m":
        raise ValueError(f"cannot profile {args!r}: a module is expected")
    boot = f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.profile import child; child()"
    return ["-c", boot, str(Path(target) / role), *args[1:]]


def mark_phase(pid: int, *, start: bool) -> None:
    """When profiling: the timed phase of the bench starts (the profile so far is dropped) or ends (what was
    profiled since is saved as ``PREFIX-<pid>-timed.prof``), so that setup work is not mixed into the figures."""
    if os.environ.get(ENV):
        os.kill(pid, signal.SIGUSR1 if start else signal.SIGUSR2)


def child() -> None:
    """``python -c ... PREFIX MODULE ARGS...``: run MODULE as ``__main__`` under yappi (CPU clock, all threads) and
    write ``PREFIX-<pid>.prof`` when it returns or exits."""
    import yappi

    prefix, module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]

    def timed_phase(signum: int, _frame: object) -> None:  # the bench's SIGUSR1 / SIGUSR2 (phase_marks)
        if signum == signal.SIGUSR2:
            yappi.get_func_stats().save(f"{prefix}-{os.getpid()}-timed.prof", type="pstat")
        yappi.clear_stats()

    signal.signal(signal.SIGUSR1, timed_phase)
    signal.signal(signal.SIGUSR2, timed_phase)
    yappi.set_clock_type("cpu")
    yappi.start(builtins=True)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        yappi.stop()
        yappi.get_func_stats().save(f"{prefix}-{os.getpid()}.prof", type="pstat")


def _centre(filename: str) -> str:
    path = filename.replace("\\", "/")
    if path in ("~", "builtins") or path.startswith("<"):
        return _builtin_centre(path)
    for name, prefixes in CENTRES:
        if any(f"/{p}" in path or f"site-packages/{p}" in path for p in prefixes):
            return name
    return "other Python"


def _builtin_centre(function: str) -> str:
    """Built-ins (cProfile's ``~``): named by their qualname, e.g. ``<method 'execute' of 'sqlite3.Cursor'>``."""
    table = (
        ("sqlite3", CENTRES[0][0]), ("psycopg", CENTRES[0][0]), ("_ssl", "TLS engine (io/tls_*)"),
        ("_openssl", "TLS engine (io/tls_*)"),
        ("select", "asyncio loop, sockets, selectors"), ("socket", "asyncio loop, sockets, selectors"),
        ("_hashlib", "crypto (cryptography, hashlib, hmac)"), ("_json", "JSON"),
    )  # fmt: skip
    return next((centre for key, centre in table if key in function), "built-ins (other)")


def report(path: Path) -> list[str]:
    """The lines for one profile file: total, each centre's share, the call counts."""
    stats = pstats.Stats(str(path))
    by_centre: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    raw = stats.stats  # type: ignore[attr-defined]
    total = 0.0
    for (filename, _line, function), (_cc, ncalls, tottime, _cum, _callers) in raw.items():
        total += tottime
        where = function if filename in ("~", "builtins") else filename
        by_centre[_centre(where)] += tottime
        for label, name, fragments in CALLS:
            if (function in (name, f"Cursor.{name}", f"Connection.{name}") or f" '{name}' " in function) and any(
                f in where for f in fragments.split("|")
            ):
                calls[label] += ncalls
    lines = [f"{path.name}: {total:.2f} s of profiled time"]
    for centre, seconds in sorted(by_centre.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {centre:<44} {seconds:>7.2f} s  {100 * seconds / total if total else 0:>5.1f} %")
    lines += [f"  {label:<44} {calls[label]:>9}" for label, _, _ in CALLS]
    return lines


def top(path: Path, count: int = 25) -> list[str]:
    """The ``count`` functions with the most own time."""
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:count]
    return [f"  {tt:>7.2f} s {nc:>9} calls  {fn}:{ln}({func})" for (fn, ln, func), (_, nc, tt, _, _) in rows]


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    functions = "--top" in args
    for name in (a for a in args if a != "--top"):
        print("\n".join(report(Path(name))))
        if functions:
            print("\n".join(top(Path(name))))


if __name__ == "__main__":
    main()
