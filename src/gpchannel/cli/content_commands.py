"""``gpchannel load`` and ``delete``: content management (GP 2.3.1 11.2 DELETE, 11.5 INSTALL [for load], 11.6
LOAD), with ``load --force``, a progress bar for the LOAD blocks and what to do about the usual 6985 (cli/hints.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from gpchannel.cli.delegated import dap_options, dap_signers, delegation, delegation_options, receipt_note
from gpchannel.cli.hints import delete_hint, load_hint
from gpchannel.cli.output import progress
from gpchannel.cli.settings import EXIT_CARD_STATUS, Settings, aid_option, fail, handle_errors, int_option
from gpchannel.codec.sw import describe
from gpchannel.errors import CardStatusError
from gpchannel.gp.cap import CapFile
from gpchannel.host.card import GpCard

__all__ = ["delete", "load"]

pass_settings = click.make_pass_decorator(Settings)


@click.command()
@click.argument("aids", nargs=-1, required=True)
@click.option("--related", is_flag=True, help="Also delete related objects (P2=80).")
@delegation_options
@pass_settings
@handle_errors
def delete(
    settings: Settings,
    aids: tuple[str, ...],
    related: bool,
    dm_key: str | None,
    dm_token: str | None,
    receipt_key: str | None,
    receipt_key_type: str | None,
) -> None:
    """Delete applications, load files or Security Domains by AID (with a Delete Token when delegated)."""
    parsed = [aid_option(a) for a in aids]
    card = settings.card()
    dm = delegation(settings, dm_key, dm_token, receipt_key, receipt_key_type)
    for aid in parsed:
        try:
            card.delete(aid, related=related, delegation=dm)
        except CardStatusError as exc:
            _fail_with_hint(settings, exc, delete_hint(card, exc, aid))
        settings.out.print(f"deleted {aid.hex().upper()}{receipt_note(card.last_confirmation, dm)}", highlight=False)


def _fail_with_hint(settings: Settings, exc: CardStatusError, hint: str | None) -> NoReturn:
    """The card's refusal, with what to do about it when cli/hints.py found the case in the registry."""
    if hint is None:
        raise exc
    fail(settings, f"{exc} ({describe(exc.sw)}): {hint}", EXIT_CARD_STATUS)


@click.command()
@click.argument("cap", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--block-size", help="LOAD block size (default: from the card's FCI, less the MAC overhead).")
@click.option("--hash", "with_hash", is_flag=True, help="Send the SHA-256 Load File Data Block Hash.")
@click.option("--sd", help="Security Domain AID to load into (default: the ISD).")
@click.option("--descriptor", is_flag=True, help="Include the Descriptor component.")
@click.option("--force", is_flag=True, help="Delete the package first if the card has it (then load).")
@click.option("--related", is_flag=True, help="With --force: delete the package's instances too (P2=80).")
@delegation_options
@dap_options
@pass_settings
@handle_errors
def load(
    settings: Settings,
    cap: Path,
    block_size: str | None,
    with_hash: bool,
    sd: str | None,
    descriptor: bool,
    force: bool,
    related: bool,
    dm_key: str | None,
    dm_token: str | None,
    receipt_key: str | None,
    receipt_key_type: str | None,
    dap_key: str | None,
    dap_signature: str | None,
    dap_domain: str | None,
) -> None:
    """Load a CAP file (INSTALL [for load], then LOAD blocks), with a Load Token and DAP blocks if asked."""
    parsed = CapFile.from_bytes(cap.read_bytes())
    if related and not force:
        raise click.UsageError("--related goes with --force (it deletes the package's instances before the load)")
    card = settings.card()
    dm = delegation(settings, dm_key, dm_token, receipt_key, receipt_key_type)
    package = parsed.package_aid
    if force:
        _delete_before_load(settings, card, package, related)
    try:
        with progress(settings.err, f"LOAD {package.hex().upper()}") as hook:
            n = card.load(
                parsed,
                sd_aid=aid_option(sd, "--sd") if sd else None,
                block_size=int_option(block_size, "--block-size"),
                with_hash=with_hash,
                include_descriptor=descriptor,
                delegation=dm,
                daps=dap_signers(settings, dap_key, dap_signature, dap_domain),
                progress=hook,
            )
    except CardStatusError as exc:
        _fail_with_hint(settings, exc, load_hint(card, exc, package))
    applets = ", ".join(a.hex().upper() for a in parsed.applet_aids) or "none"
    settings.out.print(
        f"loaded package {parsed.package_aid.hex().upper()} in {n} blocks (applets: {applets})"
        + receipt_note(card.last_confirmation, dm),
        highlight=False,
    )


def _delete_before_load(settings: Settings, card: GpCard, package: bytes, related: bool) -> None:
    """``load --force``: DELETE the package (and, with ``related``, its instances); absent (6A88) is fine."""
    try:
        card.delete(package, related=related)
    except CardStatusError as exc:
        if exc.sw == REFERENCED_DATA_NOT_FOUND:
            return
        _fail_with_hint(settings, exc, delete_hint(card, exc, package))
    what = " and its instances" if related else ""
    settings.out.print(f"deleted package {package.hex().upper()}{what} (--force)", highlight=False)


REFERENCED_DATA_NOT_FOUND = 0x6A88
