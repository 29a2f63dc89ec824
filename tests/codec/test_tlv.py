"""BER-TLV (ISO/IEC 7816-4:2013, 5.2.2; X.690, 8.1; GP Card Specification 2.3.1, 11.1.11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.tlv import (
    TagClass,
    Tlv,
    decode_length,
    encode_length,
    encode_tag,
    find,
    first_value,
    parse_all,
    parse_one,
    parse_pairs,
    tlv,
)
from gpchannel.errors import DecodeError

# -- strategies -----------------------------------------------------------------------------------------------


@st.composite
def tags(draw: st.DrawFn, constructed: bool | None = None) -> int:
    """Valid 1-, 2- and 3-byte tags, with the constructed bit as asked."""
    cls_bits = draw(st.integers(0, 3)) << 6
    if constructed is None:
        constructed = draw(st.booleans())
    first = cls_bits | (0x20 if constructed else 0)
    size = draw(st.integers(1, 3))
    if size == 1 or first | 0x1F == 0xFF:  # FF is padding (ISO 7816-4), so private constructed tags are 1 byte
        return first | draw(st.integers(1 if first == 0 else 0, 30))
    if size == 2:
        return ((first | 0x1F) << 8) | draw(st.integers(1, 127))
    return ((first | 0x1F) << 16) | (draw(st.integers(0x81, 0xFF)) << 8) | draw(st.integers(0, 127))


def tlv_trees() -> st.SearchStrategy[Tlv]:
    leaves = st.builds(Tlv, tags(constructed=False), st.binary(max_size=300))
    return st.recursive(
        leaves,
        lambda kids: st.builds(Tlv.build, tags(constructed=True), st.lists(kids, max_size=4)),
        max_leaves=12,
    )


def _same_tree(a: Tlv, b: Tlv) -> None:
    assert a == b
    if a.constructed:
        for x, y in zip(a.children(), b.children(), strict=True):
            _same_tree(x, y)


# -- round trips ----------------------------------------------------------------------------------------------


@given(tlv_trees())
def test_round_trip_nested(item: Tlv) -> None:
    raw = item.to_bytes()
    back = Tlv.from_bytes(raw)
    _same_tree(back, item)
    assert back.to_bytes() == raw


@given(st.lists(tlv_trees(), max_size=5))
def test_parse_all_round_trip(items: list[Tlv]) -> None:
    raw = b"".join(i.to_bytes() for i in items)
    assert parse_all(raw) == items
    padded = b"\x00\xff" + b"\x00".join(i.to_bytes() for i in items) + b"\xff\xff"
    assert parse_all(padded, skip_padding=True) == items


@given(st.integers(0, 0xFFFFFF))
def test_length_round_trip(n: int) -> None:
    raw = encode_length(n)
    assert decode_length(raw + b"\xaa") == (n, len(raw))
    assert len(raw) == (1 if n < 0x80 else 2 if n <= 0xFF else 3 if n <= 0xFFFF else 4)


# -- the fuzz rule ---------------------------------------------------------------------------------------------


@given(st.binary(max_size=200), st.booleans())
def test_decoders_return_value_or_decode_error(raw: bytes, skip: bool) -> None:
    try:
        items = parse_all(raw, skip_padding=skip)
    except DecodeError as e:
        assert e.offset is not None and 0 <= e.offset <= len(raw)
    else:
        for item in items:
            for node in _walk_tolerant(item):
                assert Tlv.from_bytes(node.to_bytes()) == node
    try:
        one = Tlv.from_bytes(raw)
    except DecodeError as e:
        assert e.offset is not None
    else:
        # Canonical re-encoding: equal, or shorter when the input used a non-minimal long length form.
        assert Tlv.from_bytes(one.to_bytes()) == one
        assert len(one.to_bytes()) <= len(raw)


def _walk_tolerant(item: Tlv) -> list[Tlv]:
    """``walk`` that treats a malformed constructed value as a leaf (it may raise only DecodeError)."""
    out = [item]
    if item.constructed:
        try:
            kids = item.children()
        except DecodeError:
            return out
        for k in kids:
            out += _walk_tolerant(k)
    return out


@given(tlv_trees())
def test_every_truncation_is_detected(item: Tlv) -> None:
    """Fed a byte at a time, no strict prefix of an encoding decodes: the length always tells it is short."""
    raw = item.to_bytes()
    for n in range(len(raw)):
        with pytest.raises(DecodeError) as info:
            Tlv.from_bytes(raw[:n])
        assert info.value.offset is not None and info.value.offset <= n


@given(st.binary(max_size=60))
def test_nested_fuzz(value: bytes) -> None:
    """Random values under a constructed tag: children(), find() and walk() raise DecodeError or work."""
    item = Tlv(0xE3, value)
    try:
        list(item.walk())
        item.find(0x4F)
    except DecodeError:
        pass


# -- known encodings -------------------------------------------------------------------------------------------


def test_gp_registry_entry() -> None:
    """A GET STATUS entry (GP 2.3.1, Table 11-36): E3 { 4F aid, 9F70 life cycle, C5 privileges }."""
    raw = bytes.fromhex("E3104F07A00000015100009F7001078C00")  # outer length 16, 15 bytes follow
    with pytest.raises(DecodeError, match="truncated value") as info:
        Tlv.from_bytes(raw)
    assert info.value.offset == 2
    raw = tlv(0xE3, tlv(0x4F, bytes.fromhex("A0000001510000")), tlv(0x9F70, b"\x07"), tlv(0xC5, b"\x9e\x00\x00"))
    assert raw.hex().upper() == "E3124F07A00000015100009F700107C5039E0000"
    entry = Tlv.from_bytes(raw)
    assert entry.constructed and entry.tag_class is TagClass.PRIVATE
    aid = entry.find(0x4F)
    assert aid is not None and aid.value.hex() == "a0000001510000" and not aid.constructed
    lc = find([entry], 0x9F70)
    assert lc is not None and lc.value == b"\x07" and lc.tag_bytes == b"\x9f\x70"
    assert entry.find(0x42) is None
    assert [t.tag for t in entry.walk()] == [0xE3, 0x4F, 0x9F70, 0xC5]
    assert str(aid) == "4F[7]=A0000001510000"


def test_nested_find_depth_first() -> None:
    raw = tlv(0x66, tlv(0x73, tlv(0x06, b"\x01"), tlv(0x60, tlv(0x06, b"\x02"))), tlv(0x06, b"\x03"))
    top = Tlv.from_bytes(raw)
    hit = top.find(0x06)
    assert hit is not None and hit.value == b"\x01"
    assert [t.value for t in top.walk() if t.tag == 0x06] == [b"\x01", b"\x02", b"\x03"]
    assert Tlv.build(0x66, top.children()) == top


@pytest.mark.parametrize(
    ("n", "wire"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"), (0xFFFF, "82FFFF"),
     (0x10000, "83010000"), (0xFFFFFF, "83FFFFFF")],
)  # fmt: skip
def test_encode_length(n: int, wire: str) -> None:
    assert encode_length(n) == bytes.fromhex(wire)


def test_long_values() -> None:
    for n in (127, 128, 255, 256, 70000):
        item = Tlv(0x53, bytes(n))
        assert Tlv.from_bytes(item.to_bytes()) == item


def test_non_minimal_length_accepted() -> None:
    """ISO 7816-4, Table 8 lists 81 00-FF: a long form longer than needed is valid BER."""
    assert Tlv.from_bytes(bytes.fromhex("5A8102AABB")) == Tlv(0x5A, b"\xaa\xbb")
    assert Tlv.from_bytes(bytes.fromhex("5A820001AA")).to_bytes() == bytes.fromhex("5A01AA")


@pytest.mark.parametrize(
    ("tag", "wire"),
    [(0x4F, "4F"), (0x9F70, "9F70"), (0xBF0C, "BF0C"), (0x5F20, "5F20"), (0x7F21, "7F21"), (0x1F1F, "1F1F"),
     (0xDF8101, "DF8101"), (0x9F7F, "9F7F"), (0x9F02, "9F02")],
)  # fmt: skip
def test_encode_tag(tag: int, wire: str) -> None:
    assert encode_tag(tag) == bytes.fromhex(wire)
    assert Tlv(tag).tag_bytes == bytes.fromhex(wire)


@pytest.mark.parametrize(
    "tag",
    [0, 0x00, 0xFF, 0x1F, 0x9F, 0x9F80, 0x5F00, 0x9F8101 + 0x80, 0x4F4F, 0x9F8180, 0x9F81818101, -1, 0x1000000],
)
def test_invalid_tags(tag: int) -> None:
    with pytest.raises(ValueError, match="tag"):
        Tlv(tag)


@pytest.mark.parametrize(
    ("wire", "offset", "message"),
    [
        ("", 0, "truncated tag"),
        ("9F", 1, "truncated tag"),
        ("9F81", 2, "truncated tag"),
        ("9F818181", 0, "longer than 3"),
        ("9F8001", 0, "all zero"),
        ("00", 0, "padding"),
        ("FF0100", 0, "padding"),
        ("4F", 1, "length field missing"),
        ("4F80", 1, "indefinite"),
        ("4F84000000010A", 1, "too long"),
        ("4FFF", 1, "too long"),
        ("4F81", 1, "truncated length"),
        ("4F8200", 1, "truncated length"),
        ("4F0201", 2, "truncated value"),
        ("4F8102AA", 3, "truncated value"),
        ("4F00AA", 2, "trailing"),
        ("4F0000", 2, "trailing"),
    ],
)
def test_malformed(wire: str, offset: int, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as info:
        Tlv.from_bytes(bytes.fromhex(wire))
    assert info.value.offset == offset


def test_trailing_and_padding_policy() -> None:
    raw = bytes.fromhex("4F01AA") + bytes.fromhex("0000")
    with pytest.raises(DecodeError, match="trailing"):
        Tlv.from_bytes(raw)
    with pytest.raises(DecodeError, match="padding"):
        parse_all(raw)
    assert parse_all(raw, skip_padding=True) == [Tlv(0x4F, b"\xaa")]
    assert parse_all(b"") == [] and parse_all(b"\x00\xff", skip_padding=True) == []
    item, end = parse_one(raw)
    assert (item, end) == (Tlv(0x4F, b"\xaa"), 3)
    assert parse_one(bytes.fromhex("9000" + "4F01AA"), 2) == (Tlv(0x4F, b"\xaa"), 5)
    with pytest.raises(ValueError, match="outside"):
        parse_one(raw, 9)


def test_children_errors() -> None:
    with pytest.raises(ValueError, match="primitive"):
        Tlv(0x4F, b"\x01\x01\x00").children()
    assert Tlv(0x4F, b"\x01").find(0x01) is None
    bad = Tlv(0xE3, bytes.fromhex("4F05AA"))
    with pytest.raises(DecodeError) as info:
        bad.children()
    assert info.value.offset == 2  # within the value
    assert Tlv(0xE3, bytes.fromhex("004F01AA")).children(skip_padding=True) == [Tlv(0x4F, b"\xaa")]


def test_builder_and_limits() -> None:
    assert Tlv(0x4F, bytearray(b"\x01")).value.__class__ is bytes  # type: ignore[arg-type]
    assert tlv(0x80) == b"\x80\x00"
    assert tlv(0x80, b"\x01", b"\x02") == b"\x80\x02\x01\x02"
    with pytest.raises(ValueError, match="length"):
        encode_length(0x1000000)
    with pytest.raises(ValueError, match="length"):
        encode_length(-1)
    assert Tlv(0x8E).tag_class is TagClass.CONTEXT_SPECIFIC
    assert Tlv(0x61).tag_class is TagClass.APPLICATION and Tlv(0x61).constructed
    assert Tlv(0x06).tag_class is TagClass.UNIVERSAL and not Tlv(0x06).constructed


def test_pairs_search_one_level_and_shift_error_offsets() -> None:
    """The GlobalPlatform view: (tag, value) pairs; a constructed value is not searched (registry data, 11.4.2)."""
    pairs = parse_pairs(bytes.fromhex("A503 4F0101 4F02 0203"))
    assert pairs == [(0xA5, bytes.fromhex("4F0101")), (0x4F, b"\x02\x03")]
    assert first_value(pairs, 0x4F) == b"\x02\x03"
    assert first_value(pairs, 0x9F70) is None
    with pytest.raises(DecodeError) as raised:
        parse_pairs(bytes.fromhex("4F05 01"), base=10)
    assert raised.value.offset == 12
    assert str(raised.value).count("(at offset") == 1


def test_lenient_80_is_128_for_install_fields() -> None:
    """GP 2.3.1 11.5.2.3: in INSTALL's fields a single 80 is the length 128; BER-TLV refuses it (indefinite)."""
    assert decode_length(b"\x80", lenient_80=True) == (128, 1)
    with pytest.raises(DecodeError):
        decode_length(b"\x80")
