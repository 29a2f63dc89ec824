"""What the symmetric-key protocols SCP01, SCP02 and SCP03 share, on top of the base classes of
:mod:`gpchannel.scp.common` (which SCP10 uses too): their initiation is INITIALIZE UPDATE then EXTERNAL
AUTHENTICATE (:data:`gpchannel.scp.registry.Initiation.EXPLICIT`).

Host side (:class:`SymmetricHostChannel`): the constructor arguments (key set or :data:`KeyResolver`, host
challenge, KVN, AID, logical channel), INITIALIZE UPDATE (GP 2.1.1 D.4.1, GP 2.2.1 E.5.1, Amendment D 7.1.1) and
the checks of its response (status word, parsing, protocol, KVN), the key resolution, the messages of a failed
card authentication, the EXTERNAL AUTHENTICATE response (GP 2.1.1 D.4.2, GP 2.2.1 E.5.2, Amendment D 7.1.2) and
the checks ``wrap`` makes before protecting a command. Each protocol keeps its cryptography in
``_authenticate_card``, ``external_authenticate``, ``wrap``, ``unwrap`` and ``encrypt_key``.

Card side (:class:`SymmetricCardChannel`): the session attributes, the restart of a session by INITIALIZE UPDATE,
the checks of the INITIALIZE UPDATE command (INS, KVN in P1: 6A88, P2, host challenge length: 6700), the card
challenge from the injected random source, the checks of EXTERNAL AUTHENTICATE (INS, secure messaging bit and,
for SCP02 and SCP03, P2 and data length) and the verification of its C-MAC (6982) and host cryptogram (6300).

The checks raise what the protocol modules raised before they shared them (the same error classes, status words
and information in the messages) and terminate the session the same way (``_fail``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Generic, Protocol, TypeVar

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    DecodeError,
    IncorrectP1P2,
    InsNotSupported,
    LocalProtocolError,
    ReferencedDataNotFound,
    RemoteProtocolError,
    SecurityNotSatisfied,
    WrongLength,
)
from gpchannel.scp.common import (
    INS_EXTERNAL_AUTHENTICATE,
    INS_INITIALIZE_UPDATE,
    CardChannel,
    ChannelState,
    HostChannel,
    InitializeUpdateResponse,
    KeyResolver,
    RandomSource,
    SecurityLevel,
    initialize_update_command,
    protocol_name,
)

__all__ = [
    "SW_HOST_CRYPTOGRAM",
    "SymmetricCardChannel",
    "SymmetricHostChannel",
    "check_key_diversification_data",
    "check_logical_channel",
]

SW_HOST_CRYPTOGRAM = 0x6300
"""EXTERNAL AUTHENTICATE: "Authentication of host cryptogram failed" (GP 2.1.1 Table D-9, GP 2.2.1 Table E-12;
Amendment D 7.1.2 refers to GP 2.3.1 Table D-9)."""

SessionKeysT = TypeVar("SessionKeysT")


class _KeyCheckValues(Protocol):
    """What the failure messages show of a key set (StaticKeys, or SCP03 key handles in a token)."""

    def kcvs(self) -> tuple[bytes, bytes, bytes]: ...


def check_logical_channel(channel: int) -> None:
    """ValueError unless ``channel`` is a logical channel number, 0 to 19 (ISO 7816-4, 5.4.1)."""
    if not 0 <= channel <= 19:
        raise ValueError(f"logical channel must be 0..19, got {channel}")


def check_key_diversification_data(key_diversification_data: bytes) -> None:
    """ValueError unless the key diversification data are the 10 bytes INITIALIZE UPDATE answers first."""
    if len(key_diversification_data) != 10:
        raise ValueError(f"key diversification data is 10 bytes, got {len(key_diversification_data)}")


class SymmetricHostChannel(HostChannel):
    """The host side that SCP01, SCP02 and SCP03 share (see the module docstring).

    ``keys`` is a key set or a :data:`KeyResolver` called with the parsed INITIALIZE UPDATE response. ``kvn`` 0
    lets the card choose; otherwise the card's KVN must match. ``aid`` (5 to 16 bytes, or empty) is checked
    unless the protocol does not use it (``_validates_aid``). Subclasses check their own arguments (level, host
    challenge, i parameter, keys) around this constructor, which checks KVN, AID and logical channel in that order.
    """

    _validates_aid: ClassVar[bool] = True

    def __init__(
        self,
        keys: StaticKeys | KeyResolver,
        *,
        level: SecurityLevel,
        host_challenge: bytes,
        kvn: int,
        aid: bytes,
        channel: int,
    ) -> None:
        if not 0 <= kvn <= 0xFF:
            raise ValueError(f"kvn must be a byte, got {kvn}")
        if self._validates_aid and aid and not 5 <= len(aid) <= 16:
            raise ValueError(f"the AID must be 5 to 16 bytes, got {len(aid)}")
        check_logical_channel(channel)
        super().__init__(level, channel)
        self._keys = keys
        self.host_challenge = host_challenge
        self.kvn = kvn
        self.aid = aid

    # -- hooks ------------------------------------------------------------------------------------------------
    @staticmethod
    def parse_initialize_update(data: bytes) -> InitializeUpdateResponse:
        """The INITIALIZE UPDATE response in this protocol's format: GP 2.1.1 D.4.1, GP 2.2.1 E.5.1, Amendment D
        7.1.1 (a protocol with another format overrides it, and gives the same function as its registry entry's
        ``parse``)."""
        return InitializeUpdateResponse.from_bytes(data)

    def _check_initiation(self) -> None:
        """Raise LocalProtocolError when the session cannot start with INITIALIZE UPDATE (SCP02 implicit)."""

    def _check_card_parameters(self, parsed: InitializeUpdateResponse) -> None:
        """Check what the card announced besides protocol and KVN (SCP03: its i parameter); ``_fail`` if wrong."""

    @abstractmethod
    def _authenticate_card(self, parsed: InitializeUpdateResponse) -> None:
        """Resolve the keys, derive the session keys, verify the card (``_verify_card_cryptogram``) and keep the
        session; ``_fail`` on any error. The channel becomes CARD_AUTHENTICATED when this returns."""

    def _on_open(self) -> None:
        """Start the session's secure messaging state once EXTERNAL AUTHENTICATE succeeded."""

    @abstractmethod
    def external_authenticate(self) -> CommandApdu:
        """The C-MACed EXTERNAL AUTHENTICATE with the host cryptogram (GP 2.1.1 D.4.2, GP 2.2.1 E.5.2, Amendment D
        7.1.2), once the card is authenticated."""

    # -- the protocol steps -----------------------------------------------------------------------------------
    def initialize_update(self) -> CommandApdu:
        """``80 50 kvn 00 Lc host_challenge 00`` on the session's logical channel (GP 2.1.1 D.4.1, GP 2.2.1
        E.5.1, Amendment D 7.1.1; the key identifier in P2 is 00)."""
        self._require(ChannelState.IDLE)
        self._check_initiation()
        return initialize_update_command(self.host_challenge, self.kvn, 0, self.channel)

    def receive_initialize_update(self, response: ResponseApdu) -> InitializeUpdateResponse:
        """Check and parse the card's answer (GP 2.1.1 Table D-5, GP 2.2.1 Table E-8, Amendment D Table 7-2),
        derive the session keys and verify the card cryptogram; AuthenticationError (and TERMINATED) when it
        does not verify, before any EXTERNAL AUTHENTICATE exists."""
        self._require(ChannelState.IDLE)
        self._check_initiation()
        if response.sw != 0x9000:
            hint = " (card locked?)" if response.sw in (0x6982, 0x6983) else ""
            self._fail(CardStatusError(response.sw, f"INITIALIZE UPDATE refused{hint}", response.data))
        try:
            parsed = self.parse_initialize_update(response.data)
        except DecodeError as exc:
            self._fail(exc)
        return self.accept_initialize_update(parsed)

    def accept_initialize_update(self, parsed: InitializeUpdateResponse) -> InitializeUpdateResponse:
        """:meth:`receive_initialize_update` for a response already checked (9000) and parsed, as a session that
        detected the protocol from it has it: the protocol, the card's parameters and KVN are checked, the
        session keys derived and the card cryptogram verified; ``parsed`` is returned."""
        self._require(ChannelState.IDLE)
        self._check_initiation()
        if parsed.protocol != self.protocol:
            self._fail(
                RemoteProtocolError(
                    f"the card answered with SCP{parsed.protocol:02X}, expected {protocol_name(self.protocol)}"
                )
            )
        self._check_card_parameters(parsed)
        if self.kvn and parsed.kvn != self.kvn:
            self._fail(RemoteProtocolError(f"the card answered with KVN {parsed.kvn:02X}, expected {self.kvn:02X}"))
        self._authenticate_card(parsed)
        self.state = ChannelState.CARD_AUTHENTICATED
        return parsed

    def receive_external_authenticate(self, response: ResponseApdu) -> None:
        """9000 with no data opens the session (GP 2.1.1 D.4.2, GP 2.2.1 E.5.2, Amendment D 7.1.2); anything else
        terminates it."""
        self._require(ChannelState.EXTERNAL_AUTHENTICATE_SENT)
        if response.sw != 0x9000:
            self._fail(CardStatusError(response.sw, "EXTERNAL AUTHENTICATE refused", response.data))
        if response.data:
            self._fail(RemoteProtocolError(f"EXTERNAL AUTHENTICATE answered {len(response.data)} data bytes"))
        self._on_open()
        self.state = ChannelState.OPEN

    # -- helpers for the protocols ----------------------------------------------------------------------------
    def _resolve_keys(self, parsed: InitializeUpdateResponse) -> StaticKeys:
        """The key set given, or the one the resolver picks for this card (exceptions pass through)."""
        return self._keys if isinstance(self._keys, StaticKeys) else self._keys(parsed)

    def _verify_card_cryptogram(self, expected: bytes, parsed: InitializeUpdateResponse, keys: _KeyCheckValues) -> None:
        """AuthenticationError (and TERMINATED) unless the card cryptogram is ``expected``, naming what was tried
        (key diversification data, KVN, KCVs: never the keys)."""
        if not constant_time_equal(expected, parsed.card_cryptogram):
            self._fail(
                AuthenticationError(
                    "the card cryptogram did not verify: wrong keys or not the expected card "
                    f"(key diversification data {parsed.key_diversification_data.hex().upper()}, KVN {parsed.kvn:02X}, "
                    f"KCVs ENC/MAC/DEK tried {self._kcvs(keys)}); "
                    "do not retry blindly, cards block after failed authentications"
                )
            )

    def _verify_pseudo_random_challenge(
        self, expected: bytes, parsed: InitializeUpdateResponse, keys: _KeyCheckValues
    ) -> None:
        """AuthenticationError (and TERMINATED) unless the pseudo-random card challenge is ``expected`` (SCP02
        E.4.2.3, SCP03 6.2.2.1), naming the sequence counter, the AID and what was tried."""
        if not constant_time_equal(expected, parsed.card_challenge):
            self._fail(
                AuthenticationError(
                    f"the pseudo-random card challenge did not verify (sequence counter "
                    f"{(parsed.sequence_counter or b'').hex().upper()}, AID {self.aid.hex().upper()}, "
                    f"key diversification data "
                    f"{parsed.key_diversification_data.hex().upper()}, KCVs ENC/MAC/DEK {self._kcvs(keys)})"
                )
            )

    @staticmethod
    def _kcvs(keys: _KeyCheckValues) -> str:
        return "/".join(kcv.hex().upper() for kcv in keys.kcvs())

    def _check_plain_command(self, command: CommandApdu) -> None:
        """LocalProtocolError unless ``command`` is on the session's logical channel and has no secure messaging
        indication yet (ISO 7816-4, 5.4.1)."""
        if command.channel != self.channel:
            raise LocalProtocolError(f"command for logical channel {command.channel}; the session is on {self.channel}")
        if cla_has_secure_messaging(command.cla):
            raise LocalProtocolError(f"CLA {command.cla:02X} already indicates secure messaging")


class SymmetricCardChannel(CardChannel, Generic[SessionKeysT]):
    """The card side that SCP01, SCP02 and SCP03 share (see the module docstring), with the session keys of
    type ``SessionKeysT`` once INITIALIZE UPDATE has been answered.

    Subclasses check their own arguments (i parameter, keys, key diversification data with
    :func:`check_key_diversification_data`, sequence counter, AID) before calling this constructor, which checks
    the logical channel last, as they always did.
    """

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i_param: int,
        key_diversification_data: bytes,
        sequence_counter: int,
        random: RandomSource,
        aid: bytes,
        channel: int,
    ) -> None:
        check_logical_channel(channel)
        super().__init__(channel)
        self._keys = keys
        self.i_param = i_param
        self.key_diversification_data = key_diversification_data
        self._sequence_counter = sequence_counter
        self._random = random
        self.aid = aid
        self._session_keys: SessionKeysT | None = None
        self._host_challenge = b""
        self._card_challenge = b""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(state={self.state.value}, i={self.i_param:02X}, level={self.level:02X})"

    @property
    def sequence_counter(self) -> int:
        """The key set's sequence counter as the Security Domain must now persist it (see the class docstring)."""
        return self._sequence_counter

    def _keys_or_fail(self) -> SessionKeysT:
        if self._session_keys is None:
            self._fail(SecurityNotSatisfied("no session keys"))
        return self._session_keys

    # -- INITIALIZE UPDATE ------------------------------------------------------------------------------------
    def _restart(self) -> None:
        """A new INITIALIZE UPDATE ends any session in progress (GP 2.3.1, 10.2.3); refused (6982) once the
        session was terminated."""
        if self.state is ChannelState.TERMINATED:
            raise SecurityNotSatisfied("the secure channel was terminated")
        self.state, self.level, self._session_keys = ChannelState.IDLE, SecurityLevel.NONE, None

    def _check_initialize_update(self, command: CommandApdu, challenge_length: int) -> None:
        """INS 50 (else 6D00), P1 and P2 (:meth:`_check_key_reference`), a host challenge of
        ``challenge_length`` bytes (else 6700); every failure terminates the session."""
        if command.ins != INS_INITIALIZE_UPDATE:
            self._fail(InsNotSupported(f"expected INITIALIZE UPDATE (50), got INS {command.ins:02X}"))
        self._check_key_reference(command)
        if len(command.data) != challenge_length:
            self._fail(WrongLength(f"the host challenge must be {challenge_length} bytes, got {len(command.data)}"))

    def _check_key_reference(self, command: CommandApdu) -> None:
        """KVN (P1) 00 or the key set's, else 6A88; P2 00, else 6A86 (GP 2.2.1 E.5.1, Amendment D 7.1.1)."""
        if command.p1 not in (0, self._keys.kvn):
            self._fail(ReferencedDataNotFound(f"no key set with KVN {command.p1:02X}"))
        if command.p2 != 0:
            self._fail(
                IncorrectP1P2(
                    f"INITIALIZE UPDATE P2 must be 00 for {protocol_name(self.protocol)}, got {command.p2:02X}"
                )
            )

    def _random_challenge(self, length: int) -> bytes:
        """A card challenge of ``length`` bytes from the injected random source (ValueError if it gives less)."""
        challenge = self._random(length)
        if len(challenge) != length:
            raise ValueError(f"the random source returned {len(challenge)} bytes, expected {length}")
        return challenge

    def _initialized(self, session_keys: SessionKeysT, host_challenge: bytes, card_challenge: bytes) -> bytes:
        """Keep the session's keys and challenges, move to INITIALIZED and return the start of the response:
        key diversification data, KVN and protocol (GP 2.1.1 Table D-5, GP 2.2.1 Table E-8, Amendment D
        Table 7-2)."""
        self._session_keys = session_keys
        self._host_challenge, self._card_challenge = host_challenge, card_challenge
        self.state = ChannelState.INITIALIZED
        return self.key_diversification_data + bytes((self._keys.kvn, self.protocol))

    # -- EXTERNAL AUTHENTICATE --------------------------------------------------------------------------------
    def _check_external_authenticate(self, command: CommandApdu, data_length: int | None = None) -> SessionKeysT:
        """The session keys, after checking the state (INITIALIZED), INS 82 (else 6D00) and the secure messaging
        bit (C-MAC required: else 6982); with ``data_length``, P2 00 (else 6A86) and data of that length (else
        6700) too. Every failure terminates the session."""
        self._require(ChannelState.INITIALIZED)
        keys = self._keys_or_fail()
        if command.ins != INS_EXTERNAL_AUTHENTICATE:
            self._fail(InsNotSupported(f"expected EXTERNAL AUTHENTICATE (82), got INS {command.ins:02X}"))
        if not cla_has_secure_messaging(command.cla):
            self._fail(SecurityNotSatisfied("EXTERNAL AUTHENTICATE must be C-MACed (CLA 84..87)"))
        if data_length is not None:
            if command.p2 != 0:
                self._fail(IncorrectP1P2(f"EXTERNAL AUTHENTICATE P2 must be 00, got {command.p2:02X}"))
            if len(command.data) != data_length:
                self._fail(
                    WrongLength(f"EXTERNAL AUTHENTICATE data must be {data_length} bytes, got {len(command.data)}")
                )
        return keys

    def _verify_host(self, expected_mac: bytes, mac: bytes, expected_cryptogram: bytes, cryptogram: bytes) -> None:
        """The C-MAC of EXTERNAL AUTHENTICATE (6982), then the host cryptogram (6300, :data:`SW_HOST_CRYPTOGRAM`),
        both compared in constant time; either failure terminates the session."""
        if not constant_time_equal(expected_mac, mac):
            self._fail(SecurityNotSatisfied("the C-MAC of EXTERNAL AUTHENTICATE did not verify"))
        if not constant_time_equal(expected_cryptogram, cryptogram):
            self._fail(SecurityNotSatisfied("the host cryptogram did not verify", sw=SW_HOST_CRYPTOGRAM))

    def _open(self, level: SecurityLevel) -> ResponseApdu:
        """EXTERNAL AUTHENTICATE succeeded: the session is OPEN at ``level``; the (empty) 9000 response."""
        self.level = level
        self.state = ChannelState.OPEN
        return ResponseApdu()
