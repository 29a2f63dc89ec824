"""Wire layout of command and response packets (TS 102 225 5.1/5.2, TS 31.115): lengths, truncation, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.packet import CommandPacket, PacketLayout, ResponsePacket
from gpchannel.ota.scp80 import secure_command
from gpchannel.ota.spi import CipherAlgorithm, Kic, Kid, MacAlgorithm, Spi

transports = st.sampled_from(PacketLayout)


def _sample_packet(transport: PacketLayout = PacketLayout.SMS) -> tuple[bytes, Scp80KeySet]:
    keyset = Scp80KeySet(bytes(range(16)), bytes(range(16, 32)))
    packet = secure_command(
        b"\x80\xca\x00\x66\x00" * 30,
        spi=Spi(),
        kic=Kic.for_cipher(CipherAlgorithm.AES_CBC),
        kid=Kid.for_mac(MacAlgorithm.AES_CMAC),
        tar=b"\x00\x00\x00",
        counter=7,
        keyset=keyset,
        transport=transport,
    )
    return packet.to_bytes(), keyset


def test_generic_dialect_layout() -> None:
    raw, _ = _sample_packet(PacketLayout.GENERIC)
    assert raw[0] == 0x01  # CPI
    assert raw[1] == 0x81 and raw[2] == len(raw) - 3  # BER length (over 127 bytes)
    assert raw[3] == 21  # CHL = 13 + 8
    sms, _ = _sample_packet(PacketLayout.SMS)
    assert int.from_bytes(sms[:2], "big") == len(sms) - 2
    assert sms[2:10] == raw[3:11]  # same CHL, SPI, KIc, KID, TAR


def test_response_packet_layout() -> None:
    raw = bytes.fromhex("000e0ab0001100000000000000016132")
    packet = ResponsePacket.from_bytes(raw)
    assert (packet.tar, packet.check_length, packet.rhl) == (bytes.fromhex("b00011"), 0, 10)
    assert packet.secured == bytes.fromhex("00000000000000016132")
    assert packet.to_bytes() == raw
    with pytest.raises(DecodeError) as info:
        ResponsePacket.from_bytes(bytes.fromhex("000e09b0001100000000000000016132"))
    assert info.value.offset == 2
    with pytest.raises(ValueError, match="at least"):
        ResponsePacket(b"\x00\x00\x00", 8, bytes(7))


@pytest.mark.parametrize("transport", list(PacketLayout))
def test_truncated_and_oversized_packets(transport: PacketLayout) -> None:
    raw, _ = _sample_packet(transport)
    for n in range(len(raw)):
        with pytest.raises(DecodeError) as info:
            CommandPacket.from_bytes(raw[:n], transport)
        assert info.value.offset is not None
        assert 0 <= info.value.offset <= n
    with pytest.raises(DecodeError) as info:
        CommandPacket.from_bytes(raw + b"\x00", transport)
    assert info.value.offset == len(raw)


@given(st.binary(max_size=80), transports)
def test_fuzz_packets_decode_or_raise(raw: bytes, transport: PacketLayout) -> None:
    for cls in (CommandPacket, ResponsePacket):
        try:
            packet = cls.from_bytes(raw, transport)
        except DecodeError as exc:
            assert exc.offset is not None
        else:
            assert packet.to_bytes() == raw or transport is PacketLayout.GENERIC  # BER lengths may be non-minimal
