"""GENERATE KEY, DELETE [key], CA identifiers (GET DATA FF33 / FF34, STORE DATA A6 {80, 42, 83}), SCP11b's
refusal of management commands and an SCP11-only Security Domain, through the Card front door with our host.

Expected status words come from GP 2.3.1 11.2 (DELETE), Table 11-2 and the choices of card/scp11_keys.py's
docstring; the peer check (yubikit) is tests/emulator/test_scp11_yubikit.py."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import CardState, MemoryStore
from gpchannel.cli.scp11_commands import write_test_pki
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import tlv
from gpchannel.errors import ProfileError
from gpchannel.scp.scp11 import Scp11Variant, public_key_from_point
from gpchannel.scp.scp11_cert import load_certificate
from gpchannel.scp.scp11_host import Scp11Host
from tests.card.harness import counter_random, open_session, secure, send

NOW = datetime.datetime.now(datetime.UTC)
SELECT = bytes.fromhex("00A4040008A000000151000000")
P256 = b"\xf0\x01\x00"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp11-keys")
    write_test_pki(out, NOW, style="yubikey")
    return out


def _card(pki: Path, text: str | None = None) -> Card:
    state = load_profile(text or (pki / "card.toml").read_text(), resolve=lambda n: (pki / n).read_bytes())
    store = MemoryStore()
    store.commit(state)
    card = Card(state, store, random=counter_random(), today=lambda: NOW.date())
    assert send(card, SELECT.hex()).sw == 0x9000
    return card


def _transmit(card: Card) -> Callable[[CommandApdu], ResponseApdu]:
    def transmit(command: CommandApdu) -> ResponseApdu:
        out = card.process(command.to_bytes())
        data, sw = out[:-2], int.from_bytes(out[-2:], "big")
        while sw >> 8 == 0x61:
            out = card.process(bytes.fromhex("00C0000000"))
            data, sw = data + out[:-2], int.from_bytes(out[-2:], "big")
        return ResponseApdu(data, sw)

    return transmit


def _scp11(card: Card, pki: Path, variant: Scp11Variant, *, kvn: int = 1, anchor: object = None) -> Scp11Host:
    if anchor is None:
        anchor = load_certificate((pki / "card-ca.cert.pem").read_bytes()).public_key()
    extra: dict[str, object] = {}
    if variant.oce_authenticated:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key((pki / "oce.key.pem").read_bytes(), None)
        chain = tuple(load_certificate((pki / n).read_bytes()) for n in ("oce-ca.cert.pem", "oce.cert.pem"))
        extra = {"oce_key": key, "oce_chain": chain, "oce_ca": (0x10, 0x03)}
    host = Scp11Host(variant, kvn=kvn, now=NOW, card_anchor=anchor, **extra)  # type: ignore[arg-type]
    assert send(card, SELECT.hex()).sw == 0x9000  # a new session after a new SELECT, as yubikit does
    host.run(_transmit(card))
    assert host.is_open
    return host


def _generate(kid: int, kvn: int, replace: int = 0, params: bytes = P256) -> CommandApdu:
    return CommandApdu(0x80, 0xF1, replace, kid, bytes((kvn,)) + params, le=256)


def _delete(kid: int | None = None, kvn: int | None = None, p2: int = 0) -> CommandApdu:
    data = (tlv(0xD0, bytes((kid,))) if kid is not None else b"") + (tlv(0xD2, bytes((kvn,))) if kvn else b"")
    return CommandApdu(0x80, 0xE4, 0x00, p2, data, le=256)


def test_generate_key_then_open_scp11b_with_it(pki: Path) -> None:
    card = _card(pki)
    host = _scp11(card, pki, Scp11Variant.A)
    answer = secure(card, host, _generate(0x13, 0x02))
    assert answer.sw == 0x9000 and answer.data[:2] == b"\xb0\x41" and answer.data[2] == 0x04
    public = public_key_from_point(ec.SECP256R1(), answer.data[2:])
    # the new key has no certificate yet: the host opens 11b with the returned point as the card's static key
    host_b = Scp11Host(Scp11Variant.B, kvn=2, now=NOW, sd_public_key=public)
    assert send(card, SELECT.hex()).sw == 0x9000
    host_b.run(_transmit(card))
    assert host_b.is_open
    assert secure(card, host_b, CommandApdu(0x80, 0xCA, 0x00, 0xE0, le=256)).sw == 0x9000
    # replacing KVN 02 by 03 keeps one KID 13 key of that lineage
    host = _scp11(card, pki, Scp11Variant.C)
    assert secure(card, host, _generate(0x13, 0x03, replace=0x02)).sw == 0x9000
    sd = card.state.isd.sd
    assert sd is not None and sd.scp11 is not None
    assert sorted((k.kid, k.kvn) for k in sd.scp11.keys if k.kid == 0x13) == [(0x13, 0x01), (0x13, 0x03)]
    again = CardState.from_json(card.state.to_json())
    assert again.isd.sd is not None and again.isd.sd.scp11 == sd.scp11


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        (_generate(0x10, 0x02), 0x6A86),  # a CA-KLOC key is not generated on the card
        (_generate(0x01, 0x02), 0x6A86),
        (_generate(0x13, 0x02, replace=0x09), 0x6A88),  # nothing to replace
        (_generate(0x13, 0x01), 0x6A80),  # exists: replace it with P1 = 01
        (_generate(0x13, 0x00), 0x6A80),
        (_generate(0x13, 0xFF), 0x6A80),
        (_generate(0x13, 0x02, params=b"\xf0\x01\x09"), 0x6A80),  # no such curve
        (_generate(0x13, 0x02, params=b"\xf0\x01\x01"), 0x6A80),  # P-384 beside P-256 keys
        (_generate(0x13, 0x02, params=b"\xf0\x02\x00\x00"), 0x6A80),  # wrong length
        (_generate(0x13, 0x02, params=b""), 0x6A80),
        (CommandApdu(0x80, 0xF1, 0x00, 0x13, b"", le=256), 0x6A80),
    ],
)
def test_generate_key_refusals(pki: Path, command: CommandApdu, sw: int) -> None:
    card = _card(pki)
    host = _scp11(card, pki, Scp11Variant.A)
    assert secure(card, host, command).sw == sw


def test_management_refused_outside_an_authenticated_session(pki: Path) -> None:
    card = _card(pki)
    assert send(card, _generate(0x13, 0x02)).sw == 0x6982  # no session (Table 11-2)
    assert send(card, _delete(0x13, 0x01)).sw == 0x6982
    host = _scp11(card, pki, Scp11Variant.B)  # SCP11b does not authenticate the OCE
    for command in (_generate(0x13, 0x02), _delete(0x13, 0x01), CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\x70\x00")):
        assert secure(card, host, command).sw == 0x6982
    assert secure(card, host, CommandApdu(0x80, 0xCA, 0x00, 0xE0, le=256)).sw == 0x9000  # reading stays open
    listing = CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256)
    assert secure(card, host, listing).sw == 0x9000


def test_delete_scp11_and_ca_keys_and_key_sets(pki: Path) -> None:
    card = _card(pki)
    host = open_session(card, "03", 0x33)
    sd = card.state.isd.sd
    assert sd is not None and sd.scp11 is not None
    assert secure(card, host, _delete(0x15, 0x01)) == ResponseApdu(b"\x00")
    assert sd.scp11.key(0x15, 0x01) is None and sd.scp11.key(0x13, 0x01) is not None
    assert secure(card, host, _delete(0x15, 0x01)).sw == 0x6A88  # gone
    assert secure(card, host, _delete(kid=0x10)).sw == 0x9000  # by KID alone: every KVN of the CA
    assert sd.scp11.cas == []
    assert secure(card, host, _delete(kvn=0x01)).sw == 0x9000  # by KVN alone: the SCP11 keys 11 and 13
    assert sd.scp11.keys == [] and [k.kvn for k in sd.keysets] == [0x30]
    # the last key set: refused without P2 b1 (6985), deleted with it, and a YubiKey-style SD gets its default back
    assert secure(card, host, _delete(kvn=0x30)).sw == 0x6985
    assert secure(card, host, _delete(kvn=0x30, p2=0x01)).sw == 0x9000
    assert [k.kvn for k in sd.keysets] == [0xFF]
    assert open_session(card, "03", 0x33, kvn=0xFF).is_open


@pytest.mark.parametrize(
    ("data", "p2", "sw"),
    [
        (b"", 0x00, 0x6A80),  # neither D0 nor D2
        (tlv(0xD0, b"\x13\x01"), 0x00, 0x6A80),  # a KID is one byte
        (tlv(0xD2, b""), 0x00, 0x6A80),
        (tlv(0xD2, b"\x01") + tlv(0xD2, b"\x02"), 0x00, 0x6A80),
        (tlv(0xD2, b"\x01") + tlv(0xC0, b"\x02"), 0x00, 0x6A80),
        (b"\xd2\x05\x01", 0x00, 0x6A80),  # not BER-TLV
        (tlv(0xD0, b"\x17"), 0x00, 0x6A88),  # unknown KID
        (tlv(0xD0, b"\x13") + tlv(0xD2, b"\x09"), 0x00, 0x6A88),
        (tlv(0xD2, b"\x01"), 0x02, 0x6A86),  # P2 RFU bits
    ],
)
def test_delete_key_refusals(pki: Path, data: bytes, p2: int, sw: int) -> None:
    card = _card(pki)
    host = _scp11(card, pki, Scp11Variant.A)
    assert secure(card, host, CommandApdu(0x80, 0xE4, 0x00, p2, data, le=256)).sw == sw


def test_delete_last_key_flag_is_rfu_on_a_gp_style_card(pki: Path) -> None:
    text = (pki / "card.toml").read_text().replace('getdata_style = "yubikey"', 'getdata_style = "gp"')
    card = _card(pki, text)
    host = _scp11(card, pki, Scp11Variant.A)
    assert secure(card, host, _delete(kvn=0x30, p2=0x01)).sw == 0x6A86
    assert secure(card, host, _delete(kvn=0x30)).sw == 0x9000  # SCP11 keys remain: not the last key


def test_ca_identifiers_kloc_and_klcc(pki: Path) -> None:
    card = _card(pki)
    assert send(card, "80CAFF3300").sw == 0x6A88 and send(card, "80CAFF3400").sw == 0x6A88
    host = _scp11(card, pki, Scp11Variant.A)

    def store(role: int, ski: bytes, kid: int, kvn: int) -> int:
        body = tlv(0xA6, tlv(0x80, bytes((role,))) + tlv(0x42, ski) + tlv(0x83, bytes((kid, kvn))))
        return secure(card, host, CommandApdu(0x80, 0xE2, 0x90, 0x00, body)).sw

    assert store(0x00, b"\x01" * 20, 0x10, 0x03) == 0x9000
    assert store(0x01, b"\x02" * 20, 0x13, 0x01) == 0x9000
    assert store(0x01, b"\x02" * 20, 0x10, 0x03) == 0x6A80  # KLCC role for a CA-KLOC key
    assert store(0x00, b"\x02" * 20, 0x13, 0x01) == 0x6A80
    assert store(0x01, b"\x02" * 20, 0x13, 0x07) == 0x6A88
    assert store(0x00, b"", 0x10, 0x03) == 0x6A80
    kloc = secure(card, host, CommandApdu(0x80, 0xCA, 0xFF, 0x33, le=256))
    klcc = secure(card, host, CommandApdu(0x80, 0xCA, 0xFF, 0x34, le=256))
    assert kloc.data == tlv(0x42, b"\x01" * 20) + tlv(0x83, b"\x10\x03")
    assert klcc.data == tlv(0x42, b"\x02" * 20) + tlv(0x83, b"\x13\x01")
    again = CardState.from_json(card.state.to_json())
    assert again.isd.sd is not None and again.isd.sd.scp11 == card.state.isd.sd.scp11  # type: ignore[union-attr]


def _scp11_only(pki: Path) -> str:
    text = (pki / "card.toml").read_text()
    start, end = text.index("[[isd.keysets]]"), text.index("[isd.scp11]")
    return text[:start].replace('scp = "03"', 'scp = "11"').replace('i = "70"', 'i = "00"') + text[end:]


def test_scp11_only_security_domain(pki: Path) -> None:
    card = _card(pki, _with_store(_scp11_only(pki)))
    sd = card.state.isd.sd
    assert sd is not None and sd.scp == 0x11 and sd.keysets == []
    assert send(card, "8050000008" + "00" * 8 + "00").sw == 0x6D00  # no SCP03 initiation
    assert send(card, "8082330010" + "00" * 16).sw == 0x6985  # EXTERNAL AUTHENTICATE without a session
    recognition = send(card, "80CA006600")
    assert recognition.sw == 0x9000 and bytes.fromhex("2A864886FC6B041100") in recognition.data  # SCP11, i 00
    host = _scp11(card, pki, Scp11Variant.A)
    assert secure(card, host, _generate(0x13, 0x02)).sw == 0x9000
    assert secure(card, host, _delete(0x13, 0x01)).sw == 0x9000
    # PUT KEY of an SK.SD.ECKA under S-DEK, and content management, in the SCP11 session
    private = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")
    data = b"\x05" + tlv(0xB1, host.encrypt_key(private)) + P256 + b"\x00"
    assert secure(card, host, CommandApdu(0x80, 0xD8, 0x00, 0x11, data, le=256)) == ResponseApdu(b"\x05")
    # as for key sets (GP 11.8.2.2): P1 = 00 adds a version that must not exist, P1 = KVN replaces one that must
    assert secure(card, host, CommandApdu(0x80, 0xD8, 0x00, 0x11, data, le=256)).sw == 0x6A80
    assert secure(card, host, CommandApdu(0x80, 0xD8, 0x07, 0x11, data, le=256)).sw == 0x6A88
    assert secure(card, host, CommandApdu(0x80, 0xD8, 0x05, 0x11, data, le=256)) == ResponseApdu(b"\x05")
    listing = secure(card, host, CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256))
    assert listing.sw == 0x9000 and STORE_AID in listing.data
    assert secure(card, host, CommandApdu(0x80, 0xE4, 0x00, 0x00, tlv(0x4F, STORE_AID), le=256)).sw == 0x9000
    assert card.state.application(STORE_AID) is None
    # deleting every SCP11 key would leave no way in: refused (P2 b1 allows it on a YubiKey-style card)
    assert secure(card, host, _delete(kvn=0x01)).sw == 0x9000  # 11 and 15; 13/02 and 11/05 remain
    assert secure(card, host, _delete(0x11, 0x05)).sw == 0x9000
    assert secure(card, host, _delete(0x13, 0x02)).sw == 0x6985


def test_scp11_only_profile_errors(pki: Path) -> None:
    text = (pki / "card.toml").read_text().replace('scp = "03"', 'scp = "11"')
    with pytest.raises(ProfileError, match=r"isd\.scp11"):
        load_profile(text, resolve=lambda n: (pki / n).read_bytes())  # key sets beside scp = "11"
    only = _scp11_only(pki)
    start = only.index("[isd.scp11]")
    with pytest.raises(ProfileError, match=r"isd\.scp11"):
        load_profile(only[:start], resolve=lambda n: (pki / n).read_bytes())


_FUZZ_DATA = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"\x02\xf0\x01\x00",
            tlv(0xD0, b"\x13"),
            tlv(0xD2, b"\x01"),
            tlv(0xD0, b"\x10") + tlv(0xD2, b"\x03"),
            tlv(0xA6, tlv(0x80, b"\x01") + tlv(0x42, b"\x01") + tlv(0x83, b"\x13\x01")),
        ]
    ),
)


@pytest.fixture(scope="module")
def session_template(pki: Path) -> tuple[Card, Scp11Host]:
    card = _card(pki)
    card.ctx.tracker.check_enabled = True  # every command ends with the committed state compared to the live one
    return card, _scp11(card, pki, Scp11Variant.A)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ins=st.sampled_from([0xF1, 0xE4, 0xE2, 0xCA, 0xD8]),
    p1=st.sampled_from([0x00, 0x01, 0x02, 0x80, 0x90, 0xFF]) | st.integers(0, 255),
    p2=st.sampled_from([0x00, 0x01, 0x10, 0x13, 0x15, 0x33, 0x34, 0x80]) | st.integers(0, 255),
    data=_FUZZ_DATA,
    wrapped=st.booleans(),
)
def test_key_management_commands_answer_a_status_word(
    session_template: tuple[Card, Scp11Host], ins: int, p1: int, p2: int, data: bytes, wrapped: bool
) -> None:
    card, host = copy.deepcopy(session_template)
    p1 = 0xFF if ins == 0xCA and p2 in (0x33, 0x34) else p1
    command = CommandApdu(0x80, ins, p1, p2, data, le=256)
    response = secure(card, host, command) if wrapped else send(card, command)
    assert response.sw != 0x6F00  # never an unexpected exception
    assert send(card, "80CA006600").sw in (0x9000, 0x6982)  # the card keeps answering
    CardState.from_json(card.state.to_json())


STORE_AID = bytes.fromhex("F06770636800010101")


def _with_store(text: str, level: str = "") -> str:
    params = f'\nparameters = "{level}"' if level else ""
    return text + f'\n[[applications]]\naid = "{STORE_AID.hex().upper()}"\nkind = "secure-store"{params}\n'


@pytest.mark.parametrize("only", [False, True], ids=["beside-scp03", "scp11-only"])
def test_secure_channel_service_runs_scp11_for_an_applet(pki: Path, only: bool) -> None:
    card = _card(pki, _with_store(_scp11_only(pki) if only else (pki / "card.toml").read_text(), "33"))
    select = CommandApdu(0x00, 0xA4, 0x04, 0x00, STORE_AID, le=256)
    assert send(card, select).sw == 0x9000
    sd_key = load_certificate((pki / "sd-11.cert.pem").read_bytes()).public_key()
    from cryptography.hazmat.primitives import serialization

    oce_key = serialization.load_pem_private_key((pki / "oce.key.pem").read_bytes(), None)
    chain = tuple(load_certificate((pki / n).read_bytes()) for n in ("oce-ca.cert.pem", "oce.cert.pem"))
    host = Scp11Host(
        Scp11Variant.A,
        kvn=1,
        now=NOW,
        sd_public_key=sd_key,  # type: ignore[arg-type]  # read from the SD's BF21 before selecting the applet
        oce_key=oce_key,  # type: ignore[arg-type]
        oce_chain=chain,
        oce_ca=(0x10, 0x03),
    )
    host.run(_transmit(card))  # PSO and MUTUAL AUTHENTICATE through the applet's process_security
    put = CommandApdu(0x80, 0xDA, 0x00, 0x00, b"\x01\x4b" + b"value", le=256)
    assert secure(card, host, put).sw == 0x9000
    got = secure(card, host, CommandApdu(0x80, 0xCA, 0x00, 0x00, b"\x4b", le=256))
    assert got == ResponseApdu(b"value")
    # SCP11b: the session opens, but the applet requires AUTHENTICATED, which 11b does not give
    assert send(card, select).sw == 0x9000
    sd_b = load_certificate((pki / "sd-13.cert.pem").read_bytes()).public_key()
    host_b = Scp11Host(Scp11Variant.B, kvn=1, now=NOW, sd_public_key=sd_b)  # type: ignore[arg-type]
    host_b.run(_transmit(card))
    assert secure(card, host_b, CommandApdu(0x80, 0xCA, 0x00, 0x00, b"\x4b", le=256)).sw == 0x6982
    # INITIALIZE UPDATE through the applet: the SD's SCP03, or 6D00 from an SCP11-only SD
    assert send(card, select).sw == 0x9000
    if only:
        assert send(card, CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(8), le=256)).sw == 0x6D00
    else:
        assert send(card, CommandApdu(0x80, 0x50, 0x30, 0x00, bytes(8), le=256)).sw == 0x9000


def test_profile_ca_identifiers(pki: Path) -> None:
    text = (pki / "card.toml").read_text()
    text = text.replace('certificate = "oce-ca.cert.pem"', 'certificate = "oce-ca.cert.pem"\nca_identifier = "0A0B"')
    text = text.replace('"sd-13.cert.pem"]', '"sd-13.cert.pem"]\nca_identifier = "0C0D"')
    card = _card(pki, text)
    assert send(card, "80CAFF3300").data == bytes.fromhex("42020A0B83021003")
    assert send(card, "80CAFF3400").data == bytes.fromhex("42020C0D83021301")
    with pytest.raises(ProfileError, match=r"isd\.scp11\.ca\[0\]\.ca_identifier"):
        load_profile(text.replace('"0A0B"', '"0A0"'), resolve=lambda n: (pki / n).read_bytes())
