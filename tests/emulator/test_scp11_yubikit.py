"""SCP11 and SCP03 through the real PC/SC stack with an independent peer: Yubico's yubikit (PyPI
yubikey-manager) against the emulator served on a vpcd slot of pcscd. Its SecurityDomainSession opens SCP03,
SCP11a, SCP11b and SCP11c sessions and runs management operations inside them (GET DATA E0 key information in
the YubiKey form, STORE DATA of a certificate bundle and of an allowlist); our host opens the same sessions.

yubikit is a dev dependency; outside CI a missing one skips these tests, in CI (CI=true) it fails them.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gpchannel.cli.scp11_commands import write_test_pki
from gpchannel.codec.apdu import CommandApdu
from gpchannel.scp.scp11 import Scp11Variant
from gpchannel.scp.scp11_cert import load_certificate
from gpchannel.scp.scp11_host import Scp11Host
from tests.emulator.pyscard_user import SELECT_ISD, ServedCard, served, transmit, unique_atr

pytestmark = pytest.mark.pcsc

if os.environ.get("CI") == "true":
    import yubikit.securitydomain  # noqa: F401  # in CI a missing yubikit fails, never skips
else:
    pytest.importorskip("yubikit.securitydomain", reason="yubikey-manager (yubikit) is not installed")

from yubikit.core import TRANSPORT  # noqa: E402
from yubikit.core.smartcard import SmartCardConnection  # noqa: E402
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, Scp11KeyParams, StaticKeys  # noqa: E402
from yubikit.securitydomain import SecurityDomainSession  # noqa: E402

NOW = datetime.datetime.now(datetime.UTC)


class PyscardConnection(SmartCardConnection):
    """yubikit's connection interface over a connected pyscard CardConnection."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @property
    def transport(self) -> TRANSPORT:
        return TRANSPORT.USB

    def close(self) -> None:
        self.connection.disconnect()

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw1, sw2 = self.connection.transmit(list(apdu))
        return bytes(data), sw1 << 8 | sw2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp11-pki")
    write_test_pki(out, NOW, style="yubikey", atr=unique_atr())
    return out


@pytest.fixture(scope="module")
def card(pcscd_readers: list[str], pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCard]:
    with served(pcscd_readers, tmp_path_factory.mktemp("scp11-state") / "state", pki / "card.toml") as served_card:
        yield served_card


@pytest.fixture
def sd(card: ServedCard) -> Iterator[SecurityDomainSession]:
    connection = card.connect()
    try:
        yield SecurityDomainSession(PyscardConnection(connection))
    finally:
        connection.disconnect()


def private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def scp11_params(sd: SecurityDomainSession, pki: Path, variant: Scp11Variant) -> Scp11KeyParams:
    ref = KeyRef(variant.kid, 0x01)
    chain = sd.get_certificate_bundle(ref)
    anchor = load_certificate((pki / "card-ca.cert.pem").read_bytes())
    assert [c.subject for c in chain] == [anchor.subject, chain[-1].subject] and len(chain) == 2
    pk = chain[-1].public_key()
    assert isinstance(pk, ec.EllipticCurvePublicKey)
    if not variant.oce_authenticated:
        return Scp11KeyParams(ref, pk)
    certificates = [load_certificate((pki / name).read_bytes()) for name in ("oce-ca.cert.pem", "oce.cert.pem")]
    return Scp11KeyParams(ref, pk, KeyRef(0x10, 0x03), private_key(pki / "oce.key.pem"), certificates)


def test_yubikit_scp03_session_reads_key_information(sd: SecurityDomainSession) -> None:
    sd.authenticate(Scp03KeyParams(KeyRef(0x01, 0x30), StaticKeys.default()))
    info = sd.get_key_information()
    assert KeyRef(0x01, 0x30) in info and KeyRef(0x13, 0x01) in info and KeyRef(0x10, 0x03) in info


@pytest.mark.parametrize("variant", list(Scp11Variant), ids=lambda v: v.label)
def test_yubikit_scp11_session_with_management_operation(
    sd: SecurityDomainSession, pki: Path, variant: Scp11Variant
) -> None:
    sd.authenticate(scp11_params(sd, pki, variant))
    info = sd.get_key_information()
    assert KeyRef(variant.kid, 0x01) in info
    # STORE DATA of a certificate bundle inside the session, read back with GET DATA BF21
    chain = sd.get_certificate_bundle(KeyRef(0x15, 0x01))
    sd.store_certificate_bundle(KeyRef(0x15, 0x01), list(chain))
    assert list(sd.get_certificate_bundle(KeyRef(0x15, 0x01))) == list(chain)


def test_yubikit_scp11a_refused_when_not_in_the_allowlist(card: ServedCard, pki: Path) -> None:
    connection = card.connect()
    try:
        sd = SecurityDomainSession(PyscardConnection(connection))
        params = scp11_params(sd, pki, Scp11Variant.A)
        sd.authenticate(params)
        oce = load_certificate((pki / "oce.cert.pem").read_bytes())
        sd.store_allowlist(KeyRef(0x10, 0x03), [oce.serial_number + 1])
        sd = SecurityDomainSession(PyscardConnection(connection))
        with pytest.raises(Exception, match=r"6982|SECURITY"):
            sd.authenticate(scp11_params(sd, pki, Scp11Variant.A))
        sd = SecurityDomainSession(PyscardConnection(connection))
        sd.authenticate(scp11_params(sd, pki, Scp11Variant.B))
        sd.store_allowlist(KeyRef(0x10, 0x03), [oce.serial_number])
        sd = SecurityDomainSession(PyscardConnection(connection))
        sd.authenticate(scp11_params(sd, pki, Scp11Variant.C))
    finally:
        connection.disconnect()


@pytest.mark.parametrize("variant", list(Scp11Variant), ids=lambda v: v.label)
def test_our_host_opens_scp11_through_pcscd(card: ServedCard, pki: Path, variant: Scp11Variant) -> None:
    connection = card.connect()
    try:
        assert transmit(connection, SELECT_ISD).sw == 0x9000
        anchor = load_certificate((pki / "card-ca.cert.pem").read_bytes()).public_key()
        assert isinstance(anchor, ec.EllipticCurvePublicKey)
        extra: dict[str, Any] = {}
        if variant.oce_authenticated:
            chain = tuple(load_certificate((pki / n).read_bytes()) for n in ("oce-ca.cert.pem", "oce.cert.pem"))
            extra = {"oce_key": private_key(pki / "oce.key.pem"), "oce_chain": chain, "oce_ca": (0x10, 0x03)}
        host = Scp11Host(variant, kvn=0x01, now=NOW, card_anchor=anchor, **extra)
        host.run(lambda command: transmit(connection, command.to_bytes()))
        assert host.is_open
        response = host.unwrap(transmit(connection, host.wrap(CommandApdu(0x80, 0xCA, 0x00, 0xE0, le=256)).to_bytes()))
        assert response.sw == 0x9000 and bytes((variant.kid, 0x01)) in response.data
    finally:
        connection.disconnect()
