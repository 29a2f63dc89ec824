"""The trace inspector's data: the keys to check with (:class:`KeyOptions`) and what it found (an
:class:`ExchangeReport` per exchange, a :class:`SessionReport` per session, the :class:`TraceReport`).

Split from :mod:`gpchannel.trace.session` so that the per-protocol trackers can use them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.diversification import Diversification
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.scp.common import SecurityLevel
from gpchannel.scp.scp11 import Scp11SessionKeys
from gpchannel.trace.formats import TraceFormat
from gpchannel.trace.scp10_checker import Scp10Secrets
from gpchannel.trace.verifiers import Failure

__all__ = ["ExchangeReport", "KeyOptions", "Role", "SessionReport", "TraceReport"]


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """The keys to check a trace with. Key values never appear in a repr.

    ``keys`` are the static keys, or the master keys when ``diversification`` is not NONE (the card keys are
    then derived with the key diversification data of each INITIALIZE UPDATE response). The key type follows the
    protocol the card announces (3DES for SCP01/02, AES for SCP03) when the lengths allow it. ``scp01_i`` and
    ``scp02_i`` name the i parameter, which those protocols do not put on the wire; None: detected.
    ``keys`` None checks nothing: the sessions are only found and listed. ``scp11_keys`` are the session keys of
    SCP11 sessions (:func:`gpchannel.trace.scp11_checker.parse_session_keys`); each session's receipt picks its own.
    ``scp10`` holds what opens SCP10 sessions (private keys, session keys; :mod:`gpchannel.trace.scp10_checker`).
    """

    keys: StaticKeys | None = field(default=None, repr=False)
    diversification: Diversification = Diversification.NONE
    scp01_i: int | None = None
    scp02_i: int | None = None
    scp11_keys: tuple[Scp11SessionKeys, ...] = field(default=(), repr=False)
    scp10: Scp10Secrets = field(default_factory=Scp10Secrets, repr=False)

    @classmethod
    def single(cls, key: bytes, diversification: Diversification = Diversification.NONE) -> KeyOptions:
        """One key used as ENC, MAC and DEK (the key type is fitted to the protocol later)."""
        key_type = KeyType.DES3 if len(key) == 16 and diversification is not Diversification.KDF3 else KeyType.AES
        return cls(StaticKeys.single(key, 0, key_type), diversification)


class Role(enum.Enum):
    """What an exchange is in the trace."""

    INITIALIZE_UPDATE = "initialize-update"
    EXTERNAL_AUTHENTICATE = "external-authenticate"
    KEY_AGREEMENT = "key-agreement"
    """SCP11's INTERNAL / MUTUAL AUTHENTICATE (the session opens at its receipt); SCP10's PSO [decipher] and the
    INTERNAL AUTHENTICATE of key agreement (the session keys come from them)."""
    INITIATION = "initiation"
    """An SCP10 initiation step: MSE, PSO [verify certificate], GET CHALLENGE, INTERNAL AUTHENTICATE (F.4)."""
    SECURED = "secured"
    """A command of an open session (protected or not, as the level says)."""
    OUTSIDE = "outside"
    """No session is open (or it ended): the command went as it is."""
    UNCHECKED = "unchecked"
    """In a session whose check stopped earlier, or without keys."""


@dataclass(frozen=True, slots=True)
class ExchangeReport:
    """One exchange as found: the wire bytes, the plain ones where they were computed, and the verdict.

    ``checks`` lists what verified (``"card cryptogram"``, ``"C-MAC"``, ``"R-MAC"``, ...). ``failure`` is set on
    the exchange where the session's check stopped, with ``explanation`` for a person.
    """

    index: int
    line: int
    role: Role
    command: CommandApdu
    response: ResponseApdu | None
    plain_command: CommandApdu | None = None
    plain_response: ResponseApdu | None = None
    session: int | None = None
    checks: tuple[str, ...] = ()
    failure: Failure | None = None
    explanation: str = ""


@dataclass(frozen=True, slots=True)
class SessionReport:
    """One secure channel session: where it starts and ends in the trace, what the card announced, the outcome.

    ``key_check_values`` are the KCVs of the static ENC/MAC/DEK keys used (after diversification), safe to show.
    """

    number: int
    first: int
    last: int
    protocol: int | None
    kvn: int | None
    i_param: int | None
    level: SecurityLevel | None
    key_diversification_data: bytes
    sequence_counter: bytes | None
    key_check_values: tuple[bytes, ...] = ()
    failure: Failure | None = None
    failed_at: int | None = None
    explanation: str = ""
    checked: bool = True
    opened: bool = False
    """Whether EXTERNAL AUTHENTICATE succeeded (a host that rejects the card cryptogram sends none)."""
    notes: tuple[str, ...] = ()
    """Remarks that are not failures: an abandoned session, a sequence counter that jumped."""

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class TraceReport:
    """All exchanges of a trace with their verdicts, and the sessions found in it."""

    format: TraceFormat | None
    exchanges: tuple[ExchangeReport, ...]
    sessions: tuple[SessionReport, ...]

    @property
    def first_failure(self) -> ExchangeReport | None:
        """The first exchange where a check failed, if any."""
        return next((e for e in self.exchanges if e.failure is not None), None)

    @property
    def ok(self) -> bool:
        return self.first_failure is None
