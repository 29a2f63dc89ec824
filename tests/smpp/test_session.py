"""gpchannel.smpp.session: the window and the response timer of SMPP 3.4 2.8 / 7.2 (a loop timer per request,
no task), against a peer that holds its answers back, and a burst of requests answered by
:class:`gpchannel.smpp.smsc.SmscServer` out of a wide window."""

from __future__ import annotations

import asyncio

import pytest

from gpchannel.errors import TransportError
from gpchannel.smpp.esme import Esme
from gpchannel.smpp.pdu import CommandId, Pdu, PduReader, ShortMessageBody, decode
from gpchannel.smpp.session import SmppSession
from gpchannel.smpp.smsc import BoundEvent, SmscServer, SubmitSmEvent
from tests.smpp.conftest import CARD_NUMBER, OTA_SERVER, run


async def _no_requests(session: SmppSession, pdu: Pdu) -> None:
    await session.nack(pdu.sequence_number, 0x03)


def _submit(n: int) -> ShortMessageBody:
    return ShortMessageBody(CARD_NUMBER, b"\x02\x70\x00" + bytes([n % 256]), source_addr=OTA_SERVER, esm_class=0x40)


def test_window_and_response_timer_against_a_peer_that_holds_its_answers() -> None:
    """window 2: a third request waits for a place; each unanswered one fails with TransportError when its timer
    fires, which frees its place; an answer that comes later finds nobody waiting and changes nothing."""

    async def session() -> None:
        received: list[Pdu] = []
        peers: list[asyncio.StreamWriter] = []

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peers.append(writer)
            framer = PduReader()
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    pdu = decode(frame)
                    received.append(pdu)
                    if pdu.sequence_number > 3:  # only what follows the held three is answered
                        writer.write(Pdu(pdu.command_id.response, pdu.sequence_number, 0).encode())

        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        smpp = SmppSession(reader, writer, _no_requests, window=2, response_timeout=0.3)
        smpp.start()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await asyncio.gather(
                *(smpp.request(CommandId.SUBMIT_SM, _submit(n)) for n in range(3)), return_exceptions=True
            )
            took = loop.time() - started
            assert all(
                isinstance(r, TransportError) and "no answer to SUBMIT_SM within 0.3 s" in str(r) for r in results
            )
            assert 0.55 < took < 5, took  # the third waited for a place, then for its own timer
            assert [p.sequence_number for p in received] == [1, 2, 3]  # the third went out only once a place freed
            assert not smpp._pending and not smpp.closed
            peers[0].write(Pdu(CommandId.SUBMIT_SM_RESP, 1, 0).encode())  # late: nobody waits for it
            assert (await smpp.request(CommandId.ENQUIRE_LINK)).ok  # read after the late one (one TCP stream)
            assert not smpp.closed and not smpp._pending
        finally:
            await smpp.close(unbind=False)
            server.close()
            await server.wait_closed()

    run(session())


def test_a_burst_of_requests_through_a_wide_window() -> None:
    """300 submit_sm with window 64 through SmscServer: every one answered with its own message_id, in any order
    of completion; the accept comes from the server's event consumer with no task per answer."""

    async def session() -> None:
        server = SmscServer("127.0.0.1", 0, system_id="SMSC")
        await server.start()
        try:
            esme = await Esme.bind("127.0.0.1", server.port, "ota", "pw", window=64)

            async def answer() -> None:
                while True:
                    event = await server.next()
                    if isinstance(event, SubmitSmEvent):
                        event.accept(f"m{event.body.short_message[-1]}-{event.pdu.sequence_number}")
                    else:
                        assert isinstance(event, BoundEvent)

            answering = asyncio.create_task(answer())
            try:
                resps = await asyncio.gather(*(esme.submit_sm(_submit(n), timeout=10) for n in range(300)))
            finally:
                answering.cancel()
            ids = [getattr(r.body, "message_id", "") for r in resps]
            assert all(r.ok for r in resps) and len(set(ids)) == 300
            assert [i.split("-")[0] for i in ids] == [f"m{n % 256}" for n in range(300)]
            await esme.unbind()
        finally:
            await server.stop()

    run(session())


def test_a_closed_session_refuses_requests() -> None:
    async def session() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        smpp = SmppSession(reader, writer, _no_requests)
        smpp.start()
        await smpp.close(unbind=False)
        with pytest.raises(TransportError, match="closed"):
            await smpp.request(CommandId.ENQUIRE_LINK)
        server.close()

    run(session())
