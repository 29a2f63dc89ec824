"""Per-card and per-logical-channel runtime context of the emulator (not persisted), and the factory that
builds the card side of a secure channel for a Security Domain's protocol.

A logical channel (ISO 7816-4, 5.4.1; GP 2.3.1 11.7) has its own selected application, its own secure channel
session (GP 2.3.1, 10.2: a session is bound to the logical channel it was opened on), and the continuation
state of multi-command operations (GET STATUS next occurrence, LOAD blocks, chained INSTALL / DELETE data,
INSTALL [for personalization] target, GET RESPONSE remainder).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpchannel.card.applets import Applet, AppletRegistry
from gpchannel.card.state import CardState, KeySet, LoadFile
from gpchannel.card.state_tracker import StateTracker
from gpchannel.errors import ConditionsNotSatisfied, FunctionNotSupported
from gpchannel.scp.common import CardChannel, RandomSource
from gpchannel.scp.registry import PROTOCOLS
from gpchannel.scp.symmetric import SymmetricCardChannel

__all__ = ["CardContext", "ChannelContext", "LoadContext", "open_card_channel"]


def open_card_channel(
    protocol: int,
    i_param: int,
    keyset: KeySet,
    *,
    kdd: bytes,
    random: RandomSource,
    aid: bytes,
    channel: int,
) -> SymmetricCardChannel[Any]:
    """A new card-side session for the Security Domain's protocol, one initiated by INITIALIZE UPDATE (the
    registry's :class:`~gpchannel.scp.registry.CardFactory`); FunctionNotSupported for any other."""
    entry = PROTOCOLS.explicit(protocol)
    if entry is None:
        raise FunctionNotSupported(f"SCP{protocol:02X} is not available in this build")
    try:
        return entry.card(
            keyset.static_keys(),
            i_param=i_param,
            key_diversification_data=kdd,
            sequence_counter=keyset.sequence_counter,
            random=random,
            aid=aid,
            channel=channel,
        )
    except ValueError as exc:
        raise ConditionsNotSatisfied(f"cannot open SCP{protocol:02X}: {exc}") from None


@dataclass(slots=True)
class LoadContext:
    """An INSTALL [for load] accepted, LOAD blocks pending (GP 2.3.1, 11.6)."""

    load_file_aid: bytes
    sd_aid: bytes
    data_hash: bytes
    next_block: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    combined: bool = False
    token_identifier: bytes | None = None  # from the Load Token's B6 template, for the Load Receipt (11.1.6)
    token_part: bytes = b""  # a delegated combined load: what its first INSTALL adds to the token (Table C-10)


@dataclass(slots=True)
class ChannelContext:
    """One logical channel's runtime state."""

    number: int
    selected: bytes | None = None
    applet: Applet | None = None
    session: CardChannel | None = None
    session_sd: bytes = b""
    session_kvn: int = 0
    session_level: int = 0
    """The Current Security Level (Table 10-1, AUTHENTICATED included) an application's session through the
    SecureChannel service opened with (GP 2.3.1, 10.2.3): kept when the session is aborted, cleared when it is
    terminated; 0 while no session was opened."""
    status_pending: list[bytes] | None = None
    status_scope: tuple[int, int] = (0, 0)
    load: LoadContext | None = None
    install_chain: bytes = b""
    delete_chain: bytes = b""
    personalize_target: bytes | None = None
    pending_response: bytes = b""
    store_data_next_block: int = 0
    chain: tuple[bytes, bytes] | None = None
    """An ISO/IEC 7816-4 command chain in progress: (CLA without b5, INS, P1, P2) and the data so far."""
    delegated_load: tuple[LoadContext, LoadFile] | None = None
    """A combined load by a Delegated Management SD: loaded and checked, registered only when the final INSTALL's
    token verifies (GP 2.3.1, C.4.7)."""

    def is_idle(self) -> bool:
        """No session (not even an aborted one's level), applet or multi-command operation: a SELECT of a
        Security Domain then changes nothing but the selected application."""
        return (
            self.session is None
            and self.applet is None
            and not self.session_level
            and not self.session_sd
            and self.status_pending is None
            and self.load is None
            and not self.install_chain
            and not self.delete_chain
            and self.personalize_target is None
            and not self.pending_response
            and not self.store_data_next_block
            and self.delegated_load is None
        )

    def end_session(self) -> None:
        if self.session is not None:
            self.session.terminate()
        self.session = None
        self.session_sd = b""
        self.session_level = 0

    def reset_operations(self) -> None:
        """Forget every multi-command operation (on SELECT, channel close, reset)."""
        self.status_pending = None
        self.load = None
        self.install_chain = b""
        self.delete_chain = b""
        self.personalize_target = None
        self.pending_response = b""
        self.store_data_next_block = 0
        self.chain = None
        self.delegated_load = None


@dataclass(slots=True)
class CardContext:
    """What every handler needs: the live state, randomness, the applet classes and live applet objects."""

    state: CardState
    random: RandomSource
    applets: AppletRegistry
    instances: dict[bytes, Applet] = field(default_factory=dict)
    trace: Callable[[str], None] | None = None
    fci_cache: dict[tuple[bytes, int, int, bytes], bytes] = field(default_factory=dict)
    status_cache: dict[tuple[int, bytes, int, int, bytes], list[bytes]] = field(default_factory=dict)
    """GET STATUS answers by (state version, SD, P1, P2 format, criteria): valid while no unit is marked."""
    today: Callable[[], datetime.date] | None = None
    """The date certificates are checked against (SCP10, GP 2.2.1 F.1.3.2); injected, None when the card has no
    date source (SCP10 initiation is then refused)."""

    def __post_init__(self) -> None:
        self.tracker = StateTracker(self.state)

    def applet(self, aid: bytes) -> Applet | None:
        """The live object of an installed applet instance (created on first use from its persisted data)."""
        if aid in self.instances:
            return self.instances[aid]
        app = self.state.application(aid)
        if app is None or not app.applet or app.applet not in self.applets:
            return None
        instance = self.applets.create(app.applet, aid, app.data)
        self.instances[aid] = instance
        return instance

    tracker: StateTracker = field(init=False)
    """The state's change tracker (card/state_tracker.py)."""
    rollbacks: int = 0
    """How many times the live state was put back: live applet objects of the channels are stale after one."""

    def reload(self, state: CardState) -> None:
        """Replace the live state; live applets are rebuilt from it."""
        self.state = state
        self.tracker.replace(state)
        self.rolled_back()

    def savepoint(self) -> dict[str, Any]:
        """What the current command changed so far (to :meth:`rollback` to)."""
        return self.tracker.pending() or {}

    def rollback(self, savepoint: dict[str, Any] | None = None) -> None:
        """Put the state back as committed, or as at ``savepoint``; live applets are rebuilt from it."""
        self.tracker.rollback(savepoint)
        self.rolled_back()

    def rolled_back(self) -> None:
        self.instances.clear()
        self.rollbacks += 1
