"""``gpchannel bridge``: the handset bridge, an SMPP 3.4 server that plays SMS centre and handset in front of one
card (a PC/SC reader or the emulator in-process), of a fleet of emulated cards each reached by its MSISDN
(``gpchannel fleet generate``), or a sink that acknowledges without a card (benchmarks).

    gpchannel bridge --smpp 127.0.0.1:2775 --emulator ./card --profile examples/profiles/scp03.toml
    gpchannel bridge --smpp 127.0.0.1:2775 --reader "Virtual PCD"
    gpchannel bridge --smpp 127.0.0.1:2775 --sink
    gpchannel bridge --smpp 127.0.0.1:2775 --fleet ./fleet

An OTA server binds to it (any system_id, or only those given with ``--system-id``) and sends SCP80 command
packets as submit_sm; each goes to the card in an SMS-PP DOWNLOAD ENVELOPE and the PoR comes back as deliver_sm
(see :mod:`gpchannel.emulator.bridge`). Runs until SIGTERM or SIGINT; prints what it did on the way out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.settings import fail_on
from gpchannel.cli.target import open_transport
from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.emulator.handset import HandsetCard
from gpchannel.errors import GPChannelError, TransportError
from gpchannel.io.collector import settle_server
from gpchannel.io.transport import InProcessTransport, Transport

__all__ = ["bridge", "parse_smpp_address"]

DEFAULT_SMPP = "127.0.0.1:2775"


def parse_smpp_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; a bare ``:PORT`` listens on 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise click.BadParameter("expected HOST:PORT", param_hint="--smpp")
    try:
        number = int(port)
    except ValueError:
        raise click.BadParameter(f"the port of {text!r} must be a number", param_hint="--smpp") from None
    if not 0 < number < 65536:
        raise click.BadParameter("the port must be 1..65535", param_hint="--smpp")
    return host.strip("[]") or "127.0.0.1", number


def _global(name: str) -> Path | str | None:
    """A global option (``gpchannel --reader/--emulator/--profile ... bridge``) when the command has none."""
    ctx = click.get_current_context(silent=True)
    settings = ctx.find_root().obj if ctx is not None else None
    value = getattr(settings, name, None)
    return value if isinstance(value, Path | str) else None


def _transport(reader: str | None, emulator: Path | None, profile: Path | None) -> Transport:
    if emulator is not None:
        from gpchannel.emulator.app import open_card

        card, differences = open_card(emulator, profile)
        for line in differences:
            click.echo(f"note: the state in {emulator} differs from the profile: {line}", err=True)
        return InProcessTransport(card.process)
    return open_transport(reader, None)


class BindFailed(Exception):
    """The bridge could not listen (its cause says why)."""


async def _serve(bridge: HandsetBridge) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bridge.start()
    except TransportError as exc:
        raise BindFailed from exc
    mode = "card" if bridge.card is not None else "sink"
    if bridge.fleet is not None:
        mode = f"fleet of {len(bridge.fleet.fleet)} cards"
    click.echo(f"bridge: SMPP on {bridge.host}:{bridge.port}, {mode}")
    await bridge.serve(stop)


@click.command("bridge")
@click.option("--smpp", "address", default=DEFAULT_SMPP, show_default=True, help="Listen on HOST:PORT.")
@click.option("--reader", help="PC/SC reader name substring of the card.")
@click.option("--emulator", type=click.Path(file_okay=False, path_type=Path), help="Emulator state directory.")
@click.option("--profile", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Card profile.")
@click.option("--sink", is_flag=True, help="No card: accept and receipt every valid submit_sm.")
@click.option(
    "--fleet",
    "fleet_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Fleet directory (gpchannel fleet generate): one emulated card per MSISDN.",
)
@click.option("--workers", type=click.IntRange(1, 64), help="Cards driven at once (fleet: 16, else 1).")
@click.option("--sim", is_flag=True, help="GSM SIM class (A0 C2, 9F xx) instead of a UICC's 80 C2.")
@click.option("--system-id", "system_ids", multiple=True, help="Allowed ESME system_id (repeat; default: any).")
@click.option("-v", "--verbose", is_flag=True, help="Log each refused message and card failure.")
def bridge(
    address: str,
    reader: str | None,
    emulator: Path | None,
    profile: Path | None,
    sink: bool,
    fleet_dir: Path | None,
    workers: int | None,
    sim: bool,
    system_ids: tuple[str, ...],
    verbose: bool,
) -> None:
    """SMPP server playing SMS centre + handset: submit_sm -> ENVELOPE to the card -> PoR as deliver_sm."""
    host, port = parse_smpp_address(address)
    if reader is None and emulator is None and not sink and fleet_dir is None:
        global_reader, global_emulator, global_profile = _global("reader"), _global("emulator"), _global("profile")
        reader = str(global_reader) if global_reader is not None else None
        emulator = Path(global_emulator) if global_emulator is not None else None
        profile = profile or (Path(global_profile) if global_profile is not None else None)
    options = (("--reader", reader), ("--emulator", emulator), ("--sink", sink), ("--fleet", fleet_dir))
    chosen = [name for name, on in options if on]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --reader SUBSTR, --emulator DIR, --fleet DIR or --sink")
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    transport = None
    handsets = None
    try:
        if fleet_dir is not None:
            from gpchannel.emulator.fleet import Fleet

            handsets = FleetHandsets(Fleet.load(fleet_dir), sim=sim)
            settle_server()  # thousands of card cores stay open: the collector's settings of io/collector.py
        elif not sink:
            transport = _transport(reader, emulator, profile)
        card = HandsetCard(transport, sim=sim) if transport is not None else None
        the_bridge = HandsetBridge(
            card,
            host=host,
            port=port,
            allowed_system_ids=system_ids or None,
            fleet=handsets,
            workers=workers,
        )
        asyncio.run(_serve(the_bridge))
    except BindFailed as exc:  # e.g. the port is taken
        click.echo(f"error: cannot serve SMPP on {host}:{port}: {exc.__cause__}", err=True)
        raise SystemExit(ExitCode.TRANSPORT) from None
    except GPChannelError as exc:  # cli/exit_codes.py: a bad profile 2, no card 5, a broken fleet 1
        fail_on(None, exc)
    finally:
        if transport is not None:
            transport.close()
        if handsets is not None:
            handsets.close()  # the fleet journal folded into the cards' state directories
    s = the_bridge.stats
    click.echo(
        f"bridge: stopped; submit_sm accepted {s.accepted}, refused {s.refused}; card took {s.delivered}, "
        f"refused {s.undelivered}; PoR deliver_sm {s.pors}, receipts {s.receipts}, lost {s.lost}"
    )
    if handsets is not None:
        t = handsets.totals()
        statuses = ", ".join(f"{status:02X}: {n}" for status, n in sorted(t.statuses.items())) or "none"
        click.echo(
            f"bridge: fleet: {len(handsets.activity)} cards reached, {t.packets} command packets, "
            f"{t.accepted} taken by the cards; PoR statuses {statuses}"
        )
