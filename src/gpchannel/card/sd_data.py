"""What a Security Domain tells about the card: the SELECT FCI (GP Card Specification 2.3.1, 11.9.3,
Table 11-82), GET DATA (11.3) and GET STATUS (11.4)."""

from __future__ import annotations

from gpchannel.card import scp11_domain, scp11_keys
from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.registry import is_under, visible_to
from gpchannel.card.state import Application
from gpchannel.codec import tlv as ber
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.errors import ConditionsNotSatisfied, DecodeError, IncorrectData, IncorrectP1P2, ReferencedDataNotFound
from gpchannel.gp.card_data import (
    CardCapabilities,
    CardRecognitionData,
    ExtendedCardResources,
    KeyComponentInfo,
    KeyInformation,
    ScpInfo,
    encode_key_information_template,
)
from gpchannel.gp.registry_data import RegistryEntry, StatusScope, encode_entry

__all__ = ["GP_VERSION", "STATUS_BUDGET", "fci", "get_data", "get_status"]

GP_VERSION = "2.3.1"
STATUS_BUDGET = 200
"""Bytes of GET STATUS entries per response: with R-MAC and R-ENC padding the answer still fits 256."""
_FREE_NVM = 0x00016DB4
_FREE_VM = 0x0000086A


SCP11_BESIDE_I = 0x00
"""The ``i`` reported for SCP11 beside another protocol (Amendment F's coding of ``i`` is not public here)."""


def _recognition(sd: Application) -> CardRecognitionData:
    """Format 1 (Table H-1): one '64' per protocol the Security Domain opens (note 4 allows several), so an
    ISD with SCP11 keys beside its SCP03 key sets names both."""
    assert sd.sd is not None
    scps = [(sd.sd.scp, sd.sd.i_param)]
    if sd.sd.scp != 0x11 and sd.sd.scp11 is not None and sd.sd.scp11.keys:  # read only: no material made here
        scps.append((0x11, SCP11_BESIDE_I))
    return CardRecognitionData(gp_version=GP_VERSION, scps=tuple(scps))


def fci(ctx: CardContext, app: Application) -> bytes:
    """``6F (84 AID, A5 (73 card recognition data [SDs], 9F6E production data, 9F65 max data length))``."""
    key = (app.aid, app.sd.scp if app.sd else -1, app.sd.i_param if app.sd else -1, ctx.state.cplc[:8])
    cached = ctx.fci_cache.get(key)
    if cached is not None:
        return cached
    proprietary = b""
    if app.sd is not None:
        proprietary += _recognition(app).template()
        proprietary += ber.tlv(0x9F6E, ctx.state.cplc[:8])
    proprietary += ber.tlv(0x9F65, b"\xff")
    ctx.fci_cache[key] = out = ber.tlv(0x6F, ber.tlv(0x84, app.aid) + ber.tlv(0xA5, proprietary))
    return out


def _key_information(sd: Application) -> bytes:
    assert sd.sd is not None
    entries = []
    for keyset in sd.sd.keysets:
        for key_id in (1, 2, 3):
            entries.append(
                KeyInformation(key_id, keyset.kvn, (KeyComponentInfo(keyset.key_type.value, len(keyset.enc)),))
            )
    if sd.sd.scp11 is not None:  # EC keys: B1 private (SK.SD.ECKA), B0 public (CA-KLOC); F0 the curve (Table 11-16)
        size = (sd.sd.scp11.ec_curve.key_size + 7) // 8  # the private value; a point is 04 || X || Y
        for key in sd.sd.scp11.keys:
            entries.append(KeyInformation(key.kid, key.kvn, (KeyComponentInfo(0xB1, size), KeyComponentInfo(0xF0, 1))))
        for ca in sd.sd.scp11.cas:
            point = KeyComponentInfo(0xB0, 2 * size + 1)
            entries.append(KeyInformation(ca.kid, ca.kvn, (point, KeyComponentInfo(0xF0, 1))))
    template = encode_key_information_template(entries)
    return _inner(template) if sd.sd.getdata_style == "yubikey" else template


def _inner(template: bytes) -> bytes:
    """The value of a one-object template: YubiKeys answer GET DATA E0 and 66 without the outer tag."""
    items = parse_pairs(template)
    return items[0][1] if len(items) == 1 else template


def get_data(ctx: CardContext, sd: Application, command: CommandApdu) -> ResponseApdu:
    """GET DATA (INS CA/CB) for the tag in P1-P2 (11.3.2, Table 11-26); unknown tags: 6A88."""
    assert sd.sd is not None
    state = ctx.state
    tag = (command.p1 << 8) | command.p2
    if tag == 0x9F7F:
        return ResponseApdu(ber.tlv(0x9F7F, state.cplc))
    if tag == 0x0066:
        data = _recognition(sd).to_bytes()
        return ResponseApdu(_inner(data) if sd.sd.getdata_style == "yubikey" else data)
    if tag == 0xBF21:
        return scp11_domain.certificate_bundle(sd, command)
    if tag in (0xFF33, 0xFF34):  # CA-KLOC / CA-KLCC identifiers (card/scp11_keys.py)
        return scp11_keys.ca_identifiers(sd, klcc=tag == 0xFF34)
    if tag == 0x0067:
        capabilities = CardCapabilities(
            scps=(ScpInfo(sd.sd.scp, bytes((sd.sd.i_param,))),),
            ssd_privileges=bytes.fromhex("E5BEC0"),
            application_privileges=bytes.fromhex("1E0300"),
        )
        return ResponseApdu(capabilities.to_bytes())
    if tag == 0x00E0:
        return ResponseApdu(_key_information(sd))
    if tag == 0x0042 and state.iin:
        return ResponseApdu(ber.tlv(0x42, state.iin))
    if tag == 0x0045 and state.cin:
        return ResponseApdu(ber.tlv(0x45, state.cin))
    if tag == 0x00CF:
        return ResponseApdu(ber.tlv(0xCF, state.key_diversification_data))
    if tag == 0x00C1 and sd.sd.keysets and sd.sd.scp != 0x01:  # SCP01 has no sequence counter
        width = 2 if sd.sd.scp == 0x02 else 3
        return ResponseApdu(ber.tlv(0xC1, sd.sd.keysets[0].sequence_counter.to_bytes(width, "big")))
    if tag == 0xFF21:
        installed = sum(1 for a in state.applications if a.aid != state.isd_aid)
        free = max(0, _FREE_NVM - sum(f.size for f in state.load_files))
        return ResponseApdu(ExtendedCardResources(installed, free, _FREE_VM).to_bytes())
    raise ReferencedDataNotFound(f"no data object {tag:04X}")


def _entries(ctx: CardContext, sd: Application, scope: StatusScope, prefix: bytes) -> list[RegistryEntry]:
    state = ctx.state
    everything = visible_to(state, sd)
    out: list[RegistryEntry] = []
    if scope is StatusScope.ISD:
        isd = state.isd
        return [RegistryEntry(isd.aid, int(state.lifecycle), isd.privileges, tuple(isd.implicit_selection))]
    if scope is StatusScope.APPLICATIONS:
        for app in state.applications:
            if app.aid == state.isd_aid or not app.aid.startswith(prefix):
                continue
            if not everything and (app.aid == sd.aid or not is_under(state, app.aid, sd.aid)):
                continue  # an SD sees what is associated with it, directly or indirectly (11.4.2.3)
            out.append(
                RegistryEntry(
                    app.aid,
                    app.lifecycle,
                    app.privileges,
                    tuple(app.implicit_selection),
                    app.load_file_aid or None,
                    app.sd_aid,
                )
            )
        return out
    for load_file in state.load_files:
        if not load_file.aid.startswith(prefix):
            continue
        if not everything and not is_under(state, load_file.aid, sd.aid):
            continue
        out.append(
            RegistryEntry(
                load_file.aid,
                load_file.lifecycle,
                sd_aid=load_file.sd_aid,
                version=load_file.version or None,
                modules=tuple(load_file.modules),
            )
        )
    return out


def _page(channel: ChannelContext, pending: list[bytes]) -> ResponseApdu:
    data = b""
    while pending and (not data or len(data) + len(pending[0]) <= STATUS_BUDGET):
        data += pending.pop(0)
    if pending:
        channel.status_pending = pending
        return ResponseApdu(data, 0x6310)
    channel.status_pending = None
    return ResponseApdu(data)


def get_status(ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu) -> ResponseApdu:
    """GET STATUS (11.4): P1 80/40/20/10, P2 00 (GP 2.1.1 format) or 02 (E3 templates), b1 = next occurrence;
    ``63 10`` when more entries remain."""
    try:
        scope = StatusScope.from_p1(command.p1)
    except DecodeError:
        raise IncorrectP1P2(f"GET STATUS P1 {command.p1:02X} is none of 80, 40, 20, 10") from None
    if command.p1 & 0x0F or command.p2 & ~0x03:
        raise IncorrectP1P2(f"GET STATUS P1 {command.p1:02X} / P2 {command.p2:02X} has RFU bits set")
    if scope is StatusScope.ISD and not visible_to(ctx.state, sd):
        raise IncorrectP1P2("only the ISD or a Security Domain with Global Registry answers P1 = 80")
    if command.p2 & 0x01:
        if scope is StatusScope.ISD:
            raise IncorrectP1P2("GET STATUS of the ISD has no next occurrence (11.4.2.2)")
        if channel.status_pending is None or channel.status_scope != (command.p1, command.p2 & 0x02):
            raise ConditionsNotSatisfied("GET STATUS [get next occurrence] without a pending GET STATUS")
        return _page(channel, channel.status_pending)
    channel.status_pending = None
    tracker = ctx.tracker
    key = (tracker.version, sd.aid, command.p1, command.p2 & 0x02, command.data)
    # A cached answer was computed from these very criteria bytes, so they parsed and named an AID prefix then.
    encoded = None if tracker.dirty else ctx.status_cache.get(key)
    if encoded is None:
        try:
            criteria = parse_pairs(command.data)
        except DecodeError:
            raise IncorrectData("GET STATUS search criteria are not BER-TLV") from None
        prefix = first_value(criteria, 0x4F)
        if prefix is None:
            raise IncorrectData("GET STATUS needs the AID search criterion (4F)")
        tag_list_raw = first_value(criteria, 0x5C)
        tag_list = _split_tags(tag_list_raw) if tag_list_raw else None
        entries = _entries(ctx, sd, scope, b"" if scope is StatusScope.ISD else prefix)
        if not entries:
            raise ReferencedDataNotFound("no registry entry matches")
        tlv = bool(command.p2 & 0x02)
        encoded = [encode_entry(e, scope, tlv=tlv, tag_list=tag_list) for e in entries]
        if not tracker.dirty:
            if len(ctx.status_cache) > 16 or any(k[0] != tracker.version for k in ctx.status_cache):
                ctx.status_cache.clear()
            ctx.status_cache[key] = encoded
    channel.status_scope = (command.p1, command.p2 & 0x02)
    if len(encoded) == 1:  # one entry (the ISD's, or one application's): one page, as _page would make it
        channel.status_pending = None
        return ResponseApdu(encoded[0])
    return _page(channel, list(encoded))


def _split_tags(raw: bytes) -> list[int]:
    tags: list[int] = []
    offset = 0
    while offset < len(raw):
        start = offset
        offset += 1
        if raw[start] & 0x1F == 0x1F:
            while offset < len(raw) and raw[offset] & 0x80:
                offset += 1
            offset += 1
        tags.append(int.from_bytes(raw[start:offset], "big"))
    return tags
