"""``gpchannel demo``: demonstrations with an emulated card, in memory or through PC/SC.

``gpchannel demo mitm`` puts an attacker between the host and an emulated card and runs each attack of
:mod:`gpchannel.mitm.attacks` at each security level: a table per level says what the attacker saw, what it
changed, what the card did, what the host noticed and which security service stopped it (docs/security-services.md).
The card is in memory, or, with ``--pcsc``, an emulator this command serves on a vpcd slot (the attacker then sits
on the PC/SC line: host -> attacker -> pcscd -> vpcd -> card), or, with ``--reader NAME``, a card another
process serves (``gpchannel card serve`` of a card built from the demo profile, :mod:`gpchannel.mitm.pcsc`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.console import Console

from gpchannel.cli.settings import EXIT_USAGE, fail, fail_on
from gpchannel.errors import GPChannelError
from gpchannel.mitm.attacks import Attack
from gpchannel.mitm.report import level_title, outcome_json, outcome_table, wire_trace
from gpchannel.mitm.scenario import GP_LEVELS, Outcome, run_gp
from gpchannel.mitm.scp80 import SCP80_ATTACKS, SCP80_LEVELS, run_scp80

__all__ = ["demo"]

_PROTOCOLS = {"02": 0x02, "03": 0x03, "80": 0x80}
_MAX_MESSAGE = 32
_MIN_WIDTH = 150
"""Six columns: narrower, every cell wraps into a tower."""


@click.group()
def demo() -> None:
    """Demonstrations with an emulated card, in memory or through PC/SC."""


def _levels(scp: int) -> tuple[int, ...]:
    return tuple(SCP80_LEVELS) if scp == 0x80 else GP_LEVELS[scp]


def _attacks(scp: int) -> tuple[Attack, ...]:
    return SCP80_ATTACKS if scp == 0x80 else tuple(Attack)


Runner = Callable[[int, int, Attack, bytes], Outcome]


def _in_memory(scp: int, level: int, attack: Attack, message: bytes) -> Outcome:
    return run_scp80(level, attack, message) if scp == 0x80 else run_gp(scp, level, attack, message)


@contextmanager
def _runner(pcsc: bool, reader: str | None) -> Iterator[Runner]:
    """Where the card is: in memory, an emulator served here on a vpcd slot, or the card in ``reader``."""
    if not pcsc and reader is None:
        yield _in_memory
        return
    from gpchannel.mitm.pcsc import ServedEmulator, reader_line

    if reader is not None:
        yield lambda scp, level, attack, message: run_gp(scp, level, attack, message, transport=reader_line(reader))
        return
    with ServedEmulator() as served:
        yield lambda scp, level, attack, message: run_gp(scp, level, attack, message, transport=served.line(scp))


@demo.command()
@click.option(
    "--scp", "scps", type=click.Choice(sorted(_PROTOCOLS)), multiple=True, help="02, 03 or 80 (default: all)."
)
@click.option("--level", "levels", multiple=True, help="Security level in hex (SCP80: SPI1), repeatable; default all.")
@click.option("--attack", "attacks", multiple=True, help="An attack name, or 'all' (default), repeatable.")
@click.option("--message", default="Hello", show_default=True, help="The message the host sends the card.")
@click.option("--json", "as_json", is_flag=True, help="The same data as JSON.")
@click.option("--trace", is_flag=True, help="Each cell's wire bytes, decoded by the trace inspector.")
@click.option("--pcsc", is_flag=True, help="Through pcscd: serve the emulator on a free vpcd slot (SCP02/03).")
@click.option("--reader", default=None, help="Through pcscd: the card in this reader, built from the demo profile.")
def mitm(
    scps: tuple[str, ...],
    levels: tuple[str, ...],
    attacks: tuple[str, ...],
    message: str,
    as_json: bool,
    trace: bool,
    pcsc: bool,
    reader: str | None,
) -> None:
    """An attacker in the middle, at every security level: what each level stops.

    \b
    Attacks: read, modify-data, modify-header, replay, reorder, drop, inject, impersonate-server,
    impersonate-card (SCP80: the first seven). Levels: SCP02 00 01 03 13; SCP03 00 01 03 13 33;
    SCP80 (SPI1) 00 06 12 16. --pcsc and --reader run SCP02/03 (SCP80 travels by SMS); --reader needs one
    --scp, the protocol of the card's profile.
    """
    raw = message.encode("ascii", "replace")
    if not raw or len(raw) > _MAX_MESSAGE or not message.isascii() or not message.isprintable():
        fail(None, f"--message: 1 to {_MAX_MESSAGE} printable ASCII characters", EXIT_USAGE)
    names = {a.value: a for a in Attack}
    wanted_attacks: set[Attack] | None = None
    if attacks and "all" not in attacks:
        unknown = [a for a in attacks if a not in names]
        if unknown:
            fail(None, f"--attack {unknown[0]}: one of all, {', '.join(names)}", EXIT_USAGE)
        wanted_attacks = {names[a] for a in attacks}
    try:
        wanted_levels = {int(text, 16) for text in levels}
    except ValueError:
        fail(None, f"--level: hex values such as 01 or 33, got {' '.join(levels)}", EXIT_USAGE)
    protocols = scps or (("02", "03", "80") if not (pcsc or reader) else ("02", "03"))
    if (pcsc or reader is not None) and "80" in protocols:
        fail(None, "--pcsc/--reader: SCP02 or 03 (SCP80 travels by SMS, not through a reader)", EXIT_USAGE)
    if pcsc and reader is not None:
        fail(None, "--pcsc serves its own emulator; --reader uses a card already served: one of them", EXIT_USAGE)
    if reader is not None and len(protocols) != 1:
        fail(None, "--reader: give the card's protocol with one --scp 02 or --scp 03", EXIT_USAGE)
    console = Console(width=max(Console().width, _MIN_WIDTH))
    try:
        with _runner(pcsc, reader) as run:
            _matrix(run, protocols, wanted_levels, wanted_attacks, raw, as_json, trace, console)
    except GPChannelError as exc:
        fail_on(None, exc)


def _matrix(
    run: Runner,
    protocols: tuple[str, ...],
    wanted_levels: set[int],
    wanted_attacks: set[Attack] | None,
    raw: bytes,
    as_json: bool,
    trace: bool,
    console: Console,
) -> int:
    started = time.perf_counter()
    cells: list[dict[str, object]] = []
    ran = 0
    for name in protocols:
        scp = _PROTOCOLS[name]
        for level in _levels(scp):
            if wanted_levels and level not in wanted_levels:
                continue
            outcomes = [
                run(scp, level, attack, raw)
                for attack in _attacks(scp)
                if wanted_attacks is None or attack in wanted_attacks
            ]
            ran += len(outcomes)
            if as_json:
                cells.extend(outcome_json(o) for o in outcomes)
                continue
            if outcomes:
                console.print(outcome_table(outcomes, level_title(scp, level)))
            if trace:
                for o in outcomes:
                    console.rule(f"{level_title(scp, level)}: {o.attack.value}")
                    console.print(wire_trace(o), highlight=False, markup=False)
    if not ran:
        fail(None, "no cell matches: see --help for the levels and attacks of each protocol", EXIT_USAGE)
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps({"cells": cells, "seconds": round(elapsed, 3)}, indent=2))
    else:
        console.print(f"{ran} attacks run in {elapsed:.2f} s", highlight=False)
    return ran
