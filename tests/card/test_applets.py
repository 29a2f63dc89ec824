"""Python applets: the registry by name, the echo applet, persistence of instance data, a custom class."""

from __future__ import annotations

from typing import Any

import pytest

from gpchannel.card.applets import Applet, AppletRegistry, EchoApplet
from gpchannel.card.builtin_applets import default_registry
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile
from gpchannel.card.state import MemoryStore
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import CardError, InsNotSupported, ProfileError
from tests.card.harness import ECHO_AID, counter_random, profile_text, send


def test_registry() -> None:
    registry = default_registry()
    assert {"echo", "secure-store", "scp03-direct"} <= set(registry.names()) and "echo" in registry
    echo = registry.create("echo", ECHO_AID, {})
    assert isinstance(echo, EchoApplet)
    with pytest.raises(LookupError, match=r"known: .*echo"):
        registry.create("wallet", ECHO_AID, {})
    with pytest.raises(ValueError, match="non-empty"):
        registry.register("", EchoApplet)


def test_echo() -> None:
    data: dict[str, Any] = {}
    echo = EchoApplet(ECHO_AID, data)
    echo.install(b"\x01\x02", b"\x00\x00\x00")
    assert echo.process(CommandApdu(0, 0x10, 0, 0, b"hi")) == ResponseApdu(b"hi")
    assert echo.process(CommandApdu(0, 0xCA, 0, 0)) == ResponseApdu(b"\x01\x02")
    assert data["count"] == 1
    with pytest.raises(CardError) as info:
        echo.process(CommandApdu(0, 0x6F, 0, 0))
    assert info.value.sw == 0x6F00


class Counter(Applet):
    """Counts in persistent data; INS 02 answers the count."""

    name = "counter"

    def process(self, command: CommandApdu) -> ResponseApdu:
        if command.ins == 0x01:
            self.data["n"] = int(self.data.get("n", 0)) + 1
            return ResponseApdu()
        if command.ins == 0x02:
            return ResponseApdu(bytes((int(self.data.get("n", 0)),)))
        return super().process(command)


def test_custom_applet_from_profile_persists_across_restarts() -> None:
    registry = default_registry()
    registry.register("counter", Counter)
    text = profile_text().replace('kind = "echo"', 'kind = "counter"')
    with pytest.raises(ProfileError, match=r"applications\[0\]\.kind"):
        load_profile(text)
    state = load_profile(text, registry)
    store = MemoryStore()
    store.commit(state)
    card = Card(state, store, random=counter_random(), applets=registry)
    select = CommandApdu(0, 0xA4, 4, 0, ECHO_AID, le=256)
    assert send(card, select).sw == 0x9000
    for _ in range(3):
        assert send(card, "00010000").sw == 0x9000
    assert send(card, "00990000").sw == InsNotSupported.sw
    restored = store.load()
    assert restored is not None
    again = Card(restored, store, random=counter_random(), applets=registry)
    send(again, select)
    assert send(again, "00020000").data == b"\x03"


def test_base_applet_refuses_commands() -> None:
    registry = AppletRegistry()
    registry.register("plain", Applet)
    applet = registry.create("plain", ECHO_AID, {})
    assert applet.select(CommandApdu(0, 0xA4, 4, 0)) == ResponseApdu()
    with pytest.raises(InsNotSupported):
        applet.process(CommandApdu(0, 0x10, 0, 0))
