"""gpchannel.ram.trigger: Administration Session Triggering Parameters (GP Amendment B Table 3-3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.ram.trigger import RetryPolicy, TimerCoding, TriggerParameters


def test_defaults() -> None:
    assert TriggerParameters().to_bytes() == bytes.fromhex("8100")
    parsed = TriggerParameters.from_bytes(bytes.fromhex("8100"))
    assert parsed.defaults and parsed == TriggerParameters()
    # empty containers read as their absence
    assert TriggerParameters.from_bytes(bytes.fromhex("81028300")).defaults
    assert TriggerParameters.from_bytes(bytes.fromhex("8104830289 00")).defaults


def test_full_layout_bytes() -> None:
    params = TriggerParameters(
        psk_identity=b"id-1",
        kvn=0x40,
        key_id=0x01,
        sha_type=0x02,
        retry=RetryPolicy(counter=5, delay_seconds=3600 + 30 * 60 + 45, failure_report=True),
        host="ras.example",
        agent_id="8944",
        uri="/ras",
        connection=bytes.fromhex("350103"),
        extended_security=bytes.fromhex("0102"),
        dns_resolution=bytes.fromhex("D603616263"),
    )
    expected = bytes.fromhex(
        "81 43"
        " 83 3A"
        "  84 03 350103"
        "  85 09 04 69642D31 02 40 01 02"
        "  A5 02 0102"
        "  86 09 0005 A503 10 03 54 8700"
        "  89 19 8A0B 7261732E6578616D706C65 8B04 38393434 8C04 2F726173"
        " B3 05 D603616263"
    )
    assert params.to_bytes() == expected
    assert TriggerParameters.from_bytes(expected) == params


def test_retry_policy_codings() -> None:
    # TS 102 223 8.38 semi-octets: 01:30:45 is 10 03 54
    assert RetryPolicy(2, 5445).to_bytes() == bytes.fromhex("0002A503100354")
    # njiwa writes binary bytes: 90 s = 00 01 1E, read back as binary
    njiwa = RetryPolicy.from_bytes(bytes.fromhex("0003A50300011E8700"))
    assert njiwa == RetryPolicy(3, 90, True, TimerCoding.BINARY)
    assert njiwa.to_bytes() == bytes.fromhex("0003A50300011E8700")
    # the tag without the comprehension-required bit is kept
    plain = RetryPolicy.from_bytes(bytes.fromhex("00012503000030"))
    assert plain.delay_seconds == 3 and plain.timer_tag == 0x25
    assert plain.to_bytes() == bytes.fromhex("00012503000030")


@pytest.mark.parametrize(
    ("value", "offset"),
    [
        ("0001A50300", 0),  # too short
        ("0001A40300001000", 2),  # not a timer TLV
        ("0001A50200001000", 2),  # timer length not 3
        ("0001A503007F00", 5),  # minute 7F: neither coding
        ("0001A5030000108701", 7),  # trailing garbage
    ],
)
def test_retry_policy_errors(value: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        RetryPolicy.from_bytes(bytes.fromhex(value), 10)
    assert info.value.offset == 10 + offset


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        ("8200", 0),  # not tag 81
        ("810083", 2),  # trailing byte
        ("8103830185", 5),  # truncated inner TLV
        ("8103 8301 87", 5),  # truncated: no length after 87
        ("8104 8302 8700", 4),  # unknown tag in 83
        ("8106 8304 84008400", 6),  # repeated tag
        ("8103 880100", 2),  # unknown tag in 81
        ("8109 8307 8505 04DEADBEEF", 6),  # 85 too short for its PSK id
        ("810A 8308 8506 01AA 03 0001 00", 8),  # KVN/KID length not 02
        ("810B 8309 8507 01AA 02 0001 0203", 12),  # two bytes after KID
        ("8108 8306 8904 8A02 FFFE", 8),  # host not UTF-8
        ("8104 8302 8500", 6),  # empty 85
    ],
)
def test_trigger_errors_carry_offsets(raw: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        TriggerParameters.from_bytes(bytes.fromhex(raw))
    assert info.value.offset == offset


def test_any_order_is_accepted_and_written_canonically() -> None:
    shuffled = bytes.fromhex("810C 830A 8904 8C02 2F61 8402 3501")
    params = TriggerParameters.from_bytes(shuffled)
    assert params == TriggerParameters(uri="/a", connection=bytes.fromhex("3501"))
    assert params.to_bytes() == bytes.fromhex("810C 830A 8402 3501 8904 8C02 2F61")


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        TriggerParameters(psk_identity=b"x", kvn=1)
    with pytest.raises(ValueError):
        TriggerParameters(sha_type=1)
    with pytest.raises(ValueError):
        TriggerParameters(psk_identity=bytes(256), kvn=1, key_id=1)
    with pytest.raises(ValueError):
        TriggerParameters(psk_identity=b"", kvn=256, key_id=1)
    with pytest.raises(ValueError):
        RetryPolicy(0x10000, 0)
    with pytest.raises(ValueError):
        RetryPolicy(1, 100 * 3600)
    with pytest.raises(ValueError):
        RetryPolicy(1, 0, timer_tag=0xA4)
    assert TriggerParameters(psk_identity=b"", kvn=0, key_id=0).to_bytes() == bytes.fromhex("8108 8306 8504 00 0200 00")


_text = st.text(max_size=40)
_bytes = st.binary(max_size=40)


@st.composite
def triggers(draw: st.DrawFn) -> TriggerParameters:
    security = draw(st.booleans())
    return TriggerParameters(
        psk_identity=draw(st.binary(max_size=60)) if security else None,
        kvn=draw(st.integers(0, 255)) if security else None,
        key_id=draw(st.integers(0, 255)) if security else None,
        sha_type=draw(st.none() | st.integers(0, 255)) if security else None,
        retry=draw(
            st.none()
            | st.builds(
                RetryPolicy,
                st.integers(0, 0xFFFF),
                st.integers(0, 100 * 3600 - 1),
                st.booleans(),
                st.just(TimerCoding.SEMI_OCTET),
                st.sampled_from([0xA5, 0x25]),
            )
        ),
        host=draw(st.none() | _text),
        agent_id=draw(st.none() | _text),
        uri=draw(st.none() | _text),
        connection=draw(st.none() | _bytes),
        extended_security=draw(st.none() | _bytes),
        dns_resolution=draw(st.none() | _bytes),
    )


@given(triggers())
def test_round_trip(params: TriggerParameters) -> None:
    raw = params.to_bytes()
    assert TriggerParameters.from_bytes(raw) == params
    assert TriggerParameters.from_bytes(raw).to_bytes() == raw


@given(st.binary(min_size=3, max_size=3))
def test_timer_bytes_round_trip_whatever_the_coding(timer: bytes) -> None:
    raw = bytes.fromhex("0001A503") + timer
    try:
        policy = RetryPolicy.from_bytes(raw)
    except DecodeError:
        return
    assert policy.to_bytes() == raw


@given(st.binary(max_size=80))
def test_any_bytes_raise_only_decode_errors(raw: bytes) -> None:
    try:
        params = TriggerParameters.from_bytes(raw)
    except DecodeError as exc:
        assert exc.offset is not None
    else:
        assert TriggerParameters.from_bytes(params.to_bytes()) == params
