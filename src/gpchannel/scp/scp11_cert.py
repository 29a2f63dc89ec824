"""SCP11 certificates: the chains a Security Domain serves with GET DATA BF21 and the OCE sends with PERFORM
SECURITY OPERATION, their verification against a CA key (PK.CA-KLOC.ECDSA on the card, the CA-KLCC key on the
host), and allowlists of OCE certificate serial numbers (GP Card Specification v2.3, Amendment F; see
docs/scp11.md for what rests on which source).

Certificates are X.509 (DER), as yubikit's SecurityDomainSession stores and reads them: the value of BF21 is the
concatenation of the DER certificates, CA first, the end-entity certificate (the ECKA key) last. A chain is
verified link by link: the first certificate with the anchor key, each next one with the key of the one before
(a self-signed certificate of the anchor itself verifies with the anchor key and changes nothing), every
certificate valid at ``now``, every signature ECDSA. The last certificate's key is the chain's ECKA key.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gpchannel.codec.tlv import parse_all
from gpchannel.errors import DecodeError, SecurityError

__all__ = [
    "VerifiedChain",
    "concatenate",
    "load_certificate",
    "split_certificates",
    "verify_chain",
]


def load_certificate(raw: bytes) -> x509.Certificate:
    """One DER or PEM certificate; DecodeError when it is neither."""
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise DecodeError(f"not an X.509 certificate: {exc}") from None


def split_certificates(data: bytes) -> list[x509.Certificate]:
    """The certificates of a BF21 value (concatenated DER, each a SEQUENCE 30); DecodeError otherwise."""
    out = []
    for item in parse_all(data):
        if item.tag != 0x30:
            raise DecodeError(f"a certificate is a DER SEQUENCE (30), got tag {item.tag:X}")
        out.append(load_certificate(item.to_bytes()))
    return out


def concatenate(chain: Sequence[x509.Certificate]) -> bytes:
    """The BF21 value of ``chain``."""
    return b"".join(c.public_bytes(Encoding.DER) for c in chain)


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A verified chain: its end-entity key (the ECKA key) and certificate serial number."""

    public_key: ec.EllipticCurvePublicKey
    serial: int
    subject: str


def _check_link(cert: x509.Certificate, key: ec.EllipticCurvePublicKey, now: datetime.datetime) -> None:
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        raise SecurityError("the certificate's signature algorithm names no hash")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise SecurityError(f"the certificate {cert.subject.rfc4514_string()!r} does not verify") from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise SecurityError(f"the certificate {cert.subject.rfc4514_string()!r} is not valid at {now:%Y-%m-%d}")


def verify_chain(
    chain: Sequence[x509.Certificate],
    anchor: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    *,
    allowlist: Collection[int] | None = None,
    curve: ec.EllipticCurve | None = None,
) -> VerifiedChain:
    """Verify ``chain`` from ``anchor`` (see the module docstring). ``allowlist``, when given, must hold the
    end-entity serial number; ``curve``, when given, is the curve its key must be on. SecurityError otherwise."""
    if not chain:
        raise SecurityError("an empty certificate chain")
    key = anchor
    for cert in chain:
        _check_link(cert, key, now)
        subject_key = cert.public_key()
        if not isinstance(subject_key, ec.EllipticCurvePublicKey):
            raise SecurityError("an SCP11 certificate holds an elliptic curve key")
        key = subject_key
    leaf = chain[-1]
    if curve is not None and key.curve.name != curve.name:
        raise SecurityError(f"the end-entity key is on {key.curve.name}, the session uses {curve.name}")
    if allowlist is not None and leaf.serial_number not in allowlist:
        raise SecurityError(f"certificate serial {leaf.serial_number:X} is not in the allowlist")
    return VerifiedChain(key, leaf.serial_number, leaf.subject.rfc4514_string())
