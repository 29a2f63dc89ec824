"""SCP80 traffic in the trace inspector (trace/scp80_trace.py, trace/scp80_report.py) against pySim's command
packets and PoRs from real sysmocom cards (tests/vectors/ota/pysim.json): as packet lines and inside SMS-PP
DOWNLOAD ENVELOPEs, then a changed byte, a wrong key, a replayed counter, concatenated SMs and the doctor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError
from gpchannel.ota import (
    Address,
    CipherAlgorithm,
    Kic,
    Kid,
    MacAlgorithm,
    Scp80KeySet,
    SmsDeliver,
    SmsPpDownload,
    Spi,
    encode_compact,
    secure_command,
    split_packet,
)
from gpchannel.trace.formats import TraceExchange
from gpchannel.trace.scp80_report import ota_doctor, packets_json, packets_text
from gpchannel.trace.scp80_trace import (
    OtaKeySet,
    decode_packets,
    packets_from_exchanges,
    packets_from_lines,
)
from tests.ota._ota_cases import pysim_keyset
from tests.vectors import VectorCase, cases

COMMANDS = {c.source.split("[")[-1]: c for c in cases("ota/pysim.json", "ota-sms-cmd-encode") if "[" in c.source}
PORS = {c.source.split("[")[-1]: c for c in cases("ota/pysim.json", "ota-sms-por-decode") if "[" in c.source}
PAIRS = sorted(set(COMMANDS) & set(PORS))


def _keyset(case: VectorCase, label: str = "pySim") -> OtaKeySet:
    _, _, kid, keyset = pysim_keyset(case)
    return OtaKeySet(kid.kvn, keyset, label)


def _envelope(packet: bytes) -> CommandApdu:
    (ud,) = split_packet(packet)
    return SmsPpDownload(SmsDeliver(Address("12345678"), ud).to_bytes()).to_apdu()


def test_pairs_exist() -> None:
    assert len(PAIRS) == 4


@pytest.mark.parametrize("name", PAIRS)
def test_packet_lines(name: str) -> None:
    """pySim's command packet and the card's PoR, one per line: CC/cipher verified, the APDU and SW pySim read."""
    command, por = COMMANDS[name], PORS[name]
    text = f"# {name}\n{command.expected['encoded_cmd']}\n{por.inputs['encoded_resp']}\n"
    (report,) = decode_packets(packets_from_lines(text), [_keyset(command)])
    assert report.failure is None, report.explanation
    assert report.apdus == (CommandApdu.from_bytes(bytes.fromhex(command.inputs["apdu"])),)
    assert report.tar == command.inputs["tar"].upper()
    assert report.por_status == "00 POR_OK"
    assert report.executed == por.expected["number_of_commands"]
    assert report.responses[-1].sw == int(por.expected["last_status_word"], 16)
    spi = Spi.from_bytes(command.hex_in("spi_bytes"))
    assert ("deciphered" in report.checks) == spi.ciphered
    assert ("PoR CC" in report.checks) == (spi.por_integrity.name == "CC")


@pytest.mark.parametrize("name", PAIRS)
def test_envelope_trace(name: str) -> None:
    """The same packet in an ENVELOPE, the PoR in its answer after 61xx and GET RESPONSE (joined by the reader)."""
    command, por = COMMANDS[name], PORS[name]
    answer = ResponseApdu(bytes.fromhex(por.inputs["encoded_resp"]), 0x9000)
    exchanges = [TraceExchange(0, 2, _envelope(bytes.fromhex(command.expected["encoded_cmd"])), answer)]
    (report,) = decode_packets(packets_from_exchanges(exchanges), [_keyset(command)])
    assert report.failure is None and report.por_status == "00 POR_OK"
    assert "packet 1 (exchange #0, line 2)" in packets_text([report])
    assert packets_json([report])[0]["apdus"] == [command.inputs["apdu"].upper()]


def test_changed_byte_and_wrong_key() -> None:
    name = "AES128-SJA5-CIPHERED-CC]"
    command = COMMANDS[name]
    raw = bytearray(bytes.fromhex(command.expected["encoded_cmd"]))
    raw[-3] ^= 0x01
    (changed,) = decode_packets(packets_from_lines(raw.hex()), [_keyset(command)])
    assert changed.failure == "rc-cc-ds" and "pySim: rc-cc-ds" in changed.explanation
    wrong = replace(_keyset(command, "other"), keyset=Scp80KeySet(bytes(16), bytes(16)))
    (report,) = decode_packets(packets_from_lines(command.expected["encoded_cmd"]), [wrong])
    assert report.failure == "rc-cc-ds" and "other" in report.explanation and report.apdus == ()


def test_doctor_names_the_key_set() -> None:
    command = COMMANDS["3DES-SJA5-UNCIPHERED-CC]"]
    good = _keyset(command, "right")
    wrong = replace(good, keyset=Scp80KeySet(bytes(16), bytes(16)), label="wrong")
    (diagnosis,) = ota_doctor(packets_from_lines(command.expected["encoded_cmd"]), [wrong, good])
    assert diagnosis.ok and diagnosis.kid == ("right",) and diagnosis.kic == ("right",)  # SPI 0609 ciphers too
    ciphered = COMMANDS["AES128-SJA5-CIPHERED-CC]"]
    good = _keyset(ciphered, "right")
    (diagnosis,) = ota_doctor(packets_from_lines(ciphered.expected["encoded_cmd"]), [replace(good, label="x"), good])
    assert diagnosis.kid == ("x", "right") and diagnosis.kic == ("x", "right")
    (none,) = ota_doctor(packets_from_lines(ciphered.expected["encoded_cmd"]), [wrong])
    assert not none.ok and "none of the 1 key set(s)" in none.explanation


KEYS = Scp80KeySet(bytes(range(16)), bytes(range(16, 32)), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
SPI = Spi.from_bytes(bytes.fromhex("1619"))  # counter must be higher: the card checks it


def _packet(counter: int, apdus: list[CommandApdu]) -> bytes:
    kic, kid = Kic.for_cipher(CipherAlgorithm.AES_CBC), Kid.for_mac(MacAlgorithm.AES_CMAC)
    packet = secure_command(
        encode_compact(apdus), spi=SPI, kic=kic, kid=kid, tar=b"\xb0\x00\x01", counter=counter, keyset=KEYS
    )
    return packet.to_bytes()


def test_replay_and_concatenation() -> None:
    """A counter that repeats is a replay under SPI 16xx; a packet over 140 bytes comes in concatenated SMs."""
    big = [CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(200))]
    uds = split_packet(_packet(7, big), reference=9)
    assert len(uds) == 2
    exchanges = [
        TraceExchange(i, 2 * i + 2, SmsPpDownload(SmsDeliver(Address("1"), ud).to_bytes()).to_apdu(), None)
        for i, ud in enumerate(uds)
    ]
    exchanges.append(TraceExchange(2, 6, _envelope(_packet(7, [CommandApdu(0, 0xB0, 0, 0, le=4)])), None))
    reports = decode_packets(packets_from_exchanges(exchanges), [OtaKeySet(1, KEYS, "k")])
    assert [r.segments for r in reports] == [2, 1]
    assert reports[0].failure is None and reports[0].apdus == tuple(big)
    assert reports[1].failure == "replay" and "repeats" in reports[1].explanation
    assert "no PoR in the trace" in packets_text(reports)


def test_lines_that_are_not_packets() -> None:
    with pytest.raises(DecodeError, match="line 2"):
        packets_from_lines("0028\nnot hex\n")
    with pytest.raises(DecodeError, match="no command packet before it"):
        packets_from_lines("027100002412b00011ebc6b497e2cad7aedf36ace0e3a29b38853f0fe9ccde81913be5702b73abce1f")
    (bad,) = decode_packets(packets_from_lines("0001FF"), [])
    assert bad.failure == "malformed"
