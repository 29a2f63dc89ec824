"""The card side of the SCP81 trigger: an SCP80 command packet for the ISD's TAR whose secured data is the
Administration Session Triggering Parameters (tag 81) is recorded for the emulator's agent, after every SCP80
check, and persisted with the counter (card/admin_trigger.py).

The trigger bytes are written by hand from GP Amendment B Table 3-3 (ota-notes B.3), in the layout of the
denom.org ``SCP81SessionParams.toBin`` and pySim's ``pySim/global_platform/http.py`` (the tag-85 value is
pySim's test vector ``85 08 04 DEADBEEF 02 00 40``), not with our own encoder."""

from __future__ import annotations

from gpchannel.card.admin_trigger import (
    PendingDelivery,
    clear_delivery,
    connection_address,
    is_trigger,
    pending_delivery,
    pending_trigger,
    store_delivery,
    take_trigger,
)
from gpchannel.card.profile import load_profile
from gpchannel.ota import ResponseStatus, secure_command
from tests.card.harness import profile_text
from tests.card.test_ota_handler import (
    KEYSET,
    KIC,
    KID,
    OTA,
    RAM,
    RFM,
    SPI,
    counter_of,
    deliver,
    make_card,
    restart,
    send,
)

SCP81 = """
[scp81]
psk_identity = "card-1"
psk = "0102030405060708090A0B0C0D0E0F10"
server = "127.0.0.1:8443"
uri = "/gp/admin"
"""

CONNECTION = bytes.fromhex(
    "84 13"  # Connection parameters: TS 102 223 OPEN CHANNEL TLVs
    "35 01 03"  # bearer description: default bearer
    "39 02 0400"  # buffer size 1024
    "3C 03 02 1F90"  # transport level: TCP (UICC client), port 8080
    "3E 05 21 0A000001".replace(" ", "")  # other address: IPv4 10.0.0.1
)
SECURITY = bytes.fromhex("85 08 04 DEADBEEF 02 00 40".replace(" ", ""))
RETRY = bytes.fromhex("86 07 0003 A5 03 000005".replace(" ", ""))  # 3 retries, 5 s [M: delay coding]
HTTP = bytes.fromhex("89 1E 8A 0A 61646d696e2e686f7374 8B 05 6167656e74 8C 09 2f61646d696e2f7831".replace(" ", ""))
# 8A "admin.host", 8B "agent", 8C "/admin/x1"


def _tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 0x80
    return bytes((tag, len(value))) + value


TRIGGER = _tlv(0x81, _tlv(0x83, CONNECTION + SECURITY + RETRY + HTTP))


def test_hand_written_trigger_is_well_formed() -> None:
    assert len(CONNECTION) == 2 + 0x13 and len(HTTP) == 2 + 0x1E


def test_is_trigger() -> None:
    assert is_trigger(TRIGGER)
    assert is_trigger(b"\x81\x00")
    assert not is_trigger(b"\x81")
    assert not is_trigger(TRIGGER + b"\x00")  # the TLV must fill the secured data
    assert not is_trigger(TRIGGER[:-1])
    assert not is_trigger(bytes.fromhex("AA06220480CA9F7F"))  # an expanded script
    assert not is_trigger(bytes.fromhex("0580CA9F7F00"))  # a compact one
    assert not is_trigger(b"")


def test_connection_address_from_open_channel_tlvs() -> None:
    assert connection_address(CONNECTION[2:]) == ("10.0.0.1", 8080)
    # Comprehension-required tags (BC, BE) and an IPv6 address.
    v6 = bytes.fromhex("BE11 57 20010DB8000000000000000000000001 BC03 02 01BB".replace(" ", ""))
    assert connection_address(v6) == ("2001:0db8:0000:0000:0000:0000:0000:0001", 443)
    assert connection_address(None) == (None, None)
    assert connection_address(b"\x3e") == (None, None)  # unreadable: the profile's server is used
    assert connection_address(bytes.fromhex("3E03 80 0102")) == (None, None)  # another address type


def test_trigger_through_scp80_is_recorded_and_persisted() -> None:
    card, store = make_card(SCP81)
    por = send(card, TRIGGER, 1, tar=RAM)
    assert por is not None
    assert (por.status, por.data) == (ResponseStatus.POR_OK, b"\x90\x00")
    parameters = pending_trigger(card.state)
    assert parameters is not None
    assert parameters.psk_identity == bytes.fromhex("DEADBEEF")
    assert (parameters.kvn, parameters.key_id) == (0x00, 0x40)
    assert (parameters.host, parameters.agent_id, parameters.uri) == ("admin.host", "agent", "/admin/x1")
    assert parameters.retry is not None and parameters.retry.counter == 3
    # Committed with the counter when the ENVELOPE completed: a restarted card still has it.
    again = restart(store)
    assert pending_trigger(again.state) == parameters
    assert counter_of(again) == 1
    assert take_trigger(again.state) == parameters
    assert pending_trigger(again.state) is None


def test_default_trigger_81_00() -> None:
    card, _ = make_card(SCP81)
    por = send(card, b"\x81\x00", 1, tar=RAM)
    assert por is not None and por.data == b"\x90\x00"
    parameters = pending_trigger(card.state)
    assert parameters is not None and parameters.psk_identity is None


def test_trigger_with_a_bad_checksum_is_not_recorded() -> None:
    card, _ = make_card(SCP81)
    packet = bytearray(secure_command(TRIGGER, spi=SPI, kic=KIC, kid=KID, tar=RAM, counter=1, keyset=KEYSET).to_bytes())
    packet[-1] ^= 0x01  # the last byte of the ciphered data
    deliver(card, bytes(packet))
    assert pending_trigger(card.state) is None
    assert counter_of(card) == 0


def test_replayed_trigger_is_not_recorded_again() -> None:
    card, _ = make_card(SCP81)
    assert send(card, TRIGGER, 1, tar=RAM) is not None
    assert take_trigger(card.state) is not None
    por = send(card, TRIGGER, 1, tar=RAM)  # same counter: refused by SCP80 before the trigger is looked at
    assert por is not None and por.status is not ResponseStatus.POR_OK
    assert pending_trigger(card.state) is None


def test_trigger_for_rfm_is_refused() -> None:
    card, _ = make_card(SCP81)
    por = send(card, TRIGGER, 1, tar=RFM)
    assert por is not None and por.data == b"\x69\x85"
    assert pending_trigger(card.state) is None


def test_trigger_without_scp81_configuration_is_refused() -> None:
    card, _ = make_card()
    por = send(card, TRIGGER, 1, tar=RAM)
    assert por is not None and por.data == b"\x69\x85"
    assert pending_trigger(card.state) is None


def test_malformed_trigger_is_refused() -> None:
    card, _ = make_card(SCP81)
    por = send(card, bytes.fromhex("8103 85 01 FF"), 1, tar=RAM)  # a truncated tag 85 outside an 83 template
    assert por is not None and por.data == b"\x6a\x80"
    assert pending_trigger(card.state) is None


def test_pending_delivery_round_trip() -> None:
    state = load_profile(profile_text() + OTA + SCP81)
    assert pending_delivery(state) is None
    store_delivery(state, PendingDelivery("/next/1"))
    assert pending_delivery(state) == PendingDelivery("/next/1")
    done = PendingDelivery("/next/1", bytes.fromhex("AB0780010123029000"), "ok", "application/x")
    store_delivery(state, done)
    assert pending_delivery(type(state).from_json(state.to_json())) == done
    clear_delivery(state)
    assert pending_delivery(state) is None
    assert "admin_session" not in state.ota
