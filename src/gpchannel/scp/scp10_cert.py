"""Card verifiable certificates for SCP10 (GP Card Specification 2.2.1, F.1.3.4), and a test PKI.

F.1.3.4 leaves certificate contents to the certificate issuer and gives examples; this module implements those
examples with the ISO/IEC 7816-8 tags of Table F-2, in all four forms the appendix describes:

- self descriptive (PSO [verify certificate] P2 'BE'): the certified data objects are TLV encoded and signed;
- non self descriptive (P2 'AE'): the concatenated value fields are signed (5F4E "certificate contents");
- without message recovery (F.1.3.4.1): RSASSA-PKCS1-v1_5 / SHA-1 over the data, signature in '9E';
- with message recovery (F.1.3.4.2): ISO/IEC 9796-2 DS1 / SHA-1; what does not fit the signature block is the
  public key remainder '5F38'.

Certified data, in this order (our CA-defined choice, as F.1.3.4 allows):
``42`` issuer (8 bytes), ``5F20`` subject / certificate holder reference (8 bytes: the "Off-Card Entity id" and
"Card id" of Tables F-5 and F-9), ``7F49`` { ``81`` modulus, ``82`` exponent }, ``5F25`` effective date and
``5F24`` expiry date (YYMMDD, one digit per byte). The non self descriptive value layout is
``issuer(8) subject(8) effective(6) expiry(6) len(e)(1) e n``.

Validity is checked against a ``now`` argument (no clock here).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from gpchannel.codec.tlv import Tlv, parse_all
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.rsa import (
    RsaPrivateKey,
    RsaPublicKey,
    generate_private_key,
    iso9796_2_ds1_open,
    iso9796_2_ds1_sign,
    pkcs1_v15_sign_sha1,
    pkcs1_v15_verify_sha1,
    sha1,
)
from gpchannel.errors import AuthenticationError, DecodeError, SecurityError

__all__ = [
    "TAG_CERTIFICATE",
    "Certificate",
    "CertificateBody",
    "TestPki",
    "issue_certificate",
    "make_test_pki",
    "verify_certificate",
]

TAG_CERTIFICATE = 0x7F21


def _date_bytes(day: datetime.date) -> bytes:
    return bytes(int(c) for c in day.strftime("%y%m%d"))


def _parse_date(raw: bytes) -> datetime.date:
    if len(raw) != 6 or any(b > 9 for b in raw):
        raise DecodeError("a certificate date is 6 digits YYMMDD, one per byte")
    try:
        return datetime.date(2000 + raw[0] * 10 + raw[1], raw[2] * 10 + raw[3], raw[4] * 10 + raw[5])
    except ValueError:
        raise DecodeError("a certificate date is not a calendar date") from None


@dataclass(frozen=True, slots=True)
class CertificateBody:
    """What a certificate certifies: issuer, subject (8-byte ids), the subject's public key and validity."""

    issuer: bytes
    subject: bytes
    public_key: RsaPublicKey
    effective: datetime.date
    expiry: datetime.date

    def __post_init__(self) -> None:
        if len(self.issuer) != 8 or len(self.subject) != 8:
            raise ValueError("issuer and subject references are 8 bytes (Tables F-5, F-9)")
        if self.expiry < self.effective:
            raise ValueError("expiry precedes the effective date")

    def tlv_bytes(self) -> bytes:
        """The data objects certified by a self descriptive certificate."""
        key = Tlv.build(0x7F49, (Tlv(0x81, self.public_key.modulus_bytes), Tlv(0x82, self.public_key.exponent_bytes)))
        return b"".join(
            t.to_bytes()
            for t in (
                Tlv(0x42, self.issuer),
                Tlv(0x5F20, self.subject),
                key,
                Tlv(0x5F25, _date_bytes(self.effective)),
                Tlv(0x5F24, _date_bytes(self.expiry)),
            )
        )

    def value_bytes(self) -> bytes:
        """The concatenated value fields certified by a non self descriptive certificate."""
        e = self.public_key.exponent_bytes
        return (
            self.issuer
            + self.subject
            + _date_bytes(self.effective)
            + _date_bytes(self.expiry)
            + bytes((len(e),))
            + e
            + self.public_key.modulus_bytes
        )

    @classmethod
    def from_tlv_bytes(cls, data: bytes) -> CertificateBody:
        items = parse_all(data)
        if [i.tag for i in items] != [0x42, 0x5F20, 0x7F49, 0x5F25, 0x5F24]:
            raise DecodeError("certificate data objects must be 42 5F20 7F49 5F25 5F24")
        key = {c.tag: c.value for c in items[2].children()}
        if sorted(key) != [0x81, 0x82]:
            raise DecodeError("public key 7F49 must hold 81 (modulus) and 82 (exponent)")
        return cls._make(items[0].value, items[1].value, key[0x81], key[0x82], items[3].value, items[4].value)

    @classmethod
    def from_value_bytes(cls, data: bytes) -> CertificateBody:
        if len(data) < 30 or len(data) < 29 + data[28]:
            raise DecodeError("certificate contents are too short", offset=len(data))
        elen = data[28]
        return cls._make(data[:8], data[8:16], data[29 + elen :], data[29 : 29 + elen], data[16:22], data[22:28])

    @classmethod
    def _make(cls, issuer: bytes, subject: bytes, n: bytes, e: bytes, eff: bytes, exp: bytes) -> CertificateBody:
        try:
            key = RsaPublicKey(int.from_bytes(n, "big"), int.from_bytes(e, "big"))
            return cls(issuer, subject, key, _parse_date(eff), _parse_date(exp))
        except ValueError as exc:
            raise DecodeError(f"certificate content: {exc}") from None


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate as carried in tag 7F21 (Tables F-21 and F-35)."""

    body: CertificateBody
    signature: bytes = field(repr=False)
    self_descriptive: bool = True
    recovery: bool = False
    remainder: bytes = field(default=b"", repr=False)

    def to_bytes(self) -> bytes:
        """The whole ``7F21 L ...`` data object."""
        if self.recovery:
            parts = [Tlv(0x5F38, self.remainder)] if self.remainder else []
            return Tlv.build(TAG_CERTIFICATE, [*parts, Tlv(0x9E, self.signature)]).to_bytes()
        if self.self_descriptive:
            return Tlv(TAG_CERTIFICATE, self.body.tlv_bytes() + Tlv(0x9E, self.signature).to_bytes()).to_bytes()
        return Tlv.build(TAG_CERTIFICATE, (Tlv(0x5F4E, self.body.value_bytes()), Tlv(0x9E, self.signature))).to_bytes()


def issue_certificate(
    issuer_key: RsaPrivateKey, body: CertificateBody, *, self_descriptive: bool = True, recovery: bool = False
) -> Certificate:
    """Sign ``body`` with the issuer's private key in one of the four forms of F.1.3.4."""
    data = body.tlv_bytes() if self_descriptive else body.value_bytes()
    if not recovery:
        return Certificate(body, pkcs1_v15_sign_sha1(issuer_key, data), self_descriptive, False)
    room = issuer_key.public.size - 22
    if len(data) < room:
        raise ValueError("certified data shorter than the signature block: use a certificate without recovery")
    signature = iso9796_2_ds1_sign(issuer_key, data[:room], data[room:])
    return Certificate(body, signature, self_descriptive, True, data[room:])


def verify_certificate(raw: bytes, issuer: RsaPublicKey, *, self_descriptive: bool, now: datetime.date) -> Certificate:
    """Parse and verify one ``7F21`` certificate with the issuer's public key (F.1.3.2, F.4.7.3).

    Raises DecodeError when malformed, AuthenticationError when the signature or the validity period (against
    ``now``) does not hold. The form (with or without recovery) is recognised from the data objects.
    """
    outer = Tlv.from_bytes(raw)
    if outer.tag != TAG_CERTIFICATE:
        raise DecodeError(f"certificate tag must be 7F21, got {outer.tag:X}", offset=0)
    items = outer.children()
    if not items or items[-1].tag != 0x9E:
        raise DecodeError("the certificate signature 9E must come last")
    signature = items[-1].value
    tags = [i.tag for i in items[:-1]]
    if tags in ([], [0x5F38]):
        remainder = items[0].value if tags else b""
        try:
            recovered, digest = iso9796_2_ds1_open(issuer, signature)
        except SecurityError as exc:
            raise AuthenticationError(f"certificate signature: {exc}") from None
        data = recovered + remainder
        if not constant_time_equal(sha1(data), digest):
            raise AuthenticationError("certificate signature does not verify")
        recovery = True
    else:
        if self_descriptive:
            data = outer.value[: len(outer.value) - len(items[-1].to_bytes())]
        elif tags == [0x5F4E]:
            data = items[0].value
        else:
            raise DecodeError("a non self descriptive certificate holds 5F4E and 9E")
        if not pkcs1_v15_verify_sha1(issuer, data, signature):
            raise AuthenticationError("certificate signature does not verify")
        recovery, remainder = False, b""
    body = CertificateBody.from_tlv_bytes(data) if self_descriptive else CertificateBody.from_value_bytes(data)
    if not body.effective <= now <= body.expiry:
        raise AuthenticationError(f"certificate valid {body.effective} to {body.expiry}, not on {now}")
    return Certificate(body, signature, self_descriptive, recovery, remainder)


@dataclass(frozen=True, slots=True)
class TestPki:
    """A matching test PKI (Figure F-1): TP_EX certifies KA_EX which certifies the OCE; TP_IN certifies the SD."""

    tp_ex: RsaPrivateKey = field(repr=False)
    tp_in: RsaPrivateKey = field(repr=False)
    ka_ex: RsaPrivateKey = field(repr=False)
    card: RsaPrivateKey = field(repr=False)
    oce: RsaPrivateKey = field(repr=False)
    oce_chain: tuple[Certificate, ...]
    card_certificate: Certificate

    __test__ = False  # not a pytest class


def make_test_pki(
    random: Callable[[int], bytes],
    now: datetime.date,
    *,
    bits: int = 1024,
    days: int = 365,
    self_descriptive: bool = True,
    recovery: bool = False,
) -> TestPki:
    """Build CA, card and off-card entity keys and certificates in memory, valid from ``now`` for ``days``."""
    keys = [generate_private_key(bits, random) for _ in range(5)]
    tp_ex, tp_in, ka_ex, card, oce = keys
    end = now + datetime.timedelta(days=days)

    def issue(by: RsaPrivateKey, issuer: bytes, subject: bytes, key: RsaPrivateKey) -> Certificate:
        body = CertificateBody(issuer, subject, key.public, now, end)
        return issue_certificate(by, body, self_descriptive=self_descriptive, recovery=recovery)

    chain = (
        issue(tp_ex, b"TP_EX\x00\x00\x01", b"KA_EX\x00\x00\x01", ka_ex),
        issue(ka_ex, b"KA_EX\x00\x00\x01", b"OCE\x00\x00\x00\x00\x01", oce),
    )
    card_cert = issue(tp_in, b"TP_IN\x00\x00\x01", b"CARD\x00\x00\x00\x01", card)
    return TestPki(tp_ex, tp_in, ka_ex, card, oce, chain, card_cert)
