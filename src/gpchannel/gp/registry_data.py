"""GET STATUS response entries: encode (card) and decode (host), in both formats (GP Card Specification 2.3.1,
11.4.3; GP 2.1.1, 9.4.3).

* P2 b2 = 1 (P2 = 02): one ``E3`` template per entry (Tables 11-36 and 11-37): ``4F`` AID, ``9F70`` life cycle,
  ``C5`` privileges, ``CF`` implicit selection parameters, ``C4`` the application's Executable Load File AID,
  ``CE`` load file version, ``84`` Executable Module AIDs, ``CC`` the associated Security Domain's AID.
  A tag list (``5C`` in the command) restricts and orders what each template holds.
* P2 b2 = 0 (P2 = 00, deprecated): GP 2.1.1 Tables 9-22 and 9-24: ``len AID, AID, life cycle, privileges(1)``
  and, for P1 = 10, ``number of modules`` then ``len AID, AID`` per module.

The decoder ignores unknown tags inside ``E3`` (cards add proprietary ones, e.g. ``EA``) and accepts one-byte
``C5`` privileges as GP 2.1.1 cards send them.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from gpchannel.codec import tlv as ber
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.errors import DecodeError
from gpchannel.gp.privileges import Privileges

__all__ = [
    "TAG_AID",
    "TAG_ELF_AID",
    "TAG_IMPLICIT_SELECTION",
    "TAG_LIFECYCLE",
    "TAG_MODULE_AID",
    "TAG_PRIVILEGES",
    "TAG_SD_AID",
    "TAG_VERSION",
    "RegistryEntry",
    "StatusScope",
    "decode_status_response",
    "encode_entry",
]

TAG_AID = 0x4F
TAG_LIFECYCLE = 0x9F70
TAG_PRIVILEGES = 0xC5
TAG_IMPLICIT_SELECTION = 0xCF
TAG_ELF_AID = 0xC4
TAG_SD_AID = 0xCC
TAG_VERSION = 0xCE
TAG_MODULE_AID = 0x84
_TEMPLATE = 0xE3


class StatusScope(enum.IntEnum):
    """P1 of GET STATUS (Table 11-33)."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10

    @classmethod
    def from_p1(cls, p1: int) -> StatusScope:
        """P1 with its RFU bits (b4-b1) ignored; exactly one of b8-b5 must be set."""
        scope = _SCOPES.get(p1 & 0xF0)  # a dict, not the Enum call: on every GET STATUS
        if scope is None:
            raise DecodeError(f"GET STATUS P1 {p1:02X} is none of 80, 40, 20, 10")
        return scope

    @property
    def is_load_file(self) -> bool:
        return self in (StatusScope.LOAD_FILES, StatusScope.LOAD_FILES_AND_MODULES)


_SCOPES: dict[int, StatusScope] = {int(scope): scope for scope in StatusScope}


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One GET STATUS entry: the ISD, an application or Security Domain, or an Executable Load File."""

    aid: bytes
    lifecycle: int
    privileges: Privileges | None = None
    implicit_selection: tuple[int, ...] = ()
    load_file_aid: bytes | None = None
    sd_aid: bytes | None = None
    version: bytes | None = None
    modules: tuple[bytes, ...] = ()


def _default_tags(scope: StatusScope) -> tuple[int, ...]:
    if scope.is_load_file:
        # Table 11-37 lists CC too, but 11.4.3.1 only requires 4F and 9F70 (and 84 for P1 = 10); cards answer
        # without CC (GPShell's recorded SCP02/SCP03 traces), so the default does too. A tag list can ask for it.
        return (TAG_AID, TAG_LIFECYCLE, TAG_VERSION, TAG_MODULE_AID)
    return (TAG_AID, TAG_LIFECYCLE, TAG_PRIVILEGES, TAG_IMPLICIT_SELECTION, TAG_ELF_AID, TAG_SD_AID)


def encode_entry(
    entry: RegistryEntry, scope: StatusScope, *, tlv: bool = True, tag_list: Sequence[int] | None = None
) -> bytes:
    """One entry as the card returns it for ``scope`` (P1) in the P2=02 (``tlv``) or P2=00 format.

    ``tag_list`` (the ``5C`` search criterion) selects and orders the data objects of the ``E3`` template;
    tags the entry does not have are omitted (11.4.3.1 allows that).
    """
    if not tlv:
        privilege_byte = entry.privileges.to_bytes()[:1] if entry.privileges is not None else b"\x00"
        out = bytes((len(entry.aid),)) + entry.aid + bytes((entry.lifecycle,)) + privilege_byte
        if scope is StatusScope.LOAD_FILES_AND_MODULES:
            out += bytes((len(entry.modules),))
            for module in entry.modules:
                out += bytes((len(module),)) + module
        return out
    tags = tuple(tag_list) if tag_list is not None else _default_tags(scope)
    body = b""
    for tag in tags:
        if tag == TAG_AID:
            body += ber.tlv(TAG_AID, entry.aid)
        elif tag == TAG_LIFECYCLE:
            body += ber.tlv(TAG_LIFECYCLE, bytes((entry.lifecycle,)))
        elif tag == TAG_PRIVILEGES and entry.privileges is not None and not scope.is_load_file:
            body += ber.tlv(TAG_PRIVILEGES, entry.privileges.to_bytes())
        elif tag == TAG_IMPLICIT_SELECTION and not scope.is_load_file:
            body += b"".join(ber.tlv(TAG_IMPLICIT_SELECTION, bytes((p,))) for p in entry.implicit_selection)
        elif tag == TAG_ELF_AID and entry.load_file_aid is not None and not scope.is_load_file:
            body += ber.tlv(TAG_ELF_AID, entry.load_file_aid)
        elif tag == TAG_VERSION and entry.version is not None and scope.is_load_file:
            body += ber.tlv(TAG_VERSION, entry.version)
        elif tag == TAG_MODULE_AID and scope is StatusScope.LOAD_FILES_AND_MODULES:
            body += b"".join(ber.tlv(TAG_MODULE_AID, m) for m in entry.modules)
        elif tag == TAG_SD_AID and entry.sd_aid is not None:
            body += ber.tlv(TAG_SD_AID, entry.sd_aid)
    return ber.tlv(_TEMPLATE, body)


def _decode_template(value: bytes, base: int) -> RegistryEntry:
    items = parse_pairs(value, base=base)
    aid = first_value(items, TAG_AID)
    if aid is None:
        raise DecodeError("E3 template without an AID (4F)", base)
    lifecycle = first_value(items, TAG_LIFECYCLE)
    if lifecycle is None or len(lifecycle) != 1:
        raise DecodeError("E3 template without a one-byte life cycle state (9F70)", base)
    raw_privileges = first_value(items, TAG_PRIVILEGES)
    privileges = Privileges.from_bytes(raw_privileges) if raw_privileges is not None else None
    implicit: list[int] = []
    for tag, v in items:
        if tag == TAG_IMPLICIT_SELECTION:
            if len(v) != 1:
                raise DecodeError(f"implicit selection parameter (CF) is 1 byte, got {len(v)}", base)
            implicit.append(v[0])
    return RegistryEntry(
        aid=aid,
        lifecycle=lifecycle[0],
        privileges=privileges,
        implicit_selection=tuple(implicit),
        load_file_aid=first_value(items, TAG_ELF_AID),
        sd_aid=first_value(items, TAG_SD_AID),
        version=first_value(items, TAG_VERSION),
        modules=tuple(v for t, v in items if t == TAG_MODULE_AID),
    )


def _decode_legacy(data: bytes, scope: StatusScope) -> list[RegistryEntry]:
    entries: list[RegistryEntry] = []
    offset = 0

    def take(n: int, what: str) -> bytes:
        nonlocal offset
        if offset + n > len(data):
            raise DecodeError(f"truncated {what}", offset)
        chunk = bytes(data[offset : offset + n])
        offset += n
        return chunk

    while offset < len(data):
        aid = take(take(1, "AID length")[0], "AID")
        lifecycle = take(1, "life cycle")[0]
        privilege_byte = take(1, "privileges")
        modules: list[bytes] = []
        if scope is StatusScope.LOAD_FILES_AND_MODULES:
            for _ in range(take(1, "module count")[0]):
                modules.append(take(take(1, "module AID length")[0], "module AID"))
        privileges = None if scope.is_load_file else Privileges.from_bytes(privilege_byte)
        entries.append(RegistryEntry(aid, lifecycle, privileges, modules=tuple(modules)))
    return entries


def decode_status_response(data: bytes, p1: int, p2: int) -> list[RegistryEntry]:
    """Decode a GET STATUS response for the command's P1 and P2; raises DecodeError on malformed data."""
    scope = StatusScope.from_p1(p1)
    if not p2 & 0x02:
        return _decode_legacy(data, scope)
    entries: list[RegistryEntry] = []
    offset = 0
    for tag, value in parse_pairs(data):
        if tag != _TEMPLATE:
            raise DecodeError(f"expected an E3 template, got tag {tag:X}", offset)
        entries.append(_decode_template(value, offset))
        offset += len(ber.tlv(tag, value))
    return entries
