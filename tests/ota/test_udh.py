"""User data headers, concatenation and reassembly (TS 23.040 9.2.3.24; TS 31.115 4.2/4.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.ota.udh import (
    MAX_USER_DATA,
    Concatenation,
    InformationElement,
    Reassembler,
    SecuredMessage,
    build_udh,
    parse_udh,
    secured_message,
    split_packet,
)
from tests.vectors import VectorCase, params

PYSIM = "ota/pysim.json"


@pytest.mark.parametrize("case", params(PYSIM, "sms-udh-parse"))
def test_pysim_udh_parse(case: VectorCase) -> None:
    elements, tail = parse_udh(case.hex_in("data"))
    expected = [InformationElement(int(e["iei"], 16), bytes.fromhex(e["value"])) for e in case.expected["ies"]]
    assert list(elements) == expected
    assert all(len(e.data) == x["length"] for e, x in zip(elements, case.expected["ies"], strict=True))
    assert tail == case.hex_out("tail")


@pytest.mark.parametrize("case", params(PYSIM, "sms-udh-roundtrip"))
def test_pysim_udh_round_trip(case: VectorCase) -> None:
    elements, tail = parse_udh(case.hex_in("data"))
    assert build_udh(elements) + tail == case.hex_out("encoded")


def test_single_command_and_response() -> None:
    assert split_packet(b"\x00\x0d") == [b"\x02\x70\x00\x00\x0d"]
    assert split_packet(b"\x00\x0b", response=True) == [b"\x02\x71\x00\x00\x0b"]
    assert secured_message(b"\x02\x71\x00\xab") == SecuredMessage(b"\xab", response=True)
    assert len(split_packet(bytes(137))) == 1
    assert len(split_packet(bytes(138))) == 2


def test_concatenated_layout() -> None:
    packet = bytes(range(200))
    first, second = split_packet(packet, reference=0x42)
    assert first[:8] == bytes.fromhex("07 00 03 42 02 01 70 00")
    assert len(first) == MAX_USER_DATA
    assert second[:6] == bytes.fromhex("05 00 03 42 02 02")
    assert first[8:] + second[6:] == packet
    wide = split_packet(packet, reference=0x1234, wide_reference=True)
    assert wide[0][:9] == bytes.fromhex("08 08 04 12 34 02 01 70 00")
    assert wide[1][:7] == bytes.fromhex("06 08 04 12 34 02 02")


@given(st.binary(max_size=3000), st.integers(0, 0xFFFF), st.booleans(), st.booleans(), st.randoms())
def test_split_then_reassemble(packet: bytes, ref: int, wide: bool, response: bool, rnd: object) -> None:
    ref = ref if wide else ref & 0xFF
    segments = split_packet(packet, response=response, reference=ref, wide_reference=wide)
    assert all(len(s) <= MAX_USER_DATA for s in segments)
    order = list(segments)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    reassembler = Reassembler()
    results = [reassembler.feed(s, "+4912345") for s in order]
    assert results[:-1] == [None] * (len(order) - 1)
    assert results[-1] == SecuredMessage(packet, response)
    assert reassembler.pending == 0


def test_reassembly_errors() -> None:
    first, second = split_packet(bytes(300), reference=7)[:2]
    r = Reassembler(max_pending=1)
    assert r.feed(first, "a") is None
    assert r.feed(first, "a") is None  # an identical duplicate is ignored
    with pytest.raises(DecodeError, match="pending"):
        r.feed(first, "b")
    with pytest.raises(DecodeError, match="twice"):
        r.feed(first[:-1] + b"\x01", "a")
    assert r.pending == 0
    with pytest.raises(DecodeError, match="first segment only"):
        r.feed(build_udh([*parse_udh(second)[0], InformationElement(0x70)]) + second[6:], "a")
    with pytest.raises(DecodeError, match="identifier"):
        r.feed(b"\x00\xab")
    r.feed(second, "a")
    r.discard("a")
    assert r.pending == 0
    with pytest.raises(DecodeError, match="Reassembler"):
        secured_message(first)


def test_malformed_udh() -> None:
    for raw, offset in [(b"", 0), (b"\x05\x70\x00", 3), (b"\x01\x70", 1), (b"\x03\x70\x05\x00", 2)]:
        with pytest.raises(DecodeError) as info:
            parse_udh(raw)
        assert info.value.offset == offset
    with pytest.raises(DecodeError, match="more than one"):
        secured_message(b"\x04\x70\x00\x71\x00")
    with pytest.raises(DecodeError, match="no data"):
        secured_message(b"\x03\x70\x01\xff")
    with pytest.raises(DecodeError, match="segment 3 of 2"):
        Concatenation.from_element(InformationElement(0x00, b"\x01\x02\x03"))


@given(
    st.lists(st.builds(InformationElement, st.integers(0, 255), st.binary(max_size=20)), max_size=8),
    st.binary(max_size=20),
)
def test_udh_round_trip(elements: list[InformationElement], tail: bytes) -> None:
    assert parse_udh(build_udh(elements) + tail) == (tuple(elements), tail)


@given(st.binary(max_size=160))
def test_fuzz_udh(raw: bytes) -> None:
    for call in (parse_udh, secured_message, Reassembler().feed):
        try:
            call(raw)
        except DecodeError:
            pass
