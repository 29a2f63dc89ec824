"""SCP03 host and card paired in memory: round trips over every (i, level, key length), and negative cases.

The external vectors are in test_scp03.py; these tests check that the two sides agree on everything the vectors
do not cover (S16, channels, every level and key length, extended length) and that every failure terminates.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    AuthenticationError,
    CardError,
    CardStatusError,
    ChannelClosedError,
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectP1P2,
    IntegrityError,
    LocalProtocolError,
    ReferencedDataNotFound,
    RemoteProtocolError,
    SecurityNotSatisfied,
    UnsupportedError,
    WrongLength,
)
from gpchannel.scp.common import ChannelState, InitializeUpdateResponse, SecurityLevel
from gpchannel.scp.scp03 import allowed_levels, command_mac_input, compute_cmac, is_success_sw
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host

AID = bytes.fromhex("A000000151000000")
KDD = bytes.fromhex("00010203040506070809")
I_VALUES = [base | s16 for base in (0x00, 0x10, 0x20, 0x30, 0x60, 0x70) for s16 in (0x00, 0x01)]
KEY_LENGTHS = (16, 24, 32)
LEVEL_33 = SecurityLevel(0x33)


def make_keys(length: int = 16, kvn: int = 0x30) -> StaticKeys:
    return StaticKeys(bytes(range(length)), bytes(range(16, 16 + length)), bytes(range(32, 32 + length)), kvn)


def counter_random(n: int) -> bytes:
    return bytes((0xA5 + k) & 0xFF for k in range(n))


def make_card(
    i: int = 0x70, key_length: int = 16, *, channel: int = 0, sequence_counter: int = 0, keys: StaticKeys | None = None
) -> Scp03Card:
    return Scp03Card(
        keys or make_keys(key_length),
        i_param=i,
        key_diversification_data=KDD,
        sequence_counter=sequence_counter,
        random=counter_random,
        aid=AID,
        channel=channel,
    )


def make_host(
    i: int | None = 0x70, level: SecurityLevel = LEVEL_33, key_length: int = 16, *, channel: int = 0, **kw: object
) -> Scp03Host:
    n = 16 if i is not None and i & 1 else 8
    return Scp03Host(
        make_keys(key_length),
        level=level,
        host_challenge=bytes(range(0x40, 0x40 + n)),
        i_param=i,
        channel=channel,
        **kw,  # type: ignore[arg-type]
    )


def wire(command: CommandApdu) -> CommandApdu:
    """Through the bytes, as a reader would carry it."""
    return CommandApdu.from_bytes(command.to_bytes())


def open_pair(
    i: int = 0x70, level: SecurityLevel = LEVEL_33, key_length: int = 16, channel: int = 0
) -> tuple[Scp03Host, Scp03Card]:
    host = make_host(i, level, key_length, channel=channel, aid=AID)
    card = make_card(i, key_length, channel=channel)
    answer = card.initialize_update(wire(host.initialize_update()))
    host.receive_initialize_update(ResponseApdu.from_bytes(answer.to_bytes()))
    host.receive_external_authenticate(card.external_authenticate(wire(host.external_authenticate())))
    assert host.is_open and card.is_open and card.level == level
    return host, card


def exchange(host: Scp03Host, card: Scp03Card, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
    seen = card.unwrap(wire(host.wrap(command)))
    assert seen.to_bytes() == command.to_bytes()
    protected = card.wrap(response)
    return host.unwrap(ResponseApdu.from_bytes(protected.to_bytes()))


# -- round trips ------------------------------------------------------------------------------------------------


@st.composite
def commands(draw: st.DrawFn, channel: int) -> CommandApdu:
    cla = cla_for_channel(draw(st.sampled_from((0x00, 0x80))), channel)
    data = draw(st.binary(max_size=223))  # the most that still fits a short APDU once padded and MACed in S16
    le = draw(st.none() | st.integers(1, 256))
    return CommandApdu(cla, draw(st.integers(0, 255)), draw(st.integers(0, 255)), draw(st.integers(0, 255)), data, le)


@st.composite
def responses(draw: st.DrawFn) -> ResponseApdu:
    sw = draw(st.sampled_from((0x9000, 0x6200, 0x6310, 0x6A82, 0x6982, 0x6D00)))
    data = draw(st.binary(max_size=200)) if is_success_sw(sw) else b""
    return ResponseApdu(data, sw)


@st.composite
def sessions(draw: st.DrawFn, i: int) -> tuple[SecurityLevel, int, list[tuple[CommandApdu, ResponseApdu]]]:
    level = draw(st.sampled_from(sorted(allowed_levels(i))))
    channel = draw(st.integers(0, 19))
    steps = draw(st.lists(st.tuples(commands(channel), responses()), min_size=1, max_size=4))
    return level, channel, steps


@pytest.mark.parametrize("key_length", KEY_LENGTHS)
@pytest.mark.parametrize("i", I_VALUES, ids=lambda i: f"i{i:02X}")
@given(data=st.data())
def test_round_trip(i: int, key_length: int, data: st.DataObject) -> None:
    level, channel, steps = data.draw(sessions(i))
    host, card = open_pair(i, level, key_length, channel)
    for command, response in steps:
        assert exchange(host, card, command, response) == response


@pytest.mark.parametrize("level", sorted(allowed_levels(0x70)), ids=lambda v: f"level{v:02X}")
def test_round_trip_extended_length(level: SecurityLevel) -> None:
    host, card = open_pair(0x70, level)
    command = CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(range(256)) * 4, le=65536, extended=True)
    response = ResponseApdu(b"\x01" * 300)
    assert exchange(host, card, command, response) == response


def test_sessions_differ_per_challenge_and_counter_increments() -> None:
    command = CommandApdu(0x80, 0xCA, 0x00, 0x66, b"\x5c\x00")
    host1, _ = open_pair()
    host2, _ = open_pair()
    first, second = host1.wrap(command), host1.wrap(command)
    assert first.data != second.data  # the encryption counter and the chaining value move
    assert host2.wrap(command) == first  # same keys, challenges and counter: same bytes (deterministic)


def test_level_00_passes_commands_through() -> None:
    host, card = open_pair(0x70, SecurityLevel.NONE)
    command = CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 256)
    assert host.wrap(command) == command
    assert card.unwrap(command) == command
    assert host.unwrap(card.wrap(ResponseApdu(b"\xe3\x00"))) == ResponseApdu(b"\xe3\x00")


def test_key_resolver_gets_the_parsed_response() -> None:
    seen: list[InitializeUpdateResponse] = []

    def resolve(parsed: InitializeUpdateResponse) -> StaticKeys:
        seen.append(parsed)
        return make_keys()

    host = Scp03Host(resolve, level=LEVEL_33, host_challenge=bytes(8))
    card = make_card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    assert [p.key_diversification_data for p in seen] == [KDD]
    assert host.state is ChannelState.CARD_AUTHENTICATED


@pytest.mark.parametrize("length", KEY_LENGTHS)
def test_key_encryption_host_to_card(length: int) -> None:
    host, card = open_pair(0x70, LEVEL_33, length)
    new_key = bytes(range(200, 200 + length))
    cryptogram = host.encrypt_key(new_key)
    assert len(cryptogram) == (32 if length == 24 else length)
    assert card.decrypt_key(cryptogram, length) == new_key


# -- the sequence counter and the card challenge ------------------------------------------------------------------


def test_sequence_counter_increments_before_each_initialize_update() -> None:
    card = make_card(0x70, sequence_counter=0x000041)
    host = make_host(0x70, aid=AID)
    answer = card.initialize_update(host.initialize_update())
    assert card.sequence_counter == 0x42
    assert answer.data[-3:] == b"\x00\x00\x42"
    host.receive_initialize_update(answer)  # the host verifies the pseudo-random challenge over the AID


def test_sequence_counter_exhausted_is_6985() -> None:
    last = make_card(0x70, sequence_counter=0xFFFFFE)
    last.initialize_update(make_host().initialize_update())
    assert last.sequence_counter == 0xFFFFFF
    card = make_card(0x70, sequence_counter=0xFFFFFF)
    with pytest.raises(ConditionsNotSatisfied) as info:
        card.initialize_update(make_host().initialize_update())
    assert info.value.sw == 0x6985
    assert card.sequence_counter == 0xFFFFFF and card.state is ChannelState.TERMINATED


def test_random_challenge_leaves_the_counter_alone() -> None:
    card = make_card(0x60, sequence_counter=7)
    answer = card.initialize_update(make_host(0x60).initialize_update())
    assert card.sequence_counter == 7
    assert len(answer.data) == 29 and answer.data[13:21] == counter_random(8)


def test_host_rejects_a_challenge_that_is_not_the_pseudo_random_one() -> None:
    card = make_card(0x70)
    host = make_host(0x70, aid=bytes.fromhex("A0000000030000"))
    with pytest.raises(AuthenticationError, match="pseudo-random card challenge"):
        host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    assert host.state is ChannelState.TERMINATED


# -- negative cases ---------------------------------------------------------------------------------------------

COMMAND = CommandApdu(0x80, 0xE2, 0x90, 0x00, b"\xbf\x3e\x03\x5c\x01\x5a", 256)


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def _assert_card_terminated(card: Scp03Card, command: CommandApdu) -> None:
    assert card.state is ChannelState.TERMINATED and card.level == SecurityLevel.NONE
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(command)
    with pytest.raises(SecurityNotSatisfied):
        card.wrap(ResponseApdu())


@pytest.mark.parametrize("i", [0x70, 0x71])
@pytest.mark.parametrize("index", [-1, 5], ids=["mac", "ciphertext"])
def test_tampered_command_is_6982_and_terminates(i: int, index: int) -> None:
    host, card = open_pair(i)
    sent = host.wrap(COMMAND)
    tampered = replace(sent, data=_flip(sent.data, index))
    with pytest.raises(SecurityNotSatisfied) as info:
        card.unwrap(tampered)
    assert info.value.sw == 0x6982
    _assert_card_terminated(card, sent)


def test_tampered_header_is_6982() -> None:
    host, card = open_pair()
    sent = host.wrap(COMMAND)
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(replace(sent, p1=0x80))


def test_replayed_command_is_refused() -> None:
    host, card = open_pair()
    sent = host.wrap(COMMAND)
    card.unwrap(sent)
    card.wrap(ResponseApdu())
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(sent)
    _assert_card_terminated(card, sent)


def test_reordered_commands_are_refused() -> None:
    host, card = open_pair()
    first, second = host.wrap(COMMAND), host.wrap(COMMAND)
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(second)
    _assert_card_terminated(card, first)


def test_dropped_command_is_detected() -> None:
    host, card = open_pair(0x70, SecurityLevel(0x01))
    host.wrap(COMMAND)
    second = host.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(second)


def test_command_without_secure_messaging_is_refused_at_c_mac_level() -> None:
    _, card = open_pair(0x70, SecurityLevel(0x01))
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(COMMAND)
    _assert_card_terminated(card, COMMAND)


def test_wrong_card_cryptogram_stops_the_host_before_external_authenticate() -> None:
    host = make_host(aid=AID)
    card = make_card()
    answer = card.initialize_update(host.initialize_update())
    bad = ResponseApdu(_flip(answer.data, 21), answer.sw)  # first card cryptogram byte
    with pytest.raises(AuthenticationError) as info:
        host.receive_initialize_update(bad)
    message = str(info.value)
    assert KDD.hex().upper() in message
    for value in make_keys().kcvs():
        assert value.hex().upper() in message
    for key in (make_keys().enc, make_keys().mac, make_keys().dek):
        assert key.hex() not in message.lower()
    assert host.state is ChannelState.TERMINATED
    with pytest.raises(ChannelClosedError):
        host.external_authenticate()


def test_wrong_host_cryptogram_is_6300() -> None:
    host = make_host()
    card = make_card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    good = host.external_authenticate()
    session = host.session_keys
    assert session is not None
    cryptogram = _flip(good.data[:8], 0)
    full = compute_cmac(session.s_mac, command_mac_input(bytes(16), good, cryptogram, 16, False))
    with pytest.raises(SecurityNotSatisfied) as info:
        card.external_authenticate(replace(good, data=cryptogram + full[:8]))
    assert info.value.sw == 0x6300
    assert card.state is ChannelState.TERMINATED


def test_external_authenticate_with_a_bad_mac_is_6982() -> None:
    host = make_host()
    card = make_card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    good = host.external_authenticate()
    with pytest.raises(SecurityNotSatisfied) as info:
        card.external_authenticate(replace(good, data=_flip(good.data, 15)))
    assert info.value.sw == 0x6982


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"p2": 0x01}, IncorrectP1P2),
        ({"p1": 0x10}, IncorrectP1P2),
        ({"p1": 0x02}, IncorrectP1P2),
        ({"data": bytes(8)}, WrongLength),
        ({"cla": 0x80}, SecurityNotSatisfied),
    ],
)
def test_malformed_external_authenticate(change: dict[str, object], error: type[CardError]) -> None:
    host = make_host()
    card = make_card()
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    with pytest.raises(error):
        card.external_authenticate(replace(host.external_authenticate(), **change))  # type: ignore[arg-type]
    assert card.state is ChannelState.TERMINATED


def test_card_refuses_a_level_its_i_does_not_support() -> None:
    host = make_host(None, SecurityLevel(0x01))  # host unaware of i
    card = make_card(0x10)  # no R-MAC support
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    ea = host.external_authenticate()
    with pytest.raises(IncorrectP1P2):
        card.external_authenticate(replace(ea, p1=0x11))


def test_host_refuses_a_level_the_card_does_not_support() -> None:
    with pytest.raises(UnsupportedError):
        make_host(0x20, LEVEL_33)
    host = make_host(None, LEVEL_33)
    card = make_card(0x30)
    with pytest.raises(UnsupportedError):
        host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    assert host.state is ChannelState.TERMINATED


def test_wrong_kvn() -> None:
    card = make_card()
    with pytest.raises(ReferencedDataNotFound) as info:
        card.initialize_update(make_host(kvn=0x31).initialize_update())
    assert info.value.sw == 0x6A88
    host = make_host(kvn=0x31)
    answer = make_card().initialize_update(make_host().initialize_update())
    with pytest.raises(RemoteProtocolError, match="KVN"):
        host.receive_initialize_update(answer)
    assert host.state is ChannelState.TERMINATED


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (CommandApdu(0x80, 0x50, 0x00, 0x01, bytes(8), 256), IncorrectP1P2),
        (CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(7), 256), WrongLength),
        (CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(16), 256), WrongLength),
    ],
)
def test_malformed_initialize_update(command: CommandApdu, error: type[CardError]) -> None:
    card = make_card()
    with pytest.raises(error):
        card.initialize_update(command)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (ResponseApdu(b"", 0x6A88), CardStatusError),
        (ResponseApdu(bytes(10) + b"\x30\x03\x70" + bytes(10)), DecodeError),
        (ResponseApdu(bytes(10) + b"\x30\x02" + bytes(16)), RemoteProtocolError),
        (ResponseApdu(bytes(10) + b"\x30\x03\x71" + bytes(35)), RemoteProtocolError),  # S16 vs an 8-byte challenge
        (ResponseApdu(bytes(10) + b"\x30\x03\x50" + bytes(19)), RemoteProtocolError),  # i=50 is RFU
    ],
)
def test_host_refuses_bad_initialize_update_responses(response: ResponseApdu, error: type[Exception]) -> None:
    host = make_host(None)
    with pytest.raises(error):
        host.receive_initialize_update(response)
    assert host.state is ChannelState.TERMINATED


def test_too_long_once_wrapped_leaves_the_channel_usable() -> None:
    host, card = open_pair()
    with pytest.raises(LocalProtocolError):
        host.wrap(CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(240)))
    assert host.is_open
    assert exchange(host, card, COMMAND, ResponseApdu(b"ok")) == ResponseApdu(b"ok")


@pytest.mark.parametrize("i", [0x70, 0x71])
def test_largest_short_command_fits(i: int) -> None:
    host, card = open_pair(i)
    command = CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(223 if i & 1 else 239), le=256)
    assert exchange(host, card, command, ResponseApdu()) == ResponseApdu()
    with pytest.raises(LocalProtocolError):
        host.wrap(replace(command, data=command.data + b"\x00"))


@pytest.mark.parametrize(
    "command",
    [CommandApdu(0x84, 0xCA, 0x00, 0x66), CommandApdu(0x8C, 0xCA, 0x00, 0x66), CommandApdu(0xE0, 0xCA, 0x00, 0x66)],
    ids=["sm-first", "iso-sm-first", "sm-further"],
)
def test_host_refuses_commands_already_in_secure_messaging(command: CommandApdu) -> None:
    host, _ = open_pair(channel=command.channel)
    with pytest.raises(LocalProtocolError):
        host.wrap(command)
    assert host.is_open


def test_host_refuses_a_command_for_another_channel() -> None:
    host, _ = open_pair(channel=1)
    with pytest.raises(LocalProtocolError):
        host.wrap(COMMAND)
    assert host.is_open


def test_card_refuses_a_response_too_long_once_protected() -> None:
    host, card = open_pair()
    card.unwrap(host.wrap(COMMAND))
    with pytest.raises(WrongLength):
        card.wrap(ResponseApdu(bytes(240)))  # 256 once padded, + the R-MAC
    assert card.is_open
    assert host.unwrap(card.wrap(ResponseApdu(bytes(239)))) == ResponseApdu(bytes(239))


def test_tampered_r_mac_terminates_the_host() -> None:
    host, card = open_pair(0x70, SecurityLevel(0x11))
    card.unwrap(host.wrap(COMMAND))
    protected = card.wrap(ResponseApdu(b"\x01\x02\x03"))
    with pytest.raises(IntegrityError):
        host.unwrap(replace(protected, data=_flip(protected.data, -1)))
    assert host.state is ChannelState.TERMINATED
    with pytest.raises(ChannelClosedError):
        host.wrap(COMMAND)


def test_tampered_status_word_fails_the_r_mac() -> None:
    host, card = open_pair(0x70, SecurityLevel(0x11))
    card.unwrap(host.wrap(COMMAND))
    protected = card.wrap(ResponseApdu(b"\x01", 0x9000))
    with pytest.raises(IntegrityError):
        host.unwrap(replace(protected, sw=0x6310))


def test_error_status_words_carry_no_r_mac() -> None:
    host, card = open_pair()
    card.unwrap(host.wrap(COMMAND))
    assert card.wrap(ResponseApdu(b"\x01\x02", 0x6A82)) == ResponseApdu(b"", 0x6A82)
    assert host.unwrap(ResponseApdu(b"", 0x6A82)) == ResponseApdu(b"", 0x6A82)
    with pytest.raises(IntegrityError):
        host.unwrap(ResponseApdu(b"\x01\x02", 0x6A82))


def test_use_after_close() -> None:
    host, card = open_pair()
    host.close()
    for call in (lambda: host.wrap(COMMAND), lambda: host.unwrap(ResponseApdu()), lambda: host.encrypt_key(bytes(16))):
        with pytest.raises(ChannelClosedError):
            call()
    card.terminate()
    _assert_card_terminated(card, COMMAND)
    with pytest.raises(SecurityNotSatisfied):
        card.initialize_update(make_host().initialize_update())


def test_out_of_order_calls() -> None:
    host = make_host()
    with pytest.raises(LocalProtocolError):
        host.external_authenticate()
    with pytest.raises(LocalProtocolError):
        host.wrap(COMMAND)
    card = make_card()
    with pytest.raises(SecurityNotSatisfied):
        card.external_authenticate(CommandApdu(0x84, 0x82, 0x33, 0x00, bytes(16)))


def test_keys_stay_out_of_reprs() -> None:
    host, card = open_pair()
    keys = make_keys()
    session = host.session_keys
    assert session is not None
    text = repr(host) + repr(card) + repr(session) + repr(keys)
    for secret in (keys.enc, keys.mac, keys.dek, session.s_enc, session.s_mac, session.s_rmac):
        assert secret.hex() not in text.lower() and repr(secret) not in text


@given(st.binary(min_size=4, max_size=300))
def test_card_unwrap_of_arbitrary_bytes_returns_or_raises_card_errors(raw: bytes) -> None:
    try:
        command = CommandApdu.from_bytes(raw)
    except DecodeError:
        return
    _, card = open_pair(0x70, SecurityLevel(0x03))
    try:
        card.unwrap(command)
    except SecurityNotSatisfied:
        assert card.state is ChannelState.TERMINATED


@given(st.binary(max_size=60), st.sampled_from((0x9000, 0x6A88)))
def test_host_initialize_update_of_arbitrary_bytes_raises_only_typed_errors(data: bytes, sw: int) -> None:
    host = make_host(None, SecurityLevel(0x03))
    try:
        host.receive_initialize_update(ResponseApdu(data, sw))
    except (DecodeError, RemoteProtocolError, AuthenticationError, UnsupportedError, CardStatusError):
        assert host.state is ChannelState.TERMINATED


@given(st.binary(max_size=80), st.sampled_from((0x9000, 0x6310, 0x6A82)))
def test_host_unwrap_of_arbitrary_bytes_returns_or_raises_integrity_error(data: bytes, sw: int) -> None:
    host, card = open_pair()
    card.unwrap(host.wrap(COMMAND))
    try:
        host.unwrap(ResponseApdu(data, sw))
    except IntegrityError:
        assert host.state is ChannelState.TERMINATED
