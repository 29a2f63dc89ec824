"""Status words (ISO/IEC 7816-4:2013, 5.6; GP Card Specification 2.3.1, 11.1.3 and chapter 11 tables)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel import errors
from gpchannel.codec.sw import StatusWord, SwCategory, bytes_available, category, describe, exact_le, is_success


@pytest.mark.parametrize(
    ("sw", "cat"),
    [
        (0x9000, SwCategory.NORMAL),
        (0x6110, SwCategory.NORMAL),
        (0x6200, SwCategory.WARNING),
        (0x6283, SwCategory.WARNING),
        (0x6310, SwCategory.WARNING),
        (0x63C2, SwCategory.WARNING),
        (0x6400, SwCategory.EXECUTION_ERROR),
        (0x6581, SwCategory.EXECUTION_ERROR),
        (0x6600, SwCategory.EXECUTION_ERROR),
        (0x6700, SwCategory.CHECKING_ERROR),
        (0x6C10, SwCategory.CHECKING_ERROR),
        (0x6F00, SwCategory.CHECKING_ERROR),
        (0x9484, SwCategory.PROPRIETARY),
        (0x9001, SwCategory.PROPRIETARY),
        (0x6000, SwCategory.INVALID),
        (0x0000, SwCategory.INVALID),
        (0x7000, SwCategory.INVALID),
    ],
)
def test_category(sw: int, cat: SwCategory) -> None:
    assert category(sw) is cat
    assert is_success(sw) == (cat is SwCategory.NORMAL)


@pytest.mark.parametrize(
    ("sw", "text"),
    [
        (0x9000, "9000: success"),
        (0x6982, "6982: security status not satisfied"),
        (0x6A88, "6A88: referenced data not found"),
        (0x6283, "6283: warning: card life cycle state is CARD_LOCKED (or selected file deactivated)"),
        (0x6300, "6300: authentication of the host cryptogram failed"),
        (0x6110, "6110: 16 response bytes still available (GET RESPONSE)"),
        (0x6100, "6100: 256 response bytes still available (GET RESPONSE)"),
        (0x6C20, "6C20: wrong Le: 32 bytes expected"),
        (0x6C00, "6C00: wrong Le: 256 bytes expected"),
        (0x63C3, "63C3: warning: counter is 3 (e.g. retries left)"),
        (0x6A99, "6A99: wrong parameters (unknown SW2 99)"),
        (0x9485, "9485: invalid key check value"),
        (0x9123, "9123: proprietary status"),
        (0x1234, "1234: unknown status word"),
    ],
)
def test_describe(sw: int, text: str) -> None:
    assert describe(sw) == text


def test_gp_general_error_conditions_are_named() -> None:
    """GP 2.3.1, Table 11-10, and the words the task lists, are all members with a specific meaning."""
    for sw in (0x6400, 0x6700, 0x6881, 0x6982, 0x6985, 0x6A86, 0x6D00, 0x6E00):
        assert StatusWord(sw).value == sw
    for sw in (0x6200, 0x6283, 0x6310, 0x6581, 0x6882, 0x6983, 0x6984, 0x6A80, 0x6A81, 0x6A82, 0x6A84, 0x6B00):
        assert sw in StatusWord.__members__.values()
    for member in StatusWord:
        assert "unknown" not in describe(member), member


def test_card_error_classes_match_status_words() -> None:
    """The card-side exceptions in errors.py carry the status words of the same name."""
    pairs = {
        errors.WrongLength: StatusWord.WRONG_LENGTH,
        errors.SecurityNotSatisfied: StatusWord.SECURITY_STATUS_NOT_SATISFIED,
        errors.ConditionsNotSatisfied: StatusWord.CONDITIONS_NOT_SATISFIED,
        errors.IncorrectData: StatusWord.INCORRECT_DATA,
        errors.FunctionNotSupported: StatusWord.FUNCTION_NOT_SUPPORTED,
        errors.FileNotFound: StatusWord.FILE_NOT_FOUND,
        errors.NotEnoughMemory: StatusWord.NOT_ENOUGH_MEMORY,
        errors.IncorrectP1P2: StatusWord.INCORRECT_P1_P2,
        errors.ReferencedDataNotFound: StatusWord.REFERENCED_DATA_NOT_FOUND,
        errors.InsNotSupported: StatusWord.INS_NOT_SUPPORTED,
        errors.ClaNotSupported: StatusWord.CLA_NOT_SUPPORTED,
        errors.MemoryFailure: StatusWord.MEMORY_FAILURE,
    }
    for cls, sw in pairs.items():
        assert cls.sw == sw


@given(st.integers(0, 0xFFFF))
def test_describe_any(sw: int) -> None:
    text = describe(sw)
    assert text.startswith(f"{sw:04X}: ") and len(text) > 6
    assert isinstance(category(sw), SwCategory)


@pytest.mark.parametrize("bad", [-1, 0x10000])
def test_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="two bytes"):
        describe(bad)
    with pytest.raises(ValueError, match="two bytes"):
        category(bad)


def test_families() -> None:
    """61 XX and 6C XX carry a byte count; 00 stands for 256 (ISO 7816-4, 5.6)."""
    assert [bytes_available(sw) for sw in (0x6101, 0x61FF, 0x6100, 0x9000, 0x6C10)] == [1, 255, 256, None, None]
    assert [exact_le(sw) for sw in (0x6C01, 0x6C00, 0x6110, 0x6700)] == [1, 256, None, None]
    with pytest.raises(ValueError, match="two bytes"):
        bytes_available(0x10000)
    with pytest.raises(ValueError, match="two bytes"):
        exact_le(-1)
