"""Administration Session Triggering Parameters (GP Amendment B 3.7-3.8, Table 3-3; ota-notes B.3): the tag-81
TLV the server sends (SCP80-secured, by SMS) to make a Security Domain open an admin session.

Layout (BER-TLV, definite lengths; each object optional)::

    81  Administration session triggering parameters      ("81 00" alone = use the configured defaults)
     └ 83  Security Domain administration session parameters
        ├ 84  Connection parameters: TS 102 223 OPEN CHANNEL TLVs, kept raw        (Amendment B 3.8.1)
        ├ 85  Security parameters: len(PSK-ID) | PSK-ID | 02 | KVN | KID [| SHA]  (3.8.2)
        ├ A5  Extended security parameters, kept raw
        ├ 86  Retry policy: counter (2) | timer value TLV (5) [| 87 00]            (3.8.3)
        └ 89  HTTP POST parameters: 8A admin host | 8B agent ID | 8C admin URI (UTF-8)  (3.8.4-3.8.6)
     └ B3  DNS resolution parameters (newer Amendment B versions), kept raw

Choices on the points no available source settles (ota-notes F.8):

- Tag 85: the byte after the PSK identity is the length of what follows it (02), then KVN, then key identifier:
  pySim's test vector ``85 08 04 DEADBEEF 02 00 40`` is KVN 00, KID 40, and njiwa writes ``02 | KVN | index``
  citing Amendment B 3.7.3. An optional last byte is kept as ``sha_type``; anything else is refused.
- Tag 86: the retry waiting delay is a TS 102 223 8.38 Timer value TLV (tag A5, or 25 without the CR bit; length
  03; hour, minute, second). TS 102 223 codes each byte in semi-octets like the TS 23.040 SCTS (``30`` minutes is
  ``03``; from memory of the spec, whose text was not available here): that is what :meth:`RetryPolicy.to_bytes`
  writes by default. njiwa writes plain binary bytes instead; pySim keeps the five bytes opaque;
  on decoding, bytes that are not valid semi-octets (a nibble over 9, or a minute/second over 59) are read as
  binary, and :attr:`RetryPolicy.timer_coding` records which coding was read so that encoding gives the same
  bytes back. Bytes valid in both codings are read as semi-octets (njiwa's 65 s, ``00 01 05``, reads as 10 min
  50 s: a documented ambiguity). After the timer, ``87 00`` (njiwa: "retry failure report", tag only) sets
  ``failure_report``; other trailing bytes are refused.
- Order: objects are written in the order of the table above. Decoding accepts any order, refuses duplicates and
  unknown tags (DecodeError with the offset of the object in the input), and an empty ``83`` or ``89`` decodes
  to the same parameters as their absence, so :meth:`TriggerParameters.to_bytes` gives back exactly the bytes
  of every input written in canonical order without empty containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gpchannel.codec.tlv import Tlv, parse_one, tlv
from gpchannel.errors import DecodeError

__all__ = [
    "TAG_TRIGGER",
    "RetryPolicy",
    "TimerCoding",
    "TriggerParameters",
]

TAG_TRIGGER = 0x81
_TAG_SESSION = 0x83
_TAG_CONNECTION = 0x84
_TAG_SECURITY = 0x85
_TAG_EXTENDED_SECURITY = 0xA5
_TAG_RETRY = 0x86
_TAG_HTTP_POST = 0x89
_TAG_HOST = 0x8A
_TAG_AGENT = 0x8B
_TAG_URI = 0x8C
_TAG_DNS = 0xB3
_TAG_FAILURE_REPORT = 0x87
_TIMER_TAGS = (0xA5, 0x25)  # TS 102 223 8.38 Timer value, with and without the comprehension-required bit
_KVN_KID_LENGTH = 2
_MAX_COUNTER = 0xFFFF


class TimerCoding(Enum):
    """How the hour/minute/second bytes of a timer value are coded."""

    SEMI_OCTET = "semi-octet"  # TS 102 223 8.38 / TS 23.040 SCTS: low nibble first digit ("30" -> 03)
    BINARY = "binary"  # one unsigned byte each (njiwa)


def _semi_octet(value: int) -> int:
    return (value % 10) << 4 | (value // 10)


def _from_semi_octet(byte: int) -> int | None:
    low, high = byte & 0x0F, byte >> 4
    return None if low > 9 or high > 9 else low * 10 + high


@dataclass(frozen=True)
class RetryPolicy:
    """Tag 86 (Amendment B 3.8.3): how often and after which delay the card retries a failed session."""

    counter: int
    delay_seconds: int
    failure_report: bool = False
    timer_coding: TimerCoding = TimerCoding.SEMI_OCTET
    timer_tag: int = 0xA5

    def __post_init__(self) -> None:
        if not 0 <= self.counter <= _MAX_COUNTER:
            raise ValueError(f"retry counter is two bytes, got {self.counter}")
        max_hours = 99 if self.timer_coding is TimerCoding.SEMI_OCTET else 255
        if not 0 <= self.delay_seconds < (max_hours + 1) * 3600:
            raise ValueError(f"delay_seconds must be 0..{(max_hours + 1) * 3600 - 1}, got {self.delay_seconds}")
        if self.timer_tag not in _TIMER_TAGS:
            raise ValueError(f"timer tag is A5 or 25, got {self.timer_tag:02X}")

    def to_bytes(self) -> bytes:
        """The value of tag 86."""
        hours, rest = divmod(self.delay_seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        fields = [hours, minutes, seconds]
        if self.timer_coding is TimerCoding.SEMI_OCTET:
            fields = [_semi_octet(f) for f in fields]
        out = self.counter.to_bytes(2, "big") + bytes((self.timer_tag, 3, *fields))
        return out + (bytes((_TAG_FAILURE_REPORT, 0)) if self.failure_report else b"")

    @classmethod
    def from_bytes(cls, value: bytes, offset: int = 0) -> RetryPolicy:
        """Decode the value of tag 86; ``offset`` (of the value in a larger input) is added to error offsets."""
        if len(value) < 7:
            raise DecodeError(f"retry policy: 7 bytes at least (counter, timer value), got {len(value)}", offset)
        counter = int.from_bytes(value[:2], "big")
        if value[2] not in _TIMER_TAGS or value[3] != 3:
            raise DecodeError("retry policy: the delay is a timer value TLV A5 03 HH MM SS", offset + 2)
        raw = value[4:7]
        decoded = [_from_semi_octet(b) for b in raw]
        coding = TimerCoding.SEMI_OCTET
        if any(d is None for d in decoded) or any(d is not None and d > 59 for d in decoded[1:]):
            coding = TimerCoding.BINARY
            decoded = list(raw)
            if raw[1] > 59 or raw[2] > 59:
                raise DecodeError("retry policy: timer minute/second over 59", offset + 5)
        hours, minutes, seconds = (d or 0 for d in decoded)
        tail = value[7:]
        if tail not in (b"", bytes((_TAG_FAILURE_REPORT, 0))):
            raise DecodeError("retry policy: only '87 00' (failure report) may follow the timer", offset + 7)
        return cls(counter, hours * 3600 + minutes * 60 + seconds, bool(tail), coding, value[2])


def _children(raw: bytes, start: int, end: int, allowed: frozenset[int], what: str) -> dict[int, tuple[Tlv, int]]:
    """The objects in ``raw[start:end]`` by tag, each with the offset of its value; absolute offsets in errors."""
    out: dict[int, tuple[Tlv, int]] = {}
    pos = start
    while pos < end:
        item, after = parse_one(raw, pos)
        if after > end:
            raise DecodeError(f"{what}: tag {item.tag:X} overruns its container", pos)
        if item.tag not in allowed:
            raise DecodeError(f"{what}: unexpected tag {item.tag:X}", pos)
        if item.tag in out:
            raise DecodeError(f"{what}: tag {item.tag:X} repeated", pos)
        out[item.tag] = (item, after - len(item.value))
        pos = after
    return out


def _text(item: tuple[Tlv, int], what: str) -> str:
    try:
        return item[0].value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"{what} is not UTF-8", item[1] + exc.start) from None


@dataclass(frozen=True)
class TriggerParameters:
    """The Administration Session Triggering Parameters; all None = ``81 00`` (the card's configured defaults).

    ``sha_type``, ``extended_security`` (raw A5 value) and ``dns_resolution`` (raw B3 value) are additions to the
    contract. ``psk_identity``, ``kvn`` and ``key_id`` go together (tag 85): all None or all set."""

    psk_identity: bytes | None = None
    kvn: int | None = None
    key_id: int | None = None
    retry: RetryPolicy | None = None
    host: str | None = None
    agent_id: str | None = None
    uri: str | None = None
    connection: bytes | None = None
    sha_type: int | None = None
    extended_security: bytes | None = None
    dns_resolution: bytes | None = None

    def __post_init__(self) -> None:
        security = (self.psk_identity, self.kvn, self.key_id)
        if any(v is None for v in security) and any(v is not None for v in security):
            raise ValueError("psk_identity, kvn and key_id (tag 85) are all set or all None")
        if self.sha_type is not None and self.kvn is None:
            raise ValueError("sha_type needs the security parameters (tag 85)")
        if self.psk_identity is not None and len(self.psk_identity) > 0xFF:
            raise ValueError("the PSK identity is at most 255 bytes (one length byte)")
        for name in ("kvn", "key_id", "sha_type"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 0xFF:
                raise ValueError(f"{name} is one byte, got {value}")

    @property
    def defaults(self) -> bool:
        """True when nothing is given: the card uses its configured parameters (``81 00``)."""
        return self == TriggerParameters()

    def _security(self) -> bytes:
        assert self.psk_identity is not None and self.kvn is not None and self.key_id is not None
        sha = b"" if self.sha_type is None else bytes((self.sha_type,))
        return bytes((len(self.psk_identity),)) + self.psk_identity + bytes((2, self.kvn, self.key_id)) + sha

    def to_bytes(self) -> bytes:
        """The whole tag-81 TLV."""
        session = b""
        if self.connection is not None:
            session += tlv(_TAG_CONNECTION, self.connection)
        if self.kvn is not None:
            session += tlv(_TAG_SECURITY, self._security())
        if self.extended_security is not None:
            session += tlv(_TAG_EXTENDED_SECURITY, self.extended_security)
        if self.retry is not None:
            session += tlv(_TAG_RETRY, self.retry.to_bytes())
        post = b""
        for tag, text in ((_TAG_HOST, self.host), (_TAG_AGENT, self.agent_id), (_TAG_URI, self.uri)):
            if text is not None:
                post += tlv(tag, text.encode("utf-8"))
        if post:
            session += tlv(_TAG_HTTP_POST, post)
        body = tlv(_TAG_SESSION, session) if session else b""
        if self.dns_resolution is not None:
            body += tlv(_TAG_DNS, self.dns_resolution)
        return tlv(TAG_TRIGGER, body)

    @classmethod
    def from_bytes(cls, raw: bytes) -> TriggerParameters:
        """Decode a whole tag-81 TLV; errors raise DecodeError with the offset in ``raw``."""
        raw = bytes(raw)
        top, end = parse_one(raw, 0)
        if top.tag != TAG_TRIGGER:
            raise DecodeError(f"expected tag 81 (admin session triggering parameters), got {top.tag:X}", 0)
        if end != len(raw):
            raise DecodeError(f"{len(raw) - end} bytes after the tag-81 object", end)
        outer = _children(raw, end - len(top.value), end, frozenset({_TAG_SESSION, _TAG_DNS}), "tag 81")
        fields: dict[str, object] = {}
        if _TAG_DNS in outer:
            fields["dns_resolution"] = outer[_TAG_DNS][0].value
        if _TAG_SESSION in outer:
            session, start = outer[_TAG_SESSION]
            allowed = frozenset({_TAG_CONNECTION, _TAG_SECURITY, _TAG_EXTENDED_SECURITY, _TAG_RETRY, _TAG_HTTP_POST})
            inner = _children(raw, start, start + len(session.value), allowed, "tag 83")
            if _TAG_CONNECTION in inner:
                fields["connection"] = inner[_TAG_CONNECTION][0].value
            if _TAG_EXTENDED_SECURITY in inner:
                fields["extended_security"] = inner[_TAG_EXTENDED_SECURITY][0].value
            if _TAG_SECURITY in inner:
                fields.update(_decode_security(*inner[_TAG_SECURITY]))
            if _TAG_RETRY in inner:
                retry, at = inner[_TAG_RETRY]
                fields["retry"] = RetryPolicy.from_bytes(retry.value, at)
            if _TAG_HTTP_POST in inner:
                post, at = inner[_TAG_HTTP_POST]
                params = _children(raw, at, at + len(post.value), frozenset({_TAG_HOST, _TAG_AGENT, _TAG_URI}), "89")
                for tag, name in ((_TAG_HOST, "host"), (_TAG_AGENT, "agent_id"), (_TAG_URI, "uri")):
                    if tag in params:
                        fields[name] = _text(params[tag], name)
        return cls(**fields)  # type: ignore[arg-type]


def _decode_security(item: Tlv, at: int) -> dict[str, object]:
    value = item.value
    if not value:
        raise DecodeError("security parameters: empty", at)
    n = value[0]
    if len(value) < 1 + n + 1 + _KVN_KID_LENGTH:
        raise DecodeError(f"security parameters: {len(value)} bytes cannot hold a {n}-byte PSK identity, KVN, KID", at)
    if value[1 + n] != _KVN_KID_LENGTH:
        raise DecodeError(f"security parameters: KVN/KID length must be 02, got {value[1 + n]:02X}", at + 1 + n)
    kvn, kid = value[2 + n], value[3 + n]
    rest = value[4 + n :]
    if len(rest) > 1:
        raise DecodeError("security parameters: at most one byte (SHA type) after the key identifier", at + 5 + n)
    return {
        "psk_identity": value[1 : 1 + n],
        "kvn": kvn,
        "key_id": kid,
        "sha_type": rest[0] if rest else None,
    }
