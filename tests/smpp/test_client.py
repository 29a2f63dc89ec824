"""gpchannel.smpp.client against gpchannel.smpp.smsc standing in for an SMS centre: the submit_sm fields of an
OTA message, concatenated segments, PoRs in (possibly concatenated, out of order) deliver_sm, receipts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError, TransportError
from gpchannel.ota.udh import MAX_USER_DATA, Reassembler, split_packet
from gpchannel.smpp import DeliveryReceipt, MessageState, OtaSmppClient, PorMessage, command_segments
from gpchannel.smpp.pdu import ShortMessageBody, Tlv
from gpchannel.smpp.smsc import BoundEvent, SmscServer, SmscSession, SubmitSmEvent
from tests.smpp.conftest import CARD_NUMBER, OTA_SERVER, free_port, run


@given(st.binary(min_size=1, max_size=1500), st.integers(0, 255))
def test_segments_fit_and_reassemble(packet: bytes, reference: int) -> None:
    segments = command_segments(packet, reference)
    assert all(len(s) <= MAX_USER_DATA for s in segments)
    reassembler = Reassembler()
    results = [reassembler.feed(s) for s in segments]
    assert all(r is None for r in results[:-1])
    last = results[-1]
    assert last is not None and (last.packet, last.response) == (packet, False)


async def _smsc(port: int) -> SmscServer:
    server = SmscServer("127.0.0.1", port, system_id="SMSC")
    await server.start()
    return server


async def _bound(server: SmscServer) -> SmscSession:
    event = await asyncio.wait_for(server.next(), 5)
    assert isinstance(event, BoundEvent)
    return event.session


def test_submit_fields_and_inbound() -> None:
    packet = bytes(range(256)) + bytes(44)  # 300 octets: three segments
    por_packet = bytes(range(200))

    async def session() -> tuple[list[SubmitSmEvent], list[DeliveryReceipt | PorMessage | None]]:
        port = free_port()
        server = await _smsc(port)
        seen: list[SubmitSmEvent] = []
        try:
            esme = await OtaSmppClient.connect("127.0.0.1", port, "ota", "pw", source_addr=OTA_SERVER)
            async with esme:
                submit = asyncio.create_task(esme.submit_packet(CARD_NUMBER, packet, reference=9))
                bound = await _bound(server)
                for n in range(3):
                    event = await asyncio.wait_for(server.next(), 5)
                    assert isinstance(event, SubmitSmEvent)
                    seen.append(event)
                    event.accept(f"m{n}")
                sent = await submit
                assert sent.message_ids == ("m0", "m1", "m2")
                # The SMSC sends back: a receipt (text + TLVs), a text message (ignored), then a PoR in two
                # segments, the second first.
                receipt = DeliveryReceipt("m2", MessageState.ENROUTE).to_text()
                await bound.deliver_sm(
                    ShortMessageBody(
                        OTA_SERVER,
                        receipt,
                        source_addr=CARD_NUMBER,
                        esm_class=0x04,
                        tlvs=(Tlv(0x0427, b"\x02"), Tlv(0x001E, b"m2\x00")),
                    )
                )
                await bound.deliver_sm(ShortMessageBody(OTA_SERVER, b"hello", source_addr=CARD_NUMBER))
                parts = split_packet(por_packet, response=True, reference=3)
                for part in reversed(parts):
                    await bound.deliver_sm(
                        ShortMessageBody(
                            OTA_SERVER,
                            part,
                            source_addr=CARD_NUMBER,
                            esm_class=0x40,
                            protocol_id=0x7F,
                            data_coding=0xF6,
                        )
                    )
                events = [await esme.next_event(5), await esme.next_event(5)]
                assert esme.ignored == 1
                assert await esme.next_event(0.2) is None
        finally:
            await server.stop()
        return seen, events

    seen, events = run(session())
    segments = command_segments(packet, 9)
    assert [e.body.short_message for e in seen] == segments
    for e in (event.body for event in seen):
        assert (e.esm_class, e.protocol_id, e.data_coding, e.registered_delivery) == (0x40, 0x7F, 0xF6, 1)
        assert (e.source_addr, e.destination_addr) == (OTA_SERVER, CARD_NUMBER)
    # The TLV message_state (DELIVERED) wins over the text's ENROUTE.
    assert events[0] == DeliveryReceipt("m2", MessageState.DELIVERED)
    assert events[1] == PorMessage(CARD_NUMBER, por_packet, True)


def test_refusal_timeout_and_bad_udh() -> None:
    async def session() -> None:
        port = free_port()
        server = await _smsc(port)
        try:
            esme = await OtaSmppClient.connect("127.0.0.1", port, "ota", "pw", source_addr=OTA_SERVER)
            async with esme:
                bound = await _bound(server)
                with pytest.raises(TransportError, match="no PoR"):
                    await esme.wait_por(0.2)
                await bound.deliver_sm(
                    ShortMessageBody(OTA_SERVER, b"\x05\x00\x03", source_addr=CARD_NUMBER, esm_class=0x40)
                )
                with pytest.raises(DecodeError):
                    await esme.next_event(5)
                await bound.deliver_sm(
                    ShortMessageBody(OTA_SERVER, b"\x02\x70\x00\x01", source_addr=CARD_NUMBER, esm_class=0x40)
                )
                with pytest.raises(DecodeError, match="command packet"):
                    await esme.wait_por(5)
        finally:
            await server.stop()

    run(session())
