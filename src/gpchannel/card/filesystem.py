"""A small UICC file system for the emulator: the target of Remote File Management (ETSI TS 102 226, 6).

The tree (ETSI TS 102 221, 8): the MF 3F00 holding EF_ICCID 2FE2 (transparent, 10 bytes, 13.2), DF_TELECOM 7F10
(EF_ADN 6F3A, EF_SMS 6F3C, EF_MSISDN 6F40, linear fixed) and DF_GSM 7F20 (EF_IMSI 6F07, EF_SPN 6F46,
transparent). It lives in ``CardState.files`` (JSON: a nested ``{"fid", "type", "data" | "records",
"children"}`` tree); an empty value means the default tree, built from the card's ICCID.

Commands (TS 102 221, 11.1; CLA 00 or the GSM 11.11 class A0), all through :func:`process_file_command`:

* SELECT (A4): P1 00 by file identifier (the MF, the current DF, its children, its parent and the parent's DF
  children: 8.4.1), 03 the parent, 08 a path from the MF, 09 a path from the current DF; P2 04 (FCP, 11.1.1.3)
  or 0C / 00 (none). The FCP comes as a T=0 card gives it: ``61 xx`` (``9F xx`` under CLA A0), then GET
  RESPONSE (C0), as in the remote scripts of real cards (a SELECT followed by GET RESPONSE).
* READ BINARY (B0) / UPDATE BINARY (D6): offset in P1 P2 (b8 of P1 = 0; short file identifiers are not
  supported here, 6A81); an offset past the end is 6B00; a read of more than is left gives what is left with
  6282; an update past the end is 6700.
* READ RECORD (B2) / UPDATE RECORD (DC): P2 04 (absolute, P1 = record number, 0 = current), 02 next,
  03 previous; a missing record is 6A83; a length that is not the record length is 6700 (6Cxx for Le).
* STATUS (F2): the FCP of the current DF (P2 00) or nothing (P2 0C).

Errors: no EF selected 6986, a command for another structure 6981, a file not found 6A82.
Sans-I/O: the session (current DF and EF, a pending GET RESPONSE) is the caller's; the tree is plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import (
    CardError,
    DecodeError,
    FileNotFound,
    FunctionNotSupported,
    IncorrectP1P2,
    InsNotSupported,
    WrongLength,
)

__all__ = [
    "MF",
    "FileNode",
    "FileSession",
    "FileSystem",
    "FileType",
    "default_filesystem",
    "fcp",
    "iccid_bytes",
    "process_file_command",
]

MF = b"\x3f\x00"
SW_END_OF_FILE = 0x6282
SW_INCOMPATIBLE = 0x6981
SW_NO_CURRENT_EF = 0x6986
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_OFFSET = 0x6B00


class FileType(Enum):
    """File structures (TS 102 221, 8.2 / 8.3): dedicated files and the two EF structures kept here."""

    DF = "df"
    TRANSPARENT = "transparent"
    LINEAR_FIXED = "linear_fixed"


@dataclass(slots=True)
class FileNode:
    """A file: a DF with ``children``, a transparent EF with ``data``, or a linear fixed EF with ``records``."""

    fid: bytes
    type: FileType
    data: bytes = b""
    records: list[bytes] = field(default_factory=list)
    children: list[FileNode] = field(default_factory=list)

    @property
    def record_length(self) -> int:
        return len(self.records[0]) if self.records else 0

    def child(self, fid: bytes) -> FileNode | None:
        return next((c for c in self.children if c.fid == fid), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fid": self.fid.hex().upper(), "type": self.type.value}
        if self.type is FileType.DF:
            out["children"] = [c.to_dict() for c in self.children]
        elif self.type is FileType.TRANSPARENT:
            out["data"] = self.data.hex().upper()
        else:
            out["records"] = [r.hex().upper() for r in self.records]
        return out

    @classmethod
    def from_dict(cls, raw: object, where: str = "files") -> FileNode:
        """Parse the JSON form; :class:`DecodeError` names the place of anything malformed."""
        if not isinstance(raw, dict):
            raise DecodeError(f"{where}: expected an object")
        try:
            fid = bytes.fromhex(str(raw["fid"]))
            kind = FileType(raw["type"])
        except (KeyError, ValueError):
            raise DecodeError(f"{where}: needs a 2-byte hex fid and a type (df, transparent, linear_fixed)") from None
        if len(fid) != 2:
            raise DecodeError(f"{where}.fid: a file identifier is 2 bytes")
        node = cls(fid, kind)
        try:
            if kind is FileType.DF:
                node.children = [cls.from_dict(c, f"{where}/{fid.hex().upper()}") for c in raw.get("children", [])]
            elif kind is FileType.TRANSPARENT:
                node.data = bytes.fromhex(str(raw.get("data", "")))
            else:
                node.records = [bytes.fromhex(str(r)) for r in raw.get("records", [])]
        except (ValueError, TypeError):
            raise DecodeError(f"{where}/{fid.hex().upper()}: malformed content") from None
        if kind is FileType.LINEAR_FIXED and (
            not node.records or len({len(r) for r in node.records}) != 1 or not 1 <= node.record_length <= 255
        ):
            raise DecodeError(f"{where}/{fid.hex().upper()}: records must all have one length, 1..255")
        if len({c.fid for c in node.children}) != len(node.children):
            raise DecodeError(f"{where}/{fid.hex().upper()}: two children with the same file identifier")
        return node


@dataclass(slots=True)
class FileSystem:
    """The tree under the MF."""

    mf: FileNode

    def to_dict(self) -> dict[str, Any]:
        return self.mf.to_dict()

    @classmethod
    def from_dict(cls, raw: object) -> FileSystem:
        mf = FileNode.from_dict(raw)
        if mf.fid != MF or mf.type is not FileType.DF:
            raise DecodeError("files: the root must be the MF, a DF with identifier 3F00")
        return cls(mf)

    def resolve(self, path: list[bytes]) -> FileNode:
        """The file at ``path`` (file identifiers from the MF, the MF included)."""
        node = self.mf
        for fid in path[1:]:
            nxt = node.child(fid)
            if nxt is None:
                raise FileNotFound(f"no file {fid.hex().upper()}")
            node = nxt
        return node


def iccid_bytes(digits: str) -> bytes:
    """EF_ICCID content (TS 102 221, 13.2): the ICCID in swapped BCD, padded with F to 10 bytes."""
    if not digits.isdigit() or len(digits) > 20:
        raise ValueError("an ICCID is up to 20 decimal digits")
    padded = digits.ljust(20, "F")
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, 20, 2)))


def default_filesystem(iccid: str = "8988211000000000001") -> FileSystem:
    """The default tree, with EF_ICCID from ``iccid`` and empty (FF) records and data elsewhere."""

    def linear(fid: str, length: int, count: int) -> FileNode:
        return FileNode(bytes.fromhex(fid), FileType.LINEAR_FIXED, records=[b"\xff" * length] * count)

    telecom = FileNode(
        bytes.fromhex("7F10"),
        FileType.DF,
        children=[linear("6F3A", 30, 10), linear("6F3C", 176, 5), linear("6F40", 30, 2)],
    )
    gsm = FileNode(
        bytes.fromhex("7F20"),
        FileType.DF,
        children=[
            FileNode(bytes.fromhex("6F07"), FileType.TRANSPARENT, data=bytes.fromhex("08091010000000001F")),
            FileNode(bytes.fromhex("6F46"), FileType.TRANSPARENT, data=b"\xff" * 17),
        ],
    )
    iccid_ef = FileNode(bytes.fromhex("2FE2"), FileType.TRANSPARENT, data=iccid_bytes(iccid))
    return FileSystem(FileNode(MF, FileType.DF, children=[iccid_ef, telecom, gsm]))


@dataclass(slots=True)
class FileSession:
    """What is selected (TS 102 221, 8.4): the current DF as a path from the MF, the current EF, the current
    record, and response data waiting for GET RESPONSE. A new session starts at the MF."""

    df_path: list[bytes] = field(default_factory=lambda: [MF])
    ef: bytes | None = None
    record: int = 0
    pending: bytes = b""


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag, len(value))) + value


def fcp(node: FileNode) -> bytes:
    """The FCP template (TS 102 221, 11.1.1.3): file descriptor, identifier, life cycle (activated), size."""
    if node.type is FileType.DF:
        body = _tlv(0x82, b"\x78\x21") + _tlv(0x83, node.fid) + _tlv(0x8A, b"\x05")
    elif node.type is FileType.TRANSPARENT:
        size = len(node.data).to_bytes(2, "big")
        body = _tlv(0x82, b"\x41\x21") + _tlv(0x83, node.fid) + _tlv(0x8A, b"\x05") + _tlv(0x80, size)
    else:
        descriptor = b"\x42\x21" + node.record_length.to_bytes(2, "big") + bytes((len(node.records),))
        size = (node.record_length * len(node.records)).to_bytes(2, "big")
        body = _tlv(0x82, descriptor) + _tlv(0x83, node.fid) + _tlv(0x8A, b"\x05") + _tlv(0x80, size)
    return _tlv(0x62, body)


def process_file_command(fs: FileSystem, session: FileSession, command: CommandApdu) -> ResponseApdu:
    """Process one file command; raises :class:`CardError` (its SW) on refusal. Changes ``fs`` in place."""
    if command.cla not in (0x00, 0xA0) and not (command.ins == 0xF2 and command.cla == 0x80):
        raise CardError(f"CLA {command.cla:02X} is not a file management class", sw=0x6E00)
    ins = command.ins
    if ins != 0xC0:
        session.pending = b""
    if ins == 0xA4:
        return _select(fs, session, command)
    if ins == 0xC0:
        return _get_response(session, command)
    if ins == 0xF2:
        return _status(fs, session, command)
    if ins in (0xB0, 0xD6):
        return _binary(fs, session, command)
    if ins in (0xB2, 0xDC):
        return _record(fs, session, command)
    raise InsNotSupported(f"INS {ins:02X} is not a file command here")


def _get_response(session: FileSession, command: CommandApdu) -> ResponseApdu:
    if not session.pending:
        raise CardError("no response data waiting", sw=0x6985)
    n = command.le or 256
    data, session.pending = session.pending[:n], session.pending[n:]
    return ResponseApdu(data, 0x6100 | len(session.pending) if session.pending else 0x9000)


def _select(fs: FileSystem, session: FileSession, command: CommandApdu) -> ResponseApdu:
    p1, data = command.p1, command.data
    if command.p2 not in (0x00, 0x04, 0x0C):
        raise IncorrectP1P2(f"SELECT P2 {command.p2:02X} is not supported")
    current = session.df_path
    if p1 == 0x00:
        if len(data) != 2:
            raise WrongLength("SELECT by file identifier takes 2 bytes")
        path = _by_fid(fs, current, data)
    elif p1 == 0x03:
        if data:
            raise WrongLength("SELECT parent has no data")
        path = current[:-1] or [MF]
    elif p1 in (0x08, 0x09):
        if not data or len(data) % 2:
            raise WrongLength("a path is a sequence of 2-byte file identifiers")
        fids = [data[i : i + 2] for i in range(0, len(data), 2)]
        base = [MF] if p1 == 0x08 else list(current)
        path = base + fids
        if fids[0] == MF:
            raise IncorrectP1P2("a path from the MF does not repeat 3F00")
    else:
        raise IncorrectP1P2(f"SELECT P1 {p1:02X} is not supported")
    node = fs.resolve(path)
    if node.type is FileType.DF:
        session.df_path, session.ef = path, None
    else:
        session.df_path, session.ef = path[:-1], node.fid
    session.record = 0
    if command.p2 != 0x04 and command.cla != 0xA0:
        return ResponseApdu()
    session.pending = fcp(node)
    return ResponseApdu(sw=(0x9F00 if command.cla == 0xA0 else 0x6100) | len(session.pending))


def _by_fid(fs: FileSystem, current: list[bytes], fid: bytes) -> list[bytes]:
    """TS 102 221, 8.4.1: the files selectable by identifier from the current DF."""
    if fid == MF:
        return [MF]
    if fid == current[-1]:
        return list(current)
    here = fs.resolve(current)
    if here.child(fid) is not None:
        return [*current, fid]
    if len(current) > 1:
        parent_path = current[:-1]
        if fid == parent_path[-1]:
            return parent_path
        sibling = fs.resolve(parent_path).child(fid)
        if sibling is not None and sibling.type is FileType.DF:
            return [*parent_path, fid]
    raise FileNotFound(f"file {fid.hex().upper()} is not reachable from {current[-1].hex().upper()}")


def _current_ef(fs: FileSystem, session: FileSession, kind: FileType) -> FileNode:
    if session.ef is None:
        raise CardError("no EF is selected", sw=SW_NO_CURRENT_EF)
    node = fs.resolve([*session.df_path, session.ef])
    if node.type is not kind:
        raise CardError(f"the current EF is {node.type.value}, not {kind.value}", sw=SW_INCOMPATIBLE)
    return node


def _status(fs: FileSystem, session: FileSession, command: CommandApdu) -> ResponseApdu:
    if command.p1 not in (0x00, 0x01, 0x02) or command.p2 not in (0x00, 0x0C):
        raise IncorrectP1P2("STATUS takes P1 00..02 and P2 00 (FCP) or 0C (no data)")
    if command.p2 == 0x0C:
        return ResponseApdu()
    data = fcp(fs.resolve(session.df_path))
    return ResponseApdu(data[: command.le] if command.le else data)


def _binary(fs: FileSystem, session: FileSession, command: CommandApdu) -> ResponseApdu:
    if command.p1 & 0x80:
        raise FunctionNotSupported("short file identifiers are not supported by this file system")
    node = _current_ef(fs, session, FileType.TRANSPARENT)
    offset = command.p1 << 8 | command.p2
    if offset >= len(node.data):
        raise CardError(f"offset {offset} is past the end of the file ({len(node.data)} bytes)", sw=SW_WRONG_OFFSET)
    if command.ins == 0xB0:
        if command.data:
            raise WrongLength("READ BINARY has no data field")
        wanted = command.le or 256
        data = node.data[offset : offset + wanted]
        return ResponseApdu(data, SW_END_OF_FILE if len(data) < wanted and command.le is not None else 0x9000)
    if not command.data or offset + len(command.data) > len(node.data):
        raise WrongLength("UPDATE BINARY data must fit in the file")
    node.data = node.data[:offset] + command.data + node.data[offset + len(command.data) :]
    return ResponseApdu()


def _record_number(node: FileNode, session: FileSession, command: CommandApdu) -> int:
    mode, count = command.p2 & 0x07, len(node.records)
    if command.p2 & 0xF8:
        raise FunctionNotSupported("short file identifiers are not supported by this file system")
    if mode == 0x04:
        number = command.p1 or session.record
    elif mode == 0x02 and not command.p1:
        number = session.record + 1 if session.record else 1
    elif mode == 0x03 and not command.p1:
        number = session.record - 1 if session.record else count
    else:
        raise IncorrectP1P2(f"record mode P1 {command.p1:02X} P2 {command.p2:02X} is not supported")
    if not 1 <= number <= count:
        raise CardError(f"no record {number} (the file has {count})", sw=SW_RECORD_NOT_FOUND)
    return number


def _record(fs: FileSystem, session: FileSession, command: CommandApdu) -> ResponseApdu:
    node = _current_ef(fs, session, FileType.LINEAR_FIXED)
    number = _record_number(node, session, command)
    length = node.record_length
    if command.ins == 0xB2:
        if command.data:
            raise WrongLength("READ RECORD has no data field")
        if command.le is not None and command.le not in (length, 256):
            raise CardError(f"the record is {length} bytes", sw=0x6C00 | length)
        session.record = number
        return ResponseApdu(node.records[number - 1])
    if len(command.data) != length:
        raise WrongLength(f"UPDATE RECORD data must be the record length, {length}")
    node.records[number - 1] = command.data
    session.record = number
    return ResponseApdu()
