"""``gpchannel apdu``: send APDUs given on the command line or in a script (cli/apdu_script.py), through the
secure channel or plain, one response per line (or ``--json``)."""

from __future__ import annotations

import json
from typing import TextIO

import click

from gpchannel.cli import render
from gpchannel.cli.apdu_script import ScriptLine, parse_script
from gpchannel.cli.apdu_text import parse_apdu_text
from gpchannel.cli.settings import EXIT_CARD_STATUS, Settings, fail, handle_errors
from gpchannel.codec.sw import describe

__all__ = ["apdu"]

pass_settings = click.make_pass_decorator(Settings)


@click.command()
@click.argument("apdus", nargs=-1)
@click.option(
    "--script",
    type=click.File("r"),
    help="Read the APDUs from FILE (- for stdin): one per line, # comments, an optional expected SW (9000, 61XX).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plain", is_flag=True, help="Send without opening a secure channel.")
@pass_settings
@handle_errors
def apdu(settings: Settings, apdus: tuple[str, ...], script: TextIO | None, as_json: bool, plain: bool) -> None:
    """Send each APDU (hex) through the secure channel and print each response on one line: data and status word.

    With --script, the script stops at the first status word other than the one its line expects (success when
    it gives none) and exits 4."""
    if script is not None:
        if apdus:
            raise click.UsageError("give APDUs or --script, not both")
        name = "stdin" if script.name == "<stdin>" else str(script.name)
        lines = parse_script(script.read(), name)
    elif apdus:
        lines = [ScriptLine(0, parse_apdu_text(a), None) for a in apdus]
    else:
        raise click.UsageError("give one or more APDUs (hex), or --script FILE (- for stdin)")
    card = settings.card(secure=not plain)
    results = []
    refused = 0
    for line in lines:
        response = card.apdu(line.command)
        results.append(render.response_json(str(line.command), response))
        if not as_json:
            data = response.data.hex().upper()
            settings.out.print(f"{data + ' ' if data else ''}{describe(response.sw)}", highlight=False, markup=False)
        if script is None:
            refused += not response.is_success
            continue
        ok = line.expected.matches(response.sw) if line.expected is not None else response.is_success
        if not ok:
            if as_json:
                settings.out.print_json(json.dumps(results))
            wanted = str(line.expected) if line.expected is not None else "success"
            message = f"{name} line {line.number}: the card answered {response.sw:04X}, expected {wanted}; stopped"
            fail(settings, message, EXIT_CARD_STATUS)
    if as_json:
        settings.out.print_json(json.dumps(results))
    if refused:
        message = f"the card refused {refused} of {len(results)} command(s) (status words above)"
        fail(settings, message, EXIT_CARD_STATUS)
