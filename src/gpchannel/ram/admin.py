"""The vocabulary of the GP Amendment B admin protocol ("RAM over HTTP", GPC_SPE_011 section 3; ETSI TS 102 226
Annex B): the protocol version, the media types, the script status values and the targeted-application header.

Header values and their forms (ota-notes B.1; IANA registrations of the two GlobalPlatform media types, 2009):

- ``X-Admin-Protocol: globalplatform-remote-admin/1.0`` on every request and every response.
- ``X-Admin-From: <agent id>`` (card to server), ``X-Admin-Next-URI: <uri>`` (server to card),
  ``X-Admin-Targeted-Application: //aid/<RID hex>/<PIX hex>`` (server to card, optional),
  ``X-Admin-Script-Status: ok | unknown-application | not-a-security-domain | security-error`` (card to server),
  ``X-Admin-Resume: true`` (card to server, first POST of a resumed session).
- Media types, each with the required ``version`` parameter: ``application/vnd.globalplatform.card-content-mgt``
  (command script) and ``...-response`` (response script); ETSI's ``application/vnd.etsi.scp.command-data`` and
  ``application/vnd.etsi.scp.response-data`` (TS 102 226 Annex B).

Parsing choices (documented here because the spec text was not available): media types compare case-insensitively
(RFC 9110 8.3.1); a missing ``version`` parameter is read as ``1.0`` (some servers in the field omit it), any other
version is unsupported (415); quoted parameter values are accepted. The targeted-application header is accepted in
the Amendment B form ``//aid/<RID>/<PIX>`` and in the one-component form ``//aid/<AID>`` that njiwa sends; it is
always written in the two-component form. Every refusal raises
:class:`~gpchannel.errors.AdminProtocolError` carrying the HTTP status to answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gpchannel.errors import AdminProtocolError

__all__ = [
    "ADMIN_PROTOCOL",
    "ADMIN_PROTOCOL_NAME",
    "HEADER_FROM",
    "HEADER_NEXT_URI",
    "HEADER_PROTOCOL",
    "HEADER_RESUME",
    "HEADER_SCRIPT_STATUS",
    "HEADER_TARGETED_APPLICATION",
    "ContentFamily",
    "ContentType",
    "ScriptStatus",
    "TargetedApplication",
    "next_uri_ok",
    "parse_protocol",
    "parse_resume",
]

ADMIN_PROTOCOL_NAME = "globalplatform-remote-admin"
ADMIN_PROTOCOL = f"{ADMIN_PROTOCOL_NAME}/1.0"
"""The value of ``X-Admin-Protocol`` this implementation speaks (GP Amendment B v1.1.x)."""

HEADER_PROTOCOL = "X-Admin-Protocol"
HEADER_FROM = "X-Admin-From"
HEADER_NEXT_URI = "X-Admin-Next-URI"
HEADER_TARGETED_APPLICATION = "X-Admin-Targeted-Application"
HEADER_SCRIPT_STATUS = "X-Admin-Script-Status"
HEADER_RESUME = "X-Admin-Resume"

MAX_NEXT_URI = 2048
"""The longest ``X-Admin-Next-URI`` a card takes (our limit: a URI is a server-made path, tens of characters)."""

_RID_LENGTH = 5
_AID_MIN, _AID_MAX = 5, 16
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class ContentFamily(Enum):
    """Which script format family a media type belongs to: GlobalPlatform (Amendment B) or ETSI (TS 102 226)."""

    GP = "gp"
    ETSI = "etsi"


class ContentType(Enum):
    """The four admin media types, valued by their canonical ``Content-Type`` strings."""

    GP_COMMAND = "application/vnd.globalplatform.card-content-mgt;version=1.0"
    GP_RESPONSE = "application/vnd.globalplatform.card-content-mgt-response;version=1.0"
    ETSI_COMMAND = "application/vnd.etsi.scp.command-data;version=1.0"
    ETSI_RESPONSE = "application/vnd.etsi.scp.response-data;version=1.0"

    @property
    def media_type(self) -> str:
        """The type/subtype without parameters."""
        return self.value.split(";", 1)[0]

    @property
    def family(self) -> ContentFamily:
        return ContentFamily.GP if self in (ContentType.GP_COMMAND, ContentType.GP_RESPONSE) else ContentFamily.ETSI

    @property
    def is_response(self) -> bool:
        """True for the card-to-server (response script) types."""
        return self in (ContentType.GP_RESPONSE, ContentType.ETSI_RESPONSE)

    @property
    def response_type(self) -> ContentType:
        """The response type of this type's family (what the card answers a script of this type with)."""
        return ContentType.GP_RESPONSE if self.family is ContentFamily.GP else ContentType.ETSI_RESPONSE

    @classmethod
    def parse(cls, header: str) -> ContentType:
        """Read a ``Content-Type`` value; an unknown type or version raises AdminProtocolError(415)."""
        parts = [p.strip() for p in header.split(";")]
        media = parts[0].lower()
        version: str | None = None
        for param in parts[1:]:
            if not param:
                continue
            name, sep, value = param.partition("=")
            if not sep:
                raise AdminProtocolError(f"malformed Content-Type parameter {param!r}", status=415)
            if name.strip().lower() == "version":
                version = value.strip().strip('"')
        for member in cls:
            if member.media_type == media:
                if version not in (None, "1.0"):
                    raise AdminProtocolError(f"unsupported version {version!r} of {media}", status=415)
                return member
        raise AdminProtocolError(f"unsupported Content-Type {header!r}", status=415)


class ScriptStatus(Enum):
    """``X-Admin-Script-Status`` values (GP Amendment B 3.4; ota-notes B.1). Only OK comes with a response body."""

    OK = "ok"
    UNKNOWN_APPLICATION = "unknown-application"
    NOT_A_SECURITY_DOMAIN = "not-a-security-domain"
    SECURITY_ERROR = "security-error"

    @classmethod
    def parse(cls, header: str) -> ScriptStatus:
        """Read the header value (case-insensitive token); anything else raises AdminProtocolError(400)."""
        try:
            return cls(header.strip().lower())
        except ValueError:
            raise AdminProtocolError(f"unknown {HEADER_SCRIPT_STATUS} {header!r}", status=400) from None


def next_uri_ok(uri: str) -> bool:
    """Whether ``uri`` can be the target of the card's next POST as it is: 1 to :data:`MAX_NEXT_URI` visible ASCII
    characters (RFC 9112 3.2's request-target; no space, control or non-ASCII character, which a header value may
    hold but a request line may not). The one rule for the server writing ``X-Admin-Next-URI``, the card accepting
    it and the card POSTing to it, so that a URI accepted is one the card can use."""
    # visible ASCII = ASCII, printable (0x20..0x7E) and no space: str methods in C, not a loop per character
    return 0 < len(uri) <= MAX_NEXT_URI and uri.isascii() and uri.isprintable() and " " not in uri


def parse_protocol(header: str | None, supported: tuple[str, ...] = (ADMIN_PROTOCOL,)) -> str:
    """Check an ``X-Admin-Protocol`` value; missing or not in ``supported`` raises AdminProtocolError(400).

    The comparison ignores case and surrounding spaces; the supported spelling is returned.
    """
    if header is None:
        raise AdminProtocolError(f"missing {HEADER_PROTOCOL} header", status=400)
    value = header.strip().lower()
    for candidate in supported:
        if candidate.lower() == value:
            return candidate
    raise AdminProtocolError(f"unsupported {HEADER_PROTOCOL} {header.strip()!r} (supported: {', '.join(supported)})")


def parse_resume(header: str | None) -> bool:
    """``X-Admin-Resume``: absent = False, ``true``/``false`` (case-insensitive); anything else is a 400."""
    if header is None:
        return False
    value = header.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise AdminProtocolError(f"{HEADER_RESUME} must be true or false, got {header!r}", status=400)


@dataclass(frozen=True)
class TargetedApplication:
    """The application a script is for (``X-Admin-Targeted-Application``; GP Amendment B 3.4): an AID of 5 to 16
    bytes, written ``//aid/<RID hex>/<PIX hex>`` with the 5-byte RID and the rest as PIX (possibly empty)."""

    aid: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.aid, bytes):
            object.__setattr__(self, "aid", bytes(self.aid))
        if not _AID_MIN <= len(self.aid) <= _AID_MAX:
            raise ValueError(f"an AID is {_AID_MIN} to {_AID_MAX} bytes, got {len(self.aid)}")

    @property
    def rid(self) -> bytes:
        return self.aid[:_RID_LENGTH]

    @property
    def pix(self) -> bytes:
        return self.aid[_RID_LENGTH:]

    def to_header(self) -> str:
        return f"//aid/{self.rid.hex().upper()}/{self.pix.hex().upper()}"

    @classmethod
    def from_header(cls, value: str) -> TargetedApplication:
        """Parse ``//aid/<RID>/<PIX>`` (or njiwa's ``//aid/<AID>``); malformed values raise AdminProtocolError(400)."""
        text = value.strip()
        prefix = "//aid/"
        if not text.lower().startswith(prefix):
            raise AdminProtocolError(f"{HEADER_TARGETED_APPLICATION} must start with //aid/, got {value!r}")
        parts = text[len(prefix) :].split("/")
        if len(parts) > 2:
            raise AdminProtocolError(f"{HEADER_TARGETED_APPLICATION} has too many components: {value!r}")
        if len(parts) == 2 and len(parts[0]) != 2 * _RID_LENGTH:
            raise AdminProtocolError(f"{HEADER_TARGETED_APPLICATION}: the RID is 5 bytes (10 hex digits): {value!r}")
        digits = "".join(parts)
        if len(digits) % 2 or any(c not in _HEX_DIGITS for c in digits):
            raise AdminProtocolError(f"{HEADER_TARGETED_APPLICATION} is not hex: {value!r}")
        aid = bytes.fromhex(digits)
        if not _AID_MIN <= len(aid) <= _AID_MAX:
            raise AdminProtocolError(f"{HEADER_TARGETED_APPLICATION}: an AID is 5 to 16 bytes: {value!r}")
        return cls(aid)
