"""Fuzzing the card: random APDUs outside and inside secure channels. Every answer must be a valid R-APDU with
a status word, the card must keep answering, and after every command the committed state must load and equal
the live one (committed on success, rolled back otherwise)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpchannel.card.dispatcher import Card
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import GPChannelError
from tests.card.harness import ECHO_AID, ISD_AID, make_card, open_session

_GP_INS = [0x50, 0x82, 0xCA, 0xCB, 0xF2, 0xE4, 0xE6, 0xE8, 0xD8, 0xF0, 0xE2, 0xA4, 0x70, 0xC0, 0x00, 0x6F]
_interesting_data = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"\x4f\x00", ISD_AID, ECHO_AID, bytes.fromhex("4F05A000000151"), b"\xc4\x00"]),
)
commands = st.builds(
    CommandApdu,
    cla=st.sampled_from([0x00, 0x01, 0x04, 0x40, 0x80, 0x81, 0x84, 0xC0, 0xE0, 0x10, 0x20, 0xA0])
    | st.integers(0, 0xFE),
    ins=st.sampled_from(_GP_INS) | st.integers(0, 255),
    p1=st.sampled_from([0x00, 0x02, 0x04, 0x0C, 0x10, 0x20, 0x40, 0x80]) | st.integers(0, 255),
    p2=st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x80]) | st.integers(0, 255),
    data=_interesting_data,
    le=st.none() | st.integers(1, 256),
)


def _check(card: Card, store: MemoryStore, raw: bytes) -> ResponseApdu:
    out = card.process(raw)
    response = ResponseApdu.from_bytes(out)
    assert len(out) >= 2
    assert store.load() == card.state
    return response


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands | st.binary(max_size=300).map(lambda b: b), max_size=25))
def test_random_apdus_outside_a_session(items: list[CommandApdu | bytes]) -> None:
    card, store = make_card()
    for item in items:
        raw = item.to_bytes() if isinstance(item, CommandApdu) else item
        _check(card, store, raw)
    assert _check(card, store, bytes.fromhex("00A4040000")).sw in (0x9000, 0x6283)


_SESSIONS = [("03", "70", 0x01), ("03", "70", 0x03), ("03", "70", 0x33), ("03", "00", 0x03), ("02", "55", 0x03)]
_SESSIONS += [("02", "15", 0x01), ("01", "15", 0x03), ("01", "05", 0x01)]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(commands, st.booleans()), max_size=20), st.sampled_from(_SESSIONS))
def test_random_apdus_inside_a_session(items: list[tuple[CommandApdu, bool]], session: tuple[str, str, int]) -> None:
    scp, i, level = session
    card, store = make_card(scp, i)
    host = open_session(card, scp, level)
    for command, wrap in items:
        raw = command.to_bytes()
        if wrap and host.is_open:
            try:
                raw = host.wrap(command.with_changes(cla=command.cla & 0xF0 | 0x80)).to_bytes()
            except (GPChannelError, ValueError):
                pass
        _check(card, store, raw)
    loaded = store.load()
    assert loaded is not None and loaded.isd.sd is not None
