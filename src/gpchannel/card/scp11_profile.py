"""The ``[isd.scp11]`` table of a card profile (docs/profile.md): a Security Domain's SCP11 keys, certificate
chains and CA-KLOC trust anchors (GP Card Specification v2.3, Amendment F)::

    [isd.scp11]
    curve = "P-256"
    [[isd.scp11.keys]]                 # one per SK.SD.ECKA: KID 0x11 (11a), 0x13 (11b), 0x15 (11c)
    kid = 0x13
    kvn = 0x01
    private_key = "sd-13.key.pem"      # PEM; a relative path is relative to the profile
    certificates = ["sd-ca.cert.pem", "sd-13.cert.pem"]   # X.509 chain served by GET DATA BF21, CA first
    ca_identifier = "0A0B..."          # optional: the CA-KLCC's key identifier (GET DATA FF34)
    [[isd.scp11.ca]]                   # PK.CA-KLOC.ECDSA: the trust anchor for OCE certificates
    kid = 0x10
    kvn = 0x03
    certificate = "oce-ca.cert.pem"    # or public_key = "oce-ca.pub.pem"
    allowlist = ["7F01"]               # optional: the OCE certificate serial numbers accepted (hex)
    ca_identifier = "0C0D..."          # optional: the CA-KLOC's key identifier (GET DATA FF33)

Values may be inline PEM instead of file names. Raises ProfileError naming the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.card.scp10_domain import _read
from gpchannel.card.scp11_material import Scp11CaEntry, Scp11KeyEntry, Scp11Material, private_key_pem
from gpchannel.errors import DecodeError, ProfileError
from gpchannel.scp.scp11 import SCP11_CURVES, encode_point
from gpchannel.scp.scp11_cert import load_certificate

__all__ = ["scp11_from_profile"]

_TABLE = frozenset({"curve", "keys", "ca"})
_KEY = frozenset({"kid", "kvn", "private_key", "certificates", "ca_identifier"})
_CA = frozenset({"kid", "kvn", "certificate", "public_key", "allowlist", "ca_identifier"})
_SD_KIDS = frozenset({0x11, 0x13, 0x15})
_CA_KIDS = frozenset({0x10, *range(0x20, 0x30)})

Resolve = Callable[[str], bytes] | None


def _only(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in table:
        if name not in allowed:
            raise ProfileError(f"profile key {where}.{name}: unknown key; expected one of {', '.join(sorted(allowed))}")


def _byte(value: object, where: str, allowed: frozenset[int] | None = None) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip().removeprefix("0x"), 16)
        except ValueError:
            raise ProfileError(f"profile key {where}: expected a byte, got {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise ProfileError(f"profile key {where}: expected a byte, got {value!r}")
    if allowed is not None and value not in allowed:
        raise ProfileError(f"profile key {where}: expected one of {', '.join(f'{v:02X}' for v in sorted(allowed))}")
    return value


def _identifier(table: Mapping[str, Any], where: str) -> bytes:
    """``ca_identifier``: the CA key identifier (hex, 1-64 bytes) answered by GET DATA FF33 / FF34; b"" when none."""
    value = table.get("ca_identifier", "")
    try:
        out = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        out = None
    if out is None or len(out) > 64:
        raise ProfileError(f"profile key {where}.ca_identifier: expected 1 to 64 bytes in hex, got {value!r}")
    return out


def _certificate(value: object, where: str, resolve: Resolve) -> bytes:
    raw = _read(value, where, resolve)
    try:
        from cryptography.hazmat.primitives.serialization import Encoding

        return load_certificate(raw).public_bytes(Encoding.DER)
    except DecodeError as exc:
        raise ProfileError(f"profile key {where}: {exc}") from None


def _on_curve(key: object, curve: ec.EllipticCurve, where: str) -> None:
    if not isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) or key.curve.name != curve.name:
        raise ProfileError(f"profile key {where}: expected a {curve.name} key")


def _key(raw: object, where: str, curve: ec.EllipticCurve, resolve: Resolve) -> Scp11KeyEntry:
    if not isinstance(raw, dict):
        raise ProfileError(f"profile key {where}: expected a table")
    _only(raw, _KEY, where)
    for name in ("kid", "kvn", "private_key"):
        if name not in raw:
            raise ProfileError(f"profile key {where}.{name}: missing (see docs/profile.md)")
    text = _read(raw["private_key"], f"{where}.private_key", resolve)
    try:
        private = serialization.load_pem_private_key(text, None)
    except (ValueError, TypeError) as exc:
        raise ProfileError(f"profile key {where}.private_key: not a PEM private key ({exc})") from None
    _on_curve(private, curve, f"{where}.private_key")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    certs = raw.get("certificates", [])
    if not isinstance(certs, list):
        raise ProfileError(f"profile key {where}.certificates: expected a list of certificates, CA first")
    ders = [_certificate(c, f"{where}.certificates[{n}]", resolve) for n, c in enumerate(certs)]
    return Scp11KeyEntry(
        _byte(raw["kid"], f"{where}.kid", _SD_KIDS),
        _byte(raw["kvn"], f"{where}.kvn"),
        private_key_pem(private),
        ders,
        _identifier(raw, where),
    )


def _ca(raw: object, where: str, curve: ec.EllipticCurve, resolve: Resolve) -> Scp11CaEntry:
    if not isinstance(raw, dict):
        raise ProfileError(f"profile key {where}: expected a table")
    _only(raw, _CA, where)
    if ("certificate" in raw) == ("public_key" in raw):
        raise ProfileError(f"profile key {where}: give certificate or public_key (one of them)")
    if "certificate" in raw:
        der = _certificate(raw["certificate"], f"{where}.certificate", resolve)
        public: object = load_certificate(der).public_key()
    else:
        try:
            public = serialization.load_pem_public_key(_read(raw["public_key"], f"{where}.public_key", resolve))
        except (ValueError, TypeError) as exc:
            raise ProfileError(f"profile key {where}.public_key: not a PEM public key ({exc})") from None
    _on_curve(public, curve, where)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    allowlist = raw.get("allowlist")
    serials: list[int] | None = None
    if allowlist is not None:
        if not isinstance(allowlist, list) or not all(isinstance(s, str) for s in allowlist):
            raise ProfileError(f"profile key {where}.allowlist: expected a list of hex serial numbers")
        try:
            serials = [int(s.replace(" ", ""), 16) for s in allowlist]
        except ValueError:
            raise ProfileError(f"profile key {where}.allowlist: expected hex serial numbers") from None
    return Scp11CaEntry(
        _byte(raw.get("kid"), f"{where}.kid", _CA_KIDS),
        _byte(raw.get("kvn"), f"{where}.kvn"),
        encode_point(public),
        serials,
        _identifier(raw, where),
    )


def scp11_from_profile(table: Mapping[str, Any], resolve: Resolve) -> Scp11Material:
    """The Security Domain's :class:`Scp11Material` from ``[isd.scp11]``."""
    _only(table, _TABLE, "isd.scp11")
    curve_name = table.get("curve", "P-256")
    if curve_name not in SCP11_CURVES:
        raise ProfileError(
            f"profile key isd.scp11.curve: expected one of {', '.join(SCP11_CURVES)}, got {curve_name!r}"
        )
    curve = SCP11_CURVES[curve_name]
    keys_raw, cas_raw = table.get("keys", []), table.get("ca", [])
    if not isinstance(keys_raw, list) or not isinstance(cas_raw, list):
        raise ProfileError("profile key isd.scp11: keys and ca are arrays of tables ([[isd.scp11.keys]])")
    keys = [_key(k, f"isd.scp11.keys[{n}]", curve, resolve) for n, k in enumerate(keys_raw)]
    cas = [_ca(c, f"isd.scp11.ca[{n}]", curve, resolve) for n, c in enumerate(cas_raw)]
    refs = [(k.kid, k.kvn) for k in keys] + [(c.kid, c.kvn) for c in cas]
    if len(set(refs)) != len(refs):
        raise ProfileError("profile key isd.scp11: two keys with the same kid and kvn")
    return Scp11Material(curve_name, keys, cas)
