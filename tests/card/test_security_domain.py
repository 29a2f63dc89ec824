"""The Security Domain through bytes, inside real secure channels (SCP01, SCP02, SCP03 classes of
gpchannel.scp; the tests skip with the reason while a class is not importable): GET STATUS, INSTALL, LOAD,
DELETE, SET STATUS, PUT KEY, STORE DATA, and the secure channel rules (GP 2.3.1, chapter 11; 10.2)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.card.applets import EchoApplet
from gpchannel.card.dispatcher import Card
from gpchannel.card.loading import parse_cap_components
from gpchannel.card.state import Application, KeySet, LoadFile, SdConfig
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.codec.tlv import tlv
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.gp.card_data import ExtendedCardResources
from gpchannel.gp.install import (
    InstallForInstall,
    InstallForLoad,
    InstallForPersonalization,
    InstallForRegistryUpdate,
    InstallParameters,
)
from gpchannel.gp.privileges import Privilege, Privileges
from gpchannel.gp.registry_data import decode_status_response
from gpchannel.scp.common import HostChannel
from gpchannel.scp.put_key import PutKeyData, put_key_command
from tests.card.harness import ECHO_AID, ISD_AID, make_card, open_session, secure, send

PACKAGE = bytes.fromhex("A0000000620301")
MODULE = bytes.fromhex("A000000062030101")
INSTANCE = bytes.fromhex("A00000006203010101")

SESSIONS = [
    pytest.param("03", "70", 0x01, id="scp03-i70-01"),
    pytest.param("03", "70", 0x03, id="scp03-i70-03"),
    pytest.param("03", "70", 0x33, id="scp03-i70-33"),
    pytest.param("03", "00", 0x03, id="scp03-i00-03"),
    pytest.param("02", "55", 0x01, id="scp02-i55-01"),
    pytest.param("02", "15", 0x03, id="scp02-i15-03"),
    pytest.param("01", "15", 0x03, id="scp01-i15-03"),
]


def _cap(aid: bytes = PACKAGE, module: bytes = MODULE) -> bytes:
    """A minimal Load File Data Block: a CAP Header and Applet component (JCVM 6.3, 6.5)."""
    header = b"\xde\xca\xff\xed" + bytes((1, 2, 0, 0, 1, len(aid))) + aid
    applet = bytes((1, len(module))) + module + b"\x00\x10"
    return b"\x01" + len(header).to_bytes(2, "big") + header + b"\x03" + len(applet).to_bytes(2, "big") + applet


def _cmd(ins: int, p1: int, p2: int, data: bytes = b"") -> CommandApdu:
    return CommandApdu(0x80, ins, p1, p2, data, le=256)


def _load(card: Card, host: HostChannel, block: bytes, *, digest: bytes | None = None) -> list[ResponseApdu]:
    load_file = tlv(0xC4, block)
    data = InstallForLoad(PACKAGE, b"", hashlib.sha256(block).digest() if digest is None else digest)
    out = [secure(card, host, _cmd(0xE6, 0x02, 0x00, data.to_bytes()))]
    pieces = [load_file[i : i + 20] for i in range(0, len(load_file), 20)]
    for n, piece in enumerate(pieces):
        out.append(secure(card, host, _cmd(0xE8, 0x80 if n == len(pieces) - 1 else 0x00, n, piece)))
    return out


def _install(card: Card, host: HostChannel, privileges: Privileges = Privileges(), params: bytes = b"\x01") -> int:  # noqa: B008
    data = InstallForInstall(
        PACKAGE, MODULE, INSTANCE, privileges, InstallParameters(application_specific=params).to_bytes()
    )
    return secure(card, host, _cmd(0xE6, 0x0C, 0x00, data.to_bytes())).sw


@pytest.mark.parametrize(("scp", "i", "level"), SESSIONS)
def test_get_status_in_a_session(scp: str, i: str, level: int) -> None:
    card, store = make_card(scp, i)
    host = open_session(card, scp, level)
    r = secure(card, host, _cmd(0xF2, 0x80, 0x02, bytes.fromhex("4F00")))
    assert r.sw == 0x9000
    (isd,) = decode_status_response(r.data, 0x80, 0x02)
    assert isd.aid == ISD_AID and isd.lifecycle == 0x0F and isd.privileges == Privileges.from_bytes(b"\x9e\xfe\x80")
    r = secure(card, host, _cmd(0xF2, 0x40, 0x00, bytes.fromhex("4F00")))
    (echo,) = decode_status_response(r.data, 0x40, 0x00)
    assert echo.aid == ECHO_AID and echo.lifecycle == 0x07
    assert secure(card, host, _cmd(0xF2, 0x20, 0x02, bytes.fromhex("4F00"))).sw == 0x6A88
    assert secure(card, host, _cmd(0xF2, 0x40, 0x02, bytes.fromhex("4F05A000000000"))).sw == 0x6A88
    assert secure(card, host, _cmd(0xF2, 0x40, 0x02, b"")).sw == 0x6A80
    committed = store.load()
    assert committed is not None and committed == card.state  # the sequence counter is persisted


@pytest.mark.parametrize(("scp", "i", "level"), SESSIONS)
def test_tampered_mac_is_refused_and_closes_the_channel(scp: str, i: str, level: int) -> None:
    card, _ = make_card(scp, i)
    host = open_session(card, scp, level)
    wire = host.wrap(_cmd(0xF2, 0x40, 0x02, bytes.fromhex("4F00")))
    tampered = wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))
    assert send(card, tampered).sw == 0x6982
    again = host.wrap(_cmd(0xF2, 0x40, 0x02, bytes.fromhex("4F00")))
    assert send(card, again).sw == 0x6982  # the session is gone: secure messaging without a session


def test_get_status_continuation_6310() -> None:
    card, _ = make_card()
    for n in range(20):
        aid = bytes.fromhex("A0000000990000") + bytes((n,))
        card.state.applications.append(Application(aid, 0x07, Privileges(), ISD_AID, applet="echo"))
    card.save()
    host = open_session(card, "03", 0x03)
    assert secure(card, host, _cmd(0xF2, 0x40, 0x03, bytes.fromhex("4F00"))).sw == 0x6985  # no prior GET STATUS
    first = secure(card, host, _cmd(0xF2, 0x40, 0x02, bytes.fromhex("4F00")))
    assert first.sw == 0x6310
    entries = decode_status_response(first.data, 0x40, 0x02)
    response = first
    while response.sw == 0x6310:
        response = secure(card, host, _cmd(0xF2, 0x40, 0x03, bytes.fromhex("4F00")))
        entries += decode_status_response(response.data, 0x40, 0x02)
    assert response.sw == 0x9000 and len(entries) == 21
    partial = secure(card, host, _cmd(0xF2, 0x40, 0x00, bytes.fromhex("4F07A0000000990000")))
    found = decode_status_response(partial.data, 0x40, 0x00)
    while partial.sw == 0x6310:
        partial = secure(card, host, _cmd(0xF2, 0x40, 0x01, bytes.fromhex("4F07A0000000990000")))
        found += decode_status_response(partial.data, 0x40, 0x00)
    assert len(found) == 20 and partial.sw == 0x9000


def test_load_install_select_delete() -> None:
    card, store = make_card()
    card.ctx.applets.register(MODULE.hex().upper(), EchoApplet)  # Python class for the loaded module
    host = open_session(card, "03", 0x03)
    responses = _load(card, host, _cap())
    assert len(responses) > 2 and all((r.data, r.sw) == (b"\x00", 0x9000) for r in responses)
    status = secure(card, host, _cmd(0xF2, 0x10, 0x02, bytes.fromhex("4F00")))
    (elf,) = decode_status_response(status.data, 0x10, 0x02)
    assert (elf.aid, elf.modules, elf.version) == (PACKAGE, (MODULE,), b"\x01\x00")
    assert _install(card, host) == 0x9000
    assert _install(card, host) == 0x6985  # already installed
    loaded = store.load()
    assert loaded is not None and loaded.application(INSTANCE) is not None
    assert send(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, INSTANCE, le=256)).sw == 0x9000
    assert send(card, "0000000002CAFE").data == b"\xca\xfe"
    assert send(card, "00CA000000").data == b"\x01"  # echo shows its install parameters
    send(card, "00A4040000")
    host = open_session(card, "03", 0x03)
    delete = _cmd(0xE4, 0x00, 0x00, tlv(0x4F, PACKAGE))
    assert secure(card, host, delete).sw == 0x6985  # an instance still exists
    assert secure(card, host, delete.with_changes(p2=0x80)).sw == 0x9000
    assert card.state.load_file(PACKAGE) is None and card.state.application(INSTANCE) is None
    assert secure(card, host, delete).sw == 0x6A88
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0x4F, ISD_AID))).sw == 0x6985


def test_load_checks_hash_and_block_order() -> None:
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    responses = _load(card, host, _cap(), digest=bytes(32))
    assert responses[-1].sw == 0x6A80 and card.state.load_file(PACKAGE) is None
    install = InstallForLoad(PACKAGE, b"", b"")
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, install.to_bytes())).sw == 0x9000
    assert secure(card, host, _cmd(0xE8, 0x00, 0x01, b"\xc4\x01")).sw == 0x6A86  # block 01 first
    assert secure(card, host, _cmd(0xE8, 0x80, 0x00, b"\xc4\x01\x00")).sw == 0x6985  # loading was aborted
    other = _cap(aid=bytes.fromhex("A0000000629999"))
    assert _load(card, host, other)[-1].sw == 0x6A80  # the CAP's package AID is not the INSTALL's


def test_install_for_load_refusals() -> None:
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    cases = [
        (InstallForLoad(ISD_AID), 0x6985),  # the AID exists
        (InstallForLoad(PACKAGE, bytes.fromhex("A000000001")), 0x6A88),  # no such SD
        (InstallForLoad(PACKAGE, token=b"\x01"), 0x6A80),
        (InstallForLoad(PACKAGE, load_file_hash=b"\x01\x02"), 0x6A80),
    ]
    for data, sw in cases:
        assert secure(card, host, _cmd(0xE6, 0x02, 0x00, data.to_bytes())).sw == sw
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, b"\x05\xa0")).sw == 0x6A80


def test_set_status_locks_and_card_life_cycle() -> None:
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    assert secure(card, host, _cmd(0xF0, 0x40, 0x80, ECHO_AID)).sw == 0x9000
    assert secure(card, host, _cmd(0xF0, 0x40, 0x80, ECHO_AID)).sw == 0x6985  # already LOCKED
    assert (card.state.application(ECHO_AID) or card.state.isd).lifecycle == 0x87
    assert secure(card, host, _cmd(0xF0, 0x40, 0x00, ECHO_AID)).sw == 0x9000
    assert secure(card, host, _cmd(0xF0, 0x40, 0x00, bytes.fromhex("A000000001"))).sw == 0x6A88
    assert secure(card, host, _cmd(0xF0, 0x80, 0x07, b"")).sw == 0x6985  # SECURED -> INITIALIZED
    assert secure(card, host, _cmd(0xF0, 0x80, 0x33, b"")).sw == 0x6A80
    assert secure(card, host, _cmd(0xF0, 0x80, 0x7F, b"")).sw == 0x9000  # CARD_LOCKED
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0x4F, ECHO_AID))).sw == 0x6985
    assert send(card, CommandApdu(0, 0xA4, 4, 0, ECHO_AID, le=256)).sw == 0x6A81
    assert send(card, CommandApdu(0, 0xA4, 4, 0, ISD_AID, le=256)).sw == 0x6283
    host = open_session(card, "03", 0x03)
    assert secure(card, host, _cmd(0xF0, 0x80, 0x0F, b"")).sw == 0x9000  # unlock
    assert secure(card, host, _cmd(0xF0, 0x80, 0xFF, b"")).sw == 0x9000  # TERMINATED
    assert card.state.lifecycle.name == "TERMINATED"
    assert secure(card, host, _cmd(0xCA, 0x9F, 0x7F)).sw == 0x9000  # only GET DATA remains
    assert secure(card, host, _cmd(0xF2, 0x80, 0x02, bytes.fromhex("4F00"))).sw == 0x6985
    assert send(card, "8050000008" + "00" * 8).sw == 0x6985


@pytest.mark.parametrize(("scp", "i", "level"), [SESSIONS[0], SESSIONS[2], SESSIONS[5], SESSIONS[6]])
def test_put_key_add_and_replace(scp: str, i: str, level: int) -> None:
    card, store = make_card(scp, i)
    host = open_session(card, scp, level)
    key_type = KeyType.AES if scp == "03" else KeyType.DES3
    new = StaticKeys(bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)), 0x31, key_type)
    data = PutKeyData.from_static_keys(new, host.encrypt_key)
    r = secure(card, host, put_key_command(data, key_id=1))
    assert r.sw == 0x9000 and r.data == bytes((0x31,)) + b"".join(new.kcvs())
    assert secure(card, host, put_key_command(data, key_id=1)).sw == 0x6A80  # 31 exists: replace, not add
    assert secure(card, host, put_key_command(data, key_id=1, old_kvn=0x7E)).sw == 0x6A88
    loaded = store.load()
    assert loaded is not None and loaded.isd.sd is not None
    assert [k.kvn for k in loaded.isd.sd.keysets] == [0x30, 0x31]
    assert loaded.isd.sd.keysets[1].enc == new.enc  # committed before the answer left
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0xD2, b"\x31"))).sw == 0x9000
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0xD2, b"\x31"))).sw == 0x6A88


def test_store_data_and_personalization() -> None:
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    iin = tlv(0x42, bytes.fromhex("123456"))
    assert secure(card, host, _cmd(0xE2, 0x90, 0x00, iin)).sw == 0x9000
    assert secure(card, host, _cmd(0xCA, 0x00, 0x42)).data == iin
    assert secure(card, host, _cmd(0xE2, 0x90, 0x01, iin)).sw == 0x6A86  # block numbers start at 00
    dgi = bytes.fromhex("0045") + b"\x02\xab\xcd"
    assert secure(card, host, _cmd(0xE2, 0x88, 0x00, dgi)).sw == 0x9000
    assert card.state.cin == b"\xab\xcd"
    assert secure(card, host, _cmd(0xE2, 0x90, 0x00, tlv(0x5F20, b"x"))).sw == 0x6A88
    perso = InstallForPersonalization(ECHO_AID)
    assert secure(card, host, _cmd(0xE6, 0x20, 0x00, perso.to_bytes())).sw == 0x9000
    assert secure(card, host, _cmd(0xE2, 0x00, 0x00, b"\x01\x02")).sw == 0x9000
    assert secure(card, host, _cmd(0xE2, 0x80, 0x01, b"\x03")).sw == 0x9000
    assert (card.state.application(ECHO_AID) or card.state.isd).data["store_data"] == ["0102", "03"]


def test_security_domain_install_extradition_registry_update() -> None:
    card, _ = make_card()
    ssd_package = bytes.fromhex("A0000001515350")
    ssd_module = bytes.fromhex("A000000151535041")
    ssd_aid = bytes.fromhex("A000000151000001")
    card.state.load_files.append(LoadFile(ssd_package, ISD_AID, [ssd_module]))
    card.save()
    host = open_session(card, "03", 0x03)
    params = InstallParameters(application_specific=bytes.fromhex("81020370")).to_bytes()
    data = InstallForInstall(ssd_package, ssd_module, ssd_aid, Privileges.of(Privilege.SECURITY_DOMAIN), params)
    assert secure(card, host, _cmd(0xE6, 0x0C, 0x00, data.to_bytes())).sw == 0x9000
    ssd = card.state.application(ssd_aid)
    assert ssd is not None and ssd.sd is not None and (ssd.sd.scp, ssd.sd.i_param) == (3, 0x70)
    extradite = InstallForRegistryUpdate(ssd_aid, ECHO_AID)
    assert secure(card, host, _cmd(0xE6, 0x40, 0x00, extradite.to_bytes())).sw == 0x9000
    assert (card.state.application(ECHO_AID) or ssd).sd_aid == ssd_aid
    update = InstallForRegistryUpdate(application_aid=ECHO_AID, privileges=Privileges.of(Privilege.CARD_RESET))
    assert secure(card, host, _cmd(0xE6, 0x40, 0x00, update.to_bytes())).sw == 0x9000
    status = secure(card, host, _cmd(0xF2, 0x40, 0x02, bytes.fromhex("4F00")))
    entries = {e.aid: e for e in decode_status_response(status.data, 0x40, 0x02)}
    assert entries[ECHO_AID].sd_aid == ssd_aid and entries[ECHO_AID].privileges == Privileges.of(Privilege.CARD_RESET)
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0x4F, ssd_aid))).sw == 0x6985  # has content
    assert send(card, CommandApdu(0, 0xA4, 4, 0, ssd_aid, le=256)).sw == 0x9000
    assert send(card, "8050000008" + "00" * 8).sw == 0x6A88  # the new SD has no keys yet


def test_sessions_are_per_logical_channel() -> None:
    card, _ = make_card()
    host0 = open_session(card, "03", 0x03)
    assert send(card, "0070000001").data == b"\x01"
    host1 = open_session(card, "03", 0x33, channel=1)
    status = _cmd(0xF2, 0x80, 0x02, bytes.fromhex("4F00"))
    for host in (host0, host1, host0):
        command = status.with_changes(cla=cla_for_channel(0x80, host.channel))
        assert secure(card, host, command).sw == 0x9000
    assert send(card, "0070800100").sw == 0x9000
    assert secure(card, host0, status).sw == 0x9000
    assert send(card, host1.wrap(status.with_changes(cla=0x81))).sw == 0x6881  # channel 1 is closed


def test_select_ends_the_session() -> None:
    card, _ = make_card()
    host = open_session(card, "03", 0x01)
    assert send(card, "00A4040000").sw == 0x9000
    assert send(card, host.wrap(_cmd(0xF2, 0x80, 0x02, bytes.fromhex("4F00")))).sw == 0x6982


def test_trace_shows_plain_commands_but_no_key_data() -> None:
    card, _ = make_card()
    lines: list[str] = []
    card.trace = card.ctx.trace = lines.append
    host = open_session(card, "03", 0x33)
    secure(card, host, _cmd(0xF2, 0x80, 0x02, bytes.fromhex("4F00")))
    assert any(line.strip().startswith("plain >> 80F28002 4F00") for line in lines)
    new = StaticKeys.single(bytes(range(16)), 0x31, KeyType.AES)
    data = PutKeyData.from_static_keys(new, host.encrypt_key)
    assert secure(card, host, put_key_command(data, key_id=1)).sw == 0x9000
    blob = data.to_bytes().hex().upper()
    assert not any(blob[:32] in line for line in lines)
    assert any("key data" in line for line in lines)


def test_combined_load_install_and_make_selectable() -> None:
    """INSTALL [for load, install and make selectable]: P2 01 opens the process, P2 03 ends it (11.5.2.2)."""
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    block = _cap()
    first = InstallForLoad(PACKAGE, b"", hashlib.sha256(block).digest())
    assert secure(card, host, _cmd(0xE6, 0x0E, 0x01, first.to_bytes())).sw == 0x9000
    assert secure(card, host, _cmd(0xE8, 0x80, 0x00, tlv(0xC4, block))).sw == 0x9000
    final = InstallForInstall(b"", MODULE, INSTANCE, Privileges(), InstallParameters().to_bytes())
    assert secure(card, host, _cmd(0xE6, 0x0E, 0x02, final.to_bytes())).sw == 0x6A86  # P2 02 is not defined
    assert secure(card, host, _cmd(0xE6, 0x0E, 0x03, final.to_bytes())).sw == 0x9000
    instance = card.state.application(INSTANCE)
    assert instance is not None and instance.lifecycle == 0x07 and instance.load_file_aid == PACKAGE


def test_install_chained_segments() -> None:
    """P1 b8: the INSTALL data continues in the next command (Table 11-41)."""
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    data = InstallForLoad(PACKAGE).to_bytes()
    assert secure(card, host, _cmd(0xE6, 0x82, 0x00, data[:4])).sw == 0x9000
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, data[4:])).sw == 0x9000
    assert card.channels[0].load is not None and card.channels[0].load.load_file_aid == PACKAGE


def _dgi(dgi: int, value: bytes) -> bytes:
    return (
        dgi.to_bytes(2, "big")
        + (bytes((len(value),)) if len(value) < 0xFF else b"\xff" + len(value).to_bytes(2, "big"))
        + value
    )


def _key_dgis(host: HostChannel, keys: StaticKeys, *, bad_kcv: bool = False) -> bytes:
    crts = b""
    values = b""
    for key_id, key in enumerate((keys.enc, keys.mac, keys.dek), start=1):
        check = bytes(3) if bad_kcv and key_id == 2 else keys.kcvs()[key_id - 1]
        body = (
            tlv(0x95, b"\x18")
            + tlv(0x80, bytes((keys.key_type.value,)))
            + tlv(0x81, bytes((len(key),)))
            + tlv(0x82, bytes((key_id,)))
            + tlv(0x83, bytes((keys.kvn,)))
            + tlv(0x84, check)
        )
        crts += tlv(0xB9, body)
        values += _dgi(0x8113, host.encrypt_key(key))
    # Table 11-92 allows several CRTs in one 00B9; each 8113 follows in order (11.11.4.1.1).
    return _dgi(0x00B9, crts) + values


@pytest.mark.parametrize(("scp", "i", "level"), [SESSIONS[0], SESSIONS[2], SESSIONS[4], SESSIONS[6]])
def test_store_data_loads_a_key_set_as_dgis(scp: str, i: str, level: int) -> None:
    card, store = make_card(scp, i)
    host = open_session(card, scp, level)
    key_type = KeyType.AES if scp == "03" else KeyType.DES3
    new = StaticKeys(bytes(range(100, 116)), bytes(range(116, 132)), bytes(range(132, 148)), 0x32, key_type)
    bad = _key_dgis(host, new, bad_kcv=True)
    assert secure(card, host, _cmd(0xE2, 0xE8, 0x00, bad)).sw == 0x6982
    assert card.state.isd.sd is not None and card.state.isd.sd.keyset(0x32) is None
    assert secure(card, host, _cmd(0xE2, 0xE8, 0x00, _key_dgis(host, new))).sw == 0x9000
    loaded = store.load()
    assert loaded is not None and loaded.isd.sd is not None
    keyset = loaded.isd.sd.keyset(0x32)
    assert keyset is not None and (keyset.enc, keyset.mac, keyset.dek) == (new.enc, new.mac, new.dek)


@given(st.binary(max_size=120))
def test_cap_component_reader_returns_value_or_decode_error(raw: bytes) -> None:
    try:
        parse_cap_components(raw)
    except DecodeError:
        pass


def test_extended_card_resources_follow_the_registry() -> None:
    card, _ = make_card()
    host = open_session(card, "03", 0x03)
    before = ExtendedCardResources.from_bytes(secure(card, host, _cmd(0xCA, 0xFF, 0x21)).data)
    _load(card, host, _cap())
    assert _install(card, host) == 0x9000
    after = ExtendedCardResources.from_bytes(secure(card, host, _cmd(0xCA, 0xFF, 0x21)).data)
    assert after.installed_applications == before.installed_applications + 1
    assert after.free_non_volatile_memory == before.free_non_volatile_memory - len(_cap())


@pytest.mark.parametrize(
    ("privileges", "sw"),
    [
        (Privileges.of(Privilege.SECURITY_DOMAIN), 0x6982),
        (Privileges.of(Privilege.SECURITY_DOMAIN, Privilege.DELEGATED_MANAGEMENT), 0x6982),
        (Privileges.of(Privilege.SECURITY_DOMAIN, Privilege.AUTHORIZED_MANAGEMENT), 0x9000),
    ],
)
def test_content_management_needs_authorized_management(privileges: Privileges, sw: int) -> None:
    card, _ = make_card()
    isd_config = card.state.isd.sd
    assert isd_config is not None
    ssd_aid = bytes.fromhex("A000000151000001")
    k = isd_config.keysets[0]
    config = SdConfig(isd_config.scp, isd_config.i_param, [KeySet(k.kvn, k.key_type, k.enc, k.mac, k.dek)])
    card.state.applications.append(Application(ssd_aid, 0x0F, privileges, ISD_AID, sd=config))
    card.save()
    assert send(card, CommandApdu(0, 0xA4, 4, 0, ssd_aid, le=256)).sw == 0x9000
    host = open_session(card, "03", 0x03)
    assert secure(card, host, _cmd(0xE6, 0x02, 0x00, InstallForLoad(PACKAGE).to_bytes())).sw == sw
    assert secure(card, host, _cmd(0xE4, 0x00, 0x00, tlv(0x4F, ECHO_AID))).sw in (sw, 0x6982)
    assert secure(card, host, _cmd(0xF2, 0x40, 0x02, bytes.fromhex("4F00"))).sw == 0x6A88  # sees only its own


def test_store_data_is_hidden_in_the_raw_and_plain_traces_alike() -> None:
    """One rule (the ``redacted`` column of the command table): STORE DATA, which may carry key DGIs, shows its
    length only, on the wire and inside the session, as PUT KEY does."""
    card, _ = make_card()
    lines: list[str] = []
    card.trace = card.ctx.trace = lines.append
    host = open_session(card, "03", 0x03)
    iin = tlv(0x42, bytes.fromhex("123456"))
    assert secure(card, host, _cmd(0xE2, 0x90, 0x00, iin)).sw == 0x9000
    assert not any(iin.hex().upper() in line for line in lines)
    assert any(line.strip().startswith("plain >> 80E29000 <key data>") for line in lines)
    assert any(line.startswith(">> 84E29000 <") and "bytes of key data>" in line for line in lines)
