"""The handset bridge in front of a card reached through pcscd: the emulator served on a vpcd slot, the bridge
opening it as a PC/SC reader (which completes 61xx itself), our SMPP client sending SCP80 packets."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpchannel.emulator.app import EmulatedCard, open_card
from gpchannel.emulator.bridge import HandsetBridge
from gpchannel.emulator.handset import HandsetCard
from gpchannel.io.pcsc import PcscTransport
from gpchannel.ota import ResponseStatus, Spi, unsecure_response
from gpchannel.ota.remote_apdu import CompactResponse
from gpchannel.smpp import MessageState
from tests.emulator.test_bridge import KEYS, KIC, KID, PROFILE, READ_SPN, SELECT_SPN, UPDATE_SPN, _packet
from tests.io.conftest import Serve
from tests.smpp.conftest import CARD_NUMBER, client, free_port, run, serving


@pytest.mark.pcsc
def test_bridge_through_pcscd(virtual_reader: Serve, tmp_path: Path) -> None:
    card, _ = open_card(tmp_path / "state", PROFILE)
    spi_report = Spi.from_bytes(bytes.fromhex("1619"))
    spi_submit = Spi.from_bytes(bytes.fromhex("1639"))
    record = bytes(range(176))
    with virtual_reader(EmulatedCard(card)) as reader:
        transport = PcscTransport(reader.name)
        try:

            async def session() -> None:
                bridge = HandsetBridge(HandsetCard(transport), port=free_port())
                async with serving(bridge), client(bridge) as esme:
                    await esme.submit_packet(CARD_NUMBER, _packet(spi_report, 1, SELECT_SPN, UPDATE_SPN))
                    por, receipts = await esme.wait_por(20)
                    response = unsecure_response(por.packet, spi=spi_report, kic=KIC, kid=KID, keyset=KEYS)
                    assert (response.status, response.authenticated) == (ResponseStatus.POR_OK, True)
                    assert [r.state for r in receipts] == [MessageState.DELIVERED]
                    await esme.submit_packet(CARD_NUMBER, _packet(spi_report, 2, SELECT_SPN, READ_SPN))
                    por, _ = await esme.wait_por(20)
                    response = unsecure_response(por.packet, spi=spi_report, kic=KIC, kid=KID, keyset=KEYS)
                    assert CompactResponse.from_bytes(response.data).last.data == b"ABCD"
                    # Concatenated both ways through PC/SC: two submit_sm, PoR in two SMS-SUBMITs via FETCH.
                    script = ("00A4080C047F106F3C", "00DC0104B0" + record.hex(), "00B2010400")
                    sent = await esme.submit_packet(CARD_NUMBER, _packet(spi_submit, 3, *script), reference=7)
                    assert len(sent.message_ids) == 2
                    por, _ = await esme.wait_por(20)
                    response = unsecure_response(por.packet, spi=spi_submit, kic=KIC, kid=KID, keyset=KEYS)
                    assert response.status is ResponseStatus.POR_OK
                    assert CompactResponse.from_bytes(response.data).last.data == record
                assert bridge.stats.pors == 4

            run(session(), timeout=60)
        finally:
            transport.close()
