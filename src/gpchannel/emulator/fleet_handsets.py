"""The handsets of a fleet: many emulated cards in-process behind one handset bridge, each reached by its MSISDN
(the submit_sm's destination_addr), so that a campaign over thousands of cards gets real PoRs from real card
cores (their own SCP80 checks: a reused counter is refused with status 02, TS 102 225 5.2.1).

:class:`FleetHandsets` opens a card (:meth:`gpchannel.emulator.fleet.Fleet.open_card`: every change committed
durably by the card core through the fleet journal's group commit, before its answer) when its first short message
arrives (the journal is checkpointed into the cards' directories when it grows large and at :meth:`close`), and
keeps at most ``max_open`` cards in memory (one evicted is reopened from its state directory at its next
message, having lost only its RAM, as after a power cycle: the segments of a concatenated packet half received).
It also watches what each card did, for tests and benchmarks:
ENVELOPEs downloaded, command packets whose counter the card took (its stored counter moved), and the status of
each PoR, which it verifies with the card's own key set (:func:`gpchannel.ota.scp80.unsecure_response` with the
command's SPI / KIc / KID), so "no counter was reused" is checked on the card's side, not only the server's.

Thread safety: :meth:`FleetHandsets.deliver` may be called from several threads; one lock per card keeps a card's
messages in order and its state consistent.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from gpchannel.card.dispatcher import Card
from gpchannel.card.ota_targets import keyset_for
from gpchannel.emulator.fleet import Fleet, FleetCard
from gpchannel.emulator.handset import CardOutcome, HandsetCard
from gpchannel.errors import GPChannelError
from gpchannel.io.transport import InProcessTransport
from gpchannel.ota.packet import CommandPacket
from gpchannel.ota.scp80 import unsecure_response
from gpchannel.ota.sms import SmsDeliver
from gpchannel.ota.udh import Reassembler

__all__ = ["UNREADABLE_POR", "CardActivity", "FleetHandsets"]

UNREADABLE_POR = -1
"""The status recorded for a PoR that did not verify or decode with the card's key set."""


@dataclass
class CardActivity:
    """What one card of the fleet did since the bridge started."""

    envelopes: int = 0
    """SMS-PP DOWNLOAD ENVELOPEs (one per short message, segments included)."""
    packets: int = 0
    """Whole command packets the card received."""
    accepted: int = 0
    """Command packets whose counter the card took (its stored counter changed): the script ran."""
    pors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    """PoR response status (TS 102 225 Table 5) -> how many; :data:`UNREADABLE_POR` for one that did not verify."""
    counter: int = 0
    """The card's stored counter for the fleet's key set after its last ENVELOPE."""


class _OpenCard:
    def __init__(self, card: Card, handset: HandsetCard) -> None:
        self.card = card
        self.handset = handset
        self.commands = Reassembler(4)
        self.replies = Reassembler(4)
        self.last_command: CommandPacket | None = None


class FleetHandsets:
    """The fleet's cards as handsets; ``deliver(msisdn, sms)`` is what the bridge calls (from a worker thread)."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        sim: bool = False,
        max_open: int = 4096,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.fleet = fleet
        self.sim = sim
        self.max_open = max_open
        self._random = random
        self.activity: dict[str, CardActivity] = {}
        """ICCID -> activity, for every card that received something."""
        self._open: OrderedDict[str, _OpenCard] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        fleet.journal()  # opened now: a fleet another process writes is refused at start (InUseError), not per SMS

    def knows(self, msisdn: str) -> bool:
        return self.fleet.by_msisdn(msisdn) is not None

    def _lock(self, iccid: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(iccid)
            if lock is None:
                lock = self._locks[iccid] = threading.Lock()
                self.activity[iccid] = CardActivity()
            return lock

    def _card(self, card: FleetCard) -> _OpenCard:
        with self._guard:
            opened = self._open.get(card.iccid)
            if opened is not None:
                self._open.move_to_end(card.iccid)
                return opened
        core = self.fleet.open_card(card, random=self._random)
        opened = _OpenCard(core, HandsetCard(InProcessTransport(core.process), sim=self.sim))
        with self._guard:
            self._open[card.iccid] = opened
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)  # its state is on disk; reopened at its next message
        return opened

    def deliver(self, msisdn: str, deliver: SmsDeliver) -> CardOutcome:
        """Download ``deliver`` to the card of ``msisdn``; :class:`GPChannelError` for a number not in the fleet."""
        card = self.fleet.by_msisdn(msisdn)
        if card is None:
            raise GPChannelError(f"no card of the fleet has the MSISDN {msisdn}")
        with self._lock(card.iccid):
            opened = self._card(card)
            activity = self.activity[card.iccid]
            before = self._counter(opened)
            self._watch_command(opened, deliver, activity)
            outcome = opened.handset.deliver(deliver)
            activity.envelopes += 1
            after = self._counter(opened)
            if after != before:
                activity.accepted += 1
            activity.counter = after
            for _, user_data in outcome.replies:
                self._watch_reply(opened, user_data, activity)
        if self.fleet.journal().due():
            self.fleet.checkpoint()
        return outcome

    def close(self) -> None:
        """Fold the fleet journal into the cards' state directories and close it (when the bridge stops)."""
        self.fleet.close()

    def _counter(self, opened: _OpenCard) -> int:
        for keyset in opened.card.ctx.state.ota.get("ota", {}).get("keysets", []):
            if keyset.get("kvn") == self.fleet.settings.kvn:
                return int(keyset.get("counter", 0))
        return 0

    @staticmethod
    def _watch_command(opened: _OpenCard, deliver: SmsDeliver, activity: CardActivity) -> None:
        try:
            message = opened.commands.feed(deliver.user_data, deliver.originator.digits)
            if message is None or message.response:
                return
            opened.last_command = CommandPacket.from_bytes(message.packet)
            activity.packets += 1
        except (GPChannelError, ValueError):
            opened.last_command = None  # the card refuses it too (6A80): nothing to watch

    def _watch_reply(self, opened: _OpenCard, user_data: bytes, activity: CardActivity) -> None:
        try:
            message = opened.replies.feed(user_data, "por")
        except (GPChannelError, ValueError):
            message = None
        if message is None:
            return
        activity.pors += 1
        status = UNREADABLE_POR
        command = opened.last_command
        if command is not None:
            found = keyset_for(opened.card.ctx.state, command.kid.kvn or command.kic.kvn, allow_single_des=True)
            if found is not None:
                try:
                    response = unsecure_response(
                        message.packet, spi=command.spi, kic=command.kic, kid=command.kid, keyset=found[1]
                    )
                    status = int(response.status)
                except (GPChannelError, ValueError):
                    status = UNREADABLE_POR
        activity.statuses[status] = activity.statuses.get(status, 0) + 1

    def totals(self) -> CardActivity:
        """The sum over the fleet (``counter``: the highest)."""
        total = CardActivity()
        with self._guard:
            items = list(self.activity.values())
        for a in items:
            total.envelopes += a.envelopes
            total.packets += a.packets
            total.accepted += a.accepted
            total.pors += a.pors
            total.counter = max(total.counter, a.counter)
            for status, n in a.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + n
        return total
