"""Issue 5 through the real PC/SC stack: the example applets (secure-store, indirect; scp03-direct, direct) on the
emulator served on a vpcd slot of pcscd, reached by the command line with ``--reader`` (PcscTransport).

The same scenarios run in memory in tests/card/test_applets_examples.py; here every APDU crosses pcscd and vpcd.
The protocol bytes are checked against external vectors in tests/card/test_secure_channel_service.py and
tests/scp/test_scp03.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.card.applets_examples import DIRECT_MODULE_AID, EXAMPLES_PACKAGE_AID, SECURE_STORE_MODULE_AID
from gpchannel.cli.main import cli
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import AuthenticationError, CardStatusError
from gpchannel.host.card import GpCard
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.io.transport import PcscTransport
from gpchannel.scp.common import SecurityLevel
from tests.card.harness import counter_random
from tests.card.test_applets_examples import (
    DIRECT_AID,
    DIRECT_KEYS,
    ISD_AID,
    ISD_KEYS,
    SSD_AID,
    STORE_AID,
    _direct_params,
    _key_dgis,
    _ok,
    _profile,
    _put,
)
from tests.emulator.pyscard_user import ServedCard, served
from tests.gp.test_cap import applet, build_cap, components, header

pytestmark = pytest.mark.pcsc

ISD = ["--key", ISD_KEYS.enc.hex()]
DIRECT = ["--key-enc", DIRECT_KEYS.enc.hex(), "--key-mac", DIRECT_KEYS.mac.hex(), "--key-dek", DIRECT_KEYS.dek.hex()]


@pytest.fixture(scope="module")
def card(pcscd_readers: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCard]:
    """One card for the module: both applets from the profile (store at level 01, direct at level 01)."""
    root = tmp_path_factory.mktemp("applets")
    profile = root / "card.toml"
    profile.write_text(_profile(), encoding="utf-8")
    with served(pcscd_readers, root / "state", profile) as served_card:
        yield served_card


def run(card: ServedCard, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["--reader", card.reader, *args], catch_exceptions=False)


@pytest.mark.parametrize("level", ["01", "03", "33"])
def test_direct_applet_session_through_pcscd(card: ServedCard, level: str) -> None:
    """The direct applet runs SCP03 itself with its own keys; 8012 answers the level the session opened at."""
    result = run(
        card, *DIRECT, "--security-level", level, "--app", DIRECT_AID.hex(), "apdu", "8010000002CAFE00", "80120000"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["CAFE", *_ok(), level, *_ok()]


@pytest.mark.parametrize("level", ["01", "03", "33"])
def test_secure_store_session_through_pcscd(card: ServedCard, level: str) -> None:
    """The indirect applet uses its Security Domain's (the ISD's) keys through the Secure Channel service."""
    value = bytes.fromhex(level).hex()
    result = run(card, *ISD, "--security-level", level, "--app", STORE_AID.hex(), "apdu", "80DA000003016B" + value)
    assert result.exit_code == 0, result.output
    stored = card.card.state.application(STORE_AID)
    assert stored is not None and stored.data["values"]["6B"] == value.upper()


def test_each_applet_refuses_the_other_keys(card: ServedCard) -> None:
    assert run(card, *ISD, "--app", DIRECT_AID.hex(), "apdu", "8012000000").exit_code != 0
    assert run(card, *DIRECT, "--app", STORE_AID.hex(), "apdu", "80DA000003016B76").exit_code != 0


def test_installed_with_install_and_below_the_level_is_6982(card: ServedCard, tmp_path: Path) -> None:
    """LOAD of a CAP with the examples' package, INSTALL of both with C9 parameters asking for level 33 (store)
    and 03 (direct): a session below the required level gets 6982, one at the level is served."""
    parts = components()
    parts["Header"] = header(EXAMPLES_PACKAGE_AID)
    parts["Applet"] = applet((SECURE_STORE_MODULE_AID, DIRECT_MODULE_AID))
    cap = tmp_path / "examples.cap"
    cap.write_bytes(build_cap(parts))
    isd = [*ISD, "--security-level", "03"]
    loaded = run(card, *isd, "load", str(cap))
    assert loaded.exit_code == 0, loaded.output
    store, direct = bytes.fromhex("F0677063680001010C"), bytes.fromhex("F0677063680001020C")
    for module, instance, params in (
        (SECURE_STORE_MODULE_AID, store, "C90133"),
        (DIRECT_MODULE_AID, direct, "C9" + bytes((51,)).hex() + _direct_params(0x03).hex()),
    ):
        args = ["install", "--package", EXAMPLES_PACKAGE_AID.hex(), "--applet", module.hex(), "--instance"]
        result = run(card, *isd, *args, instance.hex(), "--params", params)
        assert result.exit_code == 0, result.output
    put = ["--app", store.hex(), "apdu", "80DA000003016B76"]
    below = run(card, *isd, *put)
    assert below.exit_code != 0 and "6982" in below.stdout
    assert run(card, *ISD, "--security-level", "33", *put).exit_code == 0
    direct_below = run(card, *DIRECT, "--security-level", "01", "--app", direct.hex(), "apdu", "8010000001AA00")
    assert direct_below.exit_code != 0 and "6982" in direct_below.stdout
    echoed = run(card, *DIRECT, "--security-level", "03", "--app", direct.hex(), "apdu", "8010000001AA00")
    assert echoed.exit_code == 0 and echoed.stdout.split()[0] == "AA"


def test_ssd_association_through_pcscd(pcscd_readers: list[str], tmp_path: Path) -> None:
    """Create an SSD, give it its own keys (STORE DATA by the ISD, then PUT KEY in its own channel), extradite the
    secure store to it: the store then answers the SSD's keys and no longer the ISD's (GP 2.3.1, 11.5.2.3.3)."""
    profile = tmp_path / "card.toml"
    profile.write_text(_profile(), encoding="utf-8")
    first = StaticKeys(bytes([0xA1]) * 16, bytes([0xA2]) * 16, bytes([0xA3]) * 16, 0x30, KeyType.AES)
    own = StaticKeys(bytes([0xB1]) * 16, bytes([0xB2]) * 16, bytes([0xB3]) * 16, 0x31, KeyType.AES)
    with served(pcscd_readers, tmp_path / "state", profile) as card, PcscTransport(card.reader, timeout=20) as pcsc:
        gp = GpCard.connect(CardSession(pcsc, random=counter_random()), ISD_AID)

        def open_app(keys: StaticKeys, level: int, kvn: int = 0) -> None:
            gp.select(STORE_AID)
            gp.open_secure_channel(ChannelOptions(keys, SecurityLevel(level), kvn=kvn))

        open_app(ISD_KEYS, 0x03)
        assert gp.apdu(CommandApdu(0x80, 0xDA, 0, 0, _put(b"k", b"isd"))).sw == 0x9000
        gp.select(ISD_AID)
        gp.open_secure_channel(ChannelOptions(ISD_KEYS, SecurityLevel(0x03)))
        gp.create_ssd(SSD_AID)
        secure = gp.session.secure
        assert secure is not None
        gp.store_data([_key_dgis(first, secure.encrypt_key)], p1=0x68, application_aid=SSD_AID)
        gp.select(SSD_AID)
        gp.open_secure_channel(ChannelOptions(first, SecurityLevel(0x03)))
        gp.put_key(own, replace_kvn=first.kvn)
        gp.select(ISD_AID)
        gp.open_secure_channel(ChannelOptions(ISD_KEYS, SecurityLevel(0x03)))
        gp.extradite(STORE_AID, SSD_AID)
        app = card.card.state.application(STORE_AID)
        assert app is not None and app.sd_aid == SSD_AID
        with pytest.raises(CardStatusError) as exc:
            open_app(ISD_KEYS, 0x03, kvn=0x30)
        assert exc.value.sw == 0x6A88
        with pytest.raises(AuthenticationError):
            open_app(ISD_KEYS, 0x03)
        open_app(own, 0x33)
        assert gp.apdu(CommandApdu(0x80, 0xCA, 0, 0, b"k", le=256)) == ResponseApdu(b"isd")
        init = gp.session.init_response
        assert init is not None and init.kvn == 0x31
