"""GlobalPlatform command builders and response parsers for the off-card entity (GP Card Specification 2.3.1,
chapter 11). Pure functions: they build :class:`CommandApdu` values and decode response data; sending them
(and wrapping them in a secure channel) is :mod:`gpchannel.host.session`'s job.

Every builder takes ``channel`` (the logical channel, 0-19) and returns a plain command; the secure channel
sets the secure-messaging bit when it wraps it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpchannel.codec import tlv as ber
from gpchannel.codec.apdu import CommandApdu, cla_for_channel
from gpchannel.codec.tlv import first_value, parse_pairs
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.gp.cap import split_blocks
from gpchannel.gp.card_data import CardRecognitionData
from gpchannel.gp.install import InstallForExtradition, InstallForInstall, InstallForLoad, InstallForPersonalization
from gpchannel.gp.registry_data import StatusScope

__all__ = [
    "INS_DELETE",
    "INS_GET_DATA",
    "INS_GET_STATUS",
    "INS_INSTALL",
    "INS_LOAD",
    "INS_SELECT",
    "INS_SET_STATUS",
    "INS_STORE_DATA",
    "Fci",
    "SetStatusScope",
    "delete_command",
    "get_data_command",
    "get_response_command",
    "get_status_command",
    "install_for_extradition_command",
    "install_for_install_command",
    "install_for_load_command",
    "install_for_personalization_command",
    "key_set_dgis",
    "load_commands",
    "select_command",
    "set_status_command",
    "store_data_commands",
]

INS_SELECT = 0xA4
INS_GET_DATA = 0xCA
INS_GET_STATUS = 0xF2
INS_DELETE = 0xE4
INS_INSTALL = 0xE6
INS_LOAD = 0xE8
INS_STORE_DATA = 0xE2
INS_SET_STATUS = 0xF0
INS_GET_RESPONSE = 0xC0


def _gp(ins: int, p1: int, p2: int, data: bytes = b"", *, channel: int = 0, le: int | None = 256) -> CommandApdu:
    return CommandApdu(cla_for_channel(0x80, channel), ins, p1, p2, data, le)


def _check_aid(aid: bytes, what: str = "AID") -> None:
    if not 5 <= len(aid) <= 16:
        raise ValueError(f"{what} must be 5 to 16 bytes, got {len(aid)}")


# -- SELECT (11.9) --------------------------------------------------------------------------------------------------
def select_command(aid: bytes | None = None, *, next_occurrence: bool = False, channel: int = 0) -> CommandApdu:
    """SELECT by name ``00 A4 04 P2 Lc AID 00`` (Table 11-60, 11-61: P2 00 first or only, 02 next occurrence).

    ``aid`` None (or empty) selects the ISD by its default empty-name rule.
    """
    if aid:
        if not 1 <= len(aid) <= 16:
            raise ValueError(f"a SELECT AID (or partial AID) is 1 to 16 bytes, got {len(aid)}")
    return CommandApdu(
        cla_for_channel(0x00, channel), INS_SELECT, 0x04, 0x02 if next_occurrence else 0x00, aid or b"", 256
    )


@dataclass(frozen=True, slots=True)
class Fci:
    """The SELECT response File Control Information (GP 2.3.1, 11.9.3.1, Table 11-62)."""

    aid: bytes
    card_data: CardRecognitionData | None = None
    lifecycle_data: bytes | None = None
    max_command_length: int | None = None
    proprietary: tuple[tuple[int, bytes], ...] = ()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Fci:
        """Decode ``6F (84 AID, A5 (73 ..., 9F6E ..., 9F65 ...))``; unknown tags are kept in ``proprietary``."""
        tlvs = parse_pairs(raw)
        if len(tlvs) != 1 or tlvs[0][0] != 0x6F:
            raise DecodeError("the FCI must be one 6F template", 0)
        inner = parse_pairs(tlvs[0][1])
        aid = first_value(inner, 0x84)
        if aid is None:
            raise DecodeError("the FCI lacks the application AID (84)", 0)
        a5 = first_value(inner, 0xA5)
        prop = parse_pairs(a5) if a5 is not None else []
        card_data = None
        t73 = first_value(prop, 0x73)
        if t73 is not None:
            card_data = CardRecognitionData.from_bytes(ber.tlv(0x73, t73))
        max_len = first_value(prop, 0x9F65)
        if max_len is not None and not 1 <= len(max_len) <= 2:
            raise DecodeError("9F65 (maximum length of data field in command message) is 1 or 2 bytes", 0)
        return cls(
            aid,
            card_data,
            first_value(prop, 0x9F6E),
            int.from_bytes(max_len, "big") if max_len is not None else None,
            tuple((t, v) for t, v in prop if t not in (0x73, 0x9F6E, 0x9F65)),
        )


# -- GET DATA (11.3), GET RESPONSE ----------------------------------------------------------------------------------
def get_data_command(tag: int, *, channel: int = 0) -> CommandApdu:
    """GET DATA ``80 CA P1 P2 00`` with the tag in P1-P2 (one-byte tags: P1 = 00)."""
    if not 0 < tag <= 0xFFFF:
        raise ValueError(f"a GET DATA tag is 1 or 2 bytes, got {tag:X}")
    return _gp(INS_GET_DATA, tag >> 8, tag & 0xFF, channel=channel)


def get_response_command(length: int, *, channel: int = 0) -> CommandApdu:
    """GET RESPONSE ``00 C0 00 00 Le`` (ISO 7816-4, 7.6.1), for 61xx answers."""
    return CommandApdu(cla_for_channel(0x00, channel), INS_GET_RESPONSE, 0, 0, b"", length or 256)


# -- GET STATUS (11.4) ----------------------------------------------------------------------------------------------
def get_status_command(
    scope: StatusScope, *, tlv: bool = True, next_occurrence: bool = False, aid_prefix: bytes = b"", channel: int = 0
) -> CommandApdu:
    """GET STATUS ``80 F2 P1 P2 Lc 4F len AID-prefix 00`` (Tables 11-33 to 11-35): P2 b2 = TLV format, b1 = next."""
    p2 = (0x02 if tlv else 0x00) | (0x01 if next_occurrence else 0x00)
    return _gp(INS_GET_STATUS, int(scope), p2, ber.tlv(0x4F, aid_prefix), channel=channel)


# -- DELETE (11.2) --------------------------------------------------------------------------------------------------
def delete_command(aid: bytes, *, related: bool = False, channel: int = 0) -> CommandApdu:
    """DELETE ``80 E4 00 P2 Lc 4F len AID 00``; P2 = 80 deletes the object and its related objects (Table 11-22)."""
    _check_aid(aid)
    return _gp(INS_DELETE, 0x00, 0x80 if related else 0x00, ber.tlv(0x4F, aid), channel=channel)


# -- INSTALL (11.5) -------------------------------------------------------------------------------------------------
def install_for_load_command(data: InstallForLoad, *, channel: int = 0) -> CommandApdu:
    """INSTALL [for load] ``80 E6 02 00`` (Table 11-41, 11-42)."""
    return _gp(INS_INSTALL, 0x02, 0x00, data.to_bytes(), channel=channel)


def install_for_install_command(
    data: InstallForInstall, *, make_selectable: bool = True, channel: int = 0
) -> CommandApdu:
    """INSTALL [for install] (P1 04) or [for install and make selectable] (P1 0C) (Table 11-41, 11-43)."""
    return _gp(INS_INSTALL, 0x0C if make_selectable else 0x04, 0x00, data.to_bytes(), channel=channel)


def install_for_extradition_command(data: InstallForExtradition, *, channel: int = 0) -> CommandApdu:
    """INSTALL [for extradition] ``80 E6 10 00`` (Table 11-41, 11-45)."""
    return _gp(INS_INSTALL, 0x10, 0x00, data.to_bytes(), channel=channel)


def install_for_personalization_command(application_aid: bytes, *, channel: int = 0) -> CommandApdu:
    """INSTALL [for personalization] ``80 E6 20 00`` (Table 11-47): STORE DATA then goes to that application."""
    _check_aid(application_aid, "application AID")
    return _gp(INS_INSTALL, 0x20, 0x00, InstallForPersonalization(application_aid).to_bytes(), channel=channel)


# -- LOAD (11.6) ----------------------------------------------------------------------------------------------------
def load_commands(load_file: bytes, block_size: int, *, channel: int = 0) -> list[CommandApdu]:
    """LOAD ``80 E8 P1 P2`` per block: P1 80 on the last block, 00 before; P2 the block number (Table 11-57).

    ``load_file`` is the whole Load File (``C4`` + length + Load File Data Block, optionally after DAP blocks).
    At most 256 blocks fit, since P2 is one byte.
    """
    blocks = split_blocks(load_file, block_size)
    if len(blocks) > 256:
        raise ValueError(f"{len(blocks)} LOAD blocks of {block_size} bytes; P2 numbers at most 256 blocks")
    last = len(blocks) - 1
    return [_gp(INS_LOAD, 0x80 if n == last else 0x00, n, b, channel=channel) for n, b in enumerate(blocks)]


# -- STORE DATA (11.11) ---------------------------------------------------------------------------------------------
def store_data_commands(blocks: Sequence[bytes], p1: int = 0x00, *, channel: int = 0) -> list[CommandApdu]:
    """STORE DATA ``80 E2 P1 P2`` per block: P1 b8 set on the last block, P2 the block number (Table 11-82, 11-83).

    ``p1`` gives b7-b1 (encryption and structure bits); b8 is computed.
    """
    if not blocks:
        raise ValueError("STORE DATA needs at least one block")
    if len(blocks) > 256:
        raise ValueError("at most 256 STORE DATA blocks are numbered by P2")
    last = len(blocks) - 1
    base = p1 & 0x7F
    return [
        _gp(INS_STORE_DATA, base | (0x80 if n == last else 0), n, bytes(b), channel=channel)
        for n, b in enumerate(blocks)
    ]


def _dgi(dgi: int, value: bytes) -> bytes:
    size = bytes((len(value),)) if len(value) < 0xFF else b"\xff" + len(value).to_bytes(2, "big")
    return dgi.to_bytes(2, "big") + size + value


def key_set_dgis(keys: StaticKeys, encrypt: Callable[[bytes], bytes]) -> bytes:
    """STORE DATA content of a key set in DGI format (GP 2.3.1 11.11.4, Tables 11-91 to 11-93): one ``00B9``
    with a control reference template ``B9`` per key (usage 95, type 80, length 81, id 82, KVN 83, KCV 84),
    then one ``8113`` per key, enciphered with ``encrypt`` (the channel's DEK). Send with P1 b4-b5 = DGI
    format and b6-b7 = encrypted (P1 ``68``); this is how a new SSD gets its first keys through the ISD."""
    crts, values = b"", b""
    for key_id, (key, check) in enumerate(zip((keys.enc, keys.mac, keys.dek), keys.kcvs(), strict=True), start=1):
        body = (
            ber.tlv(0x95, b"\x18")
            + ber.tlv(0x80, bytes((keys.key_type.value,)))
            + ber.tlv(0x81, bytes((len(key),)))
            + ber.tlv(0x82, bytes((key_id,)))
            + ber.tlv(0x83, bytes((keys.kvn,)))
            + ber.tlv(0x84, check)
        )
        crts += ber.tlv(0xB9, body)
        values += _dgi(0x8113, encrypt(key))
    return _dgi(0x00B9, crts) + values


# -- SET STATUS (11.10) ---------------------------------------------------------------------------------------------
class SetStatusScope(enum.IntEnum):
    """P1 of SET STATUS (Table 11-78)."""

    ISD = 0x80
    APPLICATION = 0x40
    SD_AND_APPLICATIONS = 0x60


def set_status_command(scope: SetStatusScope, state: int, aid: bytes = b"", *, channel: int = 0) -> CommandApdu:
    """SET STATUS ``80 F0 P1 state [Lc AID]`` (Tables 11-78, 11-79); the AID is required unless the ISD is meant."""
    if not 0 <= state <= 0xFF:
        raise ValueError(f"a life cycle state is a byte, got {state}")
    if scope is not SetStatusScope.ISD or aid:
        _check_aid(aid)
    return _gp(INS_SET_STATUS, int(scope), state, aid, channel=channel)
