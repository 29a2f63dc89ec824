"""Delegated Management tokens and receipts (GP Card Specification 2.3.1, Appendix C.4, C.5; 11.1.6).

A **token** is the Card Issuer's signature over the command it authorizes (C.4): P1, P2, the length of the
command data without the token ("Lc", 1 byte up to 255, else 3 bytes ``00 xx xx``), then that data. For
INSTALL the data is the LV-coded field up to, and excluding, the token's length and value (Tables C-4 to C-8,
C-10 concatenates the two INSTALL commands of a combined load); for DELETE it is the ``4F`` AID and the
optional ``B6`` template, excluding the ``9E`` Delete Token (Table C-9).

A **receipt** is the card's proof of a delegated operation (C.5), a signature over the Confirmation Data
(Table 11-14: counter, Security Domain unique data, token identifier, token data digest) followed by the AIDs
of the operation (Tables C-11 to C-16). The response of the command carries the Confirmation (Table 11-13),
behind a BER length (Tables 11-25, 11-54, 11-59).

The signature follows the key (Table C-1): a DES key signs with the retail MAC (B.1.2.2, ICV zero, B.1.3
padding), an AES key with CMAC (B.2.2, 16 bytes), an RSA key with Scheme 1 or 2 (B.3), an ECC key with ECDSA
(B.4.3). Key version numbers: 70 token verification, 71 receipt generation, 73 DAP verification (11.1.8).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gpchannel.codec.tlv import decode_length, encode_length, tlv
from gpchannel.crypto.asym import EcCurve, EcPublicKey, PrivateKey, PublicKey, RsaPublicKey, rsa_public_key
from gpchannel.crypto.asym import verify as asym_verify
from gpchannel.crypto.ciphers import aes_cmac, constant_time_equal, retail_mac
from gpchannel.crypto.keys import KeyType
from gpchannel.crypto.padding import pad80
from gpchannel.errors import DecodeError
from gpchannel.gp.install import (
    InstallForExtradition,
    InstallForInstall,
    InstallForLoad,
    InstallForMakeSelectable,
    InstallForRegistryUpdate,
)

__all__ = [
    "KVN_DAP_VERIFICATION",
    "KVN_RECEIPT_GENERATION",
    "KVN_TOKEN_VERIFICATION",
    "TAG_DELETE_TOKEN",
    "Confirmation",
    "ConfirmationData",
    "SigningKey",
    "SymmetricKey",
    "TokenizedInstall",
    "VerificationKey",
    "combined_receipt_data",
    "combined_token_data",
    "delete_receipt_data",
    "delete_token_data",
    "extradition_receipt_data",
    "install_body",
    "install_receipt_data",
    "install_token_data",
    "load_receipt_data",
    "parse_public_key_data",
    "public_key_data",
    "registry_update_receipt_data",
    "sign",
    "split_delete_token",
    "split_install_token",
    "token_data",
    "verify",
    "with_delete_token",
]

KVN_TOKEN_VERIFICATION = 0x70
KVN_RECEIPT_GENERATION = 0x71
KVN_DAP_VERIFICATION = 0x73
TAG_DELETE_TOKEN = 0x9E

TokenizedInstall = (
    InstallForLoad | InstallForInstall | InstallForMakeSelectable | InstallForExtradition | InstallForRegistryUpdate
)


@dataclass(frozen=True, slots=True)
class SymmetricKey:
    """A DES (16-byte, 112-bit) or AES token / receipt / DAP key (Table C-1). The value stays out of the repr."""

    key_type: KeyType
    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        allowed = (16,) if self.key_type is KeyType.DES3 else (16, 24, 32)
        if len(self.value) not in allowed:
            raise ValueError(f"a {self.key_type.name} signature key is {allowed} bytes, got {len(self.value)}")


VerificationKey = SymmetricKey | RsaPublicKey | EcPublicKey
SigningKey = SymmetricKey | PrivateKey


def _mac(key: SymmetricKey, data: bytes) -> bytes:
    if key.key_type is KeyType.DES3:
        return retail_mac(key.value, pad80(data, 8))  # B.1.2.2 with the B.1.3 padding, ICV zero
    return aes_cmac(key.value, data)  # B.2.2


def sign(key: SigningKey, data: bytes) -> bytes:
    """The GP signature of ``data`` under ``key`` (C.3, C.4, C.5): retail MAC, CMAC, RSA or ECDSA by key."""
    if isinstance(key, SymmetricKey):
        return _mac(key, data)
    return key.sign(data)


def verify(key: VerificationKey, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``key``'s GP signature of ``data`` (MACs compared in constant time)."""
    if isinstance(key, SymmetricKey):
        return constant_time_equal(_mac(key, data), signature)
    return asym_verify(key, data, signature)


def _lc(n: int) -> bytes:
    """'Length of the following data fields' (C.4): 1 byte up to 255, else 3 bytes 00 01 00 - 00 FF FF."""
    if n <= 0xFF:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\x00" + n.to_bytes(2, "big")
    raise ValueError(f"command data of {n} bytes does not fit a token's length field")


def token_data(p1: int, p2: int, body: bytes) -> bytes:
    """P1 || P2 || Lc || data: the signed input of every token (C.4, Tables C-4 to C-9)."""
    return bytes((p1, p2)) + _lc(len(body)) + body


def install_body(variant: TokenizedInstall) -> bytes:
    """The INSTALL data field without the token length and token (what Tables C-4 to C-8 sign)."""
    return dataclasses.replace(variant, token=b"").to_bytes()[:-1]


def install_token_data(p1: int, p2: int, variant: TokenizedInstall) -> bytes:
    """The data an INSTALL token signs (C.4.1-C.4.5): P1, P2, Lc and the data field without the token."""
    return token_data(p1, p2, install_body(variant))


def combined_token_data(
    load_p1: int, load_p2: int, load: InstallForLoad, p1: int, p2: int, install: InstallForInstall
) -> bytes:
    """Table C-10: the INSTALL [for load] part then the INSTALL [for install and make selectable] part."""
    return install_token_data(load_p1, load_p2, load) + install_token_data(p1, p2, install)


def _token_length_encodings(n: int) -> list[bytes]:
    out = [encode_length(n)]
    if n == 0x80:
        out.append(b"\x80")  # the token length may code 128 on one byte (11.5.2.3.1)
    return out


def split_install_token(data: bytes, token: bytes) -> bytes:
    """The raw INSTALL data field before the token's length (the card signs what it received, byte for byte).

    Raises DecodeError when ``data`` does not end with the token's LV."""
    for length in _token_length_encodings(len(token)):
        tail = length + token
        if data.endswith(tail):
            return data[: len(data) - len(tail)]
    raise DecodeError("the INSTALL data does not end with its token", len(data))


def delete_token_data(p1: int, p2: int, body: bytes) -> bytes:
    """Table C-9: P1, P2, Lc and the DELETE data (``4F`` AID, optional ``B6``) without the ``9E`` token."""
    return token_data(p1, p2, body)


def with_delete_token(body: bytes, token: bytes) -> bytes:
    """The DELETE data field with its Delete Token appended (Table 11-23: ``9E`` L token)."""
    return body + tlv(TAG_DELETE_TOKEN, token)


def split_delete_token(data: bytes, token: bytes) -> bytes:
    """The DELETE data before the ``9E`` Delete Token, which must come last; raises DecodeError otherwise."""
    tail = tlv(TAG_DELETE_TOKEN, token)
    if not data.endswith(tail):
        raise DecodeError("the Delete Token (9E) must be the last data object", len(data))
    return data[: len(data) - len(tail)]


def _lv(value: bytes) -> bytes:
    if len(value) > 0xFF:
        raise ValueError(f"an LV value is at most 255 bytes, got {len(value)}")
    return bytes((len(value),)) + value


@dataclass(frozen=True, slots=True)
class ConfirmationData:
    """Confirmation Data (Table 11-14): counter, SD unique data (42 || 45 of the receipt SD), optional token
    identifier and token data digest."""

    counter: int
    sd_unique_data: bytes
    token_identifier: bytes | None = None
    token_data_digest: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.counter <= 0xFFFF:
            raise ValueError(f"the confirmation counter is 16 bits, got {self.counter}")
        if not 1 <= len(self.sd_unique_data) <= 0xFF:
            raise ValueError("SD unique data is 1 to 255 bytes")
        if self.token_data_digest is not None and self.token_identifier is None:
            raise ValueError("a token data digest follows a token identifier (Table 11-14)")

    def to_bytes(self) -> bytes:
        out = b"\x02" + self.counter.to_bytes(2, "big") + _lv(self.sd_unique_data)
        if self.token_identifier is not None:
            out += _lv(self.token_identifier)
        if self.token_data_digest is not None:
            out += _lv(self.token_data_digest)
        return out

    @classmethod
    def from_bytes(cls, raw: bytes) -> ConfirmationData:
        """Parse Table 11-14; raises DecodeError."""
        if len(raw) < 5 or raw[0] != 0x02:
            raise DecodeError("Confirmation Data starts with 02 and a 2-byte counter", 0)
        counter = int.from_bytes(raw[1:3], "big")
        fields: list[bytes] = []
        offset = 3
        while offset < len(raw):
            n = raw[offset]
            if offset + 1 + n > len(raw):
                raise DecodeError("a Confirmation Data field is truncated", offset)
            fields.append(bytes(raw[offset + 1 : offset + 1 + n]))
            offset += 1 + n
        if not fields or not fields[0] or len(fields) > 3:
            raise DecodeError("Confirmation Data holds SD unique data and at most two more fields", 3)
        return cls(
            counter,
            fields[0],
            fields[1] if len(fields) > 1 else None,
            fields[2] if len(fields) > 2 else None,
        )


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A confirmation in a response (Table 11-13): the receipt (possibly empty) and the Confirmation Data."""

    receipt: bytes
    data: ConfirmationData

    def to_bytes(self) -> bytes:
        """The response data field: the BER length of the confirmation, then it (Tables 11-25, 11-54, 11-59)."""
        body = encode_length(len(self.receipt)) + self.receipt + self.data.to_bytes()
        return encode_length(len(body)) + body

    @classmethod
    def from_response(cls, raw: bytes) -> Confirmation | None:
        """The confirmation of a response data field, or None for ``00`` (no confirmation); raises DecodeError."""
        size, start = decode_length(raw, 0)
        if start + size != len(raw):
            raise DecodeError(f"the confirmation length {size} does not match {len(raw) - start} bytes", 0)
        if size == 0:
            return None
        body = raw[start:]
        n, offset = decode_length(body, 0)
        if offset + n > len(body):
            raise DecodeError("the receipt is truncated", start + offset)
        try:
            data = ConfirmationData.from_bytes(bytes(body[offset + n :]))
        except DecodeError as exc:
            raise DecodeError(str(exc), start + offset + n + (exc.offset or 0)) from None
        return cls(bytes(body[offset : offset + n]), data)


def load_receipt_data(confirmation: ConfirmationData, load_file_aid: bytes, sd_aid: bytes) -> bytes:
    """Table C-11."""
    return confirmation.to_bytes() + _lv(load_file_aid) + _lv(sd_aid)


def install_receipt_data(confirmation: ConfirmationData, load_file_aid: bytes, application_aid: bytes) -> bytes:
    """Table C-12 (Install and Make Selectable Receipts)."""
    return confirmation.to_bytes() + _lv(load_file_aid) + _lv(application_aid)


def extradition_receipt_data(confirmation: ConfirmationData, old_sd: bytes, aid: bytes, new_sd: bytes) -> bytes:
    """Table C-13."""
    return confirmation.to_bytes() + _lv(old_sd) + _lv(aid) + _lv(new_sd)


def registry_update_receipt_data(
    confirmation: ConfirmationData,
    old_sd: bytes,
    application_aid: bytes,
    new_sd: bytes,
    privileges: bytes,
    parameters: bytes,
) -> bytes:
    """Table C-14 (SD AIDs empty unless the update extradites; privileges empty when unchanged)."""
    return (
        confirmation.to_bytes()
        + _lv(old_sd)
        + _lv(application_aid)
        + _lv(new_sd)
        + _lv(privileges)
        + encode_length(len(parameters))
        + parameters
    )


def delete_receipt_data(confirmation: ConfirmationData, aid: bytes) -> bytes:
    """Table C-15 (for a load file and its applications, only the load file AID)."""
    return confirmation.to_bytes() + _lv(aid)


def combined_receipt_data(
    confirmation: ConfirmationData, load_file_aid: bytes, application_aid: bytes, sd_aid: bytes
) -> bytes:
    """Table C-16."""
    return confirmation.to_bytes() + _lv(load_file_aid) + _lv(application_aid) + _lv(sd_aid)


_KEY_RSA_EXPONENT, _KEY_RSA_MODULUS, _KEY_EC_PUBLIC, _KEY_EC_REFERENCE = 0xA0, 0xA1, 0xB0, 0xF0


def public_key_data(key: PublicKey) -> bytes:
    """The PUT KEY key data field of a token / DAP public key, after the new KVN (11.8.2.3, Table 11-68):
    RSA as ``A1`` modulus then ``A0`` exponent (Table 11-75), ECC as ``B0`` point then ``F0`` key parameter
    reference (Table 11-73); in clear, with an empty key check value (``00``)."""
    if isinstance(key, RsaPublicKey):
        parts = [(_KEY_RSA_MODULUS, key.modulus_bytes), (_KEY_RSA_EXPONENT, key.exponent_bytes)]
    else:
        parts = [(_KEY_EC_PUBLIC, key.point), (_KEY_EC_REFERENCE, bytes((int(key.curve),)))]
    return b"".join(bytes((t,)) + encode_length(len(v)) + v for t, v in parts) + b"\x00"


def parse_public_key_data(raw: bytes) -> PublicKey:
    """Parse :func:`public_key_data` (the components in any order); raises DecodeError."""
    components: dict[int, bytes] = {}
    offset = 0
    while offset < len(raw) and raw[offset] >= 0x80:
        key_type = raw[offset]
        size, start = decode_length(raw, offset + 1, lenient_80=True)
        if start + size > len(raw) or key_type in components:
            raise DecodeError(f"key component {key_type:02X} is truncated or repeated", offset)
        components[key_type] = bytes(raw[start : start + size])
        offset = start + size
    if offset >= len(raw) or offset + 1 + raw[offset] != len(raw):
        raise DecodeError("the key data field must end with the key check value length and value", offset)
    try:
        if set(components) == {_KEY_RSA_MODULUS, _KEY_RSA_EXPONENT}:
            return rsa_public_key(components[_KEY_RSA_MODULUS], components[_KEY_RSA_EXPONENT])
        if set(components) == {_KEY_EC_PUBLIC, _KEY_EC_REFERENCE} and len(components[_KEY_EC_REFERENCE]) == 1:
            return EcPublicKey(EcCurve(components[_KEY_EC_REFERENCE][0]), components[_KEY_EC_PUBLIC])
    except ValueError as exc:
        raise DecodeError(f"the public key is not usable: {exc}", 0) from None
    raise DecodeError("a public key is A1 + A0 (RSA) or B0 + F0 (ECC with a preloaded curve)", 0)
