"""Interoperability with an independent HTTP/1.1 implementation (the standard library's http.client) over a real
socket pair: its POSTs (chunked included) read by AdminServerConnection, AdminServerConnection's answers read by
http.client.HTTPResponse."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import pytest

from gpchannel.errors import AdminProtocolError
from gpchannel.ram.admin import ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.server import AdminRequest, AdminServerConnection

SCRIPT = bytes.fromhex("AE80 2205 80CAFF2100 0000")
RESPONSE = bytes.fromhex("AF80 800101 2304 93059000 0000")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def drain(sock: socket.socket, conn: AdminServerConnection) -> AdminRequest:
    """Feed what the peer wrote to ``conn`` until a request is complete."""
    while True:
        conn.receive_data(sock.recv(65536))
        req = conn.next_request()
        if req is not None:
            return req


def test_stdlib_client_posts_and_reads_our_answers(pair: tuple[socket.socket, socket.socket]) -> None:
    card_sock, ras_sock = pair
    card = http.client.HTTPConnection("ras.example", 8443)
    card.sock = card_sock
    server = AdminServerConnection()

    card.request("POST", "/ras", headers={"X-Admin-Protocol": "globalplatform-remote-admin/1.0", "X-Admin-From": "89"})
    first = drain(ras_sock, server)
    assert first.first and first.agent_from == "89" and first.host == "ras.example:8443"
    app = TargetedApplication(bytes.fromhex("A000000151000000"))
    ras_sock.sendall(server.send_script(SCRIPT, next_uri="/ras/1", targeted_application=app))
    answer = card.getresponse()
    assert answer.status == 200 and answer.reason == "OK"
    assert answer.getheader("Content-Type") == ContentType.GP_COMMAND.value
    assert answer.getheader("X-Admin-Next-URI") == "/ras/1"
    assert answer.getheader("X-Admin-Targeted-Application") == "//aid/A000000151/000000"
    assert answer.read() == SCRIPT

    # the response script, chunked by http.client (encode_chunked), on the same connection
    card.request(
        "POST",
        "/ras/1",
        body=iter([RESPONSE[:3], RESPONSE[3:]]),
        headers={
            "X-Admin-Protocol": "globalplatform-remote-admin/1.0",
            "Content-Type": ContentType.GP_RESPONSE.value,
            "X-Admin-Script-Status": "ok",
            "Transfer-Encoding": "chunked",
        },
        encode_chunked=True,
    )
    response = drain(ras_sock, server)
    assert response.body == RESPONSE and response.script_status is ScriptStatus.OK
    ras_sock.sendall(server.send_end())
    end = card.getresponse()
    assert end.status == 204 and end.getheader("X-Admin-Protocol") == "globalplatform-remote-admin/1.0"
    assert end.read() == b""

    # and a refusal: Connection: close, the reason as text
    card.request("GET", "/ras", headers={"X-Admin-Protocol": "globalplatform-remote-admin/1.0"})
    server.receive_data(ras_sock.recv(65536))
    with pytest.raises(AdminProtocolError) as info:
        server.next_request()
    ras_sock.sendall(server.send_error(405, str(info.value)))
    refused = card.getresponse()
    assert refused.status == 405 and refused.getheader("Allow") == "POST"
    assert refused.getheader("Connection") == "close" and b"GET" in refused.read()
    assert server.closed
