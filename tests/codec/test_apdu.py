"""CommandApdu / ResponseApdu (ISO/IEC 7816-3, 12.1.3; ISO/IEC 7816-4, 5.1 and 5.4.1)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import (
    CommandApdu,
    ResponseApdu,
    cla_channel,
    cla_for_channel,
    cla_has_secure_messaging,
    cla_with_secure_messaging,
)
from gpchannel.errors import DecodeError
from tests.vectors import VectorCase, params

HDR = bytes.fromhex("80CA9F7F")

# -- strategies -----------------------------------------------------------------------------------------------

byte = st.integers(0, 0xFF)
cla_st = byte.filter(lambda c: c != 0xFF)


@st.composite
def command_apdus(draw: st.DrawFn) -> CommandApdu:
    """Any valid command APDU: the four cases, short and extended."""
    extended = draw(st.booleans())
    max_data = 65535 if extended else 255
    # Keep extended data modest in most draws, but reach the limits now and then.
    size = draw(st.one_of(st.integers(0, min(max_data, 300)), st.sampled_from([max_data])))
    data = draw(st.binary(min_size=size, max_size=size))
    le = draw(st.one_of(st.none(), st.integers(1, 65536 if extended else 256)))
    return CommandApdu(draw(cla_st), draw(byte), draw(byte), draw(byte), data, le, extended)


# -- round trips ----------------------------------------------------------------------------------------------


@given(command_apdus())
def test_command_round_trip(apdu: CommandApdu) -> None:
    raw = apdu.to_bytes()
    assert CommandApdu.from_bytes(raw) == apdu
    assert CommandApdu.from_bytes(raw).to_bytes() == raw


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    r = ResponseApdu(data, sw)
    assert ResponseApdu.from_bytes(r.to_bytes()) == r
    assert (r.sw1, r.sw2) == (sw >> 8, sw & 0xFF)


# -- the fuzz rule: a value or DecodeError, nothing else --------------------------------------------------------


@given(st.binary(max_size=600))
def test_command_decode_returns_value_or_decode_error(raw: bytes) -> None:
    try:
        apdu = CommandApdu.from_bytes(raw)
    except DecodeError:
        return
    assert apdu.to_bytes() == raw  # a strict decoder accepts only canonical encodings


@given(st.binary(min_size=4, max_size=4).filter(lambda h: h[0] != 0xFF), st.binary(max_size=80))
def test_command_decode_header_plus_noise(header: bytes, body: bytes) -> None:
    """Bodies that look like length fields (00 first byte, small Lc) reach the extended branches too."""
    for raw in (header + body, header + b"\x00" + body, header + bytes((len(body),)) + body):
        try:
            apdu = CommandApdu.from_bytes(raw)
        except DecodeError:
            continue
        assert apdu.to_bytes() == raw


@given(st.binary(max_size=40))
def test_response_decode_returns_value_or_decode_error(raw: bytes) -> None:
    try:
        r = ResponseApdu.from_bytes(raw)
    except DecodeError:
        assert len(raw) < 2
        return
    assert r.to_bytes() == raw


# -- encodings by case (ISO 7816-3, 12.1.3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apdu", "wire", "case"),
    [
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F), "80CA9F7F", 1),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=1), "80CA9F7F01", 2),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256), "80CA9F7F00", 2),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=257), "80CA9F7F000101", 2),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=65536), "80CA9F7F000000", 2),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256, extended=True), "80CA9F7F000100", 2),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, b"\xaa"), "80CA9F7F01AA", 3),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, b"\xaa", extended=True), "80CA9F7F000001AA", 3),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, b"\xaa", le=256), "80CA9F7F01AA00", 4),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, b"\xaa", le=65536), "80CA9F7F000001AA0000", 4),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, b"\xaa", le=2, extended=True), "80CA9F7F000001AA0002", 4),
    ],
)
def test_known_encodings(apdu: CommandApdu, wire: str, case: int) -> None:
    raw = bytes.fromhex(wire)
    assert apdu.to_bytes() == raw
    assert apdu.case == case
    assert CommandApdu.from_bytes(raw) == apdu


def test_long_data_forces_extended_and_normalises() -> None:
    apdu = CommandApdu(0x00, 0xD6, 0, 0, bytes(256))
    assert apdu.is_extended and not apdu.extended  # needed, not forced
    assert apdu.to_bytes()[4:7] == b"\x00\x01\x00"
    assert apdu == CommandApdu(0x00, 0xD6, 0, 0, bytes(256), extended=True)
    # Case 1 has no length field: "extended" means nothing there.
    assert CommandApdu(0, 0xA4, 0, 0, extended=True) == CommandApdu(0, 0xA4, 0, 0)
    assert CommandApdu(0, 0xA4, 0, 0, extended=True).to_bytes() == bytes.fromhex("00A40000")
    # A forced flag survives changes that shrink the APDU; a needed one does not linger.
    forced = CommandApdu(0, 0xB0, 0, 0, le=16, extended=True)
    assert forced.extended and forced.with_changes(le=32).to_bytes() == bytes.fromhex("00B00000000020")
    assert apdu.with_changes(data=b"\x01").to_bytes() == bytes.fromhex("00D600000101")


def test_max_sizes() -> None:
    short = CommandApdu(0, 0xD6, 0, 0, bytes(255), le=256)
    assert not short.is_extended and len(short.to_bytes()) == 4 + 1 + 255 + 1
    ext = CommandApdu(0, 0xD6, 0, 0, bytes(65535), le=65536)
    assert ext.to_bytes()[4:7] == b"\x00\xff\xff" and ext.to_bytes()[-2:] == b"\x00\x00"
    assert CommandApdu.from_bytes(ext.to_bytes()) == ext


@pytest.mark.parametrize(
    ("wire", "offset"),
    [
        ("", 0),
        ("80CA9F", 3),
        ("FFCA9F7F", 0),  # CLA FF is reserved (PPS)
        ("80CA9F7F0000", 6),  # 00 then one byte: a truncated extended length
        ("80CA9F7F000000AA", 5),  # extended Lc = 0000 is not a length
        ("80CA9F7F0000000000", 5),  # extended Lc = 0 then Le: still invalid
        ("80CA9F7F02AA", 4),  # Lc = 2, one byte follows
        ("80CA9F7F01AABBCC", 4),  # Lc = 1, three bytes follow
        ("80CA9F7F000002AA", 5),  # extended Lc = 2, one byte follows
        ("80CA9F7F000001AA00", 5),  # extended Lc = 1 then a 1-byte Le (must be 2 bytes)
        ("80CA9F7F000001AA000000", 5),  # one byte too many
    ],
)
def test_malformed_commands(wire: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        CommandApdu.from_bytes(bytes.fromhex(wire))
    assert info.value.offset == offset


def test_case_2e_versus_case_4s() -> None:
    """00 XX XX after the header is case 2E (Le = XXXX), never case 3S/4S with Lc = 0 (ISO 7816-3, 12.1.3)."""
    apdu = CommandApdu.from_bytes(HDR + bytes.fromhex("000102"))
    assert (apdu.case, apdu.le, apdu.data, apdu.is_extended) == (2, 258, b"", True)
    # Lc = 01 with data 02 and Le 03 is case 4S: the first body byte is not 00.
    apdu = CommandApdu.from_bytes(HDR + bytes.fromhex("010203"))
    assert (apdu.case, apdu.le, apdu.data, apdu.is_extended) == (4, 3, b"\x02", False)
    # 02 then two bytes is case 3S, not 4S with a missing byte.
    apdu = CommandApdu.from_bytes(HDR + bytes.fromhex("020203"))
    assert (apdu.case, apdu.le, apdu.data) == (3, None, b"\x02\x03")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 256},
        {"ins": -1},
        {"data": bytes(65536)},
        {"le": 0},
        {"le": 65537},
    ],
)
def test_invalid_fields(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"cla": 0, "ins": 0xA4, "p1": 4, "p2": 0}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=r"\w"):
        CommandApdu(**fields)  # type: ignore[arg-type]


def test_data_is_bytes() -> None:
    apdu = CommandApdu(0, 0xA4, 4, 0, bytearray(b"\xa0\x00"))  # type: ignore[arg-type]
    assert type(apdu.data) is bytes
    assert hash(apdu) == hash(CommandApdu(0, 0xA4, 4, 0, b"\xa0\x00"))
    assert str(apdu) == "00A4040002A000"


# -- CLA and logical channels (ISO 7816-4, 5.4.1; GP 2.3.1, 11.1.4) ------------------------------------------


@pytest.mark.parametrize("channel", range(20))
@pytest.mark.parametrize("base", [0x00, 0x80, 0x84, 0x04, 0x10])
def test_cla_channels(channel: int, base: int) -> None:
    cla = cla_for_channel(base, channel)
    assert cla_channel(cla) == channel
    assert cla_has_secure_messaging(cla) == cla_has_secure_messaging(base)
    assert cla & 0x80 == base & 0x80  # proprietary class kept
    assert bool(cla & 0x10) == bool(base & 0x10)  # command chaining kept
    if channel <= 3:
        assert cla & 0x40 == 0 and cla & 0x03 == channel
    else:
        assert cla & 0x40 and cla & 0x0F == channel - 4
    assert CommandApdu(cla, 0xCA, 0, 0).channel == channel


@pytest.mark.parametrize(
    ("cla", "channel", "sm"),
    [
        (0x00, 0, False),
        (0x03, 3, False),
        (0x84, 0, True),  # GP: b3 = proprietary SM
        (0x08, 0, True),  # ISO SM, header not authenticated
        (0x0C, 0, True),  # ISO SM, header authenticated
        (0x40, 4, False),
        (0x4F, 19, False),
        (0xC0, 4, False),
        (0xE3, 7, True),
        (0x60, 4, True),
    ],
)
def test_cla_decoding(cla: int, channel: int, sm: bool) -> None:
    assert cla_channel(cla) == channel
    assert cla_has_secure_messaging(cla) == sm


def test_cla_secure_messaging_and_channel_moves() -> None:
    assert cla_with_secure_messaging(0x80) == 0x84
    assert cla_with_secure_messaging(0xC1) == 0xE1
    assert cla_for_channel(0x84, 5) == 0xE1
    assert cla_for_channel(0xE1, 2) == 0x86
    assert cla_for_channel(0x0C, 1) == 0x0D  # ISO SM bits b4-b3 kept within first interindustry
    for bad in (-1, 20):
        with pytest.raises(ValueError, match=r"0\.\.19"):
            cla_for_channel(0x80, bad)


# -- responses -------------------------------------------------------------------------------------------------


def test_response_fields() -> None:
    r = ResponseApdu.from_bytes(bytes.fromhex("AABB6310"))
    assert (r.data, r.sw, r.sw1, r.sw2, str(r)) == (b"\xaa\xbb", 0x6310, 0x63, 0x10, "AABB6310")
    assert ResponseApdu.from_bytes(b"\x90\x00").is_success
    assert not ResponseApdu(sw=0x6982).is_success
    for bad in (b"", b"\x90"):
        with pytest.raises(DecodeError):
            ResponseApdu.from_bytes(bad)
    with pytest.raises(ValueError, match="two bytes"):
        ResponseApdu(sw=0x10000)


# -- vectors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", params("codec/pysim.json", "apdu-case-parse"))
def test_pysim_apdu_case_parse(case: VectorCase) -> None:
    raw = case.hex_in("apdu")
    expected_lc = case.expected["lc"]
    if expected_lc > 255:
        # pySim reads a short Lc of 00 as 256 (its notes say so); ISO 7816-4 reads 00 as the start of an
        # extended length (here 4242 bytes announced), so these bytes are malformed for a strict decoder.
        with pytest.raises(DecodeError):
            CommandApdu.from_bytes(raw)
        return
    apdu = CommandApdu.from_bytes(raw)
    assert apdu.case == case.expected["case"]
    assert len(apdu.data) == expected_lc
    assert apdu.data == case.hex_out("data")
    assert (apdu.le or 0) == case.expected["le"]
    assert not apdu.is_extended
    assert apdu.to_bytes() == raw


def _hex_digits(text: str) -> bytes:
    return bytes.fromhex(re.sub(r"0[xX]|[\s:]", "", text))


@pytest.mark.parametrize("case", params("codec/globalplatformpro.json", "apdu-parse"))
def test_globalplatformpro_apdu_parse(case: VectorCase) -> None:
    raw = _hex_digits(str(case.inputs["text"]))
    expected = case.hex_out("apdu")
    try:
        apdu = CommandApdu.from_bytes(raw)
    except DecodeError:
        # Not a well-formed APDU: header followed by bare data, for which the codec writes Lc.
        apdu = CommandApdu(raw[0], raw[1], raw[2], raw[3], raw[4:])
    assert apdu.to_bytes() == expected
    assert CommandApdu.from_bytes(expected) == apdu
