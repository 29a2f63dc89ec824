"""What the job API takes from a request, checked in one place: the JSON body (size, nesting depth, syntax),
numeric path ids and integer query parameters.

Every refusal is the API's JSON error ``{"error": message, "status": code}`` (400, 404 or 413), never a plain 500:

- a body over :data:`MAX_REQUEST_BYTES` is 413; one nested deeper than :data:`MAX_JSON_DEPTH` (arrays and objects
  counted, checked before it is parsed: ``json`` would recurse once per level), not UTF-8, not JSON (a number of
  more than 4300 digits included, which ``json`` refuses with a bare ValueError) or not an object is 400;
- a path id is ASCII decimal digits (``str.isdigit`` also takes '²' or Arabic-Indic digits, which ``int`` then
  refuses or reads as another number) no larger than a store id (a signed 64-bit integer): anything else names
  no resource, 404;
- an integer query parameter follows the same rule and gives 400.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from aiohttp import web

__all__ = [
    "MAX_ID",
    "MAX_JSON_DEPTH",
    "MAX_REQUEST_BYTES",
    "json_error",
    "parse_id",
    "path_id",
    "query_int",
    "read_json_object",
]

MAX_REQUEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
"""Deeper than any body the API takes (its deepest is 3: a campaign's ``{"cards": [{...}]}``)."""
MAX_ID = (1 << 63) - 1
"""The largest id the store holds (BIGINT)."""

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
"""A JSON string (skipped whole, so brackets inside strings do not count) or a bracket."""
_OPENING = frozenset(b"[{")


def json_error(status: int, message: str) -> NoReturn:
    """Raise the HTTP error whose body is ``{"error": message, "status": status}``."""
    body = json.dumps({"error": message, "status": status})
    if status == 413:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_REQUEST_BYTES, actual_size=0, text=body, content_type="application/json"
        )
    cls = {404: web.HTTPNotFound}.get(status, web.HTTPBadRequest)
    raise cls(text=body, content_type="application/json")


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (a linear scan; malformed text gives some number,
    and the parser refuses it afterwards)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if len(token) != 1:
            continue
        if token[0] in _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or the API's JSON error (413, 400)."""
    too_large = f"request body larger than {MAX_REQUEST_BYTES} bytes"
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        json_error(413, too_large)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        json_error(413, too_large)
    if len(raw) > MAX_REQUEST_BYTES:
        json_error(413, too_large)
    if json_depth(raw) > MAX_JSON_DEPTH:
        json_error(400, f"the body is nested deeper than {MAX_JSON_DEPTH} arrays or objects")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        json_error(400, f"the body is not valid JSON: {exc}")
    if not isinstance(value, dict):
        json_error(400, "the body must be a JSON object")
    return value


def parse_id(text: str) -> int | None:
    """``text`` as a store id (ASCII decimal digits, 0..:data:`MAX_ID`), or None."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def path_id(request: web.Request, what: str = "resource") -> int:
    """The ``{id}`` of the route: a store id, or 404 (no such resource)."""
    text = request.match_info["id"]
    value = parse_id(text)
    if value is None:
        json_error(404, f"no such {what} {text!r}")
    return value


def query_int(request: web.Request, name: str, default: int, minimum: int = 0) -> int:
    """An integer query parameter (ASCII digits, ``minimum``..:data:`MAX_ID`); ``default`` when absent or empty;
    400 otherwise."""
    text = request.query.get(name)
    if text is None or text == "":
        return default
    value = parse_id(text)
    if value is None or value < minimum:
        json_error(400, f"{name}: an integer {minimum}..{MAX_ID} expected, got {text!r}")
    return value
