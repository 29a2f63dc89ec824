"""Card content management commands (GP 2.3.1 11): ``put-key`` (11.8), ``install`` (11.5), ``store-data``
(11.11), ``set-status`` (11.10) and ``create-ssd`` (an INSTALL of a Security Domain, with its first key set).
The global target and secure channel options are :mod:`gpchannel.cli.main`'s.
"""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from gpchannel.cli.apdu_text import parse_hex
from gpchannel.cli.conventions import KVN_HELP, kvn_option
from gpchannel.cli.delegated import (
    delegation,
    delegation_options,
    public_or_secret_key,
    receipt_note,
)
from gpchannel.cli.settings import (
    Settings,
    aid_option,
    handle_errors,
    key_option,
)
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.gp.cap import CapFile
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.host.commands import SetStatusScope, key_set_dgis
from gpchannel.host.sd_keys import delete_key as delete_sd_key
from gpchannel.host.sd_keys import generate_sd_key
from gpchannel.scp.common import ScpProtocol
from gpchannel.scp.scp11 import SCP11_CURVES

__all__ = ["create_ssd", "delete_key", "generate_key", "install", "put_key", "set_status", "store_data"]

pass_settings = click.make_pass_decorator(Settings)


def _new_keys(
    settings: Settings, key: str | None, enc: str | None, mac: str | None, dek: str | None, kvn: int, kdf: str | None
) -> StaticKeys:
    single = key_option(key, "--new-key")
    parts = [key_option(enc, "--new-key-enc"), key_option(mac, "--new-key-mac"), key_option(dek, "--new-key-dek")]
    if all(p is not None for p in parts) and single is None:
        e, m, d = (p for p in parts if p is not None)
    elif single is not None and all(p is None for p in parts):
        e = m = d = single
    else:
        raise click.UsageError("give --new-key, or all three of --new-key-enc, --new-key-mac and --new-key-dek")
    init = settings.card().session.init_response
    key_type = KeyType.AES if init is not None and init.protocol is ScpProtocol.SCP03 else KeyType.DES3
    keys = StaticKeys(e, m, d, kvn, key_type)
    if kdf and kdf != Diversification.NONE.value:
        assert init is not None
        keys = diversify(keys, Diversification(kdf), init.key_diversification_data)
    return keys


@click.command(name="put-key")
@click.option("--new-kvn", help=f"KVN of the new key set (01..7F; {KVN_HELP}).")
@click.option("--replace", "replace_kvn", help=f"KVN of the key set to replace ({KVN_HELP}; default: add one).")
@click.option("--new-key", help="One new key for ENC, MAC and DEK, hex.")
@click.option("--new-key-enc")
@click.option("--new-key-mac")
@click.option("--new-key-dek")
@click.option("--new-kdf", type=click.Choice([d.value for d in Diversification]), help="Diversify the new keys.")
@click.option("--token-key", help="Token verification key (KVN 70): PEM (public or private) or hex.")
@click.option("--receipt-key", help="Receipt generation key (KVN 71): hex AES or DES key.")
@click.option("--dap-key", help="DAP verification key (KVN 73): PEM (public or private) or hex.")
@click.option("--key-type", "content_key_type", type=click.Choice(["aes", "des"]), help="Type of hex keys above.")
@click.option("--replace-content-key", is_flag=True, help="Replace existing 70/71/73 keys (P1 = KVN).")
@pass_settings
@handle_errors
def put_key(
    settings: Settings,
    new_kvn: str | None,
    replace_kvn: str | None,
    new_key: str | None,
    new_key_enc: str | None,
    new_key_mac: str | None,
    new_key_dek: str | None,
    new_kdf: str | None,
    token_key: str | None,
    receipt_key: str | None,
    dap_key: str | None,
    content_key_type: str | None,
    replace_content_key: bool,
) -> None:
    """Add or replace a key set (keys given or diversified), or the token (70), receipt (71) and DAP (73) keys
    of the selected Security Domain; the KVN and KCVs the card returns are checked."""
    content = [(0x70, token_key, "--token-key"), (0x71, receipt_key, "--receipt-key"), (0x73, dap_key, "--dap-key")]
    if any(text for _, text, _ in content):
        card = settings.card()
        for content_kvn, text, option in content:
            if text:
                key = public_or_secret_key(settings, text, content_key_type, option)
                card.put_content_key(content_kvn, key, replace=replace_content_key)
                settings.out.print(f"key {content_kvn:02X} written", highlight=False)
        if new_kvn is None:
            return
    kvn = kvn_option(new_kvn, "--new-kvn", 1, 0x7F)
    if kvn is None:
        raise click.UsageError("give --new-kvn (a key set), or --token-key / --receipt-key / --dap-key")
    card = settings.card()
    keys = _new_keys(settings, new_key, new_key_enc, new_key_mac, new_key_dek, kvn, new_kdf)
    card.put_key(keys, replace_kvn=kvn_option(replace_kvn, "--replace") or 0)
    kcvs = "/".join(k.hex().upper() for k in keys.kcvs())
    settings.out.print(f"key set {kvn:02X} written; KCVs ENC/MAC/DEK {kcvs} confirmed by the card", highlight=False)


@click.command(name="delete-key")
@click.option("--kid", help="Key identifier (hex; SCP11 11/13/15, CA-KLOC 10/20-2F, 01-03 for a key set).")
@click.option("--kvn", help=f"Key version number ({KVN_HELP}).")
@click.option("--last", is_flag=True, help="Allow deleting the last key (P2 b1, as YubiKeys take it).")
@pass_settings
@handle_errors
def delete_key(settings: Settings, kid: str | None, kvn: str | None, last: bool) -> None:
    """DELETE [key] (GP 2.3.1 11.2.2.3.2): every key of the selected Security Domain with this KID and / or KVN."""
    kid_value, kvn_value = kvn_option(kid, "--kid", 0, 0xFF), kvn_option(kvn, "--kvn", 0, 0xFF)
    if kid_value is None and kvn_value is None:
        raise click.UsageError("give --kid, --kvn or both")
    delete_sd_key(settings.card().session, kid_value, kvn_value, last=last)
    shown = " ".join(f"{n} {v:02X}" for n, v in (("KID", kid_value), ("KVN", kvn_value)) if v is not None)
    settings.out.print(f"deleted the keys with {shown}", highlight=False)


@click.command(name="generate-key")
@click.option("--kid", default="13", show_default=True, help="KID of the SK.SD.ECKA: 11 (11a), 13 (11b), 15 (11c).")
@click.option("--kvn", required=True, help="KVN of the new key (hex, 01..FE).")
@click.option("--replace", "replace_kvn", help="KVN of the key it replaces (hex; default: a new key).")
@click.option("--curve", type=click.Choice(sorted(SCP11_CURVES)), default="P-256", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the public key (PEM) here.")
@pass_settings
@handle_errors
def generate_key(settings: Settings, kid: str, kvn: str, replace_kvn: str | None, curve: str, out: Path | None) -> None:
    """GENERATE KEY (SCP11, as YubiKeys take it): the card makes a key pair and answers its public key (PEM on
    stdout, or in --out). The new key has no certificate until one is stored (STORE DATA BF21)."""
    kid_value, kvn_value = kvn_option(kid, "--kid", 0x11, 0x15), kvn_option(kvn, "--kvn", 1, 0xFE)
    assert kid_value is not None and kvn_value is not None
    replace = kvn_option(replace_kvn, "--replace", 1, 0xFE) or 0
    public = generate_sd_key(settings.card().session, kid_value, kvn_value, curve, replace_kvn=replace)
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if out is None:
        click.echo(pem.decode(), nl=False)
    else:
        out.write_bytes(pem)
        settings.out.print(f"key {kid_value:02X}/{kvn_value:02X} generated; public key in {out}", highlight=False)


def _privileges(text: str | None) -> Privileges:
    if not text:
        return Privileges()
    try:
        return (
            Privileges.from_bytes(parse_hex(text))
            if all(c in "0123456789abcdefABCDEF" for c in text)
            else (Privileges.from_names(t for t in text.split(",") if t))
        )
    except (ValueError, DecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--privileges") from None


@click.command()
@click.option("--cap", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Take AIDs from a CAP.")
@click.option("--package", help="Executable Load File AID.")
@click.option("--applet", help="Executable Module AID (default: the CAP's first applet).")
@click.option("--instance", help="Application AID (default: the module AID).")
@click.option("--privileges", help="Hex (e.g. 000000) or names (CardReset,CVMManagement).")
@click.option("--params", help="Install parameters, hex (default: C900).")
@click.option("--no-selectable", is_flag=True, help="INSTALL [for install] only, not make selectable.")
@delegation_options
@pass_settings
@handle_errors
def install(
    settings: Settings,
    cap: Path | None,
    package: str | None,
    applet: str | None,
    instance: str | None,
    privileges: str | None,
    params: str | None,
    no_selectable: bool,
    dm_key: str | None,
    dm_token: str | None,
    receipt_key: str | None,
    receipt_key_type: str | None,
) -> None:
    """Install (and make selectable) an application from a loaded package."""
    parsed = CapFile.from_bytes(cap.read_bytes()) if cap else None
    package_aid = aid_option(package, "--package") if package else (parsed.package_aid if parsed else None)
    module_aid = (
        aid_option(applet, "--applet") if applet else (parsed.applet_aids[0] if parsed and parsed.applets else None)
    )
    if package_aid is None or module_aid is None:
        raise click.UsageError("give --cap, or --package and --applet")
    instance_aid = aid_option(instance, "--instance") if instance else module_aid
    parameters = parse_hex(params, "--params") if params else b"\xc9\x00"
    card = settings.card()
    dm = delegation(settings, dm_key, dm_token, receipt_key, receipt_key_type)
    card.install(
        package_aid,
        module_aid,
        instance_aid,
        privileges=_privileges(privileges),
        parameters=parameters,
        make_selectable=not no_selectable,
        delegation=dm,
    )
    note = receipt_note(card.last_confirmation, dm)
    settings.out.print(f"installed {instance_aid.hex().upper()}{note}", highlight=False)


@click.command(name="store-data")
@click.argument("blocks", nargs=-1, required=True)
@click.option("--p1", default="00", help="P1 bits b7-b1 (hex); b8 is set on the last block.")
@click.option("--to", "to", help="Application AID (INSTALL [for personalization] first).")
@pass_settings
@handle_errors
def store_data(settings: Settings, blocks: tuple[str, ...], p1: str, to: str | None) -> None:
    """STORE DATA blocks (hex) to the Security Domain, or to an application."""
    data = [parse_hex(b, "block") for b in blocks]
    p1_byte = parse_hex(p1, "--p1")
    if len(p1_byte) != 1:
        raise click.BadParameter("one hex byte, e.g. 00", param_hint="--p1")
    settings.card().store_data(data, p1=p1_byte[0], application_aid=aid_option(to, "--to") if to else None)
    settings.out.print(f"stored {len(data)} block(s)", highlight=False)


_CARD_STATES = {
    "initialize": CardLifeCycle.INITIALIZED,
    "secure": CardLifeCycle.SECURED,
    "card-lock": CardLifeCycle.CARD_LOCKED,
    "card-unlock": CardLifeCycle.SECURED,
    "terminate": CardLifeCycle.TERMINATED,
}


@click.command(name="set-status")
@click.argument("action", type=click.Choice(["lock", "unlock", *_CARD_STATES]))
@click.argument("aid", required=False)
@click.option("--with-applications", is_flag=True, help="lock/unlock: the SD and its applications (P1=60).")
@click.option("--yes-terminate-the-card", "confirm", is_flag=True, help="Required for terminate: irreversible.")
@pass_settings
@handle_errors
def set_status(settings: Settings, action: str, aid: str | None, with_applications: bool, confirm: bool) -> None:
    """Lock/unlock an application or SD (AID), or change the card life cycle (initialize, secure, card-lock,
    card-unlock, terminate)."""
    if action in ("lock", "unlock"):
        if aid is None:
            raise click.UsageError(f"{action} needs the AID of an application or Security Domain")
        scope = SetStatusScope.SD_AND_APPLICATIONS if with_applications else SetStatusScope.APPLICATION
        settings.card().set_status(scope, 0x80 if action == "lock" else 0x00, aid_option(aid))
    else:
        if action == "terminate" and not confirm:
            raise click.UsageError("terminate is irreversible: add --yes-terminate-the-card to confirm")
        settings.card().set_status(SetStatusScope.ISD, _CARD_STATES[action])
    settings.out.print(f"{action}: done", highlight=False)


@click.command(name="create-ssd")
@click.argument("aid")
@click.option("--privileges", help="Extra privileges (hex or names); Security Domain is always set.")
@click.option("--params", help="Install parameters, hex (default: C900).")
@click.option("--ssd-key", help="Put this key (ENC=MAC=DEK) into the new SSD, opening its channel with the ISD keys.")
@click.option("--ssd-kvn", default="30", help=f"KVN for --ssd-key ({KVN_HELP}).")
@pass_settings
@handle_errors
def create_ssd(
    settings: Settings, aid: str, privileges: str | None, params: str | None, ssd_key: str | None, ssd_kvn: str
) -> None:
    """Create a Supplementary Security Domain, optionally with its own keys."""
    ssd = aid_option(aid)
    card = settings.card()
    card.install(
        bytes.fromhex("A0000001515350"),
        bytes.fromhex("A000000151535041"),
        ssd,
        privileges=_privileges(privileges) | Privileges.of(Privilege.SECURITY_DOMAIN),
        parameters=parse_hex(params, "--params") if params else b"\xc9\x00",
    )
    settings.out.print(f"created SSD {ssd.hex().upper()}", highlight=False)
    if ssd_key:
        key = key_option(ssd_key, "--ssd-key")
        kvn = kvn_option(ssd_kvn, "--ssd-kvn")
        assert key is not None and kvn is not None
        init = card.session.init_response
        secure = card.session.secure
        if secure is None:
            raise click.UsageError("--ssd-key needs a secure channel with the ISD (its DEK protects the keys)")
        key_type = KeyType.AES if init is not None and init.protocol is ScpProtocol.SCP03 else KeyType.DES3
        keys = StaticKeys.single(key, kvn, key_type)
        # The SSD's first keys go through the ISD: INSTALL [for personalization], STORE DATA key DGIs (7.3.2).
        card.store_data([key_set_dgis(keys, secure.encrypt_key)], p1=0x68, application_aid=ssd)
        settings.out.print(f"SSD key set {kvn:02X} written", highlight=False)
