"""The handset bridge in fleet mode over SMPP on 127.0.0.1: packets to several emulated cards, each reached by
its MSISDN and answering with a PoR that verifies with that card's own keys; a replayed counter refused by the
card (status 02) and seen as such by the fleet's watch; a number outside the fleet refused at submit_sm."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpchannel.codec.apdu import CommandApdu
from gpchannel.emulator.bridge import ESME_RINVDSTADR, HandsetBridge
from gpchannel.emulator.bridge_thread import BridgeThread
from gpchannel.emulator.fleet import Fleet, FleetCard, generate_fleet
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.errors import SmppStatusError, TransportError
from gpchannel.ota import (
    CipherAlgorithm,
    Kic,
    Kid,
    MacAlgorithm,
    ResponseStatus,
    Scp80KeySet,
    Spi,
    encode_compact,
    secure_command,
    unsecure_response,
)
from gpchannel.ota.remote_apdu import CompactResponse
from gpchannel.smpp import OtaSmppClient
from tests.smpp.conftest import client, free_port, run, serving

SPI = Spi.from_bytes(bytes.fromhex("1619"))  # CC, ciphered, counter higher; PoR with CC, ciphered, in the report
SPI_SUBMIT = Spi.from_bytes(bytes.fromhex("1639"))  # the same, PoR as an SMS-SUBMIT (proactive SEND SHORT MESSAGE)
KIC, KID = Kic.for_cipher(CipherAlgorithm.AES_CBC, 1), Kid.for_mac(MacAlgorithm.AES_CMAC, 1)
GET_DATA_IIN = "80CA004200"
RAM = bytes.fromhex("000000")


def _keys(card: FleetCard) -> Scp80KeySet:
    return Scp80KeySet(card.kic, card.kid, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)


def _packet(card: FleetCard, counter: int, spi: Spi = SPI) -> bytes:
    data = encode_compact([CommandApdu.from_bytes(bytes.fromhex(GET_DATA_IIN))])
    return secure_command(data, spi=spi, kic=KIC, kid=KID, tar=RAM, counter=counter, keyset=_keys(card)).to_bytes()


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return generate_fleet(tmp_path / "fleet", 6)


def test_each_card_answers_on_its_own_number_with_its_own_keys(fleet: Fleet) -> None:
    handsets = FleetHandsets(fleet)
    chosen = fleet.cards[1], fleet.cards[4], fleet.cards[5]

    async def session() -> None:
        bridge = HandsetBridge(None, port=free_port(), fleet=handsets, workers=2, track_destinations=True)
        async with serving(bridge), client(bridge) as esme:
            for card in chosen:
                await esme.submit_packet(card.msisdn, _packet(card, 1), receipt=False)
            got = {}
            for _ in chosen:
                por, _ = await esme.wait_por(10)
                got[por.originator] = por.packet
            for card in chosen:
                response = unsecure_response(got[card.msisdn], spi=SPI, kic=KIC, kid=KID, keyset=_keys(card))
                assert (response.status, response.counter, response.authenticated) == (ResponseStatus.POR_OK, 1, True)
                assert CompactResponse.from_bytes(response.data).executed == 1
        assert bridge.destinations == {card.msisdn: 1 for card in chosen}

    run(session())
    for card in chosen:
        activity = handsets.activity[card.iccid]
        assert (activity.envelopes, activity.packets, activity.accepted, activity.counter) == (1, 1, 1, 1)
        assert activity.statuses == {0: 1}
        assert fleet.ota_counter(card) == 1  # persisted in the card's own state directory
    assert fleet.stored_state(fleet.cards[0]) is None
    assert handsets.totals().accepted == 3


def test_replayed_counter_is_refused_by_the_card_and_counted(fleet: Fleet) -> None:
    handsets = FleetHandsets(fleet)
    card = fleet.cards[2]

    async def session() -> None:
        bridge = HandsetBridge(None, port=free_port(), fleet=handsets)
        async with serving(bridge), client(bridge) as esme:
            await esme.submit_packet(card.msisdn, _packet(card, 7, SPI_SUBMIT), receipt=False)
            await esme.wait_por(10)
            await esme.submit_packet(card.msisdn, _packet(card, 7, SPI_SUBMIT), receipt=False)
            por, _ = await esme.wait_por(10)
            response = unsecure_response(por.packet, spi=SPI_SUBMIT, kic=KIC, kid=KID, keyset=_keys(card))
            assert response.status is ResponseStatus.CNTR_LOW

    run(session())
    activity = handsets.activity[card.iccid]
    assert (activity.packets, activity.accepted, activity.counter) == (2, 1, 7)
    assert activity.statuses == {0: 1, 2: 1}


def test_a_reopened_fleet_keeps_each_cards_counter(fleet: Fleet) -> None:
    card = fleet.cards[3]
    for counter, expected in ((1, ResponseStatus.POR_OK), (1, ResponseStatus.CNTR_LOW), (2, ResponseStatus.POR_OK)):
        handsets = FleetHandsets(Fleet.load(fleet.directory), max_open=1)  # a bridge restart between messages

        async def session(counter: int = counter, handsets: FleetHandsets = handsets) -> bytes:
            bridge = HandsetBridge(None, port=free_port(), fleet=handsets)
            async with serving(bridge), client(bridge) as esme:
                await esme.submit_packet(card.msisdn, _packet(card, counter), receipt=False)
                por, _ = await esme.wait_por(10)
                return por.packet

        try:
            por = run(session())
        finally:
            handsets.close()  # as the bridge does when it stops: the journal folded in and released
        response = unsecure_response(por, spi=SPI, kic=KIC, kid=KID, keyset=_keys(card))
        assert response.status is expected
    assert fleet.ota_counter(card) == 2


def test_number_outside_the_fleet_is_refused(fleet: Fleet) -> None:
    handsets = FleetHandsets(fleet)

    async def session() -> None:
        bridge = HandsetBridge(None, port=free_port(), fleet=handsets)
        async with serving(bridge), client(bridge) as esme:
            with pytest.raises(SmppStatusError) as caught:
                await esme.submit_packet("4900000", _packet(fleet.cards[0], 1))
            assert caught.value.command_status == ESME_RINVDSTADR
        assert bridge.stats.refused == 1

    run(session())
    assert handsets.activity == {}


def test_card_and_fleet_are_exclusive(fleet: Fleet) -> None:
    with pytest.raises(ValueError, match="not both"):
        HandsetBridge(object(), fleet=FleetHandsets(fleet))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        HandsetBridge(None, workers=0)


def test_bridge_thread_serves_and_reports_a_taken_port(fleet: Fleet) -> None:
    port = free_port()
    card = fleet.cards[0]
    with BridgeThread(HandsetBridge(None, port=port, fleet=FleetHandsets(fleet))) as first:

        async def session() -> ResponseStatus:
            esme = await OtaSmppClient.connect("127.0.0.1", port, "ota", "pw", source_addr="4912345")
            async with esme:
                await esme.submit_packet(card.msisdn, _packet(card, 1), receipt=False)
                por, _ = await esme.wait_por(10)
            return unsecure_response(por.packet, spi=SPI, kic=KIC, kid=KID, keyset=_keys(card)).status

        assert run(session()) is ResponseStatus.POR_OK
        with pytest.raises(TransportError, match="cannot listen"):
            BridgeThread(HandsetBridge(None, port=port)).start()
    assert first.bridge.stats.pors == 1
