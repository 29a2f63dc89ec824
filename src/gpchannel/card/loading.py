"""INSTALL [for load] and LOAD on the card (GP Card Specification 2.3.1, 9.3.5, 11.5.2.3.1, 11.6; Appendix
C.2 for the Load File Data Block Hash).

The Load File arrives in numbered LOAD blocks (P2 = 00, 01, ...; P1 b8 on the last). Once complete it is
parsed as BER-TLV (Table 11-58): DAP blocks ``E2``, then the Load File Data Block ``C4`` (ciphered ``D4`` is
not supported). When INSTALL [for load] gave a hash, the hash of the ``C4`` value (SHA-1, SHA-256, SHA-384 or
SHA-512 by its length) must match; the DAP blocks are then verified (9.3.5, C.3, card/delegated.py), and a
load by a Delegated Management Security Domain answers its last LOAD with a Load Receipt (C.5.1). The ``C4``
value is read as Java Card CAP components (JCVM 6.2: tag u1, size u2): the Header gives the package AID and
version, the Applet component the Executable Module AIDs, which go into the registry with the new Executable
Load File.
"""

from __future__ import annotations

import hashlib

from gpchannel.card import delegated
from gpchannel.card.context import CardContext, ChannelContext, LoadContext
from gpchannel.card.state import Application, LoadFile
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.errors import (
    ConditionsNotSatisfied,
    DecodeError,
    FunctionNotSupported,
    IncorrectData,
    IncorrectP1P2,
    NotEnoughMemory,
    ReferencedDataNotFound,
)
from gpchannel.gp.dap import LoadFileParts
from gpchannel.gp.install import InstallForLoad
from gpchannel.gp.tokens import load_receipt_data

__all__ = ["MAX_LOAD_FILE", "begin_load", "load_block", "parse_cap_components"]

MAX_LOAD_FILE = 256 * 1024
_HASHES = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}


def begin_load(
    ctx: CardContext,
    channel: ChannelContext,
    sd: Application,
    data: InstallForLoad,
    combined: bool,
    token_part: bytes = b"",
) -> None:
    """Accept INSTALL [for load] (11.5.2.3.1): checks, then wait for LOAD blocks."""
    state = ctx.state
    if state.load_file(data.load_file_aid) is not None or state.application(data.load_file_aid) is not None:
        raise ConditionsNotSatisfied("a load file or application with this AID already exists")
    target = data.sd_aid or sd.aid
    owner = state.application(target)
    if owner is None or owner.sd is None:
        raise ReferencedDataNotFound("the Security Domain of INSTALL [for load] does not exist")
    if data.token and not data.load_file_hash:
        raise IncorrectData("a Load Token needs the Load File Data Block Hash (11.5.2.3.1, C.2)")
    if data.load_file_hash and len(data.load_file_hash) not in _HASHES:
        raise IncorrectData(f"a {len(data.load_file_hash)}-byte Load File Data Block Hash is no SHA-1/SHA-2 digest")
    channel.load = LoadContext(
        data.load_file_aid,
        target,
        data.load_file_hash,
        combined=combined,
        token_identifier=delegated.token_identifier(data.load_parameters) if data.token else None,
        token_part=token_part,
    )


def parse_cap_components(block: bytes) -> tuple[bytes | None, bytes, list[bytes]]:
    """(package AID, version (major, minor), applet AIDs) from a Load File Data Block of CAP components."""
    package_aid: bytes | None = None
    version = b""
    applets: list[bytes] = []
    offset = 0
    while offset + 3 <= len(block):
        tag = block[offset]
        size = int.from_bytes(block[offset + 1 : offset + 3], "big")
        info = block[offset + 3 : offset + 3 + size]
        if len(info) != size:
            raise DecodeError(f"CAP component {tag} is truncated", offset)
        if tag == 1 and size >= 10:  # Header: magic, minor, major, flags, package (minor, major, AID)
            if info[:4] != b"\xde\xca\xff\xed":
                raise DecodeError("CAP Header component without the DECAFFED magic", offset)
            aid_length = info[9]
            package_aid = bytes(info[10 : 10 + aid_length])
            version = bytes((info[8], info[7]))
        elif tag == 3 and size >= 1:  # Applet: count, then (AID length, AID, install method offset)
            p = 1
            for _ in range(info[0]):
                if p >= len(info):
                    raise DecodeError("CAP Applet component is truncated", offset)
                n = info[p]
                applets.append(bytes(info[p + 1 : p + 1 + n]))
                p += 1 + n + 2
        offset += 3 + size
    if offset != len(block):
        raise DecodeError("trailing bytes after the CAP components", offset)
    return package_aid, version, applets


def load_block(ctx: CardContext, channel: ChannelContext, command: CommandApdu) -> ResponseApdu:
    """One LOAD command (11.6): blocks strictly sequential from 00; the last one registers the load file."""
    load = channel.load
    if load is None:
        raise ConditionsNotSatisfied("LOAD without a preceding INSTALL [for load]")
    if command.p1 & 0x7F:
        raise IncorrectP1P2(f"LOAD P1 {command.p1:02X} has RFU bits set")
    if command.p2 != load.next_block:
        channel.load = None
        raise IncorrectP1P2(f"LOAD block {command.p2:02X}, expected {load.next_block:02X}; loading aborted")
    if len(load.buffer) + len(command.data) > MAX_LOAD_FILE:
        channel.load = None
        raise NotEnoughMemory("the load file exceeds the emulator's memory")
    load.buffer += command.data
    load.next_block += 1
    if not command.p1 & 0x80:
        if load.next_block > 0xFF:
            channel.load = None
            raise IncorrectP1P2("more than 256 LOAD blocks")
        return ResponseApdu(b"\x00")
    channel.load = None
    load_file = _check(ctx, load)
    performer = ctx.state.application(channel.selected) if channel.selected else None
    if performer is not None and load.combined and delegated.is_delegated(performer):
        channel.delegated_load = (load, load_file)  # registered by the final INSTALL, once its token verifies
        return ResponseApdu(b"\x00")
    ctx.state.load_files.append(load_file)
    if performer is None:
        return ResponseApdu(b"\x00")
    return ResponseApdu(
        delegated.confirm(
            ctx, performer, load.token_identifier, lambda cd: load_receipt_data(cd, load.load_file_aid, load.sd_aid)
        )
    )


def _check(ctx: CardContext, load: LoadContext) -> LoadFile:
    """Check the complete Load File (structure, LFDBH, DAPs, CAP) and return its registry entry."""
    try:
        parts = LoadFileParts.from_bytes(bytes(load.buffer))
    except DecodeError:
        raise IncorrectData("the Load File must be DAP blocks (E2) then one Load File Data Block (C4)") from None
    if parts.ciphered:
        raise FunctionNotSupported("ciphered Load File Data Blocks (D4) are not supported")
    block = parts.data_block
    if load.data_hash:
        digest = hashlib.new(_HASHES[len(load.data_hash)], block).digest()
        if not constant_time_equal(digest, load.data_hash):
            raise IncorrectData("the Load File Data Block Hash does not match the loaded data")
    delegated.check_daps(ctx, load.sd_aid, load.data_hash, parts)
    try:
        package_aid, version, modules = parse_cap_components(block)
    except DecodeError as exc:
        raise IncorrectData(f"the Load File Data Block is not a CAP: {exc}") from None
    if package_aid is not None and package_aid != load.load_file_aid:
        raise IncorrectData("the package AID in the CAP Header differs from INSTALL [for load]")
    return LoadFile(load.load_file_aid, load.sd_aid, modules, version, 0x01, load.data_hash, len(block))
