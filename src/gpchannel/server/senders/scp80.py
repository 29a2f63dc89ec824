"""The ``scp80`` transport: the job's script as secured SMS (ETSI TS 102 225, TS 102 226 remote APDUs) to the
TAR of its target, sent by the worker loop over its SMPP bind (:mod:`.sms`)."""

from __future__ import annotations

from gpchannel.server.campaigns import scp80_tar
from gpchannel.server.repository import JobRecord
from gpchannel.server.sender import Flight, WorkerContext
from gpchannel.server.senders import sms
from gpchannel.server.transports import JobTransport

__all__ = ["Scp80Sender"]


class Scp80Sender:
    """Sends ``scp80`` jobs: one secured packet per attempt, its PoR the outcome."""

    transport = JobTransport.SCP80
    claimed = True

    async def send(self, worker: WorkerContext, flight: Flight) -> None:
        tar = scp80_tar(flight.card.ota, flight.job.target, sms.kvn_for(flight.card, flight.settings))
        await sms.send_script(worker, flight, tar, done_without_por=True)

    def settles_orphan(self, job: JobRecord) -> bool:
        return True
