"""SCP11a, b and c between our host and our card in memory, and the negatives: another CA, an OCE certificate
not in the allowlist, an expired one, a tampered receipt, a replayed key agreement, a wrong curve, MAC errors."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import AuthenticationError, CardStatusError, ChannelClosedError, IntegrityError
from gpchannel.scp.common import ChannelState, ScpProtocol, SecurityLevel
from gpchannel.scp.registry import PROTOCOLS, Initiation
from gpchannel.scp.scp11 import Scp11Variant
from gpchannel.scp.scp11_card import Scp11CaKey, Scp11Card, Scp11CardConfig, Scp11SdKey
from gpchannel.scp.scp11_cert import concatenate
from gpchannel.scp.scp11_host import Scp11Host
from gpchannel.scp.scp11_pki import Scp11Pki, issue_certificate, make_pki

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def pki() -> Scp11Pki:
    return make_pki(NOW)


def card_config(pki: Scp11Pki, allowlist: frozenset[int] | None = None) -> Scp11CardConfig:
    keys = tuple(Scp11SdKey(kid, 1, pki.sd_keys[kid], pki.sd_chain(kid)) for kid in (0x11, 0x13, 0x15))
    return Scp11CardConfig(keys, (Scp11CaKey(0x10, 3, pki.oce_ca_key.public_key(), allowlist),))


class Wire:
    """The card side of the Security Domain: GET DATA BF21, PSO, key agreement, then an echo application."""

    def __init__(self, card: Scp11Card) -> None:
        self.card = card
        self.log: list[CommandApdu] = []
        self.chained = b""

    def __call__(self, command: CommandApdu) -> ResponseApdu:
        self.log.append(command)
        if command.cla & 0x10:  # ISO/IEC 7816-4 chaining, as the emulator's dispatcher reassembles it
            self.chained += command.data
            return ResponseApdu(b"", 0x9000)
        if self.chained:
            command, self.chained = command.with_changes(data=self.chained + command.data), b""
        try:
            if command.ins == 0xCA and command.cla == 0x80:
                kid = command.data[-2]
                key = self.card.config.key(kid, command.data[-1])
                assert key is not None
                return ResponseApdu(concatenate(key.chain))
            if command.ins == 0x2A:
                return self.card.perform_security_operation(command)
            if command.ins in (0x82, 0x88) and not command.cla & 0x04:
                return self.card.key_agreement(command)
            plain = self.card.unwrap(command)
            return self.card.wrap(ResponseApdu(plain.data[::-1] + b"!", 0x9000))
        except Exception as exc:  # CardError -> status word, as the dispatcher does
            return ResponseApdu(b"", getattr(exc, "sw", 0x6F00))


def host(pki: Scp11Pki, variant: Scp11Variant, **kw: object) -> Scp11Host:
    args: dict[str, object] = {"kvn": 1, "now": NOW, "card_anchor": pki.card_ca_key.public_key(), "oce_ca": (0x10, 3)}
    if variant.oce_authenticated:
        args |= {"oce_key": pki.oce_key, "oce_chain": pki.oce_chain}
    args |= kw
    return Scp11Host(variant, **args)  # type: ignore[arg-type]


def now() -> datetime.datetime:
    return NOW


def test_registry_entry() -> None:
    entry = PROTOCOLS[ScpProtocol.SCP11]
    assert entry.initiation is Initiation.STEPS and entry.name == "SCP11"
    assert entry.host is Scp11Host and entry.card is Scp11Card


@pytest.mark.parametrize("variant", list(Scp11Variant))
def test_session_opens_and_protects(pki: Scp11Pki, variant: Scp11Variant) -> None:
    card = Scp11Card(card_config(pki), now)
    wire = Wire(card)
    h = host(pki, variant)
    h.run(wire)
    assert h.is_open and card.is_open and h.level == SecurityLevel(0x33)
    assert card.variant is variant
    assert (card.oce_serial == pki.oce_cert.serial_number) is variant.oce_authenticated
    for payload in (b"", b"abc", bytes(300)):
        response = h.unwrap(wire(h.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, payload, le=256))))
        assert response.data == payload[::-1] + b"!"
    assert wire.log[-1].cla == 0x84
    sent = [c.ins for c in wire.log]
    assert sent[0] == 0xCA and (0x2A in sent) is variant.oce_authenticated and variant.ins in sent


def test_long_certificate_is_chained(pki: Scp11Pki) -> None:
    h = host(pki, Scp11Variant.A)
    commands = h.certificate_commands(max_data=64)
    assert any(c.cla & 0x10 for c in commands) and not commands[-1].cla & 0x10
    assert [c.p2 for c in commands if not c.cla & 0x10] == [0x90, 0x10]


def test_card_chain_from_another_ca_is_refused(pki: Scp11Pki) -> None:
    other = make_pki(NOW)
    h = host(pki, Scp11Variant.B, card_anchor=other.card_ca_key.public_key())
    with pytest.raises(AuthenticationError, match="certificate chain"):
        h.run(Wire(Scp11Card(card_config(pki), now)))
    assert h.state is ChannelState.TERMINATED


def test_oce_certificate_from_another_ca_is_refused(pki: Scp11Pki) -> None:
    other = make_pki(NOW)
    h = host(pki, Scp11Variant.A, oce_key=other.oce_key, oce_chain=other.oce_chain)
    with pytest.raises(CardStatusError) as info:
        h.run(Wire(Scp11Card(card_config(pki), now)))
    assert info.value.sw == 0x6982


def test_oce_certificate_not_in_the_allowlist_is_refused(pki: Scp11Pki) -> None:
    card = Scp11Card(card_config(pki, allowlist=frozenset({pki.oce_cert.serial_number + 1})), now)
    with pytest.raises(CardStatusError) as info:
        host(pki, Scp11Variant.C).run(Wire(card))
    assert info.value.sw == 0x6982 and not card.is_open
    allowed = Scp11Card(card_config(pki, allowlist=frozenset({pki.oce_cert.serial_number})), now)
    host(pki, Scp11Variant.C).run(Wire(allowed))
    assert allowed.is_open


def test_expired_oce_certificate_is_refused(pki: Scp11Pki) -> None:
    old = issue_certificate(
        "OCE", pki.oce_key.public_key(), "CA-KLOC", pki.oce_ca_key, NOW - datetime.timedelta(days=30), days=10
    )
    h = host(pki, Scp11Variant.A, oce_chain=(pki.oce_ca, old))
    with pytest.raises(CardStatusError) as info:
        h.run(Wire(Scp11Card(card_config(pki), now)))
    assert info.value.sw == 0x6982


def test_mutual_authenticate_without_oce_certificate_is_refused(pki: Scp11Pki) -> None:
    card = Scp11Card(card_config(pki), now)
    h = host(pki, Scp11Variant.A)
    h.receive_certificates(Wire(card)(h.get_certificates()))
    response = Wire(card)(h.key_agreement())
    assert response.sw == 0x6985 and not card.is_open


def tamper(transmit: Callable[[CommandApdu], ResponseApdu]) -> Callable[[CommandApdu], ResponseApdu]:
    def send(command: CommandApdu) -> ResponseApdu:
        response = transmit(command)
        if command.ins in (0x82, 0x88) and response.sw == 0x9000:
            data = bytearray(response.data)
            data[-1] ^= 0x01
            return ResponseApdu(bytes(data), response.sw)
        return response

    return send


def test_tampered_receipt_is_refused(pki: Scp11Pki) -> None:
    h = host(pki, Scp11Variant.B)
    with pytest.raises(AuthenticationError, match="receipt"):
        h.run(tamper(Wire(Scp11Card(card_config(pki), now))))
    assert h.state is ChannelState.TERMINATED


def test_replayed_key_agreement_gives_no_usable_session(pki: Scp11Pki) -> None:
    card = Scp11Card(card_config(pki), now)
    wire = Wire(card)
    h = host(pki, Scp11Variant.A)
    h.run(wire)
    protected = h.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, b"x", le=256))
    assert wire(protected).sw == 0x9000
    # an eavesdropper replays the recorded PSO and key agreement, then the recorded protected command
    replay = [c for c in wire.log if (c.ins in (0x2A, 0x82) and c.cla == 0x80) or c.cla == 0x90]
    answers = [wire(c) for c in replay]
    assert all(a.sw == 0x9000 for a in answers) and card.is_open
    assert wire(protected).sw == 0x6982 and card.state is ChannelState.TERMINATED
    # and a recorded card answer is refused by the host of a new session: the receipt covers its ephemeral key
    old_answer = answers[-1]
    fresh = host(pki, Scp11Variant.A)
    fresh.receive_certificates(wire(fresh.get_certificates()))
    for command in fresh.certificate_commands():
        fresh.receive_ok(wire(command))
    fresh.key_agreement()
    with pytest.raises(AuthenticationError, match="receipt"):
        fresh.receive_key_agreement(old_answer)


def test_wrong_curve_is_refused(pki: Scp11Pki) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    h = host(pki, Scp11Variant.B, sd_public_key=p384.public_key())
    response = Wire(Scp11Card(card_config(pki), now))(h.key_agreement())
    assert response.sw == 0x6A80
    other = make_pki(NOW, ec.SECP384R1())
    h = host(
        pki,
        Scp11Variant.A,
        oce_key=other.oce_key,
        oce_chain=(pki.oce_ca, issue_certificate("OCE", other.oce_key.public_key(), "CA-KLOC", pki.oce_ca_key, NOW)),
    )
    with pytest.raises(CardStatusError) as info:
        h.run(Wire(Scp11Card(card_config(pki), now)))
    assert info.value.sw == 0x6A80


def test_session_ends_on_a_mac_error(pki: Scp11Pki) -> None:
    card = Scp11Card(card_config(pki), now)
    wire = Wire(card)
    h = host(pki, Scp11Variant.B)
    h.run(wire)
    command = h.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, b"abc"))
    bad = command.with_changes(data=command.data[:-1] + bytes([command.data[-1] ^ 1]))
    assert wire(bad).sw == 0x6982 and card.state is ChannelState.TERMINATED
    assert wire(command).sw == 0x6982
    # the host side: a response with a bad R-MAC ends the host's session
    card2 = Scp11Card(card_config(pki), now)
    h2 = host(pki, Scp11Variant.B)
    h2.run(Wire(card2))
    answer = Wire(card2)(h2.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, b"abc")))
    with pytest.raises(IntegrityError):
        h2.unwrap(ResponseApdu(answer.data[:-1] + bytes([answer.data[-1] ^ 1]), answer.sw))
    with pytest.raises(ChannelClosedError):
        h2.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66))
