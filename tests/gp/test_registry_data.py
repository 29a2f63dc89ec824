"""GET STATUS entries (GP 2.3.1 11.4.3, GP 2.1.1 9.4.3) against GlobalPlatformPro's case and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.registry_data import RegistryEntry, StatusScope, decode_status_response, encode_entry
from tests.vectors import VectorCase, params


@pytest.mark.parametrize("case", params("gp/registry-parse.json", "registry-parse"))
def test_gppro_registry_parse(case: VectorCase) -> None:
    p1 = int(case.inputs["get_status_p1"], 16)
    (entry,) = decode_status_response(case.hex_in("data"), p1, 0x02)
    assert entry.aid == case.hex_out("isd_aid")
    assert f"({entry.lifecycle:02X})" in case.expected["lifecycle"]
    assert entry.privileges is not None
    assert sorted(entry.privileges.names()) == sorted(case.expected["privileges"])


def test_e3_coding_follows_table_11_36() -> None:
    entry = RegistryEntry(
        bytes.fromhex("A0000000871002FF49FF0589"),
        0x07,
        Privileges.of(Privilege.CARD_RESET),
        implicit_selection=(0x80,),
        load_file_aid=bytes.fromhex("A000000087"),
        sd_aid=bytes.fromhex("A000000151000000"),
    )
    raw = encode_entry(entry, StatusScope.APPLICATIONS)
    assert raw.hex().upper() == (
        "E3" + "2B" + "4F0CA0000000871002FF49FF0589" + "9F700107" + "C503040000" + "CF0180" + "C405A000000087"
        "CC08A000000151000000"
    )
    assert decode_status_response(raw, 0x40, 0x02) == [entry]


def test_tag_list_restricts_the_template() -> None:
    entry = RegistryEntry(b"\xa0\x00\x00\x00\x01", 0x07, Privileges())
    assert encode_entry(entry, StatusScope.APPLICATIONS, tag_list=[0x4F]) == bytes.fromhex("E3074F05A000000001")


def test_legacy_format_of_gp211_table_9_22_and_9_24() -> None:
    isd = RegistryEntry(bytes.fromhex("A000000003000000"), 0x0F, Privileges.from_bytes(bytes.fromhex("9E0000")))
    raw = encode_entry(isd, StatusScope.ISD, tlv=False)
    assert raw == bytes.fromhex("08A0000000030000000F9E")
    elf = RegistryEntry(bytes.fromhex("A0000000620001"), 0x01, modules=(bytes.fromhex("A000000062000101"),))
    raw_elf = encode_entry(elf, StatusScope.LOAD_FILES_AND_MODULES, tlv=False)
    assert raw_elf == bytes.fromhex("07A0000000620001010001" + "08A000000062000101")
    assert decode_status_response(raw_elf, 0x10, 0x00) == [elf]


@pytest.mark.parametrize(
    "raw", ["E3", "E303", "E3034F0100", "E3074F05A0000000019F70", "E2054F03A00000", "08A000000003000000"]
)
def test_malformed(raw: str) -> None:
    with pytest.raises(DecodeError):
        decode_status_response(bytes.fromhex(raw), 0x40, 0x02 if raw.startswith("E") else 0x00)


_aids = st.binary(min_size=5, max_size=16)
_privileges = st.frozensets(st.sampled_from(list(Privilege))).map(
    lambda m: Privileges.from_bytes(Privileges(m).to_bytes())
)


@given(
    st.lists(
        st.builds(
            RegistryEntry,
            _aids,
            st.integers(0, 255),
            _privileges,
            st.lists(st.integers(0, 255), max_size=2).map(tuple),
            st.none() | _aids,
            st.none() | _aids,
        ),
        max_size=4,
    )
)
def test_application_round_trip(entries: list[RegistryEntry]) -> None:
    raw = b"".join(encode_entry(e, StatusScope.APPLICATIONS) for e in entries)
    assert decode_status_response(raw, 0x40, 0x02) == entries


@given(
    st.lists(st.builds(RegistryEntry, _aids, st.just(1), modules=st.lists(_aids, max_size=3).map(tuple)), max_size=4)
)
def test_load_file_round_trip_both_formats(entries: list[RegistryEntry]) -> None:
    for tlv, p2 in ((True, 0x02), (False, 0x00)):
        raw = b"".join(encode_entry(e, StatusScope.LOAD_FILES_AND_MODULES, tlv=tlv) for e in entries)
        assert decode_status_response(raw, 0x10, p2) == entries


@given(st.binary(max_size=64), st.sampled_from([0x80, 0x40, 0x20, 0x10, 0x00, 0x33]), st.sampled_from([0, 2]))
def test_decoder_returns_value_or_decode_error(raw: bytes, p1: int, p2: int) -> None:
    try:
        decode_status_response(raw, p1, p2)
    except DecodeError:
        pass
