"""Privileges coding (GP 2.3.1, 11.1.2) against GlobalPlatformPro's cases and the spec tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.gp.privileges import Privilege, Privileges
from tests.vectors import VectorCase, params


@pytest.mark.parametrize("case", params("gp/privileges.json", "privileges"))
def test_decode_vectors(case: VectorCase) -> None:
    raw = case.hex_in("bytes")
    privileges = Privileges.from_bytes(raw)
    if "privileges" in case.expected:
        assert sorted(privileges.names()) == sorted(case.expected["privileges"])
    if "count" in case.expected:
        assert len(privileges) == case.expected["count"]
    assert privileges.to_bytes() == raw  # the notes say these round-trip


@pytest.mark.parametrize("case", params("gp/privileges.json", "privileges-encode"))
def test_encode_vectors(case: VectorCase) -> None:
    assert Privileges.from_names(case.inputs["privileges"]).to_bytes() == case.hex_out("bytes")


@pytest.mark.parametrize(
    ("privilege", "coded"),
    [
        (Privilege.SECURITY_DOMAIN, "800000"),
        (Privilege.DAP_VERIFICATION, "C00000"),
        (Privilege.DELEGATED_MANAGEMENT, "A00000"),
        (Privilege.CARD_LOCK, "100000"),
        (Privilege.CARD_TERMINATE, "080000"),
        (Privilege.CARD_RESET, "040000"),
        (Privilege.CVM_MANAGEMENT, "020000"),
        (Privilege.MANDATED_DAP_VERIFICATION, "C10000"),
        (Privilege.TRUSTED_PATH, "008000"),
        (Privilege.AUTHORIZED_MANAGEMENT, "004000"),
        (Privilege.TOKEN_MANAGEMENT, "002000"),
        (Privilege.GLOBAL_DELETE, "001000"),
        (Privilege.GLOBAL_LOCK, "000800"),
        (Privilege.GLOBAL_REGISTRY, "000400"),
        (Privilege.FINAL_APPLICATION, "000200"),
        (Privilege.GLOBAL_SERVICE, "000100"),
        (Privilege.RECEIPT_GENERATION, "000080"),
        (Privilege.CIPHERED_LOAD_FILE_DATA_BLOCK, "000040"),
        (Privilege.CONTACTLESS_ACTIVATION, "000020"),
        (Privilege.CONTACTLESS_SELF_ACTIVATION, "000010"),
    ],
)
def test_spec_tables(privilege: Privilege, coded: str) -> None:
    """Tables 11-7 to 11-9, one row each."""
    assert Privileges.of(privilege).to_bytes() == bytes.fromhex(coded)
    decoded = Privileges.from_bytes(bytes.fromhex(coded))
    assert privilege in decoded
    assert decoded.normalized() == Privileges.of(privilege).normalized()


def test_dap_and_mandated_dap_are_told_apart_by_b1() -> None:
    assert Privilege.DAP_VERIFICATION not in Privileges.from_bytes(bytes.fromhex("C10000"))
    assert Privilege.MANDATED_DAP_VERIFICATION not in Privileges.from_bytes(bytes.fromhex("C00000"))


def test_one_byte_form_of_gp211() -> None:
    assert Privileges.from_bytes(b"\x80") == Privileges.of(Privilege.SECURITY_DOMAIN)


@pytest.mark.parametrize("raw", ["400000", "200000", "010000", "810000", "8000", "", "80000000"])
def test_malformed_is_refused(raw: str) -> None:
    with pytest.raises(DecodeError):
        Privileges.from_bytes(bytes.fromhex(raw))


def test_rfu_bits_are_ignored() -> None:
    assert Privileges.from_bytes(bytes.fromhex("80000F")) == Privileges.of(Privilege.SECURITY_DOMAIN)


def test_names() -> None:
    assert Privilege.from_name("cvm-management") is Privilege.CVM_MANAGEMENT
    assert Privilege.from_name("CVMManagement") is Privilege.CVM_MANAGEMENT
    with pytest.raises(ValueError, match="unknown privilege"):
        Privilege.from_name("root")


@given(st.binary(min_size=3, max_size=3))
def test_parser_returns_value_or_decode_error_and_round_trips(raw: bytes) -> None:
    try:
        privileges = Privileges.from_bytes(raw)
    except DecodeError:
        return
    canonical = bytes((raw[0], raw[1], raw[2] & 0xF0))
    assert privileges.to_bytes() == canonical


@given(st.frozensets(st.sampled_from(list(Privilege))))
def test_sets_round_trip_once_normalised(members: frozenset[Privilege]) -> None:
    privileges = Privileges(members)
    again = Privileges.from_bytes(privileges.to_bytes())
    assert again.to_bytes() == privileges.to_bytes()
