"""SMS-PP DOWNLOAD ENVELOPE (TS 31.111 7.1.1; TS 102 223 8.7, 8.1, 8.13)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu
from gpchannel.codec.tlv import encode_length
from gpchannel.errors import DecodeError
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.sms import Address, SmsDeliver, TypeOfNumber
from gpchannel.ota.udh import split_packet
from tests.vectors import cases

PYSIM = "ota/pysim.json"


def _tpdu() -> bytes:
    case = cases(PYSIM, "ota-sms-cmd-encode")[0]
    ud = split_packet(case.hex_out("encoded_cmd"))[0]
    return SmsDeliver(Address("12345678", TypeOfNumber.UNKNOWN, 1), ud).to_bytes()


def test_envelope_layout() -> None:
    tpdu = _tpdu()
    sc = Address("4477", TypeOfNumber.INTERNATIONAL, 1)
    apdu = SmsPpDownload(tpdu, sc).to_apdu()
    assert apdu.header() == bytes.fromhex("80c20000")
    body = bytes.fromhex("820283810603914477") + bytes((0x8B, len(tpdu))) + tpdu
    assert apdu.data == b"\xd1" + encode_length(len(body)) + body
    assert SmsPpDownload.from_apdu(apdu) == SmsPpDownload(tpdu, sc)
    assert SmsPpDownload(tpdu).to_apdu(cla=0xA0).cla == 0xA0


def test_envelope_accepts_tags_without_cr_bit() -> None:
    raw = bytes.fromhex("d1 0b 02 02 83 81 0b 05 0400000000")
    assert SmsPpDownload.from_bytes(raw) == SmsPpDownload(bytes.fromhex("0400000000"))


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        ("", 0),
        ("d0 00", 0),
        ("d1 05 82028381", 6),
        ("d1 04 82028381", 6),  # no TPDU
        ("d1 06 82028381 8b05", 8),
        ("d1 08 820183 8b03 000000", 2),
        ("d1 0a 82028381 8b01 00 8b01 00", 9),
    ],
)
def test_envelope_errors(raw: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        SmsPpDownload.from_bytes(bytes.fromhex(raw))
    assert info.value.offset == offset


def test_not_an_envelope() -> None:
    with pytest.raises(DecodeError):
        SmsPpDownload.from_apdu(CommandApdu(0x80, 0xC4, 0, 0, b"\xd1\x00"))


@given(st.binary(max_size=180), st.one_of(st.none(), st.text(alphabet="0123456789", max_size=20)))
def test_envelope_round_trip(tpdu: bytes, digits: str | None) -> None:
    sc = None if digits is None else Address(digits)
    download = SmsPpDownload(tpdu, sc)
    assert SmsPpDownload.from_bytes(download.to_bytes()) == download


@given(st.binary(max_size=60))
def test_fuzz_envelope(raw: bytes) -> None:
    try:
        SmsPpDownload.from_bytes(raw)
    except DecodeError as exc:
        assert exc.offset is not None
