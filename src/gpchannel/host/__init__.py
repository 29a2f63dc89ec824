"""The off-card entity: a session with a card over any transport, secure channel opening (SCP01/02/03 detected
from the INITIALIZE UPDATE response), GlobalPlatform command builders, and the :class:`GpCard` facade."""

from gpchannel.host.card import CardInfo, GpCard, RegistryItem, RegistryKind
from gpchannel.host.commands import Fci, SetStatusScope
from gpchannel.host.session import ApduTransport, CardSession, ChannelOptions, Exchange, TraceHook

__all__ = [
    "ApduTransport",
    "CardInfo",
    "CardSession",
    "ChannelOptions",
    "Exchange",
    "Fci",
    "GpCard",
    "RegistryItem",
    "RegistryKind",
    "SetStatusScope",
    "TraceHook",
]
