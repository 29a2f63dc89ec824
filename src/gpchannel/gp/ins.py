"""The Security Domain commands: one row per instruction byte, with what the card and its traces need to know.

GP 2.3.1 Table 11-1 lists the commands and Table 11-2 the ones that need an authenticated secure channel; 5.1.1.4
(CARD_LOCKED: no card content changes) and 5.1.1.5 (TERMINATED: GET DATA only) say which may run in which card
life cycle state. SELECT, MANAGE CHANNEL and GET RESPONSE are the card's own (ISO/IEC 7816-4) and are processed
before a Security Domain sees a command; they are not rows here.

Adding a Security Domain command is one row here and, on the card, its handler in
:mod:`gpchannel.card.security_domain`.
"""

from __future__ import annotations

from enum import Flag, IntEnum, auto

__all__ = ["Ins", "Trait", "redacts", "sd_command"]


class Trait(Flag):
    """A property of a Security Domain command (a column of :class:`Ins`)."""

    AUTHENTICATED = auto()
    """Needs an authenticated secure channel (GP 2.3.1 Table 11-2)."""
    CHANGES_CONTENT = auto()
    """Changes the card content: refused on a CARD_LOCKED card (5.1.1.4)."""
    READ_ONLY = auto()
    """Never changes what the card persists: the card commits nothing after it."""
    REDACTED = auto()
    """Its data may carry keys (PUT KEY 11.8, STORE DATA key DGIs 11.11): traces show its length only."""
    INTERINDUSTRY = auto()
    """GET DATA: taken with an ISO class byte (11.3) and on a TERMINATED card (5.1.1.5); every other command needs
    the GlobalPlatform (proprietary) class and a card that is not TERMINATED."""
    CHANNEL = auto()
    """Belongs to the secure channel protocol (its initiation, SCP02's R-MAC session), not to the Security Domain's
    card content management; a protocol initiated by steps (SCP10) has its own commands instead."""


_AUTH, _CONTENT, _READ_ONLY, _REDACTED = Trait.AUTHENTICATED, Trait.CHANGES_CONTENT, Trait.READ_ONLY, Trait.REDACTED


class Ins(IntEnum):
    """A Security Domain instruction byte, its name in the specification and its :class:`Trait` s."""

    title: str
    traits: Trait
    authenticated: bool
    changes_content: bool
    read_only: bool
    redacted: bool
    interindustry: bool
    channel: bool

    def __new__(cls, value: int, title: str, traits: Trait) -> Ins:
        member = int.__new__(cls, value)
        member._value_ = value
        member.title = title
        member.traits = traits
        # The columns as plain attributes: read on every command, so no Flag test per read.
        member.authenticated = Trait.AUTHENTICATED in traits
        member.changes_content = Trait.CHANGES_CONTENT in traits
        member.read_only = Trait.READ_ONLY in traits
        member.redacted = Trait.REDACTED in traits
        member.interindustry = Trait.INTERINDUSTRY in traits
        member.channel = Trait.CHANNEL in traits
        return member

    INITIALIZE_UPDATE = (0x50, "INITIALIZE UPDATE", Trait.CHANNEL)
    EXTERNAL_AUTHENTICATE = (0x82, "EXTERNAL AUTHENTICATE", Trait.CHANNEL)
    GET_DATA = (0xCA, "GET DATA", _READ_ONLY | Trait.INTERINDUSTRY)
    GET_DATA_ODD = (0xCB, "GET DATA", _READ_ONLY | Trait.INTERINDUSTRY)
    GET_STATUS = (0xF2, "GET STATUS", _AUTH | _READ_ONLY)
    DELETE = (0xE4, "DELETE", _AUTH | _CONTENT)
    INSTALL = (0xE6, "INSTALL", _AUTH | _CONTENT)
    LOAD = (0xE8, "LOAD", _AUTH | _CONTENT)
    PUT_KEY = (0xD8, "PUT KEY", _AUTH | _CONTENT | _REDACTED)
    SET_STATUS = (0xF0, "SET STATUS", _AUTH)
    STORE_DATA = (0xE2, "STORE DATA", _AUTH | _CONTENT | _REDACTED)
    GENERATE_KEY = (0xF1, "GENERATE KEY", _AUTH | _CONTENT)
    """An SCP11 SK.SD.ECKA key pair made on the card (INS F1, P1 the KVN replaced, P2 the KID; data the new KVN and
    ``F0`` curve; answer ``B0`` point): not in GP 2.3.1 Table 11-1, taken as YubiKeys do (docs/scp11.md)."""
    BEGIN_R_MAC_SESSION = (0x7A, "BEGIN R-MAC SESSION", _AUTH | Trait.CHANNEL)
    END_R_MAC_SESSION = (0x78, "END R-MAC SESSION", _AUTH | Trait.CHANNEL)


_BY_CODE: dict[int, Ins] = {int(member): member for member in Ins}


def sd_command(ins: int) -> Ins | None:
    """The Security Domain command of an instruction byte, or None when no row has it."""
    return _BY_CODE.get(ins)


def redacts(ins: int) -> bool:
    """Whether a trace or a log shows the data of a command with this instruction byte by its length only (the
    ``redacted`` column): key material, even enciphered, stays out of the card's raw and plain traces alike."""
    command = sd_command(ins)
    return command is not None and command.redacted
