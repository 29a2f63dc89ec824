"""``gpchannel fleet``: fleets of emulated cards for campaigns.

    gpchannel fleet generate --count 1000 --dir ./fleet
    gpchannel fleet generate --count 20 --dir ./fleet --master-key 000102...0F --inventory inventory.csv
    gpchannel fleet show ./fleet
    gpchannel fleet agents ./fleet --server 127.0.0.1:8443

``generate`` writes the fleet manifest (every card's ICCID, MSISDN, SCP80 KIc / KID, SCP81 PSK identity and PSK;
mode 0600) and the inventory the OTA server imports (``gpchannel campaign``'s inventory format); the cards' state
directories are written when a card first changes (through the handset bridge, ``gpchannel bridge --fleet
DIR``, or its own SCP81 session, ``gpchannel fleet agents DIR``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import click

from gpchannel.cli.conventions import KVN_HELP, KvnType
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.settings import fail, fail_on
from gpchannel.emulator.fleet import INVENTORY_FILE, Fleet, FleetSettings, generate_fleet, write_inventory
from gpchannel.errors import DecodeError, GPChannelError

__all__ = ["fleet"]


@click.group("fleet")
def fleet() -> None:
    """Fleets of emulated cards (for campaigns against the handset bridge)."""


@fleet.command("generate")
@click.option("--count", type=click.IntRange(1, 10_000_000), required=True, help="How many cards.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), help=f"Default: DIR/{INVENTORY_FILE}.")
@click.option("--profile", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Base card profile.")
@click.option(
    "--master-key",
    envvar="GPCHANNEL_FLEET_MASTER_KEY",
    help="AES master key, hex: diversify the cards' keys from it (default: random). Env GPCHANNEL_FLEET_MASTER_KEY.",
)
@click.option(
    "--key-references",
    "label",
    metavar="LABEL",
    help="With --master-key: the inventory names the keys as master:LABEL instead of holding them.",
)
@click.option("--iccid-prefix", default="89882110", show_default=True, help="Issuer prefix of the ICCIDs.")
@click.option("--msisdn-prefix", default="4915", show_default=True, help="Prefix of the MSISDNs.")
@click.option("--first", type=click.IntRange(0), default=1, show_default=True, help="Number of the first card.")
@click.option("--kvn", type=KvnType(1, 15), default=1, show_default=True, help=f"SCP80 key version ({KVN_HELP}).")
@click.option("--scp81-server", default="127.0.0.1:8443", show_default=True, help="The cards' admin server.")
@click.option("--force", is_flag=True, help="Replace an existing fleet in DIR.")
def generate(
    count: int,
    directory: Path,
    inventory: Path | None,
    profile: Path | None,
    master_key: str | None,
    label: str | None,
    iccid_prefix: str,
    msisdn_prefix: str,
    first: int,
    kvn: int,
    scp81_server: str,
    force: bool,
) -> None:
    """Generate COUNT cards in DIR and the inventory to import into the OTA server."""
    master = None
    if label is not None and master_key is None:
        raise click.UsageError("--key-references needs --master-key")
    if master_key is not None:
        try:
            master = bytes.fromhex(master_key)
        except ValueError:
            raise click.BadParameter("hex digits expected", param_hint="--master-key") from None
        if len(master) not in (16, 24, 32):
            raise click.BadParameter("an AES key: 16, 24 or 32 bytes", param_hint="--master-key")
    settings = FleetSettings(kvn=kvn, scp81_server=scp81_server)
    try:
        made = generate_fleet(
            directory,
            count,
            settings=settings,
            profile=profile.read_text() if profile is not None else None,
            master_key=master,
            iccid_prefix=iccid_prefix,
            msisdn_prefix=msisdn_prefix,
            first=first,
            force=force,
        )
        target = inventory or directory / INVENTORY_FILE
        write_inventory(made, target, master_label=label)
    except GPChannelError as exc:  # a bad --profile: a usage error
        fail_on(None, exc)
    except (ValueError, OSError) as exc:  # DIR already holds a fleet, cannot be written, ...
        fail(None, str(exc), ExitCode.FAILURE)
    click.echo(
        f"fleet: {len(made)} cards in {directory} (ICCID {made.cards[0].iccid}..{made.cards[-1].iccid}, "
        f"MSISDN {made.cards[0].msisdn}..{made.cards[-1].msisdn}); inventory {target}"
    )


@fleet.command("show")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--cards", "limit", type=click.IntRange(0), default=10, show_default=True, help="Cards to list.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(directory: Path, limit: int, as_json: bool) -> None:
    """The fleet's cards (no keys) and, for those that were used, their SCP80 counter."""
    try:
        loaded = Fleet.load(directory)
    except DecodeError as exc:
        fail_on(None, exc)
    used = sum(1 for c in loaded if os.path.isdir(loaded.state_dir(c)))
    if as_json:
        cards = [{"iccid": c.iccid, "msisdn": c.msisdn, "counter": loaded.ota_counter(c)} for c in loaded.cards[:limit]]
        summary = {"directory": str(directory), "total": len(loaded), "used": used, "kvn": f"{loaded.settings.kvn:02X}"}
        click.echo(json.dumps({**summary, "cards": cards}, indent=2))
        return
    click.echo(f"fleet {directory}: {len(loaded)} cards, {used} used; SCP80 kvn {loaded.settings.kvn}")
    for card in loaded.cards[:limit]:
        click.echo(f"  {card.iccid}  {card.msisdn}  counter {loaded.ota_counter(card)}")


@fleet.command("agents")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--server", help="Admin server HOST:PORT (default: the cards' own, set at generation).")
@click.option("--cards", "limit", type=click.IntRange(1), help="Only the first N cards.")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds per network step.")
def agents(directory: Path, server: str | None, limit: int | None, concurrency: int, timeout: float) -> None:
    """Each card opens its SCP81 admin session (PSK-TLS) and runs what the server holds for it."""
    from gpchannel.emulator.fleet_agents import run_fleet_sessions

    try:
        loaded = Fleet.load(directory)
    except DecodeError as exc:
        fail_on(None, exc)
    chosen = loaded.cards[:limit] if limit is not None else loaded.cards
    try:
        sessions = asyncio.run(
            run_fleet_sessions(loaded, cards=chosen, server=server, concurrency=concurrency, timeout=timeout)
        )
    finally:
        loaded.close()  # the fleet journal folded into the cards' state directories
    failed = [s for s in sessions if not s.completed]
    scripts = sum(s.summary.scripts for s in sessions)
    click.echo(
        f"fleet agents: {len(sessions)} sessions, {len(sessions) - len(failed)} completed, {scripts} script(s) run"
    )
    for session in failed[:10]:
        click.echo(f"  {session.card.iccid}: {session.summary.describe()}", err=True)
    if failed:
        message = f"{len(failed)} of {len(sessions)} admin sessions did not complete (the first ones above)"
        fail(None, message, ExitCode.FAILURE)
