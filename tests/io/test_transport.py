"""Response completion (ISO 7816-3 12.2, ISO 7816-4 5.6), InProcessTransport and TracingTransport.

complete_exchange is driven through a scripted card: each expected C-APDU (hex) maps to the R-APDU it gets, so
a test fails if the transport sends anything else, in another order, or one command too many.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import TransportError
from gpchannel.io.pcsc import complete_exchange
from gpchannel.io.transport import InProcessTransport, TracingTransport, Transport
from tests.io.cards import ATR_T0, EchoCard


class Script:
    """A card that expects exactly the listed exchanges."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = [(bytes.fromhex(c), bytes.fromhex(r)) for c, r in pairs]

    def __call__(self, apdu: bytes) -> bytes:
        assert self.pairs, f"unexpected extra command {apdu.hex().upper()}"
        command, response = self.pairs.pop(0)
        assert apdu == command, f"sent {apdu.hex().upper()}, expected {command.hex().upper()}"
        return response

    def done(self) -> bool:
        return not self.pairs


def test_61xx_is_followed_by_get_response_and_the_data_concatenated() -> None:
    card = Script(
        ("80CA006600", "6104"),
        ("00C0000004", "01020304" + "6102"),
        ("00C0000002", "0506" + "9000"),
    )
    response = complete_exchange(card, CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    assert response == ResponseApdu(bytes.fromhex("010203040506"), 0x9000) and card.done()


def test_6100_asks_for_256_bytes() -> None:
    card = Script(("80CA006600", "6100"), ("00C0000000", "AA" * 256 + "9000"))
    assert complete_exchange(card, CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256)).data == b"\xaa" * 256


def test_get_response_keeps_the_logical_channel_and_drops_secure_messaging() -> None:
    # CLA 85: proprietary, GP secure messaging, channel 1 -> GET RESPONSE on channel 1 is CLA 01.
    card = Script(("85F2400002AABB", "6101"), ("01C0000001", "11" + "9000"))
    assert complete_exchange(card, CommandApdu(0x85, 0xF2, 0x40, 0x00, b"\xaa\xbb")).data == b"\x11"
    # Further interindustry channel 5 (CLA 41): GET RESPONSE is 41 too.
    card = Script(("41CA006600", "6101"), ("41C0000001", "22" + "9000"))
    assert complete_exchange(card, CommandApdu(0x41, 0xCA, 0x00, 0x66, le=256)).data == b"\x22"


def test_6cxx_resends_the_same_command_with_the_exact_le() -> None:
    card = Script(("00B0000000", "6C08"), ("00B0000008", "0001020304050607" + "9000"))
    assert complete_exchange(card, CommandApdu(0x00, 0xB0, 0, 0, le=256)).data == bytes(range(8))
    assert card.done()


def test_6cxx_then_61xx() -> None:
    card = Script(("00B0000000", "6C08"), ("00B0000008", "6102"), ("00C0000002", "ABCD9000"))
    assert complete_exchange(card, CommandApdu(0x00, 0xB0, 0, 0, le=256)) == ResponseApdu(b"\xab\xcd", 0x9000)


def test_t0_sends_case_4_without_le() -> None:
    """ISO 7816-3 12.2.4: in T=0 a case 4 command goes as case 3, the data comes back through GET RESPONSE."""
    card = Script(("00A4040002A000", "610A"), ("00C000000A", "6F088406A00000015100" + "9000"))
    response = complete_exchange(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00", le=256), t0=True)
    assert response.sw == 0x9000 and len(response.data) == 10 and card.done()
    card = Script(("00A4040002A00000", "9000"))  # T=1: Le stays
    assert complete_exchange(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00", le=256)).sw == 0x9000


def test_errors_pass_through_unchanged() -> None:
    card = Script(("80500000", "6A82"))
    assert complete_exchange(card, CommandApdu(0x80, 0x50, 0, 0)) == ResponseApdu(b"", 0x6A82)
    card = Script(("80CA006600", "6102"), ("00C0000002", "6F00"))
    assert complete_exchange(card, CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256)) == ResponseApdu(b"", 0x6F00)


def test_a_card_that_never_finishes_is_refused() -> None:
    calls = []

    def endless(apdu: bytes) -> bytes:
        calls.append(apdu)
        return b"\x00\x61\x01"

    with pytest.raises(TransportError, match="61xx after 5 GET RESPONSE"):
        complete_exchange(endless, CommandApdu(0x80, 0xCA, 0, 0x66, le=256), max_get_response=5)
    assert len(calls) == 6


def test_a_malformed_answer_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="malformed"):
        complete_exchange(lambda apdu: b"\x90", CommandApdu(0x80, 0x50, 0, 0))


@given(st.integers(0, 1000), st.integers(16, 256))  # at most 63 rounds: under MAX_GET_RESPONSE
def test_chained_answers_reassemble(size: int, chunk: int) -> None:
    card = EchoCard(long_size=size, chunk=chunk)
    response = complete_exchange(card.transmit, CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
    assert response.data == bytes(i & 0xFF for i in range(size)) and response.sw == 0x9000
    get_responses = card.seen[1:]
    assert len(get_responses) == (0 if size == 0 else -(-size // chunk))


def test_echo_card_in_t0_mode_through_the_completion() -> None:
    card = EchoCard(atr=ATR_T0)
    command = CommandApdu(0x80, 0x50, 0x00, 0x00, b"\x01\x02\x03", le=256)
    assert complete_exchange(card.transmit, command, t0=True) == ResponseApdu(b"\x01\x02\x03", 0x9000)
    assert card.seen == [bytes.fromhex("8050000003010203"), bytes.fromhex("00C0000003")]


# --- InProcessTransport / TracingTransport ------------------------------------------------------------------------


def test_in_process_transport() -> None:
    transport: Transport = InProcessTransport(EchoCard().transmit)
    assert transport.transmit(CommandApdu(0x80, 0x50, 0, 0, b"\x42")) == ResponseApdu(b"\x42", 0x9000)
    transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.transmit(CommandApdu(0x80, 0x50, 0, 0))


def test_in_process_transport_reports_a_malformed_answer() -> None:
    with InProcessTransport(lambda apdu: b"") as transport, pytest.raises(TransportError, match="malformed"):
        transport.transmit(CommandApdu(0x80, 0x50, 0, 0))


def test_tracing_transport_reports_every_exchange() -> None:
    lines: list[str] = []
    inner = InProcessTransport(EchoCard().transmit)
    with TracingTransport(inner, lines.append) as transport:
        transport.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\xa0\x00"))
        transport.transmit(CommandApdu(0x80, 0x50, 0x00, 0x00, b"\xca\xfe"))
    assert lines == ["> 00A4040002A000", "< 9000", "> 8050000002CAFE", "< CAFE9000"]
    assert inner.closed
