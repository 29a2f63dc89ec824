"""Python applets: the code behind installed application instances (Java Card bytecode is not executed).

An :class:`Applet` subclass is registered by name in an :class:`AppletRegistry`; the profile (``kind``) or the
INSTALL command maps an application AID to a name. The OPEN calls ``install`` once (GP 2.3.1, 11.5.2.3.2: the
instance AID, privileges and application specific parameters are made known to the application), then
``select`` / ``process`` / ``deselect`` during sessions. ``data`` is the instance's persistent data (a JSON
compatible dict, committed with the card state after each command that changes it).

Built in: ``echo``, which answers any command with its own data field (and 9000), ``INS CA`` with its
install parameters, and ``INS 6F`` with 6F00 to exercise errors. :func:`gpchannel.card.builtin_applets.default_registry`
registers it with the example applets of :mod:`gpchannel.card.applets_examples` (indirect and direct handling of
the secure channel).

Before ``select``, ``process`` and ``deselect`` the card binds an :class:`AppletEnvironment` to the applet: its
logical channel, its install parameters, the card's random source and the GlobalPlatform SecureChannel service of
its associated Security Domain (``get_secure_channel()``, as ``GPSystem.getSecureChannel()``; GP 2.3.1, 10.3): an
object with the methods of the :class:`SecureChannel` interface (the card's is
:class:`gpchannel.card.secure_channel_service.SecureChannelService`).
Commands with the secure messaging bit reach only applets whose ``secure_messaging`` is True (6882 otherwise).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import CardError, ConditionsNotSatisfied, InsNotSupported
from gpchannel.scp.common import RandomSource

if TYPE_CHECKING:
    from gpchannel.crypto.keys import StaticKeys

__all__ = ["Applet", "AppletEnvironment", "AppletRegistry", "CurrentSecurityLevel", "EchoApplet", "SecureChannel"]


class CurrentSecurityLevel(enum.IntFlag):
    """The Current Security Level bit map of GP 2.3.1 Table 10-1 (the value of ``getSecurityLevel()``)."""

    NO_SECURITY_LEVEL = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20
    ANY_AUTHENTICATED = 0x40
    AUTHENTICATED = 0x80


class SecureChannel(Protocol):
    """The ``org.globalplatform.SecureChannel`` interface an applet calls (GP Card API; GP 2.3.1, 10.2 and 10.3)."""

    def process_security(self, command: CommandApdu) -> ResponseApdu:
        """``processSecurity``: INITIALIZE UPDATE and EXTERNAL AUTHENTICATE."""
        ...

    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """``unwrap``: the command with its secure messaging removed."""
        ...

    def wrap(self, response: ResponseApdu) -> ResponseApdu:
        """``wrap``: the response with the secure messaging the Current Security Level asks for."""
        ...

    def decrypt_data(self, data: bytes) -> bytes:
        """``decryptData``: sensitive data under the session's data encryption key."""
        ...

    def encrypt_data(self, data: bytes) -> bytes:
        """``encryptData``: sensitive data under the session's data encryption key."""
        ...

    def get_security_level(self) -> CurrentSecurityLevel:
        """``getSecurityLevel``: the Current Security Level (Table 10-1)."""
        ...

    def reset_security(self) -> None:
        """``resetSecurity``: terminate the session."""
        ...


@dataclass(frozen=True, slots=True)
class AppletEnvironment:
    """What the card gives an applet for the command being processed (runtime only, never persisted)."""

    channel: int
    install_parameters: bytes = field(repr=False)
    random: RandomSource = field(repr=False)
    secure_channel: SecureChannel | None = field(default=None, repr=False)


class Applet:
    """Base class of Python applets. Raise a ``CardError`` to answer with its status word."""

    name: ClassVar[str] = ""
    secure_messaging: ClassVar[bool] = False
    """True for applets that take commands with the secure messaging bit (CLA b3) themselves."""
    environment: AppletEnvironment | None = None

    def __init__(self, aid: bytes, data: dict[str, Any]) -> None:
        self.aid = aid
        self.data = data

    @classmethod
    def own_key_set(cls, parameters: bytes) -> StaticKeys | None:
        """The key set an instance installed with ``parameters`` runs its own secure channel with (direct handling,
        GP 2.3.1 10.3), or None: it has none, its Security Domain's keys serve (the default)."""
        return None

    def install(self, parameters: bytes, privileges: bytes) -> None:
        """Called once when the instance is created (``parameters`` is the value of tag C9)."""
        self.data["installed_with"] = parameters.hex().upper()

    def select(self, command: CommandApdu) -> ResponseApdu:
        """The instance was selected; the answer is the SELECT response."""
        return ResponseApdu()

    def deselect(self) -> None:
        """Another application is selected on this logical channel, or the channel closes."""

    def personalize(self, command: CommandApdu) -> ResponseApdu:
        """STORE DATA forwarded by the Security Domain after INSTALL [for personalization] (GP 2.3.1, 11.11)."""
        blocks: list[str] = self.data.setdefault("store_data", [])
        blocks.append(command.data.hex().upper())
        return ResponseApdu()

    def process(self, command: CommandApdu) -> ResponseApdu:
        raise InsNotSupported(f"{self.name or type(self).__name__} does not process INS {command.ins:02X}")

    def bind(self, environment: AppletEnvironment) -> None:
        """Called by the card before ``select`` / ``process`` / ``deselect``."""
        self.environment = environment

    def get_secure_channel(self) -> SecureChannel:
        """The SecureChannel service of the associated Security Domain on the current logical channel
        (``GPSystem.getSecureChannel()``); 6985 outside a card (no environment bound)."""
        if self.environment is None or self.environment.secure_channel is None:
            raise ConditionsNotSatisfied("no SecureChannel service is available to this applet")
        return self.environment.secure_channel


class EchoApplet(Applet):
    """Echo the command data; counts the commands it processed in its persistent data."""

    name = "echo"

    def process(self, command: CommandApdu) -> ResponseApdu:
        if command.ins == 0x6F:
            raise CardError("echo: asked to fail", sw=0x6F00)
        if command.ins == 0xCA:
            return ResponseApdu(bytes.fromhex(self.data.get("installed_with", "")))
        self.data["count"] = int(self.data.get("count", 0)) + 1
        return ResponseApdu(command.data)


class AppletRegistry:
    """Applet classes by name. Not global: each card gets its registry (``default_registry()`` for built-ins)."""

    def __init__(self) -> None:
        self._classes: dict[str, Callable[[bytes, dict[str, Any]], Applet]] = {}

    def register(self, name: str, cls: Callable[[bytes, dict[str, Any]], Applet]) -> None:
        if not name:
            raise ValueError("an applet class needs a non-empty name")
        self._classes[name] = cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def own_key_set(self, name: str, parameters: bytes) -> StaticKeys | None:
        """:meth:`Applet.own_key_set` of the class registered as ``name`` (None for an unknown name)."""
        factory = self._classes.get(name)
        if not isinstance(factory, type) or not issubclass(factory, Applet):
            return None
        return factory.own_key_set(parameters)

    def create(self, name: str, aid: bytes, data: dict[str, Any]) -> Applet:
        try:
            factory = self._classes[name]
        except KeyError:
            raise LookupError(f"no applet class named {name!r}; known: {', '.join(self.names())}") from None
        return factory(aid, data)
