"""The demo's output: one table per protocol and level, the same data as JSON, and the wire trace of a cell.

The trace of a cell is the line as the card saw it, read back by the trace inspector (:mod:`gpchannel.trace`)
with the demo's keys: it decodes each exchange and marks with ``!!`` the first one that does not verify, the one
the attacker touched. The attacker's own notes are printed beside the exchanges.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError
from gpchannel.mitm.attacks import ATTACK_TEXT, Attack, Service, WireEvent
from gpchannel.mitm.scenario import DEMO_KEY, Outcome
from gpchannel.trace.ourformat import format_trace
from gpchannel.trace.report import trace_text
from gpchannel.trace.session import KeyOptions, decode_trace

__all__ = ["LEVEL_TEXT", "level_title", "outcome_json", "outcome_table", "wire_trace"]

LEVEL_TEXT: dict[int, str] = {
    0x00: "no secure messaging: only the opening authenticates",
    0x01: "C-MAC: commands are signed",
    0x03: "C-MAC + C-DECRYPTION: commands signed and enciphered",
    0x11: "C-MAC + R-MAC: commands and answers signed",
    0x13: "C-MAC + C-DECRYPTION + R-MAC: answers signed too",
    0x33: "C-MAC + C-DECRYPTION + R-MAC + R-ENCRYPTION: everything signed and enciphered",
}
SCP80_TEXT: dict[int, str] = {
    0x00: "SPI1 00: no CC, no ciphering, no counter",
    0x06: "SPI1 06: CC and ciphering, no counter",
    0x12: "SPI1 12: CC and a higher counter, no ciphering",
    0x16: "SPI1 16: CC, ciphering and a higher counter",
}


def level_title(scp: int, level: int) -> str:
    if scp == 0x80:
        return f"SCP80, {SCP80_TEXT.get(level, f'SPI1 {level:02X}')}"
    return f"SCP{scp:02X}, security level {level:02X} ({LEVEL_TEXT.get(level, f'{level:02X}')})"


SHORT_CHANGE: dict[Attack, str] = {
    Attack.READ: "nothing",
    Attack.MODIFY_DATA: "one byte of the message",
    Attack.MODIFY_HEADER: "GET -> DELETE (INS CA -> E4)",
    Attack.REPLAY: "message sent twice",
    Attack.REORDER: "read-back before the message",
    Attack.DROP: "message dropped, fake 9000",
    Attack.INJECT: "its own DELETE slipped in",
    Attack.IMPERSONATE_SERVER: "own session, EXTERNAL AUTHENTICATE without keys",
    Attack.IMPERSONATE_CARD: "made-up INITIALIZE UPDATE answer",
}
SHORT_SERVICE = {
    Service.ENTITY_AUTHENTICATION: "entity authentication",
    Service.INTEGRITY: "integrity / data origin",
    Service.CONFIDENTIALITY: "confidentiality",
}


def _stopped(outcome: Outcome) -> str:
    if outcome.stopped_by is not None:
        return f"stopped: {SHORT_SERVICE[outcome.stopped_by]}"
    if outcome.attack is Attack.READ or outcome.succeeded:
        return "NOT PROTECTED at this level"
    return "failed (no service involved)"


def _changed(o: Outcome) -> str:
    if o.attack is Attack.MODIFY_DATA:
        return next((e.note for e in o.events if e.tampered and e.note), SHORT_CHANGE[o.attack])
    if o.scp == 0x80 and o.attack is not Attack.READ:
        return "; ".join(f"{e.label}: {e.note}" for e in o.events if e.tampered and e.note)
    return SHORT_CHANGE[o.attack]


def outcome_table(outcomes: list[Outcome], title: str) -> Table:
    """One level: a row per attack."""
    table = Table(title=title, box=box.SIMPLE_HEAVY, show_lines=True, title_justify="left")
    table.add_column("attack", no_wrap=True)
    for name in ("attacker saw", "attacker changed", "card did", "host noticed", "verdict"):
        table.add_column(name, overflow="fold", ratio=1)
    for o in outcomes:
        verdict = _stopped(o)
        style = "green" if o.stopped_by is not None else "red"
        table.add_row(o.attack.value, o.saw, _changed(o), o.card, o.host, f"[{style}]{verdict}[/{style}]")
    return table


def _shown(raw: bytes | None) -> str | None:
    return raw.hex().upper() if raw is not None else None


def outcome_json(o: Outcome) -> dict[str, Any]:
    return {
        "scp": f"{o.scp:02X}",
        "level": f"{o.level:02X}",
        "attack": o.attack.value,
        "attack_description": ATTACK_TEXT[o.attack],
        "attacker_saw": o.saw,
        "message_visible": o.message_visible,
        "attacker_changed": o.changed,
        "card": o.card,
        "card_status": {label: f"{sw:04X}" if o.scp != 0x80 else f"{sw:02X}" for label, sw in o.card_sws.items()},
        "host": o.host,
        "host_error": o.host_error or None,
        "stopped_by": o.stopped_by.value if o.stopped_by is not None else None,
        "attack_succeeded": o.succeeded,
        "wire": [
            {
                "label": e.label,
                "origin": e.origin,
                "host_sent": _shown(e.original),
                "card_received": _shown(e.sent),
                "card_answered": _shown(e.answer),
                "host_received": _shown(e.to_host),
                "tampered": e.tampered,
                "note": e.note or None,
            }
            for e in o.events
        ],
    }


def _notes(events: list[WireEvent]) -> list[str]:
    lines = []
    for e in events:
        mark = "!!" if e.tampered else "  "
        sent = _shown(e.sent) or "(never reached the card)"
        lines.append(f"{mark} {e.origin:8} {e.label}: {sent}")
        if e.original is not None and e.original != e.sent:
            lines.append(f"            the host sent: {_shown(e.original)}")
        if e.answer is not None:
            lines.append(f"            card answered: {_shown(e.answer)}")
        if e.to_host is not None and e.to_host != e.answer:
            lines.append(f"            host received: {_shown(e.to_host)} (from the attacker)")
        if e.note:
            lines.append(f"            attacker: {e.note}")
    return lines


def wire_trace(o: Outcome) -> str:
    """The attacker's log of the cell, then the card's side of the line decoded by the trace inspector."""
    lines = ["the line, as the attacker handled it:", *_notes(o.events)]
    if o.scp == 0x80:
        return "\n".join(lines) + "\n"
    exchanges: list[tuple[CommandApdu, ResponseApdu | None, CommandApdu | None, ResponseApdu | None]] = []
    for e in o.events:
        if e.sent is None or e.answer is None:
            continue
        exchanges.append((CommandApdu.from_bytes(e.sent), ResponseApdu.from_bytes(e.answer), None, None))
    lines += ["", "the card's side of the line, decoded by the trace inspector with the keys:"]
    try:
        report = decode_trace(format_trace(exchanges), KeyOptions.single(DEMO_KEY))
        lines.append(trace_text(report).rstrip())
    except DecodeError as exc:
        lines.append(f"(the trace inspector could not read it: {exc})")
    return "\n".join(lines) + "\n"
