"""What SCP01, SCP02 and SCP03 share (gpchannel.scp.symmetric), checked the same way for the three protocols.

These tests pin the common contract of the host and card classes (the checks of INITIALIZE UPDATE and EXTERNAL
AUTHENTICATE, their status words and messages, termination, the constructor arguments), so that a protocol that
stops using the shared code, or a change to it, shows up here. The cryptography of each protocol is checked
against external vectors in test_scp01.py, test_scp02.py and test_scp03.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    ChannelClosedError,
    InsNotSupported,
    LocalProtocolError,
    ReferencedDataNotFound,
    RemoteProtocolError,
    SecurityNotSatisfied,
    WrongLength,
)
from gpchannel.scp.common import CardChannel, ChannelState, InitializeUpdateResponse, SecurityLevel
from gpchannel.scp.scp01_card import Scp01Card
from gpchannel.scp.scp01_host import Scp01Host
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host
from gpchannel.scp.symmetric import SymmetricHostChannel

AID = bytes.fromhex("A000000151000000")
KDD = bytes.fromhex("00112233445566778899")
KVN = 0x30
HOST_CHALLENGE = bytes.fromhex("0102030405060708")


@dataclass(frozen=True)
class Protocol:
    name: str
    number: int
    key_type: KeyType
    i_param: int
    host_class: Callable[..., SymmetricHostChannel]
    card_class: Callable[..., CardChannel]
    checks_aid: bool

    def keys(self, seed: int = 0x40) -> StaticKeys:
        return StaticKeys.single(bytes(range(seed, seed + 16)), kvn=KVN, key_type=self.key_type)

    def host(self, keys: StaticKeys | None = None, **kwargs: object) -> SymmetricHostChannel:
        args: dict[str, object] = {"level": SecurityLevel.C_MAC, "host_challenge": HOST_CHALLENGE}
        args.update(kwargs)
        return self.host_class(keys or self.keys(), **args)

    def card(self, keys: StaticKeys | None = None) -> CardChannel:
        return self.card_class(
            keys or self.keys(),
            i_param=self.i_param,
            key_diversification_data=KDD,
            sequence_counter=7,
            random=lambda n: bytes(range(0xA0, 0xA0 + n)),
            aid=AID,
        )


PROTOCOLS = [
    Protocol("SCP01", 0x01, KeyType.DES3, 0x05, Scp01Host, Scp01Card, checks_aid=False),
    Protocol("SCP02", 0x02, KeyType.DES3, 0x15, Scp02Host, Scp02Card, checks_aid=True),
    Protocol("SCP03", 0x03, KeyType.AES, 0x00, Scp03Host, Scp03Card, checks_aid=True),
]
pytestmark = pytest.mark.parametrize("p", PROTOCOLS, ids=[p.name for p in PROTOCOLS])


def _host_for(p: Protocol, keys: StaticKeys | None = None, /, **kwargs: object) -> SymmetricHostChannel:
    if p.number == 0x02:
        kwargs.setdefault("i_param", p.i_param)
    return p.host(keys, **kwargs)


def _opened(p: Protocol) -> tuple[SymmetricHostChannel, CardChannel]:
    host, card = _host_for(p), p.card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    card.external_authenticate(host.external_authenticate())
    host.receive_external_authenticate(ResponseApdu())
    return host, card


# -- host ------------------------------------------------------------------------------------------------------


def test_host_initialize_update_command(p: Protocol) -> None:
    command = _host_for(p, kvn=KVN, channel=2).initialize_update()
    assert (command.cla, command.ins, command.p1, command.p2, command.data) == (0x82, 0x50, KVN, 0x00, HOST_CHALLENGE)


def test_host_refused_initialize_update_terminates(p: Protocol) -> None:
    host = _host_for(p)
    host.initialize_update()
    with pytest.raises(CardStatusError, match=r"INITIALIZE UPDATE refused \(card locked\?\)") as info:
        host.receive_initialize_update(ResponseApdu(b"", 0x6983))
    assert info.value.sw == 0x6983
    assert host.state is ChannelState.TERMINATED
    with pytest.raises(ChannelClosedError):
        host.initialize_update()


def test_host_refuses_another_protocol(p: Protocol) -> None:
    other = next(q for q in PROTOCOLS if q is not p)
    answer = other.card().initialize_update(_host_for(other).initialize_update())
    host = _host_for(p)
    with pytest.raises(RemoteProtocolError, match=f"the card answered with {other.name}, expected {p.name}"):
        host.receive_initialize_update(answer)
    assert host.state is ChannelState.TERMINATED


def test_host_refuses_another_kvn(p: Protocol) -> None:
    host = _host_for(p, kvn=KVN + 1)
    answer = p.card().initialize_update(CommandApdu(0x80, 0x50, 0x00, 0x00, HOST_CHALLENGE, le=256))
    with pytest.raises(RemoteProtocolError, match=f"KVN {KVN:02X}, expected {KVN + 1:02X}"):
        host.receive_initialize_update(answer)
    assert host.state is ChannelState.TERMINATED


def test_host_wrong_keys_message_names_what_was_tried_not_the_keys(p: Protocol) -> None:
    wrong = p.keys(seed=0x60)
    host = _host_for(p, wrong)
    answer = p.card().initialize_update(host.initialize_update())
    with pytest.raises(AuthenticationError) as info:
        host.receive_initialize_update(answer)
    message = str(info.value)
    kcvs = "/".join(k.hex().upper() for k in wrong.kcvs())
    assert "the card cryptogram did not verify" in message
    assert f"key diversification data {KDD.hex().upper()}, KVN {KVN:02X}, KCVs ENC/MAC/DEK tried {kcvs}" in message
    assert wrong.enc.hex().upper() not in message.upper()
    assert host.state is ChannelState.TERMINATED


def test_host_key_resolver_sees_the_parsed_response(p: Protocol) -> None:
    seen: list[InitializeUpdateResponse] = []

    def resolver(parsed: InitializeUpdateResponse) -> StaticKeys:
        seen.append(parsed)
        return p.keys()

    extra: dict[str, object] = {"i_param": p.i_param} if p.number == 0x02 else {}
    host = p.host_class(resolver, level=SecurityLevel.C_MAC, host_challenge=HOST_CHALLENGE, **extra)
    card = p.card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    assert host.state is ChannelState.CARD_AUTHENTICATED
    assert [(r.key_diversification_data, r.kvn, int(r.protocol)) for r in seen] == [(KDD, KVN, p.number)]


def test_host_external_authenticate_response(p: Protocol) -> None:
    for response, error in ((ResponseApdu(b"", 0x6300), CardStatusError), (ResponseApdu(b"\x00"), RemoteProtocolError)):
        host, card = _host_for(p), p.card()
        host.receive_initialize_update(card.initialize_update(host.initialize_update()))
        host.external_authenticate()
        with pytest.raises(error, match="EXTERNAL AUTHENTICATE"):
            host.receive_external_authenticate(response)
        assert host.state is ChannelState.TERMINATED


def test_host_wrap_refuses_other_channel_and_secure_messaging(p: Protocol) -> None:
    host, _ = _opened(p)
    assert host.is_open
    with pytest.raises(LocalProtocolError, match="logical channel 1; the session is on 0"):
        host.wrap(CommandApdu(0x81, 0xCA, 0x00, 0x66, le=256))
    with pytest.raises(LocalProtocolError, match="CLA 84 already indicates secure messaging"):
        host.wrap(CommandApdu(0x84, 0xCA, 0x00, 0x66, le=256))
    assert host.is_open  # refused before any state changes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kvn": 0x100}, "kvn must be a byte"), ({"channel": 20}, "logical channel must be 0..19")],
)
def test_host_constructor_checks(p: Protocol, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _host_for(p, **kwargs)


def test_host_aid_length(p: Protocol) -> None:
    if p.checks_aid:
        with pytest.raises(ValueError, match="the AID must be 5 to 16 bytes, got 3"):
            _host_for(p, aid=b"\xa0\x00\x00")
    else:  # SCP01 does not use the AID and takes it as given
        assert _host_for(p, aid=b"\xa0\x00\x00").aid == b"\xa0\x00\x00"


# -- card ------------------------------------------------------------------------------------------------------


def test_card_repr_and_counter(p: Protocol) -> None:
    card = p.card()
    assert repr(card) == f"Scp{p.number:02X}Card(state=idle, i={p.i_param:02X}, level=00)"
    assert card.sequence_counter == 7
    with pytest.raises(ValueError, match="key diversification data is 10 bytes, got 9"):
        p.card_class(
            p.keys(), i_param=p.i_param, key_diversification_data=KDD[:9], sequence_counter=0, random=bytes, aid=AID
        )
    with pytest.raises(ValueError, match=r"logical channel must be 0\.\.19, got 20"):
        p.card_class(
            p.keys(),
            i_param=p.i_param,
            key_diversification_data=KDD,
            sequence_counter=0,
            random=bytes,
            aid=AID,
            channel=20,
        )


@pytest.mark.parametrize(
    ("command", "error", "sw"),
    [
        (CommandApdu(0x80, 0x52, 0x00, 0x00, HOST_CHALLENGE, le=256), InsNotSupported, 0x6D00),
        (CommandApdu(0x80, 0x50, KVN + 1, 0x00, HOST_CHALLENGE, le=256), ReferencedDataNotFound, 0x6A88),
        (CommandApdu(0x80, 0x50, 0x00, 0x00, HOST_CHALLENGE[:7], le=256), WrongLength, 0x6700),
    ],
    ids=["ins", "kvn", "challenge-length"],
)
def test_card_initialize_update_checks_terminate(
    p: Protocol, command: CommandApdu, error: type[Exception], sw: int
) -> None:
    card = p.card()
    with pytest.raises(error) as info:
        card.initialize_update(command)
    assert getattr(info.value, "sw", None) == sw
    assert card.state is ChannelState.TERMINATED
    with pytest.raises(SecurityNotSatisfied, match="the secure channel was terminated"):
        card.initialize_update(CommandApdu(0x80, 0x50, 0x00, 0x00, HOST_CHALLENGE, le=256))


def test_card_initialize_update_answer(p: Protocol) -> None:
    card = p.card()
    answer = card.initialize_update(CommandApdu(0x80, 0x50, KVN, 0x00, HOST_CHALLENGE, le=256))
    parsed = InitializeUpdateResponse.from_bytes(answer.data)
    assert (parsed.key_diversification_data, parsed.kvn, int(parsed.protocol)) == (KDD, KVN, p.number)
    assert card.state is ChannelState.INITIALIZED


def test_card_short_random_source_is_a_programming_error(p: Protocol) -> None:
    n = 6 if p.number == 0x02 else 8  # the card challenge: 6 bytes in SCP02 (E.5.1), 8 in SCP01 and SCP03 (S8)
    card = p.card_class(
        p.keys(),
        i_param=p.i_param,
        key_diversification_data=KDD,
        sequence_counter=0,
        random=lambda k: bytes(k - 1),
        aid=AID,
    )
    with pytest.raises(ValueError, match=f"the random source returned {n - 1} bytes, expected {n}"):
        card.initialize_update(CommandApdu(0x80, 0x50, 0x00, 0x00, HOST_CHALLENGE, le=256))


def test_card_external_authenticate_needs_ins_and_c_mac(p: Protocol) -> None:
    host, card = _host_for(p), p.card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    command = host.external_authenticate()
    with pytest.raises(SecurityNotSatisfied, match=r"must be C-MACed \(CLA 84..87\)") as info:
        card.external_authenticate(CommandApdu(0x80, command.ins, command.p1, command.p2, command.data))
    assert info.value.sw == 0x6982
    assert card.state is ChannelState.TERMINATED

    host, card = _host_for(p), p.card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    command = host.external_authenticate()
    with pytest.raises(InsNotSupported, match="expected EXTERNAL AUTHENTICATE"):
        card.external_authenticate(CommandApdu(command.cla, 0x84, command.p1, command.p2, command.data))
    assert card.state is ChannelState.TERMINATED


def test_card_external_authenticate_bad_mac_is_6982(p: Protocol) -> None:
    host, card = _host_for(p), p.card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    command = host.external_authenticate()
    tampered = command.data[:-1] + bytes((command.data[-1] ^ 1,))
    with pytest.raises(SecurityNotSatisfied, match="the C-MAC of EXTERNAL AUTHENTICATE did not verify") as info:
        card.external_authenticate(CommandApdu(command.cla, command.ins, command.p1, command.p2, tampered))
    assert info.value.sw == 0x6982
    assert card.state is ChannelState.TERMINATED


def test_card_opens_at_the_level_asked(p: Protocol) -> None:
    host, card = _opened(p)
    assert card.is_open and card.level == SecurityLevel.C_MAC
    assert host.is_open
