"""Find the secure channel sessions in a list of exchanges and check every one of them (GP 2.3.1, 10.2 and 10.3).

A session starts with INITIALIZE UPDATE (INS 50), goes on with EXTERNAL AUTHENTICATE (INS 82) and then the
commands of its logical channel. The static keys come from :class:`KeyOptions` (diversified with the key
diversification data the card returned, when master keys are given). Each session is checked with the
protocol's checker (:mod:`gpchannel.trace.verifiers`): card cryptogram, host cryptogram, every C-MAC and R-MAC,
C-DECRYPTION and R-ENCRYPTION undone, so that the plain command and response stand beside the wire bytes. The
check of a session stops at the first exchange where anything fails to verify; that exchange carries the failure
and its explanation, and the later exchanges of the session are listed unchecked. A new INITIALIZE UPDATE starts
a new session; a SELECT by name on the session's channel ends it (GP 2.3.1, 10.2.3). An SCP11 session starts at
its key agreement (:mod:`gpchannel.trace.scp11_checker`), an SCP10 session at its MANAGE SECURITY ENVIRONMENT
(:mod:`gpchannel.trace.scp10_checker`, which says what each key exchange needs to be read).

Sans-I/O: :func:`decode_trace` takes the text of a trace and returns a :class:`TraceReport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification, diversify
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.scp.common import InitializeUpdateResponse, ScpProtocol, SecurityLevel, protocol_name
from gpchannel.trace.checkers import CHECKERS, checker_for
from gpchannel.trace.formats import TraceExchange, TraceFormat, detect_format, join_get_response, parse_trace
from gpchannel.trace.model import ExchangeReport, KeyOptions, Role, SessionReport, TraceReport
from gpchannel.trace.scp10_checker import Scp10Tracker, scp10_option
from gpchannel.trace.scp11_checker import Scp11Checker, key_agreement_parameters
from gpchannel.trace.verifiers import Checker, Failure, Mismatch

__all__ = [
    "ExchangeReport",
    "Failure",
    "KeyOptions",
    "Role",
    "SessionReport",
    "TraceReport",
    "decode_exchanges",
    "decode_trace",
]

INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_SELECT = 0xA4


def _fit(keys: StaticKeys, protocol: int) -> StaticKeys:
    wanted = KeyType.AES if protocol is ScpProtocol.SCP03 else KeyType.DES3
    if keys.key_type is wanted:
        return keys
    try:
        return replace(keys, key_type=wanted)
    except ValueError:
        return keys  # the checker reports the mismatch


def _static_keys(options: KeyOptions, parsed: InitializeUpdateResponse) -> StaticKeys:
    assert options.keys is not None
    keys = options.keys
    if options.diversification is Diversification.NONE:
        keys = _fit(keys, parsed.protocol)
    else:
        master_type = KeyType.AES if options.diversification is Diversification.KDF3 else KeyType.DES3
        if keys.key_type is not master_type:
            keys = replace(keys, key_type=master_type)
        keys = _fit(diversify(keys, options.diversification, parsed.key_diversification_data), parsed.protocol)
    return replace(keys, kvn=parsed.kvn)


def _checker(options: KeyOptions, host_challenge: bytes, parsed: InitializeUpdateResponse) -> Checker:
    if parsed.protocol not in CHECKERS:
        raise UnsupportedError(f"the inspector does not check {protocol_name(parsed.protocol)} sessions")
    keys = _static_keys(options, parsed)
    given: dict[int, int | None] = {ScpProtocol.SCP01: options.scp01_i, ScpProtocol.SCP02: options.scp02_i}
    i = given.get(parsed.protocol)
    return checker_for(keys, host_challenge, parsed, i, what="the inspector does not check")


def _status_hint(failure: Failure, response: ResponseApdu | None) -> str:
    """What the card's own answer adds to a failed check of a command."""
    if failure not in (Failure.C_MAC, Failure.DECRYPTION, Failure.WRONG_CHAINING, Failure.MISSING_COMMAND):
        return ""
    if response is None:
        return " The trace has no response to it."
    if response.sw in (0x6982, 0x6988):
        return f" The card refused it too ({response.sw:04X}): the host sent a wrongly protected command."
    if failure is Failure.C_MAC:
        return (
            f" The card accepted it ({response.sw:04X}), so the trace differs from what the card saw: a byte of "
            "this command was changed, or a command of the session is missing before it."
        )
    return f" The card answered {response.sw:04X}."


class _Session:
    def __init__(self, number: int, exchange: TraceExchange) -> None:
        self.number = number
        self.first = self.last = exchange.index
        self.channel = exchange.command.channel
        self.parsed: InitializeUpdateResponse | None = None
        self.protocol: int | None = None
        self.kvn: int | None = None
        self.checker: Checker | None = None
        self.scp10: Scp10Tracker | None = None
        self.kcvs: tuple[bytes, ...] = ()
        self.failure: Failure | None = None
        self.failed_at: int | None = None
        self.explanation = ""
        self.opened = False
        self.stopped = False
        self.checked = True
        self.notes: list[str] = []

    def fail(self, index: int, failure: Failure, explanation: str) -> None:
        self.failure, self.failed_at, self.explanation, self.stopped = failure, index, explanation, True

    def _level(self) -> SecurityLevel | None:
        if self.scp10 is not None:
            level = self.scp10.level
            return SecurityLevel(level) if level is not None and self.opened else None
        return self.checker.level if self.checker and self.opened else None

    def report(self) -> SessionReport:
        p = self.parsed
        return SessionReport(
            self.number,
            self.first,
            self.last,
            p.protocol if p else self.protocol,
            p.kvn if p else self.kvn,
            self.checker.i_param if self.checker else (p.i_param if p else None),
            self._level(),
            p.key_diversification_data if p else b"",
            p.sequence_counter if p else None,
            self.kcvs,
            self.failure,
            self.failed_at,
            self.explanation,
            self.checked,
            self.opened,
            tuple(self.notes),
        )


def _initialize_update(session: _Session, exchange: TraceExchange, options: KeyOptions) -> ExchangeReport:
    command, response = exchange.command, exchange.response
    base = ExchangeReport(
        exchange.index, exchange.line, Role.INITIALIZE_UPDATE, command, response, session=session.number
    )
    if response is None:
        session.fail(exchange.index, Failure.CARD_REFUSED, "the trace ends before the card answered")
        return replace(base, failure=Failure.CARD_REFUSED, explanation=session.explanation)
    if response.sw != 0x9000:
        hint = {
            0x6A88: "no key set with the KVN in P1 (or the key identifier in P2)",
            0x6982: "security status not satisfied (card locked, or too many failed authentications?)",
            0x6983: "authentication method blocked",
            0x6985: "conditions of use not satisfied (sequence counter exhausted?)",
        }.get(response.sw, "refused")
        session.fail(exchange.index, Failure.CARD_REFUSED, f"INITIALIZE UPDATE answered {response.sw:04X}: {hint}")
        return replace(base, failure=Failure.CARD_REFUSED, explanation=session.explanation)
    try:
        parsed = InitializeUpdateResponse.from_bytes(response.data)
    except DecodeError as exc:
        session.fail(exchange.index, Failure.MALFORMED, f"the INITIALIZE UPDATE response is malformed: {exc}")
        return replace(base, failure=Failure.MALFORMED, explanation=session.explanation)
    session.parsed = parsed
    if options.keys is None:
        session.checked, session.stopped = False, True
        return replace(base, explanation="no keys given: not checked")
    try:
        session.checker = _checker(options, command.data, parsed)
        session.kcvs = _static_keys(options, parsed).kcvs()
        session.checker.check_card_cryptogram()
    except Mismatch as exc:
        detail = exc.explanation
        if exc.failure is Failure.CARD_CRYPTOGRAM:
            kcvs = "/".join(k.hex().upper() for k in session.kcvs)
            detail += (
                f": the keys tried (KCVs ENC/MAC/DEK {kcvs}, diversification {options.diversification.value}) are not "
                f"the card's key set {parsed.kvn:02X} (key diversification data "
                f"{parsed.key_diversification_data.hex().upper()}); try `gpchannel keys doctor` on this exchange"
            )
        session.fail(exchange.index, exc.failure, detail)
        return replace(base, failure=exc.failure, explanation=session.explanation)
    except (UnsupportedError, ValueError) as exc:
        session.fail(exchange.index, Failure.UNSUPPORTED, str(exc))
        return replace(base, failure=Failure.UNSUPPORTED, explanation=session.explanation)
    return replace(base, checks=("card cryptogram",))


def _external_authenticate(session: _Session, exchange: TraceExchange) -> ExchangeReport:
    command, response = exchange.command, exchange.response
    base = ExchangeReport(
        exchange.index, exchange.line, Role.EXTERNAL_AUTHENTICATE, command, response, session=session.number
    )
    assert session.checker is not None
    try:
        session.checker.external_authenticate(command)
    except Mismatch as exc:
        detail = exc.explanation
        if exc.failure is Failure.HOST_CRYPTOGRAM:
            detail += ": the card cryptogram verified with these keys, so the host computed its cryptogram with other "
            detail += "keys, challenges or derivation"
        if response is not None:
            detail += f"; the card answered {response.sw:04X}"
        session.fail(exchange.index, exc.failure, detail)
        return replace(base, failure=exc.failure, explanation=session.explanation)
    checks = ("host cryptogram", "C-MAC")
    if response is None or response.sw != 0x9000:
        what = "the trace ends before the card answered" if response is None else f"the card answered {response.sw:04X}"
        session.fail(
            exchange.index,
            Failure.CARD_REFUSED,
            f"EXTERNAL AUTHENTICATE verifies with these keys but {what}: the card's key set may be locked, the level "
            f"{command.p1:02X} not allowed, or the card has other keys than the ones that produced its cryptogram",
        )
        return replace(base, checks=checks, failure=Failure.CARD_REFUSED, explanation=session.explanation)
    session.opened = True
    return replace(base, checks=checks)


def _key_agreement(session: _Session, exchange: TraceExchange, options: KeyOptions) -> ExchangeReport:
    """SCP11's key agreement (Amendment F): the receipt verified with one of the given session key sets."""
    command, response = exchange.command, exchange.response
    base = ExchangeReport(exchange.index, exchange.line, Role.KEY_AGREEMENT, command, response, session=session.number)
    session.protocol, session.kvn = ScpProtocol.SCP11, command.p1
    if response is None or response.sw != 0x9000:
        what = "the trace ends before the card answered" if response is None else f"the card answered {response.sw:04X}"
        session.fail(exchange.index, Failure.CARD_REFUSED, f"key agreement refused: {what}")
        return replace(base, failure=Failure.CARD_REFUSED, explanation=session.explanation)
    if not options.scp11_keys:
        session.checked, session.stopped = False, True
        return replace(base, explanation="no SCP11 session keys given: not checked")
    try:
        session.checker = Scp11Checker(options.scp11_keys, command, response)
    except Mismatch as exc:
        session.fail(exchange.index, exc.failure, exc.explanation)
        return replace(base, failure=exc.failure, explanation=session.explanation)
    session.opened = True
    return replace(base, checks=("receipt",))


def _secured(session: _Session, exchange: TraceExchange) -> ExchangeReport:
    command, response = exchange.command, exchange.response
    base = ExchangeReport(exchange.index, exchange.line, Role.SECURED, command, response, session=session.number)
    checker = session.checker
    assert checker is not None
    checks: list[str] = []
    try:
        plain = checker.command(command)
    except Mismatch as exc:
        session.fail(exchange.index, exc.failure, exc.explanation + _status_hint(exc.failure, response))
        return replace(base, failure=exc.failure, explanation=session.explanation)
    if plain != command:
        checks.append("C-MAC")
        if SecurityLevel.C_DECRYPTION in checker.level and plain.data != command.data[: len(plain.data)]:
            checks.append("decrypted")
    if response is None:
        return replace(base, plain_command=plain, checks=tuple(checks))
    try:
        plain_response = checker.response(response)
    except Mismatch as exc:
        explanation = exc.explanation + ": a byte of the response differs from what the card computed its R-MAC over"
        session.fail(exchange.index, exc.failure, explanation)
        return replace(base, plain_command=plain, checks=tuple(checks), failure=exc.failure, explanation=explanation)
    if plain_response != response:
        checks.append("R-MAC")
    return replace(base, plain_command=plain, plain_response=plain_response, checks=tuple(checks))


def _scp10(session: _Session, exchange: TraceExchange) -> ExchangeReport:
    """One exchange of an SCP10 session (GP 2.2.1 Appendix F), through its tracker."""
    tracker = session.scp10
    assert tracker is not None
    role = Role.SECURED if tracker.opened else Role.INITIATION
    base = ExchangeReport(exchange.index, exchange.line, role, exchange.command, exchange.response)
    base = replace(base, session=session.number)
    try:
        step = tracker.step(exchange.command, exchange.response)
    except Mismatch as exc:
        explanation = exc.explanation + _status_hint(exc.failure, exchange.response)
        session.fail(exchange.index, exc.failure, explanation)
        return replace(base, failure=exc.failure, explanation=explanation)
    session.opened = tracker.opened
    if tracker.unreadable and tracker.opened:
        session.checked, session.stopped = False, True
        session.notes.append(tracker.unreadable)
    role = Role(step.role)
    return replace(
        base,
        role=role,
        checks=step.checks,
        plain_command=step.plain_command,
        plain_response=step.plain_response,
        explanation=step.note,
    )


def _ends_session(command: CommandApdu) -> bool:
    """SELECT by name, or MANAGE CHANNEL close, on the session's channel ends it (GP 2.3.1, 10.2.3)."""
    if command.cla & 0x0C:
        return False
    return (command.ins == INS_SELECT and command.p1 == 0x04) or (command.ins == 0x70 and command.p1 == 0x80)


def _counter_notes(sessions: list[_Session]) -> None:
    """Notes where a card's sequence counter jumps between two sessions of the trace (GP 2.2.1 E.1.2.1,
    Amendment D 6.2.2.1): sessions opened on the card that the trace does not show."""
    previous: dict[tuple[int, int], _Session] = {}
    for session in sessions:
        p = session.parsed
        if p is None or p.sequence_counter is None:
            continue
        key = (p.protocol, p.kvn)
        before = previous.get(key)
        previous[key] = session
        if before is None or before.parsed is None or before.parsed.sequence_counter is None:
            continue
        old = int.from_bytes(before.parsed.sequence_counter, "big")
        new = int.from_bytes(p.sequence_counter, "big")
        step = 1 if p.protocol is ScpProtocol.SCP03 or before.opened else 0
        if new != old + step:
            session.notes.append(
                f"the sequence counter is {new:X} where {old + step:X} was expected after session {before.number}: "
                + (
                    f"{new - old - step} session(s) on this card are not in the trace"
                    if new > old + step
                    else "another card, or a counter that went back"
                )
            )


def decode_exchanges(
    exchanges: Sequence[TraceExchange], keys: KeyOptions, trace_format: TraceFormat | None = None
) -> TraceReport:
    """Find and check the sessions in ``exchanges`` (see the module docstring); one per logical channel at most."""
    reports: list[ExchangeReport] = []
    sessions: list[_Session] = []
    current: dict[int, _Session] = {}
    certificates: dict[int, bytes] = {}
    for exchange in exchanges:
        command, response = exchange.command, exchange.response
        channel = command.channel
        if command.ins == 0xCA and (command.p1, command.p2) == (0x7F, 0x21) and response and response.sw == 0x9000:
            certificates[channel] = response.data  # CERT.SD.AUT: the card id of an SCP10 session (F.4.3)
        if scp10_option(command) is not None:
            session = _Session(len(sessions) + 1, exchange)
            session.protocol, session.scp10 = (
                ScpProtocol.SCP10,
                Scp10Tracker(command, keys.scp10, certificates.get(channel)),
            )
            sessions.append(session)
            current[channel] = session
            base = ExchangeReport(
                exchange.index, exchange.line, Role.INITIATION, command, response, session=session.number
            )
            if response is None or response.sw != 0x9000:
                session.fail(exchange.index, Failure.CARD_REFUSED, "MANAGE SECURITY ENVIRONMENT refused")
                base = replace(base, failure=Failure.CARD_REFUSED, explanation=session.explanation)
            reports.append(base)
            continue
        if command.ins == INS_INITIALIZE_UPDATE and command.cla & 0x80 and not command.cla & 0x0C:
            session = _Session(len(sessions) + 1, exchange)
            sessions.append(session)
            current[channel] = session
            reports.append(_initialize_update(session, exchange, keys))
            continue
        if key_agreement_parameters(command) is not None:
            session = _Session(len(sessions) + 1, exchange)
            sessions.append(session)
            current[channel] = session
            reports.append(_key_agreement(session, exchange, keys))
            continue
        outside = ExchangeReport(exchange.index, exchange.line, Role.OUTSIDE, command, exchange.response)
        found = current.get(channel)
        if found is None:
            reports.append(outside)
            continue
        session = found
        if _ends_session(command):
            del current[channel]
            reports.append(outside)
            continue
        if session.scp10 is not None and not session.stopped:
            session.last = exchange.index
            reports.append(_scp10(session, exchange))
            continue
        if not session.stopped and not session.opened and command.ins != INS_EXTERNAL_AUTHENTICATE:
            session.notes.append("the host sent no EXTERNAL AUTHENTICATE: it abandoned the session")
            del current[channel]
            reports.append(outside)
            continue
        session.last = exchange.index
        if session.stopped:
            role = Role.UNCHECKED
            reports.append(replace(outside, role=role, session=session.number))
        elif not session.opened:
            reports.append(_external_authenticate(session, exchange))
        else:
            reports.append(_secured(session, exchange))
    _counter_notes(sessions)
    return TraceReport(trace_format, tuple(reports), tuple(s.report() for s in sessions))


def decode_trace(text: str, keys: KeyOptions, trace_format: TraceFormat | None = None) -> TraceReport:
    """Read a trace (format detected unless given), fold T=0 GET RESPONSEs and check every session in it.

    Raises DecodeError when the text is not a trace of a known format.
    """
    fmt = trace_format or detect_format(text)
    exchanges = join_get_response(parse_trace(text, fmt))
    return decode_exchanges(exchanges, keys, fmt)
