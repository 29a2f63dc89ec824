"""SCP11 on curves other than P-256 with an independent peer: yubikit (which takes the curve of the card's key for
its ephemeral key and keeps AES-128 session keys, SHA-256 in the KDF) opens SCP11a, b and c sessions with the
emulator through pcscd + vpcd on P-384, P-521 and brainpoolP256r1, and has the card generate a key on that curve,
then opens SCP11b with it. In CI a missing yubikit fails the test (see test_scp11_yubikit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gpchannel.cli.scp11_commands import write_test_pki
from gpchannel.scp.scp11 import Scp11Variant
from tests.emulator.pyscard_user import ServedCard, served, unique_atr
from tests.emulator.test_scp11_yubikit import NOW, PyscardConnection, scp11_params

pytestmark = pytest.mark.pcsc

from yubikit.core.smartcard.scp import KeyRef, Scp11KeyParams  # noqa: E402
from yubikit.securitydomain import Curve, SecurityDomainSession  # noqa: E402

CURVES = {"P-384": Curve.SECP384R1, "P-521": Curve.SECP521R1, "brainpoolP256r1": Curve.BrainpoolP256R1}
SIZES = {"P-384": 48, "P-521": 66, "brainpoolP256r1": 32}


@pytest.fixture(scope="module", params=sorted(CURVES))
def curve_card(
    request: pytest.FixtureRequest, pcscd_readers: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, ServedCard]]:
    name: str = request.param
    pki = tmp_path_factory.mktemp(f"scp11-{name}")
    write_test_pki(pki, NOW, curve=name, style="yubikey", atr=unique_atr())
    with served(pcscd_readers, tmp_path_factory.mktemp("state") / "state", pki / "card.toml") as card:
        yield name, pki, card


def test_yubikit_sessions_and_generate_key_on_the_curve(curve_card: tuple[str, Path, ServedCard]) -> None:
    name, pki, card = curve_card
    connection = card.connect()
    try:
        for variant in Scp11Variant:
            sd = SecurityDomainSession(PyscardConnection(connection))
            sd.authenticate(scp11_params(sd, pki, variant))
            info = sd.get_key_information()
            assert info[KeyRef(variant.kid, 0x01)] == {0xB1: SIZES[name], 0xF0: 1}  # private value, curve
            assert info[KeyRef(0x10, 0x03)] == {0xB0: 2 * SIZES[name] + 1, 0xF0: 1}  # an uncompressed point
        sd = SecurityDomainSession(PyscardConnection(connection))
        sd.authenticate(scp11_params(sd, pki, Scp11Variant.A))
        public = sd.generate_ec_key(KeyRef(0x13, 0x02), CURVES[name])
        assert public.curve.name == sd.get_certificate_bundle(KeyRef(0x13, 0x01))[-1].public_key().curve.name  # type: ignore[union-attr]
        session = SecurityDomainSession(PyscardConnection(connection))
        session.authenticate(Scp11KeyParams(KeyRef(0x13, 0x02), public))
        assert KeyRef(0x13, 0x02) in session.get_key_information()
    finally:
        connection.disconnect()
