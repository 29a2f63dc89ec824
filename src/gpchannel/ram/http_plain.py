"""The plain admin request, read without h11: the common shape of a card's POST, recognised by one strict pattern.

A card's admin POST (GP Amendment B 3.4) is nearly always the same shape: ``POST <target> HTTP/1.1``, a handful of
``Name: value`` lines ending in CRLF, ``Host``, at most one ``Content-Length`` and a body of that length. Reading
that shape through h11's general state machine cost the RAS about a seventh of its CPU per session, so
:func:`plain_head` recognises it with one regular expression and :func:`response` writes the answers (the bytes
h11 writes for the same events). Anything outside the shape is NOT judged here: the caller
(ram/server.py) hands the connection's bytes to h11, which reads them as before and raises its errors. The shape
is a strict subset of what h11 accepts, read the same way (RFC 9112 2.2, 3, 5, 6.3; RFC 9110 5.5), so the two
readers never disagree on where a request ends:

- the request line is exactly ``POST <target> HTTP/1.1`` + CRLF, the target visible ASCII (RFC 9112 3.2);
- every field line is ``token ":" OWS value OWS`` + CRLF with a value of visible ASCII and inner spaces or tabs:
  no obs-fold, no obs-text, no bare LF;
- ``Host`` is present once; there is no ``Transfer-Encoding``, ``Connection``, ``Expect`` or ``Upgrade`` and at most one
  ``Content-Length`` (digits only). A request with any of these (chunked bodies, ``Connection: close``,
  HTTP/1.0, repeated lengths, ...) goes to h11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HEAD_END", "PlainHead", "may_be_plain", "plain_head", "response"]

HEAD_END = b"\r\n\r\n"
_REQUEST_LINE = rb"POST ([\x21-\x7e]+) HTTP/1\.1\r\n"
_FIELD = rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e]*)\r\n"
"""A field line: a token, a colon, a value of visible ASCII, spaces and tabs (its OWS stripped after)."""
_HEAD = re.compile(_REQUEST_LINE + rb"((?:" + _FIELD + rb")*)\r\n")
_FIELD_PARTS = re.compile(_FIELD)
_TO_H11 = frozenset({b"transfer-encoding", b"connection", b"expect", b"upgrade"})
"""Fields whose meaning is framing or connection management: such a request is h11's to read."""
_LENGTH_DIGITS = 18
"""A longer Content-Length is h11's to read (and refuse): no body this server takes comes near 10**18 bytes, and
a number of thousands of digits is not converted here."""


@dataclass(frozen=True)
class PlainHead:
    """A plain request's head: its length in bytes (the CRLF CRLF included), target, fields and body length."""

    size: int
    target: bytes
    headers: list[tuple[bytes, bytes]]
    """(lower-cased name, value) in order, as h11 gives them."""
    length: int


def plain_head(data: bytes | bytearray) -> PlainHead | None:
    """The head at the start of ``data`` if it is complete and of the plain shape (module docstring), else None
    (incomplete, or for h11 to read: see :func:`may_be_plain`)."""
    end = data.find(HEAD_END)
    if end < 0:
        return None
    match = _HEAD.match(data, 0, end + 4)
    if match is None or match.end() != end + 4:
        return None
    headers = [(name.lower(), value.strip(b" \t")) for name, value in _FIELD_PARTS.findall(match.group(2))]
    length: int | None = None
    host = False
    for name, value in headers:
        if name in _TO_H11:
            return None
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > _LENGTH_DIGITS:
                return None
            length = int(value)
        elif name == b"host":
            if host:  # h11 refuses a repeated Host (RFC 9112 3.2: exactly one): for it to read
                return None
            host = True
    if not host:
        return None
    return PlainHead(end + 4, match.group(1), headers, length or 0)


def may_be_plain(data: bytes | bytearray, limit: int) -> bool:
    """Whether ``data``, for which :func:`plain_head` answered None, can still become a plain request: its head is
    not complete yet, it starts like one, holds no bare LF and is within ``limit`` bytes. False: h11 reads the
    connection from here on."""
    prefix = b"POST "
    if not (data.startswith(prefix) if len(data) >= len(prefix) else prefix.startswith(bytes(data))):
        return False
    return HEAD_END not in data and len(data) <= limit and data.count(b"\n") == data.count(b"\r\n")


def response(status: int, reason: bytes, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """An HTTP/1.1 response as h11 writes it for these events (status line, the fields as given, the body)."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers]
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)
