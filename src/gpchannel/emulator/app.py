"""The card emulator as an application: a :class:`gpchannel.card.dispatcher.Card` kept in a state directory,
reachable through pcscd's vsmartcard ``vpcd`` driver (``gpchannel card serve``) or in-process.

This module wires the sans-I/O card core to the atomic directory store (``gpchannel.io.store``) and to the vpcd
socket loop (``gpchannel.io.vpcd``); it holds no protocol logic of its own.

Applets: the built-in ones of :func:`gpchannel.card.applets.default_registry`, and the ``echo`` applet also as
the Executable Module ``ECHO_MODULE_AID`` of the load file ``ECHO_LOAD_FILE_AID``, so a host can LOAD that
load file (a CAP whose Applet component names the module) and INSTALL further echo instances, as it would
with a real card's applet package (GP 2.3.1, 9.3.5 and 9.3.6).
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gpchannel.card.applets import AppletRegistry, EchoApplet
from gpchannel.card.builtin_applets import default_registry
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile, profile_differences
from gpchannel.card.state import CardState, LoadFile
from gpchannel.emulator.agent import AgentRunner
from gpchannel.errors import ProfileError
from gpchannel.io.store import DirectoryStore
from gpchannel.io.vpcd import DEFAULT_HOST, DEFAULT_PORT, install_sigterm_handler, serve_vpcd

__all__ = [
    "ECHO_LOAD_FILE_AID",
    "ECHO_MODULE_AID",
    "SD_LOAD_FILE_AID",
    "SD_MODULE_AID",
    "EmulatedCard",
    "emulator_applets",
    "init_state",
    "open_card",
    "parse_vpcd_address",
    "serve",
]

ECHO_LOAD_FILE_AID = bytes.fromhex("F0677063680000")
"""The Executable Load File AID of the echo applet (proprietary RID F0 'gpch', beside the examples' ...01)."""
ECHO_MODULE_AID = ECHO_LOAD_FILE_AID + b"\x01"
"""The Executable Module AID that INSTALL [for install] names to create an echo instance."""

SD_LOAD_FILE_AID = bytes.fromhex("A0000001515350")
"""The Security Domain package every GlobalPlatform card holds in ROM (GP 2.3.1, its usual AID)."""
SD_MODULE_AID = bytes.fromhex("A000000151535041")
"""Its Executable Module: INSTALL [for install] from it creates a Supplementary Security Domain."""

_log = logging.getLogger("gpchannel.emulator")


def emulator_applets() -> AppletRegistry:
    """The applet classes of the emulator: the default registry, plus echo under ``ECHO_MODULE_AID``."""
    registry = default_registry()
    registry.register(ECHO_MODULE_AID.hex().upper(), EchoApplet)
    return registry


def _read_profile(profile: Path) -> CardState:
    try:
        text = profile.read_text()
    except OSError as exc:
        raise ProfileError(f"cannot read the profile {profile}: {exc.strerror}") from None

    def resolve(name: str) -> bytes:  # files a profile names (SCP10 keys, certificates) are relative to it
        return (profile.parent / name).read_bytes()

    state = load_profile(text, resolve=resolve)
    if state.load_file(SD_LOAD_FILE_AID) is None:
        # As on a real card, the Security Domain package is in ROM, so `create-ssd` works out of the box.
        state.load_files.append(LoadFile(SD_LOAD_FILE_AID, state.isd_aid, [SD_MODULE_AID]))
    return state


def init_state(state_dir: Path, profile: Path, *, force: bool = False) -> CardState:
    """Create ``state_dir`` from ``profile``; refuses to overwrite an existing card unless ``force``."""
    store = DirectoryStore(state_dir)
    if store.exists() and not force:
        raise ProfileError(f"{state_dir} already holds a card; pass --force to rebuild it from the profile")
    state = _read_profile(profile)
    store.commit(state)
    return state


def open_card(
    state_dir: Path,
    profile: Path | None = None,
    *,
    trace: logging.Logger | None = None,
) -> tuple[Card, list[str]]:
    """The card in ``state_dir``, built from ``profile`` the first time.

    Returns the card and what the state directory holds that differs from the profile (the state wins).
    """
    store = DirectoryStore(state_dir)
    wanted = _read_profile(profile) if profile is not None else None

    def initial() -> CardState:
        if wanted is None:
            raise ProfileError(f"{state_dir} holds no card yet: give --profile FILE to create it")
        return wanted

    sink = trace.info if trace is not None else None
    card = Card.from_store(store, initial, random=os.urandom, applets=emulator_applets(), trace=sink, today=_today_utc)
    differences = profile_differences(card.state, wanted) if wanted is not None else []
    return card, differences


def _today_utc() -> datetime.date:
    """The date SCP10 certificates are checked against (GP 2.2.1 F.1.3.2)."""
    return datetime.datetime.now(datetime.UTC).date()


@dataclass
class EmulatedCard:
    """The :class:`gpchannel.io.vpcd.VirtualCard` face of a Card: power and reset end every session.

    ``lock`` serialises the card between the reader and the SCP81 agent (emulator/agent.py), which runs an
    administration session in a background thread when a command left a trigger pending (``agents.poll``)."""

    card: Card
    lock: threading.Lock = field(default_factory=threading.Lock)
    agents: AgentRunner | None = None

    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> None:
        with self.lock:
            self.card.reset()

    def power_off(self) -> None:
        with self.lock:
            self.card.reset()

    def reset(self) -> None:
        with self.lock:
            self.card.reset()

    def transmit(self, apdu: bytes) -> bytes:
        with self.lock:
            response = self.card.process(apdu)
        if self.agents is not None:
            self.agents.poll()
        return response


def parse_vpcd_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``HOST``, or ``:PORT``) with the vpcd defaults 127.0.0.1:35963."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        number = int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ValueError(f"vpcd address {text!r}: the port must be a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"vpcd address {text!r}: the port must be 1..65535")
    return host or DEFAULT_HOST, number


def serve(
    card: Card,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    trace: logging.Logger | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Answer vpcd until SIGTERM / SIGINT (or ``stop``); reconnects when pcscd restarts."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        install_sigterm_handler(stop, also_sigint=True)
    _log.info("serving the card on vpcd %s:%d", host, port)
    emulated = EmulatedCard(card)
    emulated.agents = AgentRunner(card, emulated.lock)
    emulated.agents.poll()  # a trigger received before a restart still starts its session
    serve_vpcd(emulated, host, port, stop=stop, reconnect=True, trace=trace)
    _log.info("stopped")
