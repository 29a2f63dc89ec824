"""The protocol registry (gpchannel.scp.registry): the table of the protocols gpchannel implements, and a toy
protocol added through a registry alone, with no change anywhere else, that opens a session in memory.

The toy protocol ("SCP7E") is not cryptography anyone should use: HMAC-SHA256 session keys and 8-byte MACs, key
material XORed. It has what a symmetric protocol needs to plug in: a host class and a card class on the shared
bases (:mod:`gpchannel.scp.symmetric`), an INITIALIZE UPDATE response of its own (28 bytes, its identifier in
byte 11) and its registry entry.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel, cla_with_secure_messaging
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import AuthenticationError, DecodeError, SecurityNotSatisfied, UnsupportedError
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.scp.common import (
    ChannelState,
    HostChannel,
    InitializeUpdateResponse,
    KeyResolver,
    RandomSource,
    ScpProtocol,
    SecurityLevel,
    SteppedHostChannel,
    plain_cla,
)
from gpchannel.scp.loopback import exchange, handshake
from gpchannel.scp.registry import (
    PROTOCOLS,
    ExplicitProtocol,
    Initiation,
    IParamSource,
    ProtocolRegistry,
    SteppedProtocol,
)
from gpchannel.scp.symmetric import SymmetricCardChannel, SymmetricHostChannel
from tests.host.scripted import ChannelCard, fixed_random

TOY = 0x7E
ISD = bytes.fromhex("A000000151000000")
KDD = bytes(range(10))
KEYS = StaticKeys.single(bytes(range(0x40, 0x50)), 0x01, KeyType.AES)
HOST_CHALLENGE = bytes(range(0xA0, 0xA8))
CARD_CHALLENGE = bytes(range(0xB0, 0xB8))


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()[:8]


def _session_key(keys: StaticKeys, host_challenge: bytes, card_challenge: bytes) -> bytes:
    return hmac.new(keys.mac, host_challenge + card_challenge, hashlib.sha256).digest()


def parse_toy(data: bytes) -> InitializeUpdateResponse:
    """key diversification data (10), KVN, 7E, card challenge (8), card cryptogram (8)."""
    if len(data) != 28 or data[11] != TOY:
        raise DecodeError(f"not a toy INITIALIZE UPDATE response ({len(data)} bytes)")
    return InitializeUpdateResponse(bytes(data[:10]), data[10], TOY, None, bytes(data[12:20]), bytes(data[20:28]))


class ToyHost(SymmetricHostChannel):
    protocol = TOY
    parse_initialize_update = staticmethod(parse_toy)

    def __init__(
        self,
        keys: StaticKeys | KeyResolver,
        *,
        level: SecurityLevel,
        host_challenge: bytes,
        i_param: int | None = None,
        kvn: int = 0,
        aid: bytes = b"",
        channel: int = 0,
    ) -> None:
        super().__init__(keys, level=level, host_challenge=host_challenge, kvn=kvn, aid=aid, channel=channel)
        self._session = b""
        self._counter = 0
        self._card_challenge = b""

    def _authenticate_card(self, parsed: InitializeUpdateResponse) -> None:
        keys = self._resolve_keys(parsed)
        session = _session_key(keys, self.host_challenge, parsed.card_challenge)
        self._verify_card_cryptogram(_mac(session, b"card", self.host_challenge, parsed.card_challenge), parsed, keys)
        self._session, self._card_challenge = session, parsed.card_challenge

    def external_authenticate(self) -> CommandApdu:
        self._require(ChannelState.CARD_AUTHENTICATED)
        cryptogram = _mac(self._session, b"host", self.host_challenge, self._card_challenge)
        cla = cla_for_channel(0x84, self.channel)
        mac = _mac(self._session, bytes((0x82, self.level)), cryptogram)
        self.state = ChannelState.EXTERNAL_AUTHENTICATE_SENT
        return CommandApdu(cla, 0x82, self.level, 0x00, cryptogram + mac)

    def wrap(self, command: CommandApdu) -> CommandApdu:
        self._require(ChannelState.OPEN)
        self._check_plain_command(command)
        self._counter += 1
        mac = _mac(self._session, self._counter.to_bytes(4, "big"), command.header()[1:4], command.data)
        return command.with_changes(cla=cla_with_secure_messaging(command.cla), data=command.data + mac)

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        self._require(ChannelState.OPEN)
        return response

    def encrypt_key(self, key: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in key)


class ToyCard(SymmetricCardChannel[bytes]):
    protocol = TOY

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i_param: int,
        key_diversification_data: bytes,
        sequence_counter: int,
        random: RandomSource,
        aid: bytes,
        channel: int = 0,
    ) -> None:
        super().__init__(
            keys,
            i_param=i_param,
            key_diversification_data=key_diversification_data,
            sequence_counter=sequence_counter,
            random=random,
            aid=aid,
            channel=channel,
        )
        self._counter = 0

    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        self._restart()
        self._check_initialize_update(command, 8)
        challenge = self._random_challenge(8)
        session = _session_key(self._keys, command.data, challenge)
        head = self._initialized(session, command.data, challenge)
        return ResponseApdu(head + challenge + _mac(session, b"card", command.data, challenge))

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        session = self._check_external_authenticate(command, 16)
        cryptogram, mac = command.data[:8], command.data[8:]
        expected = _mac(session, b"host", self._host_challenge, self._card_challenge)
        self._verify_host(_mac(session, bytes((0x82, command.p1)), cryptogram), mac, expected, cryptogram)
        self._counter = 0
        return self._open(SecurityLevel(command.p1))

    def unwrap(self, command: CommandApdu) -> CommandApdu:
        self._require(ChannelState.OPEN)
        session = self._keys_or_fail()
        data, mac = command.data[:-8], command.data[-8:]
        self._counter += 1
        if not hmac.compare_digest(_mac(session, self._counter.to_bytes(4, "big"), command.header()[1:4], data), mac):
            self._fail(SecurityNotSatisfied("the toy MAC did not verify"))
        return command.with_changes(cla=plain_cla(command.cla), data=data)

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        self._require(ChannelState.OPEN)
        return response

    def decrypt_key(self, data: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in data)


TOY_ENTRY = ExplicitProtocol(TOY, ToyHost, ToyCard, parse=ToyHost.parse_initialize_update)


def _toy_card(registry: ProtocolRegistry, keys: StaticKeys = KEYS) -> ChannelCard:
    """The card side, built through the registry as the emulator's Security Domain builds it."""
    entry = registry.explicit(TOY)
    assert entry is not None
    card = entry.card(
        keys, i_param=0, key_diversification_data=KDD, sequence_counter=0, random=fixed_random(CARD_CHALLENGE), aid=ISD
    )
    return ChannelCard(card)


# -- the toy protocol, through a registry of its own --------------------------------------------------------------
def test_a_toy_protocol_registered_alone_opens_a_detected_session_in_memory() -> None:
    registry = ProtocolRegistry([*PROTOCOLS])
    registry.register(TOY_ENTRY)
    card = _toy_card(registry)
    session = CardSession(card, random=fixed_random(HOST_CHALLENGE), protocols=registry)
    parsed = session.open_secure_channel(ChannelOptions(KEYS, SecurityLevel.C_MAC), aid=ISD)
    assert (parsed.protocol, parsed.kvn, parsed.card_challenge) == (TOY, 0x01, CARD_CHALLENGE)
    assert isinstance(session.secure, ToyHost) and session.secure.is_open
    assert card.channel.is_open and card.channel.level == SecurityLevel.C_MAC
    command = CommandApdu(0x80, 0xE2, 0x90, 0x00, b"hello", le=256)
    assert session.transmit(command) == ResponseApdu(b"olleh", 0x9000)
    assert session.transmit(command) == ResponseApdu(b"olleh", 0x9000)  # the counters move together
    assert card.seen == [command, command]


def test_a_toy_protocol_opens_when_asked_for_by_its_identifier() -> None:
    registry = ProtocolRegistry([TOY_ENTRY])
    card = _toy_card(registry)
    session = CardSession(card, random=fixed_random(HOST_CHALLENGE), protocols=registry)
    session.open_channel(ChannelOptions(KEYS, SecurityLevel.C_MAC, scp=TOY), aid=ISD)
    assert session.secure is not None and session.secure.is_open


def test_the_toy_card_cryptogram_is_checked_before_external_authenticate() -> None:
    registry = ProtocolRegistry([TOY_ENTRY])
    card = _toy_card(registry)
    session = CardSession(card, random=fixed_random(HOST_CHALLENGE), protocols=registry)
    wrong = StaticKeys.single(bytes(16), 0x01, KeyType.AES)
    with pytest.raises(AuthenticationError, match="card cryptogram did not verify"):
        session.open_secure_channel(ChannelOptions(wrong, SecurityLevel.C_MAC))
    assert card.channel.state is ChannelState.INITIALIZED  # no EXTERNAL AUTHENTICATE reached the card
    assert session.secure is None


def test_a_registry_without_the_toy_protocol_does_not_know_it() -> None:
    card = _toy_card(ProtocolRegistry([TOY_ENTRY]))
    session = CardSession(card, random=fixed_random(HOST_CHALLENGE))
    with pytest.raises(DecodeError, match="unknown secure channel protocol identifier 7E"):
        session.open_secure_channel(ChannelOptions(KEYS, SecurityLevel.C_MAC))
    with pytest.raises(UnsupportedError, match="does not implement SCP7E"):
        CardSession(card, random=fixed_random(HOST_CHALLENGE)).open_secure_channel(
            ChannelOptions(KEYS, SecurityLevel.C_MAC, scp=TOY)
        )
    assert TOY not in PROTOCOLS


def test_the_toy_protocol_in_the_loopback() -> None:
    host = ToyHost(KEYS, level=SecurityLevel.C_MAC, host_challenge=HOST_CHALLENGE)
    card = _toy_card(ProtocolRegistry([TOY_ENTRY])).channel
    handshake(host, card)
    done = exchange(host, card, CommandApdu(0x80, 0xCA, 0x00, 0x66, b"\x01"), lambda c: ResponseApdu(c.data, 0x9000))
    assert done.card_command == CommandApdu(0x80, 0xCA, 0x00, 0x66, b"\x01")
    assert done.response == ResponseApdu(b"\x01", 0x9000)


# -- the table ------------------------------------------------------------------------------------------------------
def test_the_table_of_gpchannel_protocols() -> None:
    kinds = {entry.protocol: entry.initiation for entry in PROTOCOLS}
    assert kinds == {
        ScpProtocol.SCP01: Initiation.EXPLICIT,
        ScpProtocol.SCP02: Initiation.EXPLICIT,
        ScpProtocol.SCP03: Initiation.EXPLICIT,
        ScpProtocol.SCP10: Initiation.STEPS,
        ScpProtocol.SCP11: Initiation.STEPS,
    }
    for entry in PROTOCOLS:
        host, card = entry.host, entry.card
        assert isinstance(host, type) and isinstance(card, type)
        assert issubclass(host, HostChannel)
        assert host.protocol == card.protocol == entry.protocol
        assert entry.name == ScpProtocol(entry.protocol).name
    scp10 = PROTOCOLS[ScpProtocol.SCP10]
    assert isinstance(scp10, SteppedProtocol) and issubclass(scp10.host, SteppedHostChannel)
    assert PROTOCOLS.by_initiation() == {
        Initiation.EXPLICIT: ("SCP01", "SCP02", "SCP03"),
        Initiation.STEPS: ("SCP10", "SCP11"),
    }


@pytest.mark.parametrize(
    ("protocol", "given", "card_i", "hint", "expected"),
    [
        (ScpProtocol.SCP01, None, None, 0x15, None),  # the host class's default
        (ScpProtocol.SCP01, 0x05, None, None, 0x05),
        (ScpProtocol.SCP02, None, None, 0x55, 0x55),  # card recognition data
        (ScpProtocol.SCP02, None, None, None, 0x15),  # GP 2.2.1 E.1.1 default
        (ScpProtocol.SCP02, 0x1A, None, 0x55, 0x1A),
        (ScpProtocol.SCP03, None, 0x70, 0x00, 0x70),  # the INITIALIZE UPDATE response
    ],
)
def test_where_the_host_takes_i_from(
    protocol: ScpProtocol, given: int | None, card_i: int | None, hint: int | None, expected: int | None
) -> None:
    entry = PROTOCOLS.explicit(protocol)
    assert entry is not None
    assert entry.host_i_param(given, card_i, hint) == expected
    assert {e.protocol: e.i_source for e in PROTOCOLS if isinstance(e, ExplicitProtocol)}[protocol] is entry.i_source
    assert entry.i_source is not IParamSource.HOST_DEFAULT or protocol is ScpProtocol.SCP01


def test_registering_twice_or_out_of_range_is_refused() -> None:
    registry = ProtocolRegistry([TOY_ENTRY])
    with pytest.raises(ValueError, match="SCP7E is registered already"):
        registry.register(TOY_ENTRY)
    with pytest.raises(ValueError, match="an SCP identifier is a byte"):
        registry.register(ExplicitProtocol(0x100, ToyHost, ToyCard))
    assert registry.get(0x01) is None and registry.initiation(0x01) is None and registry.explicit(0x10) is None
    with pytest.raises(UnsupportedError, match="gpchannel does not implement SCP01"):
        registry[0x01]


def test_the_registry_parses_by_byte_11() -> None:
    registry = ProtocolRegistry([*PROTOCOLS, TOY_ENTRY])
    raw = KDD + bytes((0x01, TOY)) + CARD_CHALLENGE + bytes(8)
    assert registry.parse_initialize_update(raw).protocol == TOY
    with pytest.raises(DecodeError, match="expected at least 28"):
        registry.parse_initialize_update(raw[:11])
    scp01 = KDD + bytes((0x01, 0x01)) + CARD_CHALLENGE + bytes(8)
    assert registry.parse_initialize_update(scp01) == InitializeUpdateResponse.from_bytes(scp01)
