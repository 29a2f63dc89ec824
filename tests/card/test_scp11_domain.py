"""The emulator's SCP11 side in process: the profile's [isd.scp11], the state's round trip, GET DATA BF21 / E0 / 66
in both styles, command chaining in the dispatcher, and our host opening SCP11b through the Card front door."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from gpchannel.card.profile import load_profile
from gpchannel.card.state import CardState
from gpchannel.cli.scp11_commands import write_test_pki
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.emulator.app import open_card
from gpchannel.errors import ProfileError
from gpchannel.scp.scp11 import Scp11Variant
from gpchannel.scp.scp11_cert import load_certificate
from gpchannel.scp.scp11_host import Scp11Host

NOW = datetime.datetime.now(datetime.UTC)
SELECT = bytes.fromhex("00A4040008A000000151000000")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scp11-card")
    write_test_pki(out, NOW, style="yubikey")
    return out


def test_profile_and_state_round_trip(pki: Path) -> None:
    profile = pki / "card.toml"
    state = load_profile(profile.read_text(), resolve=lambda name: (pki / name).read_bytes())
    sd = state.isd.sd
    assert sd is not None and sd.scp11 is not None and sd.getdata_style == "yubikey"
    assert sorted(k.kid for k in sd.scp11.keys) == [0x11, 0x13, 0x15] and sd.scp11.cas[0].kid == 0x10
    again = CardState.from_json(state.to_json())
    assert again.isd.sd is not None and again.isd.sd.scp11 == sd.scp11
    assert "PRIVATE KEY" not in repr(sd.scp11)


def test_profile_errors_name_the_key(pki: Path) -> None:
    text = (pki / "card.toml").read_text()
    with pytest.raises(ProfileError, match=r"isd\.scp11\.curve"):
        load_profile(text.replace('curve = "P-256"', 'curve = "P-999"'), resolve=lambda n: (pki / n).read_bytes())
    with pytest.raises(ProfileError, match=r"isd.scp11.keys\[0\].kid"):
        load_profile(text.replace("kid = 0x11", "kid = 0x12", 1), resolve=lambda n: (pki / n).read_bytes())
    with pytest.raises(ProfileError, match=r"isd\.getdata_style"):
        load_profile(text.replace('"yubikey"', '"other"'), resolve=lambda n: (pki / n).read_bytes())


def test_get_data_styles_and_chaining(pki: Path, tmp_path: Path) -> None:
    card, _ = open_card(tmp_path / "state", pki / "card.toml")
    assert card.process(SELECT)[-2:] == b"\x90\x00"
    recognition = card.process(bytes.fromhex("80CA006600"))
    assert recognition[0] == 0x73 and recognition[-2:] == b"\x90\x00"  # the YubiKey form: no 66 template
    info = card.process(bytes.fromhex("80CA00E000"))
    assert info[0] == 0xC0
    assert card.state.isd.sd is not None
    card.state.isd.sd.getdata_style = "gp"
    assert card.process(bytes.fromhex("80CA006600"))[0] == 0x66 and card.process(bytes.fromhex("80CA00E000"))[0] == 0xE0
    query = bytes.fromhex("A6048302") + bytes((0x13, 0x01))
    whole = card.process(bytes.fromhex("80CABF21") + bytes((len(query),)) + query + b"\x00")
    # the same GET DATA sent as a chain of two segments
    assert card.process(bytes.fromhex("90CABF2103") + query[:3]) == b"\x90\x00"
    assert card.process(bytes.fromhex("80CABF21") + bytes((len(query) - 3,)) + query[3:] + b"\x00") == whole
    assert card.process(bytes.fromhex("10CA000000")) == bytes.fromhex("6884")  # chaining without data
    # SCP11 keys beside SCP03 key sets: one '64' per protocol (GP 2.3.1 Table H-1, note 4)
    scp03 = bytes.fromhex("640B06092A864886FC6B040370")
    scp11 = bytes.fromhex("640B06092A864886FC6B041100")
    recognition = card.process(bytes.fromhex("80CA006600"))
    assert scp03 in recognition and scp11 in recognition


def test_our_host_through_the_card_front_door(pki: Path, tmp_path: Path) -> None:
    card, _ = open_card(tmp_path / "state", pki / "card.toml")
    assert card.process(SELECT)[-2:] == b"\x90\x00"

    def transmit(command: CommandApdu) -> ResponseApdu:
        out = card.process(command.to_bytes())
        data, sw = out[:-2], int.from_bytes(out[-2:], "big")
        while sw >> 8 == 0x61:
            out = card.process(bytes.fromhex("00C0000000"))
            data, sw = data + out[:-2], int.from_bytes(out[-2:], "big")
        return ResponseApdu(data, sw)

    anchor = load_certificate((pki / "card-ca.cert.pem").read_bytes()).public_key()
    host = Scp11Host(Scp11Variant.B, kvn=1, now=NOW, card_anchor=anchor)  # type: ignore[arg-type]
    host.run(transmit)
    response = host.unwrap(transmit(host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256))))
    assert response.sw == 0x9000
    bad = host.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    tampered = bad.with_changes(p2=0x67)
    assert transmit(tampered).sw == 0x6982
    assert transmit(bad).sw == 0x6982  # the session ended on the MAC error
