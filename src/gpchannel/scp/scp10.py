"""SCP10 shared primitives (GP Card Specification 2.2.1, Appendix F): the "i" options (Table F-1), control
reference templates (F.3.1.2), session key data (Tables F-7, F-9, F-32), the RSAES-PKCS1-v1_5 block of Table
F-32, session keys by transport or agreement (F.3.1.3, F.2.3), and command chaining (F.4).

The session sequence and the classes are in :mod:`gpchannel.scp.scp10_host` and :mod:`gpchannel.scp.scp10_card`;
secure messaging in :mod:`gpchannel.scp.scp10_sm`; the certificate format in :mod:`gpchannel.scp.scp10_cert`.

Security level byte (tag 'D3', Tables F-7 and F-32): the GP bit map C-MAC 01, C-DECRYPTION 02, R-MAC 10,
R-ENCRYPTION 20. SCP10 defines each protection on its own (F.3.2.1 to F.3.2.6), so any combination of the four
bits is allowed, e.g. C-ENC without C-MAC (F.3.2.2).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu
from gpchannel.codec.tlv import Tlv, encode_length, parse_all
from gpchannel.crypto.rsa import sha1
from gpchannel.errors import DecodeError, SecurityError

__all__ = [
    "INS_EXTERNAL_AUTHENTICATE",
    "INS_GET_CHALLENGE",
    "INS_GET_DATA",
    "INS_INTERNAL_AUTHENTICATE",
    "INS_MANAGE_SECURITY_ENVIRONMENT",
    "INS_PERFORM_SECURITY_OPERATION",
    "Crt",
    "KeyUsage",
    "Scp10Option",
    "SessionKeyData",
    "SessionKeys",
    "chain_command",
    "check_level",
    "derive_agreement_keys",
    "leftmost_key_data",
    "pkcs1_type2_block",
    "pkcs1_type2_open",
]

INS_MANAGE_SECURITY_ENVIRONMENT = 0x22
INS_PERFORM_SECURITY_OPERATION = 0x2A
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_GET_CHALLENGE = 0x84
INS_INTERNAL_AUTHENTICATE = 0x88
INS_GET_DATA = 0xCA

TAG_SECURITY_LEVEL = 0xD3
TAG_CCT = 0xB4  # cryptographic checksum template: MAC keys
TAG_CT = 0xB8  # confidentiality template: ENC keys and DEKs

C_MAC, C_ENC, R_MAC, R_ENC = 0x01, 0x02, 0x10, 0x20


class Scp10Option(enum.IntEnum):
    """The "i" parameter (Table F-1); a Security Domain supports at least one of these two (F.1.2)."""

    KEY_AGREEMENT = 0x01  # signature with message recovery, key agreement
    KEY_TRANSPORT = 0x02  # signature without message recovery, key transport

    @property
    def challenge_length(self) -> int:
        """Card and off-card challenge lengths (F.4.2.4, F.4.4.3)."""
        return 16 if self is Scp10Option.KEY_TRANSPORT else 8


class KeyUsage(enum.Enum):
    """What a session key is for: the CRT tag with the key usage qualifier (Table F-11 and its note)."""

    C_MAC = "c-mac"
    R_MAC = "r-mac"
    C_ENC = "c-enc"
    R_ENC = "r-enc"
    DEK_COMMAND = "dek-command"
    DEK_RESPONSE = "dek-response"


def check_level(level: int) -> int:
    """Validate a requested security level byte (only the C-MAC, C-ENC, R-MAC and R-ENC bits may be set)."""
    if not 0 <= level <= 0xFF or level & ~0x33:
        raise ValueError(f"SCP10 security level {level:02X}: only bits 01, 02, 10 and 20 may be set")
    return level


@dataclass(frozen=True, slots=True)
class Crt:
    """A single control reference template (Table F-11). ``key`` and ``counter`` are for key transport only."""

    tag: int
    usage_qualifier: int
    key_type: int | None = None
    key: bytes | None = field(default=None, repr=False)
    counter: bytes | None = None

    def __post_init__(self) -> None:
        if self.tag not in (TAG_CCT, TAG_CT):
            raise ValueError(f"CRT tag must be B4 or B8, got {self.tag:02X}")
        allowed = (0x10, 0x20, 0x30) if self.tag == TAG_CCT else (0x10, 0x20, 0x30, 0x40, 0x80, 0xC0)
        if self.usage_qualifier not in allowed:
            raise ValueError(f"key usage qualifier {self.usage_qualifier:02X} is not valid in a {self.tag:02X} CRT")
        if self.key is not None and len(self.key) not in (16, 24):
            raise ValueError(f"session keys are double or triple length DES keys (F.3.1.1), got {len(self.key)}")
        if self.counter is not None and len(self.counter) != 8:
            raise ValueError(f"the sequence counter is 8 bytes, got {len(self.counter)}")

    @property
    def usages(self) -> tuple[KeyUsage, ...]:
        q = self.usage_qualifier
        if self.tag == TAG_CCT:
            return tuple(u for bit, u in ((0x10, KeyUsage.C_MAC), (0x20, KeyUsage.R_MAC)) if q & bit)
        pairs = (
            (0x10, KeyUsage.C_ENC),
            (0x20, KeyUsage.R_ENC),
            (0x80, KeyUsage.DEK_COMMAND),
            (0x40, KeyUsage.DEK_RESPONSE),
        )
        return tuple(u for bit, u in pairs if q & bit)

    @property
    def kind(self) -> str:
        """``mac``, ``enc`` or ``dek``: the families of Table F-12."""
        if self.tag == TAG_CCT:
            return "mac"
        return "enc" if self.usage_qualifier & 0x30 else "dek"

    def without_secrets(self) -> Crt:
        """The CRT as key agreement sends it: no key, no counter (F.3.1.2)."""
        return Crt(self.tag, self.usage_qualifier, self.key_type)

    def to_bytes(self) -> bytes:
        body = Tlv(0x95, bytes((self.usage_qualifier,))).to_bytes()
        if self.key_type is not None:
            body += Tlv(0x80, bytes((self.key_type,))).to_bytes()
        if self.key is not None:
            body += Tlv(0xD1, self.key).to_bytes()
        if self.counter is not None:
            body += Tlv(0x91, self.counter).to_bytes()
        return bytes((self.tag,)) + encode_length(len(body)) + body

    @classmethod
    def from_tlv(cls, item: Tlv) -> Crt:
        """Parse one CRT strictly (95 first, then optional 80, D1, 91 in this order; nothing else)."""
        if item.tag not in (TAG_CCT, TAG_CT) or len(item.value) > 0x7F:
            raise DecodeError(f"not a CRT: tag {item.tag:X}")
        children = parse_all(item.value)
        order = [c.tag for c in children]
        if not order or order[0] != 0x95 or order != sorted(order, key=[0x95, 0x80, 0xD1, 0x91].index):
            raise DecodeError(
                f"CRT {item.tag:02X} holds {' '.join(f'{t:X}' for t in order)}, expected 95 [80] [D1] [91]"
            )
        values = {c.tag: c.value for c in children}
        if len(values) != len(children) or len(values[0x95]) != 1 or len(values.get(0x80, b"x")) != 1:
            raise DecodeError("CRT has repeated or wrong-length data objects")
        try:
            return cls(
                item.tag,
                values[0x95][0],
                values[0x80][0] if 0x80 in values else None,
                values.get(0xD1),
                values.get(0x91),
            )
        except ValueError as exc:
            raise DecodeError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class SessionKeyData:
    """``D3 01 level`` followed by the CRTs (Tables F-7, F-9, F-10 and F-32)."""

    level: int
    crts: tuple[Crt, ...]

    def __post_init__(self) -> None:
        check_level(self.level)
        if not self.crts:
            raise ValueError("at least one CRT is mandatory")

    def to_bytes(self) -> bytes:
        return bytes((TAG_SECURITY_LEVEL, 1, self.level)) + b"".join(c.to_bytes() for c in self.crts)

    def without_secrets(self) -> SessionKeyData:
        return SessionKeyData(self.level, tuple(c.without_secrets() for c in self.crts))

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionKeyData:
        """Parse exactly ``D3 01 xx`` then one or more CRTs; raises DecodeError otherwise."""
        if len(data) < 3 or data[0] != TAG_SECURITY_LEVEL or data[1] != 1:
            raise DecodeError("session key data must start with D3 01 <security level>", offset=0)
        items = parse_all(data[3:])
        try:
            return cls(data[2], tuple(Crt.from_tlv(i) for i in items))
        except ValueError as exc:
            raise DecodeError(str(exc)) from None


# -- RSAES-PKCS1-v1_5 block of Table F-32 --------------------------------------------------------------------------
def pkcs1_type2_block(data: bytes, size: int) -> bytes:
    """``00 02 FF..FF 00 data`` padded to ``size`` bytes (Table F-32; at least 8 padding bytes)."""
    pad = size - 3 - len(data)
    if pad < 8:
        raise ValueError(f"{len(data)} bytes of session key data do not fit a {size}-byte RSA block")
    return b"\x00\x02" + b"\xff" * pad + b"\x00" + data


def pkcs1_type2_open(block: bytes) -> bytes:
    """The data of an ``00 02 PS 00 data`` block (PS: at least 8 non-zero bytes); raises SecurityError."""
    if len(block) < 11 or block[:2] != b"\x00\x02":
        raise SecurityError("not an RSAES-PKCS1-v1_5 block")
    end = block.find(b"\x00", 2)
    if end < 10:
        raise SecurityError("RSAES-PKCS1-v1_5 padding is too short or missing")
    return block[end + 1 :]


# -- session keys --------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _SessionKey:
    value: bytes = field(repr=False)
    counter: int  # ICV sequence counter (F.2.3); only used by MAC keys
    key_type: int | None = None


@dataclass(slots=True)
class SessionKeys:
    """The session keys by usage, each MAC key with its ICV sequence counter. Never shows key values."""

    keys: dict[KeyUsage, _SessionKey] = field(default_factory=dict, repr=False)

    @classmethod
    def from_transport(cls, crts: Iterable[Crt]) -> SessionKeys:
        """Key transport: the keys and counters are in the CRTs (F.3.1.2, F.2.3). Raises DecodeError."""
        out = cls()
        for crt in crts:
            if crt.key is None or (crt.kind == "mac" and crt.counter is None):
                raise DecodeError(f"CRT {crt.tag:02X}/{crt.usage_qualifier:02X} lacks its key or sequence counter")
            shared = _SessionKey(crt.key, int.from_bytes(crt.counter or bytes(8), "big"), crt.key_type)
            for usage in crt.usages:
                if usage in out.keys:
                    raise DecodeError(f"two CRTs give the {usage.value} key")
                out.keys[usage] = shared
        return out

    def add(self, usage: KeyUsage, value: bytes, counter: int = 0, key_type: int | None = None) -> None:
        """Set one key (its own ICV counter); for tests and for keys established out of band."""
        self.keys[usage] = _SessionKey(value, counter, key_type)

    def get(self, usage: KeyUsage) -> _SessionKey:
        key = self.keys.get(usage)
        if key is None:
            raise SecurityError(f"no {usage.value} session key was established")
        return key


_COUNTER = {("mac", True): 1, ("enc", True): 2, ("mac", False): 3, ("enc", False): 4, ("dek", True): 5}


def derive_agreement_keys(crts: Iterable[Crt], oes: bytes, cs: bytes) -> SessionKeys:
    """Key agreement (F.3.1.3, Table F-12, F.2.3): ``SHA-1((OES xor CS) || counter32)[:16]`` per CRT.

    The ICV sequence counter of every MAC key starts at ``CS[-4:] || OES[-4:]``.
    """
    if len(oes) != 32 or len(cs) != 32:
        raise ValueError("the off-card entity and card secrets are 32 bytes each")
    shared = bytes(a ^ b for a, b in zip(oes, cs, strict=True))
    start = int.from_bytes(cs[-4:] + oes[-4:], "big")
    seen: set[str] = set()
    out = SessionKeys()
    for crt in crts:
        first = crt.kind not in seen
        seen.add(crt.kind)
        counter = _COUNTER.get((crt.kind, first), 6)
        key = _SessionKey(sha1(shared + counter.to_bytes(4, "big"))[:16], start, crt.key_type)
        for usage in crt.usages:
            if usage in out.keys:
                raise DecodeError(f"two CRTs ask for the {usage.value} key")
            out.keys[usage] = key
    return out


def leftmost_key_data(middle: bytes) -> SessionKeyData:
    """Split ``RPD || D3 01 SL || CRTs`` (Table F-10): the leftmost position where the rest parses strictly.

    Used by the card on the off-card entity's recovered signature, and by the trace inspector."""
    for start in range(1, len(middle) - 2):
        if middle[start] != TAG_SECURITY_LEVEL:
            continue
        try:
            return SessionKeyData.from_bytes(middle[start:])
        except (DecodeError, ValueError):
            continue
    raise DecodeError("no security level and CRTs found in the recovered message")


def chain_command(command: CommandApdu, size: int = 255) -> list[CommandApdu]:
    """Split a command into an ISO/IEC 7816-4 chain (CLA b5 set on all but the last; F.4)."""
    data = command.data
    if len(data) <= size:
        return [command]
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    out = [command.with_changes(cla=command.cla | 0x10, data=p, le=None) for p in parts[:-1]]
    return [*out, command.with_changes(data=parts[-1])]
