"""The protocol registry: one table from a protocol's SCP identifier to its host class, its card class and the
way its sessions are initiated.

Two kinds of initiation exist (GP 2.3.1, 10.2.1; GP 2.2.1 Appendix F):

* :data:`Initiation.EXPLICIT`: INITIALIZE UPDATE then EXTERNAL AUTHENTICATE (SCP01, SCP02, SCP03). The host class
  is a :class:`~gpchannel.scp.symmetric.SymmetricHostChannel`, the card class a
  :class:`~gpchannel.scp.symmetric.SymmetricCardChannel`; both are built with the keyword arguments of
  :class:`HostFactory` and :class:`CardFactory`, which mypy checks against each class's constructor (no cast).
  The session finds the protocol from byte 11 of the INITIALIZE UPDATE response and parses the response once,
  with the entry's ``parse``.
* :data:`Initiation.STEPS`: a step driver (SCP10: GP 2.2.1 F.1.2 and F.4). The host class is a
  :class:`~gpchannel.scp.common.SteppedHostChannel` built by the caller (it needs credentials, not a key set) and
  driven by its ``run``; the card class processes the steps itself.

:data:`PROTOCOLS` is the table of the protocols gpchannel implements; :func:`register` adds one (a protocol defined
outside this package, or a test's). A :class:`ProtocolRegistry` of one's own can be handed to
:class:`gpchannel.host.session.CardSession` instead. Nothing else in the package imports this module: the protocol
modules do not know the table, the table knows them (``tests/scp/test_import_cycles.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import UnsupportedError
from gpchannel.scp.common import (
    CardChannel,
    InitializeUpdateResponse,
    KeyResolver,
    RandomSource,
    ScpProtocol,
    SecurityLevel,
    SteppedHostChannel,
    protocol_name,
)
from gpchannel.scp.scp01_card import Scp01Card
from gpchannel.scp.scp01_host import Scp01Host
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host
from gpchannel.scp.scp10_card import Scp10Card
from gpchannel.scp.scp10_host import Scp10Host
from gpchannel.scp.scp11_card import Scp11Card
from gpchannel.scp.scp11_host import Scp11Host
from gpchannel.scp.symmetric import SymmetricCardChannel, SymmetricHostChannel

__all__ = [
    "PROTOCOLS",
    "CardFactory",
    "ExplicitProtocol",
    "HostFactory",
    "IParamSource",
    "Initiation",
    "ProtocolEntry",
    "ProtocolRegistry",
    "SteppedProtocol",
    "register",
]


class Initiation(enum.Enum):
    """How a protocol's session opens (GP 2.3.1, 10.2.1)."""

    EXPLICIT = "INITIALIZE UPDATE, EXTERNAL AUTHENTICATE"
    STEPS = "a step driver"


class IParamSource(enum.Enum):
    """Where the host takes the i parameter from when the caller does not give one."""

    HOST_DEFAULT = "the host class's default"  # SCP01: i is not on the wire
    CARD_RESPONSE = "the INITIALIZE UPDATE response"  # SCP03: byte 12 (Amendment D 7.1.1)
    RECOGNITION_DATA = "the card recognition data"  # SCP02: not on the wire; else the entry's default_i


class HostFactory(Protocol):
    """The constructor of a symmetric host class: a key set (or resolver) and the session's parameters."""

    def __call__(
        self,
        keys: StaticKeys | KeyResolver,
        *,
        level: SecurityLevel,
        host_challenge: bytes,
        i_param: int | None = ...,
        kvn: int = ...,
        aid: bytes = ...,
        channel: int = ...,
    ) -> SymmetricHostChannel: ...


class CardFactory(Protocol):
    """The constructor of a symmetric card class: the Security Domain's key set and its persistent parameters."""

    def __call__(
        self,
        keys: StaticKeys,
        *,
        i_param: int,
        key_diversification_data: bytes,
        sequence_counter: int,
        random: RandomSource,
        aid: bytes,
        channel: int = ...,
    ) -> SymmetricCardChannel[Any]: ...


@dataclass(frozen=True, slots=True)
class ExplicitProtocol:
    """A protocol initiated with INITIALIZE UPDATE and EXTERNAL AUTHENTICATE.

    ``i_source`` and ``default_i`` say which i the host uses when the caller gives none; ``s16`` whether the
    protocol has the S16 mode (16-byte challenges); ``parse`` reads its INITIALIZE UPDATE response.
    """

    protocol: int
    host: HostFactory
    card: CardFactory
    i_source: IParamSource = IParamSource.HOST_DEFAULT
    default_i: int | None = None
    s16: bool = False
    parse: Callable[[bytes], InitializeUpdateResponse] = InitializeUpdateResponse.from_bytes

    @property
    def initiation(self) -> Initiation:
        return Initiation.EXPLICIT

    @property
    def name(self) -> str:
        return protocol_name(self.protocol)

    def host_i_param(self, given: int | None, card_i: int | None, recognition_i: int | None) -> int | None:
        """The i the host class is built with: ``given`` if any, else from ``i_source``."""
        if given is not None:
            return given
        if self.i_source is IParamSource.CARD_RESPONSE:
            return card_i
        if self.i_source is IParamSource.RECOGNITION_DATA:
            return recognition_i if recognition_i is not None else self.default_i
        return None


@dataclass(frozen=True, slots=True)
class SteppedProtocol:
    """A protocol initiated by a step driver: the host class's ``run`` sends the steps."""

    protocol: int
    host: type[SteppedHostChannel]
    card: type[CardChannel]

    @property
    def initiation(self) -> Initiation:
        return Initiation.STEPS

    @property
    def name(self) -> str:
        return protocol_name(self.protocol)


ProtocolEntry = ExplicitProtocol | SteppedProtocol


class ProtocolRegistry:
    """Protocols by SCP identifier; see the module docstring."""

    def __init__(self, entries: Iterable[ProtocolEntry] = ()) -> None:
        self._entries: dict[int, ProtocolEntry] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: ProtocolEntry) -> ProtocolEntry:
        """Add ``entry``; ValueError when its identifier is not a byte or is taken already."""
        if not 0 <= entry.protocol <= 0xFF:
            raise ValueError(f"an SCP identifier is a byte, got {entry.protocol}")
        if entry.protocol in self._entries:
            raise ValueError(f"{entry.name} is registered already")
        self._entries[entry.protocol] = entry
        return entry

    def __contains__(self, protocol: object) -> bool:
        return protocol in self._entries

    def __iter__(self) -> Iterator[ProtocolEntry]:
        return iter(sorted(self._entries.values(), key=lambda entry: entry.protocol))

    def get(self, protocol: int) -> ProtocolEntry | None:
        return self._entries.get(protocol)

    def __getitem__(self, protocol: int) -> ProtocolEntry:
        """The entry of ``protocol``; UnsupportedError when gpchannel does not implement it."""
        entry = self._entries.get(protocol)
        if entry is None:
            raise UnsupportedError(f"gpchannel does not implement {protocol_name(protocol)}")
        return entry

    def initiation(self, protocol: int) -> Initiation | None:
        """How ``protocol`` opens its sessions; None when it is not registered."""
        entry = self._entries.get(protocol)
        return entry.initiation if entry is not None else None

    def explicit(self, protocol: int) -> ExplicitProtocol | None:
        """The entry of ``protocol`` when it is initiated with INITIALIZE UPDATE, else None."""
        entry = self._entries.get(protocol)
        return entry if isinstance(entry, ExplicitProtocol) else None

    def parse_initialize_update(self, data: bytes) -> InitializeUpdateResponse:
        """Parse an INITIALIZE UPDATE response with the format of the protocol in its byte 11; DecodeError when
        it is too short, of no registered explicit protocol, or malformed (GP 2.3.1 E.5.1, Amendment D 7.1.1)."""
        entry = self.explicit(data[11]) if len(data) >= 12 else None
        return entry.parse(data) if entry is not None else InitializeUpdateResponse.from_bytes(data)

    def by_initiation(self) -> Mapping[Initiation, tuple[str, ...]]:
        """The names of the registered protocols by kind of initiation (for messages and documentation)."""
        out: dict[Initiation, list[str]] = {kind: [] for kind in Initiation}
        for entry in self:
            out[entry.initiation].append(entry.name)
        return {kind: tuple(names) for kind, names in out.items()}


PROTOCOLS = ProtocolRegistry(
    (
        ExplicitProtocol(ScpProtocol.SCP01, Scp01Host, Scp01Card),
        ExplicitProtocol(
            ScpProtocol.SCP02, Scp02Host, Scp02Card, IParamSource.RECOGNITION_DATA, default_i=0x15
        ),  # GP 2.2.1 E.1.1: i=15 when the card does not say (the host checks are the same for 15 and 55)
        ExplicitProtocol(ScpProtocol.SCP03, Scp03Host, Scp03Card, IParamSource.CARD_RESPONSE, s16=True),
        SteppedProtocol(ScpProtocol.SCP10, Scp10Host, Scp10Card),
        SteppedProtocol(ScpProtocol.SCP11, Scp11Host, Scp11Card),  # Amendment F; beside SCP03 on a Security Domain
    )
)
"""The protocols gpchannel implements."""

register = PROTOCOLS.register
"""Add a protocol to :data:`PROTOCOLS` (see :meth:`ProtocolRegistry.register`)."""
