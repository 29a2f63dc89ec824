"""Two example applets: the two ways an application can use a secure channel (GP Card Specification 2.3.1, 10.3).

``secure-store`` (:class:`SecureStoreApplet`), *indirect handling*: a small key-value store that lets its
associated Security Domain run the secure channel through the SecureChannel service
(:mod:`gpchannel.card.secure_channel_service`). It hands INITIALIZE UPDATE and EXTERNAL AUTHENTICATE (and SCP11's
PERFORM SECURITY OPERATION, INTERNAL and MUTUAL AUTHENTICATE, when the Security Domain has SCP11 keys) to
``process_security``, unwraps every other command, refuses it with 6982 unless the Current Security Level is
AUTHENTICATED with at least the level it requires, and wraps its answers (R-MAC / R-ENCRYPTION when the level
has them). The keys are the Security Domain's: put it under an SSD with its own key set, or extradite it to one,
and the host must use that SSD's keys.

``scp03-direct`` (:class:`DirectScp03Applet`), *direct handling*: runs SCP03 itself (``Scp03Card`` from the
library) with its own key set from its install parameters, without its Security Domain.

Install parameters (the value of tag C9, GP 2.3.1 11.5.2.3.7):

* ``secure-store``: empty, or one byte: the security level it requires (P1 coding of EXTERNAL AUTHENTICATE:
  01, 03, 11, 13, 33; default 01). AUTHENTICATED is always required.
* ``scp03-direct``: ``KVN || i || level || Key-ENC || Key-MAC || Key-DEK`` with three AES keys of the same length
  (16, 24 or 32 bytes); its key diversification data are the first 10 bytes of its AID (zero padded) and its
  sequence counter lives in its persistent data.

Commands (class 80, or 84 with secure messaging; any logical channel):

==========  ======================  ============================================================================
INS         secure-store            scp03-direct
==========  ======================  ============================================================================
50, 82      to process_security     INITIALIZE UPDATE, EXTERNAL AUTHENTICATE of its own SCP03 session
2A, 88      to process_security     -
DA          PUT: ``Lk key value``   -
CA          GET: ``key`` -> value   -
E4          DELETE: ``key``         -
10          -                       ECHO: the command data back
12          -                       LEVEL: one byte, the session's security level
==========  ======================  ============================================================================

For INSTALL, both are registered under their Executable Module AIDs too (``F0677063680001`` 01 and 02): load any
Executable Load File with that AID and those modules, then install instances of them.
"""

from __future__ import annotations

from typing import Any

from gpchannel.card.applets import Applet, AppletRegistry, CurrentSecurityLevel
from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import (
    CardError,
    ClaNotSupported,
    ConditionsNotSatisfied,
    IncorrectData,
    IncorrectP1P2,
    InsNotSupported,
    ReferencedDataNotFound,
    SecurityNotSatisfied,
)
from gpchannel.scp.common import ChannelState, SecurityLevel
from gpchannel.scp.scp03_card import Scp03Card

__all__ = [
    "DIRECT_MODULE_AID",
    "EXAMPLES_PACKAGE_AID",
    "SECURE_STORE_MODULE_AID",
    "DirectScp03Applet",
    "SecureStoreApplet",
    "register_examples",
]

EXAMPLES_PACKAGE_AID = bytes.fromhex("F0677063680001")
"""The Executable Load File AID the example applets are registered for (proprietary RID F0 'gpch')."""
SECURE_STORE_MODULE_AID = EXAMPLES_PACKAGE_AID + b"\x01"
DIRECT_MODULE_AID = EXAMPLES_PACKAGE_AID + b"\x02"

_SW_NOT_ENOUGH_MEMORY = 0x6A84
MAX_ENTRIES = 16
MAX_KEY = 32
MAX_VALUE = 128


def _level_byte(value: int) -> SecurityLevel:
    try:
        return SecurityLevel.from_byte(value)
    except ValueError as exc:
        raise IncorrectData(f"install parameters: {exc}") from None


def _check_class(command: CommandApdu) -> None:
    if not command.cla & 0x80:
        raise ClaNotSupported(f"CLA {command.cla:02X}: the example applets take GlobalPlatform classes only")


def _check_p1p2(command: CommandApdu) -> None:
    if command.p1 or command.p2:
        raise IncorrectP1P2("P1 = P2 = 00")


class SecureStoreApplet(Applet):
    """A key-value store protected by its Security Domain's secure channel (indirect handling, GP 2.3.1 10.3)."""

    name = "secure-store"
    secure_messaging = True

    def install(self, parameters: bytes, privileges: bytes) -> None:
        """C9 = nothing or the required level byte; 6A80 for anything else."""
        if len(parameters) > 1:
            raise IncorrectData("secure-store install parameters: at most one byte, the required security level")
        if parameters:
            _level_byte(parameters[0])
        super().install(parameters, privileges)

    @property
    def required_level(self) -> SecurityLevel:
        """The level it requires (C9), C-MAC when none was given."""
        parameters = self.environment.install_parameters if self.environment is not None else b""
        return _level_byte(parameters[0]) if len(parameters) == 1 else SecurityLevel.C_MAC

    def deselect(self) -> None:
        # The GP API recommends resetSecurity() in deselect(); the card has already ended the session anyway.
        self.get_secure_channel().reset_security()

    def process(self, command: CommandApdu) -> ResponseApdu:
        _check_class(command)
        channel = self.get_secure_channel()
        if command.ins in (0x50, 0x82, 0x2A, 0x88):  # SCP01/02/03, or SCP11 when the SD has SCP11 keys
            return channel.process_security(command)
        plain = channel.unwrap(command)  # 6982 on a bad C-MAC / cryptogram (the session is then aborted)
        level = channel.get_security_level()
        required = CurrentSecurityLevel.AUTHENTICATED | CurrentSecurityLevel(int(self.required_level))
        try:
            if required not in level:
                raise SecurityNotSatisfied(f"secure-store requires level {int(required):02X}; it is {level:02X}")
            response = self._handle(plain)
        except CardError as exc:
            response = ResponseApdu(sw=exc.sw)  # the session stays; the protocol decides what an error carries
        return channel.wrap(response)

    def _values(self) -> dict[str, str]:
        values: dict[str, str] = self.data.setdefault("values", {})
        return values

    def _handle(self, command: CommandApdu) -> ResponseApdu:
        _check_p1p2(command)
        data = command.data
        values = self._values()
        if command.ins == 0xDA:
            if not data or not 1 <= data[0] <= MAX_KEY or len(data) < 1 + data[0]:
                raise IncorrectData(f"PUT: Lk (1..{MAX_KEY}) || key || value")
            key, value = data[1 : 1 + data[0]].hex().upper(), data[1 + data[0] :]
            if len(value) > MAX_VALUE:
                raise IncorrectData(f"PUT: a value is at most {MAX_VALUE} bytes")
            if key not in values and len(values) >= MAX_ENTRIES:
                raise CardError("the store is full", sw=_SW_NOT_ENOUGH_MEMORY)
            values[key] = value.hex().upper()
            return ResponseApdu()
        if command.ins in (0xCA, 0xE4):
            if not 1 <= len(data) <= MAX_KEY:
                raise IncorrectData(f"the key is 1..{MAX_KEY} bytes")
            key = data.hex().upper()
            if key not in values:
                raise ReferencedDataNotFound("no value under this key")
            if command.ins == 0xE4:
                del values[key]
                return ResponseApdu()
            return ResponseApdu(bytes.fromhex(values[key]))
        raise InsNotSupported(f"secure-store does not process INS {command.ins:02X}")


class DirectScp03Applet(Applet):
    """An applet that runs SCP03 itself with its own keys (direct handling, GP 2.3.1 10.3; Amendment D)."""

    name = "scp03-direct"
    secure_messaging = True

    def __init__(self, aid: bytes, data: dict[str, Any]) -> None:
        super().__init__(aid, data)
        self._sessions: dict[int, Scp03Card] = {}

    def __repr__(self) -> str:
        return f"DirectScp03Applet(aid={self.aid.hex().upper()}, sessions={sorted(self._sessions)})"

    @staticmethod
    def parse_parameters(parameters: bytes) -> tuple[StaticKeys, int, SecurityLevel]:
        """``KVN || i || level || ENC || MAC || DEK`` -> (keys, i, level); IncorrectData (6A80) if malformed."""
        length = (len(parameters) - 3) // 3
        if len(parameters) < 3 or length not in (16, 24, 32) or 3 + 3 * length != len(parameters):
            raise IncorrectData("scp03-direct install parameters: KVN || i || level || three 16/24/32-byte AES keys")
        kvn, i_param, level = parameters[0], parameters[1], _level_byte(parameters[2])
        if i_param & ~0x78 or i_param & 0x08:
            raise IncorrectData(f"scp03-direct install parameters: i={i_param:02X} is not an S8 SCP03 i")
        keys = [parameters[3 + n * length : 3 + (n + 1) * length] for n in range(3)]
        return StaticKeys(keys[0], keys[1], keys[2], kvn, KeyType.AES), i_param, level

    @classmethod
    def own_key_set(cls, parameters: bytes) -> StaticKeys | None:
        """Its key set, from its install parameters (None when they are malformed: INSTALL refuses those)."""
        try:
            return cls.parse_parameters(parameters)[0]
        except CardError:
            return None

    def install(self, parameters: bytes, privileges: bytes) -> None:
        self.parse_parameters(parameters)
        self.data["sequence_counter"] = 0

    def _config(self) -> tuple[StaticKeys, int, SecurityLevel]:
        parameters = self.environment.install_parameters if self.environment is not None else b""
        if not parameters:
            raise ConditionsNotSatisfied("scp03-direct was installed without its key set (C9)")
        return self.parse_parameters(parameters)

    @property
    def _channel(self) -> int:
        return self.environment.channel if self.environment is not None else 0

    def deselect(self) -> None:
        """The application session ends: so does its secure channel session (GP 2.3.1, 10.2.3)."""
        session = self._sessions.pop(self._channel, None)
        if session is not None:
            session.terminate()

    def process(self, command: CommandApdu) -> ResponseApdu:
        _check_class(command)
        if command.ins == 0x50:
            return self._initialize_update(command)
        if command.ins == 0x82:
            session = self._sessions.get(self._channel)
            if session is None or session.state is not ChannelState.INITIALIZED:
                self._sessions.pop(self._channel, None)
                raise ConditionsNotSatisfied("EXTERNAL AUTHENTICATE without a preceding INITIALIZE UPDATE")
            try:
                return session.external_authenticate(command)
            except CardError:
                self._sessions.pop(self._channel, None)
                raise
        session = self._sessions.get(self._channel)
        if session is None or session.state is not ChannelState.OPEN:
            self._sessions.pop(self._channel, None)
            reason = "secure messaging without a session" if cla_has_secure_messaging(command.cla) else "no session"
            raise SecurityNotSatisfied(f"scp03-direct: {reason}")
        try:
            plain = session.unwrap(command)
        except SecurityNotSatisfied:
            self._sessions.pop(self._channel, None)
            raise
        _, _, required = self._config()
        try:
            if required not in session.level:
                raise SecurityNotSatisfied(f"scp03-direct requires level {int(required):02X}")
            response = self._handle(plain, session)
        except CardError as exc:
            response = ResponseApdu(sw=exc.sw)
        return session.wrap(response)

    def _initialize_update(self, command: CommandApdu) -> ResponseApdu:
        keys, i_param, _ = self._config()
        old = self._sessions.pop(self._channel, None)
        if old is not None:
            old.terminate()
        if self.environment is None:
            raise ConditionsNotSatisfied("scp03-direct runs only on a card")
        session = Scp03Card(
            keys,
            i_param=i_param,
            key_diversification_data=(self.aid + bytes(10))[:10],
            sequence_counter=int(self.data.get("sequence_counter", 0)),
            random=self.environment.random,
            aid=self.aid,
            channel=self._channel,
        )
        response = session.initialize_update(command)
        self.data["sequence_counter"] = session.sequence_counter
        self._sessions[self._channel] = session
        return response

    @staticmethod
    def _handle(command: CommandApdu, session: Scp03Card) -> ResponseApdu:
        _check_p1p2(command)
        if command.ins == 0x10:
            return ResponseApdu(command.data)
        if command.ins == 0x12:
            return ResponseApdu(bytes((int(session.level),)))
        raise InsNotSupported(f"scp03-direct does not process INS {command.ins:02X}")


def register_examples(registry: AppletRegistry) -> None:
    """Register ``secure-store`` and ``scp03-direct`` in ``registry``, by name (profiles: ``kind``) and by
    Executable Module AID (INSTALL [for install] of a module of a loaded ``EXAMPLES_PACKAGE_AID``)."""
    for module, cls in ((SECURE_STORE_MODULE_AID, SecureStoreApplet), (DIRECT_MODULE_AID, DirectScp03Applet)):
        registry.register(cls.name, cls)
        registry.register(module.hex().upper(), cls)
