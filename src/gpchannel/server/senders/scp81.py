"""The ``scp81`` transport: the card opens an admin session (GP Amendment B, HTTP over TLS-PSK) on its own and
the admin server (:mod:`gpchannel.server.ras`) hands it the card's next job (``Repository.deliver_next_job``).
No worker sends these jobs: this sender only tells the worker loop so."""

from __future__ import annotations

from gpchannel.errors import UnsupportedError
from gpchannel.server.repository import JobRecord
from gpchannel.server.sender import Flight, WorkerContext
from gpchannel.server.transports import JobTransport

__all__ = ["Scp81Sender"]


class Scp81Sender:
    """``scp81`` jobs wait for the card's own admin session: never claimed by the worker loop."""

    transport = JobTransport.SCP81
    claimed = False

    async def send(self, worker: WorkerContext, flight: Flight) -> None:
        raise UnsupportedError("scp81 jobs are delivered by the admin server when the card opens its session")

    def settles_orphan(self, job: JobRecord) -> bool:
        return False  # an admin session's delivery follows the admin server's rules
