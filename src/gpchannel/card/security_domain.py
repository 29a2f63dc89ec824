"""The commands a selected Security Domain processes (GP Card Specification 2.3.1, chapter 11; Table 11-1),
with its secure channel (10.2; Amendment D for SCP03).

Rules applied here, before the handlers:

* GlobalPlatform commands use a proprietary class (CLA b8 = 1, 11.1.4); GET DATA also accepts 00.
* Table 11-2: DELETE, GET STATUS, INSTALL, LOAD, PUT KEY, SET STATUS and STORE DATA need an authenticated
  session (an open secure channel); without one they are refused with 6982.
* With an open session every command goes through ``unwrap`` (C-MAC / C-DEC; a failure answers 6982 and
  terminates the session) and the answer through ``wrap`` (R-MAC / R-ENC). A command other than EXTERNAL
  AUTHENTICATE after INITIALIZE UPDATE abandons the pending session; a terminated session is dropped and a
  later command with the secure messaging bit gets 6982.
* CARD_LOCKED forbids card content changes (5.1.1.4); TERMINATED leaves only GET DATA (5.1.1.5).
* SCP02 with implicit initiation (i without b3, GP 2.2.1 E.1.2.2): INITIALIZE UPDATE is not supported (6D00); a
  command with the secure messaging bit and no session starts one with the Security Domain's default (first) key
  set, whose sequence counter is persisted as for explicit sessions. E.1.6: a security error aborts it (6982)
  without ending it; commands without secure messaging then pass at NO_SECURITY_LEVEL (or R-MAC only), those of
  Table 11-2 refused, and the next C-MACed command starts a new session. BEGIN / END R-MAC SESSION (E.5.3,
  E.5.4) are processed in an SCP02 session, explicit or implicit.
"""

from __future__ import annotations

from collections.abc import Callable

from gpchannel.card import content, scp11_domain, scp11_keys, sd_data
from gpchannel.card.context import CardContext, ChannelContext, open_card_channel
from gpchannel.card.key_loading import DGI_KEY_CRT, DGI_SECRET_KEY, store_keys
from gpchannel.card.loading import load_block
from gpchannel.card.scp10_domain import Handler, process_scp10
from gpchannel.card.state import Application, CardState
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.codec.tlv import parse_pairs
from gpchannel.errors import (
    CardError,
    ClaNotSupported,
    ConditionsNotSatisfied,
    DecodeError,
    FunctionNotSupported,
    IncorrectData,
    IncorrectP1P2,
    InsNotSupported,
    ReferencedDataNotFound,
    SecurityNotSatisfied,
)
from gpchannel.gp.ins import Ins, redacts, sd_command
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.scp.common import CardChannel, ChannelState, ScpProtocol, SecurityLevel
from gpchannel.scp.registry import PROTOCOLS, Initiation
from gpchannel.scp.scp02 import is_explicit
from gpchannel.scp.scp02_card import Scp02Card

__all__ = [
    "SteppedDomain",
    "keep_sequence_counters",
    "process_security_domain",
    "sequence_counters",
    "stepped_domain",
    "takes_chaining",
]

_STORE_TAGS = {0x42: "iin", 0x45: "cin", 0xCF: "key_diversification_data", 0x9F7F: "cplc"}

# The Enum members read on every command, as module constants (an Enum class attribute is a lookup each time).
_OPEN = ChannelState.OPEN
_TERMINATED = CardLifeCycle.TERMINATED
_CARD_LOCKED = CardLifeCycle.CARD_LOCKED
_INITIALIZE_UPDATE = Ins.INITIALIZE_UPDATE
_EXTERNAL_AUTHENTICATE = Ins.EXTERNAL_AUTHENTICATE
_R_MAC_SESSION = (Ins.BEGIN_R_MAC_SESSION, Ins.END_R_MAC_SESSION)
_KEEPS_STATUS_LISTING = (Ins.GET_DATA, Ins.GET_DATA_ODD, Ins.GET_STATUS)
_SCP02 = ScpProtocol.SCP02


def sequence_counters(state: CardState) -> dict[tuple[bytes, int], int]:
    """Every key set's secure channel sequence counter, by (Security Domain AID, KVN)."""
    return {(app.aid, k.kvn): k.sequence_counter for app in state.applications if app.sd for k in app.sd.keysets}


def keep_sequence_counters(state: CardState, counters: dict[tuple[bytes, int], int]) -> bool:
    """After a rollback, put back the counters (from :func:`sequence_counters`) that had moved forward: a sequence
    counter never goes back, whatever the command's outcome (GP 2.2.1 E.1.2: an SCP02 implicit session counts its
    first verified C-MAC even if the command then fails; a reused value would let that command be replayed).
    Returns whether anything changed."""
    changed = False
    for app in state.applications:
        for keyset in app.sd.keysets if app.sd else ():
            value = counters.get((app.aid, keyset.kvn), 0)
            if value > keyset.sequence_counter:
                keyset.sequence_counter, changed = value, True
    return changed


SteppedDomain = Callable[[CardContext, ChannelContext, Application, CommandApdu, Handler], ResponseApdu]
"""The Security Domain side of a protocol initiated by steps: every command to such a Security Domain goes to it,
with the ordinary handler for the commands it unwraps."""

_STEPPED_DOMAINS: dict[int, SteppedDomain] = {
    ScpProtocol.SCP10: process_scp10,  # GP 2.2.1 Appendix F
}
"""The Security Domain side of each protocol that the registry says is initiated by steps."""


def stepped_domain(app: Application | None) -> SteppedDomain | None:
    """The processing of ``app`` when it is a Security Domain whose protocol is initiated by steps, else None."""
    if app is None or app.sd is None:
        return None
    found = _STEPPED_DOMAINS.get(app.sd.scp)  # looked up first: most Security Domains have none, a dict miss
    if found is None or PROTOCOLS.initiation(app.sd.scp) is not Initiation.STEPS:
        return None
    return found


def takes_chaining(state: CardState, selected: bytes | None) -> bool:
    """Whether the application selected on a channel takes ISO/IEC 7816-4 command chaining: a Security Domain whose
    protocol is initiated by steps does (SCP10, GP 2.2.1 F.4: certificates, cryptograms and signatures longer than
    one short APDU)."""
    return selected is not None and stepped_domain(state.application(selected)) is not None


def process_security_domain(
    ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu
) -> ResponseApdu:
    """Process one command for the Security Domain ``sd`` selected on ``channel``; raises CardError."""
    stepped = stepped_domain(sd)
    if stepped is not None:  # the protocol's own Security Domain side (SCP10: card/scp10_domain.py)
        return stepped(ctx, channel, sd, command, _handle)
    if scp11_domain.is_scp11_command(sd, command):  # SCP11 beside the SD's protocol (GP 2.3 Amendment F)
        if ctx.state.lifecycle is CardLifeCycle.TERMINATED:
            raise ConditionsNotSatisfied("the card is TERMINATED: only GET DATA is processed (5.1.1.5)")
        return scp11_domain.process_scp11(ctx, channel, sd, command)
    ins = sd_command(command.ins)
    if ins is None:
        raise InsNotSupported(f"INS {command.ins:02X} is not a Security Domain command")
    if (
        not command.cla & 0x80
        and not ins.interindustry
        and not (sd.sd is not None and sd.sd.getdata_style == "yubikey")  # YubiKeys take ISO CLA (yubikit: 00)
    ):
        raise ClaNotSupported(f"{ins.title} needs a GlobalPlatform (proprietary) class byte")
    if not ins.interindustry and ctx.state.lifecycle is _TERMINATED:
        raise ConditionsNotSatisfied("the card is TERMINATED: only GET DATA is processed (5.1.1.5)")
    if ins is _INITIALIZE_UPDATE:
        if sd.sd is not None and sd.sd.scp == ScpProtocol.SCP11:  # an SCP11-only Security Domain (Amendment F)
            raise InsNotSupported("this Security Domain opens SCP11 sessions only: no INITIALIZE UPDATE")
        if _implicit_sd(sd):  # E.1.6 (implicit): no explicit initiation; an implicit session in progress stays
            raise InsNotSupported("this Security Domain uses SCP02 implicit initiation: no INITIALIZE UPDATE")
        return _initialize_update(ctx, channel, sd, command)
    if ins is _EXTERNAL_AUTHENTICATE:
        return _external_authenticate(ctx, channel, sd, command)
    sm = cla_has_secure_messaging(command.cla)
    session = channel.session if channel.session_sd == sd.aid else None
    implicit = session is not None and _implicit(session)
    if session is not None and session.state is not _OPEN and not implicit:
        channel.end_session()
        session = None
    if session is not None and implicit and sm and not _implicit_keys_current(channel, sd):
        channel.end_session()  # the key set was replaced or deleted: a new initiation must use the current one
        session = None
    if session is None and sm and _implicit_sd(sd):
        session = _implicit_session(ctx, channel, sd)
        implicit = True
    if session is None:
        if sm:
            raise SecurityNotSatisfied("secure messaging without an open secure channel")
        if ins.authenticated:
            raise SecurityNotSatisfied(f"{ins.title} needs an authenticated secure channel (Table 11-2)")
        return _handle(ctx, channel, sd, None, command)
    plain = _unwrap(channel, sd, session, command) if implicit else session.unwrap(command)
    try:
        if session.state is not _OPEN and ins.authenticated:  # implicit: aborted or not yet open
            raise SecurityNotSatisfied(f"{ins.title} needs an authenticated secure channel (Table 11-2)")
        if ins.authenticated and not ins.read_only and not scp11_domain.oce_authenticated(session):
            raise SecurityNotSatisfied(f"{ins.title} needs an authenticated off-card entity; SCP11b has none")
        if ins in _R_MAC_SESSION:
            response = _rmac_session(session, plain)
        else:
            response = _handle(ctx, channel, sd, session, plain)
    except CardError as exc:
        response = ResponseApdu(sw=exc.sw)
    if ctx.trace is not None:
        shown = plain.header().hex().upper() + (" <key data>" if redacts(ins) else " " + plain.data.hex().upper())
        ctx.trace(f"   plain >> {shown}")
        ctx.trace(f"   plain << {response.to_bytes().hex().upper()}")
    return session.wrap(response)


def _implicit(session: CardChannel) -> bool:
    """An SCP02 session with implicit initiation: it outlives its aborts (E.1.6)."""
    # The protocol first: a class attribute, where the isinstance test of an ABC costs more on every command.
    return session.protocol == _SCP02 and isinstance(session, Scp02Card) and not is_explicit(session.i_param)


def _implicit_keys_current(channel: ChannelContext, sd: Application) -> bool:
    """False for an SCP02 implicit session about to re-initiate (E.1.6) with a key set that has been replaced or
    deleted since it was made; True otherwise (an active session keeps its session keys to its end)."""
    session = channel.session
    if not isinstance(session, Scp02Card) or is_explicit(session.i_param):
        return True
    if session.state is ChannelState.OPEN and SecurityLevel.C_MAC in session.level:
        return True
    keyset = sd.sd.keyset(channel.session_kvn) if sd.sd is not None else None
    return keyset is not None and session.uses_keys(keyset.static_keys())


def _implicit_sd(sd: Application) -> bool:
    return sd.sd is not None and sd.sd.scp == 0x02 and not is_explicit(sd.sd.i_param)


def _implicit_session(ctx: CardContext, channel: ChannelContext, sd: Application) -> CardChannel:
    """The card side of an implicitly initiated SCP02 session (E.1.2.2), not open yet: the first C-MACed command
    opens it. The key set is the Security Domain's default (first) one."""
    assert sd.sd is not None
    channel.end_session()
    keyset = sd.sd.keyset(0)
    if keyset is None:
        raise SecurityNotSatisfied("secure messaging, but the Security Domain has no key set")
    session = open_card_channel(
        sd.sd.scp,
        sd.sd.i_param,
        keyset,
        kdd=ctx.state.key_diversification_data,
        random=ctx.random,
        aid=sd.aid,
        channel=channel.number,
    )
    channel.session, channel.session_sd, channel.session_kvn = session, sd.aid, keyset.kvn
    return session


def _unwrap(channel: ChannelContext, sd: Application, session: CardChannel, command: CommandApdu) -> CommandApdu:
    """``session.unwrap``: 6982 and TERMINATED (explicit) or aborted (SCP02 implicit, E.1.6) on a bad MAC or
    cryptogram. An implicit session counts its first verified C-MAC: the key set's counter is persisted, and taken
    afresh before each command (another logical channel's session on the key set may have moved it)."""
    keyset = sd.sd.keyset(channel.session_kvn) if sd.sd is not None and _implicit(session) else None
    if keyset is None:
        return session.unwrap(command)
    assert isinstance(session, Scp02Card)
    session.sync_sequence_counter(keyset.sequence_counter)
    try:
        return session.unwrap(command)
    finally:
        keyset.sequence_counter = session.sequence_counter


def _rmac_session(session: CardChannel, command: CommandApdu) -> ResponseApdu:
    """BEGIN R-MAC SESSION (E.5.3) and END R-MAC SESSION (E.5.4): SCP02 only."""
    if not isinstance(session, Scp02Card):
        raise InsNotSupported(f"{_row(command.ins).title} belongs to SCP02; this session is not")
    if command.ins == Ins.BEGIN_R_MAC_SESSION:
        return session.begin_rmac_session(command)
    return session.end_rmac_session(command)


def _row(ins: int) -> Ins:
    """The row of a command that :func:`process_security_domain` (or the SCP10 domain) has already looked up."""
    row = sd_command(ins)
    if row is None:
        raise InsNotSupported(f"INS {ins:02X} is not a Security Domain command")
    return row


def _handle(
    ctx: CardContext, channel: ChannelContext, sd: Application, session: CardChannel | None, command: CommandApdu
) -> ResponseApdu:
    """The Security Domain's handler of a (plain) command of :data:`_HANDLERS`, after the CARD_LOCKED rule."""
    ins = _row(command.ins)
    if ins.changes_content and ctx.state.lifecycle is _CARD_LOCKED:
        raise ConditionsNotSatisfied("the card is CARD_LOCKED: no card content changes (5.1.1.4)")
    if ins not in _KEEPS_STATUS_LISTING:
        channel.status_pending = None  # a GET STATUS "next occurrence" continues only the listing before it (11.4.2)
    return _HANDLERS[ins](ctx, channel, sd, session, command)


def _put_key(
    ctx: CardContext, channel: ChannelContext, sd: Application, session: CardChannel | None, command: CommandApdu
) -> ResponseApdu:
    assert session is not None  # PUT KEY needs an authenticated session (Table 11-2)
    if scp11_domain.is_ec_put_key(command):  # an EC key (Amendment F: SCP11's SK.SD.ECKA / PK.CA-KLOC)
        return scp11_domain.put_ec_key(sd, session, command)
    return content.put_key(sd, session, command)


def _initialize_update(
    ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu
) -> ResponseApdu:
    """INITIALIZE UPDATE (11.12 / D.4.1 / E.5.1 / Amd D 7.1.1): a new session with the key set of P1."""
    assert sd.sd is not None
    channel.end_session()
    keyset = sd.sd.keyset(command.p1)
    if keyset is None:
        raise ReferencedDataNotFound(f"no key set with KVN {command.p1:02X}")
    session = open_card_channel(
        sd.sd.scp,
        sd.sd.i_param,
        keyset,
        kdd=ctx.state.key_diversification_data,
        random=ctx.random,
        aid=sd.aid,
        channel=channel.number,
    )
    channel.session, channel.session_sd, channel.session_kvn = session, sd.aid, keyset.kvn
    try:
        return session.initialize_update(command)
    finally:
        keyset.sequence_counter = session.sequence_counter


def _external_authenticate(
    ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu
) -> ResponseApdu:
    """EXTERNAL AUTHENTICATE: only right after INITIALIZE UPDATE on the same channel and Security Domain."""
    assert sd.sd is not None
    session = channel.session if channel.session_sd == sd.aid else None
    if session is None or session.state is not ChannelState.INITIALIZED:
        channel.end_session()
        raise ConditionsNotSatisfied("EXTERNAL AUTHENTICATE without a preceding INITIALIZE UPDATE")
    keyset = sd.sd.keyset(channel.session_kvn)
    try:
        return session.external_authenticate(command)
    finally:
        if keyset is not None:
            keyset.sequence_counter = session.sequence_counter


def _store_data(
    ctx: CardContext, channel: ChannelContext, sd: Application, session: CardChannel | None, command: CommandApdu
) -> ResponseApdu:
    """STORE DATA (11.11): to the application named by INSTALL [for personalization], else to this SD: key sets
    as DGIs 00B9 + 8113 (11.11.4), and, for the ISD, card data (IIN 42, CIN 45, key diversification data CF,
    CPLC 9F7F; BER-TLV or DGI coded, unencrypted)."""
    expected = channel.store_data_next_block & 0xFF
    if command.p2 != expected:
        channel.store_data_next_block = 0
        raise IncorrectP1P2(f"STORE DATA block {command.p2:02X}, expected {expected:02X}")
    last = bool(command.p1 & 0x80)
    channel.store_data_next_block = 0 if last else channel.store_data_next_block + 1
    if channel.personalize_target is not None:
        target = channel.personalize_target
        if last:
            channel.personalize_target = None
        target_app = ctx.state.application(target)
        if target_app is not None and target_app.sd is not None:
            return _personalize_security_domain(target_app, session, command)
        applet = ctx.applet(target)
        if applet is None:
            raise ReferencedDataNotFound("the application to personalize has no applet class")
        return applet.personalize(command)
    objects = _store_objects(command)
    if command.p1 & 0x18 == 0x10 and scp11_domain.store_objects(sd, objects):
        return ResponseApdu()
    key_objects = [(t, v) for t, v in objects if command.p1 & 0x18 == 0x08 and t in (DGI_KEY_CRT, DGI_SECRET_KEY)]
    objects = [o for o in objects if o not in key_objects]
    if objects and command.p1 & 0x60 == 0x60:
        raise FunctionNotSupported("encrypted card data objects are not supported; only key DGIs (8113)")
    for tag, _ in objects:
        if tag not in _STORE_TAGS:
            raise ReferencedDataNotFound(f"the Security Domain does not store data object {tag:X}")
    state = ctx.state
    if objects and sd.aid != state.isd_aid:
        raise ReferencedDataNotFound("this Security Domain keeps no card data")
    for tag, value in objects:
        if tag == 0x9F7F and len(value) != 42:
            raise IncorrectData(f"CPLC is 42 bytes, got {len(value)}")
        if tag == 0xCF and len(value) != 10:
            raise IncorrectData(f"key diversification data is 10 bytes, got {len(value)}")
    if key_objects:
        assert session is not None  # STORE DATA needs an authenticated session (Table 11-2)
        store_keys(sd, session, key_objects)
    for tag, value in objects:
        setattr(state, _STORE_TAGS[tag], value)
    return ResponseApdu()


def _personalize_security_domain(
    target: Application, session: CardChannel | None, command: CommandApdu
) -> ResponseApdu:
    """STORE DATA to a Security Domain named by INSTALL [for personalization]: its key sets as DGIs 00B9 + 8113,
    enciphered under the personalizing session's DEK. This is how an SSD, which has no keys when it is
    installed (5.3.2.2), gets its first key set (7.3.2); later ones may come with PUT KEY in its own session."""
    objects = _store_objects(command)
    if command.p1 & 0x18 != 0x08 or any(t not in (DGI_KEY_CRT, DGI_SECRET_KEY) for t, _ in objects):
        raise ReferencedDataNotFound("a Security Domain is personalized with key DGIs (00B9, 8113) only")
    if objects:
        assert session is not None  # STORE DATA needs an authenticated session (Table 11-2)
        store_keys(target, session, objects)
    return ResponseApdu()


def _store_objects(command: CommandApdu) -> list[tuple[int, bytes]]:
    structure = command.p1 & 0x18
    if structure == 0x08:  # DGI format (11.1.12): 2-byte DGI, length 1 byte or FF + 2 bytes
        out: list[tuple[int, bytes]] = []
        raw, offset = command.data, 0
        while offset < len(raw):
            if offset + 3 > len(raw):
                raise IncorrectData("truncated DGI")
            dgi, length = int.from_bytes(raw[offset : offset + 2], "big"), raw[offset + 2]
            offset += 3
            if length == 0xFF:
                if offset + 2 > len(raw):
                    raise IncorrectData("truncated DGI length")
                length = int.from_bytes(raw[offset : offset + 2], "big")
                offset += 2
            if offset + length > len(raw):
                raise IncorrectData(f"DGI {dgi:04X} is truncated")
            out.append((dgi, bytes(raw[offset : offset + length])))
            offset += length
    else:
        try:
            out = parse_pairs(command.data)
        except DecodeError:
            raise IncorrectData("STORE DATA objects are not BER-TLV") from None
    return out


_HANDLERS: dict[Ins, Handler] = {
    Ins.GET_DATA: lambda ctx, channel, sd, session, command: sd_data.get_data(ctx, sd, command),
    Ins.GET_DATA_ODD: lambda ctx, channel, sd, session, command: sd_data.get_data(ctx, sd, command),
    Ins.GET_STATUS: lambda ctx, channel, sd, session, command: sd_data.get_status(ctx, channel, sd, command),
    Ins.INSTALL: lambda ctx, channel, sd, session, command: content.install(ctx, channel, sd, command),
    Ins.LOAD: lambda ctx, channel, sd, session, command: load_block(ctx, channel, command),
    Ins.DELETE: lambda ctx, channel, sd, session, command: content.delete(ctx, channel, sd, command),
    Ins.SET_STATUS: lambda ctx, channel, sd, session, command: content.set_status(ctx, sd, command),
    Ins.PUT_KEY: _put_key,
    Ins.STORE_DATA: _store_data,
    Ins.GENERATE_KEY: lambda ctx, channel, sd, session, command: scp11_keys.generate_key(sd, command),
}
"""The handler of each Security Domain command of :class:`~gpchannel.gp.ins.Ins` that is not a channel command
(those are the session's: INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, BEGIN / END R-MAC SESSION)."""
