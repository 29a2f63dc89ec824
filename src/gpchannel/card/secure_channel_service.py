"""The GlobalPlatform SecureChannel service an application obtains from its associated Security Domain
(``org.globalplatform.SecureChannel``, GP Card API; GP Card Specification 2.3.1, 10.2, 10.3 and 10.6).

Indirect handling (GP 2.3.1, 10.3): the application receives INITIALIZE UPDATE and EXTERNAL AUTHENTICATE and
hands them to :meth:`SecureChannelService.process_security`; the Security Domain it is associated with runs the
protocol (SCP01, SCP02 or SCP03, its own protocol and i parameter) with one of *its* key sets, and the application
then passes its commands through :meth:`~SecureChannelService.unwrap` and its responses through
:meth:`~SecureChannelService.wrap`. The application decides what it accepts by reading
:meth:`~SecureChannelService.get_security_level`.

Theory of operation (what each call does, as the GP API describes it):

* The session lives on the logical channel (``ChannelContext.session``), so it ends, as 10.2.3 asks, when another
  application is selected on that channel, when the channel closes and on card reset. The application's AID is
  the context of SCP02 / SCP03 pseudo-random card challenges (the invoking application).
* ``process_security``: INITIALIZE UPDATE starts a new session (any current one is terminated), EXTERNAL
  AUTHENTICATE opens it; the Session Security Level is P1 of EXTERNAL AUTHENTICATE and the Current Security
  Level becomes that level plus AUTHENTICATED (10.4.1). With a Security Domain that has SCP11 keys, PERFORM
  SECURITY OPERATION, INTERNAL and MUTUAL AUTHENTICATE (data A6 ...) run SCP11 (Amendment F) instead: the level
  is the key agreement's, plus AUTHENTICATED for 11a / 11c only (11b does not authenticate the off-card entity);
  an SCP11-only Security Domain answers INITIALIZE UPDATE with 6D00. Another INS is 6D00, a non-GlobalPlatform
  class 6E00.
* ``unwrap``: without an open session (Session Security Level NO_SECURITY_LEVEL) the command is returned as it
  is and nothing fails; with one, the protocol checks it (C-MAC, C-DECRYPTION; a command without secure
  messaging at a C-MAC level is refused). A failure answers 6982 and *aborts* the session (10.2.3): the Current
  Security Level drops to NO_SECURITY_LEVEL, the Session Security Level stays, and until the session is
  terminated every command with secure messaging is refused with 6982 (commands without it pass unchanged: the
  application sees level 00 and refuses what it protects).
* ``wrap``: adds R-MAC / R-ENCRYPTION when the Current Security Level has them; otherwise (no session, aborted
  session, level without R-MAC) the response goes out as it is.
* ``decrypt_data`` / ``encrypt_data``: sensitive data under the session's data encryption key (SCP01 static DEK
  3DES-ECB, SCP02 session DEK 3DES-ECB (explicit) or -CBC (implicit), SCP03 static DEK AES-CBC IV 0); only in an
  open session (6982 otherwise), block-aligned data only (6700 otherwise); no padding is added or removed
  (Amendment D 6.2.8: "padding is application specific").
* ``reset_security``: terminates the session, both levels back to NO_SECURITY_LEVEL; never fails.

Errors are ``CardError`` subclasses (the status word the GP API's ISOException would carry): the application lets
them propagate, and the card answers with their status word.
"""

from __future__ import annotations

from gpchannel.card.applets import CurrentSecurityLevel
from gpchannel.card.context import CardContext, ChannelContext, open_card_channel
from gpchannel.card.scp11_domain import is_scp11_command, oce_authenticated, process_scp11
from gpchannel.card.state import Application, KeySet
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import des3_ecb_encrypt
from gpchannel.errors import (
    CardError,
    ClaNotSupported,
    ConditionsNotSatisfied,
    InsNotSupported,
    ReferencedDataNotFound,
    SecurityNotSatisfied,
    WrongLength,
)
from gpchannel.scp import scp02, scp03
from gpchannel.scp.common import ChannelState, ScpProtocol
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp11_card import Scp11Card

__all__ = ["CurrentSecurityLevel", "SecureChannelService"]

_INS_INITIALIZE_UPDATE = 0x50
_INS_EXTERNAL_AUTHENTICATE = 0x82


class SecureChannelService:
    """``org.globalplatform.SecureChannel`` of the Security Domain associated with ``application_aid``, on one
    logical channel. See the module docstring for the behaviour of each method.

    The object holds no session state itself (the session is the logical channel's), so an application may keep
    it or ask for it again; the associated Security Domain is looked up on every call, so after an extradition
    (INSTALL [for extradition], GP 2.3.1 11.5.2.3.4) the application uses its new Security Domain's keys.
    """

    def __init__(self, ctx: CardContext, channel: ChannelContext, application_aid: bytes) -> None:
        self._ctx = ctx
        self._channel = channel
        self.application_aid = application_aid

    def __repr__(self) -> str:
        return (
            f"SecureChannelService(application={self.application_aid.hex().upper()}, channel={self._channel.number},"
            f" level={self.get_security_level():02X})"
        )

    # -- the associated Security Domain ---------------------------------------------------------------------------
    def security_domain(self) -> Application:
        """The Security Domain the application is associated with now (GP 2.3.1, 7.2)."""
        state = self._ctx.state
        app = state.application(self.application_aid)
        if app is None:
            raise ReferencedDataNotFound("the application is not in the GlobalPlatform Registry")
        sd = state.application(app.sd_aid)
        if sd is None or sd.sd is None:
            raise ConditionsNotSatisfied("the application has no associated Security Domain")
        return sd

    def _own_session(self) -> bool:
        """Whether the channel's session was opened through this service for the current Security Domain; a
        session of an earlier association (before an extradition) is terminated."""
        channel = self._channel
        if channel.session is None:
            return False
        app = self._ctx.state.application(self.application_aid)
        if app is None or channel.session_sd != app.sd_aid:
            channel.end_session()
            return False
        return True

    def _keyset(self) -> KeySet | None:
        sd = self.security_domain()
        assert sd.sd is not None
        return sd.sd.keyset(self._channel.session_kvn)

    def _persist_counter(self) -> None:
        session, keyset = self._channel.session, self._keyset()
        if session is not None and keyset is not None:
            keyset.sequence_counter = session.sequence_counter

    # -- processSecurity ------------------------------------------------------------------------------------------
    def process_security(self, command: CommandApdu) -> ResponseApdu:
        """``processSecurity``: INITIALIZE UPDATE and EXTERNAL AUTHENTICATE (GP 2.3.1 D.4 and E.5; Amendment D
        7.1) of the Security Domain's protocol. Returns the response (data and 9000); raises CardError with the
        protocol's status word on failure (a failed EXTERNAL AUTHENTICATE leaves no session)."""
        if not command.cla & 0x80:
            raise ClaNotSupported(f"CLA {command.cla:02X} is not a GlobalPlatform class")
        if command.ins == _INS_INITIALIZE_UPDATE:
            return self._initialize_update(command)
        sd = self.security_domain()
        if is_scp11_command(sd, command):  # SCP11 (Amendment F): PSO, INTERNAL / MUTUAL AUTHENTICATE
            return self._scp11(sd, command)
        if command.ins == _INS_EXTERNAL_AUTHENTICATE:
            return self._external_authenticate(command)
        raise InsNotSupported(f"INS {command.ins:02X} is not a security command of the Security Domain")

    def _scp11(self, sd: Application, command: CommandApdu) -> ResponseApdu:
        """An SCP11 initiation step with the Security Domain's SCP11 keys (card/scp11_domain.py); after the key
        agreement the Current Security Level is the session's, with AUTHENTICATED for 11a / 11c only (11b does not
        authenticate the off-card entity)."""
        channel = self._channel
        try:
            response = process_scp11(self._ctx, channel, sd, command)
        except CardError:
            channel.end_session()
            raise
        session = channel.session
        if session is not None and session.state is ChannelState.OPEN:
            channel.session_level = int(self.get_security_level())
        return response

    def _initialize_update(self, command: CommandApdu) -> ResponseApdu:
        channel = self._channel
        channel.end_session()
        sd = self.security_domain()
        assert sd.sd is not None
        if sd.sd.scp == ScpProtocol.SCP11:
            raise InsNotSupported("the Security Domain opens SCP11 sessions only: no INITIALIZE UPDATE")
        keyset = sd.sd.keyset(command.p1)
        if keyset is None:
            raise ReferencedDataNotFound(f"the Security Domain has no key set with KVN {command.p1:02X}")
        session = open_card_channel(
            sd.sd.scp,
            sd.sd.i_param,
            keyset,
            kdd=self._ctx.state.key_diversification_data,
            random=self._ctx.random,
            aid=self.application_aid,
            channel=channel.number,
        )
        channel.session, channel.session_sd, channel.session_kvn = session, sd.aid, keyset.kvn
        try:
            return session.initialize_update(command)
        finally:
            keyset.sequence_counter = session.sequence_counter

    def _external_authenticate(self, command: CommandApdu) -> ResponseApdu:
        channel = self._channel
        session = channel.session if self._own_session() else None
        if session is None or session.state is not ChannelState.INITIALIZED:
            channel.end_session()
            raise ConditionsNotSatisfied("EXTERNAL AUTHENTICATE without a preceding INITIALIZE UPDATE")
        try:
            try:
                response = session.external_authenticate(command)
            finally:
                self._persist_counter()
        except CardError:
            channel.end_session()  # authentication failed: no session to abort, the process restarts (10.4)
            raise
        channel.session_level = int(CurrentSecurityLevel.AUTHENTICATED | CurrentSecurityLevel(int(session.level)))
        return response

    # -- unwrap / wrap --------------------------------------------------------------------------------------------
    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """``unwrap``: the command as the application must process it (secure messaging removed)."""
        channel = self._channel
        session = channel.session if self._own_session() else None
        if session is None:
            return command
        if session.state is ChannelState.OPEN:
            try:
                return session.unwrap(command)
            except SecurityNotSatisfied:
                session.terminate()  # aborted: Current Security Level NO_SECURITY_LEVEL, Session level kept
                raise
        if session.state is ChannelState.INITIALIZED:
            channel.end_session()  # a command other than EXTERNAL AUTHENTICATE abandons the initiation
            return command
        if channel.session_level and cla_has_secure_messaging(command.cla):
            raise SecurityNotSatisfied("the secure channel session was aborted; open a new one")
        if not channel.session_level:
            channel.end_session()
        return command

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """``wrap``: the response with R-MAC / R-ENCRYPTION when the Current Security Level has them."""
        session = self._channel.session if self._own_session() else None
        if session is None or session.state is not ChannelState.OPEN:
            return response
        return session.wrap(response)

    # -- sensitive data -------------------------------------------------------------------------------------------
    def _open_session_or_fail(self) -> tuple[ScpProtocol, int]:
        session = self._channel.session if self._own_session() else None
        if session is None or session.state is not ChannelState.OPEN:
            raise SecurityNotSatisfied("no open secure channel session")
        protocol = ScpProtocol(session.protocol)
        return protocol, 16 if protocol in (ScpProtocol.SCP03, ScpProtocol.SCP11) else 8

    def decrypt_data(self, data: bytes) -> bytes:
        """``decryptData``: sensitive data decrypted with the session's data encryption key (see the module)."""
        _, block = self._open_session_or_fail()
        if not data or len(data) % block:
            raise WrongLength(f"encrypted data must be a non-empty multiple of {block} bytes, got {len(data)}")
        session = self._channel.session
        assert session is not None
        return session.decrypt_key(data)

    def encrypt_data(self, data: bytes) -> bytes:
        """``encryptData``: sensitive data encrypted with the session's data encryption key (see the module)."""
        protocol, block = self._open_session_or_fail()
        if not data or len(data) % block:
            raise WrongLength(f"data to encrypt must be a non-empty multiple of {block} bytes, got {len(data)}")
        session = self._channel.session
        if isinstance(session, Scp11Card):
            return session.encrypt_data(data)
        keyset = self._keyset()
        if keyset is None:
            raise SecurityNotSatisfied("the session's key set is gone")
        if protocol is ScpProtocol.SCP03:
            return scp03.encrypt_sensitive_data(keyset.dek, data)
        if isinstance(session, Scp02Card):
            keys = session.session_keys
            if keys is None:
                raise SecurityNotSatisfied("no session data encryption key")
            return scp02.encrypt_sensitive_data(keys.dek, data, explicit=scp02.is_explicit(session.i_param))
        return des3_ecb_encrypt(keyset.dek, data)

    # -- levels ---------------------------------------------------------------------------------------------------
    def get_security_level(self) -> CurrentSecurityLevel:
        """``getSecurityLevel``: the Current Security Level (Table 10-1): AUTHENTICATED and the session's level
        while the session is open; NO_SECURITY_LEVEL without a session, during initiation and once aborted."""
        session = self._channel.session if self._own_session() else None
        if session is None or session.state is not ChannelState.OPEN:
            return CurrentSecurityLevel.NO_SECURITY_LEVEL
        level = CurrentSecurityLevel(int(session.level))
        return level | CurrentSecurityLevel.AUTHENTICATED if oce_authenticated(session) else level

    def reset_security(self) -> None:
        """``resetSecurity``: terminate the session and erase its keys; both levels NO_SECURITY_LEVEL."""
        if self._channel.session is not None and self._own_session():
            self._channel.end_session()
