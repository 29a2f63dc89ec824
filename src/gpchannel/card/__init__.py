"""The GlobalPlatform card emulator core (sans-I/O): a card built from a profile, answering C-APDU bytes with
R-APDU bytes, its state committed through a StateStore after every command that changes it."""

from gpchannel.card.applets import Applet, AppletRegistry, EchoApplet
from gpchannel.card.builtin_applets import default_registry
from gpchannel.card.dispatcher import Card
from gpchannel.card.profile import load_profile, profile_differences
from gpchannel.card.state import CardState, MemoryStore, StateStore

__all__ = [
    "Applet",
    "AppletRegistry",
    "Card",
    "CardState",
    "EchoApplet",
    "MemoryStore",
    "StateStore",
    "default_registry",
    "load_profile",
    "profile_differences",
]
