"""The ``gpchannel`` command line: manage GlobalPlatform cards over PC/SC or the emulator.

Target and secure channel options are global and come before the command::

    gpchannel --reader "Virtual PCD" --scp 03 --kvn 0x30 --key-enc K1 --key-mac K2 --key-dek K3 \\
              --security-level 33 list --json

Exit codes: one table, :class:`gpchannel.cli.exit_codes.ExitCode`, listed in ``gpchannel --help``; every error
is one ``error: ...`` line on stderr (cli/guard.py is the last boundary).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path

import click

from gpchannel.cli import render
from gpchannel.cli.apdu_commands import apdu as apdu_command
from gpchannel.cli.apdu_text import parse_hex, parse_security_level
from gpchannel.cli.bridge_commands import bridge as bridge_command
from gpchannel.cli.campaign_commands import campaign as campaign_group
from gpchannel.cli.campaign_commands import inventory as inventory_group
from gpchannel.cli.card_commands import card as card_group
from gpchannel.cli.content_commands import delete as delete_command
from gpchannel.cli.content_commands import load as load_command
from gpchannel.cli.conventions import KVN_HELP, env_notes, kvn_option
from gpchannel.cli.demo_commands import demo as demo_group
from gpchannel.cli.examples import example_names, example_profile
from gpchannel.cli.exit_codes import epilog
from gpchannel.cli.fleet_commands import fleet as fleet_group
from gpchannel.cli.lifting import LiftingGroup
from gpchannel.cli.manage_commands import (
    create_ssd,
    delete_key,
    generate_key,
    install,
    put_key,
    set_status,
    store_data,
)
from gpchannel.cli.ota_commands import ota as ota_group
from gpchannel.cli.scp10_commands import load_credentials, scp10_level
from gpchannel.cli.scp10_commands import scp10 as scp10_group
from gpchannel.cli.scp11_commands import load_scp11_credentials
from gpchannel.cli.scp11_commands import scp11 as scp11_group
from gpchannel.cli.server_commands import ram as ram_group
from gpchannel.cli.server_commands import server as server_command
from gpchannel.cli.server_wait import wait as server_wait_command
from gpchannel.cli.settings import (
    EXIT_AUTHENTICATION,
    EXIT_CARD_STATUS,
    EXIT_FAILURE,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    Settings,
    aid_option,
    fail,
    handle_errors,
    key_option,
)
from gpchannel.cli.target import (
    DEFAULT_KEY,
    KeyMaterial,
    list_readers,
    load_profile,
)
from gpchannel.cli.token_commands import audit as audit_group
from gpchannel.cli.token_commands import token as token_group
from gpchannel.cli.trace_commands import keys_group, trace_group
from gpchannel.crypto.diversification import Diversification
from gpchannel.errors import CardStatusError, DecodeError
from gpchannel.scp.common import ScpProtocol

__all__ = ["EXIT_AUTHENTICATION", "EXIT_CARD_STATUS", "EXIT_FAILURE", "EXIT_TRANSPORT", "EXIT_USAGE", "cli", "main"]


@click.group(cls=LiftingGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=epilog())
@click.version_option(None, "-V", "--version", package_name="gpchannel", prog_name="gpchannel")
@click.option(
    "-r",
    "--reader",
    envvar=["GPCHANNEL_READER", "GP_READER"],
    help="PC/SC reader name substring (env GPCHANNEL_READER or GP_READER).",
)
@click.option("--emulator", "emulator", type=click.Path(file_okay=False, path_type=Path), help="Emulator state dir.")
@click.option("--isd", help="ISD AID (default: from the FCI of an empty SELECT, then the GP defaults).")
@click.option("--app", help="Open the secure channel with this application (SELECTed first) instead of the ISD.")
@click.option(
    "--scp",
    type=click.Choice(["01", "02", "03", "10", "11a", "11b", "11c"]),
    help="Protocol (default: detected; 10 and 11 never are).",
)
@click.option("--scp-i", "scp_i", help="i parameter, hex (default: detected).")
@click.option(
    "-K",
    "--kvn",
    "--key-ver",
    "kvn",
    help=f"Key version number, {KVN_HELP} (default: the profile's ISD key set; with --app, the application's "
    "own key set in the profile, else the card's first).",
)
@click.option(
    "-k",
    "--key",
    envvar=["GPCHANNEL_KEY", "GP_KEY"],
    help="One key for ENC, MAC and DEK, hex (env GPCHANNEL_KEY or GP_KEY; default: the test key 404142..4F).",
)
@click.option("--key-enc", envvar=["GPCHANNEL_KEY_ENC", "GP_KEY_ENC"], help="ENC key, hex (env ..._KEY_ENC).")
@click.option("--key-mac", envvar=["GPCHANNEL_KEY_MAC", "GP_KEY_MAC"], help="MAC key, hex (env ..._KEY_MAC).")
@click.option("--key-dek", envvar=["GPCHANNEL_KEY_DEK", "GP_KEY_DEK"], help="DEK key, hex (env ..._KEY_DEK).")
@click.option("--kdf", type=click.Choice([d.value for d in Diversification]), help="Diversify the keys (master keys).")
@click.option("--security-level", "level", help="00 01 03 11 13 33 or clr mac enc mac+rmac enc+rmac enc+renc.")
@click.option("--s16", is_flag=True, help="SCP03 S16 mode (16-byte challenges and MACs).")
@click.option("--profile", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Card profile (TOML).")
@click.option("--example", type=click.Choice(example_names()), help="A profile shipped with gpchannel (for --profile).")
@click.option("-d", "--trace", is_flag=True, help="Print every APDU to stderr (C:/R:, plain C:/R: when secured).")
@click.option("--trace-file", type=click.Path(dir_okay=False, path_type=Path), help="Write that trace to FILE.")
@click.option("--scp10-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="SCP10: our key (PEM).")
@click.option(
    "--scp10-chain",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="SCP10: our certificate chain, from the one TP_EX signed to ours (repeat; PEM or binary 7F21).",
)
@click.option(
    "--scp10-trust", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="SCP10: card CA key (PEM)."
)
@click.option("--scp10-option", type=click.Choice(["agreement", "transport"]), help="SCP10 i: 01 or 02 (default 02).")
# -- SCP11 (cli/scp11_commands.py) --
@click.option("--scp11-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="SCP11a/c: OCE key.")
@click.option(
    "--scp11-chain",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="SCP11a/c: OCE certificates, CA-KLOC's first (repeat).",
)
@click.option(
    "--scp11-trust", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="SCP11: CA-KLCC cert/key."
)
@click.option("--scp11-kvn", default="01", show_default=True, help="SCP11: KVN of the card's SK.SD.ECKA, hex.")
@click.option("--scp11-ca", default="1003", show_default=True, help="SCP11a/c: KID and KVN of CA-KLOC, hex.")
@click.pass_context
def cli(
    ctx: click.Context,
    reader: str | None,
    emulator: Path | None,
    isd: str | None,
    app: str | None,
    scp: str | None,
    scp_i: str | None,
    kvn: str | None,
    key: str | None,
    key_enc: str | None,
    key_mac: str | None,
    key_dek: str | None,
    kdf: str | None,
    level: str | None,
    s16: bool,
    profile: Path | None,
    example: str | None,
    trace: bool,
    trace_file: Path | None,
    scp10_key: Path | None,
    scp10_chain: tuple[Path, ...],
    scp10_trust: Path | None,
    scp10_option: str | None,
    scp11_key: Path | None,
    scp11_chain: tuple[Path, ...],
    scp11_trust: Path | None,
    scp11_kvn: str,
    scp11_ca: str,
) -> None:
    """gpchannel: manage GlobalPlatform cards (SCP01, SCP02, SCP03) over PC/SC or the emulator.

    The options below may also follow the command (gpchannel list -r "Virtual PCD"). Shell completion: see
    the README (eval "$(_GPCHANNEL_COMPLETE=bash_source gpchannel)").
    """
    base = ctx.obj if isinstance(ctx.obj, dict) else {}
    if example is not None:
        if profile is not None:
            raise click.UsageError("give --profile or --example, not both")
        profile = example_profile(example)
    for note in env_notes():
        click.echo(note, err=True)
    settings = Settings(trace=trace, s16=s16, reader=reader, emulator=emulator, profile=profile, trace_file=trace_file)
    settings.transport_factory = base.get("transport_factory")
    settings.random = base.get("random", os.urandom)
    if "out" in base:
        settings.out = base["out"]
        settings.err = base["err"]
    prof = None
    if profile is not None:
        prof = load_profile(profile)  # ProfileError: a usage error naming the key
    settings.isd = aid_option(isd, "--isd") if isd else (prof.isd_aid if prof else None)
    settings.app = aid_option(app, "--app") if app else None
    # --app: the application's own key set when the profile gives one (its protocol and i come from the card),
    # else its Security Domain's keys and the card's first key set (KVN 00), never the ISD's KVN
    own = prof.application_keys(settings.app) if prof is not None and settings.app is not None else None
    isd_prof = prof if own is None else None
    scp11_variant = scp if scp and scp.startswith("11") else None  # SCP11: --scp 11a|11b|11c
    if scp11_variant is not None:
        scp = "11"
    settings.scp = ScpProtocol(int(scp, 16)) if scp else (isd_prof.scp if isd_prof else None)
    if scp_i is not None:
        try:
            settings.i_param = parse_hex(scp_i, "--scp-i")[0] if len(parse_hex(scp_i, "--scp-i")) == 1 else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--scp-i") from None
        if settings.i_param is None:
            raise click.BadParameter("one hex byte, e.g. 70", param_hint="--scp-i")
    elif isd_prof is not None:
        settings.i_param = isd_prof.i_param
    kvn_value = kvn_option(kvn, "--kvn")
    if kvn_value is not None:
        settings.kvn = kvn_value
    elif settings.app is not None:
        settings.kvn = own.kvn if own is not None else 0
    else:
        settings.kvn = prof.kvn if prof and prof.kvn is not None else 0
    single = key_option(key, "--key")
    parts = [key_option(key_enc, "--key-enc"), key_option(key_mac, "--key-mac"), key_option(key_dek, "--key-dek")]
    scheme = Diversification(kdf) if kdf else Diversification.NONE
    if any(p is not None for p in parts):
        if single is not None or any(p is None for p in parts):
            raise click.UsageError("give --key, or all three of --key-enc, --key-mac and --key-dek")
        enc, mac, dek = (p for p in parts if p is not None)
        settings.keys = KeyMaterial(enc, mac, dek, scheme, "command line")
    elif single is not None:
        settings.keys = KeyMaterial(single, single, single, scheme, "command line")
    elif own is not None:
        settings.keys = KeyMaterial(own.keys.enc, own.keys.mac, own.keys.dek, scheme, own.keys.source)
    elif prof is not None and prof.keys is not None:
        k = prof.keys
        settings.keys = KeyMaterial(k.enc, k.mac, k.dek, scheme, k.source)
    else:
        settings.keys = KeyMaterial(DEFAULT_KEY, DEFAULT_KEY, DEFAULT_KEY, scheme)
    if level is not None:
        try:
            settings.level = parse_security_level(level)
        except ValueError as exc:
            if settings.scp is not ScpProtocol.SCP10:
                raise click.BadParameter(str(exc), param_hint="--security-level") from None
            settings.level = scp10_level(level)  # GP 2.2.1 F.1.6: any combination of the four bits
    if settings.scp is ScpProtocol.SCP10:
        try:
            settings.scp10 = load_credentials(scp10_key, scp10_chain, scp10_trust, scp10_option)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    if scp11_variant is not None:
        try:
            kvn11 = int(scp11_kvn, 16)
        except ValueError:
            raise click.BadParameter("a hex byte", param_hint="--scp11-kvn") from None
        settings.scp11 = load_scp11_credentials(scp11_variant, scp11_key, scp11_chain, scp11_trust, kvn11, scp11_ca)
    ctx.obj = settings


pass_settings = click.make_pass_decorator(Settings)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (a list of names).")
@pass_settings
@handle_errors
def readers(settings: Settings, as_json: bool) -> None:
    """List the PC/SC readers."""
    names = list_readers()
    if not names:
        fail(settings, "no PC/SC reader found (is pcscd running?)", EXIT_TRANSPORT)
    if as_json:
        settings.out.print_json(json.dumps(names))
        return
    for name in names:
        settings.out.print(name, highlight=False, markup=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
@handle_errors
def info(settings: Settings, as_json: bool) -> None:
    """CPLC, IIN, CIN, key diversification data, sequence counter, card data, capabilities, key information."""
    card = settings.card(secure=False)
    problems: list[str] = []
    try:
        card.session.probe(settings.kvn, s16=settings.s16)
    except (CardStatusError, DecodeError) as exc:  # a locked card, or an unknown KVN: show the rest anyway
        problems.append(f"INITIALIZE UPDATE: {exc}")
    data = card.info()
    if problems:
        data = dataclasses.replace(data, problems=(*problems, *data.problems))
    today = datetime.date.today()
    if as_json:
        settings.out.print_json(render.info_json(data, today))
    else:
        render.print_info(settings.out, data, today)


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
@handle_errors
def list_(settings: Settings, as_json: bool) -> None:
    """The ISD, Security Domains, applications and load files (with modules, life cycle, privileges)."""
    items = settings.card().list()
    if as_json:
        settings.out.print_json(render.list_json(items))
    else:
        render.print_list(settings.out, items)


cli.add_command(apdu_command)
cli.add_command(put_key)
cli.add_command(delete_key)
cli.add_command(install)
cli.add_command(store_data)
cli.add_command(set_status)
cli.add_command(create_ssd)
cli.add_command(delete_command)
cli.add_command(load_command)
cli.add_command(card_group)
cli.add_command(trace_group)
cli.add_command(keys_group)
cli.add_command(ota_group)
cli.add_command(bridge_command)
cli.add_command(scp10_group)
scp11_group.add_command(generate_key)
cli.add_command(scp11_group)
cli.add_command(fleet_group)
cli.add_command(server_command)
cli.add_command(audit_group)
server_command.add_command(token_group)
server_command.add_command(server_wait_command)
cli.add_command(ram_group)
cli.add_command(campaign_group)
cli.add_command(inventory_group)
cli.add_command(demo_group)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gpchannel`` console script."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="gpchannel")


if __name__ == "__main__":
    main()
