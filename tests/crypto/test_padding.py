"""ISO/IEC 9797-1 padding method 2 (GP 2.3.1, B.1.3 and B.2.3; Amendment D, 4.1.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.crypto.padding import pad80, unpad80
from gpchannel.errors import DecodeError


@pytest.mark.parametrize(
    ("data", "block", "padded"),
    [
        ("", 8, "8000000000000000"),
        ("01", 8, "0180000000000000"),
        ("01020304050607", 8, "0102030405060780"),
        ("0102030405060708", 8, "01020304050607088000000000000000"),
        ("", 16, "80000000000000000000000000000000"),
        ("000102030405060708090a0b0c0d0e", 16, "000102030405060708090a0b0c0d0e80"),
        ("80", 8, "8080000000000000"),
        ("8000", 8, "8000800000000000"),
    ],
)
def test_known(data: str, block: int, padded: str) -> None:
    assert pad80(bytes.fromhex(data), block) == bytes.fromhex(padded)
    assert unpad80(bytes.fromhex(padded), block) == bytes.fromhex(data)


@given(st.binary(max_size=100), st.sampled_from([8, 16]))
def test_round_trip(data: bytes, block: int) -> None:
    padded = pad80(data, block)
    assert len(padded) % block == 0
    assert 1 <= len(padded) - len(data) <= block
    assert padded.startswith(data)
    assert unpad80(padded, block) == data


@given(st.binary(max_size=64), st.sampled_from([8, 16]))
def test_unpad_returns_value_or_decode_error(raw: bytes, block: int) -> None:
    try:
        data = unpad80(raw, block)
    except DecodeError:
        return
    assert pad80(data, block) == raw  # only canonical padding is accepted


@pytest.mark.parametrize(
    ("padded", "block"),
    [
        ("", 8),  # empty
        ("01028000000000", 8),  # not a multiple of the block
        ("0000000000000000", 8),  # no 80
        ("0102030405060708", 8),  # no padding at all
        ("0102030405068001", 8),  # 80 not followed by zeros only
        ("01808000000000000000000000000000", 8),  # 80 then more than a block of zeros
        ("80000000000000000000000000000000", 8),  # a whole block of zeros after the 80
        ("0102030405060708090a0b0c0d0e0f10", 16),
        ("8000000000000000", 16),  # one DES block is not an AES block
    ],
)
def test_malformed(padded: str, block: int) -> None:
    with pytest.raises(DecodeError):
        unpad80(bytes.fromhex(padded), block)


@pytest.mark.parametrize("block", [0, -8, 256])
def test_block_size_checked(block: int) -> None:
    with pytest.raises(ValueError, match="block_size"):
        pad80(b"", block)
    with pytest.raises(ValueError, match="block_size"):
        unpad80(bytes(8), block)
