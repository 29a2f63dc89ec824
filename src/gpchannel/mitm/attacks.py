"""The attacker: a transport wrapper that reads, changes, replays, reorders, drops and injects wire bytes.

It holds no key. All it knows is what any eavesdropper on the line learns: the bytes of each command and
response, the instruction byte of each (INS 50 INITIALIZE UPDATE, 82 EXTERNAL AUTHENTICATE: GP 2.3.1 11.11 and
11.8), the security level the host asks for (P1 of EXTERNAL AUTHENTICATE, in the clear: Table 11-68) and
whether a command carries secure messaging (CLA b3: GP 2.3.1 11.1.4). It counts the commands of the
*operation* phase (after EXTERNAL AUTHENTICATE): command 0 carries the message, command 1 reads it back.

The byte-level attacks are pure functions (:func:`flip_message`, :func:`change_header`,
:func:`made_up_initialize_update_response`, :func:`forged_external_authenticate`, :func:`own_command`); the
:class:`MitmTransport` applies them to the traffic of any :class:`~gpchannel.io.transport.Transport` and records
every exchange as a :class:`WireEvent`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.io.transport import Transport

__all__ = [
    "ATTACK_TEXT",
    "MESSAGE_KEY",
    "Attack",
    "MitmTransport",
    "Service",
    "WireEvent",
    "change_header",
    "flip_message",
    "forged_external_authenticate",
    "made_up_initialize_update_response",
    "own_command",
]

INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82
INS_GET = 0xCA
INS_DELETE = 0xE4
MESSAGE_KEY = b"msg"
"""Where the story keeps the message: the applet's protocol is public, the attacker knows it."""
FAKE_OK = ResponseApdu(sw=0x9000)
"""What the attacker answers the host in the card's place: a bare 9000 (it cannot compute an R-MAC)."""


class Attack(enum.Enum):
    """What the attacker does. ``read`` only looks; the others change the traffic."""

    READ = "read"
    MODIFY_DATA = "modify-data"
    MODIFY_HEADER = "modify-header"
    REPLAY = "replay"
    REORDER = "reorder"
    DROP = "drop"
    INJECT = "inject"
    IMPERSONATE_SERVER = "impersonate-server"
    IMPERSONATE_CARD = "impersonate-card"


ATTACK_TEXT: dict[Attack, str] = {
    Attack.READ: "reads every byte on the line",
    Attack.MODIFY_DATA: "changes one byte of the message ('H' -> 'J', or one ciphertext byte)",
    Attack.MODIFY_HEADER: "changes INS of the read-back command: GET (CA) becomes DELETE (E4)",
    Attack.REPLAY: "sends the message command a second time, before the read-back",
    Attack.REORDER: "holds the message command (answers 9000 itself), sends the read-back first, then it",
    Attack.DROP: "drops the message command and answers 9000 itself",
    Attack.INJECT: "slips in its own DELETE of the message before the read-back",
    Attack.IMPERSONATE_SERVER: "opens its own session: EXTERNAL AUTHENTICATE with a made-up cryptogram, then GET",
    Attack.IMPERSONATE_CARD: "answers INITIALIZE UPDATE itself with a made-up card cryptogram",
}


class Service(enum.Enum):
    """The three security services of a secure channel (GP 2.3.1, 10.1)."""

    ENTITY_AUTHENTICATION = "entity authentication"
    INTEGRITY = "integrity and data-origin authentication"
    CONFIDENTIALITY = "confidentiality"


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One exchange on the line as the attacker handled it.

    ``original`` is what the host sent (None: the attacker's own command), ``sent`` what reached the card
    (None: dropped), ``answer`` the card's reply (None: not sent),
    ``to_host`` what the host received (None: the attacker's own exchange). ``label`` names the command in
    the scenario's words; ``tampered`` marks what the attacker changed, made up or sent itself.
    """

    label: str
    origin: str
    original: bytes | None
    sent: bytes | None
    answer: bytes | None
    to_host: bytes | None
    tampered: bool = False
    note: str = ""


# ------------------------------------------------------------------------------------------ byte-level attacks


def flip_message(raw: bytes, message: bytes) -> tuple[bytes, str]:
    """Change one byte of the command data: the message's first byte if it is visible (H -> J), else the first
    data byte (ciphertext: the attacker cannot aim). Returns the new command and what was done."""
    command = CommandApdu.from_bytes(raw)
    data = command.data
    at = data.find(message) if message else -1
    if at >= 0:
        changed = data[:at] + bytes((data[at] ^ 0x02,)) + data[at + 1 :]
        before, after = message.decode("ascii", "replace"), (changed[at : at + len(message)]).decode("ascii", "replace")
        what = f"'{before}' -> '{after}'"
    else:
        at = 0
        changed = bytes((data[0] ^ 0x02,)) + data[1:] if data else data
        what = f"data byte 0 {data[:1].hex().upper()} -> {changed[:1].hex().upper()} (ciphertext)"
    return command.with_changes(data=changed).to_bytes(), what


def change_header(raw: bytes) -> tuple[bytes, str]:
    """GET (INS CA) -> DELETE (INS E4), the same data: the header byte the MAC must cover (GP 2.3.1 E.4.4)."""
    command = CommandApdu.from_bytes(raw)
    new_ins = INS_DELETE if command.ins == INS_GET else command.ins ^ 0x01
    return command.with_changes(ins=new_ins).to_bytes(), f"INS {command.ins:02X} -> {new_ins:02X}"


def own_command(template: bytes, data: bytes) -> bytes:
    """The attacker's own DELETE of ``data``, with the class byte of ``template`` (the host's last command); with
    secure messaging it appends an 8-byte guessed MAC (zeros): it has no key to compute one."""
    cla = CommandApdu.from_bytes(template).cla
    mac = bytes(8) if cla_has_secure_messaging(cla) else b""
    return CommandApdu(cla, INS_DELETE, 0x00, 0x00, data + mac).to_bytes()


def made_up_initialize_update_response(command: bytes, scp: int, i_param: int) -> bytes:
    """An INITIALIZE UPDATE answer in the format of ``scp`` (GP 2.2.1 E.5.1.6 / Amendment D 7.1.1.6) with an
    invented card challenge and card cryptogram: everything a card sends, except the proof of its keys."""
    kvn = CommandApdu.from_bytes(command).p1 or 0x30
    kdd = bytes(10)
    if scp == 0x02:
        body = kdd + bytes((kvn, 0x02)) + b"\x00\x01" + bytes.fromhex("A1A2A3A4A5A6") + bytes(8)
    else:
        body = kdd + bytes((kvn, 0x03, i_param)) + bytes.fromhex("A1A2A3A4A5A6A7A8") + bytes(8)
        if i_param & 0x10:  # pseudo-random card challenge: the sequence counter follows (Amendment D 7.1.1.6)
            body += b"\x00\x00\x01"
    return ResponseApdu(body, 0x9000).to_bytes()


def forged_external_authenticate(cla: int, level: int) -> bytes:
    """EXTERNAL AUTHENTICATE without the keys: a made-up host cryptogram and C-MAC (zeros) (GP 2.3.1 11.8)."""
    return CommandApdu(cla | 0x04, INS_EXTERNAL_AUTHENTICATE, level, 0x00, bytes(16)).to_bytes()


# ------------------------------------------------------------------------------------------ the transport wrapper


class MitmTransport:
    """A :class:`Transport` that puts ``attack`` between the host and ``inner`` (any transport to a card).

    ``message`` is what the attacker looks for on the line; ``scp`` / ``i_param`` shape a made-up INITIALIZE
    UPDATE answer (public facts about a card, learnt from any earlier session). :meth:`finish` runs what the
    attacker does after the host has finished (impersonating the server).
    """

    def __init__(self, inner: Transport, attack: Attack, message: bytes, *, scp: int, i_param: int) -> None:
        self.inner = inner
        self.attack = attack
        self.message = message
        self.scp = scp
        self.i_param = i_param
        self.events: list[WireEvent] = []
        self.level: int | None = None
        self._operation: list[bytes] = []  # the host's operation-phase commands, as the card received them
        self._held: bytes | None = None
        self._select: bytes | None = None
        self._initialize_update: bytes | None = None
        self._finished = False

    # -- the line -------------------------------------------------------------------------------------------------
    def _forward(self, raw: bytes) -> bytes:
        return self.inner.transmit(CommandApdu.from_bytes(raw)).to_bytes()

    def _pass(
        self, label: str, raw: bytes, *, tampered: bool = False, note: str = "", original: bytes | None = None
    ) -> bytes:
        answer = self._forward(raw)
        self.events.append(WireEvent(label, "host", original or raw, raw, answer, answer, tampered, note))
        return answer

    def _own(self, label: str, raw: bytes, note: str) -> bytes:
        answer = self._forward(raw)
        self.events.append(WireEvent(label, "attacker", None, raw, answer, None, True, note))
        return answer

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        return ResponseApdu.from_bytes(self._on_command(command.to_bytes()))

    def close(self) -> None:
        self.finish()
        self.inner.close()

    # -- the attacks ----------------------------------------------------------------------------------------------
    def _on_command(self, raw: bytes) -> bytes:
        ins = raw[1]
        if ins == 0xA4 and self._select is None:
            self._select = raw
            return self._pass("SELECT", raw)
        if ins == INS_INITIALIZE_UPDATE:
            self._initialize_update = raw
            if self.attack is Attack.IMPERSONATE_CARD:
                answer = made_up_initialize_update_response(raw, self.scp, self.i_param)
                note = "answered by the attacker: made-up card challenge and cryptogram"
                self.events.append(WireEvent("INITIALIZE UPDATE", "host", raw, None, None, answer, True, note))
                return answer
            return self._pass("INITIALIZE UPDATE", raw)
        if ins == INS_EXTERNAL_AUTHENTICATE:
            self.level = raw[2]
            return self._pass("EXTERNAL AUTHENTICATE", raw)
        if self.level is None:
            return self._pass(f"INS {ins:02X}", raw)
        index = len(self._operation)
        self._operation.append(raw)
        return self._operation_command(index, raw)

    def _operation_command(self, index: int, raw: bytes) -> bytes:
        label = {0: "message", 1: "read-back"}.get(index, f"command {index}")
        attack = self.attack
        if index == 0 and attack is Attack.MODIFY_DATA:
            changed, what = flip_message(raw, self.message)
            self._operation[0] = changed
            return self._pass(label, changed, tampered=True, note=what, original=raw)
        if index == 0 and attack in (Attack.DROP, Attack.REORDER):
            self._held = raw
            note = "dropped; 9000 answered by the attacker" if attack is Attack.DROP else "held; 9000 answered"
            self.events.append(WireEvent(label, "host", raw, None, None, FAKE_OK.to_bytes(), True, note))
            return FAKE_OK.to_bytes()
        if index == 1 and attack is Attack.MODIFY_HEADER:
            changed, what = change_header(raw)
            return self._pass(label, changed, tampered=True, note=what, original=raw)
        if index == 1 and attack is Attack.REPLAY:
            self._own("message (replayed)", self._operation[0], "a copy of the message command")
        if index == 1 and attack is Attack.INJECT:
            self._own("attacker's DELETE", own_command(raw, MESSAGE_KEY), "the attacker's own command")
        if index == 1 and attack is Attack.REORDER and self._held is not None:
            answer = self._pass(label, raw, tampered=True, note="sent before the message")
            held, self._held = self._held, None
            self._own("message (late)", held, "the held message command, after the read-back")
            return answer
        return self._pass(label, raw)

    def finish(self) -> None:
        """After the host's session: impersonating the server, the attacker opens its own session (the same
        SELECT, its own INITIALIZE UPDATE, an EXTERNAL AUTHENTICATE without the keys) and asks for the message."""
        if self._finished or self.attack is not Attack.IMPERSONATE_SERVER:
            return
        self._finished = True
        if self._select is None or self._initialize_update is None:
            return
        self._own("SELECT", self._select, "the attacker's own session")
        iu = CommandApdu.from_bytes(self._initialize_update)
        self._own("INITIALIZE UPDATE", iu.with_changes(data=bytes(len(iu.data))).to_bytes(), "its own challenge")
        level = self.level if self.level is not None else 0x01
        self._own("EXTERNAL AUTHENTICATE", forged_external_authenticate(iu.cla, level), "made-up host cryptogram")
        get = CommandApdu(0x80 | (iu.cla & 0x03), INS_GET, 0x00, 0x00, MESSAGE_KEY, le=256).to_bytes()
        self._own("GET msg", get, "asks for the message")
