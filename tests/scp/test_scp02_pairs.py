"""SCP02 host and card paired in memory: round trips over every i and level, and negative cases.

The external and self-made vectors are in test_scp02.py; these tests check that the two sides agree on everything
the vectors do not enumerate (every i, level, logical channel, case 1-4 APDU, R-MAC session variant) and that
every failure terminates.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import (
    AuthenticationError,
    CardError,
    ChannelClosedError,
    ConditionsNotSatisfied,
    GPChannelError,
    IncorrectData,
    IncorrectP1P2,
    InsNotSupported,
    IntegrityError,
    LocalProtocolError,
    ReferencedDataNotFound,
    RemoteProtocolError,
    SecurityNotSatisfied,
    UnsupportedError,
    WrongLength,
)
from gpchannel.scp.common import ChannelState, SecurityLevel
from gpchannel.scp.scp02 import (
    I_PARAMS,
    LEVELS,
    MAX_SEQUENCE_COUNTER,
    CommandMacChain,
    ResponseMacChain,
    command_mac_input,
    encrypt_command_data,
    is_explicit,
)
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host

AID = bytes.fromhex("A000000151000000")
KDD = bytes.fromhex("00010203040506070809")
EXPLICIT_I = sorted(i for i in I_PARAMS if is_explicit(i))
IMPLICIT_I = sorted(i for i in I_PARAMS if not is_explicit(i))
SUCCESS_SW = (0x9000, 0x6310, 0x6283, 0x6100)
ERROR_SW = (0x6A88, 0x6985, 0x6A80)


def make_keys(kvn: int = 0x30) -> StaticKeys:
    return StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), kvn, KeyType.DES3)


def counter_random(n: int) -> bytes:
    return bytes((0xA5 + k) & 0xFF for k in range(n))


def make_card(i: int = 0x55, *, channel: int = 0, sequence_counter: int = 5, aid: bytes = AID) -> Scp02Card:
    return Scp02Card(
        make_keys(),
        i_param=i,
        key_diversification_data=KDD,
        sequence_counter=sequence_counter,
        random=counter_random,
        aid=aid,
        channel=channel,
    )


def make_host(i: int = 0x55, level: int = 0x01, *, channel: int = 0, kvn: int = 0, aid: bytes = AID) -> Scp02Host:
    return Scp02Host(
        make_keys(), level=SecurityLevel(level), host_challenge=bytes(range(8)), i_param=i, kvn=kvn, aid=aid,
        channel=channel,
    )  # fmt: skip


def open_pair(i: int = 0x55, level: int = 0x01, *, channel: int = 0) -> tuple[Scp02Host, Scp02Card]:
    host, card = make_host(i, level, channel=channel), make_card(i, channel=channel)
    if is_explicit(i):
        host.receive_initialize_update(card.initialize_update(host.initialize_update()))
        host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    else:
        host.begin_implicit(card.sequence_counter)
    assert host.is_open
    return host, card


def exchange(host: Scp02Host, card: Scp02Card, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
    wire = host.wrap(command)
    assert card.unwrap(wire) == command
    return host.unwrap(card.wrap(response))


def expected_plain(response: ResponseApdu) -> ResponseApdu:
    return response if response.sw in SUCCESS_SW else ResponseApdu(b"", response.sw)


@st.composite
def commands(draw: st.DrawFn, channel: int) -> CommandApdu:
    base = draw(st.sampled_from((0x00, 0x80) if channel > 3 else (0x00, 0x80, 0x10, 0x90)))
    data = draw(st.binary(max_size=230))
    le = draw(st.none() | st.integers(1, 256))
    return CommandApdu(
        cla_for_channel(base, channel), draw(st.integers(0, 255)), draw(st.integers(0, 255)),
        draw(st.integers(0, 255)), data, le,
    )  # fmt: skip


@st.composite
def responses(draw: st.DrawFn) -> ResponseApdu:
    sw = draw(st.sampled_from(SUCCESS_SW + ERROR_SW))
    data = draw(st.binary(max_size=200)) if sw in SUCCESS_SW else b""
    return ResponseApdu(data, sw)


# -- round trips -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", sorted(LEVELS))
@pytest.mark.parametrize("i", EXPLICIT_I)
@settings(max_examples=8)
@given(data=st.data())
def test_round_trip_explicit(i: int, level: int, data: st.DataObject) -> None:
    channel = data.draw(st.integers(0, 19))
    host, card = open_pair(i, level, channel=channel)
    assert card.level == level and card.sequence_counter == 6 and host.sequence_counter == 6
    for _ in range(data.draw(st.integers(1, 3))):
        command, response = data.draw(commands(channel)), data.draw(responses())
        assert exchange(host, card, command, response) == expected_plain(response)


@pytest.mark.parametrize("every_response", [True, False])
@pytest.mark.parametrize("i", [*IMPLICIT_I, 0x15, 0x55])
@settings(max_examples=8)
@given(data=st.data())
def test_round_trip_with_rmac_session(i: int, every_response: bool, data: st.DataObject) -> None:
    channel = data.draw(st.integers(0, 19))
    host, card = open_pair(i, 0x01, channel=channel)
    assert exchange(host, card, data.draw(commands(channel)), ResponseApdu()) == ResponseApdu()
    assert card.sequence_counter == 6 and host.sequence_counter == 6
    begin = host.begin_rmac_session(data.draw(st.binary(max_size=24)), every_response=every_response)
    assert host.unwrap(card.wrap(card.begin_rmac_session(card.unwrap(begin)))) == ResponseApdu()
    assert (SecurityLevel.R_MAC in card.level) is every_response
    for _ in range(data.draw(st.integers(1, 3))):
        command, response = data.draw(commands(channel)), data.draw(responses())
        assert card.unwrap(host.wrap(command)) == command
        wire_response = card.wrap(response)
        if every_response and response.sw in SUCCESS_SW:
            assert len(wire_response.data) == len(response.data) + 8
        assert host.unwrap(wire_response) == expected_plain(response)
    end = data.draw(st.booleans())
    returned = card.wrap(card.end_rmac_session(card.unwrap(host.end_rmac_session(end=end))))
    assert len(returned.data) == 8
    assert host.unwrap(returned) == returned
    assert (SecurityLevel.R_MAC in card.level) is (every_response and not end)
    assert exchange(host, card, data.draw(commands(channel)), ResponseApdu(b"\x01")) == ResponseApdu(b"\x01")


def test_implicit_session_reopens_after_a_plain_command() -> None:
    """E.1.6: a command without secure messaging leaves AUTHENTICATED only; the next C-MAC opens a new session."""
    host, card = open_pair(0x1A)
    assert exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66, le=256), ResponseApdu()) == ResponseApdu()
    plain = CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256)
    assert card.unwrap(plain) == plain and card.wrap(ResponseApdu()) == ResponseApdu()
    assert card.level == SecurityLevel.NONE and card.is_open
    again = make_host(0x1A)
    again.begin_implicit(card.sequence_counter)
    assert card.sequence_counter == 6
    assert exchange(again, card, CommandApdu(0x80, 0xF2, 0x80, 0, b"\x4f\x00"), ResponseApdu()) == ResponseApdu()
    assert card.sequence_counter == 7 and int(card.level) == SecurityLevel.C_MAC


def test_card_accepts_an_encrypted_padding_block_for_empty_data() -> None:
    """GPShell encrypts a lone 80 00.. block for a command without data at level 03; GPPro sends none."""
    host, card = open_pair(0x15, 0x03)
    keys = host.session_keys
    assert keys is not None
    plain = CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256)
    wire = host.wrap(plain)
    assert len(wire.data) == 8
    padded = wire.with_changes(data=encrypt_command_data(keys.enc, b"") + wire.data)
    assert card.unwrap(padded) == plain


def test_host_accepts_an_rmac_on_an_error_status() -> None:
    """An error status with its R-MAC (as GlobalPlatformPro expects cards to send) verifies and chains."""
    host, card = make_host(0x55, 0x11), make_card(0x55)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    ea = host.external_authenticate()
    host.receive_external_authenticate(card.external_authenticate(ea))
    keys = host.session_keys
    assert keys is not None
    command, error = CommandApdu(0x80, 0xE4, 0x00, 0x80, b"\x4f\x00"), ResponseApdu(b"", 0x6A88)
    card.unwrap(host.wrap(command))
    assert card.wrap(error) == error  # our card sends none
    rmac = ResponseMacChain(keys.r_mac, ea.data[8:]).compute(command, error)  # first R-MAC ICV: the EA C-MAC
    assert host.unwrap(ResponseApdu(rmac, 0x6A88)) == error
    assert exchange(host, card, command, ResponseApdu(b"\x01")) == ResponseApdu(b"\x01")
    card.unwrap(host.wrap(command))
    card.wrap(error)
    with pytest.raises(IntegrityError):
        host.unwrap(ResponseApdu(bytes(8), 0x6A88))


def test_implicit_card_passes_plain_commands_before_a_session() -> None:
    card = make_card(0x1A)
    plain = CommandApdu(0x00, 0xA4, 0x04, 0x00, AID, le=256)
    assert card.unwrap(plain) == plain
    assert card.wrap(ResponseApdu(b"\x6f\x00")) == ResponseApdu(b"\x6f\x00")
    assert card.state is ChannelState.IDLE and card.sequence_counter == 5


def test_pseudo_random_challenge_is_checked_by_the_host() -> None:
    card = make_card(0x55, aid=bytes.fromhex("A0000000030000"))
    host = make_host(0x55)
    with pytest.raises(AuthenticationError, match="pseudo-random card challenge"):
        host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    assert host.state is ChannelState.TERMINATED


def test_defaulted_i_does_not_check_the_challenge() -> None:
    """The default i (55) is an assumption: a card with a random challenge (i=15) still opens."""
    card = make_card(0x15)
    host = Scp02Host(make_keys(), level=SecurityLevel.C_MAC, host_challenge=bytes(8), aid=AID)
    assert host.i_param == 0x55
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    host.receive_external_authenticate(card.external_authenticate(host.external_authenticate()))
    assert exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66, le=256), ResponseApdu()) == ResponseApdu()


def test_reprs_hide_keys() -> None:
    host, card = open_pair(0x55, 0x13)
    keys = host.session_keys
    assert keys is not None
    for text in (repr(host), repr(card), repr(keys), repr(make_keys())):
        for secret in (keys.c_mac, keys.enc, keys.dek, keys.r_mac, make_keys().enc):
            assert secret.hex() not in text.lower()


# -- negative cases ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("i", [0x15, 0x55])
def test_tampered_mac_terminates(i: int) -> None:
    host, card = open_pair(i)
    wire = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256))
    bad = wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))
    counter = card.sequence_counter
    with pytest.raises(SecurityNotSatisfied, match="C-MAC"):
        card.unwrap(bad)
    assert card.state is ChannelState.TERMINATED and card.level == SecurityLevel.NONE
    assert card.sequence_counter == counter
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(wire)


@pytest.mark.parametrize("i", IMPLICIT_I)
def test_implicit_security_error_aborts_and_a_new_session_can_start(i: int) -> None:
    """E.1.6, implicit initiation: a security error aborts the session (level NO_SECURITY_LEVEL), it does not
    terminate it for good: plain commands pass unchecked and the next C-MACed command attempts a new session."""
    host, card = open_pair(i)
    wire = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256))
    bad = wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))
    with pytest.raises(SecurityNotSatisfied, match="C-MAC"):
        card.unwrap(bad)
    assert card.state is ChannelState.IDLE and card.level == SecurityLevel.NONE and card.sequence_counter == 5
    plain = CommandApdu(0x00, 0xA4, 0x04, 0x00, AID, le=256)
    assert card.unwrap(plain) == plain and card.wrap(ResponseApdu()) == ResponseApdu()
    # The genuine first command was never accepted: it opens the session now, and the counter moves once.
    assert card.unwrap(wire) == CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256)
    assert card.is_open and int(card.level) == SecurityLevel.C_MAC and card.sequence_counter == 6
    card.wrap(ResponseApdu())
    assert exchange(host, card, CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256), ResponseApdu()) == ResponseApdu()
    # A failure later in the session aborts too; a new host session then opens with the incremented counter.
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(CommandApdu(0x84, 0xCA, 0x00, 0x66, bytes(8)))
    assert card.state is ChannelState.IDLE and card.sequence_counter == 6
    again = make_host(i)
    again.begin_implicit(card.sequence_counter)
    assert exchange(again, card, CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256), ResponseApdu()) == ResponseApdu()
    assert card.is_open and card.sequence_counter == 7


def test_tampered_ciphertext_terminates() -> None:
    host, card = open_pair(0x55, 0x03)
    wire = host.wrap(CommandApdu(0x80, 0xE2, 0x00, 0x00, bytes(20)))
    bad = wire.with_changes(data=bytes((wire.data[0] ^ 0x80,)) + wire.data[1:])
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(bad)
    assert card.state is ChannelState.TERMINATED


@pytest.mark.parametrize("i", [0x55, 0x1A, 0x0B])
@pytest.mark.parametrize("size", [8, 264, 300])
def test_extended_command_is_a_security_error(i: int, size: int) -> None:
    """A C-MACed extended-length command cannot be verified (one-byte Lc, E.4.4): 6982 and TERMINATED, never a
    ValueError out of the MAC input (which once escaped for more than 247 data bytes)."""
    _, card = open_pair(i, 0x01)
    with pytest.raises(SecurityNotSatisfied, match="short APDUs"):
        card.unwrap(CommandApdu(0x84, 0xCA, 0x00, 0x66, bytes(size), extended=True))
    assert card.state is (ChannelState.TERMINATED if is_explicit(i) else ChannelState.IDLE)


@pytest.mark.parametrize("order", ["replay", "reorder", "drop"])
def test_replayed_reordered_dropped_commands_are_refused(order: str) -> None:
    host, card = open_pair(0x15, 0x01)
    first = host.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    host.unwrap(ResponseApdu())
    second = host.wrap(CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256))
    if order == "replay":
        card.unwrap(first)
        card.wrap(ResponseApdu())
        sequence = [first]
    else:
        sequence = [second, first] if order == "reorder" else [second]
    with pytest.raises(SecurityNotSatisfied):
        for wire in sequence:
            card.unwrap(wire)
    assert card.state is ChannelState.TERMINATED


def test_command_without_cmac_at_cmac_level_terminates() -> None:
    _, card = open_pair(0x55, 0x01)
    with pytest.raises(SecurityNotSatisfied, match="requires a C-MAC"):
        card.unwrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    assert card.state is ChannelState.TERMINATED


def test_wrong_card_cryptogram_means_no_external_authenticate() -> None:
    host, card = make_host(0x15), make_card(0x15)
    response = card.initialize_update(host.initialize_update())
    bad = ResponseApdu(response.data[:-1] + bytes((response.data[-1] ^ 1,)))
    with pytest.raises(AuthenticationError, match="did not verify"):
        host.receive_initialize_update(bad)
    with pytest.raises(ChannelClosedError):
        host.external_authenticate()


def test_wrong_host_cryptogram_is_6300() -> None:
    host, card = make_host(0x15), make_card(0x15)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    keys = host.session_keys
    assert keys is not None
    plain = CommandApdu(0x80, 0x82, 0x01, 0x00, bytes(8))
    mac = CommandMacChain(keys.c_mac).compute(command_mac_input(plain, 0x15))
    with pytest.raises(SecurityNotSatisfied) as info:
        card.external_authenticate(CommandApdu(0x84, 0x82, 0x01, 0x00, bytes(8) + mac))
    assert info.value.sw == 0x6300
    assert card.state is ChannelState.TERMINATED and card.sequence_counter == 5


def test_bad_external_authenticate_mac() -> None:
    host, card = make_host(0x15), make_card(0x15)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    ea = host.external_authenticate()
    with pytest.raises(SecurityNotSatisfied, match="C-MAC"):
        card.external_authenticate(ea.with_changes(data=ea.data[:-1] + b"\x00"))
    with pytest.raises(SecurityNotSatisfied):
        card.external_authenticate(ea)


def test_wrong_kvn() -> None:
    card = make_card()
    with pytest.raises(ReferencedDataNotFound):
        card.initialize_update(CommandApdu(0x80, 0x50, 0x31, 0x00, bytes(8), le=256))
    card = make_card()
    host = make_host(kvn=0x31)
    response = card.initialize_update(host.initialize_update().with_changes(p1=0))
    with pytest.raises(RemoteProtocolError, match="KVN"):
        host.receive_initialize_update(response)
    assert host.state is ChannelState.TERMINATED


def test_malformed_initialize_update() -> None:
    with pytest.raises(IncorrectP1P2):
        make_card().initialize_update(CommandApdu(0x80, 0x50, 0x00, 0x01, bytes(8), le=256))
    with pytest.raises(WrongLength):
        make_card().initialize_update(CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(16), le=256))
    with pytest.raises(InsNotSupported):
        make_card(0x1A).initialize_update(CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(8), le=256))
    with pytest.raises(ConditionsNotSatisfied):
        make_card(sequence_counter=MAX_SEQUENCE_COUNTER).initialize_update(
            CommandApdu(0x80, 0x50, 0x00, 0x00, bytes(8), le=256)
        )


def test_level_33_is_refused() -> None:
    with pytest.raises(UnsupportedError):
        make_host(level=0x33)
    host, card = make_host(0x15), make_card(0x15)
    host.receive_initialize_update(card.initialize_update(host.initialize_update()))
    ea = host.external_authenticate()
    with pytest.raises(IncorrectP1P2):
        card.external_authenticate(ea.with_changes(p1=0x33))


def test_unsupported_options() -> None:
    with pytest.raises(UnsupportedError):
        make_host(i=0x70)
    with pytest.raises(UnsupportedError):
        Scp02Host(StaticKeys.single(bytes(16)), level=SecurityLevel.C_MAC, host_challenge=bytes(8))
    with pytest.raises(UnsupportedError, match="16 bytes"):
        Scp02Host(
            StaticKeys.single(bytes(24), key_type=KeyType.DES3), level=SecurityLevel.C_MAC, host_challenge=bytes(8)
        )
    with pytest.raises(UnsupportedError, match="16 bytes"):
        Scp02Card(
            StaticKeys.single(bytes(24), key_type=KeyType.DES3),
            i_param=0x15,
            key_diversification_data=KDD,
            sequence_counter=0,
            random=counter_random,
            aid=b"",
        )
    with pytest.raises(ValueError, match="level 01"):
        make_host(0x1A, 0x03)
    with pytest.raises(LocalProtocolError):
        make_host(0x1A).initialize_update()
    with pytest.raises(LocalProtocolError):
        make_host(0x55).begin_implicit(0)


@pytest.mark.parametrize(("level", "size"), [(0x01, 248), (0x03, 240)])
def test_too_long_once_wrapped_keeps_the_channel(level: int, size: int) -> None:
    host, card = open_pair(0x55, level)
    with pytest.raises(LocalProtocolError, match="at most 255"):
        host.wrap(CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(size)))
    with pytest.raises(LocalProtocolError, match="short APDUs"):
        host.wrap(CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(10), extended=True))
    fits = CommandApdu(0x80, 0xE8, 0x00, 0x00, bytes(size - 8))
    assert exchange(host, card, fits, ResponseApdu()) == ResponseApdu()


def test_use_after_termination() -> None:
    host, card = open_pair()
    host.close()
    with pytest.raises(ChannelClosedError):
        host.wrap(CommandApdu(0x80, 0xCA, 0, 0x66))
    with pytest.raises(ChannelClosedError):
        host.unwrap(ResponseApdu())
    card.terminate()
    for call in (
        lambda: card.unwrap(CommandApdu(0x80, 0xCA, 0, 0x66)),
        lambda: card.wrap(ResponseApdu()),
        lambda: card.initialize_update(CommandApdu(0x80, 0x50, 0, 0, bytes(8))),
        lambda: card.decrypt_key(bytes(16)),
    ):
        with pytest.raises(SecurityNotSatisfied):
            call()


def test_host_misuse() -> None:
    host, _ = open_pair()
    with pytest.raises(LocalProtocolError, match="nothing to unwrap"):
        host.unwrap(ResponseApdu())
    with pytest.raises(LocalProtocolError, match="already indicates"):
        host.wrap(CommandApdu(0x84, 0xCA, 0, 0x66))
    with pytest.raises(LocalProtocolError, match="logical channel"):
        host.wrap(CommandApdu(0x81, 0xCA, 0, 0x66))
    with pytest.raises(LocalProtocolError, match="no R-MAC session"):
        host.end_rmac_session()


@pytest.mark.parametrize("target", ["rmac", "data", "sw-with-data"])
def test_rmac_tampering(target: str) -> None:
    host, card = open_pair(0x55, 0x11)
    card.unwrap(host.wrap(CommandApdu(0x80, 0xCA, 0, 0x66, le=256)))
    wire = card.wrap(ResponseApdu(b"\x66\x00"))
    if target == "rmac":
        bad = ResponseApdu(wire.data[:-1] + bytes((wire.data[-1] ^ 1,)), wire.sw)
    elif target == "data":
        bad = ResponseApdu(b"\x66\x01" + wire.data[2:], wire.sw)
    else:
        bad = ResponseApdu(wire.data, 0x6A88)
    with pytest.raises(IntegrityError):
        host.unwrap(bad)
    with pytest.raises(ChannelClosedError):
        host.wrap(CommandApdu(0x80, 0xCA, 0, 0x66))


def test_end_rmac_tampering() -> None:
    host, card = open_pair(0x15, 0x01)
    card.begin_rmac_session(card.unwrap(host.begin_rmac_session(b"\x01\x02", every_response=False)))
    host.unwrap(card.wrap(ResponseApdu()))
    exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66), ResponseApdu(b"\x01"))
    reply = card.wrap(card.end_rmac_session(card.unwrap(host.end_rmac_session())))
    bad = ResponseApdu(bytes((reply.data[0] ^ 1,)) + reply.data[1:], reply.sw)
    with pytest.raises(IntegrityError, match="END R-MAC"):
        host.unwrap(bad)
    assert host.state is ChannelState.TERMINATED


def test_rmac_session_commands_on_the_card() -> None:
    host, card = open_pair(0x15, 0x01)
    with pytest.raises(ReferencedDataNotFound):
        card.end_rmac_session(card.unwrap(host.wrap(CommandApdu(0x80, 0x78, 0x00, 0x03, le=256))))
    with pytest.raises(IncorrectP1P2):
        card.begin_rmac_session(card.unwrap(host.wrap(CommandApdu(0x80, 0x7A, 0x30, 0x01, b"\x00"))))
    with pytest.raises(IncorrectData):
        card.begin_rmac_session(card.unwrap(host.wrap(CommandApdu(0x80, 0x7A, 0x10, 0x01, b"\x05\x01"))))
    assert card.is_open  # malformed R-MAC session commands do not end the secure channel
    card.begin_rmac_session(card.unwrap(host.wrap(CommandApdu(0x80, 0x7A, 0x10, 0x01, b"\x00"))))
    with pytest.raises(ConditionsNotSatisfied):
        card.begin_rmac_session(card.unwrap(host.wrap(CommandApdu(0x80, 0x7A, 0x10, 0x01, b"\x00"))))


def test_key_encryption_needs_whole_blocks() -> None:
    host, card = open_pair()
    with pytest.raises(ValueError, match="multiple of 8"):
        host.encrypt_key(bytes(12))
    with pytest.raises(IncorrectData):
        card.decrypt_key(bytes(12))


def test_sequence_counter_never_wraps() -> None:
    card = make_card(0x1A, sequence_counter=MAX_SEQUENCE_COUNTER)
    host = make_host(0x1A)
    with pytest.raises(ValueError, match="sequence counter"):
        host.begin_implicit(MAX_SEQUENCE_COUNTER)
    host.begin_implicit(MAX_SEQUENCE_COUNTER - 1)
    with pytest.raises(ConditionsNotSatisfied):
        card.unwrap(host.wrap(CommandApdu(0x80, 0xCA, 0, 0x66)))


# -- fuzz: parsers return a value or raise a gpchannel error ------------------------------------------------------


@given(raw=st.binary(max_size=40), sw=st.sampled_from((0x9000, 0x6982, 0x6A88)))
def test_host_initialize_update_fuzz(raw: bytes, sw: int) -> None:
    host = make_host()
    try:
        host.receive_initialize_update(ResponseApdu(raw, sw))
    except GPChannelError:
        assert host.state is ChannelState.TERMINATED


@given(data=st.binary(max_size=64), cla=st.sampled_from((0x80, 0x84, 0xC4, 0xE4)), ins=st.integers(0, 255))
def test_card_unwrap_fuzz(data: bytes, cla: int, ins: int) -> None:
    for i in (0x55, 0x1A):
        _, card = open_pair(i, 0x03 if i == 0x55 else 0x01)
        try:
            card.unwrap(CommandApdu(cla, ins, 0, 0, data))
        except CardError:  # implicit initiation aborts the session instead (E.1.6)
            assert card.state is (ChannelState.TERMINATED if is_explicit(i) else ChannelState.IDLE)


@given(data=st.binary(max_size=64), sw=st.sampled_from(SUCCESS_SW + ERROR_SW))
def test_host_unwrap_fuzz(data: bytes, sw: int) -> None:
    host, _ = open_pair(0x55, 0x13)
    host.wrap(CommandApdu(0x80, 0xCA, 0, 0x66))
    try:
        host.unwrap(ResponseApdu(data, sw))
    except IntegrityError:
        assert host.state is ChannelState.TERMINATED


@given(
    cla=st.sampled_from((0x80, 0x84, 0xC1)),
    ins=st.sampled_from((0x50, 0x82, 0x00)),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=24),
)
def test_card_authentication_fuzz(cla: int, ins: int, p1: int, p2: int, data: bytes) -> None:
    """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE on arbitrary input answer or raise a CardError, nothing else."""
    card = make_card(0x15)
    command = CommandApdu(cla, ins, p1, p2, data)
    try:
        card.initialize_update(command)
    except CardError:
        assert card.state is ChannelState.TERMINATED
    card = make_card(0x15)
    card.initialize_update(make_host(0x15).initialize_update())
    try:
        card.external_authenticate(command)
    except CardError:
        assert card.state is ChannelState.TERMINATED and card.sequence_counter == 5


# -- R-MAC across an implicit abort (E.1.6, E.4.5) and the response size limit -----------------------------------


def _implicit_with_rmac(i: int, every_response: bool) -> tuple[Scp02Host, Scp02Card]:
    host, card = open_pair(i)
    assert exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66, le=256), ResponseApdu(b"\x66\x00")).sw == 0x9000
    begin = host.begin_rmac_session(b"\x01\x02", every_response=every_response)
    assert host.unwrap(card.wrap(card.begin_rmac_session(card.unwrap(begin)))) == ResponseApdu()
    return host, card


def _tampered(wire: CommandApdu) -> CommandApdu:
    return wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))


def _rejected(host: Scp02Host, card: Scp02Card, bad: CommandApdu, error: type[CardError]) -> None:
    """The card rejects ``bad``; the host unwraps the status word the dispatcher sends and mirrors the abort."""
    with pytest.raises(error) as caught:
        card.unwrap(bad)
    assert card.state is ChannelState.IDLE
    sw = caught.value.sw
    assert host.unwrap(ResponseApdu(sw=sw)) == ResponseApdu(sw=sw)
    host.abort()
    assert host.level == card.level


def _plain_exchange(host: Scp02Host, card: Scp02Card) -> ResponseApdu:
    plain = CommandApdu(0x80, 0xCA, 0x00, 0xC1, le=256)
    assert host.wrap(plain) == plain  # no secure messaging while aborted
    assert card.unwrap(plain) == plain
    return host.unwrap(card.wrap(ResponseApdu(b"\xc1\x02\x00\x06")))


@pytest.mark.parametrize("every_response", [True, False])
@pytest.mark.parametrize("failure", ["c-mac", "counter"])
@pytest.mark.parametrize("i", IMPLICIT_I)
def test_implicit_abort_keeps_the_rmac_chain_in_step(i: int, failure: str, every_response: bool) -> None:
    """The card chains the error status that rejects a C-MACed command (it never reaches ``wrap``) as the host's
    ``unwrap`` does: after ``abort`` plain commands and a new implicit session still verify their R-MACs, and
    END R-MAC SESSION returns the R-MAC the host expects."""
    host, card = _implicit_with_rmac(i, every_response)
    command = CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256)
    _rejected(host, card, _tampered(host.wrap(command)), SecurityNotSatisfied)
    assert card.level == (SecurityLevel.R_MAC if every_response else SecurityLevel.NONE)
    assert card.sequence_counter == 6 and host.sequence_counter == 6  # counted by the first session's opening
    assert _plain_exchange(host, card) == ResponseApdu(b"\xc1\x02\x00\x06")
    if failure == "counter":
        # Another logical channel exhausted the key set's counter meanwhile: the next initiation answers 6985
        # (E.1.2), chained as well.
        card.sync_sequence_counter(MAX_SEQUENCE_COUNTER)
        host.begin_implicit(card.sequence_counter - 1)
        _rejected(host, card, host.wrap(command), ConditionsNotSatisfied)
        assert host.sequence_counter is None  # the opening command was rejected: the card did not count it
        assert _plain_exchange(host, card) == ResponseApdu(b"\xc1\x02\x00\x06")  # R-MAC verified: in step
        return
    host.begin_implicit(card.sequence_counter)
    assert exchange(host, card, command, ResponseApdu(b"\xe3\x00")) == ResponseApdu(b"\xe3\x00")
    assert card.is_open and int(card.level) == (0x11 if every_response else 0x01) and host.level == card.level
    assert card.sequence_counter == 7 and host.sequence_counter == 7
    returned = card.wrap(card.end_rmac_session(card.unwrap(host.end_rmac_session())))
    assert host.unwrap(returned) == returned  # END R-MAC SESSION's R-MAC verifies: both chains saw every error


def test_implicit_abort_chains_what_reached_the_card() -> None:
    """A command cut short on the way is chained as it arrived (no C-MAC to strip): the host, which chains what it
    sent, finds the difference at the next R-MAC."""
    host, card = _implicit_with_rmac(0x1A, True)
    wire = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256))
    _rejected(host, card, wire.with_changes(data=wire.data[:4]), SecurityNotSatisfied)
    plain = CommandApdu(0x80, 0xCA, 0x00, 0xC1, le=256)
    card.unwrap(host.wrap(plain))
    with pytest.raises(IntegrityError):
        host.unwrap(card.wrap(ResponseApdu(b"\xc1\x02\x00\x06")))


def test_without_the_chained_error_the_host_would_refuse() -> None:
    """Control for the test above: a card that skipped the rejected command's R-MAC would be caught."""
    host, card = _implicit_with_rmac(0x1A, True)
    wire = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x00, b"\x4f\x00", le=256))
    chain = card._r_chain  # the chain before the failure
    assert chain is not None
    saved = chain.icv
    with pytest.raises(SecurityNotSatisfied):
        card.unwrap(wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,))))
    assert chain.icv != saved
    chain.icv = saved  # undo the chaining
    host.unwrap(ResponseApdu(sw=0x6982))
    host.abort()
    plain = CommandApdu(0x80, 0xCA, 0x00, 0xC1, le=256)
    card.unwrap(host.wrap(plain))
    with pytest.raises(IntegrityError):
        host.unwrap(card.wrap(ResponseApdu(b"\xc1\x02\x00\x06")))


def test_host_abort_rules() -> None:
    host, _ = open_pair(0x55)
    with pytest.raises(LocalProtocolError, match="explicit"):
        host.abort()
    host, card = open_pair(0x1A)
    host.wrap(CommandApdu(0x80, 0xCA, 0, 0x66))
    with pytest.raises(LocalProtocolError, match="unwrap"):
        host.abort()
    host.unwrap(ResponseApdu(sw=0x6982))
    host.abort()  # the rejected command opened the session: the card did not count it
    assert host.sequence_counter is None and host.level == SecurityLevel.NONE and host.is_open
    with pytest.raises(LocalProtocolError):
        make_host(0x1A).abort()  # no session
    host.begin_implicit(card.sequence_counter)
    assert exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66), ResponseApdu()) == ResponseApdu()
    with pytest.raises(LocalProtocolError):
        host.begin_implicit(card.sequence_counter)  # a session is active: only after abort()


@pytest.mark.parametrize(("i", "every_response"), [(0x1A, True), (0x1A, False), (0x55, True), (0x15, True)])
def test_response_too_long_for_its_rmac_is_6700(i: int, every_response: bool) -> None:
    """Short APDUs carry at most 256 response bytes: data + R-MAC beyond that is WrongLength (6700), as in SCP03;
    the 6700 is chained on both sides and the session stays open. Explicit: R-MAC from EXTERNAL AUTHENTICATE
    (level 11); implicit: BEGIN R-MAC SESSION (P1 10 or 00)."""
    if is_explicit(i):
        host, card = open_pair(i, 0x11)
    else:
        host, card = _implicit_with_rmac(i, every_response)
    command = CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256)
    fits = ResponseApdu(bytes(248))
    assert card.unwrap(host.wrap(command)) == command
    wire = card.wrap(fits)
    assert len(wire.data) == (256 if every_response else 248)
    assert host.unwrap(wire) == fits
    card.unwrap(host.wrap(command))
    big = ResponseApdu(bytes(249), 0x6310)
    if every_response:
        with pytest.raises(WrongLength, match="at most 256"):
            card.wrap(big)
        assert host.unwrap(ResponseApdu(sw=0x6700)) == ResponseApdu(sw=0x6700)
    else:  # only END R-MAC SESSION returns an R-MAC: nothing is added, nothing is too long
        assert host.unwrap(card.wrap(big)) == big
    assert card.is_open and host.is_open
    assert exchange(host, card, command, ResponseApdu(b"\x01")) == ResponseApdu(b"\x01")  # the chains agree
    if not is_explicit(i):
        returned = card.wrap(card.end_rmac_session(card.unwrap(host.end_rmac_session())))
        assert host.unwrap(returned) == returned


def test_sync_sequence_counter_applies_only_before_an_initiation() -> None:
    explicit = make_card(0x55)
    explicit.sync_sequence_counter(9)
    assert explicit.sequence_counter == 5  # explicit: the counter moves through its own sessions only
    host, card = make_host(0x1A), make_card(0x1A)
    card.sync_sequence_counter(4)
    assert card.sequence_counter == 5  # never back
    card.sync_sequence_counter(6)
    assert card.sequence_counter == 6  # no session yet: the next initiation uses the key set's value
    host.begin_implicit(6)
    assert exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66), ResponseApdu()) == ResponseApdu()
    card.sync_sequence_counter(9)
    assert card.sequence_counter == 7  # a session for incoming commands is active: its keys are set
    plain = CommandApdu(0x80, 0xCA, 0, 0x66)
    assert card.unwrap(plain) == plain  # AUTHENTICATED only: the next C-MAC re-initiates
    card.sync_sequence_counter(9)
    assert card.sequence_counter == 9
    with pytest.raises(ValueError, match="2 bytes"):
        card.sync_sequence_counter(MAX_SEQUENCE_COUNTER + 1)


@pytest.mark.parametrize("i", [0x15, 0x55, *IMPLICIT_I])
def test_card_encrypts_sensitive_data_as_the_host_does(i: int) -> None:
    """The card's encrypt_key uses the session DEK the host uses (implicit: from the incremented counter, E.1.2.2;
    the host's DEK is checked against the self-made vectors' key cryptograms in test_scp02.py)."""
    host, card = open_pair(i)
    exchange(host, card, CommandApdu(0x80, 0xCA, 0, 0x66), ResponseApdu())
    data = bytes(range(16))
    assert card.encrypt_key(data) == host.encrypt_key(data)
    assert card.decrypt_key(card.encrypt_key(data)) == data
    with pytest.raises(IncorrectData):
        card.encrypt_key(bytes(7))
    card.terminate()
    with pytest.raises(SecurityNotSatisfied):
        card.encrypt_key(data)
