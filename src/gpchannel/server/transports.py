"""The OTA server's transports: the one list of how a job reaches its card.

Every other place derives from :class:`JobTransport`: the CHECK constraints of :mod:`gpchannel.server.db` (the first
migration keeps its literal copy, as migrations must, and a test checks the two agree), the repository's records
and the senders of :mod:`gpchannel.server.senders` (one module per transport).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SCP81_TRANSPORTS", "TRANSPORT_NAMES", "JobTransport"]


class JobTransport(StrEnum):
    SCP81 = "scp81"  # the card opens an admin session (GP Amendment B) on its own or after a trigger
    SCP80 = "scp80"  # secured SMS (ETSI TS 102 225) sent by a campaign worker
    SCP81_SMS = "scp81+sms"  # SCP81, triggered by an SCP80 SMS carrying the tag-81 parameters


TRANSPORT_NAMES: tuple[str, ...] = tuple(t.value for t in JobTransport)
"""The values ``jobs.transport`` and ``campaigns.transport`` may hold, in declaration order."""

SCP81_TRANSPORTS: tuple[JobTransport, ...] = (JobTransport.SCP81, JobTransport.SCP81_SMS)
"""The transports whose jobs an admin session (GP Amendment B) takes when the card opens it."""
