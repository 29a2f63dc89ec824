"""SCP10 host and card in memory: round trips in both modes at every level, and the failures of Appendix F."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from dataclasses import replace
from functools import cache

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import AuthenticationError, CardStatusError, ChannelClosedError, IntegrityError
from gpchannel.scp.common import ChannelState, SecurityLevel
from gpchannel.scp.scp10 import Crt, Scp10Option, chain_command
from gpchannel.scp.scp10_card import Scp10Card, Scp10CardConfig, Scp10Phase
from gpchannel.scp.scp10_cert import TestPki, make_test_pki
from gpchannel.scp.scp10_host import Scp10Host

TODAY = datetime.date(2026, 11, 26)
LEVELS = [a | b | c | d for a in (0, 1) for b in (0, 2) for c in (0, 0x10) for d in (0, 0x20)]


class Drbg:
    """A deterministic random source (SHA-256 in counter mode) so that every run is the same."""

    def __init__(self, seed: bytes) -> None:
        self.seed, self.n = seed, 0

    def __call__(self, k: int) -> bytes:
        out = b""
        while len(out) < k:
            self.n += 1
            out += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
        return out[:k]


@cache
def pki(seed: bytes = b"pki", bits: int = 1024, self_descriptive: bool = True, recovery: bool = False) -> TestPki:
    return make_test_pki(Drbg(seed), TODAY, bits=bits, self_descriptive=self_descriptive, recovery=recovery)


def make_card(p: TestPki, now: datetime.date = TODAY, **changes: object) -> Scp10Card:
    config = Scp10CardConfig(p.card, p.card_certificate.to_bytes(), p.card_certificate.body.subject, p.tp_ex.public)
    config = replace(config, **changes)  # type: ignore[arg-type]
    return Scp10Card(config, Drbg(b"card"), lambda: now)


def make_host(p: TestPki, option: Scp10Option, level: int, **kw: object) -> Scp10Host:
    kw.setdefault("trust_point", p.tp_in.public)
    return Scp10Host(
        option,
        level,
        p.oce,
        [c.to_bytes() for c in p.oce_chain],
        p.oce_chain[-1].body.subject,
        Drbg(b"host"),
        TODAY,
        self_descriptive=p.card_certificate.self_descriptive,
        **kw,  # type: ignore[arg-type]
    )


def echo(command: CommandApdu) -> ResponseApdu:
    return ResponseApdu(command.data[::-1] + bytes((command.ins,)), 0x9000)


def roundtrip(host: Scp10Host, card: Scp10Card, app: Callable[[CommandApdu], ResponseApdu] = echo) -> None:
    for data, le in ((b"", None), (b"\x01\x02\x03", None), (b"", 256), (bytes(range(40)), 256), (b"k" * 200, 256)):
        command = CommandApdu(host._cla(0x80), 0xE2, 0x00, 0x00, data, le)
        wire = host.wrap(command)
        answer = host.unwrap(card.process(wire, app))
        assert answer == echo(command)


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: f"{v:02X}")
@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_roundtrip_every_level(option: Scp10Option, level: int) -> None:
    p = pki()
    host, card = make_host(p, option, level), make_card(p)
    host.run(card.process)
    assert host.state is ChannelState.OPEN and card.state is ChannelState.OPEN
    assert int(card.level) == level
    roundtrip(host, card)


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
@pytest.mark.parametrize(("self_descriptive", "recovery"), [(True, False), (False, False), (True, True), (False, True)])
def test_roundtrip_every_certificate_form(option: Scp10Option, self_descriptive: bool, recovery: bool) -> None:
    p = pki(b"forms", 1024, self_descriptive, recovery)
    host, card = make_host(p, option, 0x33), make_card(p, self_descriptive=self_descriptive)
    host.run(card.process)
    roundtrip(host, card)


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_2048_bit_keys_chain_certificates_and_signatures(option: Scp10Option) -> None:
    p = pki(b"big", 2048)
    host, card = make_host(p, option, 0x13, channel=5), make_card(p)
    sent: list[CommandApdu] = []

    def transmit(command: CommandApdu) -> ResponseApdu:
        sent.append(command)
        return card.process(command)

    host.run(transmit)
    assert any(c.cla & 0x10 for c in sent)  # certificates and the 256-byte signature were chained
    assert all(c.channel == 5 for c in sent)
    roundtrip(host, card)


def test_key_transport_without_internal_authenticate() -> None:
    p = pki()
    host, card = make_host(p, Scp10Option.KEY_TRANSPORT, 0x11, mutual=False), make_card(p)
    assert host.manage_security_environment().p1 == 0x81
    host.run(card.process)
    roundtrip(host, card)
    # INTERNAL AUTHENTICATE is no longer accepted once secure messaging has started
    late = card.process(CommandApdu(0x00, 0x88, 0, 0, bytes(24), 256))
    assert late.sw == 0x6982


def test_prevalidated_off_card_key_skips_certificates() -> None:
    """The "null condition" of F.1.2: MSE P2 'A4' names a key the card validated before."""
    p = pki()
    oce_id = p.oce_chain[-1].body.subject
    card = make_card(p, validated_keys={oce_id: p.oce.public})
    host = Scp10Host(Scp10Option.KEY_AGREEMENT, 0x03, p.oce, [], oce_id, Drbg(b"h"), TODAY, trust_point=p.tp_in.public)
    assert host.manage_security_environment().p2 == 0xA4
    host.run(card.process)
    roundtrip(host, card)


def test_sensitive_data_both_ways() -> None:
    p = pki()
    for option in Scp10Option:
        host, card = make_host(p, option, 0x03), make_card(p)
        host.run(card.process)
        secret = bytes(range(16))
        assert card.decrypt_key(host.encrypt_key(secret)) == secret
        assert host.decrypt_sensitive(card.encrypt_sensitive(secret)) == secret
        assert host.encrypt_key(secret) != secret


def test_get_data_certificate_forms() -> None:
    p = pki()
    other = p.oce_chain[0].to_bytes()
    card = make_card(p, certificates={0x0102: other}, ef_od=b"\x30\x00")
    cert = p.card_certificate.to_bytes()
    assert card.process(CommandApdu(0x80, 0xCA, 0x7F, 0x21, le=256)) == ResponseApdu(cert, 0x9000)
    iso = card.process(CommandApdu(0x00, 0xCA, 0x7F, 0x21, le=256))
    assert iso.sw == 0x9000 and cert.endswith(iso.data) and len(iso.data) < len(cert)
    assert card.process(CommandApdu(0x80, 0xCA, 0x50, 0x31, b"\x5c\x00", 256)).data == b"\x30\x00"
    assert card.process(CommandApdu(0x80, 0xCA, 0x01, 0x02, b"\x5c\x00", 256)).data == other
    assert card.process(CommandApdu(0x80, 0xCA, 0x01, 0x03, b"\x5c\x00", 256)).sw == 0x6A88
    assert card.process(CommandApdu(0x80, 0xCA, 0x50, 0x31, b"\x5c\x01\x00", 256)).sw == 0x6A80


# -- negative tests ------------------------------------------------------------------------------------------------
def run_until_failure(host: Scp10Host, card: Scp10Card) -> CardStatusError:
    with pytest.raises(CardStatusError) as info:
        host.run(card.process)
    assert host.state is ChannelState.TERMINATED
    return info.value


def assert_card_closed(card: Scp10Card) -> None:
    """No session: a protected command is refused with a security error (F.1.6)."""
    assert card.state is not ChannelState.OPEN
    assert card.process(CommandApdu(0x84, 0xE2, 0, 0, bytes(10))).sw == 0x6982


def test_certificate_from_another_ca() -> None:
    p, stranger = pki(), pki(b"another CA")
    host = make_host(stranger, Scp10Option.KEY_TRANSPORT, 0x01, sd_public_key=p.card.public)
    error = run_until_failure(host, make_card(p))
    assert error.sw == 0x6300


@pytest.mark.parametrize("days", [-1, 366, 1000])
def test_certificate_outside_its_validity(days: int) -> None:
    p = pki()
    card = make_card(p, now=TODAY + datetime.timedelta(days=days))
    assert run_until_failure(make_host(p, Scp10Option.KEY_AGREEMENT, 0x01), card).sw == 0x6300
    assert_card_closed(card)


@pytest.mark.parametrize("cut", [1, 20, 100])
def test_malformed_certificate(cut: int) -> None:
    p = pki()
    card = make_card(p)
    raw = p.oce_chain[0].to_bytes()
    assert card.process(make_host(p, Scp10Option.KEY_TRANSPORT, 1).manage_security_environment()).sw == 0x9000
    assert card.process(CommandApdu(0x00, 0x2A, 0x00, 0xBE, raw[:-cut])).sw == 0x6A80
    assert card.phase is Scp10Phase.IDLE


def test_wrong_certificate_signature() -> None:
    p = pki()
    card = make_card(p)
    raw = bytearray(p.oce_chain[0].to_bytes())
    raw[-5] ^= 0x01
    card.process(make_host(p, Scp10Option.KEY_TRANSPORT, 1).manage_security_environment())
    assert card.process(CommandApdu(0x00, 0x2A, 0x00, 0xBE, bytes(raw))).sw == 0x6300


def test_card_certificate_from_another_ca_is_refused_by_the_host() -> None:
    p, stranger = pki(), pki(b"another CA")
    host = make_host(p, Scp10Option.KEY_TRANSPORT, 0x01, trust_point=stranger.tp_in.public)
    with pytest.raises(AuthenticationError):
        host.run(make_card(p).process)
    assert host.state is ChannelState.TERMINATED


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_wrong_off_card_signature(option: Scp10Option) -> None:
    p = pki()
    card, host = make_card(p), make_host(p, option, 0x01)

    def tamper(command: CommandApdu) -> ResponseApdu:
        if command.ins == 0x82:
            data = bytearray(command.data)
            data[7] ^= 0x40
            command = command.with_changes(data=bytes(data))
        return card.process(command)

    with pytest.raises(CardStatusError) as info:
        host.run(tamper)
    assert info.value.sw == 0x6300
    assert_card_closed(card)


def test_tampered_session_key_cryptogram() -> None:
    p = pki()
    card, host = make_card(p), make_host(p, Scp10Option.KEY_TRANSPORT, 0x03)

    def tamper(command: CommandApdu) -> ResponseApdu:
        if (command.ins, command.p1) == (0x2A, 0x80):
            command = command.with_changes(data=bytes((command.data[0] ^ 1,)) + command.data[1:])
        return card.process(command)

    with pytest.raises(CardStatusError) as info:
        host.run(tamper)
    assert info.value.sw == 0x6A80


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_replayed_challenge(option: Scp10Option) -> None:
    """An EXTERNAL AUTHENTICATE recorded in one session is refused in the next (fresh challenge)."""
    p = pki()
    card = make_card(p)
    recorded: list[CommandApdu] = []

    def record(command: CommandApdu) -> ResponseApdu:
        recorded.append(command)
        return card.process(command)

    make_host(p, option, 0x01, mutual=option is Scp10Option.KEY_AGREEMENT).run(record)
    for command in recorded[1:]:  # after GET DATA: that one would have to be protected in the open session
        answer = card.process(command)
        if command.ins == 0x82:
            assert answer.sw == 0x6300
            break
        assert answer.sw == 0x9000
    assert_card_closed(card)
    # and the same challenge cannot serve twice, nor can EXTERNAL AUTHENTICATE come without one
    ext = next(c for c in recorded if c.ins == 0x82)
    assert card.process(ext).sw == 0x6985


def test_tampered_command_mac_aborts_the_session() -> None:
    p = pki()
    host, card = make_host(p, Scp10Option.KEY_AGREEMENT, 0x11), make_card(p)
    host.run(card.process)
    wire = host.wrap(CommandApdu(0x80, 0xE2, 0, 0, b"data"))
    bad = wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))
    assert card.process(bad, echo).sw == 0x6982
    assert card.state is ChannelState.TERMINATED
    # the next, correctly protected command is refused too: the session was aborted (F.1.6)
    assert card.process(host.wrap(CommandApdu(0x80, 0xE2, 0, 0, b"data")), echo).sw == 0x6982


def test_unprotected_command_below_the_level() -> None:
    p = pki()
    host, card = make_host(p, Scp10Option.KEY_TRANSPORT, 0x01, mutual=False), make_card(p)
    host.run(card.process)
    assert card.process(CommandApdu(0x80, 0xE2, 0, 0, b"data"), echo).sw == 0x6982


def test_tampered_response_mac() -> None:
    p = pki()
    host, card = make_host(p, Scp10Option.KEY_TRANSPORT, 0x10), make_card(p)
    host.run(card.process)
    answer = card.process(host.wrap(CommandApdu(0x80, 0xE2, 0, 0, b"data", 256)), echo)
    with pytest.raises(IntegrityError):
        host.unwrap(ResponseApdu(answer.data[:-1] + bytes((answer.data[-1] ^ 1,)), answer.sw))
    with pytest.raises(ChannelClosedError):
        host.wrap(CommandApdu(0x80, 0xE2, 0, 0))


@pytest.mark.parametrize("option", list(Scp10Option), ids=lambda o: o.name)
def test_tampered_card_signature(option: Scp10Option) -> None:
    p = pki()
    card, host = make_card(p), make_host(p, option, 0x01)

    def tamper(command: CommandApdu) -> ResponseApdu:
        answer = card.process(command)
        if command.ins == 0x88:
            answer = ResponseApdu(bytes((answer.data[0] ^ 1,)) + answer.data[1:], answer.sw)
        return answer

    with pytest.raises(AuthenticationError):
        host.run(tamper)
    assert host.state is ChannelState.TERMINATED


def test_internal_authenticate_with_another_id() -> None:
    p = pki()
    card, host = make_card(p), make_host(p, Scp10Option.KEY_AGREEMENT, 0x01)
    host.oce_id = b"SOMEONE!"
    with pytest.raises(CardStatusError) as info:
        host.run(card.process)
    assert info.value.sw == 0x6A80
    assert_card_closed(card)


def test_manage_security_environment_errors() -> None:
    p = pki()
    card = make_card(p, options=frozenset({Scp10Option.KEY_TRANSPORT}))
    assert card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("80021001"))).sw == 0x9484
    assert card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("80020302"))).sw == 0x9484
    assert card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("800210028302AABB"))).sw == 0x6A88
    assert card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("800210028401FF"))).sw == 0x6A88
    assert card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("80021002"))).sw == 0x9000


def test_out_of_sequence_commands() -> None:
    p = pki()
    card = make_card(p)
    assert card.process(CommandApdu(0x00, 0x84, 0, 0, le=256)).sw == 0x6985  # no MSE / PSO before
    assert card.process(CommandApdu(0x00, 0x82, 0, 0, bytes(128))).sw == 0x6985  # no GET CHALLENGE
    card = make_card(p)
    card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("80021001")))
    card.process(CommandApdu(0x00, 0x84, 0, 0, le=256))
    assert card.process(CommandApdu(0x00, 0x82, 0, 0, bytes(128))).sw == 0x6982  # no validated PK.OCE.AUT


def test_broken_command_chain() -> None:
    p = pki()
    card = make_card(p)
    card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("80021002")))
    first, *_ = chain_command(CommandApdu(0x00, 0x2A, 0x00, 0xBE, p.oce_chain[0].to_bytes()), 100)
    assert card.process(first).sw == 0x9000
    assert card.process(CommandApdu(0x00, 0x84, 0, 0, le=256)).sw == 0x6883


def test_host_refuses_unusable_settings() -> None:
    p = pki()
    with pytest.raises(ValueError, match="mutual"):
        make_host(p, Scp10Option.KEY_AGREEMENT, 0x01, mutual=False)
    with pytest.raises(ValueError, match="level"):
        make_host(p, Scp10Option.KEY_TRANSPORT, 0x04)


def test_keys_stay_out_of_reprs() -> None:
    p = pki()
    host, card = make_host(p, Scp10Option.KEY_TRANSPORT, 0x33), make_card(p)
    host.run(card.process)
    assert host.sm is not None and card.sm is not None
    text = repr(host.sm) + repr(card.sm) + repr(card.config) + repr(p)
    for key in host.sm.keys.keys.values():
        assert key.value.hex() not in text.lower()
    assert str(p.card._d) not in repr(p.card) and "_d=" not in repr(p.card)


def test_current_security_level_indicators() -> None:
    """F.1.5.2 and 10.4.2: AUTHENTICATED for the SD's provider, ANY_AUTHENTICATED for another subject."""
    p = pki()
    oce_id = p.oce_chain[-1].body.subject
    for provider, indicator in ((None, 0x80), (oce_id, 0x80), (b"PROVIDER", 0x40)):
        card = make_card(p, provider_id=provider)
        assert card.current_security_level == 0
        make_host(p, Scp10Option.KEY_TRANSPORT, 0x13).run(card.process)
        assert card.current_security_level == 0x13 | indicator
        assert card.authenticated_subject == oce_id
        card.terminate()
        assert card.current_security_level == 0


def test_missing_session_key_is_a_security_error_on_the_card() -> None:
    """F.1.6: a command needing a key that was not established is rejected and the session aborted."""
    p = pki()
    with pytest.raises(ValueError, match="c-enc"):
        make_host(p, Scp10Option.KEY_TRANSPORT, 0x03, crts=(Crt(0xB4, 0x30),))
    host, card = make_host(p, Scp10Option.KEY_TRANSPORT, 0x01, crts=(Crt(0xB4, 0x30),)), make_card(p)
    host.run(card.process)
    roundtrip(host, card)
    card.level = SecurityLevel(0x03)
    assert card.sm is not None
    card.sm.level = 0x03
    assert card.process(host.wrap(CommandApdu(0x80, 0xE2, 0, 0, b"data")), echo).sw == 0x6982
    assert card.state is ChannelState.TERMINATED


def test_protected_manage_security_environment_restarts_initiation() -> None:
    p = pki()
    host, card = make_host(p, Scp10Option.KEY_TRANSPORT, 0x01), make_card(p)
    host.run(card.process)
    mse = make_host(p, Scp10Option.KEY_AGREEMENT, 0x01).manage_security_environment()
    assert card.process(host.wrap(mse)) == ResponseApdu(b"", 0x9000)
    assert card.state is ChannelState.INITIALIZED and card.option is Scp10Option.KEY_AGREEMENT


def test_overlong_chain_is_refused() -> None:
    p = pki()
    card = make_card(p)
    card.process(CommandApdu(0x00, 0x22, 0xC1, 0xB6, bytes.fromhex("80021002")))
    segment = CommandApdu(0x10, 0x2A, 0x00, 0xBE, bytes(255))
    answers = [card.process(segment).sw for _ in range(17)]
    assert answers[:16] == [0x9000] * 16 and answers[16] == 0x6700
