"""The inspector on sessions between our own host and card, at every protocol, i and level; tampered traces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.scp.common import ScpProtocol, SecurityLevel
from gpchannel.scp.loopback import exchange, handshake
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03 import allowed_levels
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host
from gpchannel.trace import Failure, KeyOptions, Role, decode_exchanges, trace_text
from tests.trace.builders import (
    AES_KEYS,
    AID,
    COMMANDS,
    DES_KEYS,
    HOST_CHALLENGE,
    KDD,
    Pair,
    as_exchanges,
    counter_random,
    loopback_trace,
    make_pair,
)

CASES = (
    [(1, i, level) for i in (0x05, 0x15) for level in (0x00, 0x01, 0x03)]
    + [(2, i, level) for i in (0x55, 0x15, 0x45, 0x04) for level in (0x00, 0x01, 0x03)]
    + [(2, i, level) for i in (0x75, 0x35) for level in (0x10, 0x11, 0x13)]
    + [(3, i, int(level)) for i in (0x00, 0x10, 0x70, 0x71, 0x60) for level in sorted(allowed_levels(i))]
)


def _id(case: tuple[int, int, int]) -> str:
    return f"SCP0{case[0]}-i{case[1]:02X}-level{case[2]:02X}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_every_check_passes_and_plain_forms_are_recovered(case: tuple[int, int, int]) -> None:
    protocol, i, level = case
    pairs, plain_commands, plain_responses, keys = loopback_trace(protocol, level, i)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    assert report.ok, report.first_failure
    (session,) = report.sessions
    assert session.protocol is ScpProtocol(protocol)
    assert session.level == SecurityLevel(level)
    assert session.first == 0 and session.last == len(pairs) - 1
    if protocol == 3 or SecurityLevel.C_MAC in SecurityLevel(level):  # else the ICV mode is never used
        # SCP02: b1 (three keys) and b5 (ICV encryption) are detected; b7 and b6 change no check
        expected_i = i if protocol != 2 else (0x55 if i & 0x10 else 0x45) & (0xFF if i & 0x01 else 0xFE)
        assert session.i_param == expected_i
    roles = [e.role for e in report.exchanges]
    assert roles == [Role.INITIALIZE_UPDATE, Role.EXTERNAL_AUTHENTICATE] + [Role.SECURED] * len(COMMANDS)
    for item, command, response in zip(report.exchanges[2:], plain_commands, plain_responses, strict=True):
        assert item.plain_command == command
        assert item.plain_response == response
        assert ("C-MAC" in item.checks) is (SecurityLevel.C_MAC in SecurityLevel(level))
        protected = item.response is not None and (item.response.is_success or item.response.sw1 == 0x61)
        assert ("R-MAC" in item.checks) is (SecurityLevel.R_MAC in SecurityLevel(level) and protected)


def _flip(pairs: list[Pair], index: int, where: str, position: int) -> list[Pair]:
    command, response = pairs[index]
    if where == "command":
        raw = bytearray(command.to_bytes())
        raw[position] ^= 0x01
        command = CommandApdu.from_bytes(bytes(raw))
    else:
        assert response is not None
        raw = bytearray(response.to_bytes())
        raw[position] ^= 0x01
        response = ResponseApdu.from_bytes(bytes(raw))
    out = list(pairs)
    out[index] = (command, response)
    return out


def _covered_positions(pairs: list[Pair], level: SecurityLevel, protocol: int) -> list[tuple[int, str, int]]:
    """Every byte a check covers: INS, P1, P2 and data of each secured command, the host challenge, the card
    challenge and cryptogram (and SCP02's sequence counter, which enters the session keys), the EXTERNAL
    AUTHENTICATE data, and response data under R-MAC. Not covered, and not flipped: KDD, KVN, SCP03's sequence
    counter (it only feeds the pseudo-random challenge, which needs the AID), Le, and unprotected responses."""
    out: list[tuple[int, str, int]] = []
    iu_command, iu_response = pairs[0]
    out += [(0, "command", 5 + k) for k in range(len(iu_command.data))]
    assert iu_response is not None
    end = len(iu_response.data) - (3 if protocol == 3 and iu_response.data[12] & 0x10 else 0)  # SCP03 counter
    out += [(0, "response", k) for k in range(12 + (protocol == 3), end)]
    out += [(1, "command", 5 + k) for k in range(len(pairs[1][0].data))]
    for index in range(2, len(pairs)):
        command, response = pairs[index]
        if SecurityLevel.C_MAC in level:
            out += [(index, "command", k) for k in (1, 2, 3)]
            start = 7 if command.is_extended else 5
            out += [(index, "command", start + k) for k in range(len(command.data))]
        if SecurityLevel.R_MAC in level and response is not None and response.data:
            out += [(index, "response", k) for k in range(len(response.data))]
    return out


TAMPER_CASES = [(1, 0x15, 0x03), (2, 0x55, 0x03), (2, 0x75, 0x13), (3, 0x70, 0x33), (3, 0x71, 0x13)]


@pytest.mark.parametrize("case", TAMPER_CASES, ids=_id)
def test_a_tampered_byte_is_found_in_its_exchange(case: tuple[int, int, int]) -> None:
    protocol, i, level = case
    pairs, _, _, keys = loopback_trace(protocol, level, i)
    positions = _covered_positions(pairs, SecurityLevel(level), protocol)
    assert len(positions) > 100
    for index, where, position in positions:
        report = decode_exchanges(as_exchanges(_flip(pairs, index, where, position)), KeyOptions(keys))
        failure = report.first_failure
        assert failure is not None, (index, where, position)
        assert failure.index == index, (index, where, position, failure)
        if index == 0:
            assert failure.failure is Failure.CARD_CRYPTOGRAM
        elif index == 1:
            assert failure.failure in (Failure.HOST_CRYPTOGRAM, Failure.C_MAC)
        elif where == "response":
            assert failure.failure in (Failure.R_MAC, Failure.R_DECRYPTION)
            assert "a byte of the response differs" in failure.explanation
            assert failure.explanation == report.sessions[0].explanation
        else:
            assert failure.failure in (Failure.C_MAC, Failure.DECRYPTION, Failure.MISSING_COMMAND), failure
        assert all(e.role is Role.UNCHECKED for e in report.exchanges[index + 1 :])


def test_host_cryptogram_and_ea_mac_are_told_apart() -> None:
    pairs, _, _, keys = loopback_trace(3, 0x03, 0x70)
    report = decode_exchanges(as_exchanges(_flip(pairs, 1, "command", 5)), KeyOptions(keys))
    assert report.first_failure is not None and report.first_failure.failure is Failure.HOST_CRYPTOGRAM
    assert "card cryptogram verified" in report.first_failure.explanation
    report = decode_exchanges(as_exchanges(_flip(pairs, 1, "command", 5 + 9)), KeyOptions(keys))
    assert report.first_failure is not None and report.first_failure.failure is Failure.C_MAC


@pytest.mark.parametrize("protocol", [1, 2, 3])
def test_wrong_key_is_a_card_cryptogram_failure(protocol: int) -> None:
    pairs, _, _, keys = loopback_trace(protocol, 0x01)
    wrong = StaticKeys(keys.mac, keys.enc, keys.dek, keys.kvn, keys.key_type)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(wrong))
    failure = report.first_failure
    assert failure is not None and failure.index == 0 and failure.failure is Failure.CARD_CRYPTOGRAM
    assert "keys doctor" in failure.explanation
    assert keys.enc.hex() not in failure.explanation.lower() and keys.enc.hex().upper() not in failure.explanation
    assert [e.role for e in report.exchanges[1:]] == [Role.UNCHECKED] * (len(pairs) - 1)


def test_missing_command_is_a_skipped_encryption_counter() -> None:
    """Amendment D 6.2.6: without the first command, the second one decrypts only with counter 2."""
    pairs, _, _, keys = loopback_trace(3, 0x03, 0x70, commands=(COMMANDS[0], COMMANDS[0], COMMANDS[4]))
    del pairs[2]
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    failure = report.first_failure
    assert failure is not None and failure.index == 2
    assert failure.failure is Failure.MISSING_COMMAND
    assert "skipped 1" in failure.explanation


@pytest.mark.parametrize("protocol", [1, 2])
def test_missing_command_in_scp01_02_is_named_as_a_possibility(protocol: int) -> None:
    pairs, _, _, keys = loopback_trace(protocol, 0x01)
    del pairs[3]
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    failure = report.first_failure
    assert failure is not None and failure.index == 3 and failure.failure is Failure.C_MAC
    assert "missing" in failure.explanation and "card accepted it" in failure.explanation


@pytest.mark.parametrize("protocol", [1, 2, 3])
def test_wrong_chaining(protocol: int) -> None:
    """A host that forgets the first command's MAC when it MACs the second: its MAC chains from EXTERNAL
    AUTHENTICATE. Built with a second, identical host that wraps the second command right after the handshake."""
    pairs, _, _, keys = loopback_trace(protocol, 0x01, commands=COMMANDS[:2])
    host, card, _ = make_pair(protocol, 0x01)
    handshake(host, card)
    pairs[3] = (host.wrap(COMMANDS[1]), ResponseApdu(b"", 0x6982))
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    failure = report.first_failure
    assert failure is not None and failure.index == 3, failure
    assert failure.failure is Failure.WRONG_CHAINING
    assert "card refused it too (6982)" in failure.explanation


@pytest.mark.parametrize("protocol", [1, 2, 3])
def test_command_outside_the_channel(protocol: int) -> None:
    pairs, _, _, keys = loopback_trace(protocol, 0x01, commands=COMMANDS[:2])
    pairs.insert(3, (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256), ResponseApdu(b"", 0x6982)))
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    failure = report.first_failure
    assert failure is not None and failure.index == 3 and failure.failure is Failure.OUTSIDE_CHANNEL
    assert report.exchanges[4].role is Role.UNCHECKED


def test_clear_commands_pass_at_level_00_and_select_ends_the_session() -> None:
    pairs, _, _, keys = loopback_trace(3, 0x00, 0x70, commands=COMMANDS[:1])
    select = CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A0000000030000"), le=256)
    pairs.append((select, ResponseApdu()))
    pairs.append((CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256), ResponseApdu(b"", 0x6982)))
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    assert report.ok
    assert [e.role for e in report.exchanges[2:]] == [Role.SECURED, Role.OUTSIDE, Role.OUTSIDE]
    assert report.sessions[0].last == 2


def test_two_sessions_and_exchanges_before_them() -> None:
    select = CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000151000000"), le=256)
    first, _, _, keys = loopback_trace(3, 0x03, 0x70, commands=COMMANDS[:2])
    second, _, _, _ = loopback_trace(3, 0x33, 0x70, commands=COMMANDS[:3])
    pairs = [(select, ResponseApdu()), *first, (select, ResponseApdu()), *second]
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    assert report.ok
    assert [(s.first, s.last, s.level) for s in report.sessions] == [
        (1, 4, SecurityLevel(0x03)),
        (6, 10, SecurityLevel(0x33)),
    ]


def test_a_failed_session_does_not_stop_the_next_one() -> None:
    first, _, _, keys = loopback_trace(2, 0x01)
    second, _, _, _ = loopback_trace(2, 0x03)
    report = decode_exchanges(as_exchanges(_flip(first, 3, "command", 6) + second), KeyOptions(keys))
    assert report.sessions[0].failure is Failure.C_MAC and report.sessions[0].failed_at == 3
    assert report.sessions[1].ok


def test_no_keys_lists_the_sessions_unchecked() -> None:
    pairs, _, _, _ = loopback_trace(3, 0x03, 0x70)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions())
    assert report.ok and not report.sessions[0].checked
    assert report.sessions[0].protocol is ScpProtocol.SCP03 and report.sessions[0].i_param == 0x70
    assert all(e.role is Role.UNCHECKED for e in report.exchanges[1:])


def test_refused_initialize_update() -> None:
    pairs: list[Pair] = [(CommandApdu(0x80, 0x50, 0x30, 0x00, bytes(8), le=256), ResponseApdu(b"", 0x6A88))]
    report = decode_exchanges(as_exchanges(pairs), KeyOptions.single(bytes(16)))
    failure = report.first_failure
    assert failure is not None and failure.failure is Failure.CARD_REFUSED and "6A88" in failure.explanation


def test_refused_external_authenticate_with_valid_cryptograms() -> None:
    pairs, _, _, keys = loopback_trace(3, 0x03, 0x70, commands=())
    pairs[1] = (pairs[1][0], ResponseApdu(b"", 0x6982))
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    failure = report.first_failure
    assert failure is not None and failure.index == 1 and failure.failure is Failure.CARD_REFUSED
    assert failure.checks == ("host cryptogram", "C-MAC")


def test_scp02_rmac_session_begin_and_end() -> None:
    host, card, keys = make_pair(2, 0x01, 0x55)
    assert isinstance(host, Scp02Host) and isinstance(card, Scp02Card)

    pairs: list[Pair] = list(handshake(host, card))
    begin = host.begin_rmac_session(b"\x01\x02", every_response=True)
    begin_response = card.wrap(card.begin_rmac_session(card.unwrap(begin)))
    host.unwrap(begin_response)
    pairs.append((begin, begin_response))
    for command in COMMANDS[:3]:
        step = exchange(host, card, command, lambda _c: ResponseApdu(b"\x42"))
        pairs.append((step.wire_command, step.wire_response))
    end = host.end_rmac_session(end=True)
    end_response = card.wrap(card.end_rmac_session(card.unwrap(end)))
    pairs.append((end, end_response))
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    assert report.ok, report.first_failure
    assert [("R-MAC" in e.checks) for e in report.exchanges[3:6]] == [True, True, True]
    assert report.exchanges[3].plain_response == ResponseApdu(b"\x42")
    tampered = list(pairs)
    tampered[-1] = (end, ResponseApdu(bytes(8)))
    failure = decode_exchanges(as_exchanges(tampered), KeyOptions(keys)).first_failure
    assert failure is not None and failure.index == len(pairs) - 1 and failure.failure is Failure.R_MAC


def _channel_pair(channel: int) -> tuple[Scp03Host, Scp03Card]:
    host = Scp03Host(AES_KEYS, level=SecurityLevel(0x33), host_challenge=HOST_CHALLENGE, i_param=0x70, channel=channel)
    card = Scp03Card(
        AES_KEYS,
        i_param=0x70,
        key_diversification_data=KDD,
        sequence_counter=7 + channel,
        random=counter_random,
        aid=AID,
        channel=channel,
    )
    return host, card


def test_sessions_on_two_logical_channels_interleaved() -> None:
    host0, card0 = _channel_pair(0)
    host5, card5 = _channel_pair(5)
    pairs: list[Pair] = [*handshake(host0, card0), *handshake(host5, card5)]
    plain = []
    for n, command in enumerate(COMMANDS):
        host, card, channel = (host0, card0, 0) if n % 2 else (host5, card5, 5)
        command = command.with_changes(cla=cla_for_channel(command.cla, channel))
        step = exchange(host, card, command, lambda _c: ResponseApdu(b"\x01\x02"))
        pairs.append((step.wire_command, step.wire_response))
        plain.append(command)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(AES_KEYS))
    assert report.ok, report.first_failure
    assert [(s.first, s.opened) for s in report.sessions] == [(0, True), (2, True)]
    assert [e.session for e in report.exchanges[4:]] == [2, 1, 2, 1, 2]
    assert [e.plain_command for e in report.exchanges[4:]] == plain
    assert report.exchanges[5].command.cla == 0x84 and report.exchanges[4].command.cla & 0x40


def test_abandoned_session_and_skipped_sequence_counters() -> None:
    """Three SCP02 sessions on one card, the second missing from the trace; then one the host abandons."""
    card = Scp02Card(
        DES_KEYS, i_param=0x55, key_diversification_data=KDD, sequence_counter=5, random=counter_random, aid=AID
    )
    sessions = []
    for _ in range(3):
        host = Scp02Host(DES_KEYS, level=SecurityLevel(0x01), host_challenge=HOST_CHALLENGE, i_param=0x55)
        sessions.append(list(handshake(host, card)))
    iu = Scp02Host(DES_KEYS, level=SecurityLevel(0x01), host_challenge=HOST_CHALLENGE).initialize_update()
    abandoned = (iu, card.initialize_update(iu))
    get_data = (CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256), ResponseApdu(b"", 0x6982))
    pairs = [*sessions[0], *sessions[2], abandoned, get_data]
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(DES_KEYS))
    assert report.ok
    first, third, last = report.sessions
    assert first.notes == ()
    assert third.notes == (
        "the sequence counter is 7 where 6 was expected after session 1: 1 session(s) on this card "
        "are not in the trace",
    )
    assert not last.opened and last.notes == ("the host sent no EXTERNAL AUTHENTICATE: it abandoned the session",)
    assert report.exchanges[-1].role is Role.OUTSIDE
    assert "note: the host sent no EXTERNAL AUTHENTICATE" in trace_text(report)


@given(
    case=st.sampled_from(TAMPER_CASES),
    index=st.integers(0, 6),
    command=st.binary(min_size=4, max_size=40),
    response=st.one_of(st.none(), st.binary(min_size=2, max_size=40)),
)
def test_any_replaced_exchange_is_reported_never_raised(
    case: tuple[int, int, int], index: int, command: bytes, response: bytes | None
) -> None:
    """One exchange of a good session replaced by arbitrary bytes: a report, with a failure no later than the next
    exchange (a replacement on another channel is a command missing from the session, seen at the next one)."""
    protocol, i, level = case
    pairs, _, _, keys = loopback_trace(protocol, level, i)
    try:
        replaced = CommandApdu.from_bytes(command)
    except DecodeError:
        return
    pairs[index] = (replaced, ResponseApdu.from_bytes(response) if response is not None else None)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(keys))
    failure = report.first_failure
    assert failure is None or failure.index <= index + 1 or replaced.ins == 0x50
