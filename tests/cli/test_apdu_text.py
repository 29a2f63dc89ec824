"""The CLI's APDU text parser against GlobalPlatformPro's TestAPDUParser cases, plus hex and number parsing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.cli.apdu_text import parse_apdu_text, parse_hex, parse_int, parse_security_level
from gpchannel.codec.apdu import CommandApdu
from gpchannel.scp.common import SecurityLevel
from tests.vectors import VectorCase, params


@pytest.mark.parametrize("case", params("host/commands.json", "apdu-parse"))
def test_gppro_apdu_parser_cases(case: VectorCase) -> None:
    text = str(case.inputs["text"])
    if "{" in text:
        # GPPro encodes a YAML-ish payload as CBOR; our CLI takes hex only and says so.
        with pytest.raises(ValueError, match="only hex"):
            parse_apdu_text(text)
        return
    assert parse_apdu_text(text).to_bytes() == case.hex_out("apdu")


@given(
    st.builds(
        CommandApdu,
        st.sampled_from([0x00, 0x80, 0x84]),
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=255),
        st.none() | st.integers(1, 256),
    )
)
def test_well_formed_apdus_pass_through(command: CommandApdu) -> None:
    assert parse_apdu_text(command.to_bytes().hex()) == command


def test_hex_and_numbers() -> None:
    assert parse_hex("0xA0 00:00") == bytes.fromhex("A00000")
    assert parse_int("0x30") == 48
    assert parse_int("48") == 48
    with pytest.raises(ValueError, match="hex"):
        parse_hex("A0G0")
    with pytest.raises(ValueError, match="4 header"):
        parse_apdu_text("0022")
    with pytest.raises(ValueError):
        parse_int("3O")


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("clr", 0x00),
        ("MAC", 0x01),
        (" enc ", 0x03),
        ("mac+rmac", 0x11),
        ("enc+rmac", 0x13),
        ("enc+renc", 0x33),
        ("rmac", 0x10),
        ("33", 0x33),
        ("0x03", 0x03),
    ],
)
def test_security_level_names_and_bytes(text: str, level: int) -> None:
    assert parse_security_level(text) == SecurityLevel(level)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max", "expected a hex byte (00, 01, 03, 11, 13, 33) or one of clr, mac, enc"),
        ("02", "C-DECRYPTION requires C-MAC"),
        ("23", "R-ENCRYPTION requires R-MAC and C-DECRYPTION"),
        ("40", "RFU bits set"),
    ],
)
def test_security_level_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_security_level(text)
