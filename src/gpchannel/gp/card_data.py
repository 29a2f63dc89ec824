"""Card data objects returned by GET DATA: encode (card) and decode (host).

- Card Recognition Data, tag ``66`` holding ``73`` (GP Card Specification 2.3.1, H.2, Table H-1): OIDs for the
  GP version (``60``), card identification scheme (``63``), each secure channel protocol and its i
  (``64``: {1 2 840 114283 4 scp i}), card configuration (``65``) and chip details (``66``).
- Card Capability Information, tag ``67`` (H.4, Tables H-5 to H-7). Some cards nest a second ``67``; it is
  unwrapped, as GlobalPlatformPro does.
- Key Information Template, tag ``E0`` with ``C0`` entries (11.3.3.1.1, Tables 11-28 basic and 11-29 extended).
- Extended Card Resources, tag ``FF21`` (11.3.3.1.2 refers to ETSI TS 102 226: ``81`` installed applications,
  ``82`` free non-volatile memory, ``83`` free volatile memory).
- Issuer Identification Number ``42`` and Card Image Number ``45`` (Table 11-26): opaque bytes.

Decoders return a value or raise :class:`DecodeError`; unknown tags are skipped (cards add proprietary ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpchannel.codec.tlv import decode_length, encode_length, first_value, parse_pairs, tlv
from gpchannel.errors import DecodeError

__all__ = [
    "GP_OID_PREFIX",
    "TAG_CARD_CAPABILITIES",
    "TAG_CARD_DATA",
    "TAG_CIN",
    "TAG_EXTENDED_CARD_RESOURCES",
    "TAG_IIN",
    "TAG_KEY_INFORMATION",
    "CardCapabilities",
    "CardRecognitionData",
    "ExtendedCardResources",
    "KeyComponentInfo",
    "KeyInformation",
    "ScpInfo",
    "decode_key_information_template",
    "decode_oid",
    "decode_simple",
    "encode_key_information_template",
    "encode_oid",
    "encode_simple",
]

TAG_CARD_DATA = 0x66
TAG_CARD_CAPABILITIES = 0x67
TAG_KEY_INFORMATION = 0xE0
TAG_EXTENDED_CARD_RESOURCES = 0xFF21
TAG_IIN = 0x42
TAG_CIN = 0x45
GP_OID_PREFIX = (1, 2, 840, 114283)


# -- OIDs (ITU-T X.690, 8.19) ---------------------------------------------------------------------------------------
def encode_oid(arcs: tuple[int, ...]) -> bytes:
    """The content octets of an OBJECT IDENTIFIER."""
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or any(a < 0 for a in arcs):
        raise ValueError(f"invalid OID {arcs}")
    out = bytearray()
    for arc in (arcs[0] * 40 + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def decode_oid(raw: bytes, base: int = 0) -> tuple[int, ...]:
    """Decode OID content octets; raises DecodeError on an empty value, a truncated arc or a padded arc."""
    if not raw:
        raise DecodeError("empty OBJECT IDENTIFIER", base)
    values: list[int] = []
    value = 0
    start = True
    for i, byte in enumerate(raw):
        if start and byte == 0x80:
            raise DecodeError("OID arc with a leading 80 byte", base + i)
        value = (value << 7) | (byte & 0x7F)
        start = not byte & 0x80
        if start:
            values.append(value)
            value = 0
    if not start:
        raise DecodeError("truncated OID arc", base + len(raw))
    first = values[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    return (*head, *values[1:])


def _oid_text(arcs: tuple[int, ...]) -> str:
    return ".".join(str(a) for a in arcs)


def _parse_oid_text(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _unwrap(raw: bytes, tag: int, what: str) -> bytes:
    """The value of ``tag`` when ``raw`` is exactly one such TLV."""
    tlvs = parse_pairs(raw)
    if len(tlvs) != 1 or tlvs[0][0] != tag:
        raise DecodeError(f"{what} must be one {tag:X} TLV", 0)
    return tlvs[0][1]


# -- Card Recognition Data (H.2) ------------------------------------------------------------------------------------
_GP_VERSION = (*GP_OID_PREFIX, 2)
_CARD_ID_SCHEME = (*GP_OID_PREFIX, 3)
_SCP = (*GP_OID_PREFIX, 4)
_RECOGNITION = (*GP_OID_PREFIX, 1)


@dataclass(frozen=True, slots=True)
class CardRecognitionData:
    """Card Recognition Data (Table H-1). ``scps`` lists (protocol, i) as the OID arcs give them; ``gp_version``
    is like ``"2.3.1"``; ``card_configuration`` and ``chip_details`` are dotted OIDs."""

    gp_version: str | None = None
    scps: tuple[tuple[int, int], ...] = ()
    card_configuration: str | None = None
    chip_details: str | None = None
    card_identification_scheme: bool = True

    @property
    def javacard_version(self) -> str | None:
        """The Java Card major version when ``chip_details`` is Oracle's {1 3 6 1 4 1 42 2 110 1 v}."""
        prefix = "1.3.6.1.4.1.42.2.110.1."
        if self.chip_details and self.chip_details.startswith(prefix):
            return self.chip_details[len(prefix) :]
        return None

    @classmethod
    def from_bytes(cls, raw: bytes) -> CardRecognitionData:
        """Decode ``66 (73 ...)`` (GET DATA) or a bare ``73`` template (the FCI's ``A5``)."""
        tlvs = parse_pairs(raw)
        if len(tlvs) == 1 and tlvs[0][0] == TAG_CARD_DATA:
            tlvs = parse_pairs(tlvs[0][1])
        if len(tlvs) != 1 or tlvs[0][0] != 0x73:
            raise DecodeError("card recognition data must be one 73 template (inside 66)", 0)
        gp_version = None
        scps: list[tuple[int, int]] = []
        config = chip = None
        scheme = False
        for tag, value in parse_pairs(tlvs[0][1]):
            if tag == 0x06:
                continue
            inner = parse_pairs(value) if tag in (0x60, 0x63, 0x64, 0x65, 0x66) else []
            oid_raw = first_value(inner, 0x06)
            if oid_raw is None:
                continue
            arcs = decode_oid(oid_raw)
            if tag == 0x60 and arcs[: len(_GP_VERSION)] == _GP_VERSION:
                gp_version = _oid_text(arcs[len(_GP_VERSION) :])
            elif tag == 0x63:
                scheme = arcs == _CARD_ID_SCHEME
            elif tag == 0x64 and arcs[: len(_SCP)] == _SCP and len(arcs) == len(_SCP) + 2:
                scps.append((arcs[-2], arcs[-1]))
            elif tag == 0x65:
                config = _oid_text(arcs)
            elif tag == 0x66:
                chip = _oid_text(arcs)
        return cls(gp_version, tuple(scps), config, chip, scheme)

    def to_bytes(self) -> bytes:
        """``66 (73 ...)`` as GET DATA returns it."""
        return tlv(TAG_CARD_DATA, self.template())

    def template(self) -> bytes:
        """The ``73`` template alone (the FCI proprietary data carries it)."""

        def oid(tag: int, arcs: tuple[int, ...]) -> bytes:
            return tlv(tag, tlv(0x06, encode_oid(arcs)))

        body = tlv(0x06, encode_oid(_RECOGNITION))
        if self.gp_version:
            body += oid(0x60, (*_GP_VERSION, *_parse_oid_text(self.gp_version)))
        if self.card_identification_scheme:
            body += oid(0x63, _CARD_ID_SCHEME)
        for protocol, i in self.scps:
            body += oid(0x64, (*_SCP, protocol, i))
        if self.card_configuration:
            body += oid(0x65, _parse_oid_text(self.card_configuration))
        if self.chip_details:
            body += oid(0x66, _parse_oid_text(self.chip_details))
        return tlv(0x73, body)


# -- Card Capability Information (H.4) ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScpInfo:
    """One ``A0`` entry (Table H-6): the protocol, its supported i options, and SCP03 key support (Table H-7)."""

    protocol: int
    options: bytes = b""
    keys: bytes | None = None
    tls_cipher_suites: bytes | None = None
    max_psk_length: int | None = None

    def to_bytes(self) -> bytes:
        body = tlv(0x80, bytes((self.protocol,))) + tlv(0x81, self.options)
        if self.keys is not None:
            body += tlv(0x82, self.keys)
        if self.tls_cipher_suites is not None:
            body += tlv(0x83, self.tls_cipher_suites)
        if self.max_psk_length is not None:
            body += tlv(0x84, bytes((self.max_psk_length,)))
        return tlv(0xA0, body)


_CAPABILITY_FIELDS = {
    0x81: "ssd_privileges",
    0x82: "application_privileges",
    0x83: "lfdbh_algorithms",
    0x84: "lfdb_encryption_suites",
    0x85: "token_suites",
    0x86: "receipt_suites",
    0x87: "dap_suites",
    0x88: "key_parameter_references",
}


@dataclass(frozen=True, slots=True)
class CardCapabilities:
    """Card Capability Information (Table H-5); the suite fields keep the card's bytes."""

    scps: tuple[ScpInfo, ...] = ()
    ssd_privileges: bytes | None = None
    application_privileges: bytes | None = None
    lfdbh_algorithms: bytes | None = None
    lfdb_encryption_suites: bytes | None = None
    token_suites: bytes | None = None
    receipt_suites: bytes | None = None
    dap_suites: bytes | None = None
    key_parameter_references: bytes | None = None

    def options_for(self, protocol: int) -> bytes:
        """The i values the card lists for ``protocol`` (empty when it lists none)."""
        return b"".join(s.options for s in self.scps if s.protocol == protocol)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CardCapabilities:
        value = _unwrap(raw, TAG_CARD_CAPABILITIES, "card capability information")
        inner = parse_pairs(value)
        if len(inner) == 1 and inner[0][0] == TAG_CARD_CAPABILITIES:  # a nested 67 (seen on real cards)
            inner = parse_pairs(inner[0][1])
        scps: list[ScpInfo] = []
        found: dict[str, bytes] = {}
        for tag, item in inner:
            if tag == 0xA0:
                scps.append(_scp_info(item))
            elif tag in _CAPABILITY_FIELDS:
                found[_CAPABILITY_FIELDS[tag]] = item
        return cls(tuple(scps), **found)

    def to_bytes(self) -> bytes:
        body = b"".join(s.to_bytes() for s in self.scps)
        for tag, name in _CAPABILITY_FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                body += tlv(tag, value)
        return tlv(TAG_CARD_CAPABILITIES, body)


def _scp_info(raw: bytes) -> ScpInfo:
    tlvs = parse_pairs(raw)
    protocol = first_value(tlvs, 0x80)
    if protocol is None or len(protocol) != 1:
        raise DecodeError("SCP information (A0) needs a one-byte 80 SCP type", 0)
    psk = first_value(tlvs, 0x84)
    if psk is not None and len(psk) != 1:
        raise DecodeError("maximum PSK length (84) is one byte", 0)
    return ScpInfo(
        protocol[0],
        first_value(tlvs, 0x81) or b"",
        first_value(tlvs, 0x82),
        first_value(tlvs, 0x83),
        psk[0] if psk else None,
    )


# -- Key Information Template (11.3.3.1.1) --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeyComponentInfo:
    """One key component: its type (Table 11-16; ``0xFFxx`` in the extended format) and length in bytes."""

    key_type: int
    length: int


@dataclass(frozen=True, slots=True)
class KeyInformation:
    """One ``C0`` Key Information Data object (Table 11-28 basic, 11-29 extended)."""

    key_id: int
    kvn: int
    components: tuple[KeyComponentInfo, ...]
    extended: bool = False
    usage: bytes = b""
    access: bytes = b""

    def to_bytes(self) -> bytes:
        body = bytes((self.key_id, self.kvn))
        if not self.extended:
            for c in self.components:
                if c.key_type >= 0xFF or not 0 <= c.length <= 0xFF:
                    raise ValueError("the basic format needs one-byte key types and lengths")
                body += bytes((c.key_type, c.length))
        else:
            for c in self.components:
                body += c.key_type.to_bytes(2 if c.key_type > 0xFF else 1, "big") + c.length.to_bytes(2, "big")
            body += bytes((len(self.usage),)) + self.usage + bytes((len(self.access),)) + self.access
        return tlv(0xC0, body)

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyInformation:
        """Decode one ``C0`` TLV."""
        return _key_info(_unwrap(raw, 0xC0, "key information data"), 0)


def _key_info(value: bytes, base: int) -> KeyInformation:
    if len(value) < 4:
        raise DecodeError(f"key information data is at least 4 bytes, got {len(value)}", base)
    key_id, kvn = value[0], value[1]
    comps: list[KeyComponentInfo] = []
    if value[2] != 0xFF:
        if len(value) % 2:
            raise DecodeError("basic key information has an odd number of bytes", base)
        comps = [KeyComponentInfo(value[i], value[i + 1]) for i in range(2, len(value), 2)]
        return KeyInformation(key_id, kvn, tuple(comps))
    offset = 2

    def need(n: int) -> None:
        if offset + n > len(value):
            raise DecodeError("truncated extended key information", base + offset)

    # Extended: 'FF xx' types with 2-byte lengths, then usage and access as LV (each 0 or 1 byte). GPPro's tests
    # show cards mixing in one-byte component types (e.g. 'A0' after 'FF A1'); a byte other than FF that is no
    # valid usage length (00/01) is read as such a component.
    while offset < len(value) and (value[offset] == 0xFF or value[offset] > 0x01 or not comps):
        width = 2 if value[offset] == 0xFF else 1
        need(width + 2)
        key_type = int.from_bytes(value[offset : offset + width], "big")
        length = int.from_bytes(value[offset + width : offset + width + 2], "big")
        comps.append(KeyComponentInfo(key_type, length))
        offset += width + 2
    parts: list[bytes] = []
    for what in ("usage", "access"):
        need(1)
        n = value[offset]
        if n > 1:
            raise DecodeError(f"key {what} length is 0 or 1, got {n}", base + offset)
        offset += 1
        need(n)
        parts.append(bytes(value[offset : offset + n]))
        offset += n
    if offset != len(value):
        raise DecodeError("trailing bytes after key access", base + offset)
    return KeyInformation(key_id, kvn, tuple(comps), True, parts[0], parts[1])


def decode_key_information_template(raw: bytes) -> list[KeyInformation]:
    """Decode ``E0 (C0 ...)*`` as GET DATA returns it (a bare list of ``C0`` is accepted too)."""
    tlvs = parse_pairs(raw)
    if len(tlvs) == 1 and tlvs[0][0] == TAG_KEY_INFORMATION:
        tlvs = parse_pairs(tlvs[0][1])
    out: list[KeyInformation] = []
    for tag, value in tlvs:
        if tag != 0xC0:
            raise DecodeError(f"key information template holds C0 objects, got {tag:X}", 0)
        out.append(_key_info(value, 0))
    return out


def encode_key_information_template(entries: list[KeyInformation]) -> bytes:
    return tlv(TAG_KEY_INFORMATION, b"".join(e.to_bytes() for e in entries))


# -- Extended Card Resources (FF21, ETSI TS 102 226 8.2.1.7.2) ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExtendedCardResources:
    """Number of installed applications, free non-volatile and free volatile memory in bytes."""

    installed_applications: int
    free_non_volatile_memory: int
    free_volatile_memory: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> ExtendedCardResources:
        # Tag FF21 is read here by hand: BER-TLV (codec.tlv) takes FF as padding, not as a first tag byte.
        if raw[:2] != b"\xff\x21":
            raise DecodeError("extended card resources must be one FF21 TLV", 0)
        length, offset = decode_length(raw, 2)
        if offset + length != len(raw):
            raise DecodeError(f"FF21 says {length} bytes but {len(raw) - offset} follow", offset)
        tlvs = parse_pairs(raw[offset:], base=offset)
        values: list[int] = []
        for tag in (0x81, 0x82, 0x83):
            value = first_value(tlvs, tag)
            if value is None or not 1 <= len(value) <= 4:
                raise DecodeError(f"extended card resources need tag {tag:X} of 1 to 4 bytes", 0)
            values.append(int.from_bytes(value, "big"))
        return cls(*values)

    def to_bytes(self) -> bytes:
        body = (
            tlv(0x81, self.installed_applications.to_bytes(2, "big"))
            + tlv(0x82, self.free_non_volatile_memory.to_bytes(4, "big"))
            + tlv(0x83, self.free_volatile_memory.to_bytes(4, "big"))
        )
        return b"\xff\x21" + encode_length(len(body)) + body


# -- IIN (42) and CIN (45) ------------------------------------------------------------------------------------------
def encode_simple(tag: int, value: bytes) -> bytes:
    """A single data object as GET DATA returns it (IIN ``42``, CIN ``45``, KDD ``CF``, counter ``C1``)."""
    return tlv(tag, value)


def decode_simple(tag: int, raw: bytes) -> bytes:
    """The value of a single-TLV GET DATA response for ``tag``; a bare value (no TLV) is not accepted."""
    return _unwrap(raw, tag, f"GET DATA {tag:X}")
