"""gpchannel.ram.http_plain: the plain request shape, and the same requests and answers as h11 gives (the server
connection read with and without it, ``plain=False``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpchannel.errors import AdminProtocolError
from gpchannel.ram.http_plain import may_be_plain, plain_head
from gpchannel.ram.server import AdminRequest, AdminServerConnection
from tests.ram._http import GP_RESP, PROTO, chunked, request

RESPONSE = bytes.fromhex("AB07 800101 23029000")
OK = f"{PROTO}{GP_RESP}X-Admin-Script-Status: ok\r\n"


def test_a_card_post_is_plain() -> None:
    head = plain_head(request("/ras/1", headers=OK, body=RESPONSE) + b"next")
    assert head is not None
    assert head.target == b"/ras/1" and head.length == len(RESPONSE)
    assert (b"host", b"ras.example") in head.headers and (b"x-admin-script-status", b"ok") in head.headers


@pytest.mark.parametrize(
    "raw",
    [
        request(headers=OK + "Transfer-Encoding: chunked\r\n", length=False),
        request(headers=PROTO + "Connection: close\r\n"),
        request(headers=PROTO + "Expect: 100-continue\r\n"),
        request(headers=PROTO + "Content-Length: 0\r\n"),  # a second Content-Length
        request(headers=PROTO + "Content-Length: +0\r\n", length=False),
        request(headers=PROTO + "X-Folded: a\r\n b\r\n"),  # obs-fold
        request(headers=PROTO + "X-Latin: \xe9\r\n"),  # obs-text
        request(headers=PROTO, method="GET"),
        request().replace(b"HTTP/1.1", b"HTTP/1.0"),
        request().replace(b"Host: ras.example\r\n", b""),
        request().replace(b"\r\n", b"\n"),
        request(headers=PROTO + "Host: other.example\r\n"),  # a second Host (h11 refuses it)
    ],
)
def test_other_shapes_are_for_h11(raw: bytes) -> None:
    assert plain_head(raw) is None
    assert not may_be_plain(raw, 16384)


def test_an_incomplete_head_may_still_be_plain() -> None:
    raw = request(headers=OK, body=RESPONSE)
    for cut in (0, 3, 5, 20, raw.index(b"\r\n\r\n") + 3):
        assert plain_head(raw[:cut]) is None and may_be_plain(raw[:cut], 16384)
    assert not may_be_plain(b"POST /ras HTTP/1.1\n", 16384)  # a bare LF
    assert not may_be_plain(b"GET ", 16384)
    assert not may_be_plain(b"POST /" + b"a" * 100, 50)  # over the header limit: h11 answers 431


Outcome = AdminRequest | int | None


def _run(data: bytes, cuts: list[int], eof: bool, *, plain: bool) -> tuple[list[Outcome], list[bytes]]:
    """Feed ``data`` cut at ``cuts``, answering each request (a script, then the end): what came out and what went
    back, up to the first error (its status)."""
    conn = AdminServerConnection(plain=plain, max_body=64)
    seen: list[Outcome] = []
    sent: list[bytes] = []
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)] + ([b""] if eof else [])
    for piece in pieces:
        conn.receive_data(piece)
        while True:
            try:
                req = conn.next_request()
            except AdminProtocolError as exc:
                seen.append(exc.status)
                sent.append(conn.send_error(exc.status, "refused"))
                return seen, sent
            if req is None:
                break
            seen.append(req)
            sent.append(conn.send_script(b"\xaa\x00", next_uri="/ras/1") if req.first else conn.send_end())
    seen.append(None if not conn.closed else -1)
    return seen, sent


_LINES = st.sampled_from(
    [
        PROTO, GP_RESP, "X-Admin-Script-Status: ok\r\n", "X-Admin-From: //se-id/eid/89\r\n", "X-Admin-Resume: true\r\n",
        "Connection: close\r\n", "Transfer-Encoding: chunked\r\n", "Content-Length: 4\r\n", "X-Empty:\r\n",
        "X-Spaces:   a  b   \r\n", "Bad Name: x\r\n", "X-Admin-Protocol: other/2.0\r\n", "Content-Type: text/plain\r\n",
    ]
)  # fmt: skip


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """A card's first POST or response POST (most of them), with extra header lines and variations."""
    base = draw(st.sampled_from([(PROTO, b""), (OK, RESPONSE), (OK, b"\xab\x00")]))
    lines = base[0] + "".join(draw(st.lists(_LINES, max_size=2)))
    body = draw(st.sampled_from([base[1], base[1], b"x" * 70]))
    raw = request(draw(st.sampled_from(["/ras", "/ras/1?x=1"])), headers=lines, body=body)
    if "chunked" in lines:
        raw = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + chunked(body, 3)
    return draw(st.sampled_from([raw, raw, raw, raw.replace(b"HTTP/1.1", b"HTTP/1.0"), raw.replace(b"POST", b"PUT")]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_requests(), min_size=1, max_size=3), st.lists(st.integers(1, 400), max_size=4), st.booleans())
def test_the_same_requests_and_answers_as_h11(requests: list[bytes], cuts: list[int], eof: bool) -> None:
    data = b"".join(requests)
    cuts = sorted({c for c in cuts if c < len(data)})
    assert _run(data, cuts, eof, plain=True) == _run(data, cuts, eof, plain=False)


def test_a_content_length_of_thousands_of_digits_is_h11s_to_refuse() -> None:
    raw = request(headers=PROTO + "Content-Length: " + "9" * 5000 + "\r\n", length=False)
    assert plain_head(raw) is None  # never converted here (int() refuses over 4,300 digits)
    plain, answers = _run(raw, [], False, plain=True)
    assert (plain, answers) == _run(raw, [], False, plain=False)
    assert isinstance(plain[0], int) and plain[0] >= 400


def test_a_complete_head_over_the_limit_is_read_as_h11_reads_it() -> None:
    raw = request(headers=OK + "X-Long: " + "a" * 20000 + "\r\n", body=RESPONSE)
    assert _run(raw, [], False, plain=True) == _run(raw, [], False, plain=False)
    assert _run(raw, [100], False, plain=True) == _run(raw, [100], False, plain=False)
