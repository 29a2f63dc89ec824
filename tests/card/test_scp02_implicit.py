"""SCP02 implicit initiation in the emulator (GP Card Specification 2.2.1 E.1.2.2, E.1.6, E.4.5), end to end in
memory through :meth:`gpchannel.card.dispatcher.Card.process`, driven by :class:`Scp02Host` as a real host would:
GET DATA C1 for the sequence counter, then ``begin_implicit``; the first C-MACed command opens the session.

The C-MAC side is also replayed from the independent self-made trace (tests/vectors/scp02/selfmade.json, i=1A,
made by make_selfmade.py from the specification text; see its SOURCES.md).
"""

from __future__ import annotations

import pytest

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import tlv
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import ProfileError
from gpchannel.gp.registry_data import StatusScope, decode_status_response
from gpchannel.host.commands import get_data_command, get_status_command
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.put_key import PutKeyData, put_key_command
from gpchannel.scp.scp02_host import Scp02Host
from tests.card.harness import DEFAULT_KEY, ISD_AID, counter_random, make_card, profile_text, secure, send
from tests.vectors import VectorCase, cases

IMPLICIT_I = ["0A", "0B", "1A", "1B", "2A", "2B", "3A", "3B"]
KEYS = StaticKeys.single(DEFAULT_KEY, 0x30, KeyType.DES3)
GET_STATUS_ISD = get_status_command(StatusScope.ISD)


def card_counter(card: Card, channel: int = 0) -> int:
    """GET DATA C1 without secure messaging, as hosts read the counter before an implicit session (E.1.2.2)."""
    response = send(card, get_data_command(0xC1, channel=channel))
    assert response.sw == 0x9000 and response.data[:2] == b"\xc1\x02"
    return int.from_bytes(response.data[2:], "big")


def make_host(i: str, channel: int = 0) -> Scp02Host:
    return Scp02Host(
        KEYS, level=SecurityLevel.C_MAC, host_challenge=bytes(8), i_param=int(i, 16), aid=ISD_AID, channel=channel
    )


def implicit_host(card: Card, i: str, channel: int = 0) -> Scp02Host:
    host = make_host(i, channel)
    host.begin_implicit(card_counter(card, channel))
    return host


def persisted_counter(store: MemoryStore) -> int:
    loaded = store.load()
    assert loaded is not None and loaded.isd.sd is not None
    return loaded.isd.sd.keysets[0].sequence_counter


def tampered(wire: CommandApdu) -> CommandApdu:
    return wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))


# -- the profile -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("i", [*IMPLICIT_I, "15", "55", "04", "45", "75"])
def test_profile_accepts_the_implemented_scp02_i_values(i: str) -> None:
    state = load_profile(profile_text("02", i, key_type="des3"))
    assert state.isd.sd is not None and state.isd.sd.i_param == int(i, 16)


@pytest.mark.parametrize("i", ["06", "0C", "56", "80", "9A", "02"])
def test_profile_refuses_i_values_scp02_does_not_define(i: str) -> None:
    with pytest.raises(ProfileError, match=r"isd\.i") as caught:
        load_profile(profile_text("02", i, key_type="des3"))
    assert "1A" in str(caught.value)  # the message lists what is accepted


# -- implicit sessions end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("i", IMPLICIT_I)
def test_implicit_session_through_the_card(i: str) -> None:
    card, store = make_card("02", i)
    assert send(card, "8050000008" + "00" * 8 + "00").sw == 0x6D00  # implicit only: no INITIALIZE UPDATE
    assert send(card, put_key_command(PutKeyData.from_static_keys(KEYS, lambda k: k), key_id=1)).sw == 0x6982
    host = implicit_host(card, i)
    assert host.sequence_counter == 0
    response = secure(card, host, GET_STATUS_ISD)  # the first C-MAC opens the session (E.1.2.2)
    assert response.sw == 0x9000 and [e.aid for e in decode_status_response(response.data, 0x80, 0x02)] == [ISD_AID]
    assert host.sequence_counter == 1 and persisted_counter(store) == 1  # counted, and committed at once
    # Sensitive data under the DEK session key of the incremented counter, 3DES-CBC (E.1.2.2, E.4.7).
    new = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x31, KeyType.DES3)
    response = secure(card, host, put_key_command(PutKeyData.from_static_keys(new, host.encrypt_key), key_id=1))
    assert response.sw == 0x9000 and response.data == bytes((0x31,)) + b"".join(new.kcvs())
    loaded = store.load()
    assert loaded is not None and loaded.isd.sd is not None
    assert [(k.kvn, k.enc) for k in loaded.isd.sd.keysets] == [(0x30, KEYS.enc), (0x31, new.enc)]
    # A bad C-MAC aborts (6982); the next C-MACed command of a new host session opens a new session (E.1.6).
    assert send(card, tampered(host.wrap(GET_STATUS_ISD))).sw == 0x6982
    assert send(card, host.wrap(GET_STATUS_ISD)).sw == 0x6982  # the old chain is gone on the card
    again = implicit_host(card, i)
    assert again.sequence_counter == 1
    assert secure(card, again, GET_STATUS_ISD).sw == 0x9000
    assert persisted_counter(store) == 2
    # A new card session: the counter survived, and opens the next session.
    card.reset()
    third = implicit_host(card, i)
    assert third.sequence_counter == 2
    assert secure(card, third, get_data_command(0x66)).sw == 0x9000
    assert persisted_counter(store) == 3


def test_implicit_rules_in_the_security_domain() -> None:
    """E.1.6: a plain command leaves AUTHENTICATED only (still a session: PUT KEY taken); a security error aborts,
    and then Table 11-2 commands without secure messaging are refused; INITIALIZE UPDATE does not end it."""
    card, _ = make_card("02", "1A")
    host = implicit_host(card, "1A")
    assert secure(card, host, get_data_command(0x66)).sw == 0x9000
    assert send(card, "8050000008" + "00" * 8 + "00").sw == 0x6D00
    assert secure(card, host, get_data_command(0x66)).sw == 0x9000  # the session went on
    assert send(card, GET_STATUS_ISD).sw == 0x9000  # plain: AUTHENTICATED only, still authenticated
    assert send(card, tampered(host.wrap(GET_STATUS_ISD))).sw == 0x6982  # SM again: a new initiation, which fails
    assert send(card, GET_STATUS_ISD).sw == 0x6982  # aborted: no authenticated session
    assert send(card, get_data_command(0x66)).sw == 0x9000  # what needs none still works


def test_an_error_answer_still_counts_the_opening() -> None:
    """The command that opens the session fails (6A88) and the card rolls its state back, but not the counter:
    a counter value opens one session only (E.1.2), or the opening command could be replayed."""
    card, store = make_card("02", "1A")
    host = implicit_host(card, "1A")
    response = secure(card, host, CommandApdu(0x80, 0xE4, 0x00, 0x00, tlv(0x4F, bytes.fromhex("A0000000FF01"))))
    assert response.sw == 0x6A88
    assert persisted_counter(store) == 1 and card_counter(card) == 1
    card.reset()
    replay = make_host("1A")
    replay.begin_implicit(0)
    assert send(card, replay.wrap(GET_STATUS_ISD)).sw == 0x6982  # counter 0 is spent


def test_sessions_on_two_logical_channels_share_the_counter() -> None:
    """A session aborted on channel 0 re-initiates with the key set's counter as the session on channel 1 left
    it, never with its own stale copy."""
    card, store = make_card("02", "1A")
    first = implicit_host(card, "1A")
    assert secure(card, first, GET_STATUS_ISD).sw == 0x9000  # counter 0 -> 1
    assert send(card, "0070000001").data == b"\x01"
    assert send(card, "01A4040008" + ISD_AID.hex()).sw == 0x9000
    other = implicit_host(card, "1A", channel=1)
    assert other.sequence_counter == 1
    assert secure(card, other, get_status_command(StatusScope.ISD, channel=1)).sw == 0x9000  # 1 -> 2
    assert send(card, tampered(first.wrap(GET_STATUS_ISD))).sw == 0x6982  # channel 0 aborts
    stale = make_host("1A")
    stale.begin_implicit(1)
    assert send(card, stale.wrap(GET_STATUS_ISD)).sw == 0x6982  # 1 was used by channel 1's session
    fresh = implicit_host(card, "1A")
    assert fresh.sequence_counter == 2
    assert secure(card, fresh, GET_STATUS_ISD).sw == 0x9000
    assert persisted_counter(store) == 3


# -- R-MAC sessions, and the abort -------------------------------------------------------------------------------


@pytest.mark.parametrize("every_response", [True, False])
def test_rmac_session_survives_an_abort_in_step(every_response: bool) -> None:
    """E.1.6 / E.4.5: the R-MAC session outlives an abort and both sides chain the 6982 of the rejected command;
    the host then reads the counter at "R-MAC only", starts a new session, and END R-MAC SESSION verifies."""
    card, _ = make_card("02", "3A")
    host = implicit_host(card, "3A")
    assert secure(card, host, get_data_command(0x66)).sw == 0x9000
    assert secure(card, host, GET_STATUS_ISD).sw == 0x9000
    begin = host.begin_rmac_session(b"\x01\x02\x03\x04\x05\x06\x07\x08", every_response=every_response)
    assert host.unwrap(send(card, begin)) == ResponseApdu()
    wire = send(card, host.wrap(get_data_command(0x66)))
    assert len(wire.data) > 8 if every_response else wire.sw == 0x9000
    assert host.unwrap(wire).sw == 0x9000  # R-MAC verified (P1 10)
    # The rejected command: 6982 on the wire, chained by both sides.
    rejected = send(card, tampered(host.wrap(GET_STATUS_ISD)))
    assert rejected == ResponseApdu(sw=0x6982)
    assert host.unwrap(rejected) == rejected
    host.abort()
    assert host.level == (SecurityLevel.R_MAC if every_response else SecurityLevel.NONE)
    # PUT KEY without secure messaging while aborted: refused (Table 11-2), and chained too.
    refused = send(card, host.wrap(put_key_command(PutKeyData.from_static_keys(KEYS, lambda k: k), key_id=1)))
    assert host.unwrap(refused) == ResponseApdu(sw=0x6982)
    # The counter at R-MAC only: plain GET DATA, R-MAC verified (it fails if the card skipped a chaining).
    counter = host.unwrap(send(card, host.wrap(get_data_command(0xC1))))
    assert counter.sw == 0x9000 and counter.data == b"\xc1\x02\x00\x01"
    host.begin_implicit(1)
    assert secure(card, host, GET_STATUS_ISD).sw == 0x9000
    end = host.unwrap(send(card, host.end_rmac_session()))
    assert end.sw == 0x9000 and len(end.data) == 8  # the R-MAC both sides computed
    assert secure(card, host, get_data_command(0x66)).sw == 0x9000


def test_rmac_session_commands_need_a_session() -> None:
    card, _ = make_card("02", "1A")
    assert send(card, "807A00100100").sw == 0x6982
    assert send(card, "8078000300").sw == 0x6982
    scp03, _ = make_card("03", "70")
    from tests.card.harness import open_session

    host = open_session(scp03, "03", 0x01)
    assert secure(scp03, host, CommandApdu(0x80, 0x7A, 0x10, 0x01, b"\x00")).sw == 0x6D00  # SCP02 only


def test_explicit_scp02_rmac_session_through_the_card() -> None:
    card, _ = make_card("02", "55")
    host = Scp02Host(KEYS, level=SecurityLevel.C_MAC, host_challenge=bytes(8), i_param=0x55, aid=ISD_AID)
    host.receive_initialize_update(send(card, host.initialize_update()))
    host.receive_external_authenticate(send(card, host.external_authenticate()))
    assert host.unwrap(send(card, host.begin_rmac_session(every_response=True))) == ResponseApdu()
    assert secure(card, host, GET_STATUS_ISD).sw == 0x9000
    assert host.unwrap(send(card, host.end_rmac_session())).sw == 0x9000


# -- the independent vector, replayed through the emulator --------------------------------------------------------


def _selfmade_1a() -> VectorCase:
    (case,) = [c for c in cases("scp02/selfmade.json", "scp02-selfmade-trace") if c.inputs["i"] == "1A"]
    return case


def test_selfmade_implicit_trace_through_the_card() -> None:
    """The wire commands of the independently generated i=1A trace are accepted by the emulator's Security
    Domain (no 6982: every C-MAC verified, counter from 0041), and the counter ends at the trace's value."""
    case = _selfmade_1a()
    assert case.hex_in("enc") == case.hex_in("mac") == case.hex_in("dek") == DEFAULT_KEY
    assert case.hex_in("aid") == ISD_AID
    counter = int(case.inputs["sequence_counter"], 16)
    text = profile_text("02", case.inputs["i"], key_type="des3").replace(
        "sequence_counter = 0", f"sequence_counter = {counter}"
    )
    state = load_profile(text)
    store = MemoryStore()
    store.commit(state)
    card = Card(state, store, random=counter_random())
    assert card_counter(card) == int(case.expected["session_key_sequence_counter"], 16)
    steps = case.expected["steps"]
    first = CommandApdu.from_bytes(bytes.fromhex(steps[0]["wire_cmd"]))
    assert send(card, tampered(first)).sw == 0x6982  # control: a wrong C-MAC is refused
    for step in steps:
        assert send(card, CommandApdu.from_bytes(bytes.fromhex(step["wire_cmd"]))).sw != 0x6982
    assert persisted_counter(store) == int(case.expected["final_sequence_counter"], 16)


def test_a_new_initiation_uses_the_current_key_set() -> None:
    """PUT KEY replaces key set 30 during an implicit session: the session goes on with its session keys, and once
    it is aborted only the new keys open the next one (the old static keys must not be kept by the session)."""
    card, store = make_card("02", "1A")
    host = implicit_host(card, "1A")
    new = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x30, KeyType.DES3)
    data = PutKeyData.from_static_keys(new, host.encrypt_key)
    assert secure(card, host, put_key_command(data, key_id=1, old_kvn=0x30)).sw == 0x9000
    assert secure(card, host, GET_STATUS_ISD).sw == 0x9000  # the session keeps its session keys
    assert send(card, tampered(host.wrap(GET_STATUS_ISD))).sw == 0x6982  # aborted
    counter = card_counter(card)
    old_keys = make_host("1A")
    old_keys.begin_implicit(counter)
    assert send(card, old_keys.wrap(GET_STATUS_ISD)).sw == 0x6982
    new_keys = Scp02Host(new, level=SecurityLevel.C_MAC, host_challenge=bytes(8), i_param=0x1A, aid=ISD_AID)
    new_keys.begin_implicit(card_counter(card))
    assert secure(card, new_keys, GET_STATUS_ISD).sw == 0x9000
    assert persisted_counter(store) == card_counter(card) == counter + 1
