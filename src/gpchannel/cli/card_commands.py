"""``gpchannel card init|show|serve``: create, inspect and run an emulated card."""

from __future__ import annotations

import gc
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import click

from gpchannel.card.state import CardState
from gpchannel.cli.examples import example_names, example_profile
from gpchannel.cli.exit_codes import ExitCode
from gpchannel.cli.settings import fail, fail_on
from gpchannel.errors import GPChannelError
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.io.store import DirectoryStore

__all__ = ["card"]

_STATE_DIR = click.Path(file_okay=False, path_type=Path)
_PROFILE = click.Path(dir_okay=False, exists=True, path_type=Path)


@click.group()
def card() -> None:
    """The card emulator: a GlobalPlatform card kept in a state directory."""


@card.command()
@click.option("--profile", type=_PROFILE, help="Card profile (TOML) to build the card from.")
@click.option("--example", type=click.Choice(example_names()), help="Or a profile shipped with gpchannel.")
@click.option("--state", "state_dir", type=_STATE_DIR, required=True, help="State directory to create.")
@click.option("--force", is_flag=True, help="Rebuild the card even if the directory already holds one.")
def init(profile: Path | None, example: str | None, state_dir: Path, force: bool) -> None:
    """Create a state directory from a card profile (--profile FILE, or --example NAME)."""
    from gpchannel.emulator.app import init_state

    if (profile is None) == (example is None):
        raise click.UsageError("give --profile FILE or --example NAME (one of them)")
    if profile is None:
        assert example is not None
        profile = example_profile(example)

    try:
        state = init_state(state_dir, profile, force=force)
    except GPChannelError as exc:
        fail_on(None, exc)
    click.echo(f"created {state_dir}: ISD {state.isd_aid.hex().upper()}, {state.lifecycle.name}")


def _summary(state: CardState) -> dict[str, Any]:
    """What ``card show`` prints: never keys, only their check values."""
    entries: list[dict[str, Any]] = []
    for app in state.applications:
        entry: dict[str, Any] = {
            "aid": app.aid.hex().upper(),
            "kind": "isd" if app.aid == state.isd_aid else ("ssd" if app.sd is not None else "application"),
            "lifecycle": f"{app.lifecycle:02X}",
            "privileges": app.privileges.to_bytes().hex().upper(),
            "sd": app.sd_aid.hex().upper(),
        }
        if app.applet:
            entry["applet"] = app.applet
        if app.sd is not None:
            entry["scp"] = f"{app.sd.scp:02X}"
            entry["i"] = f"{app.sd.i_param:02X}"
            entry["keysets"] = [
                {
                    "kvn": f"{k.kvn:02X}",
                    "type": k.key_type.name,
                    "length": len(k.enc),
                    "kcv": [c.hex().upper() for c in k.static_keys().kcvs()],
                    "sequence_counter": k.sequence_counter,
                }
                for k in app.sd.keysets
            ]
        entries.append(entry)
    return {
        "lifecycle": state.lifecycle.name,
        "isd": state.isd_aid.hex().upper(),
        "key_diversification_data": state.key_diversification_data.hex().upper(),
        "applications": entries,
        "load_files": [
            {
                "aid": f.aid.hex().upper(),
                "modules": [m.hex().upper() for m in f.modules],
                "sd": f.sd_aid.hex().upper(),
            }
            for f in state.load_files
        ],
    }


@card.command()
@click.option("--state", "state_dir", type=_STATE_DIR, required=True, help="State directory.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(state_dir: Path, as_json: bool) -> None:
    """Show what a state directory holds (key check values, never keys)."""
    try:
        state = DirectoryStore(state_dir).load()
    except GPChannelError as exc:
        fail_on(None, exc, f"{state_dir}: ")
    if state is None:
        message = f"{state_dir} holds no card (create one with `gpchannel card init --profile FILE --state DIR`)"
        fail(None, message, ExitCode.FAILURE)
    summary = _summary(state)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"card life cycle   {summary['lifecycle']}")
    click.echo(f"ISD               {summary['isd']}")
    click.echo(f"key div. data     {summary['key_diversification_data']}")
    for app in summary["applications"]:
        line = f"{app['kind']:<12} {app['aid']:<32} life cycle {app['lifecycle']}  privileges {app['privileges']}"
        click.echo(line + (f"  applet {app['applet']}" if "applet" in app else ""))
        if "keysets" in app:
            click.echo(f"{'':13}SCP{app['scp']} i={app['i']}")
            for k in app["keysets"]:
                click.echo(
                    f"{'':13}key set {k['kvn']} {k['type']}-{8 * k['length']} KCV {'/'.join(k['kcv'])}"
                    f" sequence counter {k['sequence_counter']}"
                )
    for f in summary["load_files"]:
        click.echo(f"load-file    {f['aid']:<32} modules {', '.join(f['modules']) or '-'}")


@card.command()
@click.option("--profile", type=_PROFILE, help="Card profile (TOML): builds the card the first time.")
@click.option("--state", "state_dir", type=_STATE_DIR, required=True, help="State directory.")
@click.option("--vpcd", "vpcd", default="127.0.0.1:35963", show_default=True, help="vpcd address HOST:PORT.")
@click.option("--trace", is_flag=True, help="Log every APDU (and, in a secure channel, the plain one). Never keys.")
def serve(profile: Path | None, state_dir: Path, vpcd: str, trace: bool) -> None:
    """Run the card through pcscd's vpcd driver until SIGTERM; reconnects when pcscd restarts."""
    from gpchannel.emulator.app import open_card, parse_vpcd_address
    from gpchannel.emulator.app import serve as serve_card

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        host, port = parse_vpcd_address(vpcd)
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--vpcd") from None
    except OSError as exc:  # socket.gaierror: a host name that does not resolve
        raise click.BadParameter(f"{vpcd!r}: {exc}", param_hint="--vpcd") from None
    try:
        emulated, differences = open_card(
            state_dir, profile, trace=logging.getLogger("gpchannel.trace") if trace else None
        )
    except GPChannelError as exc:
        fail_on(None, exc)
    for difference in differences:
        click.echo(f"note: the state directory differs from the profile (the state wins): {difference}", err=True)
    if emulated.state.lifecycle is CardLifeCycle.TERMINATED:
        click.echo("note: the card is TERMINATED; it answers only as a terminated card does", err=True)
    # This process is the card's own: what was loaded to build it (modules, profile, state) lives as long as the
    # process, so it leaves the collector's generations and no full collection walks it again between APDUs.
    gc.collect()
    gc.freeze()
    serve_card(emulated, host, port, trace=logging.getLogger("gpchannel.vpcd") if trace else None)


@card.command("admin-session")
@click.option("--state", "state_dir", type=_STATE_DIR, required=True, help="State directory.")
@click.option("--server", default=None, help="Administration server HOST:PORT (default: the profile's [scp81] server).")
@click.option("--uri", default=None, help="Path of the first POST (default: the profile's [scp81] uri).")
@click.option("--retries", type=click.IntRange(0, 100), default=None, help="Retries after a connection failure.")
@click.option("--delay", type=click.IntRange(0, 3600), default=None, help="Seconds between retries.")
def admin_session(state_dir: Path, server: str | None, uri: str | None, retries: int | None, delay: int | None) -> None:
    """Run one SCP81 administration session (GP Amendment B) of the card with its server, over PSK-TLS."""
    from gpchannel.emulator.agent import CardAgent, SessionStatus
    from gpchannel.emulator.app import open_card

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        emulated, _ = open_card(state_dir)
        agent = CardAgent(emulated, server=server, uri=uri, retries=retries, delay_seconds=delay)
    except GPChannelError as exc:
        fail_on(None, exc)
    summary = agent.run_sync()
    click.echo(summary.describe())
    if summary.status is not SessionStatus.COMPLETED:
        fail(None, f"the admin session did not complete ({summary.status.name}; see above)", ExitCode.FAILURE)
