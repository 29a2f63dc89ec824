"""DAP blocks and the Load File Data Block Hash (GP Card Specification 2.3.1, 11.6.2.3 Table 11-58; C.2; C.3).

A Load File is BER-TLV: zero or more DAP blocks ``E2 { 4F <SD AID>, C3 <signature> }``, then the Load File
Data Block ``C4`` (or the ciphered ``D4``, not handled here). The Load File Data Block Hash (LFDBH) is a
digest of the ``C4`` value (without tag and length); SHA-1, SHA-256, SHA-384 or SHA-512, recognised by its
length (C.2, Table C-3). A DAP is the signature of the LFDBH (not of the block itself) by the Security Domain
named in the block: retail MAC, CMAC, RSA Scheme 1/2 or ECDSA according to its key (C.3), the same signature
functions as tokens (:mod:`gpchannel.gp.tokens`).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from gpchannel.codec.tlv import first_value, parse_pairs, tlv
from gpchannel.errors import DecodeError
from gpchannel.gp.tokens import SigningKey, VerificationKey, sign, verify

__all__ = [
    "DapBlock",
    "HashAlgorithm",
    "LoadFileParts",
    "build_load_file",
    "dap_block",
    "hash_algorithm_of",
    "load_file_data_block_hash",
    "verify_dap",
]

TAG_DAP_BLOCK = 0xE2
TAG_SD_AID = 0x4F
TAG_SIGNATURE = 0xC3
TAG_DATA_BLOCK = 0xC4
TAG_CIPHERED_BLOCK = 0xD4
TAG_ICV = 0xD3


class HashAlgorithm(enum.Enum):
    """LFDBH algorithms (B.5; Table C-3), by their digest length."""

    SHA1 = 20
    SHA256 = 32
    SHA384 = 48
    SHA512 = 64

    @property
    def hashlib_name(self) -> str:
        return self.name.lower()


def hash_algorithm_of(digest: bytes) -> HashAlgorithm:
    """The algorithm of an LFDBH, detected by its length (C.2 allows it); ValueError for another length."""
    try:
        return HashAlgorithm(len(digest))
    except ValueError:
        raise ValueError(f"a {len(digest)}-byte Load File Data Block Hash is no SHA-1/SHA-2 digest") from None


def load_file_data_block_hash(block: bytes, algorithm: HashAlgorithm = HashAlgorithm.SHA256) -> bytes:
    """The LFDBH of a Load File Data Block (the ``C4`` value, C.2)."""
    return hashlib.new(algorithm.hashlib_name, block).digest()


@dataclass(frozen=True, slots=True)
class DapBlock:
    """One DAP block (Table 11-58): the verifying Security Domain's AID and the Load File Data Block Signature."""

    sd_aid: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not 5 <= len(self.sd_aid) <= 16:
            raise ValueError(f"a Security Domain AID is 5 to 16 bytes, got {len(self.sd_aid)}")
        if not self.signature:
            raise ValueError("a DAP block needs a signature")

    def to_bytes(self) -> bytes:
        return tlv(TAG_DAP_BLOCK, tlv(TAG_SD_AID, self.sd_aid) + tlv(TAG_SIGNATURE, self.signature))

    @classmethod
    def from_value(cls, value: bytes) -> DapBlock:
        """The block from the value of an ``E2`` TLV; raises DecodeError."""
        items = parse_pairs(value)
        aid, signature = first_value(items, TAG_SD_AID), first_value(items, TAG_SIGNATURE)
        if aid is None or signature is None or not 5 <= len(aid) <= 16 or not signature:
            raise DecodeError("a DAP block holds a Security Domain AID (4F, 5-16 bytes) and a signature (C3)", 0)
        return cls(aid, signature)

    @classmethod
    def from_bytes(cls, raw: bytes) -> DapBlock:
        items = parse_pairs(raw)
        if len(items) != 1 or items[0][0] != TAG_DAP_BLOCK:
            raise DecodeError("a DAP block is one E2 data object", 0)
        return cls.from_value(items[0][1])


@dataclass(frozen=True, slots=True)
class LoadFileParts:
    """A Load File split into its DAP blocks and its Load File Data Block (Table 11-58)."""

    dap_blocks: tuple[DapBlock, ...]
    data_block: bytes
    ciphered: bool = False

    @classmethod
    def from_bytes(cls, raw: bytes) -> LoadFileParts:
        """DAP blocks first, then one ``C4`` (or ``D4`` with an optional ``D3`` ICV); raises DecodeError."""
        items = parse_pairs(raw)
        blocks: list[DapBlock] = []
        n = 0
        while n < len(items) and items[n][0] == TAG_DAP_BLOCK:
            blocks.append(DapBlock.from_value(items[n][1]))
            n += 1
        rest = items[n:]
        tags = [tag for tag, _ in rest]
        if tags == [TAG_DATA_BLOCK]:
            return cls(tuple(blocks), rest[0][1])
        if tags in ([TAG_CIPHERED_BLOCK], [TAG_ICV, TAG_CIPHERED_BLOCK]):
            return cls(tuple(blocks), rest[-1][1], ciphered=True)
        raise DecodeError("a Load File is DAP blocks (E2) then one Load File Data Block (C4 or D4)", 0)

    def to_bytes(self) -> bytes:
        tag = TAG_CIPHERED_BLOCK if self.ciphered else TAG_DATA_BLOCK
        return b"".join(b.to_bytes() for b in self.dap_blocks) + tlv(tag, self.data_block)


def build_load_file(data_block: bytes, dap_blocks: tuple[DapBlock, ...] = ()) -> bytes:
    """The Load File for LOAD: the DAP blocks, then ``C4`` with the Load File Data Block."""
    return LoadFileParts(dap_blocks, data_block).to_bytes()


def dap_block(key: SigningKey, sd_aid: bytes, data_hash: bytes) -> DapBlock:
    """Sign the LFDBH for the Security Domain ``sd_aid`` (C.3) and wrap it in a DAP block."""
    hash_algorithm_of(data_hash)
    return DapBlock(sd_aid, sign(key, data_hash))


def verify_dap(key: VerificationKey, data_hash: bytes, block: DapBlock) -> bool:
    """True when the DAP block's signature is the verifying key's signature of the LFDBH (C.3)."""
    return verify(key, data_hash, block.signature)
