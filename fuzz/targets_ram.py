"""Targets: GP Amendment B admin HTTP on both sides (gpchannel.ram.server from the card's bytes,
gpchannel.ram.client from the server's bytes, the X-Admin-* header parsers of gpchannel.ram.admin) and the SCP81
session triggering parameters (gpchannel.ram.trigger)."""

from __future__ import annotations

from collections.abc import Sequence

from fuzz.engine import Target, each
from fuzz.seeds import vector_hex
from gpchannel.errors import AdminProtocolError
from gpchannel.ram import admin
from gpchannel.ram.client import AdminClientConnection, AdminServerError, ScriptDelivery, SessionEnd
from gpchannel.ram.server import AdminServerConnection
from gpchannel.ram.trigger import RetryPolicy, TriggerParameters

__all__ = ["TARGETS"]

_PROTO = "X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
_GP_RESP = "Content-Type: application/vnd.globalplatform.card-content-mgt-response;version=1.0\r\n"
_ETSI_RESP = "Content-Type: application/vnd.etsi.scp.response-data;version=1.0\r\n"


def _request(uri: str, headers: str, body: bytes = b"", *, chunked: bool = False) -> bytes:
    head = f"POST {uri} HTTP/1.1\r\nHost: ras.example\r\n{headers}"
    if chunked:
        framed = f"{len(body):X}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + framed
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _server_seeds() -> Sequence[bytes]:
    first = _request("/ras", _PROTO + "From: //se-id/eid/89440000000000000001;//aa-id/aid/A000000151/000000\r\n")
    resume = _request("/ras", _PROTO + "X-Admin-Resume: true\r\n")
    script = bytes.fromhex("AB07800101230290 00")
    answer = _request("/next/1", _PROTO + _GP_RESP + "X-Admin-Script-Status: ok\r\n", script)
    etsi = _request("/next/2", _PROTO + _ETSI_RESP, script, chunked=True)
    failed = _request("/next/3", _PROTO + "X-Admin-Script-Status: unknown-application\r\n")
    return [first, resume, answer, etsi, failed, first + answer, first + etsi + failed]


def _server(data: bytes) -> None:
    """The card's bytes in two pieces; every request answered (script, then end) as the admin server does; a
    refused request answered with its status."""
    conn = AdminServerConnection(max_body=4096)
    cut = len(data) // 3
    answered = 0
    try:
        for piece in (data[:cut], data[cut:], b""):
            conn.receive_data(piece)
            while (request := conn.next_request()) is not None:
                del request
                answered += 1
                if answered % 2:
                    conn.send_script(bytes.fromhex("AA06 22 04 00A40000"), next_uri=f"/next/{answered}")
                else:
                    conn.send_end()
    except AdminProtocolError as exc:
        conn.send_error(exc.status, str(exc))


def _client_seeds() -> Sequence[bytes]:
    out = []
    for content_type in (admin.ContentType.GP_COMMAND, list(admin.ContentType)[-2]):
        server = AdminServerConnection()
        server.receive_data(_request("/ras", _PROTO))
        assert server.next_request() is not None
        if content_type.is_response:
            content_type = admin.ContentType.GP_COMMAND
        target = admin.TargetedApplication(bytes.fromhex("A000000151000000"))
        out.append(
            server.send_script(
                bytes.fromhex("AA06 22 04 00A40000"),
                next_uri="/ras/next?x=1",
                content_type=content_type,
                targeted_application=target,
            )
        )
    server = AdminServerConnection()
    server.receive_data(_request("/ras", _PROTO))
    assert server.next_request() is not None
    out.append(server.send_end())
    out.append(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nno card\r\n")
    out.append(
        b"HTTP/1.1 200 OK\r\nX-Admin-Protocol: globalplatform-remote-admin/1.0\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/vnd.globalplatform.card-content-mgt;version=1.0\r\n"
        b"X-Admin-Next-URI: /n\r\n\r\n4\r\nAA02\r\n0\r\n\r\n"
    )
    return out + list(vector_hex("ram", max_size=600))


def _client(data: bytes) -> None:
    """The server's bytes as the answer to the first POST; a delivered script is answered at its next URI."""
    conn = AdminClientConnection(host="ras.example", agent_from="//se-id/eid/89440000000000000001", max_body=4096)
    conn.first_post("/ras")
    cut = len(data) // 2
    for piece in (data[:cut], data[cut:]):
        conn.receive_data(piece)
        event = conn.next_event()
        if isinstance(event, ScriptDelivery):
            conn.post_response(event.next_uri, bytes.fromhex("AB07800101230290 00"))
        elif isinstance(event, SessionEnd | AdminServerError):
            return
    conn.receive_data(b"")
    conn.next_event()


def _header_seeds() -> Sequence[bytes]:
    texts = [ct.value for ct in admin.ContentType] + [
        "ok",
        "unknown-application",
        "not-a-security-domain",
        "security-error",
        "globalplatform-remote-admin/1.0",
        "true",
        "aid=A000000151;pix=000000",
        "//aa-id/aid/A000000151/000000",
    ]
    return [t.encode() for t in texts]


def _text(data: bytes) -> str:
    return data.decode("latin-1")


_headers = each(
    lambda d: admin.ContentType.parse(_text(d)),
    lambda d: admin.ScriptStatus.parse(_text(d)),
    lambda d: admin.parse_protocol(_text(d)),
    lambda d: admin.parse_resume(_text(d)),
    lambda d: admin.TargetedApplication.from_header(_text(d)),
)


def _trigger_seeds() -> Sequence[bytes]:
    full = bytes.fromhex(
        "8143833A840335010385090469642D31024001 02A5020102 86090005A503100354 8700"
        "89198A0B7261732E6578616D706C658B04383934348C042F726173B305D603616263"
    )
    return [full, bytes.fromhex("8100"), bytes.fromhex("81028300"), *vector_hex("ram", max_size=300)]


_trigger = each(TriggerParameters.from_bytes, lambda d: RetryPolicy.from_bytes(d, 0))

TARGETS: tuple[Target, ...] = (
    Target("ram.server", _server_seeds, _server),
    Target("ram.client", _client_seeds, _client),
    Target("ram.admin_headers", _header_seeds, _headers, max_size=300),
    Target("ram.trigger", _trigger_seeds, _trigger),
)
