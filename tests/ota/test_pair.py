"""An OTA server and a card in memory: APDUs -> command packet -> concatenated SMS-DELIVERs -> ENVELOPEs ->
reassembly -> unsecure -> remote APDUs -> PoR -> SMS-DELIVER-REPORT / SMS-SUBMIT -> verified on the server.

The cryptography is checked against external vectors in test_scp80.py; this checks that the pieces fit."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import GPChannelError
from gpchannel.ota import (
    Address,
    CipherAlgorithm,
    CommandPacket,
    CompactResponse,
    CounterMode,
    Integrity,
    Kic,
    Kid,
    MacAlgorithm,
    PorMode,
    PorTransport,
    Reassembler,
    ResponseStatus,
    Scp80KeySet,
    SmsDeliver,
    SmsDeliverReport,
    SmsPpDownload,
    SmsSubmit,
    Spi,
    counter_after,
    decode_compact,
    encode_compact,
    error_response,
    may_secure_por,
    por_status,
    por_wanted,
    secure_command,
    secure_response,
    secured_message,
    split_packet,
    unsecure_response,
)
from gpchannel.ota.scp80 import unsecure_command

KEYSET = Scp80KeySet(
    bytes.fromhex("200102030405060708090a0b0c0d0e0f"),
    bytes.fromhex("201102030405060708090a0b0c0d0e0f"),
    cipher=CipherAlgorithm.AES_CBC,
    mac=MacAlgorithm.AES_CMAC,
)
KIC = Kic.for_cipher(CipherAlgorithm.AES_CBC, kvn=2)
KID = Kid.for_mac(MacAlgorithm.AES_CMAC, kvn=2)
RFM_TAR = bytes.fromhex("b00011")
SERVER = Address("12345678")


@dataclass
class Card:
    """A toy receiving entity: one TAR, one key set, a counter, and an executor that echoes UPDATE BINARY."""

    counter: int = 4
    reassembler: Reassembler = field(default_factory=Reassembler)
    executed: list[CommandApdu] = field(default_factory=list)

    def envelope(self, apdu: CommandApdu) -> tuple[bytes, SmsSubmit | None]:
        """Process one ENVELOPE; returns (response data of the ENVELOPE, an SMS-SUBMIT the card sends)."""
        download = SmsPpDownload.from_apdu(apdu)
        deliver = SmsDeliver.from_bytes(download.tpdu)
        assert (deliver.pid, deliver.dcs, deliver.udhi) == (0x7F, 0xF6, True)
        message = self.reassembler.feed(deliver.user_data, deliver.originator.digits)
        if message is None:
            return b"", None
        packet = CommandPacket.from_bytes(message.packet)
        if packet.tar != RFM_TAR:
            return self._por(packet, error_response(packet, ResponseStatus.TAR_UNKNOWN).to_bytes(), deliver)
        try:
            command = unsecure_command(packet, KEYSET, stored_counter=self.counter)
        except GPChannelError as exc:
            status = por_status(exc)
            assert status is not ResponseStatus.POR_OK
            if may_secure_por(status):  # the CC verified (e.g. a replay): the PoR may be secured
                por = secure_response(
                    b"",
                    status=status,
                    tar=packet.tar,
                    counter=0,
                    spi=packet.spi,
                    kic=packet.kic,
                    kid=packet.kid,
                    keyset=KEYSET,
                )
            else:
                por = error_response(packet, status)
            return self._por(packet, por.to_bytes(), deliver) if por_wanted(packet.spi, status) else (b"", None)
        self.counter = counter_after(command.spi.counter_mode, command.counter, self.counter)
        responses = [self._execute(a) for a in decode_compact(command.data)]
        if not por_wanted(command.spi, ResponseStatus.POR_OK):
            return b"", None
        data = CompactResponse(len(responses), responses[-1]).to_bytes()
        por = secure_response(
            data,
            status=ResponseStatus.POR_OK,
            tar=command.tar,
            counter=command.counter,
            spi=command.spi,
            kic=command.kic,
            kid=command.kid,
            keyset=KEYSET,
        )
        return self._por(packet, por.to_bytes(), deliver)

    def _execute(self, apdu: CommandApdu) -> ResponseApdu:
        self.executed.append(apdu)
        return ResponseApdu(apdu.data[:4], 0x9000)

    @staticmethod
    def _por(packet: CommandPacket, response: bytes, deliver: SmsDeliver) -> tuple[bytes, SmsSubmit | None]:
        (ud,) = split_packet(response, response=True)
        if packet.spi.por_transport is PorTransport.SUBMIT:
            return b"", SmsSubmit(deliver.originator, ud)
        return ud, None


def _send(card: Card, spi: Spi, counter: int, apdus: list[CommandApdu], tar: bytes = RFM_TAR) -> bytes:
    """Server: build, split, wrap; feed the card; return the PoR's TP-UD as the server receives it."""
    packet = secure_command(encode_compact(apdus), spi=spi, kic=KIC, kid=KID, tar=tar, counter=counter, keyset=KEYSET)
    por_ud = b""
    for ud in split_packet(packet.to_bytes(), reference=counter & 0xFF):
        envelope = SmsPpDownload(SmsDeliver(SERVER, ud).to_bytes(), Address("4477")).to_apdu()
        data, submit = card.envelope(CommandApdu.from_bytes(envelope.to_bytes()))
        if submit is not None:
            assert submit.destination == SERVER
            por_ud = SmsSubmit.from_bytes(submit.to_bytes()).user_data
        elif data:
            por_ud = SmsDeliverReport.from_bytes(SmsDeliverReport(data).to_bytes()).user_data
    return por_ud


BIG_SCRIPT = [CommandApdu(0x00, 0xD6, 0x00, i, bytes([i]) * 60) for i in range(5)]


@pytest.mark.parametrize("transport", list(PorTransport))
def test_session(transport: PorTransport) -> None:
    card = Card()
    spi = Spi(counter_mode=CounterMode.HIGHER, por_transport=transport)
    por_ud = _send(card, spi, 5, BIG_SCRIPT)
    assert card.executed == BIG_SCRIPT
    assert card.counter == 5
    message = secured_message(por_ud)
    assert message.response
    por = unsecure_response(message.packet, spi=spi, kic=KIC, kid=KID, keyset=KEYSET)
    assert (por.status, por.counter, por.authenticated) == (ResponseStatus.POR_OK, 5, True)
    assert CompactResponse.from_bytes(por.data) == CompactResponse(5, ResponseApdu(bytes([4]) * 4, 0x9000))


def test_replay_then_tamper_then_unknown_tar() -> None:
    card = Card()
    spi = Spi(counter_mode=CounterMode.HIGHER)
    _send(card, spi, 5, BIG_SCRIPT[:1])
    # Replay: the CC verifies, the counter does not; the PoR (status 02) may be secured, nothing executes.
    por_ud = _send(card, spi, 5, BIG_SCRIPT[:1])
    por = unsecure_response(secured_message(por_ud).packet, spi=spi, kic=KIC, kid=KID, keyset=KEYSET)
    assert (por.status, por.authenticated) == (ResponseStatus.CNTR_LOW, True)
    assert len(card.executed) == 1
    # A packet built with another KID key: status 01 in an unsecured PoR with a zero counter.
    forged_keys = Scp80KeySet(KEYSET.kic_key, bytes(16))
    packet = secure_command(
        b"\x00\xb0\x00\x00\x10", spi=spi, kic=KIC, kid=KID, tar=RFM_TAR, counter=9, keyset=forged_keys
    )
    (ud,) = split_packet(packet.to_bytes())
    data, _ = card.envelope(SmsPpDownload(SmsDeliver(SERVER, ud).to_bytes()).to_apdu())
    por = unsecure_response(secured_message(data).packet, spi=spi, kic=KIC, kid=KID, keyset=KEYSET)
    assert (por.status, por.authenticated, por.counter) == (ResponseStatus.RC_CC_DS_FAILED, False, 0)
    assert card.counter == 5
    # Unknown TAR: status 09, unsecured.
    por_ud = _send(card, spi, 10, BIG_SCRIPT[:1], tar=b"\xb0\x00\x99")
    por = unsecure_response(secured_message(por_ud).packet, spi=spi, kic=KIC, kid=KID, keyset=KEYSET)
    assert (por.status, por.authenticated) == (ResponseStatus.TAR_UNKNOWN, False)


def test_por_on_error_only() -> None:
    card = Card()
    spi = Spi(
        counter_mode=CounterMode.ONE_HIGHER, por=PorMode.ON_ERROR, por_integrity=Integrity.NONE, por_ciphered=False
    )
    assert _send(card, spi, 5, BIG_SCRIPT[:1]) == b""
    por_ud = _send(card, spi, 7, BIG_SCRIPT[:1])
    por = unsecure_response(secured_message(por_ud).packet, spi=spi, kic=KIC, kid=KID, keyset=KEYSET)
    assert por.status is ResponseStatus.CNTR_HIGH
