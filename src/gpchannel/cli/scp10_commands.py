"""SCP10 on the command line (GP Card Specification 2.2.1, Appendix F).

* ``gpchannel scp10 make-pki --out DIR``: a matching test PKI (Figure F-1) written as files: the trust points
  TP_EX (certifies the off-card side) and TP_IN (certifies the card), the intermediate KA_EX, the card's key
  and CERT.SD.AUT, the off-card entity's key and its chain, plus ``card.toml``, a ready card profile whose
  ``[isd.scp10]`` table names those files, and ``README.txt`` with the command lines that use them.
* The host side of ``--scp 10``: :class:`Scp10Credentials` (the off-card entity key, its certificate chain, the
  trust anchor for the card certificate, the "i" option) read from the global options ``--scp10-key``,
  ``--scp10-chain`` (repeatable, from the certificate signed by TP_EX down to the off-card entity's),
  ``--scp10-trust`` and ``--scp10-option``, and the factory of
  :class:`~gpchannel.scp.scp10_host.Scp10Host` given to the session.

Private keys are written as unencrypted PKCS#8 PEM with mode 0600: this is a *test* PKI.
"""

from __future__ import annotations

import base64
import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from gpchannel.card.scp10_domain import certificate_subject, pem_decode
from gpchannel.crypto.rsa import RsaPrivateKey, RsaPublicKey
from gpchannel.errors import DecodeError
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.scp10 import Scp10Option, check_level
from gpchannel.scp.scp10_cert import Certificate, make_test_pki
from gpchannel.scp.scp10_host import Scp10Host

__all__ = [
    "CERTIFICATE_LABEL",
    "Scp10Credentials",
    "certificate_pem",
    "load_credentials",
    "read_certificate",
    "scp10",
    "scp10_level",
    "today_utc",
]

CERTIFICATE_LABEL = "SCP10 CERTIFICATE"
"""The PEM label of a GP certificate (the 7F21 data object of F.1.3.4, which is not X.509)."""

OPTIONS = {"agreement": Scp10Option.KEY_AGREEMENT, "transport": Scp10Option.KEY_TRANSPORT}


def today_utc() -> datetime.date:
    """The date certificates are checked against."""
    return datetime.datetime.now(datetime.UTC).date()


def scp10_level(text: str) -> SecurityLevel:
    """An SCP10 security level from a hex byte: any combination of C-MAC 01, C-ENC 02, R-MAC 10 and R-ENC 20
    (F.1.6, F.3.2: each protection stands on its own). click.BadParameter otherwise."""
    try:
        return SecurityLevel(check_level(int(text.strip(), 16)))
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: an SCP10 level is a hex byte of the bits 01, 02, 10 and 20", param_hint="--security-level"
        ) from None


def certificate_pem(raw: bytes) -> bytes:
    """A 7F21 certificate as PEM (label :data:`CERTIFICATE_LABEL`)."""
    body = base64.b64encode(raw).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(
        [f"-----BEGIN {CERTIFICATE_LABEL}-----", *lines, f"-----END {CERTIFICATE_LABEL}-----", ""]
    ).encode()


def read_certificate(path: Path) -> bytes:
    """A 7F21 certificate from a file: PEM, or the binary data object. ValueError naming the file."""
    try:
        data = path.read_bytes()
        raw = pem_decode(data) if data.lstrip().startswith(b"-----BEGIN ") else data
        certificate_subject(raw)  # it parses as a certificate
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    except DecodeError as exc:
        raise ValueError(f"{path}: not a 7F21 certificate ({exc})") from None
    return raw


@dataclass(frozen=True)
class Scp10Credentials:
    """The off-card entity's side of SCP10: SK.OCE.AUT (never in a repr), its certificate chain, its id (the
    subject of its certificate), PK.TP_IN.AUT to verify the card certificate with, and the "i" option."""

    key: RsaPrivateKey = field(repr=False)
    chain: tuple[bytes, ...]
    oce_id: bytes
    trust: RsaPublicKey
    option: Scp10Option = Scp10Option.KEY_TRANSPORT

    def host_factory(
        self, random: Callable[[int], bytes], now: datetime.date
    ) -> Callable[[SecurityLevel, int], Scp10Host]:
        """What ``ChannelOptions.scp10`` takes: a new Scp10Host for (level, logical channel)."""

        def make(level: SecurityLevel, channel: int) -> Scp10Host:
            return Scp10Host(
                self.option,
                int(level),
                self.key,
                self.chain,
                self.oce_id,
                random,
                now,
                trust_point=self.trust,
                channel=channel,
            )

        return make


def load_credentials(
    key: Path | None, chain: Sequence[Path], trust: Path | None, option: str | None
) -> Scp10Credentials:
    """Read the ``--scp10-*`` options; ValueError saying which one is missing or wrong."""
    if key is None or not chain or trust is None:
        raise ValueError("--scp 10 needs --scp10-key, --scp10-chain (one or more) and --scp10-trust")
    try:
        private = RsaPrivateKey.from_pem_or_der(key.read_bytes())
    except OSError as exc:
        raise ValueError(f"--scp10-key {key}: {exc.strerror or exc}") from None
    except DecodeError as exc:
        raise ValueError(f"--scp10-key {key}: {exc}") from None
    try:
        anchor = RsaPublicKey.from_pem_or_der(trust.read_bytes())
    except OSError as exc:
        raise ValueError(f"--scp10-trust {trust}: {exc.strerror or exc}") from None
    except DecodeError as exc:
        raise ValueError(f"--scp10-trust {trust}: {exc}") from None
    certificates = tuple(read_certificate(p) for p in chain)
    subject = certificate_subject(certificates[-1])
    if subject is None:
        raise ValueError("--scp10-chain: the last certificate (the off-card entity's) must be without recovery")
    return Scp10Credentials(private, certificates, subject, anchor, OPTIONS[option or "transport"])


# -- gpchannel scp10 make-pki ----------------------------------------------------------------------------------------
_PROFILE = """# A card profile for the SCP10 test PKI made by `gpchannel scp10 make-pki` (docs/profile.md).
[card]
iccid = "8988211000000000010"

[isd]
aid = "A000000151000000"
scp = "10"
i = "02"

[isd.scp10]
private_key = "card.key.pem"
certificate = "card.cert.pem"
trust_anchor = "tp_ex.pub.pem"
options = ["agreement", "transport"]

[[applications]]
aid = "A0000000871002FF49FF0589"
kind = "echo"
lifecycle = "SELECTABLE"
"""

_README = """A test PKI for SCP10 (GP Card Specification 2.2.1, Appendix F), valid {start} to {end}.

  tp_ex.key.pem / tp_ex.pub.pem    trust point for off-card certificates (PK.TP_EX.AUT, on the card)
  ka_ex.key.pem / ka_ex.cert.pem   intermediate authority, certified by TP_EX
  oce.key.pem   / oce.cert.pem     the off-card entity, certified by KA_EX (its chain: ka_ex, oce)
  tp_in.key.pem / tp_in.pub.pem    trust point for card certificates (PK.TP_IN.AUT, on the host)
  card.key.pem  / card.cert.pem    the Security Domain (SK.SD.AUT, CERT.SD.AUT), certified by TP_IN
  *.cert.der                        the same certificates as binary 7F21 data objects
  card.toml                         a card profile using these files

Try it with the emulator:

  gpchannel --emulator STATE_DIR --profile {out}/card.toml --scp 10 \\
      --scp10-key {out}/oce.key.pem --scp10-chain {out}/ka_ex.cert.pem --scp10-chain {out}/oce.cert.pem \\
      --scp10-trust {out}/tp_in.pub.pem --scp10-option agreement --security-level 33 list
"""


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    if secret:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    else:
        path.write_bytes(data)


@click.group()
def scp10() -> None:
    """SCP10 (public-key secure channel) helpers."""


@scp10.command("make-pki")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Directory.")
@click.option("--bits", type=click.IntRange(1024, 4096), default=1024, show_default=True, help="RSA key size.")
@click.option("--days", type=click.IntRange(1, 36500), default=365, show_default=True, help="Validity from today.")
@click.option("--force", is_flag=True, help="Overwrite files of an earlier PKI in DIR.")
def make_pki(out: Path, bits: int, days: int, force: bool) -> None:
    """Write a matching test PKI (CA, card, off-card entity) and a card profile using it to DIR."""
    start = today_utc()
    if (out / "card.toml").exists() and not force:
        raise click.ClickException(f"{out} already holds a PKI; pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    pki = make_test_pki(os.urandom, start, bits=bits, days=days)
    keys = {"tp_ex": pki.tp_ex, "tp_in": pki.tp_in, "ka_ex": pki.ka_ex, "card": pki.card, "oce": pki.oce}
    for name, private in keys.items():
        _write(out / f"{name}.key.pem", private.to_pem(), secret=True)
    for name in ("tp_ex", "tp_in"):
        _write(out / f"{name}.pub.pem", keys[name].public.to_pem())
    certificates: dict[str, Certificate] = {"ka_ex": pki.oce_chain[0], "oce": pki.oce_chain[1]}
    certificates["card"] = pki.card_certificate
    for name, cert in certificates.items():
        _write(out / f"{name}.cert.pem", certificate_pem(cert.to_bytes()))
        _write(out / f"{name}.cert.der", cert.to_bytes())
    _write(out / "card.toml", _PROFILE.encode())
    end = start + datetime.timedelta(days=days)
    _write(out / "README.txt", _README.format(start=start, end=end, out=out).encode())
    click.echo(f"wrote a {bits}-bit test PKI valid {start} to {end} in {out} (see {out / 'README.txt'})")
