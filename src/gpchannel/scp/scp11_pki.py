"""A test PKI for SCP11 (the shape GP Amendment F describes; for tests and ``gpchannel scp11 make-pki``):

* CA-KLCC (``card-ca``): signs the Security Domain's certificates; the OCE's trust anchor for the card.
* SK.SD.ECKA for KID 11, 13 and 15 (``sd-11``, ``sd-13``, ``sd-15``), each with a certificate from CA-KLCC.
* CA-KLOC (``oce-ca``): signs OCE certificates; the card's PK.CA-KLOC.ECDSA (KID 10).
* SK.OCE.ECKA (``oce``) with a certificate from CA-KLOC.

Every key is on one curve (P-256 by default); every certificate is X.509 v3 with ECDSA-SHA256 (SHA-384 / 512 for
the larger curves), valid from ``now`` minus a day for ``days``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Scp11Pki", "issue_certificate", "make_pki"]


def _hash_for(curve: ec.EllipticCurve) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    if curve.key_size >= 512:
        return hashes.SHA512()
    return hashes.SHA384() if curve.key_size >= 384 else hashes.SHA256()


def issue_certificate(
    subject: str,
    key: ec.EllipticCurvePublicKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    *,
    days: int = 3650,
    serial: int | None = None,
    ca: bool = False,
) -> x509.Certificate:
    """An X.509 v3 certificate of ``key`` for ``subject`` signed by ``issuer_key``."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ca,
                key_cert_sign=ca,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, _hash_for(issuer_key.curve))


@dataclass(frozen=True, slots=True)
class Scp11Pki:
    """The keys and certificates of the test PKI (private keys never in a repr)."""

    curve: ec.EllipticCurve
    card_ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    card_ca: x509.Certificate
    sd_keys: dict[int, ec.EllipticCurvePrivateKey] = field(repr=False)
    sd_certs: dict[int, x509.Certificate]
    oce_ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    oce_ca: x509.Certificate
    oce_key: ec.EllipticCurvePrivateKey = field(repr=False)
    oce_cert: x509.Certificate

    def sd_chain(self, kid: int) -> tuple[x509.Certificate, ...]:
        return (self.card_ca, self.sd_certs[kid])

    @property
    def oce_chain(self) -> tuple[x509.Certificate, ...]:
        return (self.oce_ca, self.oce_cert)


def make_pki(now: datetime.datetime, curve: ec.EllipticCurve | None = None, days: int = 3650) -> Scp11Pki:
    """A fresh test PKI (see the module docstring)."""
    curve = curve or ec.SECP256R1()
    card_ca_key = ec.generate_private_key(curve)
    card_ca = issue_certificate("CA-KLCC", card_ca_key.public_key(), "CA-KLCC", card_ca_key, now, days=days, ca=True)
    sd_keys = {kid: ec.generate_private_key(curve) for kid in (0x11, 0x13, 0x15)}
    sd_certs = {
        kid: issue_certificate(f"SD.ECKA {kid:02X}", key.public_key(), "CA-KLCC", card_ca_key, now, days=days)
        for kid, key in sd_keys.items()
    }
    oce_ca_key = ec.generate_private_key(curve)
    oce_ca = issue_certificate("CA-KLOC", oce_ca_key.public_key(), "CA-KLOC", oce_ca_key, now, days=days, ca=True)
    oce_key = ec.generate_private_key(curve)
    oce_cert = issue_certificate("OCE.ECKA", oce_key.public_key(), "CA-KLOC", oce_ca_key, now, days=days)
    return Scp11Pki(curve, card_ca_key, card_ca, sd_keys, sd_certs, oce_ca_key, oce_ca, oce_key, oce_cert)
