"""SCP10 in the emulator (card/scp10_domain.py): a card built from a profile with an [isd.scp10] table, driven in
bytes by the host library (CardSession / GpCard with Scp10Host), in both modes at every level of GP 2.2.1
Appendix F; content management inside the session; the failures of F.1.6 and Tables F-17 / F-36 as status words."""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Callable
from functools import cache

import pytest

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.scp10_domain import certificate_subject, pem_decode
from gpchannel.card.state import CardState, LoadFile, MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.emulator.app import ECHO_LOAD_FILE_AID, ECHO_MODULE_AID, emulator_applets
from gpchannel.errors import AuthenticationError, CardStatusError, DecodeError, IntegrityError, ProfileError
from gpchannel.host.card import GpCard
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.scp.common import ChannelState, ScpProtocol, SecurityLevel
from gpchannel.scp.scp10 import Scp10Option
from gpchannel.scp.scp10_cert import TestPki, make_test_pki
from gpchannel.scp.scp10_host import Scp10Host

TODAY = datetime.date(2026, 11, 26)
ISD = bytes.fromhex("A000000151000000")
ECHO = bytes.fromhex("A0000000871002FF49FF0589")
LEVELS = [a | b | c | d for a in (0, 1) for b in (0, 2) for c in (0, 0x10) for d in (0, 0x20)]


class Drbg:
    """Deterministic randomness (SHA-256 in counter mode): every run is the same."""

    def __init__(self, seed: bytes) -> None:
        self.seed, self.n = seed, 0

    def __call__(self, k: int) -> bytes:
        out = b""
        while len(out) < k:
            self.n += 1
            out += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
        return out[:k]


@cache
def pki(seed: bytes = b"domain", days: int = 365) -> TestPki:
    return make_test_pki(Drbg(seed), TODAY, days=days)


def pem(label: str, data: bytes) -> str:
    body = base64.b64encode(data).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def profile_text(p: TestPki, i: str = "02", options: str = '["agreement", "transport"]') -> str:
    return f"""
[card]
iccid = "8988211000000000001"

[isd]
aid = "A000000151000000"
scp = "10"
i = "{i}"

[isd.scp10]
private_key = \"\"\"{p.card.to_pem().decode()}\"\"\"
certificate = \"\"\"{pem("SCP10 CERTIFICATE", p.card_certificate.to_bytes())}\"\"\"
trust_anchor = \"\"\"{p.tp_ex.public.to_pem().decode()}\"\"\"
options = {options}

[[applications]]
aid = "A0000000871002FF49FF0589"
kind = "echo"
lifecycle = "SELECTABLE"
"""


def make_card(p: TestPki, today: datetime.date | None = TODAY, **kw: str) -> Card:
    state = load_profile(profile_text(p, **kw))
    return Card(state, MemoryStore(), random=Drbg(b"card"), today=(lambda: today) if today else None)


def host_factory(
    p: TestPki, option: Scp10Option, chain: tuple[bytes, ...] | None = None, now: datetime.date = TODAY
) -> Callable[[SecurityLevel, int], Scp10Host]:
    oce_chain = chain if chain is not None else tuple(c.to_bytes() for c in p.oce_chain)

    def make(level: SecurityLevel, channel: int) -> Scp10Host:
        return Scp10Host(
            option,
            int(level),
            p.oce,
            oce_chain,
            p.oce_chain[-1].body.subject,
            Drbg(b"host"),
            now,
            trust_point=p.tp_in.public,
            channel=channel,
        )

    return make


class Wire:
    """The card's byte interface as a transport, with an optional hook that may alter a command."""

    def __init__(self, card: Card, alter: Callable[[bytes], bytes] | None = None) -> None:
        self.card, self.alter = card, alter

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        raw = command.to_bytes()
        return ResponseApdu.from_bytes(self.card.process(self.alter(raw) if self.alter else raw))

    def close(self) -> None:
        pass


def connect(card: Card, alter: Callable[[bytes], bytes] | None = None) -> GpCard:
    return GpCard.connect(CardSession(Wire(card, alter), random=Drbg(b"session")), ISD)


def options(p: TestPki, option: Scp10Option, level: int, **kw: object) -> ChannelOptions:
    factory = host_factory(p, option, **kw)  # type: ignore[arg-type]
    return ChannelOptions(lambda _: None, SecurityLevel(level), ScpProtocol.SCP10, driver=factory)  # type: ignore[arg-type, return-value]


# -- sessions in both modes at every level ---------------------------------------------------------------------------
@pytest.mark.parametrize("level", LEVELS, ids=lambda v: f"{v:02X}")
@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_session_at_every_level_runs_content_management(option: Scp10Option, level: int) -> None:
    card = make_card(pki())
    gp = connect(card)
    gp.open_channel(options(pki(), option, level))
    session = card.channels[0].session
    assert session is not None and session.state is ChannelState.OPEN
    assert int(session.level) == level and gp.level == level
    names = {item.entry.aid for item in gp.list()}
    assert ISD in names and ECHO in names
    cplc = gp.get_data(0x9F7F)
    assert cplc is not None and cplc[-42:] == card.state.cplc


def test_install_and_delete_inside_an_scp10_session() -> None:
    state = load_profile(profile_text(pki()))
    state.load_files.append(LoadFile(ECHO_LOAD_FILE_AID, state.isd_aid, [ECHO_MODULE_AID]))
    card = Card(state, MemoryStore(), random=Drbg(b"card"), today=lambda: TODAY, applets=emulator_applets())
    gp = connect(card)
    gp.open_channel(options(pki(), Scp10Option.KEY_AGREEMENT, 0x33))
    instance = ECHO_LOAD_FILE_AID + b"\x07"
    gp.install(ECHO_LOAD_FILE_AID, ECHO_MODULE_AID, instance)
    assert card.state.application(instance) is not None
    gp.delete(instance)
    assert card.state.application(instance) is None


def test_without_a_session_management_is_refused_and_certificate_is_served() -> None:
    card = make_card(pki())
    gp = connect(card)
    status = CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 256)
    assert gp.session.transmit_plain(status).sw == 0x6982  # GP 2.3.1 Table 11-2
    answer = gp.session.transmit_plain(CommandApdu(0x80, 0xCA, 0x7F, 0x21, le=256))
    assert answer.sw == 0x9000 and answer.data == pki().card_certificate.to_bytes()
    assert gp.session.transmit_plain(CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(8), 256)).sw == 0x6D00


def test_select_ends_the_session() -> None:
    card = make_card(pki())
    gp = connect(card)
    gp.open_channel(options(pki(), Scp10Option.KEY_TRANSPORT, 0x01))
    gp.session.transmit_plain(CommandApdu(0x00, 0xA4, 0x04, 0x00, ISD))
    assert card.channels[0].session is None
    wrapped = gp.session.secure.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 256))  # type: ignore[union-attr]
    assert gp.session.transmit_plain(wrapped).sw == 0x6982


def test_key_transport_is_the_only_option_when_the_profile_says_so() -> None:
    card = make_card(pki(), options='["transport"]')
    gp = connect(card)
    with pytest.raises(CardStatusError) as info:
        gp.open_channel(options(pki(), Scp10Option.KEY_AGREEMENT, 0x01))
    assert info.value.sw == 0x9484  # F.4.5 Table F-30: algorithm not supported
    gp.open_channel(options(pki(), Scp10Option.KEY_TRANSPORT, 0x01))


# -- negative: the status words of Appendix F -----------------------------------------------------------------------
@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_certificate_from_another_ca_is_refused_6300(option: Scp10Option) -> None:
    card = make_card(pki())
    stranger = pki(b"another CA")
    chain = tuple(c.to_bytes() for c in stranger.oce_chain)
    gp = connect(card)
    with pytest.raises(CardStatusError) as info:
        gp.open_channel(options(pki(), option, 0x01, chain=chain))
    assert info.value.sw == 0x6300  # Table F-36: verification of the certificate failed
    assert card.channels[0].session is not None and card.channels[0].session.state is not ChannelState.OPEN


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_expired_certificate_is_refused_6300(option: Scp10Option) -> None:
    later = TODAY + datetime.timedelta(days=400)  # the test PKI is valid for 365 days
    card = make_card(pki(), today=later)
    gp = connect(card)
    with pytest.raises(CardStatusError) as info:
        gp.open_channel(options(pki(), option, 0x01, now=TODAY))
    assert info.value.sw == 0x6300


def test_without_a_date_source_certificates_are_not_verified_6985() -> None:
    card = make_card(pki(), today=None)
    gp = connect(card)
    with pytest.raises(CardStatusError) as info:
        gp.open_channel(options(pki(), Scp10Option.KEY_TRANSPORT, 0x01))
    assert info.value.sw == 0x6985


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_tampered_command_mac_is_refused_6982_and_ends_the_session(option: Scp10Option) -> None:
    tamper = {"on": False}

    def alter(raw: bytes) -> bytes:
        return raw[:-2] + bytes((raw[-2] ^ 1,)) + raw[-1:] if tamper["on"] else raw

    card = make_card(pki())
    gp = connect(card, alter)
    gp.open_channel(options(pki(), option, 0x01))
    tamper["on"] = True
    wrapped = gp.session.secure.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00"))  # type: ignore[union-attr]
    assert gp.session.transmit_plain(wrapped).sw == 0x6982  # F.1.6: security error, session aborted
    tamper["on"] = False
    assert card.channels[0].session is not None
    assert card.channels[0].session.state is ChannelState.TERMINATED
    again = gp.session.secure.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00"))  # type: ignore[union-attr]
    assert gp.session.transmit_plain(again).sw == 0x6982


def test_tampered_response_mac_is_detected_by_the_host() -> None:
    card = make_card(pki())
    session = CardSession(Wire(card), random=Drbg(b"session"))
    gp = GpCard.connect(session, ISD)
    gp.open_channel(options(pki(), Scp10Option.KEY_TRANSPORT, 0x11))
    original = card.process

    def flip(raw: bytes) -> bytes:
        out = original(raw)
        return bytes((out[0] ^ 1,)) + out[1:] if len(out) > 2 else out

    card.process = flip  # type: ignore[method-assign]
    with pytest.raises(IntegrityError):
        gp.list()


def test_host_refuses_a_card_certificate_from_another_ca() -> None:
    stranger = pki(b"another CA")
    card = make_card(stranger)  # the card's certificate comes from TP_IN of another PKI
    gp = connect(card)
    with pytest.raises(AuthenticationError):
        gp.open_channel(options(pki(), Scp10Option.KEY_TRANSPORT, 0x01))


def test_commands_longer_than_a_short_apdu_are_chained() -> None:
    seen: list[int] = []

    def record(raw: bytes) -> bytes:
        seen.append(raw[0])
        return raw

    card = make_card(pki())
    gp = connect(card, record)
    gp.open_channel(options(pki(), Scp10Option.KEY_TRANSPORT, 0x03))
    assert any(cla & 0x10 for cla in seen)  # 315-byte certificates go as chained PSO commands (F.4)


def test_chained_command_to_another_application_is_refused_6884() -> None:
    card = make_card(pki())
    card.process(CommandApdu(0x00, 0xA4, 0x04, 0x00, ECHO).to_bytes())
    assert card.process(bytes.fromhex("10CA000000")) == bytes.fromhex("6884")


# -- the profile ---------------------------------------------------------------------------------------------------
def test_profile_state_round_trip_keeps_the_material_out_of_reprs() -> None:
    state = load_profile(profile_text(pki()))
    again = CardState.from_json(state.to_json())
    material = again.isd.sd.scp10  # type: ignore[union-attr]
    assert material is not None and material.card_id == pki().card_certificate.body.subject
    assert material.certificate == pki().card_certificate.to_bytes()
    assert "PRIVATE" not in repr(again) and "PRIVATE" not in repr(material)


def test_profile_files_relative_to_the_profile() -> None:
    p = pki()
    files = {
        "card.pem": p.card.to_pem(),
        "card.cer": p.card_certificate.to_bytes(),
        "tp_ex.pem": p.tp_ex.public.to_pem(),
    }
    text = """
[isd]
aid = "A000000151000000"
scp = "10"
i = "01"
[isd.scp10]
private_key = "card.pem"
certificate = "card.cer"
trust_anchor = "tp_ex.pem"
"""
    state = load_profile(text, resolve=lambda name: files[name])
    assert state.isd.sd is not None and state.isd.sd.scp10 is not None
    assert state.isd.sd.scp10.options == [1, 2]
    with pytest.raises(ProfileError, match=r"isd\.scp10\.private_key"):
        load_profile(text)  # a file name needs a resolver


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("[isd.scp10]", "[isd.scp10]\nextra = 1"), "isd.scp10.extra"),
        (('options = ["agreement", "transport"]', 'options = ["sideways"]'), "isd.scp10.options"),
        (('options = ["agreement", "transport"]', 'options = ["agreement"]'), "isd.i"),
        (("-----BEGIN SCP10 CERTIFICATE-----\n", "-----BEGIN SCP10 CERTIFICATE-----\nfQ"), "isd.scp10.certificate"),
    ],
)
def test_profile_errors_name_the_key(change: tuple[str, str], key: str) -> None:
    text = profile_text(pki())
    assert change[0] in text
    with pytest.raises(ProfileError, match=key.replace(".", r"\.")):
        load_profile(text.replace(*change))


def test_scp10_table_only_with_scp_10() -> None:
    keyset = '\n[[isd.keysets]]\nkvn = 1\nenc = "{0}"\nmac = "{0}"\ndek = "{0}"\n'.format("40" * 16)
    text = profile_text(pki()).replace('scp = "10"\ni = "02"', 'scp = "02"\ni = "55"') + keyset
    with pytest.raises(ProfileError, match=r"isd\.scp10"):
        load_profile(text)


def test_certificate_subject_and_pem_decode_reject_garbage() -> None:
    assert certificate_subject(pki().card_certificate.to_bytes()) == pki().card_certificate.body.subject
    with pytest.raises(DecodeError):
        certificate_subject(b"\x30\x00")
    with pytest.raises(DecodeError):
        pem_decode(b"no pem here")
