"""Java Card CAP files: read the components, the package and applet AIDs, and build the Load File Data Block.

A CAP file is a JAR (zip) holding one file per component, ``<package path>/javacard/<Name>.cap`` (Java Card
Virtual Machine Specification 3.0.5, chapter 6). Each component starts with a one-byte tag and a two-byte size
(6.1). The Load File Data Block sent with LOAD (GP Card Specification 2.3.1, 11.6.2.3 and Table 11-58: tag ``C4``
with a BER length) is the concatenation of the components in the order JCVM 6.2 prescribes for download:
Header, Directory, Import, Applet, Class, Method, StaticField, Export, ConstantPool, ReferenceLocation, then
(optional) Descriptor. The Debug component is never loaded.

Parsing takes the CAP file's bytes (no file access: the caller reads the file), and returns a value or raises
:class:`DecodeError`.
"""

from __future__ import annotations

import enum
import hashlib
import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gpchannel.codec.tlv import encode_length
from gpchannel.errors import DecodeError

__all__ = [
    "LOAD_ORDER",
    "AppletInfo",
    "CapComponent",
    "CapFile",
    "split_blocks",
]


class CapComponent(enum.IntEnum):
    """Component tags (JCVM 3.0.5, Table 6-1)."""

    HEADER = 1
    DIRECTORY = 2
    APPLET = 3
    IMPORT = 4
    CONSTANT_POOL = 5
    CLASS = 6
    METHOD = 7
    STATIC_FIELD = 8
    REFERENCE_LOCATION = 9
    EXPORT = 10
    DESCRIPTOR = 11
    DEBUG = 12

    @property
    def file_name(self) -> str:
        names = {
            CapComponent.STATIC_FIELD: "StaticField",
            CapComponent.REFERENCE_LOCATION: "RefLocation",
            CapComponent.CONSTANT_POOL: "ConstantPool",
        }
        return names.get(self, self.name.capitalize()) + ".cap"


LOAD_ORDER: tuple[CapComponent, ...] = (
    CapComponent.HEADER,
    CapComponent.DIRECTORY,
    CapComponent.IMPORT,
    CapComponent.APPLET,
    CapComponent.CLASS,
    CapComponent.METHOD,
    CapComponent.STATIC_FIELD,
    CapComponent.EXPORT,
    CapComponent.CONSTANT_POOL,
    CapComponent.REFERENCE_LOCATION,
)
"""The download order of JCVM 6.2 (Descriptor, when included, comes last)."""

_MANDATORY = (
    CapComponent.HEADER,
    CapComponent.DIRECTORY,
    CapComponent.IMPORT,
    CapComponent.CONSTANT_POOL,
    CapComponent.CLASS,
    CapComponent.METHOD,
    CapComponent.STATIC_FIELD,
    CapComponent.REFERENCE_LOCATION,
)
_MAGIC = b"\xde\xca\xff\xed"
_MAX_CAP_SIZE = 8 * 1024 * 1024
_MAX_INFLATED = 8 * 1024 * 1024
"""Bound on the decompressed size of all components together (a zip bomb stops here, whatever the headers say)."""
_ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,  # malformed archive, CRC mismatch
    zipfile.LargeZipFile,
    NotImplementedError,  # "version needed" or compression method zipfile does not handle
    RuntimeError,  # encrypted entry: "password required"
    zlib.error,  # corrupted deflate stream
    lzma.LZMAError,
    EOFError,  # stream ends early
    OSError,  # bzip2 "Invalid data stream", seeks out of the buffer
    ValueError,  # negative offsets, undecodable file names (UnicodeDecodeError)
    OverflowError,
)
"""Everything :mod:`zipfile` and its decompressors raise on hostile bytes; translated at one boundary."""


@contextmanager
def _zip_boundary(what: str) -> Iterator[None]:
    """Turn the exceptions of :mod:`zipfile` (and zlib, bz2, lzma under it) into :class:`DecodeError`."""
    try:
        yield
    except DecodeError:
        raise
    except _ZIP_ERRORS as exc:
        raise DecodeError(f"{what}: {type(exc).__name__}: {exc}", 0) from None


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """The entry's bytes, reading at most ``budget`` + 1 decompressed bytes whatever its header declares."""
    if info.file_size > budget:
        raise DecodeError(f"{info.filename} is {info.file_size} bytes; the components may total {_MAX_INFLATED}", 0)
    with archive.open(info) as stream:
        data = stream.read(budget + 1)
    if len(data) > budget:
        raise DecodeError(f"{info.filename} inflates past {_MAX_INFLATED} bytes (zip bomb?)", 0)
    return data


@dataclass(frozen=True, slots=True)
class AppletInfo:
    """One applet of the Applet component: its AID and install method offset."""

    aid: bytes
    install_method_offset: int


@dataclass(frozen=True, slots=True)
class CapFile:
    """A parsed CAP file. ``components`` maps each present component to its bytes (tag and size included)."""

    package_aid: bytes
    package_version: tuple[int, int]
    cap_version: tuple[int, int]
    applets: tuple[AppletInfo, ...]
    imports: tuple[tuple[bytes, tuple[int, int]], ...]
    components: dict[CapComponent, bytes]
    package_name: str = ""

    @property
    def applet_aids(self) -> tuple[bytes, ...]:
        return tuple(a.aid for a in self.applets)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CapFile:
        """Read a CAP file (zip). Component files are found by name under any ``.../javacard/`` folder."""
        if len(raw) > _MAX_CAP_SIZE:
            raise DecodeError(f"CAP file is {len(raw)} bytes; more than {_MAX_CAP_SIZE} is not a CAP file", 0)
        with _zip_boundary("not a CAP file (not a readable zip archive)"):
            archive = zipfile.ZipFile(io.BytesIO(raw))
            infos = archive.infolist()
        by_name: dict[str, zipfile.ZipInfo] = {}
        folders: set[str] = set()
        for info in infos:
            parts = info.filename.rsplit("/", 2)
            if len(parts) >= 2 and parts[-2] == "javacard" and parts[-1].endswith(".cap"):
                by_name[parts[-1]] = info
                folders.add(info.filename.rsplit("/", 1)[0])
        if len(folders) > 1:
            raise DecodeError(f"CAP file holds more than one package ({', '.join(sorted(folders))})", 0)
        components: dict[CapComponent, bytes] = {}
        budget = _MAX_INFLATED
        for component in CapComponent:
            info_ = by_name.get(component.file_name)
            if info_ is None:
                continue
            with _zip_boundary(f"cannot read {component.file_name}"):
                data = _read_bounded(archive, info_, budget)
            budget -= len(data)
            _check_component(component, data)
            components[component] = data
        missing = [c.file_name for c in _MANDATORY if c not in components]
        if missing:
            raise DecodeError(f"CAP file lacks the component(s) {', '.join(missing)}", 0)
        package_name = next(iter(folders)).removesuffix("/javacard").replace("/", ".") if folders else ""
        header = _parse_header(components[CapComponent.HEADER])
        applets = _parse_applets(components[CapComponent.APPLET]) if CapComponent.APPLET in components else ()
        imports = _parse_imports(components[CapComponent.IMPORT])
        return cls(header[2], header[1], header[0], applets, imports, components, package_name)

    def load_file_data_block(self, *, include_descriptor: bool = False) -> bytes:
        """The components in download order (JCVM 6.2), without the ``C4`` tag."""
        order = LOAD_ORDER + ((CapComponent.DESCRIPTOR,) if include_descriptor else ())
        return b"".join(self.components[c] for c in order if c in self.components)

    def load_file(self, *, include_descriptor: bool = False) -> bytes:
        """The Load File sent by LOAD: ``C4`` + BER length + Load File Data Block (GP 2.3.1, 11.6.2.3)."""
        block = self.load_file_data_block(include_descriptor=include_descriptor)
        return b"\xc4" + encode_length(len(block)) + block

    def load_file_data_block_hash(self, algorithm: str = "sha256", *, include_descriptor: bool = False) -> bytes:
        """The Load File Data Block Hash (GP 2.3.1, C.2): over the block without ``C4`` and its length."""
        if algorithm not in ("sha1", "sha256", "sha384", "sha512"):
            raise ValueError(f"hash algorithm must be sha1, sha256, sha384 or sha512, got {algorithm}")
        return hashlib.new(algorithm, self.load_file_data_block(include_descriptor=include_descriptor)).digest()


def split_blocks(load_file: bytes, block_size: int) -> list[bytes]:
    """Cut the Load File into LOAD data fields of at most ``block_size`` bytes (GP 2.3.1, 11.6)."""
    if not 1 <= block_size <= 65535:
        raise ValueError(f"block size must be 1..65535, got {block_size}")
    if not load_file:
        raise ValueError("nothing to load")
    return [load_file[i : i + block_size] for i in range(0, len(load_file), block_size)]


def _check_component(component: CapComponent, data: bytes) -> None:
    if len(data) < 3:
        raise DecodeError(f"{component.file_name} is {len(data)} bytes, shorter than its tag and size", 0)
    if data[0] != component:
        raise DecodeError(f"{component.file_name} starts with tag {data[0]}, expected {int(component)}", 0)
    size = int.from_bytes(data[1:3], "big")
    if size != len(data) - 3:
        raise DecodeError(f"{component.file_name} says {size} bytes but holds {len(data) - 3}", 1)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 3  # after tag and size
        self.what = what

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.data):
            raise DecodeError(f"{self.what} is truncated", self.offset)
        out = self.data[self.offset : self.offset + n]
        self.offset += n
        return bytes(out)

    def u1(self) -> int:
        return self.take(1)[0]

    def u2(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def package_info(self) -> tuple[bytes, tuple[int, int]]:
        minor, major, length = self.u1(), self.u1(), self.u1()
        if not 5 <= length <= 16:
            raise DecodeError(f"{self.what}: AID length {length} is not 5..16", self.offset - 1)
        return self.take(length), (major, minor)


def _parse_header(data: bytes) -> tuple[tuple[int, int], tuple[int, int], bytes]:
    """Header component (JCVM 6.4): magic, CAP version, flags, package_info."""
    r = _Reader(data, "Header component")
    if r.take(4) != _MAGIC:
        raise DecodeError("Header component lacks the DECAFFED magic", 3)
    minor, major = r.u1(), r.u1()
    r.u1()  # flags
    aid, version = r.package_info()
    return (major, minor), version, aid


def _parse_applets(data: bytes) -> tuple[AppletInfo, ...]:
    """Applet component (JCVM 6.5): count, then (AID length, AID, install method offset) per applet."""
    r = _Reader(data, "Applet component")
    out = []
    for _ in range(r.u1()):
        length = r.u1()
        if not 5 <= length <= 16:
            raise DecodeError(f"applet AID length {length} is not 5..16", r.offset - 1)
        out.append(AppletInfo(r.take(length), r.u2()))
    return tuple(out)


def _parse_imports(data: bytes) -> tuple[tuple[bytes, tuple[int, int]], ...]:
    """Import component (JCVM 6.6): count, then package_info per imported package."""
    r = _Reader(data, "Import component")
    return tuple(r.package_info() for _ in range(r.u1()))
