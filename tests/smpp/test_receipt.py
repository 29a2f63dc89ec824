"""gpchannel.smpp.receipt: SMPP 3.4 Appendix B delivery receipts, esm_class and registered_delivery bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.smpp.receipt import DeliveryReceipt, MessageState, is_receipt, receipt_wanted

# The layout of SMPP 3.4 Appendix B (as SMSCs send it), written out by hand.
TYPICAL = b"id:1234567890 sub:001 dlvrd:001 submit date:0610191018 done date:0610191019 stat:DELIVRD err:000 text:hello"


def test_typical_receipt_text() -> None:
    receipt = DeliveryReceipt.from_text(TYPICAL)
    assert receipt == DeliveryReceipt(
        "1234567890", MessageState.DELIVERED, 0, "0610191018", "0610191019", 1, 1, "hello"
    )
    assert receipt.to_text() == TYPICAL


def test_undelivered_receipt_keeps_error_and_case() -> None:
    raw = b"id:AB sub:001 dlvrd:000 submit date:2611262024 done date:2611262025 Stat:UNDELIV err:001 Text:sw 6A80"
    receipt = DeliveryReceipt.from_text(raw)
    assert (receipt.state, receipt.error, receipt.delivered, receipt.text) == (
        MessageState.UNDELIVERABLE,
        1,
        0,
        "sw 6A80",
    )


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b"sub:001 stat:DELIVRD", 20),  # no id
        (b"id:1 sub:001", 12),  # no stat
        (b"id:1 stat:GONE", 10),  # unknown state word
        (b"id:1 sub:1x stat:DELIVRD", 9),  # sub not digits
        (b"id:1 submit date:0610 stat:DELIVRD", 17),  # date not YYMMDDhhmm
        (b"id:\xff stat:DELIVRD", 3),  # not ASCII
    ],
)
def test_bad_receipts_name_the_offset(raw: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        DeliveryReceipt.from_text(raw)
    assert info.value.offset == offset


_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64).filter(
    lambda s: ":" not in s
)
_stamps = st.from_regex(r"\A[0-9]{10}\Z")


@given(
    _ids,
    st.sampled_from(list(MessageState)),
    st.integers(0, 999),
    _stamps,
    _stamps,
    st.integers(0, 999),
    st.integers(0, 999),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).filter(lambda s: ":" not in s),
)
def test_round_trip(
    message_id: str, state: MessageState, err: int, sub_d: str, done_d: str, sub: int, dlvrd: int, text: str
) -> None:
    receipt = DeliveryReceipt(message_id, state, err, sub_d, done_d, sub, dlvrd, text)
    assert DeliveryReceipt.from_text(receipt.to_text()) == receipt


@given(st.binary(max_size=200))
def test_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        receipt = DeliveryReceipt.from_text(raw)
    except DecodeError:
        return
    assert isinstance(receipt, DeliveryReceipt)


def test_esm_class_and_registered_delivery() -> None:
    assert is_receipt(0x04) and not is_receipt(0x40) and not is_receipt(0x00) and not is_receipt(0x08)
    assert is_receipt(0x44)  # a receipt with UDHI set is still a receipt
    # registered_delivery bits 1..0: 00 none, 01 success or failure, 10 failure only (SMPP 3.4 5.2.17)
    table = {(r, d): receipt_wanted(r, d) for r in (0, 1, 2, 3) for d in (True, False)}
    assert table == {
        (0, True): False,
        (0, False): False,
        (1, True): True,
        (1, False): True,
        (2, True): False,
        (2, False): True,
        (3, True): False,
        (3, False): False,
    }
