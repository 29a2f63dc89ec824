"""The trace inspector and the key doctor (issue 9), sans-I/O.

- :func:`decode_trace` reads an APDU trace (plain hex, pcscd, GPShell, GlobalPlatformPro, gpchannel's own; the
  format detected), finds each SCP01/02/03 session, and checks and decrypts it with the given keys.
- :func:`doctor` says which use of a key (static, or master under EMV / VISA2 / KDF3) reproduces the card
  cryptogram of an INITIALIZE UPDATE exchange.
- :mod:`gpchannel.trace.report` renders both as text or JSON; :mod:`gpchannel.trace.ourformat` is the format of
  ``gpchannel --trace``.
"""

from gpchannel.trace.doctor import DoctorAttempt, DoctorReport, doctor
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
    "doctor_json",
    "doctor_text",
    "join_get_response",
    "parse_trace",
    "trace_json",
    "trace_text",
]
