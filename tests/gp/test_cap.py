"""CAP file parsing and the Load File Data Block layout (JCVM 3.0.5 ch. 6; GP Card Specification 2.3.1, 11.6).

There is no independent CAP vector in ../shared/vectors: the CAP file is built here, component by component,
from the JCVM layouts, and the block is checked against the order JCVM 6.2 prescribes and the C4 / BER length
framing of GP 2.3.1 Table 11-58.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.gp.cap import CapComponent, CapFile, split_blocks

PACKAGE_AID = bytes.fromhex("A0000000620301")
APPLET_AIDS = (bytes.fromhex("A000000062030101"), bytes.fromhex("A00000006203010C01"))
FRAMEWORK_AID = bytes.fromhex("A0000000620101")


def component(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + len(body).to_bytes(2, "big") + body


def header(aid: bytes = PACKAGE_AID) -> bytes:
    # magic, CAP 2.1, flags (applets present), package_info (minor, major, AID length, AID)
    return component(1, b"\xde\xca\xff\xed" + b"\x01\x02" + b"\x04" + b"\x00\x01" + bytes((len(aid),)) + aid)


def applet(aids: tuple[bytes, ...] = APPLET_AIDS) -> bytes:
    body = bytes((len(aids),))
    for n, aid in enumerate(aids):
        body += bytes((len(aid),)) + aid + (0x10 + n).to_bytes(2, "big")
    return component(3, body)


def components(filler: int = 0, directory_size: int = 30) -> dict[str, bytes]:
    return {
        "Header": header(),
        "Directory": component(2, bytes(range(directory_size))),
        "Applet": applet(),
        "Import": component(4, b"\x01" + b"\x00\x01" + bytes((len(FRAMEWORK_AID),)) + FRAMEWORK_AID),
        "ConstantPool": component(5, b"\x00\x02" + bytes(8)),
        "Class": component(6, bytes(range(12))),
        "Method": component(7, b"\x00" + bytes((0x18, 0x8C, 0x00, 0x01, 0x7A)) * (1 + filler)),
        "StaticField": component(8, bytes(10)),
        "RefLocation": component(9, b"\x00\x01\x05\x00\x01\x07"),
        "Descriptor": component(11, b"\x01" + bytes(20)),
        "Debug": component(12, b"debug info"),
    }


def build_cap(parts: dict[str, bytes], folder: str = "com/example/hello/javacard") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        for name, data in parts.items():
            z.writestr(f"{folder}/{name}.cap", data)
    return out.getvalue()


def test_parse_aids_and_versions() -> None:
    cap = CapFile.from_bytes(build_cap(components()))
    assert cap.package_aid == PACKAGE_AID
    assert cap.package_version == (1, 0)
    assert cap.cap_version == (2, 1)
    assert cap.applet_aids == APPLET_AIDS
    assert [a.install_method_offset for a in cap.applets] == [0x10, 0x11]
    assert cap.imports == ((FRAMEWORK_AID, (1, 0)),)
    assert cap.package_name == "com.example.hello"


def test_load_file_data_block_order() -> None:
    parts = components()
    cap = CapFile.from_bytes(build_cap(parts))
    order = ["Header", "Directory", "Import", "Applet", "Class", "Method", "StaticField", "ConstantPool", "RefLocation"]
    # JCVM 6.2: Header, Directory, Import, Applet, Class, Method, StaticField, Export, ConstantPool, RefLocation.
    expected = b"".join(parts[n] for n in order)
    assert cap.load_file_data_block() == expected
    assert cap.load_file_data_block(include_descriptor=True) == expected + parts["Descriptor"]
    assert parts["Debug"] not in cap.load_file_data_block(include_descriptor=True)


@pytest.mark.parametrize(("filler", "directory_size", "size_bytes"), [(0, 0, 1), (0, 30, 2), (30, 30, 3)])
def test_load_file_c4_framing(filler: int, directory_size: int, size_bytes: int) -> None:
    cap = CapFile.from_bytes(build_cap(components(filler, directory_size)))
    block = cap.load_file_data_block()
    load_file = cap.load_file()
    n = len(block)
    # BER definite length (X.690 8.1.3): one byte below 128, else 81 nn, else 82 nnnn.
    assert (n < 0x80, 0x80 <= n < 0x100, 0x100 <= n < 0x10000)[size_bytes - 1]
    assert load_file[0] == 0xC4
    if size_bytes == 1:
        assert load_file[1] == n
    else:
        assert load_file[1] == 0x80 | (size_bytes - 1)
        assert int.from_bytes(load_file[2 : 1 + size_bytes], "big") == n
    assert len(load_file) == 1 + size_bytes + n
    assert load_file.endswith(block)
    assert cap.load_file_data_block_hash() == hashlib.sha256(block).digest()
    assert cap.load_file_data_block_hash("sha1") == hashlib.sha1(block).digest()


def test_applet_component_is_optional_for_libraries() -> None:
    parts = components()
    del parts["Applet"]
    cap = CapFile.from_bytes(build_cap(parts))
    assert cap.applets == ()
    assert CapComponent.APPLET not in cap.components


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("Method"), "lacks the component"),
        (lambda p: p.update(Header=header()[:-1]), "says"),
        (lambda p: p.update(Class=component(7, b"x")), "expected 6"),
        (lambda p: p.update(Header=component(1, b"\xca\xfe\xba\xbe" + bytes(8))), "DECAFFED"),
        (lambda p: p.update(Applet=component(3, b"\x01\x03abc\x00\x00")), "AID length"),
    ],
)
def test_malformed_cap_files(mutate: object, message: str) -> None:
    parts = components()
    assert callable(mutate)
    mutate(parts)
    with pytest.raises(DecodeError, match=message):
        CapFile.from_bytes(build_cap(parts))


def test_not_a_zip() -> None:
    with pytest.raises(DecodeError, match="zip"):
        CapFile.from_bytes(b"PK\x03\x04 not really")


def test_two_packages_refused() -> None:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as z:
        for folder in ("a/javacard", "b/javacard"):
            for name, data in components().items():
                z.writestr(f"{folder}/{name}.cap", data)
    with pytest.raises(DecodeError, match="more than one package"):
        CapFile.from_bytes(raw.getvalue())


@given(st.binary(min_size=1, max_size=3000), st.integers(1, 255))
def test_split_blocks_round_trip(data: bytes, size: int) -> None:
    blocks = split_blocks(data, size)
    assert b"".join(blocks) == data
    assert all(len(b) == size for b in blocks[:-1])
    assert 1 <= len(blocks[-1]) <= size


@given(st.binary(max_size=400))
def test_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        CapFile.from_bytes(raw)
    except DecodeError:
        pass


@given(st.dictionaries(st.sampled_from(list(components())), st.binary(max_size=40), max_size=5))
def test_corrupted_components_return_or_raise_decode_error(changes: dict[str, bytes]) -> None:
    parts = components()
    parts.update(changes)
    try:
        CapFile.from_bytes(build_cap(parts))
    except DecodeError:
        pass


def _patch_central(raw: bytes, offset: int, value: int, *, mask: bool = False) -> bytes:
    """Set byte ``offset`` of every central-directory entry (PKWARE APPNOTE 4.3.12) to ``value`` (or OR it)."""
    out = bytearray(raw)
    at = out.find(b"PK\x01\x02")
    while at >= 0:
        out[at + offset] = out[at + offset] | value if mask else value
        at = out.find(b"PK\x01\x02", at + 1)
    return bytes(out)


def _deflated_cap(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(f"com/example/hello/javacard/{name}.cap", data)
    return out.getvalue()


def test_version_needed_ff_is_a_decode_error() -> None:
    # zipfile raised NotImplementedError ("zip file version 25.5") while reading the central directory.
    with pytest.raises(DecodeError, match="NotImplementedError"):
        CapFile.from_bytes(_patch_central(build_cap(components()), 6, 0xFF))


def test_encrypted_entry_is_a_decode_error() -> None:
    # general purpose flag bit 0: zipfile raised RuntimeError ("password required for extraction").
    with pytest.raises(DecodeError, match=r"Header\.cap"):
        CapFile.from_bytes(_patch_central(build_cap(components()), 8, 0x01, mask=True))


def test_corrupted_deflate_stream_is_a_decode_error() -> None:
    # zlib.error ("Error -3 while decompressing data: invalid block type") escaped.
    raw = bytearray(_deflated_cap(components()))
    local = raw.find(b"PK\x03\x04")
    start = local + 30 + int.from_bytes(raw[local + 26 : local + 28], "little")
    start += int.from_bytes(raw[local + 28 : local + 30], "little")
    raw[start : start + 2] = b"\xff\xff"
    with pytest.raises(DecodeError, match="cannot read"):
        CapFile.from_bytes(bytes(raw))


def test_unknown_compression_method_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        CapFile.from_bytes(_patch_central(build_cap(components()), 10, 0x63))


def test_zip_bomb_is_refused_before_inflating_it_all() -> None:
    parts = components()
    parts["Debug"] = component(12, bytes(0xFFFF)) * 140  # ~9 MiB of zeros, a few KiB deflated
    raw = _deflated_cap(parts)
    assert len(raw) < 100_000
    with pytest.raises(DecodeError, match=r"Debug\.cap"):
        CapFile.from_bytes(raw)


def test_declared_size_smaller_than_the_stream_is_a_decode_error() -> None:
    parts = components()
    parts["Debug"] = component(12, bytes(60_000))
    raw = bytearray(_deflated_cap(parts))
    at = raw.find(b"PK\x01\x02")
    while at >= 0:  # uncompressed size (APPNOTE 4.3.12, offset 24) set to 10 for every entry
        raw[at + 24 : at + 28] = (10).to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 1)
    with pytest.raises(DecodeError):
        CapFile.from_bytes(bytes(raw))
