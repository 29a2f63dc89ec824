"""SCP10 sessions in the trace inspector (trace/scp10_checker.py) against the OpenSSL-made vectors of
tests/vectors/scp10/openssl.json: the session keys recovered from PSO [decipher] with the card's private key, and
protected commands and responses decoded with the session keys, then a changed byte and a wrong key. Traces of
whole sessions with the emulator are in tests/cli/test_trace_scp10_scp80.py."""

from __future__ import annotations

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.rsa import RsaPrivateKey
from gpchannel.errors import DecodeError
from gpchannel.scp.scp10 import KeyUsage
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.model import KeyOptions, Role
from gpchannel.trace.scp10_checker import Scp10Secrets, Scp10Tracker, parse_session_keys
from gpchannel.trace.session import decode_exchanges
from gpchannel.trace.verifiers import Failure
from tests.vectors import VectorCase, cases

(DECIPHER,) = cases("scp10/openssl.json", "pso_decipher")
(CMAC,) = cases("scp10/openssl.json", "command_cmac")
(CENC_CMAC,) = cases("scp10/openssl.json", "command_cenc_cmac")
(RESPONSE,) = cases("scp10/openssl.json", "response_rmac_renc")
OK = ResponseApdu(b"", 0x9000)
MSE_TRANSPORT = CommandApdu(0x00, 0x22, 0xC1, 0xA4, bytes.fromhex("8002100283084F43450000000001"))


def _handshake(channel: int = 0) -> list[tuple[CommandApdu, ResponseApdu]]:
    """MSE (key transport, PK.OCE.AUT known to the card), PSO [decipher], GET CHALLENGE, EXTERNAL AUTHENTICATE on
    the logical channel of the vector's command."""
    return [
        (MSE_TRANSPORT.with_changes(cla=channel), OK),
        (CommandApdu(channel, 0x2A, 0x80, 0x84, bytes(128)), OK),
        (CommandApdu(channel, 0x84, 0x00, 0x00, le=256), ResponseApdu(bytes(16), 0x9000)),
        (CommandApdu(channel, 0x82, 0x00, 0x00, bytes(128)), OK),
    ]


def _exchanges(pairs: list[tuple[CommandApdu, ResponseApdu]]) -> list[TraceExchange]:
    return [TraceExchange(i, 2 * i + 2, c, r) for i, (c, r) in enumerate(pairs)]


def test_pso_decipher_gives_the_vector_keys() -> None:
    """The card's private key opens the OpenSSL-made cryptogram: the keys, counter and level of Table F-32."""
    card = RsaPrivateKey.from_pem_or_der(DECIPHER.inputs["card_key"].encode())
    tracker = Scp10Tracker(MSE_TRANSPORT, Scp10Secrets(card_key=card), None)
    cryptogram = DECIPHER.hex_out("cryptogram") if "cryptogram" in DECIPHER.expected else DECIPHER.hex_in("cryptogram")
    step = tracker.step(CommandApdu(0x00, 0x2A, 0x80, 0x84, cryptogram), OK)
    assert step.checks == ("session keys recovered",)
    keys = tracker.transported
    assert keys is not None and tracker.level == int(DECIPHER.inputs["level"], 16)
    assert keys.get(KeyUsage.C_MAC).value == DECIPHER.hex_in("mac_key")
    assert keys.get(KeyUsage.C_MAC).counter == int(DECIPHER.inputs["mac_counter"], 16)
    assert keys.get(KeyUsage.R_ENC).value == DECIPHER.hex_in("enc_key")
    assert keys.get(KeyUsage.DEK_COMMAND).value == DECIPHER.hex_in("dek")


def _spec(case: VectorCase, mac: str, enc: str) -> str:
    return (
        f"mac={case.inputs[mac]},enc={case.inputs[enc]},counter={case.inputs['counter']},level={case.inputs['level']}"
    )


@pytest.mark.parametrize("case", [CMAC, CENC_CMAC], ids=["c-mac", "c-enc+c-mac"])
def test_protected_command_with_session_keys(case: VectorCase) -> None:
    """No private key: the session keys decode the OpenSSL-protected command after the handshake."""
    enc = "enc_key" if "enc_key" in case.inputs else "mac_key"
    secrets = Scp10Secrets(session_keys=(parse_session_keys(_spec(case, "mac_key", enc)),))
    wire = CommandApdu.from_bytes(case.hex_out("protected"))
    report = decode_exchanges(_exchanges([*_handshake(wire.channel), (wire, OK)]), KeyOptions(scp10=secrets))
    assert report.ok, report.first_failure
    last = report.exchanges[-1]
    assert last.role is Role.SECURED and "C-MAC" in last.checks
    plain = CommandApdu.from_bytes(case.hex_in("command"))
    assert last.plain_command is not None
    assert (last.plain_command.ins, last.plain_command.data) == (plain.ins, plain.data)
    session = report.sessions[0]
    assert (
        session.protocol == 0x10 and session.level is not None and int(session.level) == int(case.inputs["level"], 16)
    )


def test_protected_response_with_session_keys() -> None:
    """R-MAC and R-ENC at level 30 (the command goes in clear): the plain response is the vector's."""
    secrets = Scp10Secrets(session_keys=(parse_session_keys(_spec(RESPONSE, "rmac_key", "renc_key")),))
    wire = ResponseApdu.from_bytes(RESPONSE.hex_out("protected"))
    command = CommandApdu(0x80, 0xCA, 0x00, 0xFE, le=256)
    report = decode_exchanges(_exchanges([*_handshake(), (command, wire)]), KeyOptions(scp10=secrets))
    assert report.ok, report.first_failure
    assert report.exchanges[-1].plain_response == ResponseApdu(RESPONSE.hex_in("data"), 0x9000)
    assert "R-MAC" in report.exchanges[-1].checks


def _decode(secrets: Scp10Secrets, *commands: bytes) -> list[TraceExchange]:
    wires = [CommandApdu.from_bytes(c) for c in commands]
    return _exchanges([*_handshake(wires[0].channel), *((w, OK) for w in wires)])


def test_changed_byte_and_wrong_key() -> None:
    """A changed byte in the second command is a C-MAC failure at that exchange; other keys verify nothing."""
    secrets = Scp10Secrets(session_keys=(parse_session_keys(_spec(CMAC, "mac_key", "mac_key")),))
    vector = CMAC.hex_out("protected")
    assert decode_exchanges(_decode(secrets, vector), KeyOptions(scp10=secrets)).ok
    changed = bytearray(vector)
    changed[8] ^= 0x40  # a data byte under the C-MAC
    first_only = decode_exchanges(_decode(secrets, bytes(changed)), KeyOptions(scp10=secrets)).first_failure
    assert first_only is not None and first_only.failure is Failure.WRONG_KEY  # nothing left to pick the keys by
    wrong = Scp10Secrets(session_keys=(parse_session_keys(f"mac={'11' * 16},enc={'22' * 16},counter=01,level=01"),))
    first = decode_exchanges(_decode(wrong, vector), KeyOptions(scp10=wrong)).first_failure
    assert first is not None and first.failure is Failure.WRONG_KEY and "none of the 1" in first.explanation


def test_missing_secret_is_said() -> None:
    """Key transport without the card's key or session keys: not decoded, and the note says what is missing."""
    report = decode_exchanges(_decode(Scp10Secrets(), CMAC.hex_out("protected")), KeyOptions())
    session = report.sessions[0]
    assert report.ok and not session.checked and "SK.SD.AUT" in session.notes[0]
    assert report.exchanges[-1].role is Role.UNCHECKED


@pytest.mark.parametrize(
    "text",
    [
        "mac=00",
        "mac=0011,enc=0011,counter=01,counter=02",
        "mac=zz,enc=00,counter=00",
        "mac=" + "00" * 16 + ",enc=00,counter=00",
    ],
)
def test_session_key_text_errors(text: str) -> None:
    with pytest.raises(DecodeError, match="SCP10 session keys"):
        parse_session_keys(text)
