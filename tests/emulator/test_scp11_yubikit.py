"""SCP11 and SCP03 through the real PC/SC stack with an independent peer: Yubico's yubikit (PyPI
yubikey-manager) against the emulator served on a vpcd slot of pcscd. Its SecurityDomainSession opens SCP03,
SCP11a, SCP11b and SCP11c sessions and runs management operations inside them (GET DATA E0 key information in
the YubiKey form, STORE DATA of a certificate bundle and of an allowlist, GENERATE KEY, DELETE [key], CA
identifiers); our host opens the same sessions. The tests share one card and run in file order: the last one
deletes every key.

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
from yubikit.core.smartcard import ApduError, SmartCardConnection, SmartCardProtocol  # noqa: E402
from yubikit.core.smartcard.scp import KeyRef, Scp03KeyParams, Scp11KeyParams, StaticKeys  # noqa: E402
from yubikit.securitydomain import Curve, SecurityDomainSession  # noqa: E402

NOW = datetime.datetime.now(datetime.UTC)
STORE_AID = bytes.fromhex("F06770636800010101")


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
    profile = write_test_pki(out, NOW, style="yubikey", atr=unique_atr())
    with profile.open("a") as f:  # an applet using its Security Domain's secure channel service (indirect)
        f.write(f'\n[[applications]]\naid = "{STORE_AID.hex().upper()}"\nkind = "secure-store"\nparameters = "33"\n')
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
    if not variant.oce_authenticated:  # "Requires OCE verification" (yubikit): SCP11b may only read
        with pytest.raises(ApduError) as refused:
            sd.store_certificate_bundle(KeyRef(0x15, 0x01), list(chain))
        assert refused.value.sw == 0x6982
        return
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
        with pytest.raises(ApduError) as refused:  # SCP11b does not authenticate the OCE: no management
            sd.store_allowlist(KeyRef(0x10, 0x03), [oce.serial_number])
        assert refused.value.sw == 0x6982
        sd = SecurityDomainSession(PyscardConnection(connection))
        sd.authenticate(Scp03KeyParams(KeyRef(0x01, 0x30), StaticKeys.default()))
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


def test_yubikit_generates_a_key_and_opens_scp11b_with_it(sd: SecurityDomainSession, pki: Path) -> None:
    sd.authenticate(Scp03KeyParams(KeyRef(0x01, 0x30), StaticKeys.default()))
    public = sd.generate_ec_key(KeyRef(0x13, 0x02), Curve.SECP256R1)
    assert KeyRef(0x13, 0x02) in sd.get_key_information()
    assert sd.get_certificate_bundle(KeyRef(0x13, 0x02)) == []  # a generated key has no certificates yet
    session = SecurityDomainSession(sd.protocol.connection)
    session.authenticate(Scp11KeyParams(KeyRef(0x13, 0x02), public))  # the returned point is the card's key
    assert KeyRef(0x13, 0x02) in session.get_key_information()
    with pytest.raises(ApduError) as refused:  # and SCP11b may not generate (nor delete) keys
        session.generate_ec_key(KeyRef(0x13, 0x03))
    assert refused.value.sw == 0x6982
    # inside SCP11a: replace KVN 02 by 03, then delete it
    session = SecurityDomainSession(sd.protocol.connection)
    session.authenticate(scp11_params(session, pki, Scp11Variant.A))
    replaced = session.generate_ec_key(KeyRef(0x13, 0x03), replace_kvn=0x02)
    info = session.get_key_information()
    assert KeyRef(0x13, 0x03) in info and KeyRef(0x13, 0x02) not in info
    assert replaced.public_numbers() != public.public_numbers()
    session.delete_key(0x13, 0x03)
    assert KeyRef(0x13, 0x03) not in session.get_key_information()
    with pytest.raises(ApduError) as missing:
        session.delete_key(0x13, 0x03)
    assert missing.value.sw == 0x6A88
    with pytest.raises(ApduError) as wrong_kid:
        session.generate_ec_key(KeyRef(0x10, 0x05))  # a CA-KLOC key is not generated on the card
    assert wrong_kid.value.sw == 0x6A86


def test_yubikit_ca_identifiers(sd: SecurityDomainSession) -> None:
    sd.authenticate(Scp03KeyParams(KeyRef(0x01, 0x30), StaticKeys.default()))
    assert sd.get_supported_ca_identifiers() == {}  # 6A88 for both, which yubikit takes as none
    sd.store_ca_issuer(KeyRef(0x10, 0x03), b"\x0a" * 20)  # CA-KLOC
    sd.store_ca_issuer(KeyRef(0x13, 0x01), b"\x0b" * 20)  # CA-KLCC of the SCP11b key's certificate
    assert sd.get_supported_ca_identifiers(kloc=True) == {KeyRef(0x10, 0x03): b"\x0a" * 20}
    assert sd.get_supported_ca_identifiers(klcc=True) == {KeyRef(0x13, 0x01): b"\x0b" * 20}
    assert len(sd.get_supported_ca_identifiers()) == 2
    with pytest.raises(ApduError) as missing:
        sd.store_ca_issuer(KeyRef(0x15, 0x09), b"\x0c" * 20)
    assert missing.value.sw == 0x6A88


@pytest.mark.parametrize("variant", list(Scp11Variant), ids=lambda v: v.label)
def test_yubikit_scp11_with_an_applet_through_the_secure_channel_service(
    card: ServedCard, pki: Path, variant: Scp11Variant
) -> None:
    connection = card.connect()
    try:
        params = scp11_params(SecurityDomainSession(PyscardConnection(connection)), pki, variant)
        protocol = SmartCardProtocol(PyscardConnection(connection))
        protocol.select(STORE_AID)
        protocol.init_scp(params)  # PSO and MUTUAL / INTERNAL AUTHENTICATE to the applet's process_security
        if variant.oce_authenticated:
            protocol.send_apdu(0x80, 0xDA, 0x00, 0x00, b"\x01\x4b" + variant.label.encode())
            assert protocol.send_apdu(0x80, 0xCA, 0x00, 0x00, b"\x4b") == variant.label.encode()
        else:  # the applet requires AUTHENTICATED, which SCP11b does not give: refused inside the session
            with pytest.raises(ApduError) as refused:
                protocol.send_apdu(0x80, 0xCA, 0x00, 0x00, b"\x4b")
            assert refused.value.sw == 0x6982
    finally:
        connection.disconnect()


def test_yubikit_deletes_every_key_and_the_last_only_when_told(card: ServedCard, pki: Path) -> None:
    connection = card.connect()
    try:
        sd = SecurityDomainSession(PyscardConnection(connection))
        sd.authenticate(scp11_params(sd, pki, Scp11Variant.A))
        sd.delete_key(kvn=0x30)  # the SCP03 key set (by KVN, as yubikit allows for SCP03)
        sd.delete_key(kid=0x15)
        sd.delete_key(kid=0x11)
        sd.delete_key(kid=0x10)  # the CA-KLOC key: SCP11a/c can no longer be opened
        assert set(sd.get_key_information()) == {KeyRef(0x13, 0x01)}
        with pytest.raises(ApduError) as last:
            sd.delete_key(kid=0x13)  # the last key that opens a secure channel
        assert last.value.sw == 0x6985
        sd.delete_key(kid=0x13, delete_last=True)
        # the YubiKey-style Security Domain is back to its default SCP03 key set (KVN FF), as Yubico documents
        sd = SecurityDomainSession(PyscardConnection(connection))
        sd.authenticate(Scp03KeyParams(KeyRef(0x01, 0xFF), StaticKeys.default()))
        assert set(sd.get_key_information()) == {KeyRef(0x01, 0xFF), KeyRef(0x02, 0xFF), KeyRef(0x03, 0xFF)}
    finally:
        connection.disconnect()
