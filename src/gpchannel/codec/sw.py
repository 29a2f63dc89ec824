"""Status words SW1-SW2 (ISO/IEC 7816-4:2013, 5.6; GlobalPlatform Card Specification 2.3.1, 11.1.3 and the
per-command error tables of chapter 11).

SW1 sorts a status into a category (ISO 7816-4, 5.6, Table 5): 90 00 and 61 XX are normal processing, 62 and 63
warnings, 64 to 66 execution errors, 67 to 6F checking errors. 9X XX other than 90 00 are proprietary (GP
2.3.1 still lists 94 84 and 94 85, deprecated). Families whose SW2 is a number (61 XX bytes available, 6C XX
exact Le, 63 CX retry counter) are explained by :func:`describe` rather than enumerated.
"""

from __future__ import annotations

from enum import Enum, IntEnum

__all__ = ["StatusWord", "SwCategory", "bytes_available", "category", "describe", "exact_le", "is_success"]


class StatusWord(IntEnum):
    """The single status words that ISO 7816-4 and GlobalPlatform 2.3.1 name (families are in :func:`describe`)."""

    SUCCESS = 0x9000
    # 62 XX: warning, state of non-volatile memory unchanged
    NO_INFORMATION = 0x6200
    DATA_MAY_BE_CORRUPTED = 0x6281
    END_OF_FILE_REACHED = 0x6282
    CARD_LOCKED = 0x6283
    """GP 2.3.1, 11.9.3 (SELECT): card life cycle state CARD_LOCKED; ISO 7816-4: selected file deactivated."""
    FCI_NOT_FORMATTED = 0x6284
    FILE_TERMINATED = 0x6285
    # 63 XX: warning, state of non-volatile memory changed
    AUTHENTICATION_FAILED = 0x6300
    """GP 2.3.1, 11.10 (EXTERNAL AUTHENTICATE): authentication of the host cryptogram failed."""
    MORE_DATA_AVAILABLE = 0x6310
    """GP 2.3.1, 11.4 (GET STATUS) and 11.3 (GET DATA): more data available."""
    FILE_FILLED_UP = 0x6381
    # 64 XX, 65 XX: execution errors
    NO_SPECIFIC_DIAGNOSIS = 0x6400
    MEMORY_UNCHANGED_ERROR = 0x6500
    MEMORY_FAILURE = 0x6581
    # 67 XX to 6F XX: checking errors
    WRONG_LENGTH = 0x6700
    CLA_FUNCTION_NOT_SUPPORTED = 0x6800
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    COMMAND_CHAINING_NOT_SUPPORTED = 0x6884
    COMMAND_NOT_ALLOWED = 0x6900
    COMMAND_INCOMPATIBLE_WITH_FILE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_CURRENT_EF = 0x6986
    SM_DATA_OBJECTS_MISSING = 0x6987
    SM_DATA_OBJECTS_INCORRECT = 0x6988
    APPLET_SELECTION_FAILED = 0x6999
    """Java Card (not ISO): the applet refused selection."""
    WRONG_PARAMETERS = 0x6A00
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    """GP: selected application / file not found."""
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    LC_INCONSISTENT_WITH_TLV = 0x6A85
    INCORRECT_P1_P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1_P2 = 0x6A87
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    FILE_ALREADY_EXISTS = 0x6A89
    WRONG_P1_P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00
    # 9X XX: proprietary (GP 2.3.1, Table 11-68, PUT KEY: both deprecated)
    ALGORITHM_NOT_SUPPORTED = 0x9484
    """GP 2.3.1 PUT KEY, deprecated: 6A80 is to be used instead."""
    INVALID_KEY_CHECK_VALUE = 0x9485
    """GP 2.3.1 PUT KEY, deprecated: 6982 is to be used instead."""


class SwCategory(Enum):
    """The class of a status word by SW1 (ISO 7816-4:2013, 5.6, Table 5)."""

    NORMAL = "normal processing"
    WARNING = "warning"
    EXECUTION_ERROR = "execution error"
    CHECKING_ERROR = "checking error"
    PROPRIETARY = "proprietary"
    INVALID = "invalid"
    """SW1 outside 6X and 9X, or 60: not a status word ISO allows."""


_MEANINGS: dict[int, str] = {
    StatusWord.SUCCESS: "success",
    StatusWord.NO_INFORMATION: "warning: no information given, memory unchanged",
    StatusWord.DATA_MAY_BE_CORRUPTED: "warning: part of the returned data may be corrupted",
    StatusWord.END_OF_FILE_REACHED: "warning: end of file or record reached before reading Ne bytes",
    StatusWord.CARD_LOCKED: "warning: card life cycle state is CARD_LOCKED (or selected file deactivated)",
    StatusWord.FCI_NOT_FORMATTED: "warning: file control information not formatted",
    StatusWord.FILE_TERMINATED: "warning: selected file in termination state",
    StatusWord.AUTHENTICATION_FAILED: "authentication of the host cryptogram failed",
    StatusWord.MORE_DATA_AVAILABLE: "more data available (repeat the command with the 'next' option)",
    StatusWord.FILE_FILLED_UP: "warning: file filled up by the last write",
    StatusWord.NO_SPECIFIC_DIAGNOSIS: "execution error: no specific diagnosis",
    StatusWord.MEMORY_UNCHANGED_ERROR: "execution error: no information given, memory changed",
    StatusWord.MEMORY_FAILURE: "memory failure",
    StatusWord.WRONG_LENGTH: "wrong length (Lc or Le)",
    StatusWord.CLA_FUNCTION_NOT_SUPPORTED: "functions in CLA not supported",
    StatusWord.LOGICAL_CHANNEL_NOT_SUPPORTED: "logical channel not supported or not active",
    StatusWord.SECURE_MESSAGING_NOT_SUPPORTED: "secure messaging not supported",
    StatusWord.LAST_COMMAND_OF_CHAIN_EXPECTED: "last command of the chain expected",
    StatusWord.COMMAND_CHAINING_NOT_SUPPORTED: "command chaining not supported",
    StatusWord.COMMAND_NOT_ALLOWED: "command not allowed, no information given",
    StatusWord.COMMAND_INCOMPATIBLE_WITH_FILE: "command incompatible with file structure",
    StatusWord.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied",
    StatusWord.AUTHENTICATION_METHOD_BLOCKED: "authentication method blocked",
    StatusWord.REFERENCE_DATA_NOT_USABLE: "reference data not usable (invalidated)",
    StatusWord.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    StatusWord.COMMAND_NOT_ALLOWED_NO_CURRENT_EF: "command not allowed (no current EF)",
    StatusWord.SM_DATA_OBJECTS_MISSING: "expected secure messaging data objects missing",
    StatusWord.SM_DATA_OBJECTS_INCORRECT: "incorrect secure messaging data objects",
    StatusWord.APPLET_SELECTION_FAILED: "applet selection failed",
    StatusWord.WRONG_PARAMETERS: "wrong parameters, no information given",
    StatusWord.INCORRECT_DATA: "incorrect values in command data",
    StatusWord.FUNCTION_NOT_SUPPORTED: "function not supported (e.g. card life cycle state is CARD_LOCKED)",
    StatusWord.FILE_NOT_FOUND: "application or file not found",
    StatusWord.RECORD_NOT_FOUND: "record not found",
    StatusWord.NOT_ENOUGH_MEMORY: "not enough memory space",
    StatusWord.LC_INCONSISTENT_WITH_TLV: "Nc inconsistent with TLV structure",
    StatusWord.INCORRECT_P1_P2: "incorrect P1 P2",
    StatusWord.LC_INCONSISTENT_WITH_P1_P2: "Nc inconsistent with P1 P2",
    StatusWord.REFERENCED_DATA_NOT_FOUND: "referenced data not found",
    StatusWord.FILE_ALREADY_EXISTS: "file already exists",
    StatusWord.WRONG_P1_P2: "wrong parameters P1 P2",
    StatusWord.INS_NOT_SUPPORTED: "instruction not supported or invalid",
    StatusWord.CLA_NOT_SUPPORTED: "class not supported",
    StatusWord.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
    StatusWord.ALGORITHM_NOT_SUPPORTED: "algorithm not supported",
    StatusWord.INVALID_KEY_CHECK_VALUE: "invalid key check value",
}

_SW1_GENERIC: dict[int, str] = {
    0x62: "warning, memory unchanged",
    0x63: "warning, memory changed",
    0x64: "execution error, memory unchanged",
    0x65: "execution error, memory changed",
    0x66: "execution error, security-related",
    0x67: "wrong length",
    0x68: "functions in CLA not supported",
    0x69: "command not allowed",
    0x6A: "wrong parameters",
    0x6B: "wrong parameters P1 P2",
    0x6D: "instruction not supported or invalid",
    0x6E: "class not supported",
    0x6F: "no precise diagnosis",
}


def _check(sw: int) -> None:
    if not 0 <= sw <= 0xFFFF:
        raise ValueError(f"a status word is two bytes (0..0xFFFF), got {sw}")


def category(sw: int) -> SwCategory:
    """The category of ``sw`` by its SW1 (ISO 7816-4:2013, 5.6)."""
    _check(sw)
    sw1 = sw >> 8
    if sw == 0x9000 or sw1 == 0x61:
        return SwCategory.NORMAL
    if sw1 in (0x62, 0x63):
        return SwCategory.WARNING
    if sw1 in (0x64, 0x65, 0x66):
        return SwCategory.EXECUTION_ERROR
    if 0x67 <= sw1 <= 0x6F:
        return SwCategory.CHECKING_ERROR
    if sw1 & 0xF0 == 0x90:
        return SwCategory.PROPRIETARY
    return SwCategory.INVALID


def is_success(sw: int) -> bool:
    """Whether ``sw`` is normal processing: 90 00, or 61 XX (more response bytes available)."""
    return category(sw) is SwCategory.NORMAL


def bytes_available(sw: int) -> int | None:
    """For 61 XX, how many response bytes a GET RESPONSE can fetch (XX, 00 meaning 256); else None.

    ISO 7816-4:2013, 5.6 (and 7816-3, 12.2.2: the T=0 procedure a host transport follows).
    """
    _check(sw)
    return ((sw & 0xFF) or 256) if sw >> 8 == 0x61 else None


def exact_le(sw: int) -> int | None:
    """For 6C XX, the Le to re-issue the same command with (XX, 00 meaning 256); else None (ISO 7816-4, 5.6)."""
    _check(sw)
    return ((sw & 0xFF) or 256) if sw >> 8 == 0x6C else None


def describe(sw: int) -> str:
    """A person-readable meaning of any status word, e.g. ``"6982: security status not satisfied"``.

    Families: 61 XX (XX bytes still available, ISO 7816-4 5.6), 6C XX (wrong Le, XX bytes expected),
    63 CX (counter X, e.g. retries left), 62 02-80 (triggering by the card); anything else falls back on its SW1
    class, then on "unknown".
    """
    _check(sw)
    sw1, sw2 = sw >> 8, sw & 0xFF
    meaning = _MEANINGS.get(sw)
    if meaning is None:
        if sw1 == 0x61:
            meaning = f"{bytes_available(sw)} response bytes still available (GET RESPONSE)"
        elif sw1 == 0x6C:
            meaning = f"wrong Le: {exact_le(sw)} bytes expected"
        elif sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
            meaning = f"warning: counter is {sw2 & 0x0F} (e.g. retries left)"
        elif sw1 == 0x62 and 0x02 <= sw2 <= 0x80:
            meaning = f"warning: triggering by the card ({sw2} bytes of query data)"
        elif sw1 in _SW1_GENERIC:
            meaning = f"{_SW1_GENERIC[sw1]} (unknown SW2 {sw2:02X})"
        elif sw1 & 0xF0 == 0x90:
            meaning = "proprietary status"
        else:
            meaning = "unknown status word"
    return f"{sw:04X}: {meaning}"
