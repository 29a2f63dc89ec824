"""A whole admin session in memory: AdminClientConnection bytes -> AdminServerConnection and back (GP Amendment B
3.4-3.6: first POST, scripts, responses, 204), with the scripts of gpchannel.ota.remote_apdu."""

from __future__ import annotations

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import AdminProtocolError
from gpchannel.ota.remote_apdu import CommandScript, RApdu, ResponseScript
from gpchannel.ram.admin import ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.client import AdminClientConnection, AdminServerError, ScriptDelivery, SessionEnd
from gpchannel.ram.server import AdminRequest, AdminServerConnection
from tests.ram.test_server import ERRORS

ISD = TargetedApplication(bytes.fromhex("A000000151000000"))


def to_server(server: AdminServerConnection, raw: bytes) -> AdminRequest:
    server.receive_data(raw)
    req = server.next_request()
    assert req is not None
    return req


def to_card(card: AdminClientConnection, raw: bytes) -> object:
    card.receive_data(raw)
    return card.next_event()


def run_script(delivery: ScriptDelivery) -> bytes:
    """The card's part: answer each C-APDU with 9000 and some data."""
    script = CommandScript.from_bytes(delivery.script)
    responses = [ResponseApdu(bytes([i]) * 3, 0x9000) for i, _ in enumerate(script.apdus)]
    return ResponseScript(tuple(RApdu(r) for r in responses), executed=len(responses), definite=False).to_bytes()


@pytest.mark.parametrize(
    ("command", "response"),
    [(ContentType.GP_COMMAND, ContentType.GP_RESPONSE), (ContentType.ETSI_COMMAND, ContentType.ETSI_RESPONSE)],
)
def test_whole_session(command: ContentType, response: ContentType) -> None:
    server = AdminServerConnection()
    card = AdminClientConnection(host="ras.example:8443", agent_from="89882390000000000001")

    first = to_server(server, card.first_post("/ras/admin"))
    assert first.first and first.agent_from == "89882390000000000001" and first.host == "ras.example:8443"

    scripts = [
        CommandScript.of([CommandApdu(0x80, 0xCA, 0xFF, 0x21, le=256)]),
        CommandScript.of([CommandApdu(0x80, 0xF2, 0x40, 0x00, bytes.fromhex("4F00"), le=256)] * 2, definite=False),
    ]
    uri = ""
    for step, script in enumerate(scripts):
        out = server.send_script(
            script.to_bytes(),
            next_uri=f"/ras/admin/{step}",
            content_type=command,
            targeted_application=ISD if step == 0 else None,
        )
        delivery = to_card(card, out)
        assert isinstance(delivery, ScriptDelivery)
        assert CommandScript.from_bytes(delivery.script) == script
        assert delivery.content_type is command and delivery.next_uri == f"/ras/admin/{step}"
        assert delivery.targeted_application == (ISD if step == 0 else None)
        answer = run_script(delivery)
        uri = delivery.next_uri
        req = to_server(server, card.post_response(uri, answer, content_type=response, chunked=step == 1, chunk_size=5))
        assert req.uri == uri and req.body == answer and req.content_type is response
        assert req.script_status is ScriptStatus.OK and not req.first and not req.resume
        assert len(ResponseScript.from_bytes(req.body).responses) == len(script.apdus)

    assert to_card(card, server.send_end()) == SessionEnd()
    card.receive_data(b"")  # the card closes: nothing to read
    server.receive_data(b"")
    assert server.next_request() is None and server.closed


def test_resumed_session_and_error_status() -> None:
    server = AdminServerConnection()
    card = AdminClientConnection(host="ras", agent_from="agent")
    first = to_server(server, card.first_post("/ras", resume=True))
    assert first.first and first.resume
    delivery = to_card(card, server.send_script(bytes.fromhex("AA07220580CAFF2100"), next_uri="/ras/r"))
    assert isinstance(delivery, ScriptDelivery)
    req = to_server(server, card.post_response("/ras/r", b"", status=ScriptStatus.UNKNOWN_APPLICATION))
    assert req.script_status is ScriptStatus.UNKNOWN_APPLICATION and req.body == b"" and not req.first
    assert to_card(card, server.send_end()) == SessionEnd()


def test_wrong_family_answer_gets_415_and_the_card_sees_it() -> None:
    server = AdminServerConnection()
    card = AdminClientConnection(host="ras", agent_from=None)
    to_server(server, card.first_post("/ras"))
    to_card(card, server.send_script(bytes.fromhex("AA00"), next_uri="/n", content_type=ContentType.ETSI_COMMAND))
    server.receive_data(card.post_response("/n", bytes.fromhex("AB00"), content_type=ContentType.GP_RESPONSE))
    with pytest.raises(AdminProtocolError) as info:
        server.next_request()
    event = to_card(card, server.send_error(info.value.status, str(info.value)))
    assert isinstance(event, AdminServerError) and event.status == 415 and event.reason == "Unsupported Media Type"
    assert card.closed and server.closed


@pytest.mark.parametrize(("raw", "status"), [(raw, status) for _, raw, status in ERRORS], ids=[e[0] for e in ERRORS])
def test_every_error_status_reaches_the_card(raw: bytes, status: int) -> None:
    server = AdminServerConnection()
    server.receive_data(raw)
    with pytest.raises(AdminProtocolError) as info:
        server.next_request()
    card = AdminClientConnection(host="ras", agent_from=None)
    card.first_post("/ras")  # the card's side of the exchange: it waits for an answer
    event = to_card(card, server.send_error(info.value.status, str(info.value)))
    assert isinstance(event, AdminServerError)
    assert event.status == status and event.reason and event.detail
    assert card.closed and server.closed
