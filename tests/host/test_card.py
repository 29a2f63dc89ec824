"""GpCard against the fake GP card (tests/host/fakecard.py): connect, info, list (both GET STATUS formats, 6310
continuation), PUT KEY with KCV check, DELETE, LOAD (blocks), INSTALL, STORE DATA, SET STATUS, create-ssd."""

from __future__ import annotations

import pytest

from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import CardStatusError, LocalProtocolError
from gpchannel.gp.cap import CapFile
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.host.card import GpCard, RegistryKind
from gpchannel.host.commands import SetStatusScope
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.scp.common import ScpProtocol, SecurityLevel
from tests.gp.test_cap import build_cap, components
from tests.host.fakecard import DEFAULT_KEY, GET_DATA, ISD_AID, FakeCard


def open_card(fake: FakeCard, level: SecurityLevel = SecurityLevel.C_MAC) -> GpCard:
    session = CardSession(fake, random=lambda n: bytes(n))
    card = GpCard.connect(session)
    key_type = KeyType.AES if fake.protocol == 3 else KeyType.DES3
    card.open_secure_channel(ChannelOptions(StaticKeys.single(DEFAULT_KEY, key_type=key_type), level))
    return card


def test_connect_uses_the_fci_aid() -> None:
    fake = FakeCard()
    card = GpCard.connect(CardSession(fake, random=lambda n: bytes(n)))
    assert card.isd_aid == ISD_AID
    assert card.fci is not None and card.fci.max_command_length == 0xFF
    assert fake.received[0].data == b""  # the empty SELECT came first


def test_info_decodes_every_object() -> None:
    card = open_card(FakeCard())
    info = card.info()
    assert info.cplc is not None and info.cplc.ic_serial_number.hex().upper() == "34295220"
    assert info.iin == bytes.fromhex("123456")
    assert info.cin == bytes(range(10))
    assert info.card_data is not None and info.card_data.scps == ((3, 0x70),)
    assert info.capabilities is not None and info.capabilities.options_for(2) == b"\x15\x55"
    assert [(k.key_id, k.kvn) for k in info.key_information] == [(1, 0x30), (2, 0x30), (3, 0x30)]
    assert info.resources is not None and info.resources.installed_applications == 2
    assert (info.protocol, info.i_param, info.kvn) == (ScpProtocol.SCP03, 0x70, 0x30)
    assert info.key_diversification_data == bytes(range(10))
    assert info.sequence_counter == bytes.fromhex("000002")
    assert info.problems == ()


def test_info_reports_undecodable_objects() -> None:
    GET_DATA_BACKUP = dict(GET_DATA)
    try:
        GET_DATA[0x9F7F] = "9F7F0100"
        info = open_card(FakeCard()).info()
    finally:
        GET_DATA.clear()
        GET_DATA.update(GET_DATA_BACKUP)
    assert info.cplc is None
    assert any("CPLC" in p for p in info.problems)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("page_size", [1, 2, 10])
def test_list_kinds_and_continuation(legacy: bool, page_size: int) -> None:
    card = open_card(FakeCard(legacy_status=legacy, page_size=page_size))
    items = card.list()
    kinds = [(i.kind, i.entry.aid.hex().upper()) for i in items]
    assert kinds == [
        (RegistryKind.ISD, "A000000151000000"),
        (RegistryKind.APPLICATION, "A0000000620301010C01"),
        (RegistryKind.SSD, "A00000015153504101"),
        (RegistryKind.APPLICATION, "A0000000620301010C02"),
        (RegistryKind.LOAD_FILE, "A0000000620301"),
    ]
    assert items[-1].entry.modules == (bytes.fromhex("A000000062030101"),)
    assert items[3].entry.lifecycle == 0x83


def test_put_key_checks_kcvs_and_opens_with_the_new_keys() -> None:
    fake = FakeCard()
    card = open_card(fake, SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION)
    new = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x31)
    assert card.put_key(new) == bytes((0x31,)) + b"".join(new.kcvs())
    assert fake.keysets[0x31] == new
    card.session.open_secure_channel(ChannelOptions(new, SecurityLevel.C_MAC, kvn=0x31), aid=ISD_AID)
    assert card.level == SecurityLevel.C_MAC


def test_put_key_needs_a_channel() -> None:
    card = GpCard.connect(CardSession(FakeCard(), random=lambda n: bytes(n)))
    with pytest.raises(LocalProtocolError):
        card.put_key(StaticKeys.single(bytes(16), 0x31))


def test_delete_and_errors() -> None:
    fake = FakeCard()
    card = open_card(fake)
    card.delete(bytes.fromhex("A0000000620301010C01"))
    assert fake.applied[-1] == ("delete", bytes.fromhex("A0000000620301010C01"))
    with pytest.raises(CardStatusError) as info:
        card.delete(bytes.fromhex("A0000000620301010C01"))
    assert info.value.sw == 0x6A88


def test_load_and_install() -> None:
    fake = FakeCard(max_command_length=0x80)
    card = open_card(fake, SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION)
    cap = CapFile.from_bytes(build_cap(components(filler=40)))
    blocks = card.load(cap, with_hash=True)
    load_file = cap.load_file()
    size = card.default_block_size()
    assert size == 0x80 - 8 - 16
    loads = [(name, data) for name, data in fake.applied if name.startswith("load:")]
    assert len(loads) == blocks == -(-len(load_file) // size)
    assert b"".join(d for _, d in loads) == load_file
    assert loads[-1][0] == f"load:80:{blocks - 1}"
    install_for_load = fake.applied[0]
    assert install_for_load[0] == "install:02"
    assert cap.load_file_data_block_hash() in install_for_load[1]
    card.install(cap.package_aid, cap.applet_aids[0], bytes.fromhex("A000000062030101AA"))
    assert fake.applied[-1][0] == "install:0C"
    assert any(e.aid == bytes.fromhex("A000000062030101AA") for _, e in fake.registry)


def test_store_data_set_status_create_ssd() -> None:
    fake = FakeCard()
    card = open_card(fake)
    card.store_data([b"\x01\x02", b"\x03"], p1=0x01)
    assert fake.applied[-2:] == [("store:01:0", b"\x01\x02"), ("store:81:1", b"\x03")]
    card.set_status(SetStatusScope.APPLICATION, 0x83, bytes.fromhex("A0000000620301010C01"))
    assert fake.applied[-1] == ("status:40:83", bytes.fromhex("A0000000620301010C01"))
    card.set_status(SetStatusScope.ISD, 0x7F)
    assert fake.applied[-1] == ("status:80:7F", ISD_AID)
    card.create_ssd(bytes.fromhex("A00000015153504102"), privileges=Privileges.of(Privilege.CARD_RESET))
    name, data = fake.applied[-1]
    assert name == "install:0C"
    assert bytes.fromhex("09A00000015153504102") in data
    ssd = [e for _, e in fake.registry if e.aid == bytes.fromhex("A00000015153504102")]
    assert ssd and ssd[0].privileges is not None and Privilege.SECURITY_DOMAIN in ssd[0].privileges


def test_scp02_card() -> None:
    fake = FakeCard(protocol=2, i_param=0x55, kvn=0x20)
    card = open_card(fake)
    assert card.session.init_response is not None
    assert card.session.init_response.protocol is ScpProtocol.SCP02
    assert len(card.list()) == 5
