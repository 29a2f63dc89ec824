"""``gpchannel scp10 make-pki`` and ``--scp 10`` against the emulator in-process (``--emulator`` with the profile
make-pki writes): both modes of GP 2.2.1 Appendix F at every level, and the failures as exit code 4 with the
status word: a certificate from another CA, an expired certificate (6300, Table F-36), a tampered MAC (6982)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gpchannel.card.profile import load_profile
from gpchannel.cli.main import EXIT_CARD_STATUS, EXIT_USAGE, cli
from gpchannel.cli.scp10_commands import certificate_pem, read_certificate
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.rsa import RsaPrivateKey, RsaPublicKey
from gpchannel.emulator.app import open_card
from gpchannel.scp.scp10_cert import CertificateBody, issue_certificate, verify_certificate

LEVELS = [a | b | c | d for a in (0, 1) for b in (0, 2) for c in (0, 0x10) for d in (0, 0x20)]
ISD = "A000000151000000"


def run(*args: str, obj: dict[str, object] | None = None) -> Result:
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False, obj=obj)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp10") / "pki"
    result = run("scp10", "make-pki", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def host_options(pki: Path, option: str, chain: tuple[Path, ...] | None = None) -> list[str]:
    links = chain or (pki / "ka_ex.cert.pem", pki / "oce.cert.pem")
    args = ["--scp", "10", "--scp10-key", str(pki / "oce.key.pem"), "--scp10-trust", str(pki / "tp_in.pub.pem")]
    for link in links:
        args += ["--scp10-chain", str(link)]
    return [*args, "--scp10-option", option]


def test_make_pki_writes_a_matching_pki_and_profile(pki_dir: Path) -> None:
    today = datetime.datetime.now(datetime.UTC).date()
    tp_ex = RsaPublicKey.from_pem_or_der((pki_dir / "tp_ex.pub.pem").read_bytes())
    tp_in = RsaPublicKey.from_pem_or_der((pki_dir / "tp_in.pub.pem").read_bytes())
    ka_ex = verify_certificate(read_certificate(pki_dir / "ka_ex.cert.pem"), tp_ex, self_descriptive=True, now=today)
    oce = verify_certificate(
        read_certificate(pki_dir / "oce.cert.der"), ka_ex.body.public_key, self_descriptive=True, now=today
    )
    card = verify_certificate(read_certificate(pki_dir / "card.cert.pem"), tp_in, self_descriptive=True, now=today)
    assert RsaPrivateKey.from_pem_or_der((pki_dir / "oce.key.pem").read_bytes()).public == oce.body.public_key
    assert RsaPrivateKey.from_pem_or_der((pki_dir / "card.key.pem").read_bytes()).public == card.body.public_key
    assert (pki_dir / "card.key.pem").stat().st_mode & 0o077 == 0
    state = load_profile((pki_dir / "card.toml").read_text(), resolve=lambda n: (pki_dir / n).read_bytes())
    assert state.isd.sd is not None and state.isd.sd.scp10 is not None
    assert state.isd.sd.scp10.certificate == card.to_bytes()
    again = run("scp10", "make-pki", "--out", str(pki_dir))
    assert again.exit_code != 0 and "--force" in again.output


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: f"{v:02X}")
@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_list_through_an_scp10_session(pki_dir: Path, tmp_path: Path, option: str, level: int) -> None:
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(pki_dir / "card.toml")]
    result = run(*target, *host_options(pki_dir, option), "--security-level", f"{level:02X}", "list", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert items[0]["kind"] == "isd" and items[0]["aid"] == ISD


def test_missing_host_credentials_are_a_usage_error(pki_dir: Path, tmp_path: Path) -> None:
    result = run("--emulator", str(tmp_path / "state"), "--profile", str(pki_dir / "card.toml"), "--scp", "10", "list")
    assert result.exit_code == EXIT_USAGE and "--scp10-key" in result.output


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp10-other") / "pki"
    assert run("scp10", "make-pki", "--out", str(out)).exit_code == 0
    return out


@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_certificate_from_another_ca_is_refused_6300(
    pki_dir: Path, other_pki: Path, tmp_path: Path, option: str
) -> None:
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(pki_dir / "card.toml")]
    chain = (other_pki / "ka_ex.cert.pem", other_pki / "oce.cert.pem")
    result = run(*target, *host_options(pki_dir, option, chain), "list")
    assert result.exit_code == EXIT_CARD_STATUS, result.output
    assert "6300" in result.output


@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_expired_certificate_is_refused_6300(pki_dir: Path, tmp_path: Path, option: str) -> None:
    ka_ex = RsaPrivateKey.from_pem_or_der((pki_dir / "ka_ex.key.pem").read_bytes())
    oce = RsaPrivateKey.from_pem_or_der((pki_dir / "oce.key.pem").read_bytes())
    start = datetime.date(2020, 1, 1)
    body = CertificateBody(
        b"KA_EX\x00\x00\x01", b"OCE\x00\x00\x00\x00\x01", oce.public, start, start.replace(year=2021)
    )
    expired = tmp_path / "expired.cert.pem"
    expired.write_bytes(certificate_pem(issue_certificate(ka_ex, body).to_bytes()))
    target = ["--emulator", str(tmp_path / "state"), "--profile", str(pki_dir / "card.toml")]
    result = run(*target, *host_options(pki_dir, option, (pki_dir / "ka_ex.cert.pem", expired)), "list")
    assert result.exit_code == EXIT_CARD_STATUS, result.output
    assert "6300" in result.output


class Tampering:
    """The emulator in-process as the CLI's transport; flips a bit of the C-MAC of the first secured command."""

    def __init__(self, state: Path, profile: Path) -> None:
        self.card, _ = open_card(state, profile)
        self.done = False
        self.answers: list[int] = []

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        raw = command.to_bytes()
        if not self.done and command.cla & 0x0C and command.ins == 0xF2:
            self.done = True
            raw = raw[:-2] + bytes((raw[-2] ^ 0x01,)) + raw[-1:]
        response = ResponseApdu.from_bytes(self.card.process(raw))
        self.answers.append(response.sw)
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize("option", ["agreement", "transport"])
def test_tampered_mac_is_refused_6982(pki_dir: Path, tmp_path: Path, option: str) -> None:
    wire = Tampering(tmp_path / "state", pki_dir / "card.toml")
    factory: Callable[[], Tampering] = lambda: wire  # noqa: E731
    result = run(*host_options(pki_dir, option), "--security-level", "01", "list", obj={"transport_factory": factory})
    assert wire.done
    assert result.exit_code == EXIT_CARD_STATUS, result.output
    assert "6982" in result.output
