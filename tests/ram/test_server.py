"""gpchannel.ram.server: the RAS side of an admin connection, fed with hand-written HTTP."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.errors import AdminProtocolError, LocalProtocolError
from gpchannel.ram.admin import ContentType, ScriptStatus, TargetedApplication
from gpchannel.ram.server import AdminRequest, AdminServerConnection
from tests.ram._http import ETSI_RESP, GP_RESP, PROTO, chunked, request

SCRIPT = bytes.fromhex("AA07220580CAFF2100")
RESPONSE = bytes.fromhex("AB07 800101 23029000")
OK = f"{PROTO}{GP_RESP}X-Admin-Script-Status: ok\r\n"


def feed(conn: AdminServerConnection, data: bytes) -> AdminRequest | None:
    conn.receive_data(data)
    return conn.next_request()


def test_first_post() -> None:
    conn = AdminServerConnection()
    req = feed(
        conn, request("/ras/admin", headers=PROTO + "X-Admin-From: //se-id/eid/89049032;//aa-id/aid/A0000005/59\r\n")
    )
    assert req == AdminRequest(
        uri="/ras/admin",
        agent_from="//se-id/eid/89049032;//aa-id/aid/A0000005/59",
        resume=False,
        content_type=None,
        script_status=None,
        body=b"",
        host="ras.example",
    )
    assert req is not None and req.first


def test_first_post_without_content_length_and_resumed() -> None:
    conn = AdminServerConnection()
    req = feed(conn, request(headers=PROTO + "X-Admin-Resume: true\r\n", length=False))
    assert req is not None and req.first and req.resume and req.agent_from is None


def test_script_response_bytes() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    out = conn.send_script(
        SCRIPT,
        next_uri="/ras/admin?step=1",
        targeted_application=TargetedApplication(bytes.fromhex("A000000151000000")),
    )
    assert out == (
        b"HTTP/1.1 200 OK\r\n"
        b"X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
        b"Content-Type: application/vnd.globalplatform.card-content-mgt;version=1.0\r\n"
        b"X-Admin-Next-URI: /ras/admin?step=1\r\n"
        b"X-Admin-Targeted-Application: //aid/A000000151/000000\r\n"
        b"Content-Length: 9\r\n\r\n" + SCRIPT
    )
    assert not conn.closed


def test_end_bytes() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    assert conn.send_end() == b"HTTP/1.1 204 No Content\r\nX-Admin-Protocol: globalplatform-remote-admin/1.0\r\n\r\n"
    assert not conn.closed  # persistent: the card closes after the 204
    conn.receive_data(b"")
    assert conn.next_request() is None
    assert conn.closed


def test_many_posts_on_one_connection_with_chunked_bodies() -> None:
    conn = AdminServerConnection()
    assert feed(conn, request()) is not None
    conn.send_script(SCRIPT, next_uri="/ras/1")
    for step in range(1, 6):
        body = RESPONSE * step
        raw = request(f"/ras/{step}", headers=OK + "Transfer-Encoding: chunked\r\n", length=False) + chunked(body, 3)
        for i in range(len(raw)):  # one byte at a time
            conn.receive_data(raw[i : i + 1])
            req = conn.next_request()
            assert (req is None) == (i < len(raw) - 1)
        assert req is not None
        assert req.body == body and req.uri == f"/ras/{step}"
        assert req.content_type is ContentType.GP_RESPONSE and req.script_status is ScriptStatus.OK
        assert not req.first
        conn.send_script(SCRIPT, next_uri=f"/ras/{step + 1}")
    assert not conn.closed


def test_pipelined_requests_wait_for_the_answer() -> None:
    conn = AdminServerConnection()
    conn.receive_data(request("/a") + request("/b"))
    first = conn.next_request()
    assert first is not None and first.uri == "/a"
    with pytest.raises(LocalProtocolError):
        conn.next_request()
    conn.send_end()
    second = conn.next_request()
    assert second is not None and second.uri == "/b"


def test_http_1_0_closes_after_the_answer() -> None:
    conn = AdminServerConnection()
    req = feed(conn, b"POST /ras HTTP/1.0\r\n" + PROTO.encode() + b"Content-Length: 0\r\n\r\n")
    assert req is not None and req.first and req.host is None
    conn.send_script(SCRIPT, next_uri="/n")
    assert conn.closed


def test_repeated_equal_content_length_is_one() -> None:
    conn = AdminServerConnection()
    raw = request(headers=OK + f"Content-Length: {len(RESPONSE)}\r\n", body=RESPONSE)
    req = feed(conn, raw)
    assert req is not None and req.body == RESPONSE


def test_connection_close_from_client_closes_after_the_answer() -> None:
    conn = AdminServerConnection()
    assert feed(conn, request(headers=PROTO + "Connection: close\r\n")) is not None
    assert not conn.closed
    conn.send_end()
    assert conn.closed


def test_non_ok_status_without_body() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    conn.send_script(SCRIPT, next_uri="/n")
    req = feed(conn, request("/n", headers=PROTO + "X-Admin-Script-Status: unknown-application\r\n"))
    assert req is not None and not req.first
    assert req.script_status is ScriptStatus.UNKNOWN_APPLICATION and req.body == b"" and req.content_type is None


def test_non_ok_status_with_partial_results_is_passed_on() -> None:
    conn = AdminServerConnection()
    req = feed(conn, request(headers=f"{PROTO}{GP_RESP}X-Admin-Script-Status: security-error\r\n", body=RESPONSE))
    assert req is not None and req.body == RESPONSE and req.script_status is ScriptStatus.SECURITY_ERROR


def test_etsi_family() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    out = conn.send_script(SCRIPT, next_uri="/e", content_type=ContentType.ETSI_COMMAND)
    assert b"Content-Type: application/vnd.etsi.scp.command-data;version=1.0\r\n" in out
    req = feed(conn, request("/e", headers=f"{PROTO}{ETSI_RESP}X-Admin-Script-Status: ok\r\n", body=RESPONSE))
    assert req is not None and req.content_type is ContentType.ETSI_RESPONSE


def test_response_family_must_match_the_script_sent() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    conn.send_script(SCRIPT, next_uri="/e", content_type=ContentType.ETSI_COMMAND)
    with pytest.raises(AdminProtocolError) as info:
        feed(conn, request("/e", headers=OK, body=RESPONSE))
    assert info.value.status == 415


def test_fresh_connection_accepts_either_family() -> None:
    for header in (GP_RESP, ETSI_RESP):
        conn = AdminServerConnection()
        req = feed(
            conn,
            request(headers=f"{PROTO}{header}X-Admin-Script-Status: ok\r\nX-Admin-Resume: true\r\n", body=RESPONSE),
        )
        assert req is not None and req.resume


ERRORS = [
    ("malformed request line", b"POST\r\n\r\n", 400),
    ("not HTTP", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(20) + b"\r\n\r\n", 400),
    ("missing Host", b"POST / HTTP/1.1\r\n" + PROTO.encode() + b"\r\n", 400),
    ("bad chunk size", request(headers=OK + "Transfer-Encoding: chunked\r\n", length=False) + b"zz\r\n", 400),
    (
        "Content-Length and chunked",
        request(headers=OK + "Transfer-Encoding: chunked\r\n", body=chunked(RESPONSE, 4)),
        400,
    ),
    ("body type without framing", request(headers=OK, body=RESPONSE, length=False), 411),
    ("GET", request(method="GET"), 405),
    ("PUT", request(method="PUT", headers=OK, body=RESPONSE), 405),
    ("no X-Admin-Protocol", request(headers=""), 400),
    ("version 2.0", request(headers="X-Admin-Protocol: globalplatform-remote-admin/2.0\r\n"), 400),
    ("other protocol", request(headers="X-Admin-Protocol: gsma/rsp/v2.0.0\r\n"), 400),
    ("Content-Length too large", request(headers=OK, body=bytes(70000)), 413),
    (
        "chunks too large",
        request(headers=OK + "Transfer-Encoding: chunked\r\n", length=False) + chunked(bytes(70000), 4096),
        413,
    ),
    ("text/plain", request(headers=PROTO + "Content-Type: text/plain\r\n", body=b"x"), 415),
    (
        "command type from the card",
        request(
            headers=PROTO + "Content-Type: application/vnd.globalplatform.card-content-mgt;version=1.0\r\n", body=b"x"
        ),
        415,
    ),
    ("body without Content-Type", request(body=RESPONSE), 415),
    ("ok without body", request(headers=OK), 400),
    ("unknown script status", request(headers=PROTO + "X-Admin-Script-Status: done\r\n"), 400),
    ("bad resume", request(headers=PROTO + "X-Admin-Resume: 1\r\n"), 400),
    ("repeated admin header", request(headers=PROTO + PROTO), 400),
    ("huge header block", request(headers=PROTO + "X-Filler: " + "a" * 20000 + "\r\n"), 431),
]


@pytest.mark.parametrize(("raw", "status"), [(raw, status) for _, raw, status in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_statuses(raw: bytes, status: int) -> None:
    conn = AdminServerConnection()
    conn.receive_data(raw)
    with pytest.raises(AdminProtocolError) as info:
        conn.next_request()
    assert info.value.status == status
    with pytest.raises(AdminProtocolError):  # sticky
        conn.next_request()
    out = conn.send_error(info.value.status, str(info.value))
    head = out.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert b"X-Admin-Protocol: globalplatform-remote-admin/1.0" in head
    if status == 405:
        assert b"\r\nAllow: POST" in head
    assert conn.closed
    conn.receive_data(request())  # ignored
    assert conn.closed


def test_error_on_a_later_request_of_a_kept_alive_connection() -> None:
    conn = AdminServerConnection(max_body=16)
    feed(conn, request())
    conn.send_script(SCRIPT, next_uri="/n")
    with pytest.raises(AdminProtocolError) as info:
        feed(conn, request("/n", headers=OK, body=bytes(17)))
    assert info.value.status == 413
    assert conn.send_error(413, "too large").startswith(b"HTTP/1.1 413 ")
    assert conn.closed


def test_error_reason_is_one_line() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    out = conn.send_error(404, "unknown\r\nX-Injected: 1")
    assert out.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert out.endswith(b"\r\n\r\nunknown  X-Injected: 1\n")


def test_peer_closes_between_requests() -> None:
    conn = AdminServerConnection()
    feed(conn, request())
    conn.send_end()
    conn.receive_data(b"")
    assert conn.next_request() is None
    assert conn.closed


def test_peer_closes_before_anything() -> None:
    conn = AdminServerConnection()
    conn.receive_data(b"")
    assert conn.next_request() is None and conn.closed


@pytest.mark.parametrize(
    "partial",
    [
        b"POST /ras HTT",
        request(headers=OK, body=RESPONSE)[:-3],
        request(headers=OK + "Transfer-Encoding: chunked\r\n", length=False) + b"4\r\nAB",
    ],
)
def test_peer_closes_mid_request(partial: bytes) -> None:
    conn = AdminServerConnection()
    conn.receive_data(partial)
    assert conn.next_request() is None
    conn.receive_data(b"")
    with pytest.raises(AdminProtocolError, match="client disconnected mid-request"):
        conn.next_request()
    assert conn.closed
    assert conn.send_error(400, "gone") == b""


def test_sending_rules() -> None:
    conn = AdminServerConnection()
    with pytest.raises(LocalProtocolError):
        conn.send_script(SCRIPT, next_uri="/x")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    feed(conn, request())
    with pytest.raises(ValueError):
        conn.send_script(SCRIPT, next_uri="/x", content_type=ContentType.GP_RESPONSE)
    with pytest.raises(ValueError):
        conn.send_script(SCRIPT, next_uri="/x\r\nX-Evil: 1")
    with pytest.raises(ValueError):
        conn.send_script(SCRIPT, next_uri="")
    for unusable in ("/a b", "/caf\u00e9", "/" + "x" * 2048):  # header-safe, but no card could POST to it
        with pytest.raises(ValueError, match="visible ASCII"):
            conn.send_script(SCRIPT, next_uri=unusable)
    with pytest.raises(ValueError):
        conn.send_error(200, "no")
    conn.send_end()
    with pytest.raises(LocalProtocolError):
        conn.send_end()


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=4), st.booleans())
def test_any_bytes_raise_only_admin_protocol_errors(data: bytes, cuts: list[int], eof: bool) -> None:
    conn = AdminServerConnection(max_body=256)
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    try:
        for piece in [*pieces, *([b""] if eof else [])]:
            conn.receive_data(piece)
            while conn.next_request() is not None:
                conn.send_script(SCRIPT, next_uri="/n")
    except AdminProtocolError as exc:
        assert 400 <= exc.status <= 499
        conn.send_error(exc.status, str(exc))
        assert conn.closed


@settings(max_examples=200)
@given(
    st.binary(max_size=300),
    st.sampled_from(
        [
            request(),
            request(headers=OK, body=RESPONSE),
            request(headers=OK + "Transfer-Encoding: chunked\r\n", length=False) + chunked(RESPONSE, 2),
        ]
    ),
)
def test_valid_prefix_then_any_bytes(tail: bytes, prefix: bytes) -> None:
    conn = AdminServerConnection(max_body=256)
    conn.receive_data(prefix + tail)
    try:
        while conn.next_request() is not None:
            conn.send_script(SCRIPT, next_uri="/n")
    except AdminProtocolError as exc:
        assert 400 <= exc.status <= 499
