"""The SCP10 side of a Security Domain in the emulator (GP Card Specification 2.2.1, Appendix F).

A Security Domain whose protocol is SCP10 (``scp`` 10 in its :class:`~gpchannel.card.state.SdConfig`, with its
:class:`~gpchannel.card.state.Scp10Material`) hands every command to :func:`process_scp10`, which routes it
through the sans-I/O :class:`~gpchannel.scp.scp10_card.Scp10Card` of the logical channel:

* the initiation commands of F.4 (MANAGE SECURITY ENVIRONMENT, PERFORM SECURITY OPERATION [verify certificate]
  and [decipher], GET CHALLENGE, EXTERNAL AUTHENTICATE, INTERNAL AUTHENTICATE), with ISO/IEC 7816-4 command
  chaining (F.4; the dispatcher lets chained commands through to an SCP10 Security Domain, see
  :func:`gpchannel.card.security_domain.takes_chaining`), and GET DATA [certificate] 7F21 / 5031 (F.4.3), are
  processed by the session;
* every other command (GET DATA, GET STATUS, INSTALL, LOAD, PUT KEY, ...) is unwrapped at the session's level
  (F.3.2), handled by the Security Domain's ordinary handlers and the answer wrapped. Table 11-2 of GP 2.3.1
  applies as for the other protocols: the card content management commands need an open session (6982);
* INITIALIZE UPDATE does not exist in SCP10 (explicit initiation only, F.1.2): 6D00;
* a TERMINATED card processes GET DATA only (GP 2.3.1 5.1.1.5).

The session lives on the logical channel (GP 2.3.1 10.2): SELECT, MANAGE CHANNEL close and reset end it, as for
the other protocols. Certificates are checked against the card's injected date source (``CardContext.today``);
without one, PERFORM SECURITY OPERATION [verify certificate] is refused with 6985.

:func:`material_from_profile` reads the ``[isd.scp10]`` table of a card profile (docs/profile.md).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from gpchannel.card.context import CardContext, ChannelContext
from gpchannel.card.profile_schema import check_shape, hex_field
from gpchannel.card.state import Application, Scp10Material
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.codec.tlv import Tlv
from gpchannel.crypto.rsa import RsaPrivateKey, RsaPublicKey
from gpchannel.errors import (
    CardError,
    ClaNotSupported,
    ConditionsNotSatisfied,
    DecodeError,
    InsNotSupported,
    ProfileError,
    SecurityNotSatisfied,
)
from gpchannel.gp.ins import Ins, redacts, sd_command
from gpchannel.gp.lifecycle import CardLifeCycle
from gpchannel.scp.common import CardChannel, ChannelState
from gpchannel.scp.scp10 import Scp10Option
from gpchannel.scp.scp10_card import Scp10Card, Scp10CardConfig
from gpchannel.scp.scp10_cert import TAG_CERTIFICATE, CertificateBody

__all__ = [
    "SCP10",
    "Handler",
    "card_config",
    "certificate_subject",
    "material_from_profile",
    "pem_decode",
    "process_scp10",
]

SCP10 = 0x10

Handler = Callable[[CardContext, ChannelContext, Application, CardChannel | None, CommandApdu], ResponseApdu]
"""The Security Domain's handler for a (plain) command: ``security_domain._handle``."""

_OPTION_NAMES = {"agreement": 0x01, "transport": 0x02, "01": 0x01, "02": 0x02}


def card_config(material: Scp10Material, default_option: int) -> Scp10CardConfig:
    """The :class:`Scp10CardConfig` of a Security Domain's credentials (F.1.3.1); ``default_option`` is its i."""
    options = frozenset(Scp10Option(o) for o in material.options)
    default = Scp10Option(default_option) if default_option in {o.value for o in options} else min(options)
    return Scp10CardConfig(
        private_key=RsaPrivateKey.from_pem_or_der(material.private_key.encode()),
        certificate=material.certificate,
        card_id=material.card_id,
        trust_point=RsaPublicKey.from_pem_or_der(material.trust_point.encode()),
        trust_point_id=material.trust_point_id,
        options=options,
        default_option=default,
    )


def _session(ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu) -> Scp10Card:
    """The SCP10 session object of ``channel`` for ``sd``, made (idle) when the channel has none for it. As for
    the other protocols, an aborted session answers 6982 to secure messaging (F.1.6) but is dropped on a command
    without it (GET DATA [certificate] and the initiation commands need no security, Table F-14)."""
    session = channel.session
    if isinstance(session, Scp10Card) and channel.session_sd == sd.aid:
        if session.state is not ChannelState.TERMINATED or cla_has_secure_messaging(command.cla):
            return session
    assert sd.sd is not None
    if sd.sd.scp10 is None:
        raise ConditionsNotSatisfied("this SCP10 Security Domain has no SCP10 key and certificate")
    channel.end_session()
    today = ctx.today

    def now() -> datetime.date:
        if today is None:
            raise ConditionsNotSatisfied("the card has no date to check certificates against")
        return today()

    fresh = Scp10Card(card_config(sd.sd.scp10, sd.sd.i_param), ctx.random, now, channel.number)
    channel.session, channel.session_sd, channel.session_kvn = fresh, sd.aid, 0
    return fresh


def process_scp10(
    ctx: CardContext, channel: ChannelContext, sd: Application, command: CommandApdu, handle: Handler
) -> ResponseApdu:
    """One command for the SCP10 Security Domain ``sd`` selected on ``channel`` (see the module docstring).

    Card errors of the Security Domain's handlers become status words inside the session (and are then wrapped);
    session errors are the status words of Appendix F (6300, 6A80, 6982, 6985, 6883, ...)."""
    row = sd_command(command.ins)
    if ctx.state.lifecycle is CardLifeCycle.TERMINATED and (row is None or not row.interindustry):
        raise ConditionsNotSatisfied("the card is TERMINATED: only GET DATA is processed (5.1.1.5)")
    session = _session(ctx, channel, sd, command)

    def application(plain: CommandApdu) -> ResponseApdu:
        try:
            response = _application(ctx, channel, sd, session, plain, handle)
        except CardError as exc:
            response = ResponseApdu(sw=exc.sw)
        if ctx.trace is not None and session.state is ChannelState.OPEN:
            data = " <key data>" if redacts(plain.ins) else " " + plain.data.hex().upper()
            ctx.trace(f"   plain >> {plain.header().hex().upper()}{data}")
            ctx.trace(f"   plain << {response.to_bytes().hex().upper()}")
        return response

    return session.process(command, application)


def _application(
    ctx: CardContext,
    channel: ChannelContext,
    sd: Application,
    session: Scp10Card,
    command: CommandApdu,
    handle: Handler,
) -> ResponseApdu:
    ins = command.ins
    if ins == Ins.INITIALIZE_UPDATE:
        raise InsNotSupported("SCP10 has no INITIALIZE UPDATE: initiate with MANAGE SECURITY ENVIRONMENT (F.1.2)")
    row = sd_command(ins)
    if row is None or row.channel:  # the symmetric protocols' own commands: SCP10 has its own (Appendix F)
        raise InsNotSupported(f"INS {ins:02X} is not a Security Domain command")
    if not command.cla & 0x80 and not row.interindustry:
        raise ClaNotSupported(f"INS {ins:02X} needs a GlobalPlatform (proprietary) class byte")
    is_open = session.state is ChannelState.OPEN
    if row.authenticated and not is_open:
        raise SecurityNotSatisfied(f"INS {ins:02X} needs an authenticated secure channel (Table 11-2)")
    return handle(ctx, channel, sd, session if is_open else None, command)


# -- the profile's [isd.scp10] table -------------------------------------------------------------------------------
def pem_decode(data: bytes) -> bytes:
    """The content of the first PEM block in ``data`` (any label); DecodeError when there is none."""
    lines = data.decode("ascii", "replace").splitlines()
    try:
        start = next(n for n, line in enumerate(lines) if line.startswith("-----BEGIN "))
        end = next(n for n in range(start + 1, len(lines)) if lines[n].startswith("-----END "))
    except StopIteration:
        raise DecodeError("no PEM block (-----BEGIN ... -----END ...)") from None
    try:
        return base64.b64decode("".join(line.strip() for line in lines[start + 1 : end]), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("the PEM block is not base64") from None


def certificate_subject(raw: bytes) -> bytes | None:
    """The subject (8 bytes) of a ``7F21`` certificate whose certified content is readable without the issuer's
    key (the forms without message recovery, F.1.3.4); None for a certificate with message recovery."""
    outer = Tlv.from_bytes(raw)
    if outer.tag != TAG_CERTIFICATE:
        raise DecodeError(f"certificate tag must be 7F21, got {outer.tag:X}", offset=0)
    items = outer.children()
    if not items or items[-1].tag != 0x9E:
        raise DecodeError("the certificate signature 9E must come last")
    tags = [i.tag for i in items[:-1]]
    if tags in ([], [0x5F38]):
        return None
    if tags == [0x5F4E]:
        return CertificateBody.from_value_bytes(items[0].value).subject
    body = outer.value[: len(outer.value) - len(items[-1].to_bytes())]
    return CertificateBody.from_tlv_bytes(body).subject


def _read(value: object, key: str, resolve: Callable[[str], bytes] | None) -> bytes:
    """Inline PEM text, or a file name relative to the profile (read by ``resolve``)."""
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"profile key {key}: expected inline PEM or a file name, got {value!r}")
    if value.lstrip().startswith("-----BEGIN "):
        return value.encode()
    if resolve is None:
        raise ProfileError(f"profile key {key}: a file name needs the profile's directory; give inline PEM")
    try:
        return resolve(value)
    except OSError as exc:
        raise ProfileError(f"profile key {key}: cannot read {value!r}: {exc.strerror or exc}") from None


def _options(value: object) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ProfileError(
            f'profile key isd.scp10.options: expected a list such as ["agreement", "transport"], got {value!r}'
        )
    out: list[int] = []
    for item in value:
        code = _OPTION_NAMES.get(str(item).lower()) if isinstance(item, str) else item
        if code not in (0x01, 0x02) or isinstance(code, bool):
            raise ProfileError(f'profile key isd.scp10.options: "agreement" (01) or "transport" (02), got {item!r}')
        assert isinstance(code, int)
        if code not in out:
            out.append(code)
    return out


def material_from_profile(
    table: Mapping[str, Any], i_param: int, resolve: Callable[[str], bytes] | None
) -> Scp10Material:
    """The ``[isd.scp10]`` table (docs/profile.md): ``private_key`` (SK.SD.AUT, PKCS#1 or PKCS#8 PEM),
    ``certificate`` (CERT.SD.AUT: PEM of the 7F21 data object, or a file holding it as PEM or binary),
    ``trust_anchor`` (PK.TP_EX.AUT, SubjectPublicKeyInfo PEM), optional ``trust_anchor_id`` (hex, default the
    ASCII "TP_EX" 00 00 01), ``card_id`` (hex, 8 bytes; default the certificate's subject) and ``options``
    (default both). Files are named relative to the profile. Raises ProfileError naming the key."""
    check_shape(dict(table), "isd.scp10")
    for name in ("private_key", "certificate", "trust_anchor"):
        if name not in table:
            raise ProfileError(f"profile key isd.scp10.{name}: missing (see docs/profile.md)")
    key_text = _read(table["private_key"], "isd.scp10.private_key", resolve)
    try:
        private = RsaPrivateKey.from_pem_or_der(key_text)
    except DecodeError as exc:
        raise ProfileError(f"profile key isd.scp10.private_key: expected an RSA private key ({exc})") from None
    anchor_text = _read(table["trust_anchor"], "isd.scp10.trust_anchor", resolve)
    try:
        anchor = RsaPublicKey.from_pem_or_der(anchor_text)
    except DecodeError as exc:
        raise ProfileError(f"profile key isd.scp10.trust_anchor: expected an RSA public key ({exc})") from None
    raw = _read(table["certificate"], "isd.scp10.certificate", resolve)
    try:
        certificate = pem_decode(raw) if raw.lstrip().startswith(b"-----BEGIN ") else raw
        subject = certificate_subject(certificate)
    except DecodeError as exc:
        raise ProfileError(f"profile key isd.scp10.certificate: expected a 7F21 certificate ({exc})") from None
    if "card_id" in table:
        card_id = hex_field(table["card_id"], "isd.scp10.card_id", (8,))
    elif subject is not None:
        card_id = subject
    else:
        raise ProfileError("profile key isd.scp10.card_id: needed with a certificate with message recovery")
    anchor_id = (
        hex_field(table["trust_anchor_id"], "isd.scp10.trust_anchor_id", range(1, 17))
        if "trust_anchor_id" in table
        else b"TP_EX\x00\x00\x01"
    )
    options = _options(table["options"]) if "options" in table else [0x01, 0x02]
    if i_param not in options:
        raise ProfileError(f"profile key isd.i: {i_param:02X} is not among isd.scp10.options")
    return Scp10Material(
        private.to_pem().decode(), certificate, card_id, anchor.to_pem().decode(), anchor_id, sorted(options)
    )
