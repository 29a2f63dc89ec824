"""SCP11 on the command line (GP Card Specification v2.3, Amendment F).

* ``gpchannel scp11 make-pki --out DIR``: a test PKI written as files (:mod:`gpchannel.scp.scp11_pki`): CA-KLCC
  (``card-ca``), the Security Domain's SK.SD.ECKA keys for KID 11, 13 and 15 with their certificates, CA-KLOC
  (``oce-ca``), the OCE key and certificate, and ``card.toml``, a card profile (SCP03 with the default test keys,
  and ``[isd.scp11]`` naming those files).
* The host side of ``--scp 11a|11b|11c``: :class:`Scp11Credentials` from ``--scp11-key`` (SK.OCE.ECKA),
  ``--scp11-chain`` (repeatable: CA-KLOC's certificate first, the OCE's last), ``--scp11-trust`` (CA-KLCC's
  certificate or public key: the anchor for the card's chain), ``--scp11-kvn`` (the SD key's KVN) and
  ``--scp11-ca`` (the KID and KVN of the card's CA-KLOC key, hex ``1003``).

Private keys are written as unencrypted PKCS#8 PEM with mode 0600: this is a *test* PKI.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.errors import DecodeError
from gpchannel.scp.scp11 import SCP11_CURVES, Scp11Variant
from gpchannel.scp.scp11_cert import load_certificate
from gpchannel.scp.scp11_host import Scp11Host
from gpchannel.scp.scp11_pki import make_pki

__all__ = ["Scp11Credentials", "load_scp11_credentials", "scp11", "write_test_pki"]

_PROFILE = """# A test card: SCP03 with the GlobalPlatform default test keys (404142...4F) and SCP11 a/b/c beside it.
# Written by `gpchannel scp11 make-pki`. Never use these keys on a card in the field.

[card]
iccid = "8988211000000000011"
lifecycle = "SECURED"
{atr}
[isd]
aid = "A000000151000000"
scp = "03"
i = "70"
getdata_style = "{style}"

[[isd.keysets]]
kvn = 0x30
type = "aes"
enc = "404142434445464748494A4B4C4D4E4F"
mac = "404142434445464748494A4B4C4D4E4F"
dek = "404142434445464748494A4B4C4D4E4F"

[isd.scp11]
curve = "{curve}"
{keys}
[[isd.scp11.ca]]
kid = 0x10
kvn = 0x03
certificate = "oce-ca.cert.pem"
"""

_KEY = """
[[isd.scp11.keys]]
kid = 0x{kid:02X}
kvn = 0x01
private_key = "sd-{kid:02x}.key.pem"
certificates = ["card-ca.cert.pem", "sd-{kid:02x}.cert.pem"]
"""


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.write_bytes(data)
    if secret:
        os.chmod(path, 0o600)


def write_test_pki(
    out: Path, now: datetime.datetime, *, curve: str = "P-256", style: str = "gp", atr: bytes | None = None
) -> Path:
    """Write the test PKI and ``card.toml`` into ``out`` (created); returns the profile's path."""
    out.mkdir(parents=True, exist_ok=True)
    pki = make_pki(now, SCP11_CURVES[curve])
    _write(out / "card-ca.cert.pem", _pem(pki.card_ca))
    _write(out / "card-ca.key.pem", _key_pem(pki.card_ca_key), secret=True)
    for kid, key in pki.sd_keys.items():
        _write(out / f"sd-{kid:02x}.key.pem", _key_pem(key), secret=True)
        _write(out / f"sd-{kid:02x}.cert.pem", _pem(pki.sd_certs[kid]))
    _write(out / "oce-ca.cert.pem", _pem(pki.oce_ca))
    _write(out / "oce-ca.key.pem", _key_pem(pki.oce_ca_key), secret=True)
    _write(out / "oce.key.pem", _key_pem(pki.oce_key), secret=True)
    _write(out / "oce.cert.pem", _pem(pki.oce_cert))
    keys = "".join(_KEY.format(kid=kid) for kid in sorted(pki.sd_keys))
    atr_line = f'atr = "{atr.hex().upper()}"\n' if atr else ""
    profile = out / "card.toml"
    profile.write_text(_PROFILE.format(atr=atr_line, style=style, curve=curve, keys=keys))
    return profile


@dataclass(frozen=True)
class Scp11Credentials:
    """What the host needs for ``--scp 11a|11b|11c``."""

    variant: Scp11Variant
    trust: ec.EllipticCurvePublicKey
    kvn: int = 0x01
    oce_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    oce_chain: tuple[x509.Certificate, ...] = ()
    oce_ca: tuple[int, int] = (0x10, 0x03)

    def host_factory(self, now: datetime.datetime) -> Callable[[int], Scp11Host]:
        def make(channel: int) -> Scp11Host:
            return Scp11Host(
                self.variant,
                kvn=self.kvn,
                now=now,
                card_anchor=self.trust,
                oce_key=self.oce_key,
                oce_chain=self.oce_chain,
                oce_ca=self.oce_ca,
                channel=channel,
            )

        return make


def read_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    raw = path.read_bytes()
    try:
        key: object = load_certificate(raw).public_key()
    except DecodeError:
        try:
            key = serialization.load_pem_public_key(raw)
        except ValueError:
            raise click.BadParameter(f"{path}: neither a certificate nor a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise click.BadParameter(f"{path}: not an elliptic curve key")
    return key


def load_scp11_credentials(
    variant: str,
    key: Path | None,
    chain: tuple[Path, ...],
    trust: Path | None,
    kvn: int = 0x01,
    ca: str = "1003",
) -> Scp11Credentials:
    """The credentials from the command line options; click.BadParameter for anything missing or unreadable."""
    chosen = Scp11Variant.from_name(variant)
    if trust is None:
        raise click.BadParameter("--scp11-trust (the CA-KLCC certificate or key) is needed for SCP11")
    oce_key = None
    if chosen.oce_authenticated:
        if key is None or not chain:
            raise click.BadParameter(f"{chosen.label} needs --scp11-key and --scp11-chain")
        try:
            loaded = serialization.load_pem_private_key(key.read_bytes(), None)
        except ValueError as exc:
            raise click.BadParameter(f"{key}: not a PEM private key ({exc})") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise click.BadParameter(f"{key}: not an elliptic curve key")
        oce_key = loaded
    try:
        certs = tuple(load_certificate(p.read_bytes()) for p in chain)
        reference = bytes.fromhex(ca)
    except (DecodeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    if len(reference) != 2:
        raise click.BadParameter("--scp11-ca is the KID and KVN of the card's CA-KLOC key, e.g. 1003")
    return Scp11Credentials(chosen, read_public_key(trust), kvn, oce_key, certs, (reference[0], reference[1]))


@click.group()
def scp11() -> None:
    """SCP11 (GP 2.3 Amendment F) tools."""


@scp11.command("make-pki")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write.")
@click.option("--curve", type=click.Choice(sorted(SCP11_CURVES)), default="P-256", show_default=True)
@click.option("--getdata-style", type=click.Choice(["gp", "yubikey"]), default="gp", show_default=True)
def make_pki_command(out: Path, curve: str, getdata_style: str) -> None:
    """Write a test PKI for SCP11 and a card profile (card.toml) that uses it."""
    profile = write_test_pki(out, datetime.datetime.now(datetime.UTC), curve=curve, style=getdata_style)
    click.echo(f"wrote the SCP11 test PKI and {profile}")
