"""SCP03, the off-card entity's side (GlobalPlatform Amendment D v1.1.1, 6.2 and 7.1; S16 from v1.2).

Theory of operation: see :mod:`gpchannel.scp.common` for the states and :mod:`gpchannel.scp.scp03` for the
cryptography. The host checks the card cryptogram (and, when it is given the AID, the pseudo-random card
challenge) in ``receive_initialize_update``, before any EXTERNAL AUTHENTICATE exists: cards count failed EXTERNAL
AUTHENTICATEs. ``wrap`` encrypts (C-DECRYPTION) then MACs every command; ``unwrap`` verifies the R-MAC and decrypts
(R-ENCRYPTION) the response to the last wrapped command. Every security failure terminates the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel, cla_with_secure_messaging
from gpchannel.crypto.block_engine import engine
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    DecodeError,
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
    UnsupportedError,
)
from gpchannel.scp.common import (
    C_DEC_BIT,
    C_MAC_BIT,
    INS_EXTERNAL_AUTHENTICATE,
    R_ENC_BIT,
    R_MAC_BIT,
    ChannelState,
    InitializeUpdateResponse,
    KeyResolver,
    ScpProtocol,
    SecurityLevel,
)
from gpchannel.scp.scp03 import (
    I_PSEUDO_RANDOM,
    Scp03KeyHandles,
    Scp03SessionKeys,
    allowed_levels,
    card_challenge,
    card_cryptogram,
    check_i_param,
    command_block,
    command_mac_input,
    compute_cmac,
    decrypt_counted_data,
    derive_session_keys,
    encrypt_counted_data,
    encrypt_sensitive_data,
    host_cryptogram,
    lc_field,
    mac_cla,
    mac_length,
    response_block,
)
from gpchannel.scp.symmetric import SymmetricHostChannel

__all__ = ["Scp03Host"]

_OPEN = ChannelState.OPEN
"""The states tested on every wrap and unwrap, as module constants (an Enum class attribute is a lookup each time)."""

_SHORT_MAX = 255
_EXTENDED_MAX = 65535
_VALID_LEVELS = frozenset(SecurityLevel(v) for v in (0x00, 0x01, 0x03, 0x11, 0x13, 0x33))


@dataclass(slots=True)
class _Session:
    """What a session knows once the card cryptogram verified. Keys stay out of ``repr``."""

    keys: StaticKeys | Scp03KeyHandles = field(repr=False)
    session_keys: Scp03SessionKeys = field(repr=False)
    i_param: int
    card_challenge: bytes
    chain: bytes = field(default=bytes(16), repr=False)
    counter: int = 0
    wrapped: bool = False


def _handles_only(parsed: InitializeUpdateResponse) -> StaticKeys:
    """The base class's resolver when the keys are token handles: never called (``_authenticate_card`` uses the
    handles)."""
    raise LocalProtocolError("this SCP03 session's keys are handles, not a key set")  # pragma: no cover


class Scp03Host(SymmetricHostChannel):
    """The host side of an SCP03 session (Amendment D v1.1.1; S16 when ``i_param`` has b1 set).

    ``keys`` is a key set, a :data:`KeyResolver` called with the parsed INITIALIZE UPDATE response (key
    diversification), or :class:`Scp03KeyHandles` (static keys in a PKCS#11 token: the session keys are derived
    and the DEK used there). ``host_challenge`` is 8 bytes (16 in S16 mode). ``i_param`` (optional) is the i the card
    must announce. ``kvn`` 0 lets the card choose; otherwise the card's KVN must match. ``aid``, when given, lets
    the host verify a pseudo-random card challenge (6.2.2.1).

    INITIALIZE UPDATE ``80 50 kvn 00 Lc host_challenge 00`` (GP 2.3.1 D.4.1, Amendment D 7.1.1), the checks of its
    response and the EXTERNAL AUTHENTICATE response (9000 opens the session) are those of
    :class:`SymmetricHostChannel`.
    """

    protocol = ScpProtocol.SCP03

    def __init__(
        self,
        keys: StaticKeys | KeyResolver | Scp03KeyHandles,
        *,
        level: SecurityLevel,
        host_challenge: bytes,
        i_param: int | None = None,
        kvn: int = 0,
        aid: bytes = b"",
        channel: int = 0,
    ) -> None:
        level = SecurityLevel(level)
        if level not in _VALID_LEVELS:
            raise ValueError(f"SCP03 security level must be 00, 01, 03, 11, 13 or 33 (Table 7-3), got {level:02X}")
        if len(host_challenge) not in (8, 16):
            raise ValueError(f"the host challenge is 8 bytes (16 in S16 mode), got {len(host_challenge)}")
        if i_param is not None:
            check_i_param(i_param)
            if mac_length(i_param) != len(host_challenge):
                raise ValueError(f"i={i_param:02X} needs a {mac_length(i_param)}-byte host challenge")
            if level not in allowed_levels(i_param):
                raise UnsupportedError(f"security level {level:02X} is not available with i={i_param:02X}")
        self._handles = keys if isinstance(keys, Scp03KeyHandles) else None
        resolver = _handles_only if isinstance(keys, Scp03KeyHandles) else keys
        super().__init__(resolver, level=level, host_challenge=host_challenge, kvn=kvn, aid=aid, channel=channel)
        self.i_param = i_param
        self._session: _Session | None = None

    def __repr__(self) -> str:
        return f"Scp03Host(state={self.state.value}, level={self.level:02X}, channel={self.channel})"

    @property
    def session_keys(self) -> Scp03SessionKeys | None:
        """The session keys once the card cryptogram verified (never shown in a repr)."""
        return self._session.session_keys if self._session else None

    # -- mutual authentication ---------------------------------------------------------------------------------
    def _check_card_parameters(self, parsed: InitializeUpdateResponse) -> None:
        """The i parameter the card announced (Table 7-2): supported, the expected one if the caller named one,
        matching the host challenge's length, and offering the session's security level (Table 5-1)."""
        assert parsed.i_param is not None  # always there in an SCP03 response (InitializeUpdateResponse)
        i = parsed.i_param
        try:
            check_i_param(i)
        except UnsupportedError as exc:
            self._fail(RemoteProtocolError(str(exc)))
        if self.i_param is not None and i != self.i_param:
            self._fail(RemoteProtocolError(f"the card uses i={i:02X}, expected i={self.i_param:02X}"))
        if mac_length(i) != len(self.host_challenge):
            self._fail(
                RemoteProtocolError(
                    f"the card uses i={i:02X} ({mac_length(i)}-byte challenges) but the host challenge is "
                    f"{len(self.host_challenge)} bytes"
                )
            )
        if self.level not in allowed_levels(i):
            self._fail(UnsupportedError(f"security level {self.level:02X} is not available with i={i:02X}"))

    def _authenticate_card(self, parsed: InitializeUpdateResponse) -> None:
        """Derive the session keys (6.2.1), verify the pseudo-random card challenge when the AID is known
        (6.2.2.1) and the card cryptogram (6.2.2.2)."""
        assert parsed.i_param is not None
        i = parsed.i_param
        keys = self._handles if self._handles is not None else self._resolve_keys(parsed)
        try:
            session_keys = derive_session_keys(keys, self.host_challenge + parsed.card_challenge)
        except UnsupportedError as exc:
            self._fail(exc)
        if self.aid and i & I_PSEUDO_RANDOM and parsed.sequence_counter is not None:
            seq = int.from_bytes(parsed.sequence_counter, "big")
            expected_challenge = card_challenge(keys.enc, seq, self.aid, mac_length(i))
            self._verify_pseudo_random_challenge(expected_challenge, parsed, keys)
        expected = card_cryptogram(session_keys.s_mac, self.host_challenge, parsed.card_challenge)
        self._verify_card_cryptogram(expected, parsed, keys)
        self._session = _Session(keys, session_keys, i, parsed.card_challenge)

    def external_authenticate(self) -> CommandApdu:
        """``84 82 level 00 Lc host_cryptogram C-MAC``, MACed with a zero chaining value (6.2.3, 7.1.2)."""
        self._require(ChannelState.CARD_AUTHENTICATED)
        s = self._session
        assert s is not None
        cryptogram = host_cryptogram(s.session_keys.s_mac, self.host_challenge, s.card_challenge)
        n = mac_length(s.i_param)
        header = CommandApdu(0x84, INS_EXTERNAL_AUTHENTICATE, int(self.level), 0x00)
        full = compute_cmac(s.session_keys.s_mac, command_mac_input(bytes(16), header, cryptogram, 2 * n, False))
        s.chain = full
        self.state = ChannelState.EXTERNAL_AUTHENTICATE_SENT
        return CommandApdu(
            cla_for_channel(0x84, self.channel),
            INS_EXTERNAL_AUTHENTICATE,
            int(self.level),
            0x00,
            cryptogram + full[:n],
        )

    def _on_open(self) -> None:
        """The encryption counter starts (6.2.6). No R-MAC on the EXTERNAL AUTHENTICATE response (6.2.5)."""
        assert self._session is not None
        self._session.counter = 0

    # -- secure messaging --------------------------------------------------------------------------------------
    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect ``command`` at the session's level (6.2.4, 6.2.6); LocalProtocolError if it cannot fit.

        The CLA keeps its class and logical channel and gains the secure messaging bit; the MAC is computed with
        channel 0. Le is kept, not MACed. With C-DECRYPTION, a command with data gets its data padded and
        encrypted; the encryption counter counts every command. An extended-length command stays extended (and
        its 3-byte Lc is what the MAC covers); a short one that would outgrow 255 data bytes is refused.
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        s = self._session
        assert s is not None
        self._check_plain_command(command)
        counter = s.counter + 1
        level = int(self.level)
        if not level & C_MAC_BIT:
            s.counter, s.wrapped = counter, True
            return command
        keys = s.session_keys
        data = command.data
        if level & C_DEC_BIT and data:
            data = encrypt_counted_data(keys.s_enc, command_block(counter), data)
        n = mac_length(s.i_param)
        le = command.le
        size = len(data) + n
        extended = command.extended or len(command.data) > _SHORT_MAX or (le is not None and le > 256)  # is_extended
        limit = _EXTENDED_MAX if extended else _SHORT_MAX
        if size > limit:
            raise LocalProtocolError(
                f"the wrapped command would carry {size} data bytes; at most {limit} fit a "
                f"{'n extended' if extended else ' short'} APDU"
            )
        cla = command.cla
        # Figure 6-1 (command_mac_input): chaining value || CLA' INS P1 P2 || Lc (the MAC included) || data.
        header = bytes((mac_cla(cla), command.ins, command.p1, command.p2))
        full = engine("aes", keys.s_mac).cmac(s.chain + header + lc_field(size, extended) + data)
        s.chain, s.counter, s.wrapped = full, counter, True
        return CommandApdu(
            cla_with_secure_messaging(cla), command.ins, command.p1, command.p2, data + full[:n], le, extended
        )

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """Verify the R-MAC (6.2.5) and decrypt R-ENCRYPTION (6.2.7) of the response to the last wrapped command.

        Error status words (all but 9000, 62xx, 63xx) carry no R-MAC and must carry no data.
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        s = self._session
        assert s is not None
        if not s.wrapped:
            raise LocalProtocolError("no command was wrapped in this session; nothing to unwrap")
        level = int(self.level)
        if not level & R_MAC_BIT:
            return response
        sw, data = response.sw, response.data
        if not (sw == 0x9000 or sw >> 8 in (0x62, 0x63)):  # is_success_sw: errors carry no R-MAC
            if data:
                self._fail(IntegrityError(f"status {sw:04X} came with data that no R-MAC protects"))
            return response
        n = mac_length(s.i_param)
        if len(data) < n:
            self._fail(IntegrityError(f"the response has {len(data)} data bytes; the R-MAC alone is {n}"))
        keys = s.session_keys
        body, rmac = data[:-n], data[-n:]
        expected = engine("aes", keys.s_rmac).cmac(s.chain + body + sw.to_bytes(2, "big"))[:n]
        if not constant_time_equal(expected, rmac):
            self._fail(IntegrityError("the R-MAC did not verify"))
        if level & R_ENC_BIT and body:
            try:
                body = decrypt_counted_data(keys.s_enc, response_block(s.counter), body)
            except DecodeError as exc:
                self._fail(IntegrityError(f"the encrypted response data is malformed: {exc}"))
        return ResponseApdu(body, sw)

    def encrypt_key(self, key: bytes) -> bytes:
        """Encrypt key material under the static Key-DEK, AES-CBC IV 0 (Amendment D, 6.2.8).

        16- and 32-byte keys are not padded; 24-byte keys are padded with ``80 00 00 00 00 00 00 00`` to 32 bytes.
        """
        self._require(ChannelState.CARD_AUTHENTICATED, ChannelState.EXTERNAL_AUTHENTICATE_SENT, ChannelState.OPEN)
        assert self._session is not None
        return encrypt_sensitive_data(self._session.keys.dek, key)
