"""The card through its bytes interface, without a secure channel: SELECT, logical channels, class and length
errors, GET DATA, GET RESPONSE, life cycle rules and the commit-before-answer rule (GP 2.3.1, chapter 11)."""

from __future__ import annotations

import pytest

from gpchannel.card.dispatcher import Card
from gpchannel.card.state import Application, MemoryStore
from gpchannel.codec.apdu import CommandApdu
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.errors import DecodeError
from gpchannel.gp.card_data import (
    CardRecognitionData,
    ExtendedCardResources,
    decode_key_information_template,
)
from gpchannel.gp.privileges import Privileges
from tests.card.harness import ECHO_AID, ISD_AID, make_card, send


def _select(card: Card, aid: bytes, p2: int = 0, cla: int = 0) -> tuple[bytes, int]:
    r = send(card, CommandApdu(cla, 0xA4, 0x04, p2, aid, le=256))
    return r.data, r.sw


def test_select_isd_returns_fci_table_11_82() -> None:
    card, _ = make_card()
    data, sw = _select(card, ISD_AID)
    assert sw == 0x9000
    (fci,) = parse_pairs(data)
    assert fci[0] == 0x6F
    inner = parse_pairs(fci[1])
    assert first_value(inner, 0x84) == ISD_AID
    proprietary = parse_pairs(first_value(inner, 0xA5) or b"")
    assert first_value(proprietary, 0x9F65) == b"\xff"
    assert first_value(proprietary, 0x9F6E) is not None
    recognition = CardRecognitionData.from_bytes(
        bytes.fromhex("73")
        + bytes((len(first_value(proprietary, 0x73) or b""),))
        + (first_value(proprietary, 0x73) or b"")
    )
    assert recognition.gp_version == "2.3.1" and recognition.scps == ((3, 0x70),)


def test_select_without_data_selects_the_isd() -> None:
    card, _ = make_card()
    assert send(card, "00A4040000").sw == 0x9000


def test_partial_and_next_occurrence() -> None:
    card, _ = make_card()
    second = Application(ECHO_AID[:-1] + b"\x90", 0x07, Privileges(), ISD_AID, applet="echo")
    card.state.applications.append(second)
    card.save()
    _, sw = _select(card, ECHO_AID[:6])
    assert sw == 0x9000  # the echo applet answers SELECT with no data
    assert card.channels[0].selected == ECHO_AID
    _, sw = _select(card, ECHO_AID[:6], p2=0x02)
    assert sw == 0x9000 and card.channels[0].selected == second.aid
    _, sw = _select(card, ECHO_AID[:6], p2=0x02)
    assert sw == 0x6A82 and card.channels[0].selected == second.aid  # a failed SELECT keeps the selection


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("00A40400050102030405", 0x6A82),  # unknown AID
        ("00A404100100", 0x6A86),  # P2 RFU
        ("00A4", 0x6700),  # shorter than a header
        ("00A404000A0102", 0x6700),  # Lc says 10 bytes, 2 follow
        ("FFA4040000", 0x6E00),
        ("20CA006600", 0x6E00),  # RFU class
        ("10CA006600", 0x6884),  # chaining
        ("01CA006600", 0x6881),  # channel 1 is not open
        ("80EE000000", 0x6D00),  # unknown INS for the ISD
        ("80F28002024F0000", 0x6982),  # GET STATUS needs a secure channel (Table 11-2)
        ("80E60C0000", 0x6982),
        ("84CA006600", 0x6982),  # secure messaging without a session
        ("8082000010" + "00" * 16, 0x6985),  # EXTERNAL AUTHENTICATE without INITIALIZE UPDATE
        ("8050FF0008" + "00" * 8, 0x6A88),  # no key set FF
        ("00F2400000", 0x6E00),  # GP commands need a proprietary class
        ("00C0000000", 0x6985),  # GET RESPONSE with nothing pending
    ],
)
def test_status_words(apdu: str, sw: int) -> None:
    card, _ = make_card()
    assert send(card, apdu).sw == sw


@pytest.mark.parametrize("tag", ["9F7F", "0066", "0067", "00E0", "0042", "0045", "00CF", "00C1", "FF21"])
def test_get_data_objects(tag: str) -> None:
    card, _ = make_card()
    r = send(card, "80CA" + tag + "00")
    assert r.sw == 0x9000
    if tag == "FF21":
        assert ExtendedCardResources.from_bytes(r.data).installed_applications == 1
        return
    ((t, value),) = parse_pairs(r.data)
    assert t == int(tag, 16)
    if tag == "9F7F":
        assert value == card.state.cplc
    if tag == "00E0":
        entries = decode_key_information_template(r.data)
        assert [(e.key_id, e.kvn) for e in entries] == [(1, 0x30), (2, 0x30), (3, 0x30)]
        assert all(e.components[0].key_type == 0x88 and e.components[0].length == 16 for e in entries)
    if tag == "00C1":
        assert value == b"\x00\x00\x00"
    if tag == "00CF":
        assert value == card.state.key_diversification_data


def test_get_data_unknown_tag() -> None:
    card, _ = make_card()
    assert send(card, "80CA00AA00").sw == 0x6A88


def test_manage_channel_open_use_close() -> None:
    card, _ = make_card()
    r = send(card, "0070000001")
    assert (r.data, r.sw) == (b"\x01", 0x9000)
    assert send(card, "01A404000C" + ECHO_AID.hex()).sw == 0x9000
    assert send(card, "0100000003AABBCC").data == bytes.fromhex("AABBCC")
    assert card.channels[0].selected == ISD_AID  # channel 0 unaffected
    r = send(card, "81CA006600")  # the echo applet answers INS CA with its (empty) install parameters
    assert (r.data, r.sw) == (b"", 0x9000)
    assert send(card, "0070800100").sw == 0x9000
    assert send(card, "0070800100").sw == 0x6200  # already closed
    assert send(card, "0100000003AABBCC").sw == 0x6881
    assert send(card, "0070800000").sw == 0x6A86  # the basic channel cannot be closed


def test_manage_channel_exhaustion_and_further_channels() -> None:
    card, _ = make_card()
    card.max_channels = 6
    numbers = [send(card, "0070000001").data[0] for _ in range(5)]
    assert numbers == [1, 2, 3, 4, 5]
    assert send(card, "0070000001").sw == 0x6A81
    assert send(card, "40A404000C" + ECHO_AID.hex()).sw == 0x9000  # CLA 40 = channel 4
    assert send(card, "4000000001AA").data == b"\xaa"


def test_get_response_for_long_answers() -> None:
    card, _ = make_card()
    _select(card, ECHO_AID)
    r = send(card, CommandApdu(0x00, 0x00, 0, 0, bytes(range(40)), le=16))
    assert (r.data, r.sw) == (bytes(range(16)), 0x6118)
    r = send(card, "00C0000010")
    assert (r.data, r.sw) == (bytes(range(16, 32)), 0x6108)
    r = send(card, "00C0000000")
    assert (r.data, r.sw) == (bytes(range(32, 40)), 0x9000)


def test_applet_errors_and_echo_data_is_committed() -> None:
    card, store = make_card()
    _select(card, ECHO_AID)
    commits = store.commits
    assert send(card, "00000000").sw == 0x9000
    assert store.commits == commits + 1  # the echo counter is persistent applet data
    loaded = store.load()
    assert loaded is not None and (loaded.application(ECHO_AID) or ECHO_AID).data["count"] == 1  # type: ignore[union-attr]
    assert send(card, "006F0000").sw == 0x6F00
    assert send(card, "04000000").sw == 0x6882


def test_card_locked_select_rules() -> None:
    card, _ = make_card(lifecycle="CARD_LOCKED")
    _, sw = _select(card, ISD_AID)
    assert sw == 0x6283  # the ISD has the Final Application privilege (9EFE80)
    _, sw = _select(card, ECHO_AID)
    assert sw == 0x6A81
    assert send(card, "0070000001").sw == 0x6A81


def test_unexpected_exception_is_6f00_and_rolls_back() -> None:
    card, store = make_card()

    class Broken(Exception):
        pass

    def explode(*_: object) -> None:
        card.state.cin = b"\x99"
        raise Broken

    card._dispatch = explode  # type: ignore[method-assign,assignment]
    assert send(card, "00A4040000").sw == 0x6F00
    assert card.state.cin != b"\x99"
    assert store.load() == card.state


def test_failed_commit_answers_6581_and_keeps_the_old_state() -> None:
    card, store = make_card()

    class FailingStore(MemoryStore):
        def commit(self, state: object) -> None:
            raise OSError("disk full")

    card.store = FailingStore()
    _select(card, ECHO_AID)
    assert send(card, "00000000").sw == 0x6581
    app = card.state.application(ECHO_AID)
    assert app is not None and "count" not in app.data
    assert store.load() is not None


def test_reset_closes_channels_and_reselects_isd() -> None:
    card, _ = make_card()
    send(card, "0070000001")
    _select(card, ECHO_AID)
    assert card.reset() == card.atr
    assert list(card.channels) == [0] and card.channels[0].selected == ISD_AID


def test_malformed_is_never_an_exception() -> None:
    card, _ = make_card()
    for raw in (b"", b"\x00", b"\x00\xa4\x04", bytes(300)):
        out = card.process(raw)
        assert len(out) >= 2
    with pytest.raises(DecodeError):
        CommandApdu.from_bytes(b"\x00")


def test_implicit_selection_parameter_table_11_15() -> None:
    card, _ = make_card()
    echo = card.state.application(ECHO_AID)
    assert echo is not None
    echo.implicit_selection = [0x40 | 0x02]  # contact interface, logical channel 2
    card.save()
    card.reset()
    assert card.channels[0].selected == ISD_AID
    assert send(card, "0070000201").data == b"\x02"
    assert card.channels[2].selected == ECHO_AID
    assert send(card, "0200000001AB").data == b"\xab"
    echo.implicit_selection = [0x40]
    card.save()
    card.reset()
    assert card.channels[0].selected == ECHO_AID
