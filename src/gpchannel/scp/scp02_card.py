"""SCP02, the card's side (GlobalPlatform Card Specification 2.2.1 Appendix E; 2.3.1 Appendix E for behaviour).

Theory of operation: see :mod:`gpchannel.scp.common` for the states and :mod:`gpchannel.scp.scp02` for the
cryptography. The Security Domain creates one ``Scp02Card`` per secure channel session with the key set it chose,
the key set's persisted sequence counter, an injected random source and the AID of the selected application, and
persists ``sequence_counter`` after each call.

- Explicit initiation (i with b3): ``initialize_update`` then ``external_authenticate`` open the session at the
  level P1 of EXTERNAL AUTHENTICATE (E.1.5).
- Implicit initiation (i without b3): ``unwrap`` of a command with the secure messaging indication while no
  session is active (or the session dropped to AUTHENTICATED only) opens one: the C-MAC over the AID-derived ICV
  authenticates the host (E.1.2.2, E.1.6). A command without it passes unchecked and clears C_MAC (E.1.6).
- BEGIN / END R-MAC SESSION (E.5.3, E.5.4): the Security Domain passes the unwrapped command to
  ``begin_rmac_session`` / ``end_rmac_session``, whose response ``wrap`` leaves as it is.

E.4.5 asks that, while every response carries an R-MAC, case 1 and 3 commands be processed as case 2 and 4 with
Le 00: that is the transport's business (a T=0 card answers 61xx); ``unwrap`` returns the command as sent.

Errors are :class:`CardError` subclasses for the dispatcher to turn into status words. With explicit initiation a
security error (C-MAC, host cryptogram, decryption, a command without C-MAC at a C-MAC level) terminates the
session: every later use is refused with 6982. With implicit initiation the session for incoming commands is
aborted instead (E.1.6, implicit rules): the level drops to NO_SECURITY_LEVEL (or R-MAC only while an R-MAC
session runs), commands without secure messaging pass unchecked, and the next command with secure messaging
attempts a new session. Malformed BEGIN / END R-MAC SESSION commands are refused without ending the session.

R-MAC across an implicit abort (our reading, documented choice): E.1.6 keeps an R-MAC session in progress when
the session for incoming commands aborts (the level becomes "R-MAC only"), and E.4.5 chains every R-MAC
"regardless of whether the APDU command completed successfully or not", error statuses included (Li 00). So the
6982 (or 6985, counter exhausted) that rejects a C-MACed command is chained by the card, over the stripped
command, before the error is raised (it leaves through the dispatcher, not ``wrap``); like every error status it
goes out without R-MAC bytes. The host chains it in ``unwrap`` and, with ``Scp02Host.abort``, continues the R-MAC
session at "R-MAC only" until ``begin_implicit`` starts a new session for incoming commands.
"""

from __future__ import annotations

from typing import NoReturn

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    ConditionsNotSatisfied,
    DecodeError,
    IncorrectData,
    IncorrectP1P2,
    InsNotSupported,
    ReferencedDataNotFound,
    SecurityNotSatisfied,
    WrongLength,
)
from gpchannel.scp.common import (
    C_DEC_BIT,
    C_MAC_BIT,
    ChannelState,
    RandomSource,
    ScpProtocol,
    SecurityLevel,
)
from gpchannel.scp.scp02 import (
    I_ICV_ENCRYPTION,
    I_PSEUDO_RANDOM,
    INS_BEGIN_R_MAC_SESSION,
    INS_END_R_MAC_SESSION,
    LEVELS,
    MAX_SEQUENCE_COUNTER,
    CommandMacChain,
    ResponseMacChain,
    Scp02SessionKeys,
    aid_icv,
    card_cryptogram,
    check_i_param,
    check_keys,
    command_mac_input,
    decrypt_command_data,
    decrypt_sensitive_data,
    derive_session_keys,
    encrypt_sensitive_data,
    host_cryptogram,
    is_explicit,
    plain_cla,
    pseudo_random_card_challenge,
    r_mac_key,
)
from gpchannel.scp.symmetric import SymmetricCardChannel, check_key_diversification_data

__all__ = ["Scp02Card"]

_OPEN = ChannelState.OPEN
_TERMINATED = ChannelState.TERMINATED
"""The states tested on every wrap and unwrap, as module constants (an Enum class attribute is a lookup each time)."""

_MAC = 8
_SHORT_MAX = 255
_SHORT_RESPONSE_MAX = 256
"""Response data of a short APDU (Le 00): SCP02 secures short APDUs only (E.4.4)."""


class Scp02Card(SymmetricCardChannel[Scp02SessionKeys]):
    """The card side of an SCP02 session (GP 2.2.1 Appendix E).

    ``keys`` is a DES3 key set of 16-byte keys (with one base key, i b1 clear, ``keys.enc`` is the base key);
    ``key_diversification_data`` is the 10 bytes returned first in INITIALIZE UPDATE; ``sequence_counter`` the key
    set's persisted 2-byte counter; ``random`` gives the 6-byte card challenge unless i asks for the pseudo-random
    one (b7); ``aid`` is the AID of the selected application (pseudo-random challenge, implicit-initiation ICVs).

    ``sequence_counter`` is then the value the Security Domain must persist: per E.1.2 the card increments it by one
    when, and only when, the first C-MAC of a session verifies: EXTERNAL AUTHENTICATE (explicit) or the first
    C-MACed command (implicit); a failed attempt leaves it. It never wraps: at FFFF the card refuses new sessions
    with 6985. A bad host cryptogram in EXTERNAL AUTHENTICATE is 6300 (Table E-12).
    """

    protocol = ScpProtocol.SCP02

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
        if not 0 <= sequence_counter <= MAX_SEQUENCE_COUNTER:
            raise ValueError(f"the sequence counter must fit 2 bytes, got {sequence_counter}")
        if aid and not 5 <= len(aid) <= 16:
            raise ValueError(f"the AID must be 5 to 16 bytes, got {len(aid)}")
        if (i_param & I_PSEUDO_RANDOM or not is_explicit(i_param)) and not aid:
            raise ValueError(f"i={i_param:02X} needs the AID of the selected application")
        super().__init__(
            keys,
            i_param=i_param,
            key_diversification_data=key_diversification_data,
            sequence_counter=sequence_counter,
            random=random,
            aid=aid,
            channel=channel,
        )
        self._dek = b""
        self._ea_mac = b""
        self._c_chain: CommandMacChain | None = None
        self._r_chain: ResponseMacChain | None = None
        self._last: CommandApdu | None = None
        self._answered_by_sd = False

    @property
    def session_keys(self) -> Scp02SessionKeys | None:
        return self._session_keys

    def uses_keys(self, keys: StaticKeys) -> bool:
        """Whether this session was made with ``keys`` (compared in constant time): with implicit initiation the
        Security Domain checks it before a new initiation, since the key set may have been replaced or deleted
        (PUT KEY, DELETE) since this object was made."""
        mine = self._keys.enc + self._keys.mac + self._keys.dek
        return constant_time_equal(mine, keys.enc + keys.mac + keys.dek) and self._keys.kvn == keys.kvn

    def sync_sequence_counter(self, sequence_counter: int) -> None:
        """Take the key set's counter as persisted now, before a command that may start an implicit session.

        With implicit initiation this object outlives its sessions (an abort keeps it, with any R-MAC session, E.1.6),
        while a session on another logical channel with the same key set may move the counter meanwhile: the next
        initiation must derive its keys from the key set's current value (E.1.2), never from a stale one. The
        counter never goes back (a value below this session's own is ignored: a reused value would let the first
        command of an earlier session be replayed). Ignored with explicit initiation, and while a session for
        incoming commands is active (its keys are set).
        """
        if not 0 <= sequence_counter <= MAX_SEQUENCE_COUNTER:
            raise ValueError(f"the sequence counter must fit 2 bytes, got {sequence_counter}")
        if is_explicit(self.i_param) or (self.state is _OPEN and int(self.level) & C_MAC_BIT):
            return
        # never back: a counter value opens one session only
        self._sequence_counter = max(self._sequence_counter, sequence_counter)

    def terminate(self) -> None:
        super().terminate()
        self._c_chain = self._r_chain = None

    def _fail_closed(
        self, error: SecurityNotSatisfied | ConditionsNotSatisfied, command: CommandApdu | None = None
    ) -> NoReturn:
        if not is_explicit(self.i_param):
            # E.1.6, implicit initiation: the session for incoming commands is aborted, the Current Security Level
            # reset to NO_SECURITY_LEVEL or R-MAC only; the next command with secure messaging starts a new one.
            self._c_chain, self._last = None, None
            if self._r_chain is not None and command is not None:
                # The R-MAC session outlives the abort (E.1.6) and chains every pair, failed ones included (E.4.5):
                # the rejected command's error status, which leaves by the dispatcher and never reaches ``wrap``,
                # is chained here over the stripped command (no C-MAC, Li 00) exactly as the host chains it.
                stripped = CommandApdu(
                    plain_cla(command.cla), command.ins, command.p1, command.p2, command.data[:-_MAC]
                )
                self._r_chain.advance(self._r_chain.compute(stripped, ResponseApdu(sw=error.sw)))
            every = self._r_chain is not None and self._r_chain.every_response
            self.state = ChannelState.IDLE
            self.level = SecurityLevel.R_MAC if every else SecurityLevel.NONE
            raise error
        self._c_chain = self._r_chain = None
        self._fail(error)

    # -- explicit initiation -----------------------------------------------------------------------------------
    def initialize_update(self, command: CommandApdu) -> ResponseApdu:
        """Answer INITIALIZE UPDATE (E.5.1, Table E-8); a new INITIALIZE UPDATE ends any session (E.1.6).

        KVN (P1) 0 or the key set's, else 6A88; P2 00, else 6A86; an 8-byte host challenge, else 6700. Session
        keys come from the current sequence counter (not incremented here, E.1.2).
        """
        self._restart()
        self._c_chain, self._r_chain = None, None
        if not is_explicit(self.i_param):
            self._fail(InsNotSupported(f"i={self.i_param:02X} is implicit initiation: no INITIALIZE UPDATE"))
        self._check_initialize_update(command, 8)
        if self._sequence_counter >= MAX_SEQUENCE_COUNTER:
            self._fail(ConditionsNotSatisfied("the sequence counter of this key set is exhausted"))
        keys = derive_session_keys(self._keys, self.i_param, self._sequence_counter)
        if self.i_param & I_PSEUDO_RANDOM:
            challenge = pseudo_random_card_challenge(keys.c_mac, self.aid)
        else:
            challenge = self._random_challenge(6)
        cryptogram = card_cryptogram(keys.enc, command.data, self._sequence_counter, challenge)
        self._dek = keys.dek
        head = self._initialized(keys, command.data, challenge)
        return ResponseApdu(head + self._sequence_counter.to_bytes(2, "big") + challenge + cryptogram)

    def external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        """Verify the C-MAC (zero ICV, E.3.2) and host cryptogram (E.4.2.2); open the session at level P1.

        P1 must be 00, 01, 03, 10, 11 or 13 (Table E-11; 33 and the rest are RFU): 6A86 otherwise, as for P2 other
        than 00. A bad C-MAC is 6982; a bad host cryptogram 6300 (Table E-12), raised as SecurityNotSatisfied
        with that status word. On success the sequence counter is incremented (E.1.2.1).
        """
        keys = self._check_external_authenticate(command, 16)
        if command.p1 not in LEVELS:
            self._fail(IncorrectP1P2(f"security level {command.p1:02X} is RFU for SCP02 (Table E-11)"))
        level = SecurityLevel(command.p1)
        cryptogram, mac = command.data[:8], command.data[8:]
        chain = CommandMacChain(keys.c_mac, encrypt=bool(self.i_param & I_ICV_ENCRYPTION))
        plain = CommandApdu(plain_cla(command.cla), command.ins, command.p1, command.p2, cryptogram)
        expected = host_cryptogram(keys.enc, self._host_challenge, self._sequence_counter, self._card_challenge)
        self._verify_host(chain.compute(command_mac_input(plain, self.i_param)), mac, expected, cryptogram)
        chain.advance(mac)
        self._c_chain, self._ea_mac = chain, mac
        self._r_chain = ResponseMacChain(keys.r_mac, mac) if SecurityLevel.R_MAC in level else None
        self._sequence_counter += 1
        self._last, self._answered_by_sd = None, False
        return self._open(level)

    # -- secure messaging --------------------------------------------------------------------------------------
    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Verify the C-MAC (E.4.4) and decrypt the data (E.4.6) of a command; 6982 on error, and TERMINATED
        (explicit initiation) or aborted back to IDLE (implicit initiation, E.1.6; see the module docstring).

        Explicit initiation: a command without the secure messaging indication is refused when the level has
        C-MAC (E.1.6); one with it is verified whatever the level. Implicit initiation: see the module docstring.
        With C-DECRYPTION, a command without data may come with no cryptogram or with an encrypted padding block.
        Returns the command as the application sees it (CLA without secure messaging, no MAC, clear data).
        """
        self._answered_by_sd = False
        if self.state is _TERMINATED:
            raise SecurityNotSatisfied("the secure channel was terminated")
        has_sm = cla_has_secure_messaging(command.cla)
        if not is_explicit(self.i_param):
            if not has_sm:
                if self.state is _OPEN:
                    self.level &= ~SecurityLevel.C_MAC  # AUTHENTICATED only, R-MAC as is (E.1.6)
                self._last = command  # R-MACed by wrap while an R-MAC session runs (also after an abort)
                return command
            if self.state is not _OPEN or not int(self.level) & C_MAC_BIT:
                self._open_implicit(command)
        else:
            self._require(ChannelState.OPEN)
            if not has_sm:
                if int(self.level) & C_MAC_BIT:
                    self._fail_closed(SecurityNotSatisfied("the security level requires a C-MAC; the CLA shows none"))
                self._last = command
                return command
        plain = self._verify(command)
        self._last = plain
        return plain

    def _open_implicit(self, command: CommandApdu) -> None:
        """Start an implicit session for the incoming C-MACed command (E.1.2.2, E.3.3)."""
        if self._sequence_counter >= MAX_SEQUENCE_COUNTER:
            self._fail_closed(ConditionsNotSatisfied("the sequence counter of this key set is exhausted"), command)
        keys = derive_session_keys(self._keys, self.i_param, self._sequence_counter)
        self._session_keys = keys
        self._c_chain = CommandMacChain(
            keys.c_mac, aid_icv(keys.c_mac, self.aid), bool(self.i_param & I_ICV_ENCRYPTION)
        )

    def _verify(self, command: CommandApdu) -> CommandApdu:
        chain = self._c_chain
        keys = self._session_keys
        assert chain is not None and keys is not None
        data, le = command.data, command.le
        if len(data) < _MAC:
            self._fail_closed(SecurityNotSatisfied(f"the command has {len(data)} data bytes; the C-MAC is 8"), command)
        if command.extended or len(data) > _SHORT_MAX or (le is not None and le > 256):  # command.is_extended
            # The C-MAC covers a one-byte Lc (E.4.4): an extended-length command cannot carry a valid one.
            self._fail_closed(SecurityNotSatisfied("SCP02 secures short APDUs only; the command is extended"), command)
        body, mac = data[:-_MAC], data[-_MAC:]
        if int(self.level) & C_DEC_BIT and body:
            try:
                body = decrypt_command_data(keys.enc, body)
            except DecodeError as exc:
                self._fail_closed(SecurityNotSatisfied(f"the command data did not decrypt: {exc}"), command)
        plain = CommandApdu(plain_cla(command.cla), command.ins, command.p1, command.p2, body, le)
        if not constant_time_equal(chain.compute(command_mac_input(plain, self.i_param)), mac):
            self._fail_closed(SecurityNotSatisfied("the C-MAC did not verify"), command)
        opening = chain.first and not is_explicit(self.i_param)
        chain.advance(mac)
        if opening:
            # The first C-MAC of an implicit session verified: count it; DEK from the new value (E.1.2.2).
            self._sequence_counter += 1
            self._dek = derive_session_keys(self._keys, self.i_param, self._sequence_counter).dek
            self.state = ChannelState.OPEN
            self.level = SecurityLevel.C_MAC | (self.level & SecurityLevel.R_MAC)
        return plain

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """Add the R-MAC (E.4.5) to the response to the last unwrapped command while an R-MAC session runs.

        A success or warning (9000, 61xx, 62xx, 63xx) gets ``data || R-MAC`` when each response carries one; an
        error goes out alone (no data, no R-MAC) but its R-MAC is still computed and chained. Responses of BEGIN /
        END R-MAC SESSION (built by the Security Domain methods) and responses outside a session pass unchanged.

        SCP02 secures short APDUs only (E.4.4), whose response data are at most 256 bytes: a response whose data and
        R-MAC would exceed that raises WrongLength (6700), as SCP03 does, and the R-MAC session chains that 6700
        (Li 00, E.4.5), which is what the host sees and chains too; the session stays open, and the application
        must send less (e.g. 6310 and GET STATUS "next").
        """
        if self.state is _TERMINATED:
            raise SecurityNotSatisfied("the secure channel was terminated")
        command, self._last = self._last, None
        if self._answered_by_sd or self._r_chain is None or command is None:
            self._answered_by_sd = False
            return response
        success = response.sw == 0x9000 or response.sw1 in (0x61, 0x62, 0x63)
        out = response if success else ResponseApdu(b"", response.sw)
        if self._r_chain.every_response and success and len(out.data) + _MAC > _SHORT_RESPONSE_MAX:
            error = WrongLength(
                f"the response with its R-MAC would be {len(out.data) + _MAC} bytes; at most {_SHORT_RESPONSE_MAX} fit"
            )
            self._r_chain.advance(self._r_chain.compute(command, ResponseApdu(sw=error.sw)))
            raise error
        rmac = self._r_chain.compute(command, out)
        self._r_chain.advance(rmac)
        if self._r_chain.every_response and success:
            return ResponseApdu(out.data + rmac, out.sw)
        return out

    # -- R-MAC sessions ----------------------------------------------------------------------------------------
    def begin_rmac_session(self, command: CommandApdu) -> ResponseApdu:
        """Process an unwrapped BEGIN R-MAC SESSION (E.5.3): ``80 7A P1 01 Lc len data``.

        P1 10: each later response carries an R-MAC; 00: only END R-MAC SESSION returns it; 30 (R-ENC) is RFU and
        refused with 6A86, as is a P2 other than 01. The data is LV coded, 0 to 24 bytes (6A80 otherwise). An
        R-MAC session already running: 6985. The R-MAC key comes from the sequence counter current now (E.4.1),
        the first ICV is the EXTERNAL AUTHENTICATE C-MAC (explicit initiation, GP 2.3.1 E.3.2) or the R-MAC over the
        AID (implicit, E.3.3), and this command/response pair is the first one R-MACed (E.4.5).
        """
        self._require(ChannelState.OPEN)
        self._answered_by_sd = True
        if command.ins != INS_BEGIN_R_MAC_SESSION:
            raise InsNotSupported(f"expected BEGIN R-MAC SESSION (7A), got INS {command.ins:02X}")
        if command.p1 not in (0x00, 0x10) or command.p2 != 0x01:
            raise IncorrectP1P2(f"BEGIN R-MAC SESSION P1 P2 must be 00/10 01, got {command.p1:02X} {command.p2:02X}")
        data = command.data
        if not data or data[0] != len(data) - 1 or data[0] > 24:
            raise IncorrectData("BEGIN R-MAC SESSION data must be one length byte and 0 to 24 bytes (Table E-16)")
        if self._r_chain is not None:
            raise ConditionsNotSatisfied("an R-MAC session is already running")
        key = r_mac_key(self._keys, self.i_param, self._sequence_counter)
        icv = self._ea_mac if is_explicit(self.i_param) else aid_icv(key, self.aid)
        chain = ResponseMacChain(key, icv, command.p1 == 0x10)
        response = ResponseApdu()
        chain.advance(chain.compute(command, response))
        self._r_chain = chain
        if chain.every_response:
            self.level |= SecurityLevel.R_MAC
        return response

    def end_rmac_session(self, command: CommandApdu) -> ResponseApdu:
        """Process an unwrapped END R-MAC SESSION (E.5.4): return the current R-MAC; P2 03 also ends the session.

        P1 must be 00 and P2 01 or 03 (6A86); no R-MAC session running: 6A88 (Table E-20). The command itself is
        not R-MACed.
        """
        self._require(ChannelState.OPEN)
        self._answered_by_sd = True
        if command.ins != INS_END_R_MAC_SESSION:
            raise InsNotSupported(f"expected END R-MAC SESSION (78), got INS {command.ins:02X}")
        if command.p1 != 0 or command.p2 not in (0x01, 0x03):
            raise IncorrectP1P2(f"END R-MAC SESSION P1 P2 must be 00 01/03, got {command.p1:02X} {command.p2:02X}")
        if command.data:
            raise WrongLength("END R-MAC SESSION has no data besides the C-MAC")
        if self._r_chain is None:
            raise ReferencedDataNotFound("no R-MAC session is running")
        rmac = self._r_chain.icv
        if command.p2 == 0x03:
            self._r_chain = None
            self.level &= ~SecurityLevel.R_MAC
        return ResponseApdu(rmac)

    def decrypt_key(self, data: bytes) -> bytes:
        """Decrypt key material under the DEK session key (E.4.7): 3DES-ECB (explicit initiation) or 3DES-CBC with
        a zero IV (implicit); no padding is removed. Not a multiple of 8 bytes: 6A80."""
        self._require(ChannelState.OPEN)
        try:
            return decrypt_sensitive_data(self._dek, data, explicit=is_explicit(self.i_param))
        except ValueError as exc:
            raise IncorrectData(str(exc)) from None

    def encrypt_key(self, data: bytes) -> bytes:
        """Encrypt data under the DEK session key as :meth:`decrypt_key` decrypts it (E.4.7; the GP API's
        ``encryptData``). With implicit initiation that key comes from the incremented counter (E.1.2.2), not from
        ``session_keys.dek``. Not a multiple of 8 bytes: 6A80."""
        self._require(ChannelState.OPEN)
        try:
            return encrypt_sensitive_data(self._dek, data, explicit=is_explicit(self.i_param))
        except ValueError as exc:
            raise IncorrectData(str(exc)) from None
