"""gpchannel.emulator.handset: SMS-DELIVER -> SMS-PP DOWNLOAD ENVELOPE -> PoR, against scripted cards and pySim's
real-card session (tests/vectors/smpp/pysim.json)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.emulator.handset import MAX_PROACTIVE, HandsetCard, submit_in_proactive
from gpchannel.errors import DecodeError, TransportError
from gpchannel.ota import Address, ResponseStatus, SmsDeliver, SmsPpDownload, SmsSubmit, unsecure_response
from gpchannel.ota.udh import Reassembler
from tests.smpp.cards import PYSIM_SESSION, ScriptedCard, pysim_card, pysim_keys

SERVER = Address("4912345")


def test_pysim_session_through_the_handset() -> None:
    case = PYSIM_SESSION
    card = pysim_card()
    outcome = HandsetCard(card).deliver(SmsDeliver(SERVER, case.hex_out("sms_user_data_cmd")))
    # The ENVELOPE carried the SMS-DELIVER with pySim's user data (TS 31.111 7.1.1.2), then GET RESPONSE.
    envelope = SmsPpDownload.from_apdu(card.seen[0])
    assert (card.seen[0].cla, card.seen[0].ins) == (0x80, 0xC2)
    assert SmsDeliver.from_bytes(envelope.tpdu).user_data == case.hex_out("sms_user_data_cmd")
    assert (card.seen[1].cla, card.seen[1].ins) == (0x00, 0xC0)
    assert outcome.delivered and outcome.replies == (("4912345", case.hex_in("encoded_resp")),)
    spi, kic, kid, keyset = pysim_keys()
    por = unsecure_response(outcome.replies[0][1][3:], spi=spi, kic=kic, kid=kid, keyset=keyset)
    assert por.status is ResponseStatus.POR_OK and por.data[1:3] == bytes.fromhex(case.expected["last_status_word"])


def test_sim_class_uses_9f_and_a0_c0() -> None:
    def answer(command: CommandApdu) -> ResponseApdu:
        if command.ins == 0xC2:
            return ResponseApdu(sw=0x9F05)
        assert (command.cla, command.ins, command.le) == (0xA0, 0xC0, 5)
        return ResponseApdu(b"\x02\x71\x00\xaa\xbb")

    card = ScriptedCard(answer)
    outcome = HandsetCard(card, sim=True).deliver(SmsDeliver(SERVER, b"\x02\x70\x00\x01"))
    assert card.seen[0].cla == 0xA0 and outcome.replies == (("4912345", b"\x02\x71\x00\xaa\xbb"),)


def test_refused_envelope_and_kept_segment() -> None:
    refused = HandsetCard(ScriptedCard(lambda c: ResponseApdu(sw=0x6A80))).deliver(SmsDeliver(SERVER, b"\x00"))
    assert (refused.sw, refused.delivered, refused.replies) == (0x6A80, False, ())
    kept = HandsetCard(ScriptedCard(lambda c: ResponseApdu())).deliver(SmsDeliver(SERVER, b"\x02\x70\x00"))
    assert (kept.sw, kept.delivered, kept.replies) == (0x9000, True, ())


def test_long_deliver_report_is_resplit() -> None:
    packet = bytes(range(200))
    report = b"\x02\x71\x00" + packet
    outcome = HandsetCard(ScriptedCard(lambda c: ResponseApdu(report))).deliver(SmsDeliver(SERVER, b"\x02\x70\x00"))
    assert len(outcome.replies) == 2 and all(len(ud) <= 140 for _, ud in outcome.replies)
    reassembler = Reassembler()
    results = [reassembler.feed(ud) for _, ud in outcome.replies]
    assert results[0] is None and results[1] is not None
    assert (results[1].packet, results[1].response) == (packet, True)


def _send_sm(submit: SmsSubmit) -> bytes:
    tpdu = submit.to_bytes()
    body = bytes.fromhex("810301130082028183") + b"\x8b" + bytes((len(tpdu),)) + tpdu
    return b"\xd0" + bytes((len(body),)) + body


def test_proactive_send_short_messages_are_fetched_and_confirmed() -> None:
    pending = [_send_sm(SmsSubmit(SERVER, b"\x02\x71\x00\x01", message_reference=n)) for n in range(2)]

    def answer(command: CommandApdu) -> ResponseApdu:
        if command.ins == 0xC2:
            return ResponseApdu(sw=0x9100 | len(pending[0]))
        if command.ins == 0x12:
            assert command.le == len(pending[0])
            return ResponseApdu(pending[0])
        assert command.ins == 0x14 and command.data[-3:] == b"\x83\x01\x00"  # result: performed successfully
        pending.pop(0)
        return ResponseApdu(sw=0x9100 | len(pending[0])) if pending else ResponseApdu()

    card = ScriptedCard(answer)
    outcome = HandsetCard(card).deliver(SmsDeliver(SERVER, b"\x02\x70\x00"))
    assert outcome.delivered and outcome.replies == (("4912345", b"\x02\x71\x00\x01"),) * 2
    assert [c.ins for c in card.seen] == [0xC2, 0x12, 0x14, 0x12, 0x14]


def test_endless_proactive_card_is_refused() -> None:
    command = _send_sm(SmsSubmit(SERVER, b"\x02\x71\x00"))

    def answer(c: CommandApdu) -> ResponseApdu:
        return ResponseApdu(command) if c.ins == 0x12 else ResponseApdu(sw=0x9100 | len(command))

    card = ScriptedCard(answer)
    with pytest.raises(TransportError, match="more than"):
        HandsetCard(card).deliver(SmsDeliver(SERVER, b"\x02\x70\x00"))
    assert sum(c.ins == 0x12 for c in card.seen) == MAX_PROACTIVE


def test_proactive_parser_errors() -> None:
    with pytest.raises(DecodeError):
        submit_in_proactive(b"\x12\x00")
    with pytest.raises(DecodeError):
        submit_in_proactive(bytes.fromhex("D0098103011300820281 83"))
    with pytest.raises(DecodeError):
        submit_in_proactive(bytes.fromhex("D0058B05010203"))


@given(st.binary(max_size=64))
def test_proactive_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        submit = submit_in_proactive(b"\xd0" + raw)
    except DecodeError:
        return
    assert isinstance(submit, SmsSubmit)
