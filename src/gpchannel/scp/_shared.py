"""What the symmetric-key protocols SCP01, SCP02 and SCP03 share, on top of the base classes of
:mod:`gpchannel.scp.common` (which SCP10 uses too).

Host side (:class:`SymmetricHostChannel`): the constructor arguments (key set or :data:`KeyResolver`, host
challenge, KVN, AID, logical channel), INITIALIZE UPDATE (GP 2.3.1, 11.12; GP 2.1.1 D.4.1, GP 2.2.1 E.5.1,
Amendment D 7.1.1) and the checks of its response (status word, parsing, protocol, KVN), the key resolution, the
messages of a failed card authentication, the EXTERNAL AUTHENTICATE response (GP 2.3.1, 11.8) and the checks
``wrap`` makes before protecting a command. Each protocol keeps its cryptography in ``_authenticate_card``,
``external_authenticate``, ``wrap``, ``unwrap`` and ``encrypt_key``.

The checks raise what the protocol modules raised before they shared them (the same error classes, status words
and information in the messages) and terminate the session the same way (``_fail``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    DecodeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from gpchannel.scp.common import (
    ChannelState,
    HostChannel,
    InitializeUpdateResponse,
    KeyResolver,
    SecurityLevel,
    initialize_update_command,
)

__all__ = ["SymmetricHostChannel", "check_logical_channel"]


def check_logical_channel(channel: int) -> None:
    """ValueError unless ``channel`` is a logical channel number, 0 to 19 (ISO 7816-4, 5.4.1)."""
    if not 0 <= channel <= 19:
        raise ValueError(f"logical channel must be 0..19, got {channel}")


def _hex(data: bytes) -> str:
    return data.hex().upper()


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

    # -- the protocol steps -----------------------------------------------------------------------------------
    def initialize_update(self) -> CommandApdu:
        """``80 50 kvn 00 Lc host_challenge 00`` on the session's logical channel (GP 2.3.1, 11.12; the key
        identifier in P2 is 00)."""
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
            parsed = InitializeUpdateResponse.from_bytes(response.data)
        except DecodeError as exc:
            self._fail(exc)
        if parsed.protocol is not self.protocol:
            self._fail(
                RemoteProtocolError(f"the card answered with SCP{parsed.protocol:02X}, expected {self.protocol.name}")
            )
        self._check_card_parameters(parsed)
        if self.kvn and parsed.kvn != self.kvn:
            self._fail(RemoteProtocolError(f"the card answered with KVN {parsed.kvn:02X}, expected {self.kvn:02X}"))
        self._authenticate_card(parsed)
        self.state = ChannelState.CARD_AUTHENTICATED
        return parsed

    def receive_external_authenticate(self, response: ResponseApdu) -> None:
        """9000 with no data opens the session (GP 2.3.1, 11.8); anything else terminates it."""
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

    def _verify_card_cryptogram(self, expected: bytes, parsed: InitializeUpdateResponse, keys: StaticKeys) -> None:
        """AuthenticationError (and TERMINATED) unless the card cryptogram is ``expected``, naming what was tried
        (key diversification data, KVN, KCVs: never the keys)."""
        if not constant_time_equal(expected, parsed.card_cryptogram):
            self._fail(
                AuthenticationError(
                    "the card cryptogram did not verify: wrong keys or not the expected card "
                    f"(key diversification data {_hex(parsed.key_diversification_data)}, KVN {parsed.kvn:02X}, "
                    f"KCVs ENC/MAC/DEK tried {self._kcvs(keys)}); "
                    "do not retry blindly, cards block after failed authentications"
                )
            )

    def _verify_pseudo_random_challenge(
        self, expected: bytes, parsed: InitializeUpdateResponse, keys: StaticKeys
    ) -> None:
        """AuthenticationError (and TERMINATED) unless the pseudo-random card challenge is ``expected`` (SCP02
        E.4.2.3, SCP03 6.2.2.1), naming the sequence counter, the AID and what was tried."""
        if not constant_time_equal(expected, parsed.card_challenge):
            self._fail(
                AuthenticationError(
                    f"the pseudo-random card challenge did not verify (sequence counter "
                    f"{_hex(parsed.sequence_counter or b'')}, AID {_hex(self.aid)}, key diversification data "
                    f"{_hex(parsed.key_diversification_data)}, KCVs ENC/MAC/DEK {self._kcvs(keys)})"
                )
            )

    @staticmethod
    def _kcvs(keys: StaticKeys) -> str:
        return "/".join(_hex(kcv) for kcv in keys.kcvs())

    def _check_plain_command(self, command: CommandApdu) -> None:
        """LocalProtocolError unless ``command`` is on the session's logical channel and has no secure messaging
        indication yet (ISO 7816-4, 5.4.1)."""
        if command.channel != self.channel:
            raise LocalProtocolError(f"command for logical channel {command.channel}; the session is on {self.channel}")
        if cla_has_secure_messaging(command.cla):
            raise LocalProtocolError(f"CLA {command.cla:02X} already indicates secure messaging")
