"""SCP01, the card's side (GlobalPlatform Card Specification 2.1.1, Appendix D).

Theory of operation: see :mod:`gpchannel.scp.common` for the states and :mod:`gpchannel.scp.scp01` for the
cryptography. The Security Domain creates one ``Scp01Card`` per secure channel session with the key set it chose,
an injected random source for the card challenge and the key diversification data it answers first. Errors are
raised as :class:`CardError` subclasses for the dispatcher to turn into status words; every failure ends the
session (TERMINATED: all later use is refused with 6982), as D.1.2 asks.
"""

from __future__ import annotations

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal, des3_ecb_decrypt
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    ReferencedDataNotFound,
    SecurityNotSatisfied,
    WrongLength,
)
from gpchannel.scp.common import (
    ChannelState,
    RandomSource,
    ScpProtocol,
    SecurityLevel,
    plain_cla,
)
from gpchannel.scp.scp01 import (
    LEVELS,
    MAC_LENGTH,
    Scp01SessionKeys,
    card_cryptogram,
    check_i_param,
    check_keys,
    command_mac,
    decrypt_command_data,
    derive_session_keys,
    host_cryptogram,
    next_icv,
)
from gpchannel.scp.symmetric import SymmetricCardChannel, check_key_diversification_data

__all__ = ["Scp01Card"]


class Scp01Card(SymmetricCardChannel[Scp01SessionKeys]):
    """The card side of an SCP01 session (GP 2.1.1, Appendix D), created by the Security Domain per session.

    ``keys`` is the key set (16-byte 3DES keys), ``i_param`` 05 or 15, ``key_diversification_data`` the 10 bytes
    returned first in INITIALIZE UPDATE, ``random`` gives the 8-byte card challenge. SCP01 has no sequence
    counter: ``sequence_counter`` is kept unchanged for the Security Domain. ``aid`` is unused by SCP01.

    A bad host cryptogram in EXTERNAL AUTHENTICATE is 6300 (Table D-9); see :class:`SymmetricCardChannel`.
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
        check_key_diversification_data(key_diversification_data)
        super().__init__(
            keys,
            i_param=i_param,
            key_diversification_data=key_diversification_data,
            sequence_counter=sequence_counter,
            random=random,
            aid=aid,
            channel=channel,
        )
        self._last_mac = bytes(8)
        self._unwrapped = False

    def _check_key_reference(self, command: CommandApdu) -> None:
        """KVN (P1) 00 or the key set's and key identifier (P2) 00 or 01, else 6A88 (D.4.1)."""
        if command.p1 not in (0, self._keys.kvn) or command.p2 not in (0, 1):
            self._fail(ReferencedDataNotFound(f"no key set with KVN {command.p1:02X}, key identifier {command.p2:02X}"))

    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        """Answer INITIALIZE UPDATE (D.4.1): KVN (P1) 00 or the key set's and key identifier (P2) 00 or 01, else
        6A88; an 8-byte host challenge, else 6700. A new INITIALIZE UPDATE ends any session in progress."""
        self._restart()
        self._check_initialize_update(command, 8)
        challenge = self._random_challenge(8)
        keys = derive_session_keys(self._keys, command.data, challenge)
        cryptogram = card_cryptogram(keys.s_enc, command.data, challenge)
        head = self._initialized(keys, command.data, challenge)
        return ResponseApdu(head + challenge + cryptogram)

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """Verify the C-MAC (zero ICV) and the host cryptogram (D.4.2, D.3.2.2); open at level P1.

        P1 must be 00, 01 or 03 and P2 00 (6A86 otherwise); data 16 bytes (6700); no secure messaging bit or a bad
        C-MAC is 6982; a bad host cryptogram is 6300 (Table D-9). Every failure terminates the session (D.1.2).
        """
        keys = self._check_external_authenticate(command)
        if command.p2 != 0 or command.p1 not in LEVELS:
            self._fail(
                IncorrectP1P2(f"EXTERNAL AUTHENTICATE P1 P2 {command.p1:02X}{command.p2:02X}: P1 00/01/03, P2 00")
            )
        if len(command.data) != 16 or command.is_extended:
            self._fail(WrongLength(f"EXTERNAL AUTHENTICATE data must be 16 bytes, got {len(command.data)}"))
        cryptogram, mac = command.data[:8], command.data[8:]
        self._verify_host(
            command_mac(keys.s_mac, bytes(8), command, cryptogram),
            mac,
            host_cryptogram(keys.s_enc, self._host_challenge, self._card_challenge),
            cryptogram,
        )
        self._last_mac, self._unwrapped = mac, False
        return self._open(SecurityLevel(command.p1))

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
