"""The inspector on SCP11 sessions between our host and card: every check passes, the plain forms are the ones the
card saw, a tampered trace is marked at the right exchange, and other sessions' keys are refused."""

from __future__ import annotations

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError
from gpchannel.scp.common import ScpProtocol, SecurityLevel
from gpchannel.scp.scp11 import Scp11SessionKeys, Scp11Variant
from gpchannel.scp.scp11_card import Scp11Card
from gpchannel.scp.scp11_pki import Scp11Pki, make_pki
from gpchannel.trace import Failure, KeyOptions, Role, decode_exchanges, trace_text
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.scp11_checker import key_agreement_parameters, parse_session_keys
from tests.scp.test_scp11 import NOW, Wire, card_config, host, now

PAYLOADS = (b"", b"abc", bytes(range(40)))


@pytest.fixture(scope="module")
def pki() -> Scp11Pki:
    return make_pki(NOW)


def record(pki: Scp11Pki, variant: Scp11Variant) -> tuple[list[TraceExchange], Scp11SessionKeys, Wire]:
    """One session through the wire, recorded as a trace: initiation, then one command per payload."""
    wire = Wire(Scp11Card(card_config(pki), now))
    pairs: list[tuple[CommandApdu, ResponseApdu]] = []

    def transmit(command: CommandApdu) -> ResponseApdu:
        response = wire(command)
        pairs.append((command, response))
        return response

    h = host(pki, variant)
    h.run(transmit)
    for payload in PAYLOADS:
        assert h.unwrap(transmit(h.wrap(CommandApdu(0x80, 0xCA, 0x00, 0x66, payload, le=256)))).sw == 0x9000
    assert h.session_keys is not None
    exchanges = [TraceExchange(n, n + 1, c, r) for n, (c, r) in enumerate(pairs)]
    return exchanges, h.session_keys, wire


def hex_keys(keys: Scp11SessionKeys) -> str:
    return ":".join(k.hex() for k in (keys.receipt_key, keys.s_enc, keys.s_mac, keys.s_rmac, keys.s_dek))


@pytest.mark.parametrize("variant", list(Scp11Variant), ids=lambda v: v.label)
def test_every_check_passes_and_plain_forms_are_recovered(pki: Scp11Pki, variant: Scp11Variant) -> None:
    exchanges, keys, _ = record(pki, variant)
    other = record(pki, variant)[1]
    report = decode_exchanges(exchanges, KeyOptions(scp11_keys=(other, parse_session_keys(hex_keys(keys)))))
    assert report.ok, report.first_failure
    (session,) = report.sessions
    assert session.protocol is ScpProtocol.SCP11 and session.kvn == 1 and session.opened
    assert session.level == SecurityLevel(0x33)
    roles = [e.role for e in report.exchanges]
    start = roles.index(Role.KEY_AGREEMENT)
    assert roles[:start] == [Role.OUTSIDE] * start  # GET DATA BF21 and the PSOs come before the session
    assert roles[start + 1 :] == [Role.SECURED] * len(PAYLOADS)
    for exchange, payload in zip(report.exchanges[start + 1 :], PAYLOADS, strict=True):
        assert exchange.plain_command is not None and exchange.plain_command.data == payload
        assert exchange.plain_response is not None and exchange.plain_response.data == payload[::-1] + b"!"
        assert "C-MAC" in exchange.checks and "R-MAC" in exchange.checks
    assert "SCP11" in trace_text(report)


def test_without_keys_the_session_is_listed_unchecked(pki: Scp11Pki) -> None:
    exchanges, _, _ = record(pki, Scp11Variant.B)
    report = decode_exchanges(exchanges, KeyOptions())
    (session,) = report.sessions
    assert report.ok and not session.checked and session.protocol is ScpProtocol.SCP11


def test_keys_of_another_session_fail_at_the_receipt(pki: Scp11Pki) -> None:
    exchanges, _, _ = record(pki, Scp11Variant.A)
    other = record(pki, Scp11Variant.A)[1]
    report = decode_exchanges(exchanges, KeyOptions(scp11_keys=(other,)))
    failed = report.first_failure
    assert failed is not None and failed.failure is Failure.RECEIPT and failed.role is Role.KEY_AGREEMENT


@pytest.mark.parametrize("target", [1, 2])
def test_tampered_command_is_marked_at_its_exchange(pki: Scp11Pki, target: int) -> None:
    exchanges, keys, _ = record(pki, Scp11Variant.C)
    start = next(n for n, e in enumerate(exchanges) if key_agreement_parameters(e.command) is not None)
    index = start + 1 + target
    original = exchanges[index]
    data = bytearray(original.command.data)
    data[-1] ^= 0x01  # a C-MAC byte: a changed ciphertext byte decrypts with a later counter about once in 256 x 8
    # tries (valid 80-padding by chance), which the checker then reports as a missing command, not a C-MAC failure
    exchanges[index] = TraceExchange(
        index, original.line, original.command.with_changes(data=bytes(data)), original.response
    )
    report = decode_exchanges(exchanges, KeyOptions(scp11_keys=(keys,)))
    failed = report.first_failure
    assert failed is not None and failed.index == index and failed.failure is Failure.C_MAC
    assert all(e.role is Role.UNCHECKED for e in report.exchanges[index + 1 :])


def test_tampered_response_fails_its_r_mac(pki: Scp11Pki) -> None:
    exchanges, keys, _ = record(pki, Scp11Variant.B)
    last = exchanges[-1]
    assert last.response is not None
    body = bytearray(last.response.data)
    body[0] ^= 0x80
    exchanges[-1] = TraceExchange(last.index, last.line, last.command, ResponseApdu(bytes(body), last.response.sw))
    failed = decode_exchanges(exchanges, KeyOptions(scp11_keys=(keys,))).first_failure
    assert failed is not None and failed.index == last.index and failed.failure is Failure.R_MAC


def test_refused_key_agreement_is_reported(pki: Scp11Pki) -> None:
    exchanges, keys, _ = record(pki, Scp11Variant.B)
    start = next(n for n, e in enumerate(exchanges) if key_agreement_parameters(e.command) is not None)
    exchanges[start] = TraceExchange(start, start + 1, exchanges[start].command, ResponseApdu(b"", 0x6982))
    failed = decode_exchanges(exchanges, KeyOptions(scp11_keys=(keys,))).first_failure
    assert failed is not None and failed.index == start and failed.failure is Failure.CARD_REFUSED


@pytest.mark.parametrize("text", ["zz", "00" * 16, ":".join(["00" * 16] * 4), ":".join(["00" * 16] * 4 + ["00" * 24])])
def test_malformed_session_keys_are_refused(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_session_keys(text)


def test_session_keys_as_one_string() -> None:
    keys = parse_session_keys(bytes(range(80)).hex())
    assert keys.receipt_key == bytes(range(16)) and keys.s_dek == bytes(range(64, 80))
