"""gpchannel.smpp.pdu: PDUs built from the SMPP 3.4 tables by hand (octet by octet), round trips, the limits of
section 4, and the rule that any input decodes to a Pdu or raises SmppPduError (never another exception)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import LocalProtocolError, SmppPduError
from gpchannel.smpp.pdu import (
    BindBody,
    BindRespBody,
    CommandId,
    CommandStatus,
    MessageIdBody,
    Pdu,
    PduReader,
    ShortMessageBody,
    Tlv,
    decode,
)


def _header(length: int, command_id: int, status: int, sequence: int) -> bytes:
    return struct.pack(">IIII", length, command_id, status, sequence)


# SMPP 3.4 4.1.5 bind_transceiver: system_id "esme", password "pw", system_type "", interface_version 34,
# addr_ton 0, addr_npi 0, address_range "".
BIND_BODY = b"esme\x00pw\x00\x00\x34\x00\x00\x00"
# 4.4.1 submit_sm: service_type "", source 1/1 "4912345", dest 1/1 "4915550001", esm_class 40, pid 7F, priority 0,
# schedule "", validity "", registered_delivery 1, replace 0, data_coding F6, default 0, sm_length 3, "02 70 00",
# then the TLV user_message_reference (0204) = 0007.
SUBMIT_BODY = (
    b"\x00\x01\x014912345\x00\x01\x014915550001\x00\x40\x7f\x00\x00\x00\x01\x00\xf6\x00\x03\x02\x70\x00"
    + b"\x02\x04\x00\x02\x00\x07"
)


@pytest.mark.parametrize(
    ("pdu", "octets"),
    [
        (
            Pdu(CommandId.BIND_TRANSCEIVER, 1, 0, BindBody("esme", "pw")),
            _header(16 + len(BIND_BODY), 9, 0, 1) + BIND_BODY,
        ),
        (
            Pdu(CommandId.BIND_TRANSCEIVER_RESP, 1, 0, BindRespBody("SMSC", (Tlv(0x0210, b"\x34"),))),
            _header(16 + 5 + 5, 0x80000009, 0, 1) + b"SMSC\x00\x02\x10\x00\x01\x34",
        ),
        (
            Pdu(
                CommandId.SUBMIT_SM,
                0x7FFFFFFF,
                0,
                ShortMessageBody(
                    "4915550001",
                    b"\x02\x70\x00",
                    "4912345",
                    source_addr_ton=1,
                    source_addr_npi=1,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    esm_class=0x40,
                    protocol_id=0x7F,
                    registered_delivery=1,
                    data_coding=0xF6,
                    tlvs=(Tlv(0x0204, b"\x00\x07"),),
                ),
            ),
            _header(16 + len(SUBMIT_BODY), 4, 0, 0x7FFFFFFF) + SUBMIT_BODY,
        ),
        (Pdu(CommandId.SUBMIT_SM_RESP, 2, 0, MessageIdBody("abc")), _header(20, 0x80000004, 0, 2) + b"abc\x00"),
        (Pdu(CommandId.DELIVER_SM_RESP, 3, 0, MessageIdBody()), _header(17, 0x80000005, 0, 3) + b"\x00"),
        (Pdu(CommandId.ENQUIRE_LINK, 4), _header(16, 0x15, 0, 4)),
        (Pdu(CommandId.UNBIND_RESP, 5), _header(16, 0x80000006, 0, 5)),
        (Pdu(CommandId.GENERIC_NACK, 6, CommandStatus.ESME_RINVCMDID), _header(16, 0x80000000, 3, 6)),
        (Pdu(CommandId.SUBMIT_SM_RESP, 7, CommandStatus.ESME_RMSGQFUL), _header(16, 0x80000004, 0x14, 7)),
    ],
    ids=[
        "bind_trx",
        "bind_trx_resp",
        "submit_sm",
        "submit_sm_resp",
        "deliver_sm_resp",
        "enquire_link",
        "unbind_resp",
        "generic_nack",
        "submit_sm_resp-error-no-body",
    ],
)
def test_known_octets_both_ways(pdu: Pdu, octets: bytes) -> None:
    assert pdu.encode() == octets
    assert decode(octets) == pdu


@pytest.mark.parametrize(
    ("octets", "status", "fatal"),
    [
        (b"\x00\x00\x00\x10", CommandStatus.ESME_RINVCMDLEN, True),  # shorter than a header
        (_header(17, 0x15, 0, 1), CommandStatus.ESME_RINVCMDLEN, True),  # command_length says one more octet
        (_header(16, 0x00012345, 0, 1), CommandStatus.ESME_RINVCMDID, False),
        (_header(16, CommandId.QUERY_SM, 0, 1), CommandStatus.ESME_RINVCMDID, False),  # known, not spoken here
        (_header(20, 9, 0, 1) + b"esme", CommandStatus.ESME_RINVPARLEN, False),  # body ends before the NULL
        (_header(16 + 17, 9, 0, 1) + b"A" * 16 + b"\x00", CommandStatus.ESME_RINVSYSID, False),  # 16 + NULL > 16
        (_header(16 + 11, 9, 0, 1) + b"e\x00" + b"p" * 9, CommandStatus.ESME_RINVPASWD, False),
        (_header(17, 0x15, 0, 1) + b"\x00", CommandStatus.ESME_RINVCMDLEN, False),  # enquire_link has no body
        (_header(16 + 3, 4, 0, 1) + b"\x00\x01\x01", CommandStatus.ESME_RINVPARLEN, False),
        (
            _header(16 + len(SUBMIT_BODY) - 6 + 3, 4, 0, 1) + SUBMIT_BODY[:-6] + b"\x02\x04\x00",
            CommandStatus.ESME_RINVOPTPARSTREAM,
            False,
        ),
        (
            _header(16 + len(SUBMIT_BODY) - 2, 4, 0, 1) + SUBMIT_BODY[:-2],  # the TLV says 2 octets, none follow
            CommandStatus.ESME_RINVOPTPARSTREAM,
            False,
        ),
    ],
)
def test_malformed_pdus_name_their_status(octets: bytes, status: int, fatal: bool) -> None:
    with pytest.raises(SmppPduError) as info:
        decode(octets)
    assert (info.value.command_status, info.value.fatal) == (status, fatal)


def test_sm_length_past_254_is_refused() -> None:
    body = bytearray(SUBMIT_BODY[:-6])
    body[-4] = 255  # sm_length
    octets = _header(16 + len(body) + 252, 4, 0, 9) + bytes(body) + bytes(252)
    with pytest.raises(SmppPduError) as info:
        decode(octets)
    assert (info.value.command_status, info.value.sequence_number) == (CommandStatus.ESME_RINVMSGLEN, 9)


@pytest.mark.parametrize(
    "body",
    [
        ShortMessageBody("1" * 21),  # destination_addr: 20 octets + NULL at most
        ShortMessageBody("1", source_addr="1" * 21),
        ShortMessageBody("1", short_message=bytes(255)),
        ShortMessageBody("1", service_type="CMTxyz"),
        ShortMessageBody("1", esm_class=256),
        ShortMessageBody("1", tlvs=(Tlv(0x10000, b""),)),
        ShortMessageBody("1\x002"),
        ShortMessageBody("\u20ac"),
    ],
)
def test_encoding_past_the_limits_is_a_local_error(body: ShortMessageBody) -> None:
    with pytest.raises(LocalProtocolError):
        Pdu(CommandId.SUBMIT_SM, 1, 0, body).encode()


def test_reader_frames_a_stream_cut_anywhere() -> None:
    stream = b"".join(Pdu(CommandId.ENQUIRE_LINK, n).encode() for n in range(1, 6))
    reader = PduReader()
    frames = [f for i in range(0, len(stream), 7) for f in reader.feed(stream[i : i + 7])]
    assert [decode(f).sequence_number for f in frames] == [1, 2, 3, 4, 5]
    with pytest.raises(SmppPduError) as info:
        PduReader().feed(b"\xff\xff\xff\xff")
    assert info.value.fatal


sm_bodies = st.builds(
    ShortMessageBody,
    st.text("0123456789", max_size=20),
    st.binary(max_size=254),
    st.text("0123456789+", max_size=20),
    esm_class=st.integers(0, 255),
    protocol_id=st.integers(0, 255),
    data_coding=st.integers(0, 255),
    tlvs=st.lists(st.builds(Tlv, st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=3).map(tuple),
)


@given(sm_bodies, st.sampled_from([CommandId.SUBMIT_SM, CommandId.DELIVER_SM]), st.integers(1, 0x7FFFFFFF))
def test_round_trip(body: ShortMessageBody, command_id: CommandId, sequence: int) -> None:
    pdu = Pdu(command_id, sequence, 0, body)
    assert decode(pdu.encode()) == pdu


@given(st.binary(max_size=400))
def test_any_octets_decode_or_raise_the_documented_error(data: bytes) -> None:
    for octets in (data, struct.pack(">I", len(data) + 4) + data):
        try:
            decode(octets)
        except SmppPduError:
            pass


@given(st.sampled_from([4, 5, 9, 0x80000004, 0x80000009]), st.binary(max_size=120))
def test_any_body_of_a_spoken_command_decodes_or_raises_the_documented_error(command_id: int, body: bytes) -> None:
    try:
        decode(_header(16 + len(body), command_id, 0, 1) + body)
    except SmppPduError as exc:
        assert not exc.fatal and exc.sequence_number == 1
