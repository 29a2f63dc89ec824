"""SCP02, the off-card entity's side (GlobalPlatform Card Specification 2.2.1, Appendix E).

Theory of operation: see :mod:`gpchannel.scp.common` for the states and :mod:`gpchannel.scp.scp02` for the
cryptography.

- Explicit initiation (i with b3): ``initialize_update`` / ``receive_initialize_update`` (the card cryptogram and,
  with b7 and an AID, the pseudo-random card challenge are checked before any EXTERNAL AUTHENTICATE exists: cards
  count failed EXTERNAL AUTHENTICATEs) / ``external_authenticate`` / ``receive_external_authenticate``.
- Implicit initiation (i without b3): ``begin_implicit(sequence_counter)`` opens the session at once (level
  C-MAC); the first wrapped command carries the C-MAC that authenticates the host (E.1.2.2). When the card
  rejects a command with a security error it aborts its session for incoming commands but keeps an R-MAC
  session (E.1.6): ``unwrap`` the 6982 (it is chained, E.4.5), ``abort()``, then ``begin_implicit`` again.
- ``wrap`` C-MACs (and with C-DECRYPTION encrypts) every command; ``unwrap`` verifies the R-MAC of the response
  to the last wrapped command when an R-MAC session runs. ``begin_rmac_session`` / ``end_rmac_session`` build
  BEGIN / END R-MAC SESSION (E.5.3, E.5.4), whose responses also go through ``unwrap``.

The host tracks the card's sequence counter: the card increments it once the first C-MAC of a session verifies
(EXTERNAL AUTHENTICATE, or the first command with implicit initiation, E.1.2). Every security failure detected
here terminates the session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel, cla_with_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import (
    IntegrityError,
    LocalProtocolError,
    RemoteProtocolError,
    UnsupportedError,
)
from gpchannel.scp.common import (
    C_DEC_BIT,
    C_MAC_BIT,
    INS_EXTERNAL_AUTHENTICATE,
    R_MAC_BIT,
    ChannelState,
    InitializeUpdateResponse,
    KeyResolver,
    ScpProtocol,
    SecurityLevel,
)
from gpchannel.scp.scp02 import (
    DEFAULT_I_PARAM,
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
    derive_session_keys,
    encrypt_command_data,
    encrypt_sensitive_data,
    host_cryptogram,
    is_explicit,
    pseudo_random_card_challenge,
    r_mac_key,
)
from gpchannel.scp.symmetric import SymmetricHostChannel

__all__ = ["Scp02Host"]

_OPEN = ChannelState.OPEN
"""The states tested on every wrap and unwrap, as module constants (an Enum class attribute is a lookup each time)."""

_SHORT_MAX = 255
_MAC = 8


class _Pending(enum.Enum):
    COMMAND = "command"
    BEGIN_R_MAC = "begin-r-mac"
    END_R_MAC = "end-r-mac"


@dataclass(slots=True)
class _Session:
    """What a session knows once keys are set. Keys stay out of ``repr``."""

    keys: StaticKeys = field(repr=False)
    session_keys: Scp02SessionKeys = field(repr=False)
    card_challenge: bytes
    c_chain: CommandMacChain
    dek: bytes = field(repr=False)
    ea_mac: bytes = field(default=b"", repr=False)
    r_chain: ResponseMacChain | None = None
    last: CommandApdu | None = None
    pending: _Pending | None = None
    begin_every_response: bool = True
    end_closes: bool = True
    last_opened: bool = False  # the last wrapped command was the first C-MACed one of an implicit session


class Scp02Host(SymmetricHostChannel):
    """The host side of an SCP02 session (GP 2.2.1 Appendix E).

    ``keys`` is a DES3 key set of 16-byte keys (with one base key, i b1 clear, ``keys.enc`` is the base key) or a
    :data:`KeyResolver` called with the parsed INITIALIZE UPDATE response. ``i_param`` is the card's i, which the
    SCP02 INITIALIZE UPDATE response does not carry; **it defaults to 0x55** (explicit, 3 keys, ICV encryption,
    pseudo-random card challenge). ``level`` is one of 00, 01, 03, 10, 11, 13 (33 is RFU for SCP02 and refused);
    with implicit initiation it must be 01. ``kvn`` 0 lets the card choose; otherwise the card's KVN must match.
    ``aid`` is the AID of the selected application: needed for implicit initiation (the first C-MAC and R-MAC
    ICVs, E.3.3), and used to check a pseudo-random card challenge (E.4.2.3) when the caller named an i with
    b7 (a defaulted i is an assumption, so a card with a random challenge is not refused for it).

    INITIALIZE UPDATE ``80 50 kvn 00 08 host_challenge 00`` (E.5.1), the checks of its response and the EXTERNAL
    AUTHENTICATE response (9000 opens the session) are those of :class:`SymmetricHostChannel`.
    """

    protocol = ScpProtocol.SCP02

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
        i = DEFAULT_I_PARAM if i_param is None else i_param
        check_i_param(i)
        level = SecurityLevel(level)
        if level not in LEVELS:
            raise UnsupportedError(
                f"SCP02 security level must be 00, 01, 03, 10, 11 or 13 (Table E-11), got {level:02X}"
            )
        if not is_explicit(i) and level != SecurityLevel.C_MAC:
            raise ValueError(f"implicit initiation (i={i:02X}) runs at level 01 (C-MAC) only (E.1.5), got {level:02X}")
        if len(host_challenge) != 8:
            raise ValueError(f"the SCP02 host challenge is 8 bytes, got {len(host_challenge)}")
        super().__init__(keys, level=level, host_challenge=host_challenge, kvn=kvn, aid=aid, channel=channel)
        if not is_explicit(i) and not aid:
            raise ValueError(f"implicit initiation (i={i:02X}) needs the AID of the selected application (E.3.3)")
        if isinstance(keys, StaticKeys):
            check_keys(keys)
        self.i_param = i
        self._i_given = i_param is not None
        self._counter: int | None = None
        self._session: _Session | None = None

    def __repr__(self) -> str:
        return f"Scp02Host(state={self.state.value}, i={self.i_param:02X}, level={self.level:02X})"

    @property
    def session_keys(self) -> Scp02SessionKeys | None:
        """The session keys once known (never shown in a repr)."""
        return self._session.session_keys if self._session else None

    @property
    def sequence_counter(self) -> int | None:
        """The card's sequence counter as the host expects it now (None before it is known).

        The card increments it when the first C-MAC of a session verifies (E.1.2): after EXTERNAL AUTHENTICATE, or
        after the first command wrapped in implicit mode.
        """
        return self._counter

    def _static_keys(self, parsed: InitializeUpdateResponse | None) -> StaticKeys:
        if isinstance(self._keys, StaticKeys):
            return self._keys
        if parsed is None:
            raise LocalProtocolError("a KeyResolver needs an INITIALIZE UPDATE response; give StaticKeys instead")
        keys = self._keys(parsed)
        try:
            check_keys(keys)
        except UnsupportedError as exc:
            self._fail(exc)
        return keys

    # -- explicit initiation -----------------------------------------------------------------------------------
    def _check_initiation(self) -> None:
        """INITIALIZE UPDATE is for explicit initiation only (i b3, E.1.2.1)."""
        if not is_explicit(self.i_param):
            raise LocalProtocolError(f"i={self.i_param:02X} is implicit initiation; use begin_implicit()")

    def _authenticate_card(self, parsed: InitializeUpdateResponse) -> None:
        """Derive the session keys from the card's sequence counter (E.4.1) and verify the card cryptogram
        (E.4.2.1) of the response (Table E-8). With an i the caller named with b7, and an AID, the pseudo-random
        card challenge (E.4.2.3) is verified too."""
        assert parsed.sequence_counter is not None  # always there in an SCP02 response (InitializeUpdateResponse)
        keys = self._static_keys(parsed)
        seq = int.from_bytes(parsed.sequence_counter, "big")
        session_keys = derive_session_keys(keys, self.i_param, seq)
        if self.aid and self._i_given and self.i_param & I_PSEUDO_RANDOM:
            expected_challenge = pseudo_random_card_challenge(session_keys.c_mac, self.aid)
            self._verify_pseudo_random_challenge(expected_challenge, parsed, keys)
        expected = card_cryptogram(session_keys.enc, self.host_challenge, seq, parsed.card_challenge)
        self._verify_card_cryptogram(expected, parsed, keys)
        chain = CommandMacChain(session_keys.c_mac, encrypt=bool(self.i_param & I_ICV_ENCRYPTION))
        self._session = _Session(keys, session_keys, parsed.card_challenge, chain, session_keys.dek)
        self._counter = seq

    def external_authenticate(self) -> CommandApdu:
        """``84 82 level 00 10 host_cryptogram C-MAC`` with a zero ICV (E.3.2, E.4.2.2, E.5.2)."""
        self._require(ChannelState.CARD_AUTHENTICATED)
        s = self._session
        assert s is not None and self._counter is not None
        cryptogram = host_cryptogram(s.session_keys.enc, self.host_challenge, self._counter, s.card_challenge)
        plain = CommandApdu(0x80, INS_EXTERNAL_AUTHENTICATE, int(self.level), 0x00, cryptogram)
        mac = s.c_chain.compute(command_mac_input(plain, self.i_param))
        s.c_chain.advance(mac)
        s.ea_mac = mac
        self.state = ChannelState.EXTERNAL_AUTHENTICATE_SENT
        return CommandApdu(
            cla_for_channel(0x84, self.channel), INS_EXTERNAL_AUTHENTICATE, int(self.level), 0x00, cryptogram + mac
        )

    def _on_open(self) -> None:
        """The card has now incremented its sequence counter (E.1.2.1).

        With an R-MAC level, the R-MAC session starts with the same counter and the EXTERNAL AUTHENTICATE C-MAC as
        its ICV (E.3.2, E.4.1); the EXTERNAL AUTHENTICATE pair itself is not R-MACed (E.4.5).
        """
        s = self._session
        assert s is not None and self._counter is not None
        if int(self.level) & R_MAC_BIT:
            s.r_chain = ResponseMacChain(s.session_keys.r_mac, s.ea_mac)
        self._counter = min(self._counter + 1, MAX_SEQUENCE_COUNTER)

    # -- implicit initiation -----------------------------------------------------------------------------------
    def begin_implicit(self, sequence_counter: int) -> None:
        """Open an implicitly initiated session (E.1.2.2) with the card's current ``sequence_counter``.

        The C-MAC key comes from ``sequence_counter``; the first ICV is the MAC over the AID (E.3.3). The card
        increments its counter when the first C-MAC verifies; the DEK session key (and a later R-MAC key) come from
        that incremented value (E.1.2.2). The host may learn the counter with GET DATA (tag C1).

        Also allowed after :meth:`abort` (the card aborted the session for incoming commands, E.1.6): a new
        session for incoming commands starts, and an R-MAC session in progress continues, as on the card.
        """
        if self.state is _OPEN and not int(self.level) & C_MAC_BIT:
            previous = self._session
        else:
            self._require(ChannelState.IDLE)
            previous = None
        if is_explicit(self.i_param):
            raise LocalProtocolError(f"i={self.i_param:02X} is explicit initiation; use initialize_update()")
        if not 0 <= sequence_counter < MAX_SEQUENCE_COUNTER:
            raise ValueError(f"the sequence counter must be 0..{MAX_SEQUENCE_COUNTER - 1:04X}, got {sequence_counter}")
        keys = previous.keys if previous is not None else self._static_keys(None)
        session_keys = derive_session_keys(keys, self.i_param, sequence_counter)
        dek = derive_session_keys(keys, self.i_param, sequence_counter + 1).dek
        chain = CommandMacChain(
            session_keys.c_mac, aid_icv(session_keys.c_mac, self.aid), bool(self.i_param & I_ICV_ENCRYPTION)
        )
        self._session = _Session(keys, session_keys, b"", chain, dek)
        if previous is not None and previous.r_chain is not None:
            self._session.r_chain = previous.r_chain
        self._counter = sequence_counter
        self.level = SecurityLevel.C_MAC | (self.level & SecurityLevel.R_MAC)
        self.state = ChannelState.OPEN

    def abort(self) -> None:
        """Mirror the card's abort of an implicit session for incoming commands (E.1.6), after ``unwrap`` of the
        security error (6982) that rejected the last wrapped command.

        The level drops to R-MAC only while an R-MAC session with an R-MAC on every response runs, else to none;
        the R-MAC session continues (E.1.6, E.4.5: the card chained the 6982 as ``unwrap`` did). ``wrap`` then sends
        commands without secure messaging (their responses still R-MAC verified), e.g. GET DATA C1 for the
        counter, until :meth:`begin_implicit` starts a new session. If the rejected command was the one opening the
        session the card did not count it, so :attr:`sequence_counter` becomes unknown (None) until then.
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        if is_explicit(self.i_param):
            raise LocalProtocolError(f"i={self.i_param:02X} is explicit initiation: a rejected session is closed")
        s = self._session
        assert s is not None
        if s.pending is not None:
            raise LocalProtocolError("unwrap the card's answer to the last command first (its R-MAC chains)")
        if s.last_opened:
            self._counter = None
        every = s.r_chain is not None and s.r_chain.every_response
        self.level = SecurityLevel.R_MAC if every else SecurityLevel.NONE

    # -- secure messaging --------------------------------------------------------------------------------------
    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect ``command`` at the session's level (E.4.4, E.4.6); LocalProtocolError if it cannot fit.

        The CLA keeps its class and logical channel and gains the secure messaging bit; the MAC is computed with
        channel 0 over the clear data; Le is kept and not MACed. With C-DECRYPTION the data, if any, is padded
        (always) and encrypted; a command without data goes without a cryptogram (as GlobalPlatformPro does;
        GPShell encrypts a lone padding block, which our card accepts too). SCP02 has a one-byte Lc (E.4.4):
        extended-length commands are refused, as is any command that would outgrow 255 data bytes once wrapped,
        before any state changes.
        """
        return self._wrap(command, _Pending.COMMAND)

    def _wrap(self, command: CommandApdu, kind: _Pending) -> CommandApdu:
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        s = self._session
        assert s is not None
        self._check_plain_command(command)
        if command.is_extended:
            raise LocalProtocolError("SCP02 secures short APDUs only (one-byte Lc, E.4.4)")
        if not int(self.level) & C_MAC_BIT:
            s.last, s.pending, s.last_opened = command, kind, False
            return command
        data = command.data
        if int(self.level) & C_DEC_BIT and data:
            data = encrypt_command_data(s.session_keys.enc, data)
        if len(data) + _MAC > _SHORT_MAX:
            raise LocalProtocolError(
                f"the wrapped command would carry {len(data) + _MAC} data bytes; at most {_SHORT_MAX} fit"
            )
        mac = s.c_chain.compute(command_mac_input(command, self.i_param))
        s.last_opened = s.c_chain.first and not is_explicit(self.i_param)
        s.c_chain.advance(mac)
        if s.last_opened and self._counter is not None:
            self._counter = min(self._counter + 1, MAX_SEQUENCE_COUNTER)  # the card counts the first C-MAC
        s.last, s.pending = command, kind
        return CommandApdu(
            cla_with_secure_messaging(command.cla), command.ins, command.p1, command.p2, data + mac, le=command.le
        )

    def begin_rmac_session(self, data: bytes = b"", *, every_response: bool = True) -> CommandApdu:
        """BEGIN R-MAC SESSION ``80 7A P1 01 Lc (len || data)``, wrapped at the session's level (E.5.3).

        ``data`` (0 to 24 bytes, e.g. a host challenge) enters the R-MAC computation. P1 is 10 when
        ``every_response`` (each response then carries its R-MAC), else 00 (only END R-MAC SESSION returns it).
        The R-MAC key comes from the sequence counter current now (E.4.1). The first ICV is the C-MAC of the
        EXTERNAL AUTHENTICATE that opened the session (explicit initiation, GP 2.3.1 E.3.2), or the R-MAC over the
        AID (implicit, E.3.3). The response goes through ``unwrap``.
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        s = self._session
        assert s is not None
        if s.r_chain is not None:
            raise LocalProtocolError("an R-MAC session is already running")
        if len(data) > 24:
            raise ValueError(f"BEGIN R-MAC SESSION data is 0 to 24 bytes (Table E-16), got {len(data)}")
        p1 = 0x10 if every_response else 0x00
        command = CommandApdu(
            cla_for_channel(0x80, self.channel), INS_BEGIN_R_MAC_SESSION, p1, 0x01, bytes((len(data),)) + data
        )
        wrapped = self._wrap(command, _Pending.BEGIN_R_MAC)
        s.begin_every_response = every_response
        return wrapped

    def end_rmac_session(self, *, end: bool = True) -> CommandApdu:
        """END R-MAC SESSION ``80 78 00 P2 00`` (P2 03: end and return the R-MAC; 01: return it only) (E.5.4).

        The response (the current R-MAC) goes through ``unwrap``, which verifies it.
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        s = self._session
        assert s is not None
        if s.r_chain is None:
            raise LocalProtocolError("no R-MAC session is running")
        command = CommandApdu(
            cla_for_channel(0x80, self.channel), INS_END_R_MAC_SESSION, 0x00, 0x03 if end else 0x01, le=256
        )
        wrapped = self._wrap(command, _Pending.END_R_MAC)
        s.end_closes = end
        return wrapped

    def unwrap(self, response: ResponseApdu) -> ResponseApdu:
        """Verify the response to the last wrapped command (E.4.5); IntegrityError (and TERMINATED) on a bad R-MAC.

        While an R-MAC session runs, every response is chained. When each response carries its R-MAC, a success
        or warning (9000, 61xx, 62xx, 63xx) ends with 8 R-MAC bytes, removed here. An error status carries no data;
        its R-MAC (over Li = 00) is computed and chained by both sides, and accepted when a card sends it (as
        GlobalPlatformPro expects), though our card does not.
        END R-MAC SESSION's response data is the R-MAC itself and is verified (E.5.4.6).
        """
        if self.state is not _OPEN:
            self._require(ChannelState.OPEN)
        s = self._session
        assert s is not None
        if s.last is None or s.pending is None:
            raise LocalProtocolError("no command was wrapped since the last unwrap; nothing to unwrap")
        command, kind = s.last, s.pending
        s.pending = None
        if kind is _Pending.BEGIN_R_MAC:
            return self._unwrap_begin(s, command, response)
        if kind is _Pending.END_R_MAC:
            return self._unwrap_end(s, response)
        if s.r_chain is None:
            return response
        body = response.data
        if s.r_chain.every_response:
            if response.is_success or response.sw1 == 0x61:
                if len(body) < _MAC:
                    self._fail(IntegrityError(f"the response has {len(body)} data bytes; the R-MAC alone is 8"))
                body, rmac = body[:-_MAC], body[-_MAC:]
                expected = s.r_chain.compute(command, ResponseApdu(body, response.sw))
                if not constant_time_equal(expected, rmac):
                    self._fail(IntegrityError("the R-MAC did not verify"))
                s.r_chain.advance(expected)
                return ResponseApdu(body, response.sw)
            expected = s.r_chain.compute(command, ResponseApdu(b"", response.sw))
            if body and not (len(body) == _MAC and constant_time_equal(expected, body)):
                self._fail(IntegrityError(f"status {response.sw:04X} came with data that no R-MAC protects"))
            s.r_chain.advance(expected)
            return ResponseApdu(b"", response.sw)
        s.r_chain.advance(s.r_chain.compute(command, response))
        return response

    def _unwrap_begin(self, s: _Session, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
        if response.sw != 0x9000:
            return response
        if response.data:
            self._fail(RemoteProtocolError(f"BEGIN R-MAC SESSION answered {len(response.data)} data bytes"))
        assert self._counter is not None
        key = r_mac_key(s.keys, self.i_param, self._counter)
        icv = s.ea_mac if is_explicit(self.i_param) else aid_icv(key, self.aid)
        chain = ResponseMacChain(key, icv, s.begin_every_response)
        chain.advance(chain.compute(command, response))  # the BEGIN pair is covered (E.4.5)
        s.r_chain = chain
        if s.begin_every_response:
            self.level |= SecurityLevel.R_MAC
        return response

    def _unwrap_end(self, s: _Session, response: ResponseApdu) -> ResponseApdu:
        if response.sw != 0x9000:
            return response
        assert s.r_chain is not None
        if not constant_time_equal(response.data, s.r_chain.icv):
            self._fail(IntegrityError("the R-MAC returned by END R-MAC SESSION did not verify"))
        if s.end_closes:
            s.r_chain = None
            self.level &= ~SecurityLevel.R_MAC
        return response

    def encrypt_key(self, key: bytes) -> bytes:
        """Encrypt key material under the DEK session key (constant 0181, E.4.7): 3DES-ECB with explicit
        initiation, 3DES-CBC with a zero IV with implicit initiation; no padding (a multiple of 8 bytes)."""
        self._require(ChannelState.CARD_AUTHENTICATED, ChannelState.EXTERNAL_AUTHENTICATE_SENT, ChannelState.OPEN)
        assert self._session is not None
        return encrypt_sensitive_data(self._session.dek, key, explicit=is_explicit(self.i_param))
