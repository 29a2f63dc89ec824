"""CPLC (GET DATA 9F7F) against GPShell and GlobalPlatformPro vectors, plus round trips."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.gp.cplc import CPLC_LENGTH, Cplc, cplc_date, encode_cplc_date
from tests.vectors import VectorCase, params

VECTORS = "gp/cplc.json"


@pytest.mark.parametrize("case", params(VECTORS, "cplc-parse"))
def test_cplc_parse(case: VectorCase) -> None:
    raw = case.hex_in("data")
    cplc = Cplc.from_bytes(raw)
    assert cplc.as_dict() == {k: v.upper() for k, v in case.expected.items()}
    assert cplc.to_bytes() == raw
    assert Cplc.from_bytes(raw[3:]) == cplc  # without the 9F7F tag and length


@pytest.mark.parametrize("case", params(VECTORS, "cplc-date"))
def test_cplc_date(case: VectorCase) -> None:
    today = datetime.date.fromisoformat(case.inputs.get("today", "2024-01-01"))
    got = cplc_date(case.hex_in("date_bytes"), today)
    expected = case.expected["date"]
    assert got == (datetime.date.fromisoformat(expected) if expected else None)


def test_cplc_date_rejects_ffff_and_leap_day_in_common_year() -> None:
    today = datetime.date(2026, 12, 31)
    assert cplc_date(b"\xff\xff", today) is None
    # Day 366 does not exist in 2026 (common year), so the previous decade's leap year 2016 is meant.
    assert cplc_date(bytes.fromhex("6366"), today) == datetime.date(2016, 12, 31)
    assert cplc_date(bytes.fromhex("5366"), today) is None  # 2025 and 2015 are both common years


@given(st.dates(min_value=datetime.date(2001, 1, 1), max_value=datetime.date(2090, 12, 31)), st.integers(0, 3000))
def test_cplc_date_round_trip_within_a_decade(date: datetime.date, days_later: int) -> None:
    today = date + datetime.timedelta(days=days_later)
    assert cplc_date(encode_cplc_date(date), today) == date


@given(st.binary(min_size=CPLC_LENGTH, max_size=CPLC_LENGTH))
def test_round_trip(body: bytes) -> None:
    cplc = Cplc.from_bytes(body)
    assert cplc.to_bytes(with_tag=False) == body
    assert Cplc.from_bytes(cplc.to_bytes()) == cplc


@given(st.binary(max_size=60))
def test_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        Cplc.from_bytes(raw)
    except DecodeError:
        pass


def test_wrong_length_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="42 bytes"):
        Cplc.from_bytes(bytes(41))
