"""GP command builders and the FCI parser, checked against GP Card Specification 2.3.1 chapter 11 and the
GlobalPlatformPro STORE DATA vector."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.gp.card_data import CardRecognitionData
from gpchannel.gp.install import InstallForInstall, InstallForLoad
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.registry_data import StatusScope
from gpchannel.host.commands import (
    Fci,
    SetStatusScope,
    delete_command,
    get_data_command,
    get_status_command,
    install_for_install_command,
    install_for_load_command,
    install_for_personalization_command,
    load_commands,
    select_command,
    set_status_command,
    store_data_commands,
)
from tests.vectors import VectorCase, params

AID = bytes.fromhex("A000000151000000")


def _hex(apdu: object) -> str:
    return str(apdu)


@pytest.mark.parametrize("case", params("host/commands.json", "store-data-blocks"))
def test_store_data_blocks_gppro(case: VectorCase) -> None:
    blocks = [bytes.fromhex(b) for b in case.inputs["blocks"]]
    commands = store_data_commands(blocks, int(case.inputs["p1"], 16))
    assert [f"{c.p1:02X}" for c in commands] == case.expected["p1_per_block"]
    assert [c.p2 for c in commands] == list(range(len(blocks)))  # the block number
    assert {c.header()[:2].hex().upper() for c in commands} == {case.expected["cla_ins"]}
    assert [c.data for c in commands] == blocks


def test_builders_match_the_spec_layouts() -> None:
    assert _hex(select_command(AID)) == "00A4040008A00000015100000000"  # Table 11-60
    assert _hex(select_command()) == "00A4040000"
    assert _hex(select_command(AID[:5], next_occurrence=True)) == "00A4040205A00000015100"
    assert _hex(get_data_command(0x9F7F)) == "80CA9F7F00"  # Table 11-24
    assert _hex(get_data_command(0x66)) == "80CA006600"
    assert _hex(get_status_command(StatusScope.APPLICATIONS)) == "80F24002024F0000"  # Tables 11-33, 11-34
    assert _hex(get_status_command(StatusScope.ISD, tlv=False, next_occurrence=True)) == "80F28001024F0000"
    assert _hex(delete_command(AID, related=True)) == "80E400800A4F08A00000015100000000"  # Table 11-22
    assert _hex(set_status_command(SetStatusScope.APPLICATION, 0x83, AID)) == "80F0408308A00000015100000000"
    assert _hex(set_status_command(SetStatusScope.ISD, 0x7F)) == "80F0807F00"


def test_channel_goes_into_cla() -> None:
    assert select_command(AID, channel=2).cla == 0x02
    assert get_data_command(0x66, channel=5).cla == 0xC1


def test_install_commands() -> None:
    load = install_for_load_command(InstallForLoad(bytes.fromhex("A0000000620301"), AID))
    assert (load.p1, load.p2) == (0x02, 0x00)
    assert load.data == bytes.fromhex("07A0000000620301") + bytes.fromhex("08") + AID + bytes.fromhex("000000")
    data = InstallForInstall(
        bytes.fromhex("A0000000620301"),
        bytes.fromhex("A000000062030101"),
        bytes.fromhex("A000000062030101"),
        Privileges.of(Privilege.CARD_RESET),
    )
    assert install_for_install_command(data).p1 == 0x0C
    assert install_for_install_command(data, make_selectable=False).p1 == 0x04
    perso = install_for_personalization_command(AID)
    assert (perso.p1, perso.data) == (0x20, b"\x00\x00\x08" + AID + b"\x00\x00\x00")


@given(st.binary(min_size=1, max_size=4000), st.integers(16, 255))
def test_load_commands_number_blocks_and_flag_the_last(load_file: bytes, size: int) -> None:
    if -(-len(load_file) // size) > 256:
        with pytest.raises(ValueError):
            load_commands(load_file, size)
        return
    commands = load_commands(load_file, size)
    assert b"".join(c.data for c in commands) == load_file
    assert [c.p2 for c in commands] == list(range(len(commands)))
    assert [c.p1 for c in commands] == [0x00] * (len(commands) - 1) + [0x80]
    assert all(c.ins == 0xE8 and c.cla == 0x80 for c in commands)


def test_fci_parse() -> None:
    card_data = CardRecognitionData("2.3.1", ((3, 0x70),), None, None).template()
    prop = card_data + bytes.fromhex("9F6E06479100783300") + bytes.fromhex("9F6501FF")
    raw = bytes.fromhex("6F") + bytes((10 + 2 + len(prop),)) + b"\x84\x08" + AID + b"\xa5" + bytes((len(prop),)) + prop
    fci = Fci.from_bytes(raw)
    assert fci.aid == AID
    assert fci.max_command_length == 0xFF
    assert fci.card_data is not None and fci.card_data.scps == ((3, 0x70),)
    assert fci.lifecycle_data == bytes.fromhex("479100783300")


@given(st.binary(max_size=100))
def test_fci_parser_returns_or_raises_decode_error(raw: bytes) -> None:
    try:
        Fci.from_bytes(raw)
    except DecodeError:
        pass
