"""The emulator's UICC file system (ETSI TS 102 221): SELECT, READ/UPDATE BINARY, READ/UPDATE RECORD, STATUS,
and the JSON form kept in the card state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.card.filesystem import (
    FileSession,
    FileSystem,
    FileType,
    default_filesystem,
    fcp,
    iccid_bytes,
    process_file_command,
)
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import CardError, DecodeError


def run(fs: FileSystem, session: FileSession, hex_apdu: str) -> ResponseApdu:
    try:
        return process_file_command(fs, session, CommandApdu.from_bytes(bytes.fromhex(hex_apdu)))
    except CardError as exc:
        return ResponseApdu(sw=exc.sw)


@pytest.fixture
def fs() -> FileSystem:
    return default_filesystem("8988211000000000001")


def test_iccid_is_swapped_bcd() -> None:
    # TS 102 221 13.2: 89 88 21 10 ... stored nibble-swapped, F-padded.
    assert iccid_bytes("8988211000000000001") == bytes.fromhex("988812010000000000F1")
    assert iccid_bytes("89882110000000000012") == bytes.fromhex("98881201000000000021")
    with pytest.raises(ValueError, match="ICCID"):
        iccid_bytes("12AB")


def test_select_iccid_then_read_binary(fs: FileSystem) -> None:
    s = FileSession()
    r = run(fs, s, "00A4000C022FE2")
    assert r.sw == 0x9000 and not r.data
    r = run(fs, s, "00B000000A")
    assert r == ResponseApdu(bytes.fromhex("988812010000000000F1"), 0x9000)
    # More than is left: what is left, with 6282 (end of file reached before Le bytes).
    r = run(fs, s, "00B0000810")
    assert (r.data, r.sw) == (bytes.fromhex("00F1"), 0x6282)
    assert run(fs, s, "00B0000A01").sw == 0x6B00  # offset past the end
    assert run(fs, s, "00B0800001").sw == 0x6A81  # SFI not supported


def test_select_with_fcp_through_get_response(fs: FileSystem) -> None:
    s = FileSession()
    r = run(fs, s, "00A40004022FE2")
    expected = bytes.fromhex("620F820241218302 2FE2 8A0105 8002000A".replace(" ", ""))
    assert r.sw == 0x6100 | len(expected) and not r.data
    assert run(fs, s, "00C0000000").data == expected
    assert run(fs, s, "00C0000000").sw == 0x6985  # nothing left
    # GSM class: 9F xx, then A0 C0.
    r = run(fs, s, "A0A40000027F10")
    assert r.sw >> 8 == 0x9F
    assert run(fs, s, f"A0C00000{r.sw & 0xFF:02X}").data[:2] == bytes((0x62, (r.sw & 0xFF) - 2))


def test_select_rules(fs: FileSystem) -> None:
    s = FileSession()
    assert run(fs, s, "00A4000C026F3A").sw == 0x6A82  # not a child of the MF
    assert run(fs, s, "00A4000C027F10").sw == 0x9000
    assert run(fs, s, "00A4000C026F3A").sw == 0x9000  # child of DF_TELECOM
    assert s.df_path == [b"\x3f\x00", b"\x7f\x10"] and s.ef == b"\x6f\x3a"
    assert run(fs, s, "00A4000C027F20").sw == 0x9000  # sibling DF of the current DF
    assert run(fs, s, "00A4030C").sw == 0x9000  # parent
    assert s.df_path == [b"\x3f\x00"]
    assert run(fs, s, "00A4080C047F206F07").sw == 0x9000  # path from the MF
    assert s.ef == b"\x6f\x07"
    assert run(fs, s, "00A4090C026F46").sw == 0x9000  # path from the current DF (7F20)
    assert run(fs, s, "00A4080C033F007F").sw == 0x6700
    assert run(fs, s, "00A4000C013F").sw == 0x6700
    assert run(fs, s, "00A4040C023F00").sw == 0x6A86
    assert run(fs, s, "00A4000C023F00").sw == 0x9000


def test_update_binary_then_read(fs: FileSystem) -> None:
    s = FileSession()
    run(fs, s, "00A4080C047F206F46")
    assert run(fs, s, "00D6000203414243").sw == 0x9000
    assert run(fs, s, "00B0000005").data == bytes.fromhex("FFFF414243")
    assert run(fs, s, "00D6001002414243").sw == 0x6700  # past the end
    assert run(fs, s, "00B2010400").sw == 0x6981  # record command on a transparent EF


def test_records(fs: FileSystem) -> None:
    s = FileSession()
    assert run(fs, s, "00B2010400").sw == 0x6986  # no EF selected
    run(fs, s, "00A4080C047F106F40")
    record = bytes(range(30))
    assert run(fs, s, "00DC02041E" + record.hex()).sw == 0x9000
    assert run(fs, s, "00B202041E").data == record
    assert run(fs, s, "00B2020410").sw == 0x6C1E  # Le is not the record length
    assert run(fs, s, "00B2030400").sw == 0x6A83  # record 3 of 2
    assert run(fs, s, "00DC010403010203").sw == 0x6700
    assert run(fs, s, "00B0000001").sw == 0x6981
    # next / previous from the current record (2)
    assert run(fs, s, "00B2000300").data == b"\xff" * 30  # previous: 1
    assert run(fs, s, "00B2000200").data == record  # next: 2
    assert run(fs, s, "00B2000200").sw == 0x6A83  # no record 3


def test_status_and_unknown(fs: FileSystem) -> None:
    s = FileSession()
    run(fs, s, "00A4000C027F10")
    r = run(fs, s, "80F2000000")
    assert r.sw == 0x9000 and r.data == fcp(fs.resolve([b"\x3f\x00", b"\x7f\x10"]))
    assert b"\x83\x02\x7f\x10" in r.data
    assert run(fs, s, "80F2000C").data == b""
    assert run(fs, s, "80F20001").sw == 0x6A86
    assert run(fs, s, "0088000000").sw == 0x6D00
    assert run(fs, s, "84B0000001").sw == 0x6E00


def test_json_round_trip_and_refusals(fs: FileSystem) -> None:
    s = FileSession()
    run(fs, s, "00A4080C047F106F3A")
    run(fs, s, "00DC01041E" + "AB" * 30)
    again = FileSystem.from_dict(fs.to_dict())
    assert again == fs
    assert again.resolve([b"\x3f\x00", b"\x7f\x10", b"\x6f\x3a"]).records[0] == b"\xab" * 30
    with pytest.raises(DecodeError, match="root"):
        FileSystem.from_dict({"fid": "2FE2", "type": "transparent", "data": ""})
    with pytest.raises(DecodeError):
        FileSystem.from_dict({"fid": "3F00", "type": "df", "children": [{"fid": "6F3A", "type": "linear_fixed"}]})
    with pytest.raises(DecodeError):
        FileSystem.from_dict({"fid": "3F00", "type": "nonsense"})
    with pytest.raises(DecodeError):
        FileSystem.from_dict(
            {"fid": "3F00", "type": "df", "children": [{"fid": "2FE2", "type": "df"}, {"fid": "2FE2", "type": "df"}]}
        )


@given(st.binary(min_size=4, max_size=40))
def test_any_apdu_answers_with_a_status_or_card_error(raw: bytes) -> None:
    fs = default_filesystem()
    try:
        command = CommandApdu.from_bytes(raw)
    except DecodeError:
        return
    try:
        response = process_file_command(fs, FileSession(), command)
    except CardError as exc:
        assert 0x6000 <= exc.sw <= 0x6FFF
    else:
        assert response.sw in (0x9000, 0x6282) or response.sw >> 8 in (0x61, 0x9F)
    FileSystem.from_dict(fs.to_dict())  # whatever happened, the tree still serialises


def test_types() -> None:
    assert {t.value for t in FileType} == {"df", "transparent", "linear_fixed"}
