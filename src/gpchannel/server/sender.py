"""The plug-in point of the job worker: a :class:`Sender` per transport, found in a :class:`SenderRegistry`.

The worker loop (:mod:`gpchannel.server.scp80_worker`) schedules: it claims QUEUED jobs of the transports whose
sender says ``claimed``, holds each as a :class:`Flight` (its in-memory state a
:class:`~gpchannel.server.job_state.FlightState`), keeps the leases, the rate limits and the timeouts, and asks
the job's sender to send it. How a job goes out is the sender's business, one module per transport in
:mod:`gpchannel.server.senders`; what a sender may ask of the loop is :class:`WorkerContext`.

Adding a transport: a module with its :class:`Sender`, registered in :data:`gpchannel.server.senders.SENDERS`
(or in a registry given to the worker); a new ``jobs.transport`` value also needs its
:class:`~gpchannel.server.transports.JobTransport` member and a migration widening the CHECK constraint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gpchannel.errors import UnsupportedError
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.spi import Kic, Kid, Spi
from gpchannel.server.campaigns import CampaignSettings
from gpchannel.server.job_state import FlightEvent, FlightState, next_flight_state
from gpchannel.smpp.client import PorMessage, Submitted
from gpchannel.smpp.receipt import DeliveryReceipt

if TYPE_CHECKING:
    from gpchannel.server.config import ServerServices
    from gpchannel.server.repository import CardRecord, JobRecord, Repository

__all__ = ["Flight", "Sender", "SenderRegistry", "SmsLink", "WorkerContext"]


@dataclass
class Flight:
    """A job the worker holds: claimed, triggered or sent and waiting for its PoR (``state``)."""

    job: JobRecord
    card: CardRecord
    settings: CampaignSettings
    msisdn: str
    state: FlightState = FlightState.CLAIMED
    kvn: int = 0
    tar: bytes = b""
    spi: Spi = field(default_factory=Spi)
    kic: Kic | None = None
    kid: Kid | None = None
    keyset: Scp80KeySet | None = None
    counter: int | None = None
    """The counter of the packet out (the trigger's, or the script's): None while nothing is sent."""
    deadline: datetime | None = None
    """When the flight times out: the PoR timeout (SENT) or the trigger timeout (TRIGGERED)."""
    message_ids: tuple[str, ...] = ()
    receipts: list[str] = field(default_factory=list)
    delivery_id: str | None = None
    """The job's delivery id once marked SENT (SMS: ``sms-<job>-<attempt>-<owner>``)."""

    def advance(self, event: FlightEvent) -> None:
        """Move to the state the transition table gives (RepositoryError if ``event`` does not apply)."""
        self.state = next_flight_state(self.state, event)


class SmsLink(Protocol):
    """What the worker needs of an SMPP bind (:class:`gpchannel.smpp.client.OtaSmppClient` is one)."""

    closed: bool

    async def submit_packet(
        self, destination: str, packet: bytes, *, reference: int = 0, receipt: bool = True, timeout: float = 10.0
    ) -> Submitted: ...

    async def next_event(self, timeout: float = 10.0) -> DeliveryReceipt | PorMessage | None: ...

    async def close(self) -> None: ...


class WorkerContext(Protocol):
    """What a sender may use of the worker loop that calls it."""

    services: ServerServices
    repo: Repository
    owner: str

    @property
    def submit_timeout(self) -> float: ...

    async def db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a (blocking) repository call in a thread."""

    async def sms_link(self) -> SmsLink | None:
        """The bound SMPP session (a new bind when it is gone), or None."""

    async def scp80_keyset(self, card: CardRecord, kvn: int) -> Scp80KeySet:
        """The card's SCP80 key set ``kvn`` (KeyProvider.scp80_keyset; opened with the round's claim when it
        could be): KeyNotFound, KeyProviderError, ..."""

    def next_reference(self) -> int:
        """The next concatenated-SM reference number."""

    async def mark_sent(self, job_id: int, *, kvn: int, delivery_id: str) -> int:
        """Repository.mark_sent for this worker (its owner, now), group-committed with the round's other sends
        (server/send_batch.py): the job's fresh counter, or LeaseLost."""

    def sent(self, flight: Flight, message_ids: tuple[str, ...]) -> None:
        """The flight's packet left as these SMs (receipts are matched by their ids; the counts of the stats)."""

    async def final(self, job_id: int, reason: str, campaign_id: int | None = None) -> None:
        """The job failed for good (not retried)."""

    def forget(self, flight: Flight) -> None:
        """The worker no longer holds the flight."""

    async def transient(self, flight: Flight, reason: str) -> None:
        """The attempt failed: retry later (a new counter) or fail per the campaign's policy."""

    async def done(self, flight: Flight, results: list[tuple[bytes, bytes, int]], reason: str | None) -> None:
        """The job ran: DONE with these (command, response data, SW) results."""

    async def lease_lost(self, flight: Flight) -> None:
        """The lease was lost before sending (taken over or cancelled): drop the flight."""


class Sender(Protocol):
    """How the jobs of one transport reach their card."""

    @property
    def transport(self) -> str:
        """The ``jobs.transport`` value of the jobs this sender sends."""

    @property
    def claimed(self) -> bool:
        """True: the worker loop claims these jobs and calls :meth:`send`; False: another part of the server
        delivers them (scp81: the admin server, when the card opens its session)."""

    async def send(self, worker: WorkerContext, flight: Flight) -> None:
        """Send a flight that waits to send (``flight.state.unsent``): on success it leaves the flight SENT or
        TRIGGERED with a deadline; on failure it tells the worker (``final``, ``transient``, ``lease_lost``)."""

    def settles_orphan(self, job: JobRecord) -> bool:
        """Whether a SENT job of this transport that no live worker holds is the worker's to fail once its PoR is
        overdue (the crash rule of :mod:`gpchannel.server.scp80_worker`), rather than another component's."""


class SenderRegistry:
    """JobTransport -> sender; one sender per transport."""

    def __init__(self, senders: Iterable[Sender] = ()) -> None:
        self._senders: dict[str, Sender] = {}
        for sender in senders:
            self.register(sender)

    def register(self, sender: Sender) -> None:
        name = str(sender.transport)
        if name in self._senders:
            raise UnsupportedError(f"transport {name!r} has a sender already")
        self._senders[name] = sender

    def get(self, transport: str) -> Sender | None:
        return self._senders.get(str(transport))

    def __getitem__(self, transport: str) -> Sender:
        sender = self.get(transport)
        if sender is None:
            raise UnsupportedError(f"no sender for transport {str(transport)!r}")
        return sender

    def __iter__(self) -> Iterator[Sender]:
        return iter(self._senders.values())

    def transports(self) -> tuple[str, ...]:
        return tuple(self._senders)

    def claimed(self) -> tuple[str, ...]:
        """The transports whose jobs the worker loop claims, in registration order."""
        return tuple(name for name, sender in self._senders.items() if sender.claimed)

    def copy(self) -> SenderRegistry:
        return SenderRegistry(self)
