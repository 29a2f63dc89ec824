"""SCP01: Secure Channel Protocol '01' (GlobalPlatform Card Specification 2.1.1, Appendix D).

Theory of operation (the states are those of :mod:`gpchannel.scp.common`):

- Three static double-length 3DES keys: ENC, MAC and DEK (D.2). Explicit initiation only (D.1.1), with
  i = 05 (ICV not encrypted) or i = 15 (each ICV but the first is 3DES-ECB encrypted with S-MAC, D.1.5).
- INITIALIZE UPDATE (D.4.1): ``80 50 KVN KeyId 08 host_challenge 00``; the card answers KDD(10) || KVN || 01 ||
  card_challenge(8) || card_cryptogram(8). Session keys S-ENC and S-MAC are 3DES-ECB(static key, derivation data)
  with derivation data = card_challenge[4..7] || host_challenge[0..3] || card_challenge[0..3] ||
  host_challenge[4..7] (D.3.1). The DEK is used as is.
- Cryptograms (D.3.2): full 3DES CBC-MAC with S-ENC, ICV zero, over host || card (card cryptogram) or
  card || host (host cryptogram), each followed by the padding block 80 00 .. 00.
- C-MAC (D.3.3): full 3DES CBC-MAC with S-MAC over the modified header (CLA with the secure messaging bit and
  logical channel 0, Lc + 8) and the clear data, padded 80 00..; Le is not covered. The ICV is zero for EXTERNAL
  AUTHENTICATE and the previous C-MAC afterwards (encrypted first when i = 15).
- C-DECRYPTION (D.3.4): MAC first, then 3DES-CBC with S-ENC and a zero IV over Lc(clear) || data, padded with
  80 00.. only when that is not already a multiple of 8. Commands without data are not encrypted.
- Security levels 00, 01 and 03 (Table D-8). There is no R-MAC: responses pass unchanged.
- Sensitive data (keys) are 3DES-ECB encrypted with the static DEK (D.3.5).

SCP01 defines a 5-byte header with a one-byte Lc (D.3.3), so only short APDUs can be secured; a command that would
outgrow 255 data bytes once wrapped is refused before any state changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import (
    CommandApdu,
    ResponseApdu,
    cla_for_channel,
    cla_has_secure_messaging,
    cla_with_secure_messaging,
)
from gpchannel.crypto.ciphers import (
    constant_time_equal,
    des3_cbc_decrypt,
    des3_cbc_encrypt,
    des3_cbc_mac,
    des3_ecb_decrypt,
    des3_ecb_encrypt,
)
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.padding import pad80
from gpchannel.errors import (
    AuthenticationError,
    CardStatusError,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    InsNotSupported,
    LocalProtocolError,
    ReferencedDataNotFound,
    RemoteProtocolError,
    SecurityNotSatisfied,
    UnsupportedError,
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
    ScpProtocol,
    SecurityLevel,
    initialize_update_command,
    plain_cla,
)

__all__ = [
    "I_PARAMS",
    "LEVELS",
    "Scp01Card",
    "Scp01Host",
    "Scp01SessionKeys",
    "card_cryptogram",
    "check_i_param",
    "check_keys",
    "command_mac",
    "decrypt_command_data",
    "derive_session_keys",
    "encrypt_command_data",
    "encrypt_sensitive_data",
    "host_cryptogram",
    "next_icv",
]

I_PARAMS = frozenset({0x05, 0x15})
"""The i parameters of SCP01 (D.1.1)."""

I_ICV_ENCRYPTION = 0x10

LEVELS = frozenset({SecurityLevel.NONE, SecurityLevel.C_MAC, SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION})
"""The security levels of SCP01 (Table D-8)."""

MAC_LENGTH = 8
SHORT_MAX = 255
_PAD_BLOCK = b"\x80" + bytes(7)


@dataclass(frozen=True, slots=True)
class Scp01SessionKeys:
    """S-ENC and S-MAC of one session (D.3.1); never shown in a repr."""

    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)


def check_i_param(i_param: int) -> None:
    """UnsupportedError unless ``i_param`` is 05 or 15 (D.1.1)."""
    if i_param not in I_PARAMS:
        raise UnsupportedError(f"SCP01 supports i=05 and i=15 (D.1.1), got i={i_param:02X}")


def check_keys(keys: StaticKeys) -> None:
    """UnsupportedError unless ``keys`` are double-length 3DES keys, as D.2 (Table D-1) requires."""
    if keys.key_type is not KeyType.DES3 or keys.key_length != 16 or len(keys.mac) != 16 or len(keys.dek) != 16:
        raise UnsupportedError(
            f"SCP01 needs 16-byte 3DES keys (D.2), got {keys.key_type.name} keys of {keys.key_length} bytes"
        )


def derive_session_keys(keys: StaticKeys, host_challenge: bytes, card_challenge: bytes) -> Scp01SessionKeys:
    """S-ENC and S-MAC from the static keys and both challenges (D.3.1, Figures D-3 to D-5)."""
    if len(host_challenge) != 8 or len(card_challenge) != 8:
        raise ValueError("SCP01 challenges are 8 bytes each")
    data = card_challenge[4:8] + host_challenge[0:4] + card_challenge[0:4] + host_challenge[4:8]
    return Scp01SessionKeys(des3_ecb_encrypt(keys.enc, data), des3_ecb_encrypt(keys.mac, data))


def card_cryptogram(s_enc: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The card cryptogram: full 3DES MAC over host || card || 80 00.. with S-ENC, ICV zero (D.3.2.1)."""
    return des3_cbc_mac(s_enc, host_challenge + card_challenge + _PAD_BLOCK)


def host_cryptogram(s_enc: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The host cryptogram: full 3DES MAC over card || host || 80 00.. with S-ENC, ICV zero (D.3.2.2)."""
    return des3_cbc_mac(s_enc, card_challenge + host_challenge + _PAD_BLOCK)


def next_icv(s_mac: bytes, previous_mac: bytes, i_param: int) -> bytes:
    """The ICV of the next C-MAC: the previous C-MAC, 3DES-ECB encrypted with S-MAC when i = 15 (D.3.3, D.1.5)."""
    if i_param & I_ICV_ENCRYPTION:
        return des3_ecb_encrypt(s_mac, previous_mac)
    return previous_mac


def command_mac(s_mac: bytes, icv: bytes, command: CommandApdu, clear_data: bytes) -> bytes:
    """The C-MAC of ``command`` carrying ``clear_data`` (D.3.3).

    Covered: CLA with the secure messaging bit and logical channel 0, INS, P1, P2, Lc = len(clear_data) + 8, and
    the clear data, padded 80 00..; Le is not covered.
    """
    lc = len(clear_data) + MAC_LENGTH
    if lc > SHORT_MAX:
        raise ValueError(f"a C-MACed SCP01 command carries at most {SHORT_MAX - MAC_LENGTH} clear data bytes")
    cla = cla_for_channel(cla_with_secure_messaging(command.cla), 0)
    header = bytes((cla, command.ins, command.p1, command.p2, lc))
    return des3_cbc_mac(s_mac, pad80(header + clear_data), icv)


def encrypt_command_data(s_enc: bytes, data: bytes) -> bytes:
    """3DES-CBC (S-ENC, IV zero) over len(data) || data, padded 80 00.. unless already a multiple of 8 (D.3.4)."""
    if not 0 < len(data) <= 0xFF:
        raise ValueError(f"SCP01 encrypts 1 to 255 data bytes, got {len(data)}")
    block = bytes((len(data),)) + data
    if len(block) % 8:
        block = pad80(block)
    return des3_cbc_encrypt(s_enc, block)


def decrypt_command_data(s_enc: bytes, data: bytes) -> bytes:
    """Inverse of :func:`encrypt_command_data`; DecodeError when the length byte or the padding is wrong."""
    if not data or len(data) % 8:
        raise DecodeError(f"encrypted SCP01 data is a non-empty multiple of 8 bytes, got {len(data)}")
    block = des3_cbc_decrypt(s_enc, data)
    n = block[0]
    if n == 0 or 1 + n > len(block):
        raise DecodeError(f"the clear-text length byte {n:02X} does not fit {len(block) - 1} bytes", offset=0)
    rest = block[1 + n :]
    expected = b"" if (1 + n) % 8 == 0 else pad80(block[: 1 + n])[1 + n :]
    if rest != expected:
        raise DecodeError("the padding after the clear-text data is not 80 00..", offset=1 + n)
    return block[1 : 1 + n]


def encrypt_sensitive_data(dek: bytes, data: bytes) -> bytes:
    """Key data under the static DEK, 3DES-ECB, no padding (D.3.5)."""
    if not data or len(data) % 8:
        raise ValueError(f"SCP01 sensitive data must be a non-empty multiple of 8 bytes, got {len(data)}")
    return des3_ecb_encrypt(dek, data)


@dataclass(slots=True)
class _HostSession:
    keys: StaticKeys = field(repr=False)
    session_keys: Scp01SessionKeys = field(repr=False)
    card_challenge: bytes
    last_mac: bytes = field(default=bytes(8), repr=False)
    wrapped: bool = False


class Scp01Host(HostChannel):
    """The off-card side of an SCP01 session (GP 2.1.1, Appendix D).

    ``keys`` is a key set or a :data:`KeyResolver` called with the parsed INITIALIZE UPDATE response (key
    diversification). ``i_param`` says whether ICVs are encrypted (15) or not (05); the card does not announce it
    in SCP01, so ``None`` means 05, what most tools (GPPro among them) assume. ``kvn`` 0 lets the card choose;
    otherwise the card's KVN must match. P2 of INITIALIZE UPDATE (the key identifier, D.4.1.4) is 00. ``aid`` is
    accepted for symmetry with the other protocols and unused.
    """

    protocol = ScpProtocol.SCP01

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
        if not 0 <= kvn <= 0xFF:
            raise ValueError(f"kvn must be a byte, got {kvn}")
        if not 0 <= channel <= 19:
            raise ValueError(f"logical channel must be 0..19, got {channel}")
        super().__init__(level, channel)
        self._keys = keys
        self.host_challenge = host_challenge
        self.i_param = i_param
        self.kvn = kvn
        self.aid = aid
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

    def initialize_update(self) -> CommandApdu:
        """``80 50 kvn 00 08 host_challenge 00`` on the session's logical channel (D.4.1)."""
        self._require(ChannelState.IDLE)
        return initialize_update_command(self.host_challenge, self.kvn, 0, self.channel)

    def receive_initialize_update(self, response: ResponseApdu) -> InitializeUpdateResponse:
        """Parse the response (Table D-5), derive the session keys and verify the card cryptogram (D.3.2.1)."""
        self._require(ChannelState.IDLE)
        if response.sw != 0x9000:
            hint = " (card locked?)" if response.sw in (0x6982, 0x6983) else ""
            self._fail(CardStatusError(response.sw, f"INITIALIZE UPDATE refused{hint}", response.data))
        try:
            parsed = InitializeUpdateResponse.from_bytes(response.data)
        except DecodeError as exc:
            self._fail(exc)
        if parsed.protocol is not ScpProtocol.SCP01:
            self._fail(RemoteProtocolError(f"the card answered with SCP{parsed.protocol:02X}, expected SCP01"))
        if self.kvn and parsed.kvn != self.kvn:
            self._fail(RemoteProtocolError(f"the card answered with KVN {parsed.kvn:02X}, expected {self.kvn:02X}"))
        try:
            keys = self._keys if isinstance(self._keys, StaticKeys) else self._keys(parsed)
            check_keys(keys)
        except (UnsupportedError, ValueError) as exc:
            self._fail(UnsupportedError(f"no usable SCP01 keys for this card: {exc}"))
        session_keys = derive_session_keys(keys, self.host_challenge, parsed.card_challenge)
        expected = card_cryptogram(session_keys.s_enc, self.host_challenge, parsed.card_challenge)
        if not constant_time_equal(expected, parsed.card_cryptogram):
            kcvs = "/".join(k.hex().upper() for k in keys.kcvs())
            self._fail(
                AuthenticationError(
                    "the card cryptogram did not verify: wrong keys or not the expected card (key diversification "
                    f"data {parsed.key_diversification_data.hex().upper()}, KVN {parsed.kvn:02X}, KCVs ENC/MAC/DEK "
                    f"tried {kcvs}); do not retry blindly, cards block after failed authentications"
                )
            )
        self._session = _HostSession(keys, session_keys, parsed.card_challenge)
        self.state = ChannelState.CARD_AUTHENTICATED
        return parsed

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

    def receive_external_authenticate(self, response: ResponseApdu) -> None:
        """9000 opens the session; anything else terminates it (D.4.2.7)."""
        self._require(ChannelState.EXTERNAL_AUTHENTICATE_SENT)
        if response.sw != 0x9000:
            self._fail(CardStatusError(response.sw, "EXTERNAL AUTHENTICATE refused", response.data))
        if response.data:
            self._fail(RemoteProtocolError(f"EXTERNAL AUTHENTICATE answered {len(response.data)} data bytes"))
        self.state = ChannelState.OPEN

    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect ``command`` at the session's level (D.3.3, D.3.4); LocalProtocolError if it cannot be.

        The CLA keeps its class and logical channel and gains the secure messaging bit; Le is kept. At level 00
        the command is returned unchanged.
        """
        self._require(ChannelState.OPEN)
        s = self._open_session()
        if command.channel != self.channel:
            raise LocalProtocolError(f"command for logical channel {command.channel}; the session is on {self.channel}")
        if cla_has_secure_messaging(command.cla):
            raise LocalProtocolError(f"CLA {command.cla:02X} already indicates secure messaging")
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


_SW_HOST_CRYPTOGRAM = 0x6300
"""EXTERNAL AUTHENTICATE: "Authentication of host cryptogram failed" (Table D-9)."""


class Scp01Card(CardChannel):
    """The card side of an SCP01 session (GP 2.1.1, Appendix D), created by the Security Domain per session.

    ``keys`` is the key set (16-byte 3DES keys), ``i_param`` 05 or 15, ``key_diversification_data`` the 10 bytes
    returned first in INITIALIZE UPDATE, ``random`` gives the 8-byte card challenge. SCP01 has no sequence
    counter: ``sequence_counter`` is kept unchanged for the Security Domain. ``aid`` is unused by SCP01.
    """

    protocol = ScpProtocol.SCP01

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i_param: int,
        key_diversification_data: bytes,
        sequence_counter: int,
        random: RandomSource,
        aid: bytes,
        channel: int = 0,
    ) -> None:
        check_i_param(i_param)
        check_keys(keys)
        if len(key_diversification_data) != 10:
            raise ValueError(f"key diversification data is 10 bytes, got {len(key_diversification_data)}")
        if not 0 <= channel <= 19:
            raise ValueError(f"logical channel must be 0..19, got {channel}")
        super().__init__(channel)
        self._keys = keys
        self.i_param = i_param
        self.key_diversification_data = key_diversification_data
        self._sequence_counter = sequence_counter
        self._random = random
        self.aid = aid
        self._session_keys: Scp01SessionKeys | None = None
        self._host_challenge = b""
        self._card_challenge = b""
        self._last_mac = bytes(8)
        self._unwrapped = False

    def __repr__(self) -> str:
        return f"Scp01Card(state={self.state.value}, i={self.i_param:02X}, level={self.level:02X})"

    @property
    def sequence_counter(self) -> int:
        """SCP01 has no sequence counter; the value given is returned unchanged."""
        return self._sequence_counter

    def _keys_or_fail(self) -> Scp01SessionKeys:
        if self._session_keys is None:
            self._fail(SecurityNotSatisfied("no session keys"))
        return self._session_keys

    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        """Answer INITIALIZE UPDATE (D.4.1): KVN (P1) 00 or the key set's and key identifier (P2) 00 or 01, else
        6A88; an 8-byte host challenge, else 6700. A new INITIALIZE UPDATE ends any session in progress."""
        if self.state is ChannelState.TERMINATED:
            raise SecurityNotSatisfied("the secure channel was terminated")
        self.state, self.level, self._session_keys = ChannelState.IDLE, SecurityLevel.NONE, None
        if command.ins != INS_INITIALIZE_UPDATE:
            self._fail(InsNotSupported(f"expected INITIALIZE UPDATE (50), got INS {command.ins:02X}"))
        if command.p1 not in (0, self._keys.kvn) or command.p2 not in (0, 1):
            self._fail(ReferencedDataNotFound(f"no key set with KVN {command.p1:02X}, key identifier {command.p2:02X}"))
        if len(command.data) != 8:
            self._fail(WrongLength(f"the host challenge must be 8 bytes, got {len(command.data)}"))
        challenge = self._random(8)
        if len(challenge) != 8:
            raise ValueError(f"the random source returned {len(challenge)} bytes, expected 8")
        keys = derive_session_keys(self._keys, command.data, challenge)
        cryptogram = card_cryptogram(keys.s_enc, command.data, challenge)
        self._session_keys = keys
        self._host_challenge, self._card_challenge = command.data, challenge
        self.state = ChannelState.INITIALIZED
        head = self.key_diversification_data + bytes((self._keys.kvn, ScpProtocol.SCP01))
        return ResponseApdu(head + challenge + cryptogram)

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """Verify the C-MAC (zero ICV) and the host cryptogram (D.4.2, D.3.2.2); open at level P1.

        P1 must be 00, 01 or 03 and P2 00 (6A86 otherwise); data 16 bytes (6700); no secure messaging bit or a bad
        C-MAC is 6982; a bad host cryptogram is 6300 (Table D-9). Every failure terminates the session (D.1.2).
        """
        self._require(ChannelState.INITIALIZED)
        keys = self._keys_or_fail()
        if command.ins != INS_EXTERNAL_AUTHENTICATE:
            self._fail(InsNotSupported(f"expected EXTERNAL AUTHENTICATE (82), got INS {command.ins:02X}"))
        if not cla_has_secure_messaging(command.cla):
            self._fail(SecurityNotSatisfied("EXTERNAL AUTHENTICATE must be C-MACed (CLA 84..87)"))
        if command.p2 != 0 or command.p1 not in LEVELS:
            self._fail(
                IncorrectP1P2(f"EXTERNAL AUTHENTICATE P1 P2 {command.p1:02X}{command.p2:02X}: P1 00/01/03, P2 00")
            )
        if len(command.data) != 16 or command.is_extended:
            self._fail(WrongLength(f"EXTERNAL AUTHENTICATE data must be 16 bytes, got {len(command.data)}"))
        cryptogram, mac = command.data[:8], command.data[8:]
        if not constant_time_equal(command_mac(keys.s_mac, bytes(8), command, cryptogram), mac):
            self._fail(SecurityNotSatisfied("the C-MAC of EXTERNAL AUTHENTICATE did not verify"))
        expected = host_cryptogram(keys.s_enc, self._host_challenge, self._card_challenge)
        if not constant_time_equal(expected, cryptogram):
            self._fail(SecurityNotSatisfied("the host cryptogram did not verify", sw=_SW_HOST_CRYPTOGRAM))
        self._last_mac, self._unwrapped = mac, False
        self.level = SecurityLevel(command.p1)
        self.state = ChannelState.OPEN
        return ResponseApdu()

    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Decrypt (C-DECRYPTION, D.3.4) and verify the C-MAC (D.3.3) of a command; 6982 and TERMINATED on error.

        A command without the secure messaging bit is refused when the level includes C-MAC; one with it is
        checked even at level 00. The returned command has the secure messaging bit cleared.
        """
        self._require(ChannelState.OPEN)
        keys = self._keys_or_fail()
        self._unwrapped = True
        if not cla_has_secure_messaging(command.cla):
            if SecurityLevel.C_MAC in self.level:
                self._fail(SecurityNotSatisfied("the security level requires a C-MAC; the CLA shows none"))
            return command
        if command.is_extended or len(command.data) < MAC_LENGTH:
            self._fail(SecurityNotSatisfied(f"no room for a C-MAC in a {len(command.data)}-byte (or extended) field"))
        data, mac = command.data[:-MAC_LENGTH], command.data[-MAC_LENGTH:]
        if SecurityLevel.C_DECRYPTION in self.level and data:
            try:
                data = decrypt_command_data(keys.s_enc, data)
            except DecodeError as exc:
                self._fail(SecurityNotSatisfied(f"the command data did not decrypt: {exc}"))
        icv = next_icv(keys.s_mac, self._last_mac, self.i_param)
        if not constant_time_equal(command_mac(keys.s_mac, icv, command, data), mac):
            self._fail(SecurityNotSatisfied("the C-MAC did not verify"))
        self._last_mac = mac
        return command.with_changes(cla=plain_cla(command.cla), data=data)

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """SCP01 has no response protection: the response is returned as is (after the state checks)."""
        self._require(ChannelState.OPEN)
        if not self._unwrapped:
            self._fail(SecurityNotSatisfied("no command was unwrapped in this session"))
        return response

    def decrypt_key(self, data: bytes) -> bytes:
        """Decrypt key material sent under the static DEK, 3DES-ECB, nothing removed (D.3.5); 6A80 if malformed."""
        self._require(ChannelState.OPEN)
        if not data or len(data) % 8:
            raise IncorrectData(f"encrypted key data must be a non-empty multiple of 8 bytes, got {len(data)}")
        return des3_ecb_decrypt(self._keys.dek, data)
