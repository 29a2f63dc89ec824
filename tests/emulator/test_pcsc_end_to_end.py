"""The emulator end to end through the real PC/SC stack: plain pyscard scripts -> pcscd -> vpcd -> the emulator
(``gpchannel.emulator.app.serve`` in a thread, on its state directory).

Secure channels SCP02 (i=55, i=15) and SCP03 (i=70, i=00) open at levels 01, 03 and, for SCP03 i=70, 33 with
the profile's keys (examples/profiles, i changed in the test's tmp_path). Through each channel the script lists
the content (GET STATUS, GP 2.3.1 11.4), loads the echo load file and installs a second echo instance (INSTALL
[for load], LOAD, INSTALL [for install and make selectable], 11.5 and 11.6), talks to it, deletes it (DELETE,
11.2), and finally sends a command with a tampered C-MAC: 6982, and the channel is closed (the next wrapped
command fails as well; GP 2.3.1 10.2.3 and Amendment D 5.2.1, GP 2.2.1 E.4.4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpchannel.codec.apdu import CommandApdu
from gpchannel.emulator.app import ECHO_LOAD_FILE_AID, ECHO_MODULE_AID, SD_LOAD_FILE_AID
from gpchannel.errors import AuthenticationError
from gpchannel.io.store import DirectoryStore
from gpchannel.scp.common import HostChannel
from tests.emulator.pyscard_user import (
    ECHO_AID,
    ISD_AID,
    SELECT_ISD,
    cap_components,
    get_status,
    lv,
    open_channel,
    profile,
    secure,
    served,
    tlv,
    transmit,
)

pytestmark = pytest.mark.pcsc

SECOND_ECHO = bytes.fromhex("A0000000871002FF49FF0590")

CHANNELS = [
    ("02", "55", 0x01),
    ("02", "55", 0x03),
    ("02", "15", 0x01),
    ("02", "15", 0x03),
    ("03", "70", 0x01),
    ("03", "70", 0x03),
    ("03", "70", 0x33),
    ("03", "00", 0x01),
    ("03", "00", 0x03),
]


def _delete(aid: bytes) -> bytes:
    """DELETE (80 E4 00 00) of one object, named by tag 4F (GP 2.3.1 Table 11-23)."""
    return bytes([0x80, 0xE4, 0x00, 0x00, len(aid) + 2]) + tlv(0x4F, aid) + b"\x00"


def _manage_content(connection: Any, host: HostChannel) -> None:
    # The profile's content: the ISD and the echo application; no load file yet.
    assert get_status(connection, host, 0x80) == [ISD_AID]
    assert get_status(connection, host, 0x40) == [ECHO_AID]
    # INSTALL [for load] (P1 02): load file AID, SD AID (empty: this SD), no hash, no parameters, no token.
    for_load = lv(ECHO_LOAD_FILE_AID) + lv(b"") + lv(b"") + lv(b"") + lv(b"")
    assert secure(connection, host, bytes([0x80, 0xE6, 0x02, 0x00, len(for_load)]) + for_load + b"\x00").sw == 0x9000
    block = cap_components(ECHO_LOAD_FILE_AID, [ECHO_MODULE_AID])
    load_file = b"\xc4" + bytes([0x81, len(block)]) + block
    assert secure(connection, host, bytes([0x80, 0xE8, 0x80, 0x00, len(load_file)]) + load_file + b"\x00").sw == 0x9000
    # INSTALL [for install and make selectable] (P1 0C): privileges 00, parameters C9 with 2 bytes.
    for_install = (
        lv(ECHO_LOAD_FILE_AID)
        + lv(ECHO_MODULE_AID)
        + lv(SECOND_ECHO)
        + lv(b"\x00")
        + lv(tlv(0xC9, b"\xca\xfe"))
        + lv(b"")
    )
    response = secure(connection, host, bytes([0x80, 0xE6, 0x0C, 0x00, len(for_install)]) + for_install + b"\x00")
    assert response.sw == 0x9000
    assert get_status(connection, host, 0x40) == [ECHO_AID, SECOND_ECHO]
    assert get_status(connection, host, 0x20) == [SD_LOAD_FILE_AID, ECHO_LOAD_FILE_AID]  # the SD package is in ROM
    # Installing it twice is refused: 6985 (an application with this AID exists, 11.5.2.3.2).
    assert secure(connection, host, bytes([0x80, 0xE6, 0x0C, 0x00, len(for_install)]) + for_install).sw == 0x6985
    # DELETE the instance (P2 00), then the load file; a second DELETE finds nothing: 6A88.
    for aid in (SECOND_ECHO, ECHO_LOAD_FILE_AID):
        assert secure(connection, host, _delete(aid)).sw == 0x9000
    assert secure(connection, host, _delete(SECOND_ECHO)).sw == 0x6A88
    assert get_status(connection, host, 0x40) == [ECHO_AID]
    assert get_status(connection, host, 0x20) == [SD_LOAD_FILE_AID]


def _tampered_mac_closes_the_channel(connection: Any, host: HostChannel) -> None:
    wrapped = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256))
    tampered = CommandApdu(
        wrapped.cla, wrapped.ins, wrapped.p1, wrapped.p2, wrapped.data[:-1] + bytes([wrapped.data[-1] ^ 0x01]), le=256
    )
    assert transmit(connection, tampered.to_bytes()).sw == 0x6982
    # The card closed the session: the next command, correctly wrapped by the host, is refused too.
    again = host.wrap(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256))
    assert transmit(connection, again.to_bytes()).sw == 0x6982


@pytest.mark.parametrize(("scp", "i", "level"), CHANNELS, ids=[f"scp{s}-i{i}-level{v:02X}" for s, i, v in CHANNELS])
def test_pyscard_script_through_pcscd(pcscd_readers: list[str], tmp_path: Path, scp: str, i: str, level: int) -> None:
    profile_path, kvn, _ = profile(tmp_path, scp, i)
    state_dir = tmp_path / "state"
    with served(pcscd_readers, state_dir, profile_path) as card:
        connection = card.connect()
        try:
            host = open_channel(connection, scp, int(i, 16), level, kvn)
            _manage_content(connection, host)
            # The echo application still answers, outside the channel, on the basic channel.
            assert transmit(connection, bytes.fromhex("00A404000C") + ECHO_AID + b"\x00").sw == 0x9000
            assert transmit(connection, bytes.fromhex("8010000003ABCDEF00")).data == bytes.fromhex("ABCDEF")
            host = open_channel(connection, scp, int(i, 16), level, kvn)
            _tampered_mac_closes_the_channel(connection, host)
            # A new session opens with the same keys: the card is not harmed by the attack.
            host = open_channel(connection, scp, int(i, 16), level, kvn)
            assert get_status(connection, host, 0x80) == [ISD_AID]
        finally:
            connection.disconnect()
    state = DirectoryStore(state_dir).load()
    assert state is not None and [a.aid for a in state.applications] == [ISD_AID, ECHO_AID]
    assert [f.aid for f in state.load_files] == [SD_LOAD_FILE_AID]


def test_second_echo_instance_answers_through_pcscd(pcscd_readers: list[str], tmp_path: Path) -> None:
    """The installed instance runs the echo applet: SELECT it, its install parameters come back (INS CA)."""
    profile_path, kvn, _ = profile(tmp_path, "03", "70")
    with served(pcscd_readers, tmp_path / "state", profile_path) as card:
        connection = card.connect()
        try:
            host = open_channel(connection, "03", 0x70, 0x33, kvn)
            for_load = lv(ECHO_LOAD_FILE_AID) + lv(b"") + lv(b"") + lv(b"") + lv(b"")
            assert secure(connection, host, bytes([0x80, 0xE6, 0x02, 0x00, len(for_load)]) + for_load).sw == 0x9000
            block = cap_components(ECHO_LOAD_FILE_AID, [ECHO_MODULE_AID])
            load_file = b"\xc4" + bytes([0x81, len(block)]) + block
            assert secure(connection, host, bytes([0x80, 0xE8, 0x80, 0x00, len(load_file)]) + load_file).sw == 0x9000
            for_install = (
                lv(ECHO_LOAD_FILE_AID) + lv(ECHO_MODULE_AID) + lv(SECOND_ECHO) + lv(b"\x00") + lv(tlv(0xC9, b"\x42"))
            )
            for_install += lv(b"")
            command = bytes([0x80, 0xE6, 0x0C, 0x00, len(for_install)]) + for_install
            assert secure(connection, host, command).sw == 0x9000
            select = bytes.fromhex("00A404000C") + SECOND_ECHO + b"\x00"
            assert transmit(connection, select).sw == 0x9000
            assert transmit(connection, bytes.fromhex("80CA000000")).data == b"\x42"
            assert transmit(connection, bytes.fromhex("8010000002BEEF00")).data == bytes.fromhex("BEEF")
            # GET STATUS of applications, outside the channel: 6982 (a secure channel is needed, 11.4.2).
            assert transmit(connection, SELECT_ISD).sw == 0x9000
            assert transmit(connection, bytes.fromhex("80F24002024F0000")).sw == 0x6982
        finally:
            connection.disconnect()


@pytest.mark.parametrize(("i", "other"), [("15", 0x55), ("55", 0x15)])
def test_scp02_card_runs_the_profiles_i(pcscd_readers: list[str], tmp_path: Path, i: str, other: int) -> None:
    """The card challenge follows the profile's i (GP 2.2.1 E.4.2.3): a host expecting i=55 checks the
    pseudo-random challenge and refuses an i=15 card's random one; a host told i=15 (random) accepts either."""
    profile_path, kvn, _ = profile(tmp_path, "02", i)
    with served(pcscd_readers, tmp_path / "state", profile_path) as card:
        connection = card.connect()
        try:
            if other == 0x55:
                with pytest.raises(AuthenticationError, match="challenge"):
                    open_channel(connection, "02", other, 0x01, kvn)
            else:
                assert open_channel(connection, "02", other, 0x01, kvn).is_open
        finally:
            connection.disconnect()
