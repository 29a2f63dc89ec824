"""GET DATA card data objects (66, 67, E0, FF21, 42/45) against GPShell, GlobalPlatformPro and pySim vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.gp.card_data import (
    CardCapabilities,
    CardRecognitionData,
    ExtendedCardResources,
    KeyComponentInfo,
    KeyInformation,
    ScpInfo,
    decode_key_information_template,
    decode_oid,
    decode_simple,
    encode_key_information_template,
    encode_oid,
    encode_simple,
)
from tests.vectors import VectorCase, params

VECTORS = "gp/card-data.json"


@pytest.mark.parametrize("case", params(VECTORS, "card-recognition-data"))
def test_card_recognition_data_gpshell(case: VectorCase) -> None:
    crd = CardRecognitionData.from_bytes(case.hex_in("data"))
    # Table H-1: the version is v in {globalPlatform 2 v}. Two of GPShell's cases carry {globalPlatform 2 2 3}
    # (v = 2.3) but are labelled "2.2.3" in the vector file; the OID bytes, read per the spec, say 2.3.
    two_arcs = "600B06092A864886FC6B020203" in str(case.inputs["data"]).upper()
    expected = "2.3" if two_arcs else case.expected["gp_version"]
    assert crd.gp_version == expected
    scp = case.expected["scp"]
    if isinstance(scp, str):
        assert crd.scps == ((int(scp, 16), int(case.expected["i"], 16)),)
        assert crd.card_configuration == case.expected.get("card_config_oid", crd.card_configuration)
        assert crd.chip_details == case.expected.get("chip_oid", crd.chip_details)
    else:
        # "03 i=60" and "11 i=0x9B06 (multi-byte OID arc = 3462)": the arcs as integers.
        assert crd.scps == ((0x03, 0x60), (0x11, 3462))
    assert CardRecognitionData.from_bytes(crd.to_bytes()) == crd


@pytest.mark.parametrize("case", params(VECTORS, "card-data-parse"))
def test_card_recognition_data_gppro(case: VectorCase) -> None:
    raw = case.hex_in("data")
    crd = CardRecognitionData.from_bytes(raw)
    assert crd.gp_version == case.expected["gp_version"]
    protocol, i = case.expected["scp"].removeprefix("SCP").split(" i=")
    assert crd.scps == ((int(protocol, 16), int(i, 16)),)
    assert crd.javacard_version == case.expected["javacard"]
    assert crd.to_bytes() == raw  # canonical encoding: ours writes the same bytes


@pytest.mark.parametrize("case", params(VECTORS, "card-capabilities"))
def test_card_capabilities_gpshell(case: VectorCase) -> None:
    raw = case.hex_in("data")
    caps = CardCapabilities.from_bytes(raw)
    e = case.expected
    assert [s.protocol for s in caps.scps] == [int(e["scp"], 16)]
    assert caps.options_for(0x02) == bytes.fromhex("".join(e["i"]))
    assert caps.ssd_privileges == bytes.fromhex(e["ssd_privs"])
    assert caps.application_privileges == bytes.fromhex(e["app_privs"])
    assert caps.lfdbh_algorithms == bytes.fromhex("".join(e["lfdbh"]))
    assert caps.lfdb_encryption_suites == bytes.fromhex(e["lfdb_enc"])
    # GPShell widens the suite fields to 2 bytes (Table H-9 allows 1 or 2): compare the same way.
    for name, key in (
        ("token_suites", "token_suites"),
        ("receipt_suites", "receipt_suites"),
        ("dap_suites", "dap_suites"),
    ):
        value = getattr(caps, name)
        assert value is not None
        assert value.ljust(2, b"\x00") == bytes.fromhex(e[key])
    assert caps.to_bytes() == raw


@pytest.mark.parametrize("case", params(VECTORS, "card-capabilities-parse"))
def test_card_capabilities_gppro(case: VectorCase) -> None:
    raw = case.hex_in("data")
    caps = CardCapabilities.from_bytes(raw)
    if "scp03_i" in case.expected:
        assert caps.options_for(0x03) == bytes.fromhex("".join(case.expected["scp03_i"]))
        assert caps.options_for(0x02) == bytes.fromhex("".join(case.expected["scp02_i"]))
        assert [s.keys for s in caps.scps if s.protocol == 3] == [b"\x07"]
        assert caps.to_bytes() == raw
    else:  # the nested 67 workaround: the inner template is what counts
        assert caps.options_for(0x02) == b"\x55"
        assert caps.options_for(0x03) == bytes.fromhex("0010")
        assert caps.key_parameter_references == bytes.fromhex("0102030405")
        assert CardCapabilities.from_bytes(caps.to_bytes()) == caps


@pytest.mark.parametrize("case", params(VECTORS, "key-info-template"))
def test_key_information_template_gppro(case: VectorCase) -> None:
    raw = case.hex_in("data")
    entries = decode_key_information_template(raw)
    assert len(entries) == case.expected["entries"]
    assert encode_key_information_template(entries) == raw


def test_key_information_extended_fields() -> None:
    (entry,) = decode_key_information_template(bytes.fromhex("E010C00E0202FF880010FF10000101000100"))
    assert entry.extended
    assert entry.components == (KeyComponentInfo(0xFF88, 16), KeyComponentInfo(0xFF10, 1))
    assert (entry.usage, entry.access) == (b"\x00", b"\x00")


@pytest.mark.parametrize("case", params(VECTORS, "gp-key-information-tlv"))
def test_key_information_pysim(case: VectorCase) -> None:
    raw = case.hex_in("encoded")
    info = KeyInformation.from_bytes(raw)
    d = case.expected["decoded"]
    types = {"des": 0x80, "aes": 0x88}
    assert info.key_id == d["key_identifier"]
    assert info.kvn == d["key_version_number"]
    assert info.components == tuple(KeyComponentInfo(types[k["type"]], k["length"]) for k in d["key_types"])
    assert info.to_bytes() == raw


@pytest.mark.parametrize("case", params(VECTORS, "extended-card-resources"))
def test_extended_card_resources(case: VectorCase) -> None:
    raw = case.hex_in("data")
    res = ExtendedCardResources.from_bytes(raw)
    assert res.installed_applications == case.expected["installed_apps"]
    assert res.free_non_volatile_memory == int(case.expected["free_nvm"], 16)
    assert res.free_volatile_memory == int(case.expected["free_vm"], 16)
    assert res.to_bytes() == raw


def test_oid_multi_byte_arcs() -> None:
    arcs = (1, 2, 840, 114283, 4, 0x11, 3462)
    assert encode_oid(arcs).hex().upper() == "2A864886FC6B04119B06"
    assert decode_oid(encode_oid(arcs)) == arcs


@given(st.lists(st.integers(0, 2**32), min_size=1, max_size=8), st.integers(0, 39))
def test_oid_round_trip(tail: list[int], second: int) -> None:
    arcs = (1, second, *tail)
    assert decode_oid(encode_oid(arcs)) == arcs


@given(
    st.lists(st.tuples(st.integers(1, 0x7F), st.integers(0, 0xFF)), max_size=4),
    st.sampled_from([None, "2.1.1", "2.3.1"]),
)
def test_recognition_round_trip(scps: list[tuple[int, int]], version: str | None) -> None:
    crd = CardRecognitionData(version, tuple(scps), "1.2.840.114283.5.7.2.0.0", None)
    assert CardRecognitionData.from_bytes(crd.to_bytes()) == crd


@given(
    st.lists(
        st.builds(ScpInfo, st.integers(0, 255), st.binary(max_size=6), st.none() | st.binary(max_size=2)), max_size=3
    ),
    st.none() | st.binary(min_size=3, max_size=3),
)
def test_capabilities_round_trip(scps: list[ScpInfo], privileges: bytes | None) -> None:
    caps = CardCapabilities(tuple(scps), privileges, b"\x1e\x03\x00", b"\x02")
    assert CardCapabilities.from_bytes(caps.to_bytes()) == caps


@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.lists(st.builds(KeyComponentInfo, st.integers(0, 0xFE), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_key_information_round_trip(kid: int, kvn: int, comps: list[KeyComponentInfo]) -> None:
    info = KeyInformation(kid, kvn, tuple(comps))
    assert KeyInformation.from_bytes(info.to_bytes()) == info


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_resources_round_trip(apps: int, nvm: int, vm: int) -> None:
    res = ExtendedCardResources(apps, nvm, vm)
    assert ExtendedCardResources.from_bytes(res.to_bytes()) == res


def test_iin_cin() -> None:
    assert decode_simple(0x42, encode_simple(0x42, b"\x12\x34")) == b"\x12\x34"
    with pytest.raises(DecodeError):
        decode_simple(0x45, encode_simple(0x42, b"\x12\x34"))


@pytest.mark.parametrize(
    "decoder",
    [
        CardRecognitionData.from_bytes,
        CardCapabilities.from_bytes,
        decode_key_information_template,
        ExtendedCardResources.from_bytes,
        KeyInformation.from_bytes,
    ],
)
@given(raw=st.binary(max_size=80))
def test_parsers_return_or_raise_decode_error(decoder: object, raw: bytes) -> None:
    assert callable(decoder)
    try:
        decoder(raw)
    except DecodeError:
        pass
