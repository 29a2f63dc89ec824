"""What every secure channel protocol shares: security levels, states, the INITIALIZE UPDATE response of the
symmetric protocols, and the host and card base classes that own the session life cycle.

Theory of operation of the symmetric protocols (GP 2.3.1, 10.2 and 10.3; design.md, section 2); SCP10's steps are
in :mod:`gpchannel.scp.scp10_host` and :mod:`gpchannel.scp.scp10_card`:

Host side (the off-card entity)::

    IDLE --receive_initialize_update(ok)--> CARD_AUTHENTICATED
         --external_authenticate()--------> EXTERNAL_AUTHENTICATE_SENT
         --receive_external_authenticate(9000)--> OPEN  (wrap / unwrap allowed)
    any error, or close() --> TERMINATED (every later call raises ChannelClosedError)

The host checks the card cryptogram in ``receive_initialize_update`` and raises ``AuthenticationError`` before
an EXTERNAL AUTHENTICATE can be built: cards count failed EXTERNAL AUTHENTICATEs, not INITIALIZE UPDATEs.

Card side::

    IDLE --initialize_update()--> INITIALIZED --external_authenticate(ok)--> OPEN
    any MAC / cryptogram / sequence error, or terminate() --> TERMINATED

On the card, every security failure raises a ``CardError`` (``SecurityNotSatisfied``, 6982, for MAC and
cryptogram errors) after moving the session to TERMINATED; the dispatcher turns the error into the status word.
The one exception is SCP02 with implicit initiation, whose session is aborted back to IDLE (GP 2.2.1 E.1.6): the
next command with secure messaging attempts a new session there.

The protocol classes implement the protocol steps and ``wrap`` / ``unwrap``; the base classes here and in
:mod:`gpchannel.scp.symmetric` own state checks and termination, so no protocol can forget them.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, NoReturn

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel, cla_has_secure_messaging
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    ChannelClosedError,
    DecodeError,
    GPChannelError,
    LocalProtocolError,
    SecurityNotSatisfied,
)

__all__ = [
    "C_DEC_BIT",
    "C_MAC_BIT",
    "R_ENC_BIT",
    "R_MAC_BIT",
    "CardChannel",
    "ChannelState",
    "HostChannel",
    "InitializeUpdateResponse",
    "KeyResolver",
    "RandomSource",
    "ScpProtocol",
    "SecurityLevel",
    "SteppedHostChannel",
    "Transmit",
    "initialize_update_command",
    "plain_cla",
    "protocol_name",
]

RandomSource = Callable[[int], bytes]
"""Returns n random bytes. Injected so that sessions can be replayed from vectors."""

KeyResolver = Callable[["InitializeUpdateResponse"], StaticKeys]
"""Host side: picks (or diversifies) the static keys once the INITIALIZE UPDATE response is known."""

INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82


class ScpProtocol(enum.IntEnum):
    """The protocols gpchannel implements, by their SCP identifier (GP 2.3.1, Table H-1 "SCP identifier"; byte 11
    of the INITIALIZE UPDATE response). Protocols are found through :mod:`gpchannel.scp.registry`, whose keys are
    plain identifiers (an ``int``), so that a protocol defined outside this package registers too."""

    SCP01 = 0x01
    SCP02 = 0x02
    SCP03 = 0x03
    SCP10 = 0x10
    SCP11 = 0x11


def protocol_name(protocol: int) -> str:
    """``SCP03`` for identifier 03: a protocol's name as GlobalPlatform writes it (``ScpProtocol.name`` too)."""
    return f"SCP{protocol:02X}"


class SecurityLevel(enum.IntFlag):
    """The security level of a session: P1 of EXTERNAL AUTHENTICATE (GP 2.3.1, Table 11-68; Amd D, Table 7-3)."""

    NONE = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20

    @classmethod
    def from_byte(cls, value: int) -> SecurityLevel:
        """Validate P1 of EXTERNAL AUTHENTICATE: C-DECRYPTION needs C-MAC, R-ENCRYPTION needs R-MAC and C-DEC."""
        if value & ~0x33:
            raise ValueError(f"security level {value:02X} has RFU bits set")
        level = cls(value)
        if SecurityLevel.C_DECRYPTION in level and SecurityLevel.C_MAC not in level:
            raise ValueError(f"security level {value:02X}: C-DECRYPTION requires C-MAC")
        if SecurityLevel.R_ENCRYPTION in level and (
            SecurityLevel.R_MAC not in level or SecurityLevel.C_DECRYPTION not in level
        ):
            raise ValueError(f"security level {value:02X}: R-ENCRYPTION requires R-MAC and C-DECRYPTION")
        return level


C_MAC_BIT = int(SecurityLevel.C_MAC)
C_DEC_BIT = int(SecurityLevel.C_DECRYPTION)
R_MAC_BIT = int(SecurityLevel.R_MAC)
R_ENC_BIT = int(SecurityLevel.R_ENCRYPTION)
"""The level bits as plain ints, for the per-command tests of secure messaging: ``int(level) & C_MAC_BIT`` is the
test ``SecurityLevel.C_MAC in level`` without the Flag machinery (a few times cheaper, on every wrap and unwrap)."""


class ChannelState(enum.Enum):
    IDLE = "idle"
    INITIALIZED = "initialized"  # card: INITIALIZE UPDATE answered
    CARD_AUTHENTICATED = "card-authenticated"  # host: card cryptogram verified
    EXTERNAL_AUTHENTICATE_SENT = "external-authenticate-sent"  # host
    OPEN = "open"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class InitializeUpdateResponse:
    """The INITIALIZE UPDATE response (GP 2.1.1 D.4.1, GP 2.2.1 E.5.1, Amendment D 7.1.1).

    ``i_param`` is only on the wire for SCP03 (None otherwise); ``sequence_counter`` is present for SCP02
    (2 bytes) and for SCP03 with the pseudo-random card challenge (3 bytes). For SCP01 and SCP02 the
    ``card_challenge`` is 8 and 6 bytes; for SCP03 8 (S8) or 16 (S16), as is the ``card_cryptogram``.
    """

    key_diversification_data: bytes
    kvn: int
    protocol: int
    """The SCP identifier (an :class:`ScpProtocol` for the protocols gpchannel implements)."""
    i_param: int | None
    card_challenge: bytes
    card_cryptogram: bytes
    sequence_counter: bytes | None = None

    @classmethod
    def from_bytes(cls, raw: bytes) -> InitializeUpdateResponse:
        """Parse and detect the protocol from byte 11 (the SCP identifier), as GP 2.3.1 E/F and GPPro do."""
        if len(raw) < 12:
            raise DecodeError(f"INITIALIZE UPDATE response is {len(raw)} bytes, expected at least 28", offset=0)
        kdd, kvn, scp = bytes(raw[:10]), raw[10], raw[11]
        if scp == ScpProtocol.SCP01:
            if len(raw) != 28:
                raise DecodeError(f"SCP01 INITIALIZE UPDATE response is {len(raw)} bytes, expected 28")
            return cls(kdd, kvn, ScpProtocol.SCP01, None, bytes(raw[12:20]), bytes(raw[20:28]))
        if scp == ScpProtocol.SCP02:
            if len(raw) != 28:
                raise DecodeError(f"SCP02 INITIALIZE UPDATE response is {len(raw)} bytes, expected 28")
            return cls(kdd, kvn, ScpProtocol.SCP02, None, bytes(raw[14:20]), bytes(raw[20:28]), bytes(raw[12:14]))
        if scp == ScpProtocol.SCP03:
            if len(raw) < 13:
                raise DecodeError("SCP03 INITIALIZE UPDATE response lacks the i parameter", offset=12)
            i = raw[12]
            size = 16 if i & 0x01 else 8
            expected = 13 + 2 * size + (3 if i & 0x10 else 0)
            if len(raw) != expected:
                raise DecodeError(
                    f"SCP03 (i={i:02X}) INITIALIZE UPDATE response is {len(raw)} bytes, expected {expected}"
                )
            counter = bytes(raw[13 + 2 * size :]) if i & 0x10 else None
            return cls(
                kdd,
                kvn,
                ScpProtocol.SCP03,
                i,
                bytes(raw[13 : 13 + size]),
                bytes(raw[13 + size : 13 + 2 * size]),
                counter,
            )
        raise DecodeError(f"unknown secure channel protocol identifier {scp:02X} in byte 11", offset=11)

    def to_bytes(self) -> bytes:
        head = self.key_diversification_data + bytes((self.kvn, self.protocol))
        if self.protocol is ScpProtocol.SCP02:
            return head + (self.sequence_counter or b"") + self.card_challenge + self.card_cryptogram
        if self.protocol is ScpProtocol.SCP03:
            assert self.i_param is not None
            return (
                head
                + bytes((self.i_param,))
                + self.card_challenge
                + self.card_cryptogram
                + (self.sequence_counter or b"")
            )
        return head + self.card_challenge + self.card_cryptogram


def initialize_update_command(host_challenge: bytes, kvn: int = 0, key_id: int = 0, channel: int = 0) -> CommandApdu:
    """INITIALIZE UPDATE ``80 50 kvn key_id Lc host_challenge 00`` (GP 2.1.1 D.4.1, GP 2.2.1 E.5.1, Amd D 7.1.1)."""
    return CommandApdu(cla_for_channel(0x80, channel), INS_INITIALIZE_UPDATE, kvn, key_id, host_challenge, le=256)


def plain_cla(cla: int) -> int:
    """The CLA without the secure messaging indication (class and logical channel kept): the command as the
    application sees it (GP 2.3.1, 11.1.4; ISO 7816-4, 5.4.1)."""
    if not cla_has_secure_messaging(cla):
        return cla
    return cla & ~(0x20 if cla & 0x40 else 0x04)


class HostChannel(ABC):
    """The off-card side of one secure channel session: what every protocol shares, the life cycle and the secure
    messaging of an open session (GP 2.3.1, 10.2). How the session opens is the protocol's: INITIALIZE UPDATE and
    EXTERNAL AUTHENTICATE for the symmetric protocols (:class:`gpchannel.scp.symmetric.SymmetricHostChannel`), a
    step driver for the asymmetric ones (:class:`SteppedHostChannel`); :mod:`gpchannel.scp.registry` says which.
    """

    protocol: ClassVar[int]

    def __init__(self, level: SecurityLevel, channel: int = 0) -> None:
        self.level = level
        self.channel = channel
        self.state = ChannelState.IDLE

    # -- life cycle -------------------------------------------------------------------------------------------
    def _require(self, *states: ChannelState) -> None:
        if self.state is ChannelState.TERMINATED:
            raise ChannelClosedError("the secure channel was terminated; open a new session")
        if self.state not in states:
            names = " or ".join(s.value for s in states)
            raise LocalProtocolError(f"this call needs the channel {names}; it is {self.state.value}")

    def _fail(self, error: GPChannelError) -> NoReturn:
        self.state = ChannelState.TERMINATED
        raise error

    def close(self) -> None:
        """End the session on this side (GP 2.3.1, 10.2.3); further use raises ChannelClosedError."""
        self.state = ChannelState.TERMINATED

    @property
    def is_open(self) -> bool:
        return self.state is ChannelState.OPEN

    # -- what every protocol does once the session is open --------------------------------------------------
    @abstractmethod
    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect a command at the session's security level."""

    @abstractmethod
    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """Verify (R-MAC) and decrypt (R-ENC) the response to the last wrapped command."""

    @abstractmethod
    def encrypt_key(self, key: bytes) -> bytes:
        """Encrypt key material with the DEK for PUT KEY / STORE DATA (the protocol's sensitive-data rule)."""


Transmit = Callable[[CommandApdu], ResponseApdu]
"""Carries one command to the card and returns its answer (a session's plain transmit, or a card in memory)."""


class SteppedHostChannel(HostChannel):
    """A host channel whose initiation is a sequence of commands the protocol drives itself (SCP10: GP 2.2.1,
    F.1.2 and F.4), rather than INITIALIZE UPDATE and EXTERNAL AUTHENTICATE."""

    @abstractmethod
    def run(self, transmit: Transmit) -> None:
        """Drive the whole initiation through ``transmit``; the channel is OPEN when this returns. Raises the
        card's CardStatusError, AuthenticationError or LocalProtocolError, the channel then TERMINATED."""


class CardChannel(ABC):
    """The card side of one secure channel session, created by a Security Domain with the key set it chose.

    ``sequence_counter`` is the value the Security Domain must persist after each call (it changes in
    INITIALIZE UPDATE for SCP03, and on a successful opening for SCP02).
    """

    protocol: ClassVar[int]

    def __init__(self, channel: int = 0) -> None:
        self.channel = channel
        self.state = ChannelState.IDLE
        self.level = SecurityLevel.NONE

    def _require(self, *states: ChannelState) -> None:
        if self.state is ChannelState.TERMINATED:
            raise SecurityNotSatisfied("the secure channel was terminated")
        if self.state not in states:
            raise SecurityNotSatisfied(f"no secure channel in the needed state (it is {self.state.value})")

    def _fail(self, error: GPChannelError) -> NoReturn:
        self.state = ChannelState.TERMINATED
        self.level = SecurityLevel.NONE
        raise error

    def terminate(self) -> None:
        """End the session (reset, SELECT of another application, any error): GP 2.3.1, 10.2.3."""
        self.state = ChannelState.TERMINATED
        self.level = SecurityLevel.NONE

    @property
    def is_open(self) -> bool:
        return self.state is ChannelState.OPEN

    @property
    @abstractmethod
    def sequence_counter(self) -> int:
        """The key set's sequence counter as it must now be persisted."""

    @abstractmethod
    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        """Answer INITIALIZE UPDATE: derive session keys, return the card challenge and cryptogram."""

    @abstractmethod
    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """Verify the C-MAC and host cryptogram; open the channel at the requested level."""

    @abstractmethod
    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Verify and decrypt an incoming command; raises SecurityNotSatisfied (6982) and terminates on error.

        Returns the command as the application sees it (CLA secure-messaging bit cleared, MAC removed,
        data decrypted). Commands without the secure-messaging bit are refused when the level requires C-MAC.
        """

    @abstractmethod
    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """Protect the response to the last unwrapped command (R-MAC, R-ENC per the level)."""

    @abstractmethod
    def decrypt_key(self, data: bytes) -> bytes:
        """Decrypt key material sent under the DEK (PUT KEY / STORE DATA)."""
