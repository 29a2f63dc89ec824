"""gpchannel.ram.client: the card side of an admin connection, checked against hand-written HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.errors import AdminProtocolError, LocalProtocolError
from gpchannel.ram.admin import ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.client import AdminClientConnection, AdminServerError, ScriptDelivery, SessionEnd
from tests.ram._http import chunked

SCRIPT = bytes.fromhex("AA07220580CAFF2100")
RESPONSE = bytes.fromhex("AB07 800101 23029000")
HEAD = b"Host: ras.example\r\nX-Admin-Protocol: globalplatform-remote-admin/1.0\r\nX-Admin-From: 8944500601\r\n"
OK_200 = (
    b"HTTP/1.1 200 OK\r\n"
    b"X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
    b"Content-Type: application/vnd.globalplatform.card-content-mgt;version=1.0\r\n"
    b"X-Admin-Next-URI: /ras/1\r\n"
    b"Content-Length: 9\r\n\r\n" + SCRIPT
)


def client() -> AdminClientConnection:
    return AdminClientConnection(host="ras.example", agent_from="8944500601")


def answered(conn: AdminClientConnection, raw: bytes) -> object:
    conn.receive_data(raw)
    return conn.next_event()


def test_first_post_bytes() -> None:
    assert client().first_post("/ras") == b"POST /ras HTTP/1.1\r\n" + HEAD + b"Content-Length: 0\r\n\r\n"
    resumed = client().first_post("/ras", resume=True)
    assert resumed == b"POST /ras HTTP/1.1\r\n" + HEAD + b"X-Admin-Resume: true\r\nContent-Length: 0\r\n\r\n"
    anonymous = AdminClientConnection(host="10.0.0.1:8443", agent_from=None).first_post("/")
    assert b"X-Admin-From" not in anonymous and b"Host: 10.0.0.1:8443\r\n" in anonymous


def test_post_response_bytes() -> None:
    conn = client()
    conn.first_post("/ras")
    assert answered(conn, OK_200) == ScriptDelivery(SCRIPT, ContentType.GP_COMMAND, "/ras/1", None)
    out = conn.post_response("/ras/1", RESPONSE)
    assert out == (
        b"POST /ras/1 HTTP/1.1\r\n" + HEAD + b"Content-Type: application/vnd.globalplatform.card-content-mgt-response;"
        b"version=1.0\r\nX-Admin-Script-Status: ok\r\nContent-Length: 9\r\n\r\n" + RESPONSE
    )


def test_post_response_chunked_bytes() -> None:
    conn = client()
    out = conn.post_response("/r", RESPONSE, content_type=ContentType.ETSI_RESPONSE, chunked=True, chunk_size=4)
    assert out == (
        b"POST /r HTTP/1.1\r\n" + HEAD + b"Content-Type: application/vnd.etsi.scp.response-data;version=1.0\r\n"
        b"X-Admin-Script-Status: ok\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(RESPONSE, 4)
    )


def test_non_ok_status_has_no_body_nor_content_type() -> None:
    out = client().post_response("/r", b"", status=ScriptStatus.NOT_A_SECURITY_DOMAIN, resume=True)
    assert out == (
        b"POST /r HTTP/1.1\r\n" + HEAD + b"X-Admin-Resume: true\r\n"
        b"X-Admin-Script-Status: not-a-security-domain\r\nContent-Length: 0\r\n\r\n"
    )


def test_request_rules() -> None:
    with pytest.raises(ValueError):
        client().post_response("/r", RESPONSE, status=ScriptStatus.SECURITY_ERROR)
    with pytest.raises(ValueError):
        client().post_response("/r", b"")
    with pytest.raises(ValueError):
        client().post_response("/r", RESPONSE, content_type=ContentType.GP_COMMAND)
    with pytest.raises(ValueError):
        client().first_post("/r x")
    with pytest.raises(ValueError):
        client().first_post("")
    with pytest.raises(ValueError):
        AdminClientConnection(host="a\r\nb: c", agent_from=None)
    with pytest.raises(ValueError):
        AdminClientConnection(host="a", agent_from="x\n")
    conn = client()
    conn.first_post("/ras")
    with pytest.raises(LocalProtocolError):
        conn.post_response("/ras", RESPONSE)


def test_script_delivery_with_targeted_application_and_chunked_body() -> None:
    conn = client()
    conn.first_post("/ras")
    raw = (
        b"HTTP/1.1 200 OK\r\n"
        b"X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
        b"Content-Type: application/vnd.etsi.scp.command-data;version=1.0\r\n"
        b"X-Admin-Next-URI: /ras/2\r\n"
        b"X-Admin-Targeted-Application: //aid/A000000087/1002FF\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked(SCRIPT, 2)
    )
    for i in range(len(raw) - 1):
        conn.receive_data(raw[i : i + 1])
        assert conn.next_event() is None
    conn.receive_data(raw[-1:])
    assert conn.next_event() == ScriptDelivery(
        SCRIPT, ContentType.ETSI_COMMAND, "/ras/2", TargetedApplication(bytes.fromhex("A0000000871002FF"))
    )


def test_session_end_with_and_without_protocol_header() -> None:
    for raw in (
        b"HTTP/1.1 204 No Content\r\nX-Admin-Protocol: globalplatform-remote-admin/1.0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",  # njiwa's 204 carries no admin header
    ):
        conn = client()
        conn.first_post("/ras")
        assert answered(conn, raw) == SessionEnd()
        conn.receive_data(b"")
        assert conn.next_event() is None
        assert conn.closed


def test_server_error_is_an_event() -> None:
    conn = client()
    conn.first_post("/ras")
    raw = (
        b"HTTP/1.1 404 Not Found\r\nX-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\nunknown uri\n"
    )
    assert answered(conn, raw) == AdminServerError(404, "Not Found", "unknown uri")
    assert conn.closed
    with pytest.raises(LocalProtocolError):
        conn.first_post("/ras")


def test_server_error_without_reason_phrase() -> None:
    conn = client()
    conn.first_post("/ras")
    assert answered(conn, b"HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n") == AdminServerError(
        503, "Service Unavailable", ""
    )


BAD_200 = [
    ("wrong protocol", OK_200.replace(b"remote-admin/1.0", b"remote-admin/9.9"), 400),
    ("no Next-URI", OK_200.replace(b"X-Admin-Next-URI: /ras/1\r\n", b""), 400),
    (
        "no Content-Type",
        OK_200.replace(b"Content-Type: application/vnd.globalplatform.card-content-mgt;version=1.0\r\n", b""),
        415,
    ),
    ("response type", OK_200.replace(b"content-mgt;", b"content-mgt-response;"), 415),
    (
        "bare AID (OPAL dummy trace form)",
        OK_200.replace(b"\r\n\r\n", b"\r\nX-Admin-Targeted-Application: A000000003000000\r\n\r\n"),
        400,
    ),
    ("malformed", b"HTTP/1.1 abc\r\n\r\n", 400),
    # a Next-URI is accepted only if the card can POST to it (the header value may hold what a request line may not)
    ("Next-URI with a space", OK_200.replace(b"/ras/1", b"/ras/1 x"), 400),
    ("Next-URI with a tab", OK_200.replace(b"/ras/1", b"/ras\t1"), 400),
    ("Next-URI not ASCII", OK_200.replace(b"/ras/1", b"/r\xe9s/1"), 400),
    ("Next-URI too long", OK_200.replace(b"/ras/1", b"/" + b"r" * 2048), 400),
]


@pytest.mark.parametrize(("raw", "status"), [(r, s) for _, r, s in BAD_200], ids=[b[0] for b in BAD_200])
def test_bad_answers_raise(raw: bytes, status: int) -> None:
    conn = client()
    conn.first_post("/ras")
    conn.receive_data(raw)
    with pytest.raises(AdminProtocolError) as info:
        conn.next_event()
    assert info.value.status == status


def test_server_closes_before_answering() -> None:
    conn = client()
    conn.first_post("/ras")
    conn.receive_data(OK_200[:40])
    assert conn.next_event() is None
    conn.receive_data(b"")
    with pytest.raises(AdminProtocolError):
        conn.next_event()
    assert conn.closed


def test_server_closes_while_waiting() -> None:
    conn = client()
    conn.first_post("/ras")
    conn.receive_data(b"")
    with pytest.raises(AdminProtocolError, match="closed the connection before answering"):
        conn.next_event()
    assert conn.closed


def test_response_body_limit() -> None:
    conn = AdminClientConnection(host="h", agent_from=None, max_body=4)
    conn.first_post("/ras")
    conn.receive_data(OK_200)
    with pytest.raises(AdminProtocolError) as info:
        conn.next_event()
    assert info.value.status == 413


@settings(max_examples=300)
@given(st.binary(max_size=400), st.booleans())
def test_any_answer_bytes_raise_only_admin_protocol_errors(data: bytes, eof: bool) -> None:
    conn = client()
    conn.first_post("/ras")
    try:
        conn.receive_data(data)
        if eof:
            conn.receive_data(b"")
        while conn.next_event() is not None:
            if conn.closed:
                break
            conn.post_response("/ras/n", RESPONSE)
    except AdminProtocolError:
        pass


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_valid_answer_then_any_bytes(tail: bytes) -> None:
    conn = client()
    conn.first_post("/ras")
    conn.receive_data(OK_200 + tail)
    try:
        assert isinstance(conn.next_event(), ScriptDelivery)
        conn.post_response("/ras/1", RESPONSE)
        conn.next_event()
    except AdminProtocolError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_an_accepted_next_uri_is_one_the_card_can_post_to(uri: bytes) -> None:
    """Acceptance and use agree: whatever X-Admin-Next-URI a 200 carries, either the answer is refused
    (AdminProtocolError, before the script runs) or post_response to it succeeds (it used to raise ValueError after
    the script had run, and the agent re-posted the stored response forever)."""
    conn = client()
    conn.first_post("/ras")
    conn.receive_data(OK_200.replace(b"/ras/1", uri))
    try:
        event = conn.next_event()
    except AdminProtocolError:
        return
    assert isinstance(event, ScriptDelivery)
    assert conn.post_response(event.next_uri, RESPONSE).startswith(b"POST " + event.next_uri.encode() + b" ")
