"""SCP01, the off-card entity's side (GlobalPlatform Card Specification 2.1.1, Appendix D).

Theory of operation: see :mod:`gpchannel.scp.common` for the states and :mod:`gpchannel.scp.scp01` for the
cryptography. The host checks the card cryptogram in ``receive_initialize_update``, before any EXTERNAL
AUTHENTICATE exists (cards count failed EXTERNAL AUTHENTICATEs); ``wrap`` C-MACs (and with C-DECRYPTION encrypts)
every command; SCP01 has no response protection, so ``unwrap`` returns the response as it is. Every security
failure detected here terminates the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import (
    CommandApdu,
    ResponseApdu,
    cla_for_channel,
    cla_with_secure_messaging,
)
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    LocalProtocolError,
    UnsupportedError,
)
from gpchannel.scp.common import (
    INS_EXTERNAL_AUTHENTICATE,
    ChannelState,
    InitializeUpdateResponse,
    KeyResolver,
    ScpProtocol,
    SecurityLevel,
)
from gpchannel.scp.scp01 import (
    LEVELS,
    MAC_LENGTH,
    SHORT_MAX,
    Scp01SessionKeys,
    card_cryptogram,
    check_i_param,
    check_keys,
    command_mac,
    derive_session_keys,
    encrypt_command_data,
    encrypt_sensitive_data,
    host_cryptogram,
    next_icv,
)
from gpchannel.scp.symmetric import SymmetricHostChannel

__all__ = ["Scp01Host"]


@dataclass(slots=True)
class _HostSession:
    keys: StaticKeys = field(repr=False)
    session_keys: Scp01SessionKeys = field(repr=False)
    card_challenge: bytes
    last_mac: bytes = field(default=bytes(8), repr=False)
    wrapped: bool = False


class Scp01Host(SymmetricHostChannel):
    """The off-card side of an SCP01 session (GP 2.1.1, Appendix D).

    ``keys`` is a key set or a :data:`KeyResolver` called with the parsed INITIALIZE UPDATE response (key
    diversification). ``i_param`` says whether ICVs are encrypted (15) or not (05); the card does not announce it
    in SCP01, so ``None`` means 05, what most tools (GPPro among them) assume. ``kvn`` 0 lets the card choose;
    otherwise the card's KVN must match. P2 of INITIALIZE UPDATE (the key identifier, D.4.1.4) is 00. ``aid`` is
    accepted for symmetry with the other protocols and unused (nor checked).

    INITIALIZE UPDATE ``80 50 kvn 00 08 host_challenge 00`` (D.4.1) and the EXTERNAL AUTHENTICATE response (9000
    opens the session, anything else terminates it, D.4.2.7) are those of :class:`SymmetricHostChannel`.
    """

    protocol = ScpProtocol.SCP01
    _validates_aid = False

    def __init__(
        self,
        keys: StaticKeys | KeyResolver,
        *,
        level: SecurityLevel,
        host_challenge: bytes,
        i_param: int | None = None,
        kvn: int = 0,
        aid: bytes = b"",
        channel: int = 0,
    ) -> None:
        level = SecurityLevel(level)
        if level not in LEVELS:
            raise UnsupportedError(f"SCP01 security levels are 00, 01 and 03 (Table D-8), got {level:02X}")
        if len(host_challenge) != 8:
            raise ValueError(f"the SCP01 host challenge is 8 bytes, got {len(host_challenge)}")
        i_param = 0x05 if i_param is None else i_param
        check_i_param(i_param)
        if isinstance(keys, StaticKeys):
            check_keys(keys)
        super().__init__(keys, level=level, host_challenge=host_challenge, kvn=kvn, aid=aid, channel=channel)
        self.i_param = i_param
        self._session: _HostSession | None = None

    def __repr__(self) -> str:
        return f"Scp01Host(state={self.state.value}, i={self.i_param:02X}, level={self.level:02X})"

    @property
    def session_keys(self) -> Scp01SessionKeys | None:
        """S-ENC and S-MAC once the card cryptogram verified."""
        return self._session.session_keys if self._session else None

    def _open_session(self) -> _HostSession:
        assert self._session is not None
        return self._session

    def _authenticate_card(self, parsed: InitializeUpdateResponse) -> None:
        """Derive the session keys (D.3.1) and verify the card cryptogram (D.3.2.1) of the response (Table D-5)."""
        try:
            keys = self._resolve_keys(parsed)
            check_keys(keys)
        except (UnsupportedError, ValueError) as exc:
            self._fail(UnsupportedError(f"no usable SCP01 keys for this card: {exc}"))
        session_keys = derive_session_keys(keys, self.host_challenge, parsed.card_challenge)
        expected = card_cryptogram(session_keys.s_enc, self.host_challenge, parsed.card_challenge)
        self._verify_card_cryptogram(expected, parsed, keys)
        self._session = _HostSession(keys, session_keys, parsed.card_challenge)

    def external_authenticate(self) -> CommandApdu:
        """``84 82 level 00 10 host_cryptogram C-MAC``, the C-MAC with a zero ICV (D.4.2, D.3.3)."""
        self._require(ChannelState.CARD_AUTHENTICATED)
        s = self._open_session()
        cryptogram = host_cryptogram(s.session_keys.s_enc, self.host_challenge, s.card_challenge)
        header = CommandApdu(0x84, INS_EXTERNAL_AUTHENTICATE, int(self.level), 0x00)
        mac = command_mac(s.session_keys.s_mac, bytes(8), header, cryptogram)
        s.last_mac = mac
        self.state = ChannelState.EXTERNAL_AUTHENTICATE_SENT
        return header.with_changes(cla=cla_for_channel(0x84, self.channel), data=cryptogram + mac)

    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect ``command`` at the session's level (D.3.3, D.3.4); LocalProtocolError if it cannot be.

        The CLA keeps its class and logical channel and gains the secure messaging bit; Le is kept. At level 00
        the command is returned unchanged.
        """
        self._require(ChannelState.OPEN)
        s = self._open_session()
        self._check_plain_command(command)
        if SecurityLevel.C_MAC not in self.level:
            s.wrapped = True
            return command
        if command.is_extended:
            raise LocalProtocolError("SCP01 secures short APDUs only (5-byte header, D.3.3)")
        cla = cla_with_secure_messaging(command.cla)
        if cla == 0xFF:  # ISO 7816-3: CLA FF is reserved for PPS
            raise LocalProtocolError(f"CLA {command.cla:02X} with secure messaging would be FF, which is invalid")
        data = command.data
        size = len(data)
        if SecurityLevel.C_DECRYPTION in self.level and data:
            size = 1 + len(data) + (-(1 + len(data)) % 8)  # length byte and padding (D.3.4)
        if size + MAC_LENGTH > SHORT_MAX:
            raise LocalProtocolError(
                f"the wrapped command would carry {size + MAC_LENGTH} data bytes; at most {SHORT_MAX} fit a short APDU"
            )
        icv = next_icv(s.session_keys.s_mac, s.last_mac, self.i_param)
        mac = command_mac(s.session_keys.s_mac, icv, command, data)
        if SecurityLevel.C_DECRYPTION in self.level and data:
            data = encrypt_command_data(s.session_keys.s_enc, data)
        s.last_mac, s.wrapped = mac, True
        return command.with_changes(cla=cla, data=data + mac)

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """SCP01 has no response protection: the response to the last wrapped command is returned as is."""
        self._require(ChannelState.OPEN)
        if not self._open_session().wrapped:
            raise LocalProtocolError("no command was wrapped in this session; nothing to unwrap")
        return response

    def encrypt_key(self, key: bytes) -> bytes:
        """Encrypt key material under the static DEK, 3DES-ECB (D.3.5); LocalProtocolError if not blocks of 8."""
        self._require(ChannelState.CARD_AUTHENTICATED, ChannelState.EXTERNAL_AUTHENTICATE_SENT, ChannelState.OPEN)
        try:
            return encrypt_sensitive_data(self._open_session().keys.dek, key)
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from None
