"""INSTALL command data: encode and parse each variant, and the install parameters (GP Card Specification 2.3.1,
11.5.2).

The INSTALL data field is LV coded (11.5.2.3): one-byte lengths for AIDs, privileges and hashes; the lengths of
parameters fields and tokens are BER lengths where ``80`` also means 128. The variant is given by P1
(Table 11-41); :func:`parse_install` returns the dataclass of that variant.

Install parameters (Table 11-49): ``C9`` application specific parameters (mandatory, possibly empty), ``EF``
system specific parameters (``C7``/``C8`` memory quotas, ``CB`` global service parameters, ``D7``/``D8``
reserved memory, ``CA`` TS 102 226 parameter, ``CF`` implicit selection), ``EA`` TS 102 226 template, ``B6``
token CRT. Memory quotas are 2-byte integers up to 32767 and 4-byte ones above (9.7).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gpchannel.codec.tlv import decode_length, encode_length, first_value, parse_pairs, tlv
from gpchannel.errors import DecodeError
from gpchannel.gp.privileges import Privileges

__all__ = [
    "InstallFor",
    "InstallForExtradition",
    "InstallForInstall",
    "InstallForLoad",
    "InstallForPersonalization",
    "InstallForRegistryUpdate",
    "InstallParameters",
    "InstallVariant",
    "parse_install",
]


class InstallFor(enum.IntFlag):
    """P1 of INSTALL (Table 11-41), without the b8 "more commands" bit."""

    LOAD = 0x02
    INSTALL = 0x04
    MAKE_SELECTABLE = 0x08
    EXTRADITION = 0x10
    PERSONALIZATION = 0x20
    REGISTRY_UPDATE = 0x40


def _quota(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"memory quota {value} does not fit 4 bytes")
    return value.to_bytes(2 if value <= 32767 else 4, "big")


def _int_of(raw: bytes, tag: int, base: int) -> int:
    if len(raw) not in (2, 4):
        raise DecodeError(f"memory value (tag {tag:X}) is 2 or 4 bytes, got {len(raw)}", base)
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class InstallParameters:
    """The Install Parameters field (Table 11-49). ``extra`` keeps other top-level TLVs (``EA``, ``B6``) raw."""

    application_specific: bytes = b""
    volatile_memory_quota: int | None = None
    non_volatile_memory_quota: int | None = None
    global_service: bytes | None = None
    volatile_reserved: int | None = None
    non_volatile_reserved: int | None = None
    ts102226_parameter: bytes | None = None
    implicit_selection: tuple[int, ...] = ()
    extra: tuple[tuple[int, bytes], ...] = ()

    def to_bytes(self) -> bytes:
        """``C9`` first, then ``EF`` when it has content (in the order pySim writes it: C8, C7, ...), then extras."""
        system = b""
        if self.non_volatile_memory_quota is not None:
            system += tlv(0xC8, _quota(self.non_volatile_memory_quota))
        if self.volatile_memory_quota is not None:
            system += tlv(0xC7, _quota(self.volatile_memory_quota))
        if self.global_service is not None:
            system += tlv(0xCB, self.global_service)
        if self.volatile_reserved is not None:
            system += tlv(0xD7, _quota(self.volatile_reserved))
        if self.non_volatile_reserved is not None:
            system += tlv(0xD8, _quota(self.non_volatile_reserved))
        if self.ts102226_parameter is not None:
            system += tlv(0xCA, self.ts102226_parameter)
        system += b"".join(tlv(0xCF, bytes((p,))) for p in self.implicit_selection)
        out = tlv(0xC9, self.application_specific)
        if system:
            out += tlv(0xEF, system)
        return out + b"".join(tlv(t, v) for t, v in self.extra)

    @classmethod
    def from_bytes(cls, raw: bytes, *, require_c9: bool = True) -> InstallParameters:
        """Parse; ``C9`` is mandatory for INSTALL [for install] (Table 11-49), optional otherwise."""
        items = parse_pairs(raw)
        c9 = first_value(items, 0xC9)
        if c9 is None and require_c9:
            raise DecodeError("install parameters lack the mandatory C9 (application specific parameters)", 0)
        system = first_value(items, 0xEF)
        values: dict[int, bytes] = {}
        implicit: list[int] = []
        if system is not None:
            for tag, value in parse_pairs(system):
                if tag == 0xCF:
                    if len(value) != 1:
                        raise DecodeError(f"implicit selection parameter (CF) is 1 byte, got {len(value)}", 0)
                    implicit.append(value[0])
                else:
                    values[tag] = value

        def number(tag: int) -> int | None:
            return _int_of(values[tag], tag, 0) if tag in values else None

        return cls(
            application_specific=c9 or b"",
            volatile_memory_quota=number(0xC7),
            non_volatile_memory_quota=number(0xC8),
            global_service=values.get(0xCB),
            volatile_reserved=number(0xD7),
            non_volatile_reserved=number(0xD8),
            ts102226_parameter=values.get(0xCA),
            implicit_selection=tuple(implicit),
            extra=tuple((t, v) for t, v in items if t not in (0xC9, 0xEF)),
        )


# -- LV helpers -----------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.offset = 0

    def lv(self, what: str, sizes: tuple[int, ...] | None = None) -> bytes:
        if self.offset >= len(self.raw):
            raise DecodeError(f"missing length of {what}", self.offset)
        n = self.raw[self.offset]
        if sizes is not None and n not in sizes:
            raise DecodeError(f"length of {what} is {n}, expected one of {sizes}", self.offset)
        self.offset += 1
        return self._take(n, what)

    def aid(self, what: str, *, optional: bool) -> bytes:
        allowed = (0, *range(5, 17)) if optional else tuple(range(5, 17))
        return self.lv(what, allowed)

    def ber_lv(self, what: str) -> bytes:
        n, self.offset = decode_length(self.raw, self.offset, lenient_80=True)
        return self._take(n, what)

    def _take(self, n: int, what: str) -> bytes:
        if self.offset + n > len(self.raw):
            raise DecodeError(
                f"{what} is truncated: {n} bytes announced, {len(self.raw) - self.offset} left", self.offset
            )
        value = bytes(self.raw[self.offset : self.offset + n])
        self.offset += n
        return value

    def end(self) -> None:
        if self.offset != len(self.raw):
            raise DecodeError(f"{len(self.raw) - self.offset} unexpected bytes after the INSTALL data", self.offset)


def _lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


def _ber_lv(value: bytes) -> bytes:
    return encode_length(len(value)) + value


@dataclass(frozen=True, slots=True)
class InstallForLoad:
    """Table 11-42."""

    load_file_aid: bytes
    sd_aid: bytes = b""
    load_file_hash: bytes = b""
    load_parameters: bytes = b""
    token: bytes = b""

    def to_bytes(self) -> bytes:
        return (
            _lv(self.load_file_aid)
            + _lv(self.sd_aid)
            + _lv(self.load_file_hash)
            + _ber_lv(self.load_parameters)
            + _ber_lv(self.token)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> InstallForLoad:
        r = _Reader(raw)
        out = cls(
            r.aid("Load File AID", optional=False),
            r.aid("Security Domain AID", optional=True),
            r.lv("Load File Data Block Hash", tuple(range(0x80))),
            r.ber_lv("Load Parameters"),
            r.ber_lv("Load Token"),
        )
        r.end()
        return out


@dataclass(frozen=True, slots=True)
class InstallForInstall:
    """Table 11-43 (also the final command of the combined load, install and make selectable process)."""

    load_file_aid: bytes
    module_aid: bytes
    application_aid: bytes
    privileges: Privileges = field(default_factory=Privileges)
    parameters: bytes = b"\xc9\x00"
    token: bytes = b""
    one_byte_privileges: bool = False

    def to_bytes(self) -> bytes:
        privileges = self.privileges.to_bytes()[:1] if self.one_byte_privileges else self.privileges.to_bytes()
        return (
            _lv(self.load_file_aid)
            + _lv(self.module_aid)
            + _lv(self.application_aid)
            + _lv(privileges)
            + _ber_lv(self.parameters)
            + _ber_lv(self.token)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> InstallForInstall:
        r = _Reader(raw)
        elf = r.aid("Executable Load File AID", optional=True)
        module = r.aid("Executable Module AID", optional=True)
        app = r.aid("Application AID", optional=False)
        privileges = r.lv("Privileges", (1, 3))
        out = cls(
            elf,
            module,
            app,
            Privileges.from_bytes(privileges),
            r.ber_lv("Install Parameters"),
            r.ber_lv("Install Token"),
        )
        r.end()
        return InstallForInstall(
            out.load_file_aid,
            out.module_aid,
            out.application_aid,
            out.privileges,
            out.parameters,
            out.token,
            len(privileges) == 1,
        )

    def install_parameters(self) -> InstallParameters:
        return InstallParameters.from_bytes(self.parameters)


@dataclass(frozen=True, slots=True)
class InstallForMakeSelectable:
    """Table 11-44."""

    application_aid: bytes
    privileges: Privileges = field(default_factory=Privileges)
    parameters: bytes = b""
    token: bytes = b""

    def to_bytes(self) -> bytes:
        return (
            b"\x00\x00"
            + _lv(self.application_aid)
            + _lv(self.privileges.to_bytes())
            + _ber_lv(self.parameters)
            + _ber_lv(self.token)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> InstallForMakeSelectable:
        r = _Reader(raw)
        r.lv("first empty field", (0,))
        r.lv("second empty field", (0,))
        app = r.aid("Application AID", optional=False)
        privileges = Privileges.from_bytes(r.lv("Privileges", (1, 3)))
        out = cls(app, privileges, r.ber_lv("Make Selectable Parameters"), r.ber_lv("Make Selectable Token"))
        r.end()
        return out


@dataclass(frozen=True, slots=True)
class InstallForExtradition:
    """Table 11-45."""

    sd_aid: bytes
    application_aid: bytes
    parameters: bytes = b""
    token: bytes = b""

    def to_bytes(self) -> bytes:
        return (
            _lv(self.sd_aid)
            + b"\x00"
            + _lv(self.application_aid)
            + b"\x00"
            + _ber_lv(self.parameters)
            + _ber_lv(self.token)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> InstallForExtradition:
        r = _Reader(raw)
        sd = r.aid("Security Domain AID", optional=False)
        r.lv("empty field", (0,))
        app = r.aid("Application or Executable Load File AID", optional=False)
        r.lv("empty field", (0,))
        out = cls(sd, app, r.ber_lv("Extradition Parameters"), r.ber_lv("Extradition Token"))
        r.end()
        return out


@dataclass(frozen=True, slots=True)
class InstallForRegistryUpdate:
    """Table 11-46. ``privileges`` None when the field is empty (no privilege update)."""

    sd_aid: bytes = b""
    application_aid: bytes = b""
    privileges: Privileges | None = None
    parameters: bytes = b""
    token: bytes = b""

    def to_bytes(self) -> bytes:
        privileges = self.privileges.to_bytes() if self.privileges is not None else b""
        return (
            _lv(self.sd_aid)
            + b"\x00"
            + _lv(self.application_aid)
            + _lv(privileges)
            + _ber_lv(self.parameters)
            + _ber_lv(self.token)
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> InstallForRegistryUpdate:
        r = _Reader(raw)
        sd = r.aid("Security Domain AID", optional=True)
        r.lv("empty field", (0,))
        app = r.aid("Application AID", optional=True)
        privileges = r.lv("Privileges", (0, 1, 3))
        out = cls(
            sd,
            app,
            Privileges.from_bytes(privileges) if privileges else None,
            r.ber_lv("Registry Update Parameters"),
            r.ber_lv("Registry Update Token"),
        )
        r.end()
        return out


@dataclass(frozen=True, slots=True)
class InstallForPersonalization:
    """Table 11-47."""

    application_aid: bytes

    def to_bytes(self) -> bytes:
        return b"\x00\x00" + _lv(self.application_aid) + b"\x00\x00\x00"

    @classmethod
    def from_bytes(cls, raw: bytes) -> InstallForPersonalization:
        r = _Reader(raw)
        r.lv("empty field", (0,))
        r.lv("empty field", (0,))
        app = r.aid("Application AID", optional=False)
        for _ in range(3):
            r.lv("empty field", (0,))
        r.end()
        return cls(app)


InstallVariant = (
    InstallForLoad
    | InstallForInstall
    | InstallForMakeSelectable
    | InstallForExtradition
    | InstallForRegistryUpdate
    | InstallForPersonalization
)


def parse_install(p1: int, p2: int, data: bytes) -> tuple[InstallFor, InstallVariant]:
    """Decode INSTALL data for P1 and P2 (b8 of P1, "more commands", is for the caller, who joins segments).

    Returns the requested roles and the parsed data; an invalid P1/P2 combination raises DecodeError. The
    combined [for load, install and make selectable] process carries [for load] data with P2 = 01 and
    [for install] data with P2 = 03 (11.5.2.2).
    """
    roles = InstallFor(p1 & 0x7E)
    variant: InstallVariant
    if roles == InstallFor.REGISTRY_UPDATE:
        variant = InstallForRegistryUpdate.from_bytes(data)
    elif roles == InstallFor.PERSONALIZATION:
        variant = InstallForPersonalization.from_bytes(data)
    elif roles == InstallFor.EXTRADITION:
        variant = InstallForExtradition.from_bytes(data)
    elif p1 & 0x01 or not roles or roles & ~(InstallFor.LOAD | InstallFor.INSTALL | InstallFor.MAKE_SELECTABLE):
        raise DecodeError(f"INSTALL P1 {p1:02X} is not a valid combination (Table 11-41)")
    elif roles == InstallFor.MAKE_SELECTABLE:
        variant = InstallForMakeSelectable.from_bytes(data)
    elif roles == InstallFor.LOAD:
        variant = InstallForLoad.from_bytes(data)
    elif not roles & InstallFor.LOAD:
        variant = InstallForInstall.from_bytes(data)
    elif p2 == 0x01:
        variant = InstallForLoad.from_bytes(data)
    elif p2 == 0x03:
        variant = InstallForInstall.from_bytes(data)
    else:
        raise DecodeError(f"INSTALL P1 {p1:02X} (combined load and install) needs P2 01 or 03, got {p2:02X}")
    return roles, variant
