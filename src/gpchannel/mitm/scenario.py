"""One attack against one live SCP02 / SCP03 session with the emulator, and the verdict.

The story, the same at every level: the host (the server) SELECTs the ``secure-store`` applet (indirect handling:
its Security Domain runs the secure channel, GP 2.3.1 10.3), opens a secure channel at the level under test
(*initiation*: INITIALIZE UPDATE, EXTERNAL AUTHENTICATE), stores the message under the key ``msg`` (PUT,
INS DA) and reads it back (GET, INS CA) (*operation*), then ends (*termination*). The applet is installed
requiring only an authenticated session, so that every level, 00 included, can run the story.

The verdict is drawn from what happened on the line and on the card (read afterwards by the referee, which is
not the attacker): what the attacker saw, what the card answered, what the host noticed, and which service
stopped the attack. It is never derived from the level itself: the tests compare it with the expected outcome
of each cell, written down from the specification.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import AuthenticationError, GPChannelError
from gpchannel.host.session import CardSession, ChannelOptions, Exchange
from gpchannel.io.transport import InProcessTransport, Transport
from gpchannel.mitm.attacks import MESSAGE_KEY, Attack, MitmTransport, Service, WireEvent
from gpchannel.scp.common import SecurityLevel

__all__ = [
    "DEMO_KEY",
    "GP_LEVELS",
    "ISD_AID",
    "MESSAGE_KEY",
    "STORE_AID",
    "Outcome",
    "demo_card",
    "profile_text",
    "referee_clear",
    "referee_read",
    "run_gp",
]

DEMO_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
"""The GlobalPlatform default test key: never on a card in the field."""
ISD_AID = bytes.fromhex("A000000151000000")
STORE_AID = bytes.fromhex("F06770636800010101")
I_PARAM = {0x02: 0x55, 0x03: 0x70}
"""SCP02 i=55 (explicit, 3 keys, pseudo-random challenge, ICV encryption), SCP03 i=70 (R-MAC, R-ENC)."""
GP_LEVELS: dict[int, tuple[int, ...]] = {0x02: (0x00, 0x01, 0x03, 0x13), 0x03: (0x00, 0x01, 0x03, 0x13, 0x33)}
"""The levels each protocol has: SCP02 has no R-ENCRYPTION (GP 2.2.1 E.1.2), SCP03 all (Amendment D 5.1)."""
REFUSED = (0x6982, 0x6300)


def profile_text(scp: int) -> str:
    """An emulated card: the ISD with the default test keys, the ``secure-store`` applet requiring level 00."""
    key_type = "aes" if scp == 0x03 else "des3"
    return f"""
[card]
kdd = "00112233445566778899"

[isd]
aid = "{ISD_AID.hex().upper()}"
scp = "{scp:02X}"
i = "{I_PARAM[scp]:02X}"

[[isd.keysets]]
kvn = 0x30
type = "{key_type}"
enc = "{DEMO_KEY.hex().upper()}"
mac = "{DEMO_KEY.hex().upper()}"
dek = "{DEMO_KEY.hex().upper()}"

[[applications]]
aid = "{STORE_AID.hex().upper()}"
kind = "secure-store"
parameters = "00"
"""


def demo_card(scp: int) -> Card:
    state = load_profile(profile_text(scp))
    store = MemoryStore()
    store.commit(state)
    return Card(state, store, random=os.urandom)


@dataclass(slots=True)
class Outcome:
    """One cell of the matrix: protocol, level, attack, and what happened."""

    scp: int
    level: int
    attack: Attack
    saw: str
    changed: str
    card: str
    host: str
    stopped_by: Service | None
    succeeded: bool
    card_sws: dict[str, int] = field(default_factory=dict)
    """Label -> status word the card answered (the attacker's own commands included)."""
    host_error: str = ""
    message_visible: dict[str, bool] = field(default_factory=dict)
    """Whether the plain message crossed the line: in a command, in an answer."""
    events: list[WireEvent] = field(default_factory=list, repr=False)
    exchanges: list[Exchange] = field(default_factory=list, repr=False)


def _sw(raw: bytes | None) -> int | None:
    return int.from_bytes(raw[-2:], "big") if raw is not None and len(raw) >= 2 else None


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace")


def _saw(events: list[WireEvent], message: bytes) -> tuple[str, dict[str, bool]]:
    """What the attacker could read: the message in the host's commands, and in the card's answers."""
    in_command = any(e.original is not None and message in e.original for e in events)
    in_answer = any(message in (e.answer or b"") for e in events)
    carried = any(e.label == "message" for e in events)
    visible = {"command": in_command, "answer": in_answer}
    if not carried:
        return "no message on the line", visible
    quoted = f"'{_text(message)}'"
    if in_command and in_answer:
        return f"{quoted}, both ways", visible
    command = quoted if in_command else "ciphertext"
    answer = quoted if in_answer else "no message"
    return f"command: {command}; answer: {answer}", visible


def _first_clause(exc: Exception) -> str:
    return str(exc).split(" (", 1)[0]


def _host_session(
    transport: Transport, scp: int, level: int, message: bytes, trace: list[Exchange]
) -> tuple[str, str, ResponseApdu | None]:
    """The honest host: returns (what it noticed, its error class name, the read-back answer)."""
    key_type = KeyType.AES if scp == 0x03 else KeyType.DES3
    keys = StaticKeys.single(DEMO_KEY, 0x30, key_type)
    session = CardSession(transport, random=os.urandom, trace=trace.append)
    options = ChannelOptions(keys, SecurityLevel(level), scp=scp, i_param=I_PARAM[scp], kvn=0x30)
    try:
        session.transmit_plain(CommandApdu(0x00, 0xA4, 0x04, 0x00, STORE_AID, le=256))
        session.open_secure_channel(options, aid=STORE_AID)
        put = session.transmit(CommandApdu(0x80, 0xDA, 0, 0, bytes((len(MESSAGE_KEY),)) + MESSAGE_KEY + message))
        if put.sw != 0x9000:
            return f"message refused ({put.sw:04X}): stops", "", None
        got = session.transmit(CommandApdu(0x80, 0xCA, 0, 0, MESSAGE_KEY, le=256))
    except AuthenticationError as exc:
        return f"not the real card ({_first_clause(exc)}): stops", type(exc).__name__, None
    except GPChannelError as exc:
        if level & SecurityLevel.R_MAC:
            return "answer without a valid R-MAC: stops", type(exc).__name__, None
        return f"error ({_first_clause(exc)}): stops", type(exc).__name__, None
    if got.sw != 0x9000:
        return f"read-back answered {got.sw:04X}" + (": session gone" if got.sw == 0x6982 else ""), "", got
    if got.data == message:
        return f"read back '{_text(got.data)}', all fine", "", got
    if not got.data:
        return "read back nothing (9000): no alarm", "", got
    return f"read back '{_text(got.data)}': no alarm", "", got


def _card_summary(events: list[WireEvent]) -> tuple[str, dict[str, int]]:
    sws: dict[str, int] = {}
    notes: list[str] = []
    for event in events:
        if event.sent is None and event.origin == "host" and event.label != "INITIALIZE UPDATE":
            notes.append(f"{event.label}: never arrived")
        sw = _sw(event.answer)
        if sw is None or event.label == "SELECT":
            continue
        sws[event.label] = sw
        if event.tampered or sw != 0x9000:
            notes.append(f"{event.label}: {sw:04X}")
    closed = any(
        _sw(e.answer) in REFUSED for e in events if e.label not in ("INITIALIZE UPDATE", "SELECT")
    ) and not any(e.label == "EXTERNAL AUTHENTICATE" and e.origin == "attacker" for e in events)
    reached = any(e.answer is not None for e in events if e.label != "SELECT")
    text = ", ".join(notes) if notes else ("all 9000" if reached else "nothing reached it")
    if closed:
        text += "; session closed"
    return text, sws


def _judge(attack: Attack, outcome: Outcome, stored: str | None, message: bytes) -> tuple[Service | None, bool]:
    """Which service stopped the attack (None: nothing did) and whether it reached its goal."""
    sws = outcome.card_sws
    ea = sws.get("EXTERNAL AUTHENTICATE")
    if outcome.host_error == "AuthenticationError" or (attack is Attack.IMPERSONATE_SERVER and ea != 0x9000):
        return Service.ENTITY_AUTHENTICATION, False
    if attack is Attack.READ:
        seen = any(outcome.message_visible.values())
        return (None if seen else Service.CONFIDENTIALITY), seen
    if attack is Attack.IMPERSONATE_CARD:
        return None, not outcome.host_error
    if attack is Attack.IMPERSONATE_SERVER:
        return None, sws.get("GET msg") == 0x9000
    refused = any(sw in REFUSED for label, sw in sws.items() if label not in ("INITIALIZE UPDATE",))
    host_caught = bool(outcome.host_error)
    goal = {
        Attack.MODIFY_DATA: stored is not None and stored != message.hex().upper(),
        Attack.MODIFY_HEADER: stored is None and sws.get("read-back") == 0x9000,
        Attack.REPLAY: sws.get("message (replayed)") == 0x9000,
        Attack.REORDER: sws.get("read-back") not in REFUSED and sws.get("message (late)") == 0x9000,
        Attack.DROP: not host_caught and sws.get("read-back") not in REFUSED and "read-back" in sws,
        Attack.INJECT: sws.get("attacker's DELETE") == 0x9000,
    }[attack]
    if goal:
        return None, True
    return (Service.INTEGRITY if refused or host_caught else None), False


def _referee(transport: Transport, scp: int, ins: int) -> ResponseApdu | None:
    """The referee's own honest session (C-MAC) on the line: one store command (INS CA GET, E4 DELETE) of ``msg``.

    The referee holds the keys; the attacker never does. None: the referee could not open its session.
    """
    key_type = KeyType.AES if scp == 0x03 else KeyType.DES3
    options = ChannelOptions(
        StaticKeys.single(DEMO_KEY, 0x30, key_type), SecurityLevel.C_MAC, scp=scp, i_param=I_PARAM[scp], kvn=0x30
    )
    session = CardSession(transport, random=os.urandom)
    try:
        session.transmit_plain(CommandApdu(0x00, 0xA4, 0x04, 0x00, STORE_AID, le=256))
        session.open_secure_channel(options, aid=STORE_AID)
        return session.transmit(CommandApdu(0x80, ins, 0, 0, MESSAGE_KEY, le=256 if ins == 0xCA else None))
    except GPChannelError:
        return None


def referee_read(transport: Transport, scp: int) -> str | None:
    """What the store holds under ``msg`` (hex), for a card served by another process, which the referee cannot
    look into. None: nothing is stored (6A88), or the referee could not read it."""
    got = _referee(transport, scp, 0xCA)
    return got.data.hex().upper() if got is not None and got.sw == 0x9000 else None


def referee_clear(transport: Transport, scp: int) -> None:
    """Empty the store before a cell (a card served by another process keeps what the last cell left)."""
    _referee(transport, scp, 0xE4)


def run_gp(
    scp: int,
    level: int,
    attack: Attack,
    message: bytes = b"Hello",
    *,
    transport: Callable[[], tuple[Transport, Card | None]] | None = None,
) -> Outcome:
    """Run ``attack`` against a session at ``level`` of SCP ``scp`` (02 or 03) and judge it.

    ``transport`` gives the line to the card and, when the card is in this process, the card for the referee
    (default: a fresh emulated card in memory); without the card, the referee reads the store through its own
    session on the same line (:func:`referee_read`).
    """
    if transport is None:
        card: Card | None = demo_card(scp)
        assert card is not None
        inner: Transport = InProcessTransport(card.process)
    else:
        inner, card = transport()
        if card is None:
            referee_clear(inner, scp)
    mitm = MitmTransport(inner, attack, message, scp=scp, i_param=I_PARAM[scp])
    trace: list[Exchange] = []
    host, host_error, _ = _host_session(mitm, scp, level, message, trace)
    mitm.finish()
    stored: str | None = None
    if card is not None:
        app = card.state.application(STORE_AID)
        stored = app.data.get("values", {}).get(MESSAGE_KEY.hex().upper()) if app is not None else None
    else:
        stored = referee_read(inner, scp)
    mitm.close()
    saw, visible = _saw(mitm.events, message)
    changed = "; ".join(f"{e.label}: {e.note}" for e in mitm.events if e.tampered and e.note) or "nothing"
    card_text, sws = _card_summary(mitm.events)
    outcome = Outcome(scp, level, attack, saw, changed, card_text, host, None, False, sws, host_error, visible)
    outcome.events = mitm.events
    outcome.exchanges = trace
    outcome.stopped_by, outcome.succeeded = _judge(attack, outcome, stored, message)
    return outcome
