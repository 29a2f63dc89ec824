"""INSTALL command data (GP 2.3.1 11.5.2) against GPShell's and pySim's cases, the spec tables, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.tlv import parse_pairs
from gpchannel.errors import DecodeError
from gpchannel.gp.install import (
    InstallFor,
    InstallForExtradition,
    InstallForInstall,
    InstallForLoad,
    InstallForMakeSelectable,
    InstallForPersonalization,
    InstallForRegistryUpdate,
    InstallParameters,
    parse_install,
)
from gpchannel.gp.privileges import Privilege, Privileges
from tests.vectors import VectorCase, params


@pytest.mark.parametrize("case", params("gp/install-params.json", "gp-install-params"))
def test_pysim_install_parameters(case: VectorCase) -> None:
    for call, expected in zip(case.inputs["calls"], case.expected["outputs"], strict=True):
        stk = call.get("stk_parameter")
        parameters = InstallParameters(
            volatile_memory_quota=call.get("volatile_memory_quota"),
            non_volatile_memory_quota=call.get("non_volatile_memory_quota"),
            ts102226_parameter=bytes.fromhex(stk) if stk else None,
        )
        assert parameters.to_bytes().hex() == expected
        assert InstallParameters.from_bytes(bytes.fromhex(expected)) == parameters


@pytest.mark.parametrize("case", params("gp/install-params.json", "sd-install-params"))
def test_gpshell_sd_install_parameters_are_ber_tlv(case: VectorCase) -> None:
    """SD parameters inside C9 must be BER-TLV (11.5.2.3.7); tag 81 carries the SCP (02) and i (15)."""
    raw = case.hex_out("bytes")
    items = parse_pairs(raw)
    assert items[0] == (0x81, bytes.fromhex("0215"))
    assert [t for t, _ in items] == [0x81, 0x82, 0x83, 0x84, 0x86, 0x87]
    wrapped = InstallParameters(application_specific=raw)
    assert InstallParameters.from_bytes(wrapped.to_bytes()).application_specific == raw


def test_install_for_install_and_make_selectable_table_11_43() -> None:
    data = InstallForInstall(
        bytes.fromhex("A0000000871002"),
        bytes.fromhex("A000000087100201"),
        bytes.fromhex("A0000000871002FF"),
        Privileges.of(Privilege.CARD_RESET),
        InstallParameters(application_specific=b"\x01").to_bytes(),
    )
    raw = data.to_bytes()
    assert raw.hex().upper() == "07A000000087100208A00000008710020108A0000000871002FF" + "03040000" + "03C90101" + "00"
    roles, parsed = parse_install(0x0C, 0x00, raw)
    assert roles == InstallFor.INSTALL | InstallFor.MAKE_SELECTABLE
    assert parsed == data


def test_one_byte_privileges_are_accepted() -> None:
    raw = bytes.fromhex("000005A000000001018002C90000")
    parsed = InstallForInstall.from_bytes(raw)
    assert parsed.privileges == Privileges.of(Privilege.SECURITY_DOMAIN) and parsed.one_byte_privileges
    assert parsed.to_bytes() == raw


def test_variants_by_p1() -> None:
    load = InstallForLoad(bytes.fromhex("A000000001"), bytes.fromhex("A000000151000000"), bytes(32))
    assert parse_install(0x02, 0x00, load.to_bytes()) == (InstallFor.LOAD, load)
    assert parse_install(0x0E, 0x01, load.to_bytes())[1] == load
    sel = InstallForMakeSelectable(bytes.fromhex("A000000001"))
    assert sel.to_bytes() == bytes.fromhex("0000 05A000000001 03000000 00 00")
    assert parse_install(0x08, 0x00, sel.to_bytes()) == (InstallFor.MAKE_SELECTABLE, sel)
    ext = InstallForExtradition(bytes.fromhex("A000000002"), bytes.fromhex("A000000001"))
    assert parse_install(0x10, 0x00, ext.to_bytes()) == (InstallFor.EXTRADITION, ext)
    reg = InstallForRegistryUpdate(application_aid=bytes.fromhex("A000000001"), privileges=Privileges())
    assert parse_install(0x40, 0x00, reg.to_bytes()) == (InstallFor.REGISTRY_UPDATE, reg)
    per = InstallForPersonalization(bytes.fromhex("A000000001"))
    assert per.to_bytes() == bytes.fromhex("0000 05A000000001 000000")
    assert parse_install(0x20, 0x00, per.to_bytes()) == (InstallFor.PERSONALIZATION, per)


def test_token_length_80_means_128() -> None:
    raw = bytes.fromhex("05A000000001 00 00 00") + b"\x80" + bytes(128)
    assert InstallForLoad.from_bytes(raw).token == bytes(128)


@pytest.mark.parametrize(
    ("p1", "p2", "raw"),
    [
        (0x02, 0x00, "04A0000000000000"),  # AID of 4 bytes
        (0x02, 0x00, "05A000000001"),  # truncated
        (0x0C, 0x00, "0000 05A000000001 02 0000 02C900 00"),  # privileges of 2 bytes
        (0x0C, 0x00, "0000 05A000000001 0100 02C900 00 FF"),  # trailing byte
        (0x06, 0x00, "05A000000001000000 00"),  # load + install without P2 01/03
        (0x01, 0x00, ""),
        (0x00, 0x00, ""),
        (0x0C, 0x00, "0000 05A000000001 0100 02EF00 00"),  # no C9 is fine to parse; checked by install_parameters
    ],
)
def test_malformed(p1: int, p2: int, raw: str) -> None:
    with pytest.raises(DecodeError):
        _roles, parsed = parse_install(p1, p2, bytes.fromhex(raw))
        if isinstance(parsed, InstallForInstall):
            parsed.install_parameters()


def test_memory_quota_width() -> None:
    assert InstallParameters(volatile_memory_quota=32767).to_bytes() == bytes.fromhex("C900 EF04 C7027FFF")
    assert InstallParameters(volatile_memory_quota=32768).to_bytes() == bytes.fromhex("C900 EF06 C70400008000")


_aid = st.binary(min_size=5, max_size=16)
_opt_aid = st.just(b"") | _aid
_privileges = st.frozensets(st.sampled_from(list(Privilege))).map(
    lambda m: Privileges.from_bytes(Privileges(m).to_bytes())
)


@given(
    st.one_of(
        st.builds(
            InstallForLoad, _aid, _opt_aid, st.binary(max_size=64), st.binary(max_size=300), st.binary(max_size=200)
        ),
        st.builds(
            InstallForInstall, _opt_aid, _opt_aid, _aid, _privileges, st.binary(max_size=300), st.binary(max_size=9)
        ),
        st.builds(InstallForMakeSelectable, _aid, _privileges, st.binary(max_size=20), st.binary(max_size=9)),
        st.builds(InstallForExtradition, _aid, _aid, st.binary(max_size=20), st.binary(max_size=9)),
        st.builds(InstallForRegistryUpdate, _opt_aid, _opt_aid, st.none() | _privileges, st.binary(max_size=20)),
        st.builds(InstallForPersonalization, _aid),
    )
)
def test_round_trip(data: object) -> None:
    cls = type(data)
    assert cls.from_bytes(data.to_bytes()) == data  # type: ignore[attr-defined]


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=80))
def test_parser_returns_value_or_decode_error(p1: int, p2: int, raw: bytes) -> None:
    try:
        parse_install(p1, p2, raw)
    except DecodeError:
        pass


@given(st.binary(max_size=80))
def test_parameters_parser_returns_value_or_decode_error(raw: bytes) -> None:
    try:
        InstallParameters.from_bytes(raw)
    except DecodeError:
        pass
