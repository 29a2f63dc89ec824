"""Helpers for the ram tests: hand-built HTTP requests (bytes as a card would write them)."""

from __future__ import annotations

PROTO = "X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
GP_RESP = "Content-Type: application/vnd.globalplatform.card-content-mgt-response;version=1.0\r\n"
ETSI_RESP = "Content-Type: application/vnd.etsi.scp.response-data;version=1.0\r\n"


def request(
    uri: str = "/ras", *, headers: str = PROTO, body: bytes = b"", method: str = "POST", length: bool = True
) -> bytes:
    """A request with ``Host`` and the given extra header lines (each ending in CRLF)."""
    head = f"{method} {uri} HTTP/1.1\r\nHost: ras.example\r\n{headers}"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int) -> bytes:
    """``body`` in chunked transfer coding with ``size``-byte chunks (RFC 9112 7.1)."""
    out = b""
    for i in range(0, len(body), size):
        part = body[i : i + size]
        out += f"{len(part):X}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"
