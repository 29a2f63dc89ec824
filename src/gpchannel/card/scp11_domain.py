"""SCP11 in the emulator, beside a Security Domain's own protocol or as its only one (``scp`` 11) (GP Card
Specification v2.3, Amendment F).

A Security Domain with SCP11 credentials (``sd.scp11``, from ``[isd.scp11]`` of a card profile or put with PUT
KEY / GENERATE KEY / STORE DATA; card/scp11_keys.py for GENERATE KEY, DELETE [key] and the CA identifiers)
answers, besides its SCP03 commands:

* PERFORM SECURITY OPERATION (2A), INTERNAL AUTHENTICATE (88) and MUTUAL AUTHENTICATE (82 without the secure
  messaging bit, data starting with A6): :func:`process_scp11` hands them to the channel's sans-I/O
  :class:`~gpchannel.scp.scp11_card.Scp11Card`, which becomes the channel's session once the key agreement
  succeeds; every later command is unwrapped and wrapped by it as by an SCP03 session (security_domain.py);
* GET DATA BF21 with ``A6 { 83 KID KVN }``: the key's certificate chain (:func:`certificate_bundle`);
* STORE DATA of ``A6 { 83 KID KVN }`` with ``BF21`` (a certificate chain), ``70 { 93 serial ... }`` (an
  allowlist; empty: none) or ``A6 { 80, 42 key identifier, 83 }`` (a CA-KLOC or CA-KLCC identifier,
  card/scp11_keys.py): :func:`store_objects`;
* PUT KEY of an EC key (GP 2.3.1 11.8.2.3, key types B0 public, B1 private under the session's DEK, F0 the key
  parameter reference): :func:`put_ec_key`.

Commands that change the card (PUT KEY, STORE DATA, DELETE, GENERATE KEY, ...) need an off-card entity the card
authenticated: :func:`oce_authenticated` is False for SCP11b, and security_domain.py refuses them there (6982).

Certificates are checked against the card's date (``CardContext.today``, noon UTC); a card without a date source
refuses SCP11a / c (6985), whose OCE certificates must be checked.
"""

from __future__ import annotations

import datetime

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.scp11_keys import material_of, store_ca_issuer
from gpchannel.card.scp11_material import CA_KIDS, CURVE_NAMES, SD_KIDS, Scp11Material
from gpchannel.card.state import Application
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.codec.tlv import decode_length, parse_pairs, tlv
from gpchannel.crypto.asym import EcCurve
from gpchannel.errors import (
    CardError,
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    ReferencedDataNotFound,
)
from gpchannel.scp.common import CardChannel, ChannelState
from gpchannel.scp.scp11 import SCP11_CURVES, public_key_from_point
from gpchannel.scp.scp11_card import Scp11Card
from gpchannel.scp.scp11_cert import split_certificates

__all__ = [
    "certificate_bundle",
    "is_ec_put_key",
    "is_scp11_command",
    "oce_authenticated",
    "process_scp11",
    "put_ec_key",
    "store_objects",
]

_CONTENT_KEY_KVNS = frozenset({0x70, 0x71, 0x73})  # token, receipt and DAP keys: content.put_key (GP 2.3.1 C.1)


def is_scp11_command(sd: Application, command: CommandApdu) -> bool:
    """Whether ``command`` is an SCP11 initiation command for a Security Domain that has SCP11 credentials."""
    if sd.sd is None or sd.sd.scp11 is None or cla_has_secure_messaging(command.cla):
        return False
    if command.ins in (0x2A, 0x88):
        return True
    return command.ins == 0x82 and command.data[:1] == b"\xa6"


def oce_authenticated(session: CardChannel) -> bool:
    """False for an SCP11b session (the card does not authenticate the off-card entity: yubikit's
    ``SecurityDomainSession.authenticate`` says such a session "will not allow the usage of commands which require
    authentication of the OCE"); True for every other session."""
    return not isinstance(session, Scp11Card) or session.variant is None or session.variant.oce_authenticated


def _now(ctx: CardContext) -> datetime.datetime:
    if ctx.today is None:
        raise ConditionsNotSatisfied("the card has no date to check certificates against")
    return datetime.datetime.combine(ctx.today(), datetime.time(12), datetime.UTC)


def process_scp11(ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu) -> ResponseApdu:
    """PSO, INTERNAL or MUTUAL AUTHENTICATE through the channel's SCP11 card object (made when it has none)."""
    assert sd.sd is not None and sd.sd.scp11 is not None
    session = channel.session
    if not isinstance(session, Scp11Card) or channel.session_sd != sd.aid or session.state is not ChannelState.IDLE:
        # a new initiation (only an OCE chain in progress continues): keys generated or deleted since count
        channel.end_session()
        try:
            config = sd.sd.scp11.card_config()
        except DecodeError as exc:
            raise ConditionsNotSatisfied(f"the SCP11 credentials do not load: {exc}") from None
        session = Scp11Card(config, lambda: _now(ctx), channel=channel.number)
        channel.session, channel.session_sd, channel.session_kvn = session, sd.aid, 0
    if command.ins == 0x2A:
        return session.perform_security_operation(command)
    return session.key_agreement(command)


def _key_reference(data: bytes) -> tuple[int, int]:
    """``A6 { 83 KID KVN }`` (other tags in A6 are skipped); IncorrectData otherwise."""
    try:
        items = parse_pairs(data)
        a6 = next(v for t, v in items if t == 0xA6)
        ref = next(v for t, v in parse_pairs(a6) if t == 0x83)
    except (DecodeError, StopIteration):
        raise IncorrectData("expected A6 { 83 KID KVN }") from None
    if len(ref) != 2:
        raise IncorrectData("a key reference (83) is KID and KVN")
    return ref[0], ref[1]


def certificate_bundle(sd: Application, command: CommandApdu) -> ResponseApdu:
    """GET DATA BF21: the DER certificates of the referenced SK.SD.ECKA, CA first; 6A88 when it has none."""
    material = sd.sd.scp11 if sd.sd is not None else None
    if material is None:
        raise ReferencedDataNotFound("this Security Domain has no SCP11 certificates")
    kid, kvn = _key_reference(command.data)
    key = material.key(kid, kvn)
    if key is None or not key.certificates:
        raise ReferencedDataNotFound(f"no certificates for key KID {kid:02X} KVN {kvn:02X}")
    return ResponseApdu(b"".join(key.certificates))


def store_objects(sd: Application, objects: list[tuple[int, bytes]]) -> bool:
    """STORE DATA of SCP11 objects (see the module docstring); False when ``objects`` are not SCP11's."""
    if not objects or objects[0][0] != 0xA6:
        return False
    head = tlv(0xA6, objects[0][1])
    kid, kvn = _key_reference(head)
    material = material_of(sd)
    rest = objects[1:]
    if not rest:  # A6 { 80 KLOC/KLCC, 42 key identifier, 83 ref }: the CA's issuer identifier
        store_ca_issuer(sd, kid, kvn, objects[0][1])
        return True
    for tag, value in rest:
        if tag == 0xBF21:
            key = material.key(kid, kvn)
            if key is None:
                raise ReferencedDataNotFound(f"no SCP11 key KID {kid:02X} KVN {kvn:02X} for certificates")
            try:
                certs = split_certificates(value)
            except DecodeError as exc:
                raise IncorrectData(f"certificate bundle: {exc}") from None
            key.certificates = [c.public_bytes(Encoding.DER) for c in certs]
        elif tag == 0x70:
            ca = material.ca(kid, kvn)
            if ca is None:
                raise ReferencedDataNotFound(f"no CA key KID {kid:02X} KVN {kvn:02X} for an allowlist")
            serials = [int.from_bytes(v, "big") for t, v in parse_pairs(value) if t == 0x93]
            ca.allowlist = serials or None
        else:
            raise ReferencedDataNotFound(f"SCP11 data object {tag:X} is not stored")
    return True


def is_ec_put_key(command: CommandApdu) -> bool:
    """PUT KEY whose first key component is an EC key (B0 public, B1 private; GP 2.3.1 Table 11-16)."""
    if command.ins != 0xD8 or len(command.data) < 2 or command.data[0] in _CONTENT_KEY_KVNS:
        return False
    return command.data[1] in (0xB0, 0xB1)


def _key_components(data: bytes) -> dict[int, bytes]:
    """The B0 / B1 / F0 components after the KVN; what follows them (the KCV length 00) is not a component."""
    out: dict[int, bytes] = {}
    offset = 1
    try:
        while offset < len(data) and data[offset] in (0xB0, 0xB1, 0xF0):
            length, start = decode_length(data, offset + 1)
            if start + length > len(data):
                raise DecodeError("truncated key component")
            out[data[offset]] = bytes(data[start : start + length])
            offset = start + length
    except DecodeError:
        raise IncorrectData("PUT KEY key components are not TLV") from None
    return out


def _check_versions(material: Scp11Material, kid: int, old: int, new: int) -> None:
    """GP 2.3.1 11.8.2.2, as PUT KEY of a key set: P1 = 00 adds a key version (6A80 when it exists: replace it with
    P1 = its KVN), P1 = a KVN replaces that version (6A88 when there is none)."""
    held = {(k.kid, k.kvn) for k in material.keys} | {(c.kid, c.kvn) for c in material.cas}
    if old == 0 and (kid, new) in held:
        raise IncorrectData(f"key KID {kid:02X} KVN {new:02X} exists; replace it with P1 = {new:02X}")
    if old != 0 and (kid, old) not in held:
        raise ReferencedDataNotFound(f"no key KID {kid:02X} KVN {old:02X} to replace")


def put_ec_key(sd: Application, session: CardChannel, command: CommandApdu) -> ResponseApdu:
    """PUT KEY of one EC key: P1 the KVN replaced (00: a new key), P2 the KID; data ``KVN, B0|B1, F0, 00``.
    B0 (a point) is a CA-KLOC key (KID 10, 20-2F); B1 (the private value, under the session's DEK) an SK.SD.ECKA
    (KID 11, 13, 15). Answers the KVN."""
    kid, new_kvn = command.p2 & 0x7F, command.data[0]
    fields = _key_components(command.data)
    param = fields.get(0xF0, b"\x00")
    try:
        curve_name = CURVE_NAMES[EcCurve(param[0])]
    except (ValueError, IndexError):
        raise IncorrectData(f"key parameter reference {param.hex()} names no supported curve") from None
    material = material_of(sd)
    if material.keys or material.cas:
        if curve_name != material.curve:
            raise IncorrectData(f"this Security Domain's SCP11 keys are on {material.curve}, not {curve_name}")
    else:
        material.curve = curve_name
    curve = SCP11_CURVES[curve_name]
    _check_versions(material, kid, command.p1, new_kvn)
    old = command.p1 or new_kvn
    if 0xB0 in fields:
        if kid not in CA_KIDS:
            raise IncorrectData(f"KID {kid:02X} is not a CA-KLOC key")
        try:
            public = public_key_from_point(curve, fields[0xB0])
        except DecodeError as exc:
            raise IncorrectData(str(exc)) from None
        material.cas = [c for c in material.cas if (c.kid, c.kvn) != (kid, old)]
        material.put_ca(kid, new_kvn, public)
    elif 0xB1 in fields:
        if kid not in SD_KIDS:
            raise IncorrectData(f"KID {kid:02X} is not an SK.SD.ECKA key")
        size = (curve.key_size + 7) // 8
        try:
            clear = session.decrypt_key(fields[0xB1])[:size]
            private = ec.derive_private_key(int.from_bytes(clear, "big"), curve)
        except (CardError, ValueError) as exc:
            raise IncorrectData(f"the private key does not decrypt to a {curve_name} scalar: {exc}") from None
        material.keys = [k for k in material.keys if (k.kid, k.kvn) != (kid, old)]
        material.put_key(kid, new_kvn, private)
    else:
        raise IncorrectData("PUT KEY of an EC key needs B0 or B1")
    return ResponseApdu(bytes((new_kvn,)))
