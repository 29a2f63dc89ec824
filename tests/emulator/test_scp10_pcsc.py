"""Issue 8 through the real PC/SC stack: an SCP10 card (the profile ``gpchannel scp10 make-pki`` writes) served on a
vpcd slot of pcscd, reached by the command line with ``--reader`` and by the host library over PcscTransport.

Both session key options of GP 2.2.1 Appendix F at every level, and a certificate from another CA refused with
6300 (Table F-36). The same sessions run in memory in tests/card/test_scp10_domain.py and tests/cli/
test_scp10_cli.py; the cryptographic steps are checked against OpenSSL-made vectors in tests/scp/
test_scp10_vectors.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.cli.main import EXIT_CARD_STATUS, cli
from gpchannel.cli.scp10_commands import load_credentials, today_utc
from gpchannel.host.card import GpCard
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.io.transport import PcscTransport
from gpchannel.scp.common import ScpProtocol, SecurityLevel
from tests.emulator.pyscard_user import ServedCard, served

pytestmark = pytest.mark.pcsc

LEVELS = [a | b | c | d for a in (0, 1) for b in (0, 2) for c in (0, 0x10) for d in (0, 0x20)]
ISD = bytes.fromhex("A000000151000000")


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp10-pcsc") / "pki"
    assert run("scp10", "make-pki", "--out", str(out)).exit_code == 0
    return out


@pytest.fixture(scope="module")
def card(pcscd_readers: list[str], pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCard]:
    with served(pcscd_readers, tmp_path_factory.mktemp("scp10-state") / "state", pki / "card.toml") as served_card:
        yield served_card


def host_options(pki: Path, option: str, chain_dir: Path | None = None) -> list[str]:
    links = chain_dir or pki
    return [
        "--scp",
        "10",
        "--scp10-key",
        str(pki / "oce.key.pem"),
        "--scp10-chain",
        str(links / "ka_ex.cert.pem"),
        "--scp10-chain",
        str(links / "oce.cert.pem"),
        "--scp10-trust",
        str(pki / "tp_in.pub.pem"),
        "--scp10-option",
        option,
    ]


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: f"{v:02X}")
@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_cli_session_through_pcscd(card: ServedCard, pki: Path, option: str, level: int) -> None:
    result = run(
        "--reader", card.reader, *host_options(pki, option), "--security-level", f"{level:02X}", "list", "--json"
    )
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert items[0]["kind"] == "isd" and items[0]["aid"] == ISD.hex().upper()


@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_host_library_session_through_pcscd(card: ServedCard, pki: Path, option: str) -> None:
    credentials = load_credentials(
        pki / "oce.key.pem", (pki / "ka_ex.cert.pem", pki / "oce.cert.pem"), pki / "tp_in.pub.pem", option
    )
    factory = credentials.host_factory(os.urandom, today_utc())
    transport = PcscTransport(card.reader)
    try:
        gp = GpCard.connect(CardSession(transport, random=os.urandom), ISD)
        gp.open_channel(ChannelOptions(lambda _: None, SecurityLevel(0x33), ScpProtocol.SCP10, driver=factory))  # type: ignore[arg-type, return-value]
        assert gp.level == 0x33
        assert any(item.entry.aid == ISD for item in gp.list())
        cplc = gp.get_data(0x9F7F)
        assert cplc is not None and cplc[-42:] == card.card.state.cplc
    finally:
        transport.close()


@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_certificate_from_another_ca_through_pcscd(card: ServedCard, pki: Path, tmp_path: Path, option: str) -> None:
    other = tmp_path / "other"
    assert run("scp10", "make-pki", "--out", str(other)).exit_code == 0
    result = run("--reader", card.reader, *host_options(pki, option, other), "list")
    assert result.exit_code == EXIT_CARD_STATUS, result.output
    assert "6300" in result.output
