"""The handset bridge end to end over SMPP on 127.0.0.1: our OtaSmppClient -> HandsetBridge -> the in-process
emulator (examples/profiles/scp03.toml) or pySim's real-card session, PoRs verified; sink mode; and the
command_status answers to bad binds, refused ESMEs and malformed PDUs."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.emulator.app import open_card
from gpchannel.emulator.bridge import ESME_RINVESMCLASS, ESME_RINVMSGLEN, ESME_RINVSYSID, HandsetBridge
from gpchannel.emulator.handset import HandsetCard
from gpchannel.errors import SmppStatusError, TransportError
from gpchannel.io.transport import InProcessTransport
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
from gpchannel.smpp import DeliveryReceipt, MessageState, OtaSmppClient
from gpchannel.smpp.pdu import CommandId, Pdu, ShortMessageBody, decode
from tests.smpp.cards import PYSIM_SESSION, ScriptedCard, pysim_card, pysim_keys
from tests.smpp.conftest import CARD_NUMBER, OTA_SERVER, client, free_port, run, serving

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "examples" / "profiles" / "scp03.toml"
KEYS = Scp80KeySet(
    bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
    bytes.fromhex("101112131415161718191A1B1C1D1E1F"),
    cipher=CipherAlgorithm.AES_CBC,
    mac=MacAlgorithm.AES_CMAC,
)
KIC, KID = Kic.for_cipher(CipherAlgorithm.AES_CBC, 1), Kid.for_mac(MacAlgorithm.AES_CMAC, 1)
RFM = bytes.fromhex("B00001")
SELECT_SPN, READ_SPN, UPDATE_SPN = "00A4080C047F206F46", "00B0000004", "00D600000441424344"


def _apdus(*hexes: str) -> list[CommandApdu]:
    return [CommandApdu.from_bytes(bytes.fromhex(h)) for h in hexes]


def _packet(spi: Spi, counter: int, *apdus: str) -> bytes:
    data = encode_compact(_apdus(*apdus))
    return secure_command(data, spi=spi, kic=KIC, kid=KID, tar=RFM, counter=counter, keyset=KEYS).to_bytes()


@pytest.fixture
def emulator_card(tmp_path: Path) -> HandsetCard:
    card, _ = open_card(tmp_path / "state", PROFILE)
    return HandsetCard(InProcessTransport(card.process))


def test_packet_to_the_emulator_comes_back_as_verified_por(emulator_card: HandsetCard) -> None:
    spi = Spi.from_bytes(bytes.fromhex("1619"))  # CC, ciphered, counter higher; PoR with CC, ciphered, in the report

    async def session() -> None:
        bridge = HandsetBridge(emulator_card, port=free_port())
        async with serving(bridge), client(bridge) as esme:
            sent = await esme.submit_packet(CARD_NUMBER, _packet(spi, 1, SELECT_SPN, UPDATE_SPN))
            por, receipts = await esme.wait_por(10)
            assert por.originator == CARD_NUMBER
            response = unsecure_response(por.packet, spi=spi, kic=KIC, kid=KID, keyset=KEYS)
            assert (response.status, response.counter, response.authenticated) == (ResponseStatus.POR_OK, 1, True)
            assert CompactResponse.from_bytes(response.data).executed == 2
            assert [(r.message_id, r.state) for r in receipts] == [(sent.message_ids[0], MessageState.DELIVERED)]
            # The card kept the update: the next packet reads it back; a replayed counter gets 02.
            await esme.submit_packet(CARD_NUMBER, _packet(spi, 2, SELECT_SPN, READ_SPN), receipt=False)
            por, receipts = await esme.wait_por(10)
            response = unsecure_response(por.packet, spi=spi, kic=KIC, kid=KID, keyset=KEYS)
            last = CompactResponse.from_bytes(response.data).last
            assert (receipts, last.data, last.sw) == ([], b"ABCD", 0x9000)
            await esme.submit_packet(CARD_NUMBER, _packet(spi, 2, SELECT_SPN, READ_SPN), receipt=False)
            por, _ = await esme.wait_por(10)
            replay = unsecure_response(por.packet, spi=spi, kic=KIC, kid=KID, keyset=KEYS)
            assert (replay.status, replay.authenticated) == (ResponseStatus.CNTR_LOW, True)
        assert (bridge.stats.accepted, bridge.stats.delivered, bridge.stats.pors, bridge.stats.receipts) == (3, 3, 3, 1)

    run(session())


def test_concatenated_command_and_por_as_sms_submits(emulator_card: HandsetCard) -> None:
    """A 176-byte record: the command packet needs two submit_sm (concatenation IE), and with SPI2 asking for
    the PoR in an SMS-SUBMIT (1639) the card sends it in two proactive SEND SHORT MESSAGEs -> two deliver_sm."""
    spi = Spi.from_bytes(bytes.fromhex("1639"))
    record = bytes(range(176))
    script = ("00A4080C047F106F3C", "00DC0104B0" + record.hex(), "00B2010400")

    async def session() -> None:
        bridge = HandsetBridge(emulator_card, port=free_port())
        async with serving(bridge), client(bridge) as esme:
            sent = await esme.submit_packet(CARD_NUMBER, _packet(spi, 1, *script), reference=0x42)
            assert len(sent.message_ids) == 2 and len(set(sent.message_ids)) == 2
            por, receipts = await esme.wait_por(10)
            response = unsecure_response(por.packet, spi=spi, kic=KIC, kid=KID, keyset=KEYS)
            assert (response.status, response.authenticated) == (ResponseStatus.POR_OK, True)
            last = CompactResponse.from_bytes(response.data).last
            assert (last.data, last.sw) == (record, 0x9000)
            assert sorted(r.message_id for r in receipts) == sorted(sent.message_ids)
        assert bridge.stats.pors == 2  # the PoR itself took two deliver_sm

    run(session())


def test_pysim_session_over_smpp() -> None:
    """pySim's smpp-ota-tool session: the short_message our client sends is pySim's, the real card's PoR comes
    back through the bridge as a deliver_sm and verifies."""
    case = PYSIM_SESSION
    spi, kic, kid, keyset = pysim_keys()
    packet = secure_command(
        case.hex_in("apdu_script"), spi=spi, kic=kic, kid=kid, tar=case.hex_in("tar"), counter=0, keyset=keyset
    ).to_bytes()
    card = pysim_card()

    async def session() -> None:
        bridge = HandsetBridge(HandsetCard(card), port=free_port())
        async with serving(bridge), client(bridge) as esme:
            await esme.submit_packet(CARD_NUMBER, packet, receipt=False)
            por, _ = await esme.wait_por(10)
        sent = CommandApdu.from_bytes(card.seen[0].to_bytes())
        assert case.hex_out("sms_user_data_cmd") in sent.data  # the SMS-DELIVER's TP-UD, unchanged
        response = unsecure_response(por.packet, spi=spi, kic=kic, kid=kid, keyset=keyset)
        assert b"\x02\x71\x00" + por.packet == case.hex_in("encoded_resp")
        assert response.status is ResponseStatus.POR_OK
        assert response.data[3:] == bytes.fromhex(case.expected["last_response_data"])

    run(session())


def test_card_refusal_gives_an_undelivered_receipt() -> None:
    card = ScriptedCard(lambda c: ResponseApdu(sw=0x6A80))

    async def session() -> None:
        bridge = HandsetBridge(HandsetCard(card), port=free_port())
        async with serving(bridge), client(bridge) as esme:
            sent = await esme.submit_user_data(CARD_NUMBER, [b"\x02\x70\x00\x00\x01"])
            event = await esme.next_event(10)
            assert isinstance(event, DeliveryReceipt)
            assert (event.message_id, event.state, event.delivered) == (
                sent.message_ids[0],
                MessageState.UNDELIVERABLE,
                0,
            )
            assert event.text == "sw 6A80"
            assert await esme.next_event(0.3) is None  # no PoR
        assert bridge.stats.undelivered == 1

    run(session())


def test_sink_mode_receipts_without_a_card() -> None:
    async def session() -> None:
        bridge = HandsetBridge(None, port=free_port())
        async with serving(bridge), client(bridge) as esme:
            ids: list[str] = []
            for n in range(20):
                ids += (await esme.submit_user_data(f"49155500{n:02d}", [b"\x02\x70\x00" + bytes(20)])).message_ids
            receipts = [await esme.next_event(10) for _ in ids]
            assert [r.message_id for r in receipts if isinstance(r, DeliveryReceipt)] == ids
            assert all(isinstance(r, DeliveryReceipt) and r.state is MessageState.DELIVERED for r in receipts)
        assert (bridge.stats.accepted, bridge.stats.pors) == (20, 0)

    run(session())


# --------------------------------------------------------------------------------------------- command_status


def test_refused_submits() -> None:
    async def session() -> None:
        bridge = HandsetBridge(None, port=free_port(), allowed_system_ids={"ota-server"})
        async with serving(bridge):
            with pytest.raises(SmppStatusError) as info:  # a system_id not allowed is refused at the bind
                await OtaSmppClient.connect("127.0.0.1", bridge.port, "intruder", "pw", source_addr=OTA_SERVER)
            assert info.value.command_status == ESME_RINVSYSID
            async with client(bridge) as esme:
                smsc = esme.esme
                resp = await smsc.submit_sm(ShortMessageBody(CARD_NUMBER, b"plain text", source_addr=OTA_SERVER))
                assert resp.command_status == ESME_RINVESMCLASS  # no UDH: not an OTA message
                body = ShortMessageBody(CARD_NUMBER, bytes(141), source_addr=OTA_SERVER, esm_class=0x40)
                resp = await smsc.submit_sm(body)
                assert resp.command_status == ESME_RINVMSGLEN
                body = ShortMessageBody(CARD_NUMBER, b"\x02\x70\x00", source_addr="ota!", esm_class=0x40)
                resp = await smsc.submit_sm(body)
                assert resp.command_status == 0x0A  # ESME_RINVSRCADR: no TP-OA can carry it
        assert bridge.stats.refused == 3 and bridge.stats.accepted == 0

    run(session())


def test_bind_to_nothing_fails() -> None:
    async def session() -> None:
        with pytest.raises(TransportError, match="cannot bind"):
            await OtaSmppClient.connect("127.0.0.1", free_port(), "x", "y", source_addr=OTA_SERVER, timeout=3)

    run(session())


def _pdu(command_id: int, sequence: int, body: bytes = b"") -> bytes:
    """A PDU built by hand on purpose: the cases below are the malformed ones a library would not produce."""
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


_BIND_TRX = _pdu(0x09, 1, b"esme\x00pw\x00\x00\x34\x00\x00\x00")


def _exchange(port: int, *pdus: bytes) -> list[tuple[int, int, int]]:
    """(command_id, command_status, sequence) of the answer to each PDU, on one connection."""
    out: list[tuple[int, int, int]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for pdu in pdus:
            sock.sendall(pdu)
            header = b""
            while len(header) < 16:
                chunk = sock.recv(16 - len(header))
                assert chunk, "the bridge closed the connection"
                header += chunk
            length = struct.unpack(">I", header[:4])[0]
            body = b""
            while len(body) < length - 16:
                body += sock.recv(length - 16 - len(body))
            decoded = decode(header + body)
            out.append((decoded.command_id, decoded.command_status, decoded.sequence_number))
    return out


@pytest.mark.parametrize(
    ("pdus", "expected"),
    [
        # submit_sm before any bind: generic_nack ESME_RINVBNDSTS (SMPP 3.4 5.1.3, 0x04)
        (
            (Pdu(CommandId.SUBMIT_SM, 7, 0, ShortMessageBody(CARD_NUMBER, b"x", OTA_SERVER)).encode(),),
            [(0x80000000, 0x04, 7)],
        ),
        # a bind whose body is cut short: bind_transceiver_resp ESME_RINVPARLEN (0xC2)
        ((_pdu(0x09, 3, b"esme"),), [(0x80000009, 0xC2, 3)]),
        # bound, then an unknown command_id: generic_nack ESME_RINVCMDID (0x03)
        ((_BIND_TRX, _pdu(0x00012345, 4)), [(0x80000009, 0, 1), (0x80000000, 0x03, 4)]),
        # bound, then a submit_sm whose body is cut short: submit_sm_resp ESME_RINVPARLEN (0xC2)
        ((_BIND_TRX, _pdu(0x04, 5, b"\x00\x01")), [(0x80000009, 0, 1), (0x80000004, 0xC2, 5)]),
        # enquire_link while bound is answered (the session stays up)
        ((_BIND_TRX, _pdu(0x15, 6)), [(0x80000009, 0, 1), (0x80000015, 0, 6)]),
    ],
    ids=["submit-unbound", "short-bind", "unknown-command", "garbage-submit", "enquire-link"],
)
def test_malformed_and_unbound_pdus(pdus: tuple[bytes, ...], expected: list[tuple[int, int, int]]) -> None:
    async def session() -> list[tuple[int, int, int]]:
        bridge = HandsetBridge(None, port=free_port())
        async with serving(bridge):
            return await asyncio.to_thread(_exchange, bridge.port, *pdus)

    assert run(session()) == expected
