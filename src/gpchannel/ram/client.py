"""The card's side of an admin connection (GP Amendment B 3.4-3.6): the card is the HTTP client. Sans-I/O on h11.

The card sends a first POST (no body, no Content-Type; ``X-Admin-Resume: true`` when it resumes an interrupted
session), receives a script (200), runs it and POSTs the response script to ``X-Admin-Next-URI`` (optionally with
chunked transfer coding, as cards do), until the server answers 204. A non-``ok`` ``X-Admin-Script-Status`` POST
carries no body and no Content-Type.

Server answers are checked: a 200 must carry a command media type and an ``X-Admin-Next-URI`` the card can POST
to (:func:`~gpchannel.ram.admin.next_uri_ok`, the rule ``post_response`` applies); a present
``X-Admin-Protocol`` must be ours (a missing one is tolerated: some servers in the field omit it on 204);
violations raise :class:`~gpchannel.errors.AdminProtocolError`. Other statuses become :class:`AdminServerError`
events, not exceptions: the card agent decides whether to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import h11

from gpchannel.errors import AdminProtocolError, LocalProtocolError
from gpchannel.ram.admin import (
    ADMIN_PROTOCOL,
    HEADER_FROM,
    HEADER_NEXT_URI,
    HEADER_PROTOCOL,
    HEADER_RESUME,
    HEADER_SCRIPT_STATUS,
    HEADER_TARGETED_APPLICATION,
    ContentType,
    ScriptStatus,
    TargetedApplication,
    next_uri_ok,
    parse_protocol,
)
from gpchannel.ram.server import header_value_ok

__all__ = ["AdminClientConnection", "AdminServerError", "ScriptDelivery", "SessionEnd"]

_DEFAULT_CHUNK = 256
_DEFAULT_MAX_BODY = 65536


@dataclass(frozen=True)
class ScriptDelivery:
    """A 200 answer: the command script to run and where to POST its response."""

    script: bytes
    content_type: ContentType
    next_uri: str
    targeted_application: TargetedApplication | None


@dataclass(frozen=True)
class SessionEnd:
    """A 204 answer: the server has nothing more; the card closes the connection (GP Amendment B 3.6)."""


@dataclass(frozen=True)
class AdminServerError:
    """Any other answer: its status and reason phrase; ``detail`` is the body as text (an addition)."""

    status: int
    reason: str
    detail: str = ""


AdminEvent = ScriptDelivery | SessionEnd | AdminServerError


class AdminClientConnection:
    """The card side of one admin HTTP/1.1 connection."""

    def __init__(
        self,
        *,
        host: str,
        agent_from: str | None,
        max_body: int = _DEFAULT_MAX_BODY,
        supported_protocols: tuple[str, ...] = (ADMIN_PROTOCOL,),
    ) -> None:
        if not host or not header_value_ok(host):
            raise ValueError(f"host must be a non-empty header-safe string, got {host!r}")
        if agent_from is not None and not header_value_ok(agent_from):
            raise ValueError(f"agent_from must be header-safe, got {agent_from!r}")
        self._host = host
        self._agent_from = agent_from
        self._max_body = max_body
        self._supported = supported_protocols
        self._h11 = h11.Connection(h11.CLIENT)
        self._waiting = False
        self._response: h11.Response | None = None
        self._body = bytearray()
        self._closed = False
        self._eof = False

    # ------------------------------------------------------------------ requests
    def _base_headers(self, uri: str, resume: bool) -> list[tuple[str, str]]:
        if self._waiting:
            raise LocalProtocolError("the previous POST has not been answered yet")
        if self._closed:
            raise LocalProtocolError("the connection is closed")
        if not next_uri_ok(uri):
            raise ValueError(f"uri must be a request target of visible ASCII characters, got {uri!r}")
        headers = [("Host", self._host), (HEADER_PROTOCOL, ADMIN_PROTOCOL)]
        if self._agent_from is not None:
            headers.append((HEADER_FROM, self._agent_from))
        if resume:
            headers.append((HEADER_RESUME, "true"))
        return headers

    def _send(self, uri: str, headers: list[tuple[str, str]], chunks: list[bytes]) -> bytes:
        events: list[h11.Event] = [h11.Request(method="POST", target=uri, headers=headers)]
        events += [h11.Data(data=c) for c in chunks]
        events.append(h11.EndOfMessage())
        try:
            out = b"".join(self._h11.send(e) or b"" for e in events)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"cannot send now: {exc}") from exc
        self._waiting = True
        return out

    def first_post(self, uri: str, *, resume: bool = False) -> bytes:
        """The session's first POST: admin headers only, ``Content-Length: 0`` (RFC 9110 8.6), no Content-Type."""
        headers = self._base_headers(uri, resume)
        headers.append(("Content-Length", "0"))
        return self._send(uri, headers, [])

    def post_response(
        self,
        uri: str,
        body: bytes,
        *,
        status: ScriptStatus = ScriptStatus.OK,
        content_type: ContentType = ContentType.GP_RESPONSE,
        chunked: bool = False,
        resume: bool = False,
        chunk_size: int = _DEFAULT_CHUNK,
    ) -> bytes:
        """POST a response script to ``uri`` (the last X-Admin-Next-URI), or a non-ok status with no body.

        With ``chunked`` the body goes in ``chunk_size``-byte chunks (RFC 9112 7.1), as cards with small buffers do.
        """
        if not content_type.is_response:
            raise ValueError(f"a card POSTs a response type, not {content_type.media_type}")
        if status is not ScriptStatus.OK and body:
            raise ValueError(f"a {status.value} POST has no body (GP Amendment B 3.4)")
        if status is ScriptStatus.OK and not body:
            raise ValueError("an ok POST carries the response script")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        headers = self._base_headers(uri, resume)
        if body:
            headers.append(("Content-Type", content_type.value))
        headers.append((HEADER_SCRIPT_STATUS, status.value))
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
            chunks = [bytes(body[i : i + chunk_size]) for i in range(0, len(body), chunk_size)]
        else:
            headers.append(("Content-Length", str(len(body))))
            chunks = [bytes(body)] if body else []
        return self._send(uri, headers, chunks)

    # ------------------------------------------------------------------ responses
    def receive_data(self, data: bytes) -> None:
        """Network bytes from the server; ``b""`` means the server closed the connection."""
        if self._closed and data:
            return
        if not data:
            self._eof = True
        try:
            self._h11.receive_data(bytes(data))
        except RuntimeError:  # data after EOF
            self._closed = True

    def next_event(self) -> AdminEvent | None:
        """The server's answer to the last POST, or None if more bytes are needed (or the connection closed
        cleanly between exchanges: then :attr:`closed` is true)."""
        try:
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return None
                if isinstance(event, h11.ConnectionClosed):
                    self._closed = True
                    if self._waiting:
                        self._waiting = False
                        raise AdminProtocolError("the server closed the connection before answering", status=400)
                    return None
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    self._response = event
                    self._body.clear()
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > self._max_body:
                        self._closed = True
                        raise AdminProtocolError(f"response body over {self._max_body} bytes", status=413)
                elif isinstance(event, h11.EndOfMessage):
                    return self._complete()
        except h11.RemoteProtocolError as exc:
            self._closed = True
            self._waiting = False
            if self._eof:
                raise AdminProtocolError(f"the server closed the connection before answering ({exc})") from exc
            raise AdminProtocolError(f"malformed HTTP response: {exc}", status=400) from exc

    def _complete(self) -> AdminEvent:
        response = self._response
        assert response is not None
        body = bytes(self._body)
        self._body.clear()
        self._response = None
        self._waiting = False
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        else:
            self._closed = True
        headers = {name.decode("ascii").lower(): value.decode("latin-1") for name, value in response.headers}
        status = response.status_code
        if status in (200, 204) and HEADER_PROTOCOL.lower() in headers:
            parse_protocol(headers[HEADER_PROTOCOL.lower()], self._supported)
        if status == HTTPStatus.NO_CONTENT:
            return SessionEnd()
        if status == HTTPStatus.OK:
            if "content-type" not in headers:
                raise AdminProtocolError("a 200 without a Content-Type", status=415)
            content_type = ContentType.parse(headers["content-type"])
            if content_type.is_response:
                raise AdminProtocolError(f"a server sends command scripts, not {content_type.media_type}", 415)
            next_uri = headers.get(HEADER_NEXT_URI.lower(), "").strip()
            if not next_uri:
                raise AdminProtocolError(f"a 200 without {HEADER_NEXT_URI}", status=400)
            if not next_uri_ok(next_uri):  # refused here, before the script runs, not when POSTing its response
                raise AdminProtocolError(f"{HEADER_NEXT_URI} {next_uri[:80]!r} is not a URI the card can POST to", 400)
            target = headers.get(HEADER_TARGETED_APPLICATION.lower())
            app = None if target is None else TargetedApplication.from_header(target)
            return ScriptDelivery(body, content_type, next_uri, app)
        reason = response.reason.decode("latin-1")
        if not reason:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        return AdminServerError(status, reason, body.decode("utf-8", "replace").strip())

    @property
    def closed(self) -> bool:
        """True when nothing more can be sent or received on this connection."""
        return self._closed
