"""DAP blocks, the Load File structure and the LFDBH (GP 2.3.1 Table 11-58, C.2, C.3)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.crypto.asym import EcCurve, EcPublicKey
from gpchannel.crypto.ciphers import aes_cmac
from gpchannel.crypto.keys import KeyType
from gpchannel.errors import DecodeError
from gpchannel.gp.dap import (
    DapBlock,
    HashAlgorithm,
    LoadFileParts,
    build_load_file,
    dap_block,
    hash_algorithm_of,
    load_file_data_block_hash,
    verify_dap,
)
from gpchannel.gp.tokens import SymmetricKey
from tests.vectors import VectorCase, params

SD = bytes.fromhex("A000000151535041")


def test_load_file_structure_table_11_58() -> None:
    block = DapBlock(SD, b"\x11" * 8)
    raw = build_load_file(b"\xc4\x01", (block,))
    assert raw == bytes.fromhex("E2 14 4F 08 A000000151535041 C3 08 1111111111111111 C4 02 C401")
    parts = LoadFileParts.from_bytes(raw)
    assert parts == LoadFileParts((block,), b"\xc4\x01")
    assert LoadFileParts.from_bytes(bytes.fromhex("C4 01 00")) == LoadFileParts((), b"\x00")


@pytest.mark.parametrize(
    "raw",
    [
        "C4 01 00 E2 00",  # DAP block after the data block
        "E2 03 4F 01 00 C4 01 00",  # no signature, AID too short
        "E2 02 C3 00 C4 01 00",
        "",
        "C4 01 00 C4 01 00",
    ],
)
def test_bad_load_files(raw: str) -> None:
    with pytest.raises(DecodeError):
        LoadFileParts.from_bytes(bytes.fromhex(raw))


def test_lfdbh_algorithms() -> None:
    block = b"load file data block"
    assert load_file_data_block_hash(block, HashAlgorithm.SHA1) == hashlib.sha1(block).digest()
    for algorithm in HashAlgorithm:
        digest = load_file_data_block_hash(block, algorithm)
        assert hash_algorithm_of(digest) is algorithm
    with pytest.raises(ValueError, match="21-byte"):
        hash_algorithm_of(bytes(21))


@pytest.mark.parametrize("case", params("tokens/standards.json", "aes-cmac"))
def test_aes_dap_is_cmac_of_the_hash(case: VectorCase) -> None:
    """C.3 with an AES key: the DAP is the CMAC (B.2.2) of the LFDBH (RFC 4493 / SP 800-38B keys)."""
    key = SymmetricKey(KeyType.AES, case.hex_in("key"))
    lfdbh = load_file_data_block_hash(case.hex_in("msg"), HashAlgorithm.SHA256)
    block = dap_block(key, SD, lfdbh)
    assert block.signature == aes_cmac(case.hex_in("key"), lfdbh)
    assert verify_dap(key, lfdbh, block)
    assert not verify_dap(key, lfdbh[:-1] + bytes((lfdbh[-1] ^ 1,)), block)


@pytest.mark.parametrize("case", params("tokens/asym.json", "ecdsa"))
def test_ecdsa_dap_verification(case: VectorCase) -> None:
    """A DAP block carrying an ECDSA signature verifies against the message it signs (B.4.3, NIST CSRC example)."""
    key = EcPublicKey(EcCurve[case.inputs["curve"]], b"\x04" + case.hex_in("qx") + case.hex_in("qy"))
    block = DapBlock(SD, case.hex_in("r") + case.hex_in("s"))
    assert verify_dap(key, case.hex_in("msg"), block)
    assert not verify_dap(key, case.hex_in("msg")[:-1], block)


def test_des_dap_and_tampering() -> None:
    key = SymmetricKey(KeyType.DES3, bytes.fromhex("0123456789abcdeffedcba9876543210"))
    lfdbh = load_file_data_block_hash(b"CAP", HashAlgorithm.SHA1)
    block = dap_block(key, SD, lfdbh)
    assert len(block.signature) == 8 and verify_dap(key, lfdbh, block)
    assert not verify_dap(key, load_file_data_block_hash(b"CAQ", HashAlgorithm.SHA1), block)
    with pytest.raises(ValueError, match="Hash"):
        dap_block(key, SD, bytes(19))


@given(
    st.lists(st.tuples(st.binary(min_size=5, max_size=16), st.binary(min_size=1, max_size=130)), max_size=3),
    st.binary(min_size=1, max_size=300),
)
def test_load_file_roundtrip(blocks: list[tuple[bytes, bytes]], data: bytes) -> None:
    parts = LoadFileParts(tuple(DapBlock(a, s) for a, s in blocks), data)
    assert LoadFileParts.from_bytes(parts.to_bytes()) == parts


@given(st.binary(max_size=200))
def test_load_file_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        LoadFileParts.from_bytes(raw)
    except DecodeError:
        pass
