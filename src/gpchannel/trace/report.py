"""The trace inspector's and the key doctor's reports, as text for people and as JSON-ready dicts for tools.

Only wire bytes, plain bytes the inspector computed, key check values and explanations appear: never keys.
"""

from __future__ import annotations

from typing import Any

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.scp.common import protocol_name
from gpchannel.trace.doctor import DoctorReport
from gpchannel.trace.session import ExchangeReport, SessionReport, TraceReport

__all__ = ["doctor_json", "doctor_text", "trace_json", "trace_text"]


def _shown(value: bytes | CommandApdu | ResponseApdu | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex().upper()
    return str(value)


def _kcvs(values: tuple[bytes, ...]) -> str:
    return "/".join(v.hex().upper() for v in values)


def _session_json(s: SessionReport) -> dict[str, Any]:
    return {
        "number": s.number,
        "first": s.first,
        "last": s.last,
        "protocol": protocol_name(s.protocol) if s.protocol is not None else None,
        "kvn": s.kvn,
        "i": f"{s.i_param:02X}" if s.i_param is not None else None,
        "level": f"{int(s.level):02X}" if s.level is not None else None,
        "key_diversification_data": _shown(s.key_diversification_data),
        "sequence_counter": _shown(s.sequence_counter),
        "key_check_values": [v.hex().upper() for v in s.key_check_values],
        "checked": s.checked,
        "opened": s.opened,
        "notes": list(s.notes),
        "ok": s.ok,
        "failure": s.failure.value if s.failure is not None else None,
        "failed_at": s.failed_at,
        "explanation": s.explanation,
    }


def _exchange_json(e: ExchangeReport) -> dict[str, Any]:
    return {
        "index": e.index,
        "line": e.line,
        "role": e.role.value,
        "session": e.session,
        "command": _shown(e.command),
        "response": _shown(e.response),
        "plain_command": _shown(e.plain_command),
        "plain_response": _shown(e.plain_response),
        "checks": list(e.checks),
        "failure": e.failure.value if e.failure is not None else None,
        "explanation": e.explanation,
    }


def trace_json(report: TraceReport) -> dict[str, Any]:
    """The report as plain JSON types (hex strings upper case, levels and i as two hex digits)."""
    first = report.first_failure
    return {
        "format": report.format.value if report.format is not None else None,
        "ok": report.ok,
        "first_failure": first.index if first is not None else None,
        "sessions": [_session_json(s) for s in report.sessions],
        "exchanges": [_exchange_json(e) for e in report.exchanges],
    }


def _session_title(s: SessionReport) -> str:
    parts = [f"session {s.number}:"]
    if s.protocol is not None:
        parts.append(protocol_name(s.protocol))
    if s.i_param is not None:
        parts.append(f"i={s.i_param:02X}")
    if s.kvn is not None:
        parts.append(f"KVN {s.kvn:02X}")
    if s.level is not None:
        parts.append(f"level {int(s.level):02X}")
    if s.key_check_values:
        parts.append(f"(keys KCV {_kcvs(s.key_check_values)})")
    if not s.checked:
        parts.append("- not checked" if s.notes else "- not checked (no keys)")
    elif s.ok and not s.opened:
        parts.append("- card cryptogram verified; no EXTERNAL AUTHENTICATE followed (the session never opened)")
    elif s.ok:
        parts.append("- every check passed")
    else:
        parts.append(f"- FAILED at exchange #{s.failed_at}")
    return " ".join(parts)


def trace_text(report: TraceReport) -> str:
    """A listing: each exchange with its wire bytes, the plain ones beside them, the checks, and the failure."""
    lines: list[str] = []
    if report.format is not None:
        lines.append(f"trace format: {report.format.value}")
    starts = {s.first: s for s in report.sessions}
    for e in report.exchanges:
        if e.index in starts:
            lines.append("")
            lines.append(_session_title(starts[e.index]))
            lines.extend(f"  note: {note}" for note in starts[e.index].notes)
        mark = "!!" if e.failure is not None else "  "
        checks = f"  [{', '.join(c + ' ok' for c in e.checks)}]" if e.checks else ""
        lines.append(f"{mark}#{e.index} (line {e.line}) {e.role.value}{checks}")
        lines.append(f"     C: {e.command}")
        if e.plain_command is not None and e.plain_command != e.command:
            lines.append(f"        plain {e.plain_command}")
        if e.response is not None:
            lines.append(f"     R: {e.response}")
            if e.plain_response is not None and e.plain_response != e.response:
                lines.append(f"        plain {e.plain_response}")
        if e.failure is not None:
            lines.append(f"  !! {e.failure.value}: {e.explanation}")
        elif e.explanation:
            lines.append(f"     {e.explanation}")
    lines.append("")
    first = report.first_failure
    if not report.sessions:
        lines.append("no secure channel session found (no INITIALIZE UPDATE, SCP10 MSE or SCP11 key agreement)")
    elif first is None:
        lines.append(f"{len(report.sessions)} session(s), no failure")
    else:
        what = first.failure.value if first.failure is not None else ""
        lines.append(f"first failure: exchange #{first.index} (line {first.line}), {what}")
    return "\n".join(lines) + "\n"


def doctor_json(report: DoctorReport) -> dict[str, Any]:
    """The doctor's report as plain JSON types."""
    match = report.match
    return {
        "protocol": protocol_name(report.protocol) if report.protocol is not None else None,
        "kvn": report.kvn,
        "i": f"{report.i_param:02X}" if report.i_param is not None else None,
        "key_diversification_data": _shown(report.key_diversification_data),
        "sequence_counter": _shown(report.sequence_counter),
        "match": ({"diversification": match.diversification.value, "role": match.role} if match is not None else None),
        "attempts": [
            {
                "diversification": a.diversification.value,
                "role": a.role,
                "matches": a.matches,
                "key_check_values": [v.hex().upper() for v in a.key_check_values],
                "note": a.note,
            }
            for a in report.attempts
        ],
        "explanation": report.explanation,
    }


def doctor_text(report: DoctorReport) -> str:
    """One line per attempt, then the verdict."""
    lines = []
    if report.protocol is not None:
        name = protocol_name(report.protocol)
        head = f"{name}, KVN {report.kvn:02X}" if report.kvn is not None else name
        if report.i_param is not None:
            head += f", i={report.i_param:02X}"
        head += f", key diversification data {_shown(report.key_diversification_data)}"
        lines.append(head)
    for a in report.attempts:
        verdict = "MATCH" if a.matches else "no"
        kcv = f" (card keys KCV {_kcvs(a.key_check_values)})" if a.key_check_values else ""
        lines.append(f"  {verdict:5} {a.role} / {a.diversification.value}{kcv}: {a.note}")
    lines.append(report.explanation)
    return "\n".join(lines) + "\n"
