"""The inspector on traces recorded by other implementations: GPShell (cmocka traces) and pySim (real cards)."""

from __future__ import annotations

import pytest

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification
from gpchannel.scp.common import ScpProtocol, SecurityLevel
from gpchannel.trace import Failure, KeyOptions, Role, decode_exchanges
from tests.trace.builders import as_exchanges, gpshell_trace, pysim_keys, pysim_trace
from tests.vectors import VectorCase, cases, params

GPSHELL = "trace/gpshell.json"
PYSIM = "trace/pysim.json"


@pytest.mark.parametrize("case", params(GPSHELL))
def test_gpshell_traces_verify_and_decrypt(case: VectorCase) -> None:
    pairs, options = gpshell_trace(case)
    report = decode_exchanges(as_exchanges(pairs), options)
    assert report.ok, report.first_failure
    (session,) = report.sessions
    assert session.protocol is ScpProtocol(int(case.kind[3:5]))
    assert session.level == SecurityLevel(int(case.inputs["security_level"], 16))
    secured = report.exchanges[2:]
    assert all(e.role is Role.SECURED and "C-MAC" in e.checks for e in secured)
    plain = [e.plain_command for e in secured]
    assert plain == [CommandApdu.from_bytes(bytes.fromhex(c)) for c in case.inputs.get("plain_cmds", [])[: len(plain)]]
    if "unwrapped_responses" in case.expected:
        # level 33 against an echo applet (the case's notes): each plain response is the plain command's data
        assert all("R-MAC" in e.checks for e in secured)
        for exchange in secured:
            assert exchange.plain_command is not None
            assert exchange.plain_response == ResponseApdu(exchange.plain_command.data, 0x9000)


def test_gpshell_scp02_i_is_detected() -> None:
    for case in cases(GPSHELL, "scp02-trace"):
        pairs, options = gpshell_trace(case)
        session = decode_exchanges(as_exchanges(pairs), options).sessions[0]
        # i=15 in GPShell's tests: ICV encryption detected (b7 does not show in a trace; one key = three keys here)
        assert session.i_param is not None and session.i_param & 0x10


@pytest.mark.parametrize("case", [p for p in params(GPSHELL, "scp01-trace") if "master_key" in p.values[0].inputs])
def test_gpshell_scp01_visa2_needs_the_diversification(case: VectorCase) -> None:
    pairs, _ = gpshell_trace(case)
    as_static = KeyOptions.single(case.hex_in("master_key"), Diversification.NONE)
    failure = decode_exchanges(as_exchanges(pairs), as_static).first_failure
    assert failure is not None and failure.index == 0 and failure.failure is Failure.CARD_CRYPTOGRAM
    emv = KeyOptions.single(case.hex_in("master_key"), Diversification.EMV)
    assert decode_exchanges(as_exchanges(pairs), emv).first_failure is not None
    visa2 = KeyOptions.single(case.hex_in("master_key"), Diversification.VISA2)
    assert decode_exchanges(as_exchanges(pairs), visa2).ok


@pytest.mark.parametrize("case", params(GPSHELL))
def test_gpshell_traces_tampered(case: VectorCase) -> None:
    """Flip one byte of the last command's data (MAC or cryptogram): the inspector points at that exchange."""
    pairs, options = gpshell_trace(case)
    index = len(pairs) - 1
    command, response = pairs[index]
    for position in range(len(command.data)):
        data = bytearray(command.data)
        data[position] ^= 0x80
        tampered = [*pairs[:index], (command.with_changes(data=bytes(data)), response)]
        failure = decode_exchanges(as_exchanges(tampered), options).first_failure
        assert failure is not None and failure.index == index
        assert failure.failure in (Failure.C_MAC, Failure.DECRYPTION, Failure.HOST_CRYPTOGRAM, Failure.MISSING_COMMAND)


def _pysim_pairs() -> list[tuple[VectorCase, VectorCase | None]]:
    handshakes = cases(PYSIM, "scp02-mutual-auth", "scp03-handshake")
    wraps = cases(PYSIM, "scp02-wrap", "scp03-wrap")
    out = []
    for hs in handshakes:  # a wrap case continues the handshake with the same challenges and keys
        match = [
            w
            for w in wraps
            if w.kind.split("-")[0] == hs.kind.split("-")[0]
            and w.inputs["host_challenge"] == hs.inputs["host_challenge"]
            and w.inputs["init_update_resp"] == hs.inputs["init_update_resp"]
        ]
        out.append((hs, match[0] if match else None))
    return out


@pytest.mark.parametrize(
    ("handshake", "wrap"), [pytest.param(h, w, id=h.source.split("::")[1]) for h, w in _pysim_pairs()]
)
def test_pysim_traces_verify_and_decrypt(handshake: VectorCase, wrap: VectorCase | None) -> None:
    pairs, plain_commands, plain_responses = pysim_trace(handshake, wrap)
    report = decode_exchanges(as_exchanges(pairs), KeyOptions(pysim_keys(handshake)))
    assert report.ok, report.first_failure
    session = report.sessions[0]
    assert session.level == SecurityLevel(int(handshake.inputs["security_level"], 16))
    secured = report.exchanges[2:]
    assert [str(e.plain_command) for e in secured] == plain_commands
    assert [str(e.plain_response) for e in secured if e.response is not None] == plain_responses
    if handshake.kind.startswith("scp02") and wrap is not None:
        assert session.i_param is not None and session.i_param & 0x11 == 0x11  # three keys, ICV encryption


def test_pysim_scp02_wrong_card_cryptogram() -> None:
    (case,) = cases(PYSIM, "scp02-mutual-auth-fail")
    iu = CommandApdu.from_bytes(bytes.fromhex(case.expected["init_update_cmd"]))
    pairs: list[tuple[CommandApdu, ResponseApdu | None]] = [(iu, ResponseApdu(case.hex_in("init_update_resp")))]
    failure = decode_exchanges(as_exchanges(pairs), KeyOptions(pysim_keys(case))).first_failure
    assert failure is not None and failure.failure is Failure.CARD_CRYPTOGRAM and failure.index == 0
