"""The trace inspector and the key doctor (cryptograms of GP 2.2.1 D.4.2, E.4.2;
Amendment D 6.2.2), sans-I/O.

- :func:`decode_trace` reads an APDU trace (plain hex, pcscd, GPShell, GlobalPlatformPro, gpchannel's own; the
  format detected), finds each SCP01/02/03, SCP10 and SCP11 session, and checks and decrypts it with the given
  keys; :mod:`gpchannel.trace.scp80_trace` reads the SCP80 packets and PoRs of its ENVELOPEs (or of packet lines).
- :func:`doctor` says which use of a key (static, or master under EMV / VISA2 / KDF3) reproduces the card
  cryptogram of an INITIALIZE UPDATE exchange.
- :mod:`gpchannel.trace.report` renders both as text or JSON; :mod:`gpchannel.trace.ourformat` is the format of
  ``gpchannel --trace``.

Worked example (GPShell's SCP01 VISA2 trace, kaoh/globalplatform scp01Test.c; tests/trace/test_example.py runs
it)::

    >>> text = '''Command --> 80500000085218A9EAE386313100
    ... Wrapped command --> 80500000085218A9EAE386313100
    ... Response <-- 00004181116665F5B8300101A67BE0F6BB2920AAD421FF3948F1304B9000
    ... Wrapped command --> 8482010010ED016D672E8893662E38CF5736E6751A
    ... Response <-- 9000'''
    >>> key = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    >>> report = decode_trace(text, KeyOptions.single(key))
    >>> report.first_failure.failure, report.first_failure.index
    (<Failure.CARD_CRYPTOGRAM: 'card-cryptogram'>, 0)
    >>> exchange = parse_trace(text)[0]
    >>> print(doctor(exchange.command, exchange.response, key).explanation)
    the key works as master key with VISA2 diversification for SCP01 key set 01
    >>> decode_trace(text, KeyOptions.single(key, Diversification.VISA2)).ok
    True

:func:`trace_text` / :func:`doctor_text` print the listings (wire bytes, plain bytes, checks, the failure and its
explanation); :func:`trace_json` / :func:`doctor_json` give the same as JSON types.
"""

from gpchannel.crypto.diversification import Diversification
from gpchannel.trace.doctor import DoctorAttempt, DoctorReport, doctor, doctor_exchanges
from gpchannel.trace.formats import TraceExchange, TraceFormat, detect_format, join_get_response, parse_trace
from gpchannel.trace.report import doctor_json, doctor_text, trace_json, trace_text
from gpchannel.trace.session import (
    ExchangeReport,
    Failure,
    KeyOptions,
    Role,
    SessionReport,
    TraceReport,
    decode_exchanges,
    decode_trace,
)

__all__ = [
    "Diversification",
    "DoctorAttempt",
    "DoctorReport",
    "ExchangeReport",
    "Failure",
    "KeyOptions",
    "Role",
    "SessionReport",
    "TraceExchange",
    "TraceFormat",
    "TraceReport",
    "decode_exchanges",
    "decode_trace",
    "detect_format",
    "doctor",
    "doctor_exchanges",
    "doctor_json",
    "doctor_text",
    "join_get_response",
    "parse_trace",
    "trace_json",
    "trace_text",
]
