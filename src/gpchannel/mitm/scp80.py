"""The attacker against SCP80 secured SMS packets (ETSI TS 102 225), and the same verdicts as for SCP02/SCP03.

An SMS has no session: each command packet stands alone, protected by its SPI (TS 102 225 5.1.1): a
cryptographic checksum (CC: integrity and data-origin authentication), ciphering (confidentiality) and a
counter the card keeps (CNTR "higher than the stored one": replay protection). The PoR (Proof of Receipt) the
card sends back is the server's only evidence, secured per SPI2.

The story: the server sends packet 1 (SELECT EF SPN, UPDATE BINARY with the message, counter 1) and packet 2
(SELECT, READ BINARY, counter 2), each in an SMS-PP DOWNLOAD ENVELOPE; the attacker sits between the server and
the card (a fake base station, a compromised SMS centre) and acts on the packets' bytes. Levels are SPI1
values; the card's TAR has that level as its Minimum Security Level, so the card takes packets at that level.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import GPChannelError
from gpchannel.mitm.attacks import Attack, Service, WireEvent
from gpchannel.mitm.scenario import Outcome, profile_text
from gpchannel.ota import (
    Address,
    CipherAlgorithm,
    CompactResponse,
    CounterMode,
    Integrity,
    Kic,
    Kid,
    MacAlgorithm,
    Scp80KeySet,
    SmsDeliver,
    SmsPpDownload,
    Spi,
    encode_compact,
    secure_command,
    secured_message,
    split_packet,
    unsecure_response,
)
from gpchannel.ota.scp80 import ResponseStatus

__all__ = ["SCP80_ATTACKS", "SCP80_LEVELS", "run_scp80"]

KIC_KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
KID_KEY = bytes.fromhex("101112131415161718191A1B1C1D1E1F")
KEYSET = Scp80KeySet(KIC_KEY, KID_KEY, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
KIC = Kic.for_cipher(CipherAlgorithm.AES_CBC, kvn=1)
KID = Kid.for_mac(MacAlgorithm.AES_CMAC, kvn=1)
RFM_TAR = bytes.fromhex("B00001")
SERVER = Address("12345678")
SELECT_SPN = CommandApdu.from_bytes(bytes.fromhex("00A4080C047F206F46"))

SCP80_LEVELS: dict[int, str] = {
    0x00: "no CC, no ciphering, no counter",
    0x06: "CC and ciphering, no counter",
    0x12: "CC and a higher counter, no ciphering",
    0x16: "CC, ciphering and a higher counter",
}
"""SPI1 (TS 102 225 5.1.1): b2b1 integrity (10 CC), b3 ciphering, b5b4 counter (10 higher)."""
SCP80_ATTACKS = (
    Attack.READ,
    Attack.MODIFY_DATA,
    Attack.MODIFY_HEADER,
    Attack.REPLAY,
    Attack.REORDER,
    Attack.DROP,
    Attack.INJECT,
)
"""An SMS has no handshake to impersonate: a packet made without the keys is the ``inject`` attack."""

TEXT: dict[Attack, str] = {
    Attack.MODIFY_HEADER: "changes SPI2 of packet 1 to 'no PoR' (the server would never hear back)",
    Attack.REPLAY: "sends packet 1 again after packet 2",
    Attack.REORDER: "delivers packet 2 before packet 1",
    Attack.DROP: "drops packet 1",
    Attack.INJECT: "sends its own UPDATE BINARY in a packet with the server's header and a made-up CC",
}


def _spi(level: int) -> Spi:
    integrity = Integrity(level & 0x03)
    ciphered = bool(level & 0x04)
    return Spi(integrity, ciphered, CounterMode((level >> 3) & 0x03), por_integrity=integrity, por_ciphered=ciphered)


def _card(level: int) -> Card:
    ota = f"""
[[ota.keysets]]
kvn = 1
kic = "{KIC_KEY.hex()}"
kic_algorithm = "aes-cbc"
kid = "{KID_KEY.hex()}"
kid_algorithm = "aes-cmac"
counter = 0

[[ota.tars]]
tar = "{RFM_TAR.hex()}"
msl = "{level:02X}"
"""
    state = load_profile(profile_text(0x03) + ota)
    store = MemoryStore()
    store.commit(state)
    return Card(state, store, random=os.urandom)


def _deliver(card: Card, packet: bytes) -> bytes:
    """The handset: one ENVELOPE (with Le: the PoR comes back directly) -> the PoR packet, or b"" for none."""
    report = b""
    for ud in split_packet(packet):
        apdu = SmsPpDownload(SmsDeliver(SERVER, ud).to_bytes(), Address("4477")).to_apdu().with_changes(le=256)
        response = ResponseApdu.from_bytes(card.process(apdu.to_bytes()))
        report = response.data
    return secured_message(report).packet if report else b""


@dataclass(frozen=True, slots=True)
class _Por:
    status: ResponseStatus | None
    data: bytes
    note: str


def _por(raw: bytes, spi: Spi) -> _Por:
    if not raw:
        return _Por(None, b"", "no PoR")
    try:
        por = unsecure_response(raw, spi=spi, kic=KIC, kid=KID, keyset=KEYSET)
    except GPChannelError as exc:
        return _Por(None, b"", f"PoR refused: {exc}")
    last = CompactResponse.from_bytes(por.data).last if por.data else None
    data = last.data if last is not None else b""
    return _Por(por.status, data, f"PoR {por.status.name}")


def _packet(level: int, commands: list[CommandApdu], counter: int) -> bytes:
    packet = secure_command(
        encode_compact(commands), spi=_spi(level), kic=KIC, kid=KID, tar=RFM_TAR, counter=counter, keyset=KEYSET
    )
    return packet.to_bytes()


def _flip(raw: bytes, message: bytes) -> tuple[bytes, str]:
    """One byte of the packet changed: the message's first byte if it is visible, else the last ciphertext byte."""
    at = raw.find(message)
    if at >= 0:
        what = f"'{message.decode('ascii', 'replace')}' -> '{(bytes((message[0] ^ 2,)) + message[1:]).decode()}'"
    else:
        at, what = len(raw) - 1, "the last byte (ciphertext)"
    return raw[:at] + bytes((raw[at] ^ 0x02,)) + raw[at + 1 :], what


ATTACKER_TEXT = b"Owned"


def _injected(template: bytes, level: int) -> bytes:
    """A command packet made without the keys: the server's header (CHL, SPI, KIc, KID, TAR: TS 102 225 5.1),
    a guessed counter, a made-up CC (zeros) and the attacker's own UPDATE BINARY, padded but not enciphered."""
    chl = template[2]
    check = bytes(chl - 0x0D)
    data = encode_compact([SELECT_SPN, CommandApdu(0x00, 0xD6, 0x00, 0x00, ATTACKER_TEXT)])
    secured = (50).to_bytes(5, "big") + b"\x00" + check + data
    if level & 0x04:
        secured += bytes(-len(secured) % 16)
    body = template[2:10] + secured
    return len(body).to_bytes(2, "big") + body


def _no_por(packet: bytes) -> bytes:
    """SPI2 b2b1 = 00: no PoR (the second SPI byte, after CPL and CHL)."""
    return packet[:4] + bytes((packet[4] & ~0x03,)) + packet[5:]


class _Line:
    """The server's two packets through the attacker to the card."""

    def __init__(self, level: int, message: bytes) -> None:
        self.level = level
        self.message = message
        self.card = _card(level)
        self.spi = _spi(level)
        read = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=len(message))
        self.p1 = _packet(level, [SELECT_SPN, CommandApdu(0x00, 0xD6, 0x00, 0x00, message)], 1)
        self.p2 = _packet(level, [SELECT_SPN, read], 2)
        self.events: list[WireEvent] = []
        self.pors: dict[str, _Por] = {}

    def send(self, label: str, original: bytes | None, sent: bytes, tampered: bool = False, note: str = "") -> None:
        answer = _deliver(self.card, sent)
        self.pors[label] = _por(answer, self.spi)
        origin = "attacker" if original is None else "host"
        self.events.append(WireEvent(label, origin, original, sent, answer, answer, tampered, note))

    def read(self) -> None:
        self.send("packet 1", self.p1, self.p1)
        self.send("packet 2", self.p2, self.p2)

    def modify_data(self) -> None:
        changed, what = _flip(self.p1, self.message)
        self.send("packet 1", self.p1, changed, True, what)
        self.send("packet 2", self.p2, self.p2)

    def modify_header(self) -> None:
        self.send("packet 1", self.p1, _no_por(self.p1), True, "SPI2 'PoR required' -> 'no PoR'")
        self.send("packet 2", self.p2, self.p2)

    def replay(self) -> None:
        self.read()
        self.send("packet 1 (replayed)", None, self.p1, True, "a copy of packet 1")

    def reorder(self) -> None:
        self.send("packet 2", self.p2, self.p2, True, "delivered first")
        self.send("packet 1", self.p1, self.p1, True, "delivered second")

    def drop(self) -> None:
        self.events.append(WireEvent("packet 1", "host", self.p1, None, None, None, True, "dropped"))
        self.send("packet 2", self.p2, self.p2)

    def inject(self) -> None:
        self.send("packet 1", self.p1, self.p1)
        self.send("attacker's packet", None, _injected(self.p1, self.level), True, "made up without the keys")
        self.send("packet 2", self.p2, self.p2)

    def final_content(self) -> bytes:
        """The referee (not the attacker) reads the file with an honest packet and a fresh counter."""
        read = CommandApdu(0x00, 0xB0, 0x00, 0x00, le=len(self.message))
        return _por(_deliver(self.card, _packet(self.level, [SELECT_SPN, read], 1000)), self.spi).data


_PLAN: dict[Attack, Callable[[_Line], None]] = {
    Attack.READ: _Line.read,
    Attack.MODIFY_DATA: _Line.modify_data,
    Attack.MODIFY_HEADER: _Line.modify_header,
    Attack.REPLAY: _Line.replay,
    Attack.REORDER: _Line.reorder,
    Attack.DROP: _Line.drop,
    Attack.INJECT: _Line.inject,
}


def _status(por: _Por | None) -> str:
    if por is None or por.status is None:
        return por.note if por is not None else "no PoR"
    return f"{por.status.value:02X} {por.status.name.replace('_', ' ').lower()}"


def run_scp80(level: int, attack: Attack, message: bytes = b"Hello") -> Outcome:
    """Run ``attack`` against the two packets at SPI1 ``level``; the verdict as for SCP02/SCP03, from the PoRs
    and the file content the referee reads afterwards."""
    if attack not in _PLAN:
        raise ValueError(f"{attack.value} does not apply to SCP80: {', '.join(a.value for a in SCP80_ATTACKS)}")
    line = _Line(level, message)
    _PLAN[attack](line)
    final = line.final_content()
    events, pors = line.events, line.pors
    in_command = any(e.original is not None and message in e.original for e in events)
    in_answer = any(message in (e.answer or b"") for e in events)
    quoted = f"'{message.decode('ascii', 'replace')}'"
    saw = (
        f"packet: {quoted + ' in clear' if in_command else 'ciphertext'}; "
        f"PoR: {quoted + ' in clear' if in_answer else 'no ' + quoted}"
    )
    changed = "; ".join(f"{e.label}: {e.note}" for e in events if e.tampered and e.note) or "nothing"
    card = ", ".join(f"{e.label}: {_status(pors.get(e.label))}" for e in events)
    shown = f"'{final.decode()}'" if final.isascii() and final.decode().isprintable() else final.hex().upper()
    card += f"; file holds {shown}"
    host = "; ".join(f"{e.label}: {_status(pors.get(e.label))}" for e in events if e.origin == "host")
    sws = {label: por.status.value for label, por in pors.items() if por.status is not None}
    ok = ResponseStatus.POR_OK.value
    flipped = bytes((message[0] ^ 0x02,)) + message[1:]
    goal = {
        Attack.READ: in_command or in_answer,
        Attack.MODIFY_DATA: final == flipped,
        Attack.MODIFY_HEADER: final == message,
        Attack.REPLAY: sws.get("packet 1 (replayed)") == ok,
        Attack.REORDER: sws.get("packet 1") == ok,
        Attack.DROP: sws.get("packet 2") == ok,
        Attack.INJECT: sws.get("attacker's packet") == ok or final.startswith(ATTACKER_TEXT[: len(final)] or b"-"),
    }[attack]
    stopped: Service | None = None
    if not goal:
        stopped = Service.CONFIDENTIALITY if attack is Attack.READ else Service.INTEGRITY
    visible = {"command": in_command, "answer": in_answer}
    outcome = Outcome(0x80, level, attack, saw, changed, card, host, stopped, goal, sws, "", visible)
    outcome.events = events
    return outcome
