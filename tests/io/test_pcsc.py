"""PcscTransport through the real stack: pyscard -> pcscd -> vpcd -> serve_vpcd -> a test card.

Marked `pcsc`; the fixtures (tests/io/conftest.py) start pcscd with scripts/pcscd.sh and skip only when it
cannot run. The pcscd restart test restarts the machine's shared pcscd, so outside CI it runs only when
GPCHANNEL_PCSCD_RESTART_TEST=1 (a developer's concurrent PC/SC work would otherwise see its reader vanish).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import TransportError
from gpchannel.io.pcsc import PcscTransport, list_readers
from gpchannel.io.transport import TracingTransport, Transport
from tests.io.cards import ATR_T0, ATR_T1, EchoCard
from tests.io.conftest import PCSCD_SCRIPT, Serve, free_reader

pytestmark = pytest.mark.pcsc

SELECT_ISD = CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("A000000151000000"), le=256)


def test_list_readers_shows_the_vpcd_slots(pcscd_readers: list[str]) -> None:
    assert set(pcscd_readers) <= set(list_readers())
    assert len(pcscd_readers) >= 1


def test_pcscd_script_start_is_idempotent_and_status_answers(pcscd_readers: list[str]) -> None:
    result = subprocess.run([str(PCSCD_SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "already running" in result.stdout, result.stdout + result.stderr
    result = subprocess.run([str(PCSCD_SCRIPT), "status"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and all(r in result.stdout for r in pcscd_readers), result.stdout


def test_select_and_echo_over_t1(virtual_reader: Serve) -> None:
    card = EchoCard(atr=ATR_T1)
    with virtual_reader(card) as reader, PcscTransport(reader.name, timeout=20) as pcsc:
        transport: Transport = pcsc
        assert pcsc.reader_name == reader.name
        assert pcsc.protocol == "T=1"
        assert pcsc.atr == ATR_T1
        assert transport.transmit(SELECT_ISD) == ResponseApdu(b"", 0x9000)
        payload = bytes(range(200))
        assert transport.transmit(CommandApdu(0x80, 0xE2, 0x90, 0x00, payload, le=256)).data == payload
    assert SELECT_ISD.to_bytes() in card.seen  # T=1: Le travels as given
    assert "atr" in card.controls


def test_61xx_chaining_through_pcscd(virtual_reader: Serve) -> None:
    card = EchoCard(long_size=700, chunk=200)
    with virtual_reader(card) as reader, PcscTransport(reader.name, timeout=20) as transport:
        response = transport.transmit(CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    assert response == ResponseApdu(bytes(i & 0xFF for i in range(700)), 0x9000)
    assert card.seen[1:] == [bytes.fromhex("00C0000000")] * 3 + [
        bytes.fromhex("00C0000064")
    ]  # 200+200+200, then the 100 left


def test_6cxx_through_pcscd(virtual_reader: Serve) -> None:
    card = EchoCard()
    with virtual_reader(card) as reader, PcscTransport(reader.name, timeout=20) as transport:
        assert transport.transmit(CommandApdu(0x00, 0xB0, 0, 0, le=256)).data == bytes(range(8))
        raw = PcscTransport.transmit_raw(transport, bytes.fromhex("00B0000000"))
    assert raw == b"\x6c\x08"
    assert card.seen[:2] == [bytes.fromhex("00B0000000"), bytes.fromhex("00B0000008")]


def test_t0_card(virtual_reader: Serve) -> None:
    card = EchoCard(atr=ATR_T0)
    with virtual_reader(card) as reader, PcscTransport(reader.name, timeout=20) as transport:
        assert transport.protocol == "T=0"
        response = transport.transmit(CommandApdu(0x80, 0x50, 0x00, 0x00, b"\x01\x02\x03", le=256))
    assert response == ResponseApdu(b"\x01\x02\x03", 0x9000)
    assert card.seen == [bytes.fromhex("8050000003010203"), bytes.fromhex("00C0000003")]


def test_t1_only_request_on_a_t0_card_says_why(virtual_reader: Serve) -> None:
    with virtual_reader(EchoCard(atr=ATR_T0)) as reader, pytest.raises(TransportError, match="protocol"):
        PcscTransport(reader.name, timeout=20, protocol="T=1")


def test_card_failure_is_6f00_and_the_card_goes_on(virtual_reader: Serve) -> None:
    with virtual_reader(EchoCard()) as reader, PcscTransport(reader.name, timeout=20) as transport:
        assert transport.transmit(CommandApdu(0x80, 0xEE, 0, 0)).sw == 0x6F00
        assert transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x99")).data == b"\x99"


def test_reset_by_another_application(virtual_reader: Serve) -> None:
    from smartcard import scard

    card = EchoCard()
    with virtual_reader(card) as reader, PcscTransport(reader.name, timeout=20) as transport:
        assert transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x01")).data == b"\x01"
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert hresult == scard.SCARD_S_SUCCESS
        hresult, other, _ = scard.SCardConnect(
            context, reader.name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        assert hresult == scard.SCARD_S_SUCCESS
        scard.SCardDisconnect(other, scard.SCARD_RESET_CARD)
        scard.SCardReleaseContext(context)
        with pytest.raises(TransportError, match="was reset by another application"):
            transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x02"))
        assert transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x03")).data == b"\x03"
    assert "reset" in card.controls


def test_tracing_over_pcsc(virtual_reader: Serve) -> None:
    lines: list[str] = []
    with virtual_reader(EchoCard()) as reader:
        with TracingTransport(PcscTransport(reader.name, timeout=20), lines.append) as transport:
            transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\xca\xfe"))
    assert lines == ["> 8050000002CAFE", "< CAFE9000"]


def test_no_matching_reader_names_the_readers(pcscd_readers: list[str]) -> None:
    with pytest.raises(TransportError, match=r"no reader matching 'no such reader'; readers: .*Virtual PCD"):
        PcscTransport("no such reader", timeout=1)


def test_no_card_in_the_reader(pcscd_readers: list[str]) -> None:
    reader = free_reader(pcscd_readers)
    with pytest.raises(TransportError, match="no card in reader"):
        PcscTransport(reader, timeout=0.3)


def test_card_leaving_is_a_transport_error(virtual_reader: Serve) -> None:
    with virtual_reader(EchoCard()) as reader:
        transport = PcscTransport(reader.name, timeout=20)
        assert transport.transmit(CommandApdu(0x80, 0x50, 0, 0)).sw == 0x9000
        reader.runner.close()
        with pytest.raises(TransportError, match=reader.name):
            for _ in range(1000):  # the removal shows on the next exchange that reaches vpcd
                transport.transmit(CommandApdu(0x80, 0x50, 0, 0))
        transport.close()
        with pytest.raises(TransportError, match="closed"):
            transport.transmit(CommandApdu(0x80, 0x50, 0, 0))


@pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("GPCHANNEL_PCSCD_RESTART_TEST")),
    reason="restarts the shared pcscd: runs in CI, or set GPCHANNEL_PCSCD_RESTART_TEST=1",
)
def test_reconnect_after_pcscd_restart(virtual_reader: Serve) -> None:
    card = EchoCard()
    with virtual_reader(card) as reader:
        old = PcscTransport(reader.name, timeout=20)
        assert old.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x01")).data == b"\x01"
        try:
            result = subprocess.run([str(PCSCD_SCRIPT), "stop"], capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            result = subprocess.run([str(PCSCD_SCRIPT), "status"], capture_output=True, text=True, timeout=120)
            assert result.returncode == 3 and "not running" in result.stdout, result.stdout
            with pytest.raises(TransportError):
                old.transmit(CommandApdu(0x80, 0x50, 0, 0))
            with pytest.raises(TransportError, match=r"pcscd\.sh start"):
                list_readers()
        finally:
            result = subprocess.run([str(PCSCD_SCRIPT), "start"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        old.close()
        assert reader.runner.wait_connected(2, timeout=30), "serve_vpcd did not reconnect to the new pcscd"
        with PcscTransport(reader.name, timeout=20) as transport:
            assert transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x02")).data == b"\x02"
