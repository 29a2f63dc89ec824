"""The Remote Administration Server's side of one admin connection (GP Amendment B 3.4-3.6), sans-I/O on h11.

The card is the HTTP client: it POSTs, the server answers each POST with a script (200), the end of the session
(204) or an error. One connection carries many POSTs (HTTP/1.1 persistent connections, RFC 9112 9.3); card
responses may come chunked (RFC 9112 7.1). Feed network bytes with :meth:`AdminServerConnection.receive_data`,
take requests with :meth:`~AdminServerConnection.next_request`, and write out what ``send_*`` returns.

What the server refuses, and with which status (raised as :class:`~gpchannel.errors.AdminProtocolError`; answer
it with :meth:`~AdminServerConnection.send_error`, which closes the connection):

- malformed HTTP (request line, headers, chunk framing, missing ``Host``): 400; both Content-Length and
  Transfer-Encoding (a request-smuggling shape, RFC 9112 6.3): 400;
- a Content-Type (a body is meant) with neither Content-Length nor Transfer-Encoding: 411;
- a request line and header block over ``max_header_bytes``: 431 (RFC 6585 5);
- a method other than POST: 405 (with ``Allow: POST``);
- ``X-Admin-Protocol`` missing, or a version not in ``supported_protocols``: 400. The admin protocol version is a
  property of the request, not of its media type, so 400 rather than 415;
- a body over ``max_body`` (announced by Content-Length, or counted while chunks arrive): 413;
- a Content-Type that is not one of the four admin types, a command type (a card only ever sends response types),
  or a response type of the other family than the last script sent on this connection (a GP script must be
  answered with the GP response type, an ETSI script with the ETSI one): 415. On a fresh connection (a resumed
  session) either family is accepted: the RAS checks it against the job;
- a body without a Content-Type: 415; an ``ok`` POST whose body is empty: 400; an unknown
  ``X-Admin-Script-Status`` or a malformed ``X-Admin-Resume``: 400.

Lenient on purpose: a non-``ok`` script status POST should have no body (ota-notes B.1), but the SE admin-agent
variant of the protocol allows the partial results of the commands already executed there, so a body is kept
and passed on in :attr:`AdminRequest.body`. A response POST without ``X-Admin-Script-Status`` is passed on with
``script_status=None`` for the RAS to judge.

A peer that closes between requests makes :attr:`~AdminServerConnection.closed` true with no error; one that
closes in the middle of a request raises AdminProtocolError("client disconnected mid-request") for the caller
to log (there is nobody left to answer).

Reading: a request of the plain shape (ram/http_plain.py: ``POST``, HTTP/1.1, CRLF lines, ``Host``, at most one
Content-Length, no framing or connection fields) is read without h11, and answered with the bytes h11 would write;
from the first request of another shape on (chunked, ``Connection: close``, HTTP/1.0, malformed, ...), h11 reads
the connection, as it reads every connection made with ``plain=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Literal

import h11

from gpchannel.errors import AdminProtocolError, LocalProtocolError
from gpchannel.ram import http_plain
from gpchannel.ram.admin import (
    ADMIN_PROTOCOL,
    HEADER_FROM,
    HEADER_NEXT_URI,
    HEADER_PROTOCOL,
    HEADER_RESUME,
    HEADER_SCRIPT_STATUS,
    HEADER_TARGETED_APPLICATION,
    ContentFamily,
    ContentType,
    ScriptStatus,
    TargetedApplication,
    next_uri_ok,
    parse_protocol,
    parse_resume,
)

__all__ = ["AdminRequest", "AdminServerConnection", "header_value_ok"]

_DEFAULT_MAX_BODY = 65536
_DEFAULT_MAX_HEADER_BYTES = 16384


def header_value_ok(value: str) -> bool:
    """True if ``value`` can go in an HTTP header as is: visible ASCII and inner spaces, no CR/LF/controls."""
    return value == value.strip() and all(0x20 <= ord(c) < 0x7F for c in value)


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lower-cased; values decoded as Latin-1 (RFC 9110 5.5); repeated admin headers are an error."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        if key in out and key.startswith("x-admin-"):
            raise AdminProtocolError(f"repeated {key} header", status=400)
        out[key] = text if key not in out else f"{out[key]}, {text}"
    return out


@dataclass(frozen=True)
class AdminRequest:
    """One complete POST from the card (GP Amendment B 3.4).

    ``protocol`` is the X-Admin-Protocol value received and ``host`` the Host header (both additions to the
    contract)."""

    uri: str
    agent_from: str | None
    resume: bool
    content_type: ContentType | None
    script_status: ScriptStatus | None
    body: bytes
    protocol: str = ADMIN_PROTOCOL
    host: str | None = None

    @property
    def first(self) -> bool:
        """The session's first POST: no body, no Content-Type and no script status."""
        return not self.body and self.content_type is None and self.script_status is None


class AdminServerConnection:
    """The server side of one admin HTTP/1.1 connection (see the module docstring for the status rules)."""

    def __init__(
        self,
        *,
        max_body: int = _DEFAULT_MAX_BODY,
        supported_protocols: tuple[str, ...] = (ADMIN_PROTOCOL,),
        max_header_bytes: int = _DEFAULT_MAX_HEADER_BYTES,
        plain: bool = True,
    ) -> None:
        if max_body < 0:
            raise ValueError("max_body must be >= 0")
        self._max_body = max_body
        self._supported = supported_protocols
        self._max_header_bytes = max_header_bytes
        self._h11: h11.Connection | None = None if plain else self._new_h11()
        """None while the requests are of the plain shape (read by ram/http_plain.py); h11 from then on."""
        self._input = bytearray()  # the bytes not read yet, while h11 is None
        self._plain: http_plain.PlainHead | None = None  # a plain head read, its body not complete yet
        self._body = bytearray()
        self._head: AdminRequest | None = None  # the request being read, without its body yet
        self._family: ContentFamily | None = None
        self._awaiting_response = False
        self._error: AdminProtocolError | None = None
        self._eof = False
        self._closed = False

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes) -> None:
        """Network bytes from the card; ``b""`` means the peer closed its side. Bytes after that are ignored."""
        if self._eof:
            return
        if not data:
            self._eof = True
        if self._closed and data:
            return
        if self._h11 is None:
            self._input += data
        else:
            self._h11.receive_data(bytes(data))

    def _new_h11(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header_bytes)

    def _next_plain(self) -> AdminRequest | Literal[False] | None:
        """The next request of the plain shape, None (more bytes needed, or the peer closed between requests), or
        False: the bytes are for h11 to read (a request of another shape, or the peer closed inside a head)."""
        data = self._input
        head = self._plain
        if head is None:
            if not data:
                if self._eof:
                    self._closed = True
                return None
            head = http_plain.plain_head(data)
            if head is None:
                return False if self._eof or not http_plain.may_be_plain(data, self._max_header_bytes) else None
            if head.size > self._max_header_bytes:  # h11 answers it (431), as for any head over the limit
                return False
            self._start(b"POST", head.target, head.headers)
            self._plain = head
        end = head.size + head.length
        if len(data) < end:
            if self._eof:
                self._closed = True
                raise AdminProtocolError(
                    f"client disconnected mid-request (the body ended after {len(data) - head.size} of "
                    f"{head.length} bytes)",
                    status=400,
                )
            return None
        self._body[:] = data[head.size : end]
        del data[:end]
        self._plain = None
        if len(self._body) > self._max_body:  # Content-Length was checked against it in _start
            raise AdminProtocolError(f"request body over {self._max_body} bytes", status=413)
        return self._complete()

    def _to_h11(self) -> h11.Connection:
        """From now on h11 reads this connection, starting with the bytes not read yet."""
        connection = self._h11 = self._new_h11()
        connection.receive_data(bytes(self._input))
        self._input.clear()
        if self._eof:
            connection.receive_data(b"")
        return connection

    def next_request(self) -> AdminRequest | None:
        """The next complete request, or None when more bytes are needed (or the peer closed between requests).

        Raises AdminProtocolError with the status to answer (then call :meth:`send_error`), and
        :class:`~gpchannel.errors.LocalProtocolError` if the previous request has not been answered yet.
        """
        if self._error is not None:
            raise self._error
        if self._awaiting_response:
            raise LocalProtocolError("answer the previous request before reading the next one")
        if self._closed:
            return None
        connection = self._h11
        if connection is None:
            try:
                plain = self._next_plain()
            except AdminProtocolError as exc:
                raise self._fail(exc) from None
            if plain is not False:
                return plain
            connection = self._to_h11()
        try:
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return None
                if isinstance(event, h11.ConnectionClosed):
                    self._closed = True
                    return None
                if isinstance(event, h11.Request):
                    self._start(event.method, event.target, list(event.headers))
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > self._max_body:
                        raise AdminProtocolError(f"request body over {self._max_body} bytes", status=413)
                elif isinstance(event, h11.EndOfMessage):
                    return self._complete()
        except h11.RemoteProtocolError as exc:
            if self._eof:
                self._closed = True
                raise self._fail(AdminProtocolError(f"client disconnected mid-request ({exc})", status=400)) from exc
            raise self._fail(AdminProtocolError(f"malformed HTTP request: {exc}", exc.error_status_hint)) from exc
        except AdminProtocolError as exc:
            raise self._fail(exc) from None

    def _fail(self, error: AdminProtocolError) -> AdminProtocolError:
        self._error = error
        return error

    def _start(self, method_bytes: bytes, target: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._body.clear()
        method = method_bytes.decode("ascii", "replace")
        if method != "POST":
            raise AdminProtocolError(f"method {method} not allowed (only POST)", status=405)
        size = len(target) + sum(len(n) + len(v) + 4 for n, v in raw_headers)
        if size > self._max_header_bytes:
            raise AdminProtocolError(f"request header block over {self._max_header_bytes} bytes", status=431)
        headers = _headers(raw_headers)
        protocol = parse_protocol(headers.get(HEADER_PROTOCOL.lower()), self._supported)
        length = headers.get("content-length")
        if length is not None and "transfer-encoding" in headers:
            raise AdminProtocolError("both Content-Length and Transfer-Encoding (RFC 9112 6.3)", status=400)
        if "content-type" in headers and length is None and "transfer-encoding" not in headers:
            raise AdminProtocolError("a Content-Type without Content-Length or Transfer-Encoding", status=411)
        if length is not None and int(length) > self._max_body:
            raise AdminProtocolError(f"request body of {int(length)} bytes, at most {self._max_body}", status=413)
        content_type: ContentType | None = None
        if "content-type" in headers:
            content_type = ContentType.parse(headers["content-type"])
            if not content_type.is_response:
                raise AdminProtocolError(f"a card POSTs response scripts, not {content_type.media_type}", 415)
            if self._family is not None and content_type.family is not self._family:
                raise AdminProtocolError(
                    f"{content_type.media_type} does not answer the {self._family.value.upper()} script sent", 415
                )
        status_header = headers.get(HEADER_SCRIPT_STATUS.lower())
        script_status = None if status_header is None else ScriptStatus.parse(status_header)
        resume = parse_resume(headers.get(HEADER_RESUME.lower()))
        self._head = AdminRequest(
            uri=target.decode("ascii", "replace"),
            agent_from=headers.get(HEADER_FROM.lower()),
            resume=resume,
            content_type=content_type,
            script_status=script_status,
            body=b"",
            protocol=protocol,
            host=headers.get("host"),
        )

    def _complete(self) -> AdminRequest:
        head = self._head
        assert head is not None
        body = bytes(self._body)
        if body and head.content_type is None:
            raise AdminProtocolError("a request body without a Content-Type", status=415)
        if head.script_status is ScriptStatus.OK and not body:
            raise AdminProtocolError(f"{HEADER_SCRIPT_STATUS}: ok without a response script", status=400)
        self._head = None
        self._body.clear()
        self._awaiting_response = True
        return replace(head, body=body)

    # ------------------------------------------------------------------ output
    def _require_request(self) -> None:
        if not self._awaiting_response:
            raise LocalProtocolError("no request to answer")

    def _send(self, status: int, reason: bytes, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
        """The response, written by hand for a plain request (the bytes h11 writes), else by h11."""
        connection = self._h11
        if connection is None:
            return http_plain.response(status, reason, headers, body)
        events: list[h11.Event] = [h11.Response(status_code=status, reason=reason, headers=headers)]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        try:
            return b"".join(connection.send(e) or b"" for e in events)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"cannot send now: {exc}") from exc

    def _end_cycle(self) -> None:
        self._awaiting_response = False
        connection = self._h11
        if connection is None:
            return  # a plain request: the connection stays open for the next one (HTTP/1.1 persistent)
        if connection.our_state is h11.DONE and connection.their_state is h11.DONE:
            connection.start_next_cycle()
        else:
            self._closed = True

    def send_script(
        self,
        script: bytes,
        *,
        next_uri: str,
        content_type: ContentType = ContentType.GP_COMMAND,
        targeted_application: TargetedApplication | None = None,
    ) -> bytes:
        """200 with a command script (Content-Length framing) and the URI of the card's next POST."""
        self._require_request()
        if content_type.is_response:
            raise ValueError(f"a script is sent with a command type, not {content_type.media_type}")
        if not next_uri_ok(next_uri):
            raise ValueError(f"next_uri must be a request target of visible ASCII characters, got {next_uri!r}")
        headers = [
            (HEADER_PROTOCOL, ADMIN_PROTOCOL),
            ("Content-Type", content_type.value),
            (HEADER_NEXT_URI, next_uri),
        ]
        if targeted_application is not None:
            headers.append((HEADER_TARGETED_APPLICATION, targeted_application.to_header()))
        headers.append(("Content-Length", str(len(script))))
        out = self._send(200, b"OK", headers, bytes(script))
        self._family = content_type.family
        self._end_cycle()
        return out

    def send_end(self) -> bytes:
        """204 No Content with X-Admin-Protocol and no body: the end of the admin session (GP Amendment B 3.6)."""
        self._require_request()
        out = self._send(204, b"No Content", [(HEADER_PROTOCOL, ADMIN_PROTOCOL)])
        self._end_cycle()
        return out

    def send_error(self, status: int, reason: str) -> bytes:
        """An error response (``reason`` as a text/plain body) with ``Connection: close``; the connection is then
        closed. Returns b"" when nothing can be sent any more (the peer is gone or a response is under way)."""
        if not 400 <= status <= 599:
            raise ValueError(f"an error status is 4xx or 5xx, got {status}")
        body = (reason.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8")
        headers = [
            (HEADER_PROTOCOL, ADMIN_PROTOCOL),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            headers.append(("Allow", "POST"))
        try:
            phrase = HTTPStatus(status).phrase.encode("ascii")
        except ValueError:
            phrase = b""
        self._awaiting_response = False
        self._closed = True
        connection = self._h11
        if self._eof or (connection is not None and connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE)):
            return b""
        try:
            return self._send(status, phrase, headers, body)
        except LocalProtocolError:
            return b""

    @property
    def closed(self) -> bool:
        """True when nothing more can be read or sent on this connection."""
        return self._closed
