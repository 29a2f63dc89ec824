"""Remote APDU formats (ETSI TS 102 226 5.1 compact, 5.2 expanded), with the scripts of the SCP80 vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.ota.remote_apdu import (
    BadFormat,
    CApdu,
    CommandScript,
    CompactResponse,
    ErrorAction,
    ImmediateAction,
    ImmediateActionResponse,
    RApdu,
    ResponseScript,
    ScriptChaining,
    ScriptChainingResponse,
    decode_compact,
    encode_compact,
    is_outgoing,
)
from tests.vectors import VectorCase, cases, params

GSM = "ota/gsm0348.json"
PYSIM = "ota/pysim.json"


def test_gsm0348_rfm_script_is_compact() -> None:
    # The 2G RFM script of the gsm0348 command packets: SELECT 3F00, 7F10, 6F3C, READ RECORD 4 (Le 5).
    script = cases(GSM, "scp80_command_packet")[0].hex_in("data")
    apdus = decode_compact(script)
    assert [a.ins for a in apdus] == [0xA4, 0xA4, 0xA4, 0xB2]
    assert apdus[2].data == b"\x6f\x3c"
    assert apdus[3] == CommandApdu(0xA0, 0xB2, 0x01, 0x04, le=5)
    assert encode_compact(apdus) == script


@pytest.mark.parametrize("case", params(PYSIM, "ota-sms-cmd-encode+por-decode"))
def test_pysim_real_card_compact_script_and_response(case: VectorCase) -> None:
    apdus = decode_compact(case.hex_in("apdu_script"))
    assert apdus == (CommandApdu(0xA0, 0xA4, 0, 0, b"\x7f\x20"), CommandApdu(0xA0, 0xC0, 0, 0, le=0x16))
    executed = bytes((case.expected["number_of_commands"],))
    raw = executed + bytes.fromhex(case.expected["last_status_word"]) + case.hex_out("last_response_data")
    response = CompactResponse.from_bytes(raw)
    assert response.executed == case.expected["number_of_commands"]
    assert response.last == ResponseApdu(case.hex_out("last_response_data"), 0x9000)


@pytest.mark.parametrize("case", params(PYSIM, "ota-sms-por-decode"))
def test_pysim_compact_responses(case: VectorCase) -> None:
    raw = bytes((case.expected["number_of_commands"],)) + case.hex_out("last_status_word")
    response = CompactResponse.from_bytes(raw + case.hex_out("last_response_data"))
    assert response.last.sw == int(case.expected["last_status_word"], 16)
    assert response.to_bytes() == raw + case.hex_out("last_response_data")


def test_is_outgoing() -> None:
    assert is_outgoing(0x00, 0xB0, 0x00)
    assert is_outgoing(0x80, 0xF2, 0x00)  # UICC STATUS, case 2
    assert not is_outgoing(0x80, 0xF2, 0x40)  # GP GET STATUS, case 4
    assert not is_outgoing(0x80, 0xE6, 0x0C)


def test_compact_case_4_loses_le_and_case_1_gets_p3_zero() -> None:
    assert encode_compact([CommandApdu(0x80, 0xE6, 0x0C, 0x00, b"\x01", le=256)]) == bytes.fromhex("80e60c000101")
    assert encode_compact([CommandApdu(0x00, 0x70, 0x00, 0x00)]) == bytes.fromhex("0070000000")
    assert decode_compact(bytes.fromhex("0070000000")) == (CommandApdu(0x00, 0x70, 0x00, 0x00),)


@pytest.mark.parametrize(
    "apdu",
    [
        CommandApdu(0x00, 0xD6, 0, 0, bytes(300)),
        CommandApdu(0x00, 0xB0, 0, 0, le=257),
        CommandApdu(0, 0xB0, 0, 0, le=65536),
    ],
)
def test_compact_refuses_extended_lengths_with_the_project_error(apdu: CommandApdu) -> None:
    # was a bare ValueError (gpchannel ota build ... 00D6000000012C<300 bytes> showed a traceback)
    with pytest.raises(UnsupportedError, match="expanded format"):
        encode_compact([CommandApdu(0x00, 0xA4, 0, 0, b"\x3f\x00"), apdu])


def test_expanded_format_carries_an_extended_length_apdu() -> None:
    apdu = CommandApdu(0x00, 0xD6, 0, 0, bytes(range(256)) + bytes(44))
    raw = CommandScript.of([apdu]).to_bytes()
    assert raw.startswith(bytes.fromhex("AA820137 22820133 00D60000 00012C"))
    assert CommandScript.from_bytes(raw).apdus == (apdu,)


@pytest.mark.parametrize(("raw", "offset"), [("a0a400", 3), ("a0a4000002 3f", 4), ("ffa4000000", 0)])
def test_compact_errors(raw: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_compact(bytes.fromhex(raw))
    assert info.value.offset == offset


def test_expanded_examples() -> None:
    # ota-notes A.7 example (built from the TS 102 226 rules, not an independent vector: a layout check).
    get_data = CommandApdu(0x80, 0xCA, 0xFF, 0x21, le=256)
    assert CommandScript.of([get_data]).to_bytes() == bytes.fromhex("aa07220580caff2100")
    indefinite = CommandScript.of([get_data], definite=False)
    assert indefinite.to_bytes() == bytes.fromhex("ae80220580caff21000000")
    assert CommandScript.from_bytes(indefinite.to_bytes()) == indefinite
    response = ResponseScript((RApdu(ResponseApdu(b"\x01\x02", 0x9000)),), executed=1)
    assert response.to_bytes() == bytes.fromhex("ab098001012304 01029000".replace(" ", ""))
    assert ResponseScript.from_bytes(response.to_bytes()).responses == (ResponseApdu(b"\x01\x02", 0x9000),)


@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        ("", 0),
        ("ab00", 0),
        ("aa05220300", 5),
        ("aa03220100", 2),  # C-APDU shorter than a header
        ("aa03990100", 2),  # unknown tag
        ("ae80220580caff2100", 9),  # no end-of-contents
        ("ae00", 1),
        ("aa02 1f01".replace(" ", ""), 2),
    ],
)
def test_command_script_errors(raw: str, offset: int) -> None:
    with pytest.raises(DecodeError) as info:
        CommandScript.from_bytes(bytes.fromhex(raw))
    assert info.value.offset == offset


def test_response_script_errors() -> None:
    with pytest.raises(DecodeError, match="first"):
        ResponseScript.from_bytes(bytes.fromhex("ab0723029000800101"))
    with pytest.raises(DecodeError, match="SW1 SW2"):
        ResponseScript.from_bytes(bytes.fromhex("ab03230190"))


apdus = st.builds(
    CommandApdu,
    st.integers(0, 0xFE),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=255),
    st.one_of(st.none(), st.integers(1, 256)),
)
command_items = st.one_of(
    apdus.map(CApdu),
    st.binary(max_size=4).map(ImmediateAction),
    st.binary(max_size=4).map(ErrorAction),
    st.binary(max_size=4).map(ScriptChaining),
)
response_items = st.one_of(
    st.builds(ResponseApdu, st.binary(max_size=300), st.integers(0, 0xFFFF)).map(RApdu),
    st.binary(max_size=4).map(ImmediateActionResponse),
    st.binary(max_size=4).map(ScriptChainingResponse),
    st.binary(max_size=2).map(BadFormat),
)


@given(st.lists(command_items, max_size=6), st.booleans())
def test_command_script_round_trip(items: list[CApdu], definite: bool) -> None:
    script = CommandScript(tuple(items), definite)
    assert CommandScript.from_bytes(script.to_bytes()) == script


@given(st.lists(response_items, max_size=6), st.one_of(st.none(), st.integers(0, 255)), st.booleans())
def test_response_script_round_trip(items: list[RApdu], executed: int | None, definite: bool) -> None:
    script = ResponseScript(tuple(items), executed, definite)
    assert ResponseScript.from_bytes(script.to_bytes()) == script


@given(st.lists(apdus, max_size=8))
def test_compact_round_trip(commands: list[CommandApdu]) -> None:
    # What survives the T=0 form: case 4 drops Le; P3 is Le exactly when is_outgoing says so.
    def t0(a: CommandApdu) -> CommandApdu:
        if a.data:
            return CommandApdu(a.cla, a.ins, a.p1, a.p2, a.data)
        if a.le is not None and is_outgoing(a.cla, a.ins, a.p1):
            return a
        if is_outgoing(a.cla, a.ins, a.p1):
            return CommandApdu(a.cla, a.ins, a.p1, a.p2, le=256)  # P3 00 of a case-2 command is Le 256
        return CommandApdu(a.cla, a.ins, a.p1, a.p2)

    # Representable in T=0 form: data only for incoming instructions, a lone Le only for outgoing ones.
    def representable(a: CommandApdu) -> bool:
        outgoing = is_outgoing(a.cla, a.ins, a.p1)
        return not (a.data and outgoing) and not (not a.data and a.le is not None and not outgoing)

    commands = [c for c in commands if representable(c)]
    assert decode_compact(encode_compact(commands)) == tuple(t0(c) for c in commands)


@given(st.binary(max_size=40), st.integers(0, 255))
def test_compact_response_round_trip(data: bytes, executed: int) -> None:
    response = CompactResponse(executed, ResponseApdu(data, 0x6132))
    assert CompactResponse.from_bytes(response.to_bytes()) == response


@given(st.binary(max_size=80))
def test_fuzz_remote_apdu_decoders(raw: bytes) -> None:
    for decode in (decode_compact, CommandScript.from_bytes, ResponseScript.from_bytes, CompactResponse.from_bytes):
        try:
            decode(raw)
        except DecodeError as exc:
            assert exc.offset is not None
