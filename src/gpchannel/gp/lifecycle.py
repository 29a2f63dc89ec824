"""Life cycle states and their allowed transitions (GP Card Specification 2.3.1, chapter 5 and 11.1.1).

* The card life cycle (Table 11-6, Figure 5-1), inherited by the Issuer Security Domain:
  OP_READY -> INITIALIZED -> SECURED <-> CARD_LOCKED, and any state -> TERMINATED. Forward moves may skip
  INITIALIZED; CARD_LOCKED is entered from SECURED only (5.1.1.4); TERMINATED is final (5.1.1.5).
* The Executable Load File life cycle (Table 11-3): only LOADED (01).
* The Application life cycle (Table 11-4, Figure 5-2): INSTALLED 03, SELECTABLE 07, application-specific
  states ``0xxxx111``, LOCKED (b8 set over the previous state). A byte, since applications own b7-b4.
* The Security Domain life cycle (Table 11-5, Figure 5-3): INSTALLED 03, SELECTABLE 07, PERSONALIZED 0F,
  LOCKED (b8 set over the previous state).

Locking sets b8 and keeps the other bits, so that unlocking "returns to the previous state" (5.3.1.3) by
clearing b8 again.
"""

from __future__ import annotations

import enum

from gpchannel.errors import DecodeError

__all__ = [
    "APPLICATION_INSTALLED",
    "APPLICATION_SELECTABLE",
    "LOAD_FILE_LOADED",
    "LOCKED_BIT",
    "SD_INSTALLED",
    "SD_PERSONALIZED",
    "SD_SELECTABLE",
    "CardLifeCycle",
    "application_state_name",
    "check_application_transition",
    "check_sd_transition",
    "is_locked",
    "is_selectable",
    "lock",
    "sd_state_name",
    "unlock",
]

LOAD_FILE_LOADED = 0x01
APPLICATION_INSTALLED = 0x03
APPLICATION_SELECTABLE = 0x07
SD_INSTALLED = 0x03
SD_SELECTABLE = 0x07
SD_PERSONALIZED = 0x0F
LOCKED_BIT = 0x80


class CardLifeCycle(enum.IntEnum):
    """The card life cycle state (Table 11-6)."""

    OP_READY = 0x01
    INITIALIZED = 0x07
    SECURED = 0x0F
    CARD_LOCKED = 0x7F
    TERMINATED = 0xFF

    @classmethod
    def from_byte(cls, value: int) -> CardLifeCycle:
        try:
            return cls(value)
        except ValueError:
            raise DecodeError(f"card life cycle {value:02X} is none of 01, 07, 0F, 7F, FF") from None

    @classmethod
    def from_name(cls, name: str) -> CardLifeCycle:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"card life cycle {name!r}: expected one of {', '.join(c.name for c in cls)}") from None

    def can_become(self, target: CardLifeCycle) -> bool:
        """Whether Figure 5-1 allows the transition ``self -> target`` (no transition to the same state)."""
        return target in _CARD_TRANSITIONS[self]


_CARD_TRANSITIONS: dict[CardLifeCycle, frozenset[CardLifeCycle]] = {
    CardLifeCycle.OP_READY: frozenset({CardLifeCycle.INITIALIZED, CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.INITIALIZED: frozenset({CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.SECURED: frozenset({CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.CARD_LOCKED: frozenset({CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.TERMINATED: frozenset(),
}


def is_locked(state: int) -> bool:
    """LOCKED application or Security Domain (b8 set, Tables 11-4 and 11-5)."""
    return bool(state & LOCKED_BIT)


def is_selectable(state: int) -> bool:
    """SELECTABLE or a later state (b3 b2 b1 = 111) and not LOCKED."""
    return not is_locked(state) and state & 0x07 == 0x07


def lock(state: int) -> int:
    return state | LOCKED_BIT


def unlock(state: int) -> int:
    return state & ~LOCKED_BIT & 0xFF


def _check_byte(state: int, what: str) -> None:
    if not 0 <= state <= 0xFF:
        raise ValueError(f"{what} life cycle must be a byte, got {state}")


def check_application_transition(current: int, target: int) -> None:
    """Raise ValueError unless SET STATUS may move an application from ``current`` to ``target`` (5.3.1).

    Allowed: INSTALLED -> SELECTABLE; SELECTABLE or application specific -> application specific (the
    application's own states, ``0xxxx111``); any unlocked state -> LOCKED (b8 set on the same state);
    LOCKED -> the state it was locked from.
    """
    _check_byte(current, "application")
    _check_byte(target, "application")
    if target & 0x03 != 0x03:
        raise ValueError(f"application life cycle {target:02X}: b2 b1 must be 11 (Table 11-4)")
    if is_locked(current):
        if target != unlock(current):
            raise ValueError(f"a LOCKED application returns to its previous state {unlock(current):02X} only")
        return
    if is_locked(target):
        if target != lock(current):
            raise ValueError(f"locking keeps the current state: expected {lock(current):02X}, got {target:02X}")
        return
    if current == APPLICATION_INSTALLED and target == APPLICATION_SELECTABLE:
        return
    if current & 0x07 == 0x07 and target & 0x07 == 0x07 and target != current:
        if target == APPLICATION_SELECTABLE:
            raise ValueError("an application cannot return to SELECTABLE from its own states")
        return
    raise ValueError(f"application life cycle {current:02X} -> {target:02X} is not allowed (Figure 5-2)")


def check_sd_transition(current: int, target: int) -> None:
    """Raise ValueError unless a Security Domain may move from ``current`` to ``target`` (5.3.2, Figure 5-3).

    Allowed: INSTALLED -> SELECTABLE -> PERSONALIZED (also INSTALLED -> PERSONALIZED), any -> LOCKED, and
    LOCKED -> the state it was locked from.
    """
    _check_byte(current, "Security Domain")
    _check_byte(target, "Security Domain")
    if is_locked(current):
        if target != unlock(current):
            raise ValueError(f"a LOCKED Security Domain returns to its previous state {unlock(current):02X} only")
        return
    if is_locked(target):
        if target != lock(current):
            raise ValueError(f"locking keeps the current state: expected {lock(current):02X}, got {target:02X}")
        return
    order = (SD_INSTALLED, SD_SELECTABLE, SD_PERSONALIZED)
    if target in order and current in order and order.index(target) > order.index(current):
        return
    raise ValueError(f"Security Domain life cycle {current:02X} -> {target:02X} is not allowed (Figure 5-3)")


def application_state_name(state: int) -> str:
    """A readable name for an application life cycle byte (Table 11-4)."""
    base = unlock(state)
    if base == APPLICATION_INSTALLED:
        name = "INSTALLED"
    elif base == APPLICATION_SELECTABLE:
        name = "SELECTABLE"
    elif base & 0x07 == 0x07:
        name = f"APPLICATION_SPECIFIC({base:02X})"
    else:
        name = f"UNKNOWN({base:02X})"
    return f"LOCKED({name})" if is_locked(state) else name


def sd_state_name(state: int) -> str:
    """A readable name for a Security Domain life cycle byte (Table 11-5)."""
    names = {SD_INSTALLED: "INSTALLED", SD_SELECTABLE: "SELECTABLE", SD_PERSONALIZED: "PERSONALIZED"}
    name = names.get(unlock(state), f"UNKNOWN({unlock(state):02X})")
    return f"LOCKED({name})" if is_locked(state) else name
