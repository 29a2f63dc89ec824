"""A Security Domain's SCP11 credentials as the card keeps them (GP Card Specification v2.3, Amendment F): its
SK.SD.ECKA keys with their certificate chains, its PK.CA-KLOC.ECDSA keys with their allowlists of OCE serial
numbers, in a JSON-compatible form (:mod:`gpchannel.card.state` persists it under ``sd.scp11``).

Private keys are kept as PKCS#8 PEM (never in a repr); certificates as DER hex; CA keys as uncompressed points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.card.tracking import Tracked
from gpchannel.crypto.asym import EcCurve
from gpchannel.errors import DecodeError
from gpchannel.scp.scp11 import SCP11_CURVES, encode_point, public_key_from_point
from gpchannel.scp.scp11_card import Scp11CaKey, Scp11CardConfig, Scp11SdKey
from gpchannel.scp.scp11_cert import load_certificate

__all__ = ["CA_KIDS", "CURVE_NAMES", "SD_KIDS", "Scp11CaEntry", "Scp11KeyEntry", "Scp11Material", "private_key_pem"]

SD_KIDS = frozenset({0x11, 0x13, 0x15})
"""SK.SD.ECKA for SCP11a, b and c."""
CA_KIDS = frozenset({0x10, *range(0x20, 0x30)})
"""PK.CA-KLOC.ECDSA."""
CURVE_NAMES = {
    EcCurve.P256: "P-256",
    EcCurve.P384: "P-384",
    EcCurve.P521: "P-521",
    EcCurve.BRAINPOOL_P256R1: "brainpoolP256r1",
    EcCurve.BRAINPOOL_P384R1: "brainpoolP384r1",
    EcCurve.BRAINPOOL_P512R1: "brainpoolP512r1",
}
"""The name (a key of :data:`SCP11_CURVES`) of each key parameter reference (F0; GP 2.3.1 Table B-2)."""


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _load_private(pem: str, where: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), None)
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"{where}: not a PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DecodeError(f"{where}: an SCP11 key is an elliptic curve key")
    return key


@dataclass(slots=True, eq=True)
class Scp11KeyEntry(Tracked):
    """SK.SD.ECKA (KID 11, 13 or 15) and its chain (DER certificates, CA first); ``issuer`` the key identifier of
    the CA-KLCC that issued its certificate, when one was stored."""

    kid: int
    kvn: int
    private_key: str = field(repr=False)
    certificates: list[bytes] = field(default_factory=list)
    issuer: bytes = b""


@dataclass(slots=True, eq=True)
class Scp11CaEntry(Tracked):
    """PK.CA-KLOC.ECDSA (KID 10 or 20-2F) as a point; ``allowlist`` the accepted OCE serials (None: any);
    ``issuer`` the CA's key identifier, when one was stored."""

    kid: int
    kvn: int
    point: bytes
    allowlist: list[int] | None = None
    issuer: bytes = b""


@dataclass(slots=True, eq=True)
class Scp11Material(Tracked):
    """A Security Domain's SCP11 keys and CA keys. Part of the card state: writes (a certificate bundle, an
    allowlist, an EC PUT KEY) mark the Security Domain's unit (card/tracking.py)."""

    curve: str = "P-256"
    keys: list[Scp11KeyEntry] = field(default_factory=list)
    cas: list[Scp11CaEntry] = field(default_factory=list)

    @property
    def ec_curve(self) -> ec.EllipticCurve:
        return SCP11_CURVES[self.curve]

    def key(self, kid: int, kvn: int) -> Scp11KeyEntry | None:
        return next((k for k in self.keys if k.kid == kid and (kvn == 0 or k.kvn == kvn)), None)

    def ca(self, kid: int, kvn: int) -> Scp11CaEntry | None:
        return next((c for c in self.cas if c.kid == kid and (kvn == 0 or c.kvn == kvn)), None)

    def card_config(self) -> Scp11CardConfig:
        """The sans-I/O card's configuration (DecodeError when a stored value no longer loads)."""
        keys = tuple(
            Scp11SdKey(
                k.kid,
                k.kvn,
                _load_private(k.private_key, f"scp11 key {k.kid:02X}"),
                tuple(load_certificate(c) for c in k.certificates),
            )
            for k in self.keys
        )
        cas = tuple(
            Scp11CaKey(
                c.kid,
                c.kvn,
                public_key_from_point(self.ec_curve, c.point),
                None if c.allowlist is None else frozenset(c.allowlist),
            )
            for c in self.cas
        )
        return Scp11CardConfig(keys, cas)

    def put_ca(self, kid: int, kvn: int, key: ec.EllipticCurvePublicKey) -> None:
        self.cas = [c for c in self.cas if (c.kid, c.kvn) != (kid, kvn)]
        self.cas.append(Scp11CaEntry(kid, kvn, encode_point(key)))

    def put_key(self, kid: int, kvn: int, key: ec.EllipticCurvePrivateKey) -> None:
        self.keys = [k for k in self.keys if (k.kid, k.kvn) != (kid, kvn)]
        self.keys.append(Scp11KeyEntry(kid, kvn, private_key_pem(key)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "curve": self.curve,
            "keys": [
                {
                    "kid": k.kid,
                    "kvn": k.kvn,
                    "private_key": k.private_key,
                    "certificates": [c.hex().upper() for c in k.certificates],
                    "issuer": k.issuer.hex().upper(),
                }
                for k in self.keys
            ],
            "cas": [
                {
                    "kid": c.kid,
                    "kvn": c.kvn,
                    "point": c.point.hex().upper(),
                    "allowlist": c.allowlist,
                    "issuer": c.issuer.hex().upper(),
                }
                for c in self.cas
            ],
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> Scp11Material:
        if not isinstance(raw, dict):
            raise DecodeError(f"{where}: expected an object")
        curve = raw.get("curve", "P-256")
        if curve not in SCP11_CURVES:
            raise DecodeError(f"{where}.curve: {curve!r} is none of {', '.join(SCP11_CURVES)}")
        try:
            keys = [
                Scp11KeyEntry(
                    _byte(k["kid"]),
                    _byte(k["kvn"]),
                    str(k["private_key"]),
                    [bytes.fromhex(c) for c in k["certificates"]],
                    bytes.fromhex(k.get("issuer", "")),
                )
                for k in raw.get("keys", [])
            ]
            cas = [
                Scp11CaEntry(
                    _byte(c["kid"]),
                    _byte(c["kvn"]),
                    bytes.fromhex(c["point"]),
                    None if c.get("allowlist") is None else [int(s) for s in c["allowlist"]],
                    bytes.fromhex(c.get("issuer", "")),
                )
                for c in raw.get("cas", [])
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DecodeError(f"{where}: malformed SCP11 material ({exc})") from None
        material = cls(curve, keys, cas)
        material.card_config()  # every key, certificate and point loads
        return material


def _byte(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise ValueError(f"expected a byte, got {value!r}")
    return value
