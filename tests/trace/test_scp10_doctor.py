"""The key doctor on SCP10 sessions (trace/scp10_doctor.py), each candidate tried alone, on a trace built around
the OpenSSL-made protected command of tests/vectors/scp10/openssl.json. The private-key candidates are tried on
sessions captured from the emulator in tests/cli/test_trace_scp10_scp80.py."""

from __future__ import annotations

from gpchannel.trace.scp10_checker import Scp10Secrets, parse_session_keys
from gpchannel.trace.scp10_doctor import Scp10Candidates, scp10_doctor, scp10_doctor_text
from tests.trace.test_scp10_checker import CMAC, _decode, _spec


def test_session_keys_candidates() -> None:
    right = parse_session_keys(_spec(CMAC, "mac_key", "mac_key"))
    wrong = parse_session_keys(f"mac={'11' * 16},enc={'22' * 16},counter=01,level=01")
    exchanges = _decode(Scp10Secrets(), CMAC.hex_out("protected"))
    (diagnosis,) = scp10_doctor(exchanges, Scp10Candidates(session_keys=(("a", wrong), ("b", right))))
    assert diagnosis.ok and diagnosis.verdicts == (("session keys", "a", "no"), ("session keys", "b", "match"))
    (none,) = scp10_doctor(exchanges, Scp10Candidates(session_keys=(("a", wrong),)))
    assert not none.ok and "none of the candidates" in scp10_doctor_text([none])
    (untried,) = scp10_doctor(exchanges, Scp10Candidates())
    assert not Scp10Candidates() and not untried.ok and untried.verdicts == ()
