"""Issue 11 through the real PC/SC stack: Delegated Management with tokens and receipts, and DAP verification
(GP 2.3.1, 9.1.3, 9.2, 9.3.5, Appendix C), on the emulator served on a vpcd slot of pcscd, reached with the command
line (``--reader``) and the host library (GpCard over PcscTransport).

The token key is the NIST CAVS RSA key of tests/vectors/tokens/asym.json (see tests/card/test_delegated.py); the
token and receipt computations are checked against external vectors in tests/gp/test_tokens.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.card.profile import DEFAULT_ISD_PRIVILEGES
from gpchannel.cli.main import EXIT_CARD_STATUS, cli
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import IntegrityError
from gpchannel.gp.cap import CapFile
from gpchannel.gp.install import InstallForInstall
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.tokens import install_token_data
from gpchannel.host.card import GpCard
from gpchannel.host.delegated import Delegation
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.io.transport import PcscTransport
from gpchannel.scp.common import SecurityLevel
from tests.card.test_delegated import DAP_SD, INSTANCE, ISSUER, ISSUER_PEM, RECEIPT_KEY, RECEIPTS, SSD
from tests.emulator.pyscard_user import PROFILES, ServedCard, served
from tests.gp.test_cap import applet, build_cap, components, header

pytestmark = pytest.mark.pcsc

SSD_KEY = "000102030405060708090A0B0C0D0E0F"
DAP_KEY = "0123456789ABCDEFFEDCBA9876543210"
MANDATED_SD = bytes.fromhex("A00000015144415001")


@dataclass
class Setup:
    card: ServedCard
    root: Path
    pem: Path
    cap: Path


def run(card: ServedCard, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["--reader", card.reader, *args], catch_exceptions=False)


def _profile(path: Path) -> Path:
    """The repository's SCP03 profile with an ISD that verifies tokens and generates receipts (9.1.3.1, 9.1.3.6)."""
    privileges = Privileges.from_bytes(DEFAULT_ISD_PRIVILEGES) | Privileges.of(
        Privilege.TOKEN_MANAGEMENT, Privilege.RECEIPT_GENERATION
    )
    text = (PROFILES / "scp03.toml").read_text(encoding="utf-8")
    assert "[isd]\n" in text
    path.write_text(text.replace("[isd]\n", f'[isd]\nprivileges = "{privileges.to_bytes().hex()}"\n', 1))
    return path


def _cap(package: str) -> bytes:
    """A CAP file of package ``package`` (hex) with one applet, ``package`` + 01."""
    parts = components()
    parts["Header"] = header(bytes.fromhex(package))
    parts["Applet"] = applet((bytes.fromhex(package + "01"),))
    return build_cap(parts)


def _aids(card: ServedCard, kind: str) -> list[str]:
    """What ``gpchannel list --json`` shows of one kind, through pcscd."""
    result = run(card, "list", "--json")
    assert result.exit_code == 0, result.output
    return [item["aid"] for item in json.loads(result.stdout) if item["kind"] == kind]


@pytest.fixture(scope="module")
def setup(pcscd_readers: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """One card for the module: an SSD with Delegated Management, a DAP SD with its DAP key (73), and the ISD's
    token (70) and receipt (71) keys, all put in through pcscd with the command line."""
    root = tmp_path_factory.mktemp("delegated")
    with served(pcscd_readers, root / "state", _profile(root / "card.toml")) as card:
        for aid, privilege in ((SSD, "DelegatedManagement"), (DAP_SD, "DAPVerification")):
            result = run(card, "create-ssd", aid.hex(), "--privileges", privilege, "--ssd-key", SSD_KEY)
            assert result.exit_code == 0, result.output
        pem = root / "issuer.pem"
        pem.write_bytes(ISSUER_PEM)
        result = run(card, "put-key", "--token-key", str(pem), "--receipt-key", RECEIPT_KEY.hex())
        assert result.exit_code == 0, result.output
        assert "key 70 written" in result.output and "key 71 written" in result.output
        result = run(card, "--isd", DAP_SD.hex(), "--key", SSD_KEY, "put-key", "--dap-key", DAP_KEY)
        assert result.exit_code == 0, result.output
        cap = root / "hello.cap"
        cap.write_bytes(build_cap(components()))
        yield Setup(card, root, pem, cap)


def test_delegated_load_and_install_need_valid_tokens(setup: Setup) -> None:
    card, receipt = setup.card, RECEIPT_KEY.hex()
    parsed = CapFile.from_bytes(setup.cap.read_bytes())
    ssd = ["--isd", SSD.hex(), "--key", SSD_KEY]
    refused = run(card, *ssd, "load", str(setup.cap))  # no Load Token
    assert refused.exit_code == EXIT_CARD_STATUS and "6982" in refused.output
    assert parsed.package_aid.hex().upper() not in _aids(card, "load-file")
    result = run(card, *ssd, "load", str(setup.cap), "--dm-key", str(setup.pem), "--receipt-key", receipt)
    assert result.exit_code == 0, result.output
    assert "receipt 0000 verified" in result.output
    install = ["install", "--cap", str(setup.cap), "--instance", INSTANCE.hex()]
    result = run(card, *ssd, *install)  # no Install Token
    assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
    # A genuine token of the Card Issuer, but for other data (another instance AID).
    other = InstallForInstall(parsed.package_aid, parsed.applet_aids[0], INSTANCE[:-1] + b"\x02")
    foreign = ISSUER.sign(install_token_data(0x0C, 0x00, other)).hex()
    result = run(card, *ssd, *install, "--dm-token", foreign)
    assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
    assert INSTANCE.hex().upper() not in _aids(card, "application")
    result = run(card, *ssd, *install, "--dm-key", str(setup.pem), "--receipt-key", receipt)
    assert result.exit_code == 0, result.output
    assert "receipt 0001 verified" in result.output
    assert INSTANCE.hex().upper() in _aids(card, "application")
    # The receipt of the DELETE checked with another key does not verify (the card did delete).
    result = run(card, *ssd, "delete", INSTANCE.hex(), "--dm-key", str(setup.pem), "--receipt-key", "00" * 16)
    assert result.exit_code != 0 and "receipt does not verify" in result.output
    assert INSTANCE.hex().upper() not in _aids(card, "application")


class Tampering:
    """PcscTransport that flips one receipt bit in the card's answers to INSTALL and DELETE."""

    def __init__(self, inner: PcscTransport) -> None:
        self.inner = inner

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        answer = self.inner.transmit(command)
        if command.ins in (0xE4, 0xE6) and len(answer.data) > 8:
            data = answer.data[:3] + bytes((answer.data[3] ^ 0x01,)) + answer.data[4:]
            return ResponseApdu(data, answer.sw)
        return answer

    def close(self) -> None:
        self.inner.close()


def test_host_library_receipts_verify_and_a_tampered_one_is_detected(setup: Setup) -> None:
    parsed = CapFile.from_bytes(_cap("A0000000620377"))
    module, instance = parsed.applet_aids[0], parsed.package_aid + b"\x01\x07"
    delegation = Delegation(token_key=ISSUER, receipt_key=RECEIPTS)
    keys = ChannelOptions(StaticKeys.single(bytes.fromhex(SSD_KEY), 0x30, KeyType.AES), SecurityLevel.C_MAC)
    with PcscTransport(setup.card.reader, timeout=20) as pcsc:
        provider = GpCard.connect(CardSession(pcsc, random=lambda n: bytes(range(n))), SSD)
        provider.open_secure_channel(keys)
        provider.load(parsed, delegation=delegation)
        assert provider.last_confirmation is not None
        provider.install(parsed.package_aid, module, instance, delegation=delegation)
        confirmation = provider.last_confirmation
        assert confirmation is not None and confirmation.data.counter >= 1
    with PcscTransport(setup.card.reader, timeout=20) as pcsc:
        tampered = GpCard.connect(CardSession(Tampering(pcsc), random=lambda n: bytes(range(n))), SSD)
        tampered.open_secure_channel(keys)
        with pytest.raises(IntegrityError):
            tampered.delete(instance, delegation=delegation)
    assert instance.hex().upper() not in _aids(setup.card, "application")  # only the receipt was altered


def test_a_wrong_dap_is_refused_and_leaves_no_trace(setup: Setup) -> None:
    card = setup.card
    cap = setup.root / "dap.cap"
    cap.write_bytes(_cap("A0000000620378"))
    parsed = CapFile.from_bytes(cap.read_bytes())
    before = run(card, "list", "--json").stdout
    dap = ["load", str(cap), "--sd", DAP_SD.hex(), "--dap-domain", DAP_SD.hex()]
    result = run(card, *dap, "--dap-signature", "00" * 16)
    assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
    assert run(card, "list", "--json").stdout == before
    result = run(card, "load", str(cap), "--hash", "--sd", DAP_SD.hex())  # the associated SD requires its DAP
    assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
    assert parsed.package_aid.hex().upper() not in _aids(card, "load-file")
    result = run(card, *dap, "--dap-key", DAP_KEY)
    assert result.exit_code == 0, result.output
    assert parsed.package_aid.hex().upper() in _aids(card, "load-file")


def test_mandated_dap_is_enforced_for_every_load(pcscd_readers: list[str], tmp_path: Path) -> None:
    """With a Mandated DAP Verification SD on the card, every load (even into the ISD) needs its DAP (9.2.1)."""
    with served(pcscd_readers, tmp_path / "state", PROFILES / "scp03.toml") as card:
        privileges = Privileges.of(Privilege.DAP_VERIFICATION, Privilege.MANDATED_DAP_VERIFICATION).to_bytes().hex()
        result = run(card, "create-ssd", MANDATED_SD.hex(), "--privileges", privileges, "--ssd-key", SSD_KEY)
        assert result.exit_code == 0, result.output
        mandated = ["--isd", MANDATED_SD.hex(), "--key", SSD_KEY]
        result = run(card, *mandated, "put-key", "--dap-key", DAP_KEY)
        assert result.exit_code == 0, result.output
        # Mandated DAP applies to an SD in the PERSONALIZED state (GP 2.3.1, 9.3.5): it goes there with SET STATUS.
        personalize = "80F0400F" + bytes((len(MANDATED_SD),)).hex() + MANDATED_SD.hex()
        result = run(card, *mandated, "apdu", personalize)
        assert result.exit_code == 0, result.output
        assert [
            i["lifecycle"]
            for i in json.loads(run(card, "list", "--json").stdout)
            if i["aid"] == MANDATED_SD.hex().upper()
        ] == ["PERSONALIZED"]
        for n, package_aid in enumerate(("A0000000620381", "A0000000620382")):
            cap = tmp_path / f"{n}.cap"
            cap.write_bytes(_cap(package_aid))
            package = CapFile.from_bytes(cap.read_bytes()).package_aid.hex().upper()
            result = run(card, "load", str(cap), "--hash")
            assert result.exit_code == EXIT_CARD_STATUS and "6982" in result.output
            assert package not in _aids(card, "load-file")
            result = run(card, "load", str(cap), "--dap-domain", MANDATED_SD.hex(), "--dap-key", DAP_KEY)
            assert result.exit_code == 0, result.output
            assert package in _aids(card, "load-file")
