"""SCP11 primitives shared by the host and the card (GlobalPlatform Card Specification v2.3, Amendment F).

Amendment F's text is not in the project's specification set; what each point below rests on (a public
description, or the observable behaviour of Yubico's yubikit, the interoperability reference) is listed in
docs/scp11.md. Theory of operation:

- Three variants, named by the key identifier of the Security Domain's static key SK.SD.ECKA: SCP11a (KID 11,
  mutual authentication with a certificate for the off-card entity, OCE), SCP11b (KID 13, the card alone
  authenticates) and SCP11c (KID 15, as 11a but with a static OCE key usable for offline scripts).
- The OCE reads the card's certificate chain with GET DATA BF21 (data ``A6 { 83 KID KVN }``). For 11a and 11c
  it sends its own chain with PERFORM SECURITY OPERATION (INS 2A, P1 = KVN and P2 = KID of the CA-KLOC key the
  card verifies it with; P2 b8 set on all but the last certificate).
- Key agreement: INTERNAL AUTHENTICATE (INS 88, SCP11b) or MUTUAL AUTHENTICATE (INS 82, SCP11a/c) with
  ``A6 { 90 (11 params), 95 (key usage), 80 (key type), 81 (key length) } 5F49 (ePK.OCE.ECKA)``; the card answers
  ``5F49 (ePK.SD.ECKA) 86 (receipt)``.
- ShSee = ECDH(eSK.OCE, ePK.SD); ShSes = ECDH(SK.OCE, PK.SD) (for SCP11b the OCE's ephemeral key stands in for
  SK.OCE). The ANSI X9.63 KDF with SHA-256 over ``ShSee || ShSes`` with shared info ``key usage || key type ||
  key length`` gives five keys in this order: the receipt key, S-ENC, S-MAC, S-RMAC and S-DEK.
- The receipt is AES-CMAC(receipt key, key agreement data), the key agreement data being the command data and the
  card's ``5F49`` data object. Secure messaging is then SCP03's (Amendment D 6.2.4 to 6.2.7) at the level the key
  usage names, with the MAC chaining value starting at the receipt and the encryption counter at 1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gpchannel.codec.tlv import Tlv, parse_all
from gpchannel.crypto.ciphers import aes_cmac
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.scp.common import SecurityLevel

__all__ = [
    "INS_GET_DATA",
    "INS_INTERNAL_AUTHENTICATE",
    "INS_MUTUAL_AUTHENTICATE",
    "INS_PERFORM_SECURITY_OPERATION",
    "KEY_TYPE_AES",
    "KEY_USAGE_FULL",
    "SCP11_CURVES",
    "TAG_CERTIFICATE_STORE",
    "KeyAgreementParameters",
    "Scp11SessionKeys",
    "Scp11Variant",
    "certificate_store_query",
    "derive_session_keys",
    "ecdh",
    "encode_point",
    "key_agreement_command_data",
    "level_for_key_usage",
    "parse_key_agreement_command",
    "parse_key_agreement_response",
    "public_key_from_point",
    "receipt",
    "x963_kdf",
]

INS_PERFORM_SECURITY_OPERATION = 0x2A
INS_MUTUAL_AUTHENTICATE = 0x82
INS_INTERNAL_AUTHENTICATE = 0x88
INS_GET_DATA = 0xCA
TAG_CERTIFICATE_STORE = 0xBF21
TAG_CRT = 0xA6
TAG_EPK = 0x5F49
TAG_RECEIPT = 0x86
KEY_TYPE_AES = 0x88
"""Key type of the session keys (GP 2.3.1 Table 11-16: 88 = AES)."""
KEY_USAGE_FULL = 0x3C
"""Key usage qualifier C-MAC, R-MAC, C-DECRYPTION and R-ENCRYPTION (the one yubikit sends)."""

SCP11_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "brainpoolP256r1": ec.BrainpoolP256R1(),
    "brainpoolP384r1": ec.BrainpoolP384R1(),
    "brainpoolP512r1": ec.BrainpoolP512R1(),
}
"""The curves a Security Domain may hold its SCP11 keys on, by the names the card profile uses."""

_LEVELS = {
    0x3C: SecurityLevel(0x33),  # b6 b5: secure messaging in response and command; b4 b3: confidentiality in both
    0x34: SecurityLevel(0x13),  # no response confidentiality
    0x30: SecurityLevel(0x11),  # integrity only
}
"""Key usage qualifier (GP 2.3.1 Table 11-17 bits) to the security level of the session."""

_KDF_HASH: dict[int, type[hashes.HashAlgorithm]] = {16: hashes.SHA256, 24: hashes.SHA384, 32: hashes.SHA512}
"""The X9.63 KDF hash for each session key length (AES-128: SHA-256; the others: see docs/scp11.md)."""


class Scp11Variant(enum.Enum):
    """The three variants by the KID of SK.SD.ECKA, with the parameter byte of tag 90 and the INS they use."""

    A = 0x11
    B = 0x13
    C = 0x15

    @property
    def kid(self) -> int:
        return self.value

    @property
    def params(self) -> int:
        """The second byte of tag 90 (the first is 11, SCP11)."""
        return {Scp11Variant.A: 0x01, Scp11Variant.B: 0x00, Scp11Variant.C: 0x03}[self]

    @property
    def ins(self) -> int:
        return INS_INTERNAL_AUTHENTICATE if self is Scp11Variant.B else INS_MUTUAL_AUTHENTICATE

    @property
    def oce_authenticated(self) -> bool:
        """11a and 11c: the OCE sends its certificate chain and a static key takes part in the agreement."""
        return self is not Scp11Variant.B

    @property
    def label(self) -> str:
        return "SCP11" + self.name.lower()

    @classmethod
    def from_params(cls, params: int) -> Scp11Variant:
        for variant in cls:
            if variant.params == params:
                return variant
        raise DecodeError(f"SCP11 parameter {params:02X} names no variant (01 a, 00 b, 03 c)")

    @classmethod
    def from_name(cls, name: str) -> Scp11Variant:
        """``11a``, ``scp11b``, ``C``: the variant; ValueError otherwise."""
        text = name.strip().lower().removeprefix("scp").removeprefix("11")
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"{name!r} is not an SCP11 variant (11a, 11b or 11c)") from None


@dataclass(frozen=True, slots=True)
class KeyAgreementParameters:
    """The control reference template of the key agreement command (tag A6)."""

    variant: Scp11Variant
    key_usage: int = KEY_USAGE_FULL
    key_type: int = KEY_TYPE_AES
    key_length: int = 16

    @property
    def shared_info(self) -> bytes:
        return bytes((self.key_usage, self.key_type, self.key_length))

    @property
    def level(self) -> SecurityLevel:
        return level_for_key_usage(self.key_usage)

    def template(self) -> bytes:
        body = (
            Tlv(0x90, bytes((0x11, self.variant.params))).to_bytes()
            + Tlv(0x95, bytes((self.key_usage,))).to_bytes()
            + Tlv(0x80, bytes((self.key_type,))).to_bytes()
            + Tlv(0x81, bytes((self.key_length,))).to_bytes()
        )
        return Tlv(TAG_CRT, body).to_bytes()


def level_for_key_usage(key_usage: int) -> SecurityLevel:
    """The session's security level for a key usage qualifier; UnsupportedError for one gpchannel does not use."""
    level = _LEVELS.get(key_usage)
    if level is None:
        raise UnsupportedError(f"SCP11 key usage {key_usage:02X} is not supported (3C, 34 or 30)")
    return level


@dataclass(frozen=True, slots=True)
class Scp11SessionKeys:
    """The KDF's output (receipt key first). Never in a repr."""

    receipt_key: bytes = field(repr=False)
    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)
    s_dek: bytes = field(repr=False)


def x963_kdf(shared_secret: bytes, shared_info: bytes, length: int, hash_length: int = 16) -> bytes:
    """ANSI X9.63 KDF (SEC 1 v2 3.6.1) with the hash named for ``hash_length`` (16 -> SHA-256)."""
    algorithm = _KDF_HASH.get(hash_length)
    if algorithm is None:
        raise UnsupportedError(f"no X9.63 KDF hash for {hash_length}-byte session keys")
    return X963KDF(algorithm=algorithm(), length=length, sharedinfo=shared_info).derive(shared_secret)


def derive_session_keys(shsee: bytes, shses: bytes, params: KeyAgreementParameters) -> Scp11SessionKeys:
    """The five keys from ``ShSee || ShSes`` (see the module docstring)."""
    if params.key_type != KEY_TYPE_AES or params.key_length not in _KDF_HASH:
        raise UnsupportedError(
            f"SCP11 session keys of type {params.key_type:02X} and length {params.key_length} are not supported"
        )
    n = params.key_length
    out = x963_kdf(shsee + shses, params.shared_info, 5 * n, n)
    parts = [out[i * n : (i + 1) * n] for i in range(5)]
    return Scp11SessionKeys(*parts)


def receipt(receipt_key: bytes, key_agreement_data: bytes) -> bytes:
    """AES-CMAC over the key agreement data: the command data and the card's 5F49 data object."""
    return aes_cmac(receipt_key, key_agreement_data)


def ecdh(private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey) -> bytes:
    """The ECDH shared secret (the x coordinate, SEC 1 3.3.1); DecodeError when the curves differ."""
    if private.curve.name != public.curve.name:
        raise DecodeError(f"the keys are on different curves ({private.curve.name}, {public.curve.name})")
    return private.exchange(ec.ECDH(), public)


def encode_point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def public_key_from_point(curve: ec.EllipticCurve, point: bytes) -> ec.EllipticCurvePublicKey:
    """An uncompressed point on ``curve``; DecodeError when it is not one (a point of another curve included)."""
    size = (curve.key_size + 7) // 8
    if len(point) != 1 + 2 * size or point[0] != 0x04:
        raise DecodeError(f"expected an uncompressed {curve.name} point of {1 + 2 * size} bytes, got {len(point)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    except ValueError:
        raise DecodeError(f"the point is not on {curve.name}") from None


def key_agreement_command_data(params: KeyAgreementParameters, epk_oce: bytes) -> bytes:
    """``A6 {...} 5F49 ePK.OCE.ECKA``: the data of INTERNAL / MUTUAL AUTHENTICATE."""
    return params.template() + Tlv(TAG_EPK, epk_oce).to_bytes()


def parse_key_agreement_command(data: bytes) -> tuple[KeyAgreementParameters, bytes]:
    """The card's reading of the key agreement command data: its parameters and ePK.OCE.ECKA; DecodeError."""
    items = parse_all(data)
    if [i.tag for i in items] != [TAG_CRT, TAG_EPK]:
        raise DecodeError("key agreement data must be A6 then 5F49")
    fields: dict[int, bytes] = {}
    for item in parse_all(items[0].value):
        if item.tag in fields:
            raise DecodeError(f"tag {item.tag:02X} repeated in the control reference template")
        fields[item.tag] = item.value
    for tag, size in ((0x90, 2), (0x95, 1), (0x80, 1), (0x81, 1)):
        if len(fields.get(tag, b"")) != size:
            raise DecodeError(f"tag {tag:02X} of the control reference template must be {size} byte(s)")
    if fields[0x90][0] != 0x11:
        raise DecodeError(f"tag 90 names SCP{fields[0x90][0]:02X}, not SCP11")
    params = KeyAgreementParameters(
        Scp11Variant.from_params(fields[0x90][1]), fields[0x95][0], fields[0x80][0], fields[0x81][0]
    )
    return params, items[1].value


def parse_key_agreement_response(data: bytes) -> tuple[bytes, bytes, bytes]:
    """The host's reading of the answer: (the encoded 5F49 data object, ePK.SD.ECKA, the receipt)."""
    items = parse_all(data)
    if [i.tag for i in items] != [TAG_EPK, TAG_RECEIPT]:
        raise DecodeError("the key agreement response must be 5F49 then 86")
    return items[0].to_bytes(), items[0].value, items[1].value


def certificate_store_query(kid: int, kvn: int) -> bytes:
    """The data of GET DATA BF21 (and the key reference of STORE DATA): ``A6 { 83 KID KVN }``."""
    return Tlv(TAG_CRT, Tlv(0x83, bytes((kid, kvn))).to_bytes()).to_bytes()
