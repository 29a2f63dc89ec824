"""Command line options for Delegated Management and DAP (GP Card Specification 2.3.1, Appendix C).

``--dm-key PEM`` (tokens computed on the fly) or ``--dm-token HEX`` (one token computed by the issuer),
``--receipt-key HEX`` (receipts verified; AES or DES by ``--receipt-key-type``, default by the protocol),
and for ``load`` ``--dap-key PEM|HEX`` or ``--dap-signature HEX`` with ``--dap-domain AID``. A key given as
an existing file is read as PEM; otherwise it is hex (a secret AES or DES key).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gpchannel.cli.apdu_text import parse_hex
from gpchannel.cli.settings import Settings, aid_option
from gpchannel.crypto.asym import EcPublicKey, RsaPublicKey, load_private_key_pem, load_public_key_pem
from gpchannel.crypto.keys import KeyType
from gpchannel.gp.tokens import Confirmation, SigningKey, SymmetricKey
from gpchannel.host.delegated import DapSigner, Delegation
from gpchannel.scp.common import ScpProtocol

__all__ = [
    "dap_options",
    "dap_signers",
    "delegation",
    "delegation_options",
    "public_or_secret_key",
    "receipt_note",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def delegation_options(fn: _F) -> _F:
    """Add --dm-key, --dm-token, --receipt-key and --receipt-key-type to a command."""
    for option in reversed(
        [
            click.option("--dm-key", help="Card Issuer's token key: PEM file (RSA/ECC) or hex (AES/DES)."),
            click.option("--dm-token", help="A token computed by the Card Issuer, hex."),
            click.option("--receipt-key", help="Receipt key to verify the card's receipt, hex (AES or DES)."),
            click.option(
                "--receipt-key-type",
                type=click.Choice(["aes", "des"]),
                help="Type of hex --dm-key / --receipt-key values (default: AES under SCP03, else DES).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def dap_options(fn: _F) -> _F:
    """Add --dap-key, --dap-signature and --dap-domain to ``load``."""
    for option in reversed(
        [
            click.option("--dap-key", help="DAP signing key: PEM private key file, or hex (AES/DES)."),
            click.option("--dap-signature", help="A DAP computed elsewhere, hex."),
            click.option("--dap-domain", help="AID of the Security Domain that verifies the DAP."),
        ]
    ):
        fn = option(fn)
    return fn


def _key_type(settings: Settings, name: str | None) -> KeyType:
    if name is not None:
        return KeyType.AES if name == "aes" else KeyType.DES3
    init = settings.card().session.init_response
    return KeyType.AES if init is not None and init.protocol is ScpProtocol.SCP03 else KeyType.DES3


def _secret(text: str, key_type: KeyType, option: str) -> SymmetricKey:
    try:
        return SymmetricKey(key_type, parse_hex(text, option))
    except ValueError:
        raise click.BadParameter("not a PEM file, nor a hex AES/DES key (value not shown)", param_hint=option) from None


def _signing_key(settings: Settings, text: str, type_name: str | None, option: str) -> SigningKey:
    path = Path(text)
    if path.is_file():
        try:
            return load_private_key_pem(path.read_bytes())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    return _secret(text, _key_type(settings, type_name), option)


def public_or_secret_key(
    settings: Settings, text: str, type_name: str | None, option: str
) -> RsaPublicKey | EcPublicKey | SymmetricKey:
    """A key to PUT: a PEM file (public, or private whose public half is taken) or a hex secret key."""
    path = Path(text)
    if path.is_file():
        pem = path.read_bytes()
        try:
            return load_public_key_pem(pem) if b"PUBLIC KEY" in pem else load_private_key_pem(pem).public_key()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    return _secret(text, _key_type(settings, type_name), option)


def delegation(
    settings: Settings,
    dm_key: str | None,
    dm_token: str | None,
    receipt_key: str | None,
    receipt_key_type: str | None,
) -> Delegation | None:
    """The Delegation the options ask for, or None when none of them is given."""
    if dm_key is None and dm_token is None and receipt_key is None:
        return None
    if dm_key is not None and dm_token is not None:
        raise click.UsageError("give --dm-key or --dm-token, not both")
    token = parse_hex(dm_token, "--dm-token") if dm_token is not None else None
    return Delegation(
        token_key=_signing_key(settings, dm_key, receipt_key_type, "--dm-key") if dm_key else None,
        token=token,
        receipt_key=_secret(receipt_key, _key_type(settings, receipt_key_type), "--receipt-key")
        if receipt_key
        else None,
    )


def dap_signers(
    settings: Settings, dap_key: str | None, dap_signature: str | None, dap_domain: str | None
) -> list[DapSigner]:
    """The DAP block the options ask for (none when no DAP option is given)."""
    if dap_key is None and dap_signature is None:
        if dap_domain is not None:
            raise click.UsageError("--dap-domain needs --dap-key or --dap-signature")
        return []
    if dap_key is not None and dap_signature is not None:
        raise click.UsageError("give --dap-key or --dap-signature, not both")
    if dap_domain is None:
        raise click.UsageError("--dap-key / --dap-signature need --dap-domain (the verifying Security Domain)")
    domain = aid_option(dap_domain, "--dap-domain")
    if dap_signature is not None:
        return [DapSigner(domain, signature=parse_hex(dap_signature, "--dap-signature"))]
    assert dap_key is not None
    return [DapSigner(domain, key=_signing_key(settings, dap_key, None, "--dap-key"))]


def receipt_note(confirmation: Confirmation | None, dm: Delegation | None) -> str:
    """What to print about a delegated command's receipt."""
    if dm is None or confirmation is None:
        return ""
    checked = "verified" if dm.receipt_key is not None else "not checked (no --receipt-key)"
    return f"; receipt {confirmation.data.counter:04X} {checked}"
