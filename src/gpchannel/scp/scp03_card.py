"""SCP03, the card's side (GlobalPlatform Amendment D v1.1.1, 5.6, 6.2 and 7.1; S16 from v1.2).

Theory of operation: see :mod:`gpchannel.scp.common` for the states and :mod:`gpchannel.scp.scp03` for the
cryptography. The Security Domain creates one ``Scp03Card`` per secure channel session with the key set it
chose, the persisted sequence counter of that key set, an injected random source and the AID of the invoking
application; after INITIALIZE UPDATE it persists ``sequence_counter``.

Errors are raised as :class:`CardError` subclasses for the dispatcher to turn into status words. Every error
ends the session (TERMINATED: all later use is refused with 6982), as 5.2 and 5.6 ask ("if any step in the
mutual authentication process fails, the process shall be restarted"; a security error aborts the session).
"""

from __future__ import annotations

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.block_engine import engine
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import (
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    SecurityNotSatisfied,
    UnsupportedError,
    WrongLength,
)
from gpchannel.scp.common import (
    C_DEC_BIT,
    C_MAC_BIT,
    R_ENC_BIT,
    R_MAC_BIT,
    ChannelState,
    RandomSource,
    ScpProtocol,
    SecurityLevel,
)
from gpchannel.scp.scp03 import (
    I_PSEUDO_RANDOM,
    MAX_SEQUENCE_COUNTER,
    Scp03SessionKeys,
    allowed_levels,
    card_challenge,
    card_cryptogram,
    check_i_param,
    command_block,
    command_mac_input,
    compute_cmac,
    decrypt_counted_data,
    decrypt_sensitive_data,
    derive_session_keys,
    encrypt_counted_data,
    host_cryptogram,
    lc_field,
    mac_cla,
    mac_length,
    plain_cla,
    response_block,
)
from gpchannel.scp.symmetric import SymmetricCardChannel, check_key_diversification_data

__all__ = ["Scp03Card"]

_OPEN = ChannelState.OPEN
"""The states tested on every wrap and unwrap, as module constants (an Enum class attribute is a lookup each time)."""

_SHORT_MAX = 255
"""The most data a short command carries (a longer one is extended: CommandApdu.is_extended)."""


class Scp03Card(SymmetricCardChannel[Scp03SessionKeys]):
    """The card side of an SCP03 session (Amendment D v1.1.1; S16 when ``i_param`` has b1 set).

    ``key_diversification_data`` is the 10 bytes returned first in INITIALIZE UPDATE; ``sequence_counter`` is the
    key set's persisted 3-byte counter (incremented before each pseudo-random challenge, 6.2.2.1); ``random``
    gives the card challenge when i does not ask for a pseudo-random one; ``aid`` is the AID of the application
    invoking the SecureChannel interface (the context of the pseudo-random challenge).
    """

    protocol = ScpProtocol.SCP03

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
        if keys.key_type is not KeyType.AES:
            raise UnsupportedError(f"SCP03 needs an AES key set, got {keys.key_type.name}")
        check_key_diversification_data(key_diversification_data)
        if not 0 <= sequence_counter <= MAX_SEQUENCE_COUNTER:
            raise ValueError(f"the sequence counter must fit 3 bytes, got {sequence_counter}")
        if i_param & I_PSEUDO_RANDOM and not 5 <= len(aid) <= 16:
            raise ValueError(f"the pseudo-random card challenge needs a 5 to 16-byte AID, got {len(aid)} bytes")
        super().__init__(
            keys,
            i_param=i_param,
            key_diversification_data=key_diversification_data,
            sequence_counter=sequence_counter,
            random=random,
            aid=aid,
            channel=channel,
        )
        self._n = mac_length(i_param)  # i is fixed for the object's life
        self._chain = bytes(16)
        self._counter = 0
        self._unwrapped = False
        self._last_extended = False

    @property
    def _mac_len(self) -> int:
        return self._n

    # -- mutual authentication ---------------------------------------------------------------------------------
    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        """Answer INITIALIZE UPDATE (GP 2.3.1 D.4.1; Amendment D 7.1.1, Table 7-2).

        A new INITIALIZE UPDATE ends any session in progress (5.6). KVN (P1) 0 or the key set's; P2 00; the host
        challenge is 8 bytes (16 in S16 mode). Sequence counter at its maximum: 6985 (6.2.2.1).
        """
        self._restart()
        n = self._mac_len
        self._check_initialize_update(command, n)
        counter_field = b""
        if self.i_param & I_PSEUDO_RANDOM:
            if self._sequence_counter >= MAX_SEQUENCE_COUNTER:
                self._fail(ConditionsNotSatisfied("the sequence counter of this key set is exhausted"))
            self._sequence_counter += 1
            challenge = card_challenge(self._keys.enc, self._sequence_counter, self.aid, n)
            counter_field = self._sequence_counter.to_bytes(3, "big")
        else:
            challenge = self._random_challenge(n)
        keys = derive_session_keys(self._keys, command.data + challenge)
        cryptogram = card_cryptogram(keys.s_mac, command.data, challenge)
        head = self._initialized(keys, command.data, challenge) + bytes((self.i_param,))
        return ResponseApdu(head + challenge + cryptogram + counter_field)

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """Verify the C-MAC (zero chaining value, 6.2.3) and the host cryptogram (6.2.2.3); open the session.

        P1 is the security level (Table 7-3) and must be one the i parameter supports (R-MAC levels need i b6,
        33 needs b7): 6A86 otherwise, as for a P2 other than 00. A bad C-MAC is 6982; a bad host cryptogram is
        6300 (GP 2.3.1 Table D-9), raised as SecurityNotSatisfied with that status word.
        """
        n = self._mac_len
        keys = self._check_external_authenticate(command, 2 * n)
        try:
            level = SecurityLevel.from_byte(command.p1)
        except ValueError as exc:
            self._fail(IncorrectP1P2(str(exc)))
        if level not in allowed_levels(self.i_param):
            self._fail(IncorrectP1P2(f"security level {command.p1:02X} is not available with i={self.i_param:02X}"))
        cryptogram, mac = command.data[:n], command.data[n:]
        full = compute_cmac(keys.s_mac, command_mac_input(bytes(16), command, cryptogram, 2 * n, command.is_extended))
        expected = host_cryptogram(keys.s_mac, self._host_challenge, self._card_challenge)
        self._verify_host(full[:n], mac, expected, cryptogram)
        self._chain, self._counter, self._unwrapped = full, 0, False
        return self._open(level)

    # -- secure messaging --------------------------------------------------------------------------------------
    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Verify the C-MAC (6.2.4) and decrypt the data (6.2.6) of a command; 6982 and TERMINATED on error.

        A command without the secure messaging indication is refused when the level includes C-MAC (5.6); a
        command with it is checked even at level 00. The encryption counter counts every command.
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        keys = self._session_keys
        if keys is None:
            keys = self._keys_or_fail()
        counter = self._counter = self._counter + 1
        self._unwrapped = True
        cla, data = command.cla, command.data
        size = len(data)
        le = command.le
        extended = command.extended or size > _SHORT_MAX or (le is not None and le > 256)  # command.is_extended
        self._last_extended = extended
        level = int(self.level)
        if not cla_has_secure_messaging(cla):
            if level & C_MAC_BIT:
                self._fail(SecurityNotSatisfied("the security level requires a C-MAC; the CLA shows none"))
            return command
        n = self._n
        if size < n:
            self._fail(SecurityNotSatisfied(f"the command has {size} data bytes; the C-MAC is {n}"))
        data, mac = data[:-n], data[-n:]
        # Figure 6-1 (command_mac_input): chaining value || CLA' INS P1 P2 || Lc (the MAC included) || data.
        header = bytes((mac_cla(cla), command.ins, command.p1, command.p2))
        full = engine("aes", keys.s_mac).cmac(self._chain + header + lc_field(size, extended) + data)
        if not constant_time_equal(full[:n], mac):
            self._fail(SecurityNotSatisfied("the C-MAC did not verify"))
        self._chain = full
        if level & C_DEC_BIT and data:
            try:
                data = decrypt_counted_data(keys.s_enc, command_block(counter), data)
            except DecodeError as exc:
                self._fail(SecurityNotSatisfied(f"the command data did not decrypt: {exc}"))
        return CommandApdu(plain_cla(cla), command.ins, command.p1, command.p2, data, le, command.extended)

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """Add R-ENCRYPTION (6.2.7) and the R-MAC (6.2.5) to the response to the last unwrapped command.

        Error status words (all but 9000, 62xx, 63xx) go out alone: no data, no R-MAC. A protected response that
        would not fit the response length of the command (256 bytes, or 65536 for an extended-length command)
        raises WrongLength (6700) and leaves the session open: the application must send less (e.g. 6310 and
        GET STATUS "next").
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        keys = self._session_keys
        if keys is None:
            keys = self._keys_or_fail()
        if not self._unwrapped:
            self._fail(SecurityNotSatisfied("no command was unwrapped in this session"))
        level = int(self.level)
        if not level & R_MAC_BIT:
            return response
        sw = response.sw
        if not (sw == 0x9000 or sw >> 8 in (0x62, 0x63)):  # is_success_sw: errors carry no R-MAC
            return ResponseApdu(b"", sw)
        data = response.data
        if level & R_ENC_BIT and data:
            data = encrypt_counted_data(keys.s_enc, response_block(self._counter), data)
        rmac = engine("aes", keys.s_rmac).cmac(self._chain + data + sw.to_bytes(2, "big"))[: self._n]
        limit = 65536 if self._last_extended else 256
        if len(data) + len(rmac) > limit:
            raise WrongLength(f"the protected response would be {len(data) + len(rmac)} bytes; at most {limit} fit")
        return ResponseApdu(data + rmac, sw)

    def decrypt_key(self, data: bytes, key_length: int | None = None) -> bytes:
        """Decrypt key material sent under the static Key-DEK, AES-CBC IV 0 (6.2.8).

        ``key_length`` (from the PUT KEY key block) drops the padding of a 24-byte key; a cryptogram that is not a
        non-empty multiple of 16 bytes, or that does not fit ``key_length``, is 6A80 (IncorrectData).
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        try:
            return decrypt_sensitive_data(self._keys.dek, data, key_length)
        except DecodeError as exc:
            raise IncorrectData(str(exc)) from None
