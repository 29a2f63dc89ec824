"""The senders of the job worker, one module per transport (:class:`gpchannel.server.sender.Sender`):

- :mod:`.scp80`: the script as secured SMS;
- :mod:`.scp81`: none: the card's own admin session takes the job (the admin server);
- :mod:`.scp81_sms`: a trigger SMS for the admin session, the script by SMS if none comes;
- :mod:`.sms`: what the SMS transports share (key set, secured packet, submit, PoR matching).

:data:`SENDERS` is the registry the worker uses unless it is given another.
"""

from __future__ import annotations

from gpchannel.server.sender import SenderRegistry
from gpchannel.server.senders.scp80 import Scp80Sender
from gpchannel.server.senders.scp81 import Scp81Sender
from gpchannel.server.senders.scp81_sms import Scp81SmsSender

__all__ = ["SENDERS", "Scp80Sender", "Scp81Sender", "Scp81SmsSender"]

SENDERS = SenderRegistry([Scp81Sender(), Scp80Sender(), Scp81SmsSender()])
"""The built-in senders, one per :class:`~gpchannel.server.transports.JobTransport` (a test checks it)."""
