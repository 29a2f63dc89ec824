"""Card content management in a Security Domain: INSTALL (GP Card Specification 2.3.1, 11.5; 9.3), DELETE
(11.2; 9.5), SET STATUS (11.10; 5) and PUT KEY (11.8).

The ISD and SSDs with Authorized Management act on their own authority; an SSD with Delegated Management
acts with a token per command and gets receipts back (card/delegated.py, Appendix C). A token sent by a
Security Domain without Delegated Management is refused with 6A80 (11.5.2.3).
"""

from __future__ import annotations

from collections.abc import Callable

from gpchannel.card import delegated
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.loading import begin_load
from gpchannel.card.registry import delete_application, delete_load_file, is_under, load_file_of_module
from gpchannel.card.scp11_keys import delete_keys
from gpchannel.card.state import Application, KeySet, SdConfig
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.crypto.keys import KeyType
from gpchannel.errors import (
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    ReferencedDataNotFound,
    SecurityNotSatisfied,
)
from gpchannel.gp import lifecycle as lc
from gpchannel.gp.install import (
    InstallFor,
    InstallForExtradition,
    InstallForInstall,
    InstallForLoad,
    InstallForMakeSelectable,
    InstallForPersonalization,
    InstallForRegistryUpdate,
    InstallParameters,
    parse_install,
)
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.gp.privileges import Privilege
from gpchannel.gp.tokens import (
    KVN_DAP_VERIFICATION,
    KVN_RECEIPT_GENERATION,
    KVN_TOKEN_VERIFICATION,
    ConfirmationData,
    combined_receipt_data,
    delete_receipt_data,
    extradition_receipt_data,
    install_receipt_data,
    registry_update_receipt_data,
    split_delete_token,
    split_install_token,
    token_data,
)
from gpchannel.scp.common import CardChannel
from gpchannel.scp.put_key import PutKeyCommand

__all__ = ["delete", "install", "put_key", "set_status"]


def _owned(ctx: CardContext, sd: Application, aid: bytes) -> None:
    if sd.aid != ctx.state.isd_aid and not is_under(ctx.state, aid, sd.aid):
        raise SecurityNotSatisfied("the object is not associated with the selected Security Domain")


def _require_management(ctx: CardContext, sd: Application) -> None:
    """Card content management is for the ISD and SDs with Authorized or Delegated Management (GP 2.3.1, 9.1;
    6.6.1); a delegated command's token is checked by :func:`delegated.authorize`."""
    if sd.aid == ctx.state.isd_aid or Privilege.AUTHORIZED_MANAGEMENT in sd.privileges or delegated.is_delegated(sd):
        return
    raise SecurityNotSatisfied("this Security Domain has no card content management privilege")


def install(ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu) -> ResponseApdu:
    """INSTALL [for load / install / make selectable / extradition / registry update / personalization]."""
    if command.p1 & 0x80:  # more INSTALL commands follow (Table 11-41): keep the segment
        channel.install_chain += command.data
        return ResponseApdu(b"\x00")
    data, channel.install_chain = channel.install_chain + command.data, b""
    if command.p2 not in (0x00, 0x01, 0x03):
        raise IncorrectP1P2(f"INSTALL P2 {command.p2:02X} is none of 00, 01, 03")
    try:
        roles, variant = parse_install(command.p1, command.p2, data)
    except DecodeError as exc:
        raise IncorrectData(f"INSTALL data: {exc}") from None
    if isinstance(variant, InstallForPersonalization):
        return _personalize(ctx, channel, sd, variant)
    _require_management(ctx, sd)
    token = variant.token

    def signed_part(p1: int, p2: int, token: bytes) -> bytes:
        try:
            return token_data(p1 & 0x7F, p2, split_install_token(data, token))
        except (DecodeError, ValueError):
            raise IncorrectData("the INSTALL data does not end with its token") from None

    pending = None
    if delegated.is_delegated(sd) and command.p2 in (0x01, 0x03):
        # The combined process (C.4.7): one token, in the final INSTALL, signs both INSTALL commands; the load
        # file is kept aside until it verifies.
        if command.p2 == 0x01 and isinstance(variant, InstallForLoad):
            if token:
                raise IncorrectData("the token of a combined load comes with its final INSTALL (C.4.7)")
            begin_load(ctx, channel, sd, variant, True, signed_part(command.p1, command.p2, b""))
            return ResponseApdu(b"\x00")
        pending, channel.delegated_load = channel.delegated_load, None
        if pending is None or not isinstance(variant, InstallForInstall):
            raise ConditionsNotSatisfied("no combined load by this Security Domain is waiting for its INSTALL")
    combined_part = pending[0].token_part if pending is not None else b""
    delegated.authorize(ctx, sd, token, lambda: combined_part + signed_part(command.p1, command.p2, token))
    if pending is not None:
        ctx.state.load_files.append(pending[1])
    identifier = delegated.token_identifier(getattr(variant, "parameters", getattr(variant, "load_parameters", b"")))
    receipt: Callable[[ConfirmationData], bytes] | None = None
    if isinstance(variant, InstallForLoad):
        begin_load(ctx, channel, sd, variant, combined=command.p2 == 0x01)
    elif isinstance(variant, InstallForInstall):
        _install(ctx, sd, variant, make_selectable=InstallFor.MAKE_SELECTABLE in roles, combined=command.p2 == 0x03)
        app = ctx.state.application(variant.application_aid)
        assert app is not None
        elf, aid = app.load_file_aid, app.aid
        if pending is not None:
            associated = pending[1].sd_aid
            receipt = lambda cd: combined_receipt_data(cd, elf, aid, associated)  # noqa: E731
        else:
            receipt = lambda cd: install_receipt_data(cd, elf, aid)  # noqa: E731
    elif isinstance(variant, InstallForMakeSelectable):
        app = _make_selectable(ctx, sd, variant)
        elf, aid = app.load_file_aid, app.aid
        receipt = lambda cd: install_receipt_data(cd, elf, aid)  # noqa: E731
    elif isinstance(variant, InstallForExtradition):
        old = _extradite(ctx, sd, variant.application_aid, variant.sd_aid)
        extradited = variant
        receipt = lambda cd: extradition_receipt_data(cd, old, extradited.application_aid, extradited.sd_aid)  # noqa: E731
    elif isinstance(variant, InstallForRegistryUpdate):
        old = _registry_update(ctx, sd, variant)
        update = variant
        privileges = b"" if update.privileges is None else update.privileges.to_bytes()
        receipt = lambda cd: registry_update_receipt_data(  # noqa: E731
            cd, old, update.application_aid, update.sd_aid, privileges, update.parameters
        )
    if receipt is None:
        return ResponseApdu(b"\x00")
    return ResponseApdu(delegated.confirm(ctx, sd, identifier, receipt))


def _personalize(
    ctx: CardContext, channel: ChannelContext, sd: Application, variant: InstallForPersonalization
) -> ResponseApdu:
    target = ctx.state.application(variant.application_aid)
    if target is None:
        raise ReferencedDataNotFound("no such application to personalize")
    if target.sd_aid != sd.aid:
        raise ConditionsNotSatisfied("only the associated Security Domain personalizes an application")
    channel.personalize_target = target.aid
    return ResponseApdu(b"\x00")


def _install(
    ctx: CardContext, sd: Application, data: InstallForInstall, *, make_selectable: bool, combined: bool
) -> None:
    state = ctx.state
    elf_aid = data.load_file_aid
    if not elf_aid and combined and state.load_files:
        elf_aid = state.load_files[-1].aid
    load_file = state.load_file(elf_aid) if elf_aid else load_file_of_module(state, data.module_aid)
    if load_file is None:
        raise ReferencedDataNotFound("the Executable Load File is not in the registry")
    if data.module_aid and load_file.modules and data.module_aid not in load_file.modules:
        raise ReferencedDataNotFound("the Executable Module is not in that Executable Load File")
    if state.application(data.application_aid) is not None or state.load_file(data.application_aid) is not None:
        raise ConditionsNotSatisfied("an application with this AID is already installed")
    try:
        parameters = InstallParameters.from_bytes(data.parameters)
    except DecodeError as exc:
        raise IncorrectData(f"install parameters: {exc}") from None
    privileges = data.privileges
    if Privilege.CARD_RESET in privileges and not make_selectable:
        raise IncorrectData("the Card Reset privilege needs [for make selectable] in the same INSTALL (11.5.2.3.2)")
    if Privilege.DELEGATED_MANAGEMENT in privileges and any(
        p in privileges
        for p in (Privilege.AUTHORIZED_MANAGEMENT, Privilege.TOKEN_MANAGEMENT, Privilege.RECEIPT_GENERATION)
    ):
        raise IncorrectData(
            "Delegated Management excludes Authorized Management, Token Verification and Receipt (6.6.1)"
        )
    sd_config = None
    if Privilege.SECURITY_DOMAIN in privileges:
        isd_config = state.isd.sd
        assert isd_config is not None
        scp, i_param = isd_config.scp, isd_config.i_param
        try:
            scp_parameter = first_value(parse_pairs(parameters.application_specific), 0x81)
        except DecodeError:
            raise IncorrectData("Security Domain install parameters (C9) must be BER-TLV (11.5.2.3.7)") from None
        if scp_parameter is not None and len(scp_parameter) == 2:
            scp, i_param = scp_parameter[0], scp_parameter[1]
        sd_config = SdConfig(scp, i_param, [])
    lifecycle = lc.APPLICATION_SELECTABLE if make_selectable else lc.APPLICATION_INSTALLED
    module = data.module_aid
    applet_name = module.hex().upper() if module.hex().upper() in ctx.applets else ""
    app = Application(
        data.application_aid,
        lifecycle,
        privileges,
        sd.aid,
        load_file_aid=load_file.aid,
        module_aid=module,
        applet=applet_name,
        install_parameters=parameters.application_specific,
        implicit_selection=list(parameters.implicit_selection) if make_selectable else [],
        sd=sd_config,
        system_parameters=dict(parameters.extra).get(0xEA, b""),  # TAR values and MSL (ETSI TS 102 226)
    )
    state.applications.append(app)
    instance = ctx.applet(app.aid)
    if instance is not None:
        instance.install(parameters.application_specific, privileges.to_bytes())


def _make_selectable(ctx: CardContext, sd: Application, data: InstallForMakeSelectable) -> Application:
    app = ctx.state.application(data.application_aid)
    if app is None:
        raise ReferencedDataNotFound("no such application")
    _owned(ctx, sd, app.aid)
    if app.lifecycle != lc.APPLICATION_INSTALLED:
        raise ConditionsNotSatisfied("the application is not in the INSTALLED state")
    app.lifecycle = lc.APPLICATION_SELECTABLE
    if Privilege.CARD_RESET in data.privileges:
        app.privileges = app.privileges | type(app.privileges).of(Privilege.CARD_RESET)
    return app


def _extradite(ctx: CardContext, sd: Application, aid: bytes, target_sd: bytes) -> bytes:
    """Move ``aid`` to ``target_sd``; returns the Security Domain it was associated with."""
    state = ctx.state
    target = state.application(target_sd)
    if target is None or target.sd is None:
        raise ReferencedDataNotFound("the destination Security Domain does not exist")
    if lc.is_locked(target.lifecycle):
        raise ConditionsNotSatisfied("the destination Security Domain is LOCKED")
    app = state.application(aid)
    load_file = state.load_file(aid)
    if app is None and load_file is None:
        raise ReferencedDataNotFound("no such application or load file")
    if aid == state.isd_aid or is_under(state, target_sd, aid):
        raise ConditionsNotSatisfied("extradition would make the Security Domain hierarchy circular")
    _owned(ctx, sd, aid)
    old = app.sd_aid if app is not None else load_file.sd_aid if load_file is not None else b""
    if app is not None:
        app.sd_aid = target_sd
    if load_file is not None:
        load_file.sd_aid = target_sd
    return old


def _registry_update(ctx: CardContext, sd: Application, data: InstallForRegistryUpdate) -> bytes:
    """Returns the old Security Domain when the update extradites, else empty (Table C-14)."""
    try:
        items = parse_pairs(data.parameters)
        system = first_value(items, 0xEF)
        system_items = parse_pairs(system) if system else []
    except DecodeError:
        raise IncorrectData("registry update parameters are not BER-TLV") from None
    if first_value(system_items, 0xD9) is not None:
        raise IncorrectData("the Restrict parameter (D9) is not implemented by this card (11.5.2.3.5)")
    if not data.application_aid:
        raise IncorrectData("registry update of the OPEN itself (no application AID) is not implemented")
    app = ctx.state.application(data.application_aid)
    if app is None:
        raise ReferencedDataNotFound("no such application")
    _owned(ctx, sd, app.aid)
    # All or nothing (11.5.2.3.5): validate before changing anything.
    implicit = [v[0] for t, v in system_items if t == 0xCF and len(v) == 1]
    old = b""
    if data.sd_aid:
        old = _extradite(ctx, sd, app.aid, data.sd_aid)
    if data.privileges is not None:
        if Privilege.SECURITY_DOMAIN in data.privileges and app.sd is None:
            raise IncorrectData("an application cannot become a Security Domain by registry update")
        app.privileges = data.privileges if app.sd is None else data.privileges.normalized()
    app.implicit_selection.extend(implicit)
    return old


def delete(ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu) -> ResponseApdu:
    """DELETE [card content] (4F) or DELETE [key] (D0 / D2), P2 b8 = with related objects (11.2)."""
    if command.p1 & 0x80:
        channel.delete_chain += command.data
        return ResponseApdu(b"\x00")
    data, channel.delete_chain = channel.delete_chain + command.data, b""
    try:
        items = parse_pairs(data)
    except DecodeError:
        raise IncorrectData("DELETE data is not BER-TLV") from None
    aid = first_value(items, 0x4F)
    assert sd.sd is not None
    last = aid is None and bool(command.p2 & 0x01) and sd.sd.getdata_style == "yubikey"  # delete the last key
    if command.p1 & 0x7F or command.p2 & (0x7E if last else 0x7F):
        raise IncorrectP1P2(f"DELETE P1 {command.p1:02X} / P2 {command.p2:02X} has RFU bits set")
    if aid is None:  # DELETE [key] (11.2.2.3.2): card/scp11_keys.py, for every kind of key
        return delete_keys(sd, items, last=last)
    _require_management(ctx, sd)
    raw_token = first_value(items, 0x9E)
    if raw_token is not None and not delegated.is_delegated(sd):
        raise IncorrectData("a Delete Token is only for Delegated Management (11.2.2.3.1)")
    token = raw_token or b""

    def signed() -> bytes:
        try:
            return token_data(command.p1 & 0x7F, command.p2, split_delete_token(data, token))
        except (DecodeError, ValueError):
            raise IncorrectData("the Delete Token (9E) must be the last data object") from None

    delegated.authorize(ctx, sd, token, signed)
    _delete_content(ctx, sd, aid, related=bool(command.p2 & 0x80))
    identifier = delegated.token_identifier(data)
    return ResponseApdu(delegated.confirm(ctx, sd, identifier, lambda cd: delete_receipt_data(cd, aid)))


def _delete_content(ctx: CardContext, sd: Application, aid: bytes, *, related: bool) -> None:
    state = ctx.state
    app, load_file = state.application(aid), state.load_file(aid)
    if app is None and load_file is None:
        raise ReferencedDataNotFound("no such application or load file")
    if aid == state.isd_aid:
        raise ConditionsNotSatisfied("the Issuer Security Domain cannot be deleted")
    _owned(ctx, sd, aid)
    if app is not None:
        if any(a.sd_aid == aid and a.aid != aid for a in state.applications) or any(
            f.sd_aid == aid for f in state.load_files
        ):
            raise ConditionsNotSatisfied("the Security Domain still has associated applications or load files")
        delete_application(state, aid)
        ctx.instances.pop(aid, None)
        return
    assert load_file is not None
    instances = [a for a in state.applications if a.load_file_aid == aid]
    if instances and not related:
        raise ConditionsNotSatisfied("applications were installed from this load file; use P2 = 80")
    for instance in instances:
        if any(a.sd_aid == instance.aid and a.aid != instance.aid for a in state.applications):
            raise ConditionsNotSatisfied("an instance is a Security Domain with associated content")
    for instance in instances:
        delete_application(state, instance.aid)
        ctx.instances.pop(instance.aid, None)
    delete_load_file(state, aid)


def set_status(ctx: CardContext, sd: Application, command: CommandApdu) -> ResponseApdu:
    """SET STATUS (11.10): P1 80 card life cycle, 40 an application or SD, 60 an SD and its applications."""
    state = ctx.state
    p1, p2 = command.p1, command.p2
    if p1 == 0x80:
        try:
            target = CardLifeCycle(p2)
        except ValueError:
            raise IncorrectData(f"card life cycle {p2:02X} is not in Table 11-6") from None
        is_isd = sd.aid == state.isd_aid
        needed = Privilege.CARD_TERMINATE if target is CardLifeCycle.TERMINATED else Privilege.CARD_LOCK
        if (
            target in (CardLifeCycle.TERMINATED, CardLifeCycle.CARD_LOCKED)
            or state.lifecycle is CardLifeCycle.CARD_LOCKED
        ):
            if needed not in sd.privileges:
                raise SecurityNotSatisfied(f"the Security Domain lacks the {needed.camel_name} privilege")
        elif not is_isd:
            raise SecurityNotSatisfied("only the ISD moves the card life cycle forward")
        if not state.lifecycle.can_become(target):
            raise ConditionsNotSatisfied(f"card life cycle {state.lifecycle.name} -> {target.name} is not allowed")
        state.lifecycle = target
        state.isd.lifecycle = int(target)
        return ResponseApdu()
    if p1 not in (0x40, 0x60):
        raise IncorrectP1P2(f"SET STATUS P1 {p1:02X} is none of 80, 40, 60")
    app = state.application(command.data)
    if app is None:
        raise ReferencedDataNotFound("no such application or Security Domain")
    if app.aid == state.isd_aid:
        raise IncorrectData("the ISD's life cycle is the card's: use P1 = 80")
    if p1 == 0x60:
        if app.sd is None:
            raise IncorrectData("P1 = 60 applies to a Security Domain")
        _lock_control(ctx, sd, app, p2)
        for other in state.applications:
            if other.aid not in (app.aid, state.isd_aid) and is_under(state, other.aid, app.aid):
                other.lifecycle = lc.lock(other.lifecycle) if p2 & 0x80 else lc.unlock(other.lifecycle)
        return ResponseApdu()
    if app.aid == sd.aid:  # a Security Domain setting its own state: PERSONALIZED or LOCKED (11.10.2.2)
        try:
            lc.check_sd_transition(app.lifecycle, p2)
        except ValueError as exc:
            raise ConditionsNotSatisfied(str(exc)) from None
        app.lifecycle = p2
        return ResponseApdu()
    _lock_control(ctx, sd, app, p2)
    return ResponseApdu()


def _lock_control(ctx: CardContext, sd: Application, app: Application, p2: int) -> None:
    """Another entity's LOCKED state: only b8 counts (11.10.2.2); to the current state is rejected."""
    if Privilege.GLOBAL_LOCK not in sd.privileges:
        _owned(ctx, sd, app.aid)
    if bool(p2 & 0x80) == lc.is_locked(app.lifecycle):
        raise ConditionsNotSatisfied("the application is already in the requested state")
    app.lifecycle = lc.lock(app.lifecycle) if p2 & 0x80 else lc.unlock(app.lifecycle)


def put_key(sd: Application, session: CardChannel, command: CommandApdu) -> ResponseApdu:
    """PUT KEY (11.8): add (P1 = 00) or replace (P1 = old KVN) a key set of ENC, MAC, DEK (key ids 1-3)."""
    assert sd.sd is not None
    if command.data and command.data[0] in (KVN_TOKEN_VERIFICATION, KVN_RECEIPT_GENERATION, KVN_DAP_VERIFICATION):
        return delegated.put_content_key(sd, session, command)
    parsed = PutKeyCommand.from_apdu(command)
    if parsed.more:
        raise IncorrectP1P2("chained PUT KEY commands are not supported; send the three keys at once")
    if parsed.key_id != 1 or len(parsed.data.keys) != 3:
        raise IncorrectData("PUT KEY must carry the key set's three keys (ENC, MAC, DEK) from key id 01")
    expected = KeyType.AES if sd.sd.scp in (0x03, 0x11) else KeyType.DES3
    for component in parsed.data.keys:
        if component.key_type != expected.value:
            raise IncorrectData(f"SCP{sd.sd.scp:02X} key sets are {expected.name} keys")
    enc, mac, dek = parsed.data.decrypt(session.decrypt_key)
    if len({len(enc), len(mac), len(dek)}) != 1 or len(enc) not in expected.allowed_lengths:
        raise IncorrectData("the three keys must have one valid length")
    new_kvn = parsed.data.new_kvn
    new = KeySet(new_kvn, expected, enc, mac, dek, 0)
    if parsed.old_kvn == 0:
        if sd.sd.keyset(new_kvn) is not None:
            raise IncorrectData(f"key set {new_kvn:02X} exists; replace it with P1 = {new_kvn:02X}")
        sd.sd.keysets.append(new)
    else:
        index = next((n for n, k in enumerate(sd.sd.keysets) if k.kvn == parsed.old_kvn), None)
        if index is None:
            raise ReferencedDataNotFound(f"no key set {parsed.old_kvn:02X} to replace")
        if new_kvn != parsed.old_kvn and sd.sd.keyset(new_kvn) is not None:
            raise IncorrectData(f"key set {new_kvn:02X} exists already")
        sd.sd.keysets[index] = new
    return ResponseApdu(parsed.data.response_data())
