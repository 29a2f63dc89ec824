"""Test helpers for the card emulator: a card built from a profile, in memory, and a host session driver that
talks to it in bytes, exactly as a reader would."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.scp.common import HostChannel, SecurityLevel
from gpchannel.scp.registry import PROTOCOLS, HostFactory
from gpchannel.scp.symmetric import SymmetricHostChannel

DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
ISD_AID = bytes.fromhex("A000000151000000")
ECHO_AID = bytes.fromhex("A0000000871002FF49FF0589")


def profile_text(scp: str = "03", i: str = "70", *, key_type: str = "aes", lifecycle: str = "SECURED") -> str:
    return f"""
[card]
iccid = "8988211000000000001"
lifecycle = "{lifecycle}"

[isd]
aid = "A000000151000000"
scp = "{scp}"
i = "{i}"
sequence_counter = 0

[[isd.keysets]]
kvn = 0x30
type = "{key_type}"
enc = "404142434445464748494A4B4C4D4E4F"
mac = "404142434445464748494A4B4C4D4E4F"
dek = "404142434445464748494A4B4C4D4E4F"

[[applications]]
aid = "A0000000871002FF49FF0589"
kind = "echo"
sd = "A000000151000000"
privileges = "00"
lifecycle = "SELECTABLE"
"""


def counter_random() -> Callable[[int], bytes]:
    """Deterministic 'randomness' for card challenges (tests must be reproducible)."""
    counter = itertools.count(1)
    return lambda n: bytes((next(counter) + k) & 0xFF for k in range(n))


def make_card(scp: str = "03", i: str = "70", **kwargs: str) -> tuple[Card, MemoryStore]:
    key_type = "aes" if scp == "03" else "des3"
    state = load_profile(profile_text(scp, i, key_type=key_type, **kwargs))
    store = MemoryStore()
    store.commit(state)
    return Card(state, store, random=counter_random()), store


def send(card: Card, command: CommandApdu | str) -> ResponseApdu:
    raw = bytes.fromhex(command) if isinstance(command, str) else command.to_bytes()
    return ResponseApdu.from_bytes(card.process(raw))


def host_class(scp: str) -> HostFactory:
    """The host class of ``scp`` ("01", "02", "03"), from the protocol registry."""
    entry = PROTOCOLS.explicit(int(scp, 16))
    assert entry is not None, f"SCP{scp} is not in the protocol registry"
    return entry.host


def open_session(card: Card, scp: str, level: int, *, kvn: int = 0x30, channel: int = 0) -> SymmetricHostChannel:
    """INITIALIZE UPDATE + EXTERNAL AUTHENTICATE through the card's bytes interface."""
    cls = host_class(scp)
    key_type = KeyType.AES if scp == "03" else KeyType.DES3
    keys = StaticKeys.single(DEFAULT_KEY, kvn, key_type)
    sd = card.state.isd.sd
    assert sd is not None
    host = cls(
        keys, level=SecurityLevel(level), host_challenge=bytes(range(8)), i_param=sd.i_param, kvn=kvn, channel=channel
    )
    host.receive_initialize_update(send(card, host.initialize_update()))
    host.receive_external_authenticate(send(card, host.external_authenticate()))
    assert host.is_open
    return host


def secure(card: Card, host: HostChannel, command: CommandApdu) -> ResponseApdu:
    return host.unwrap(send(card, host.wrap(command)))
