"""An SMPP 3.4 ESME on asyncio: connect, bind, submit_sm, take deliver_sm, unbind (the OTA server's side).

SMPP 3.4 2.2 (an ESME binds as a transmitter, a receiver or a transceiver), 4.1 (bind_* and bind_*_resp: a
command_status other than ESME_ROK refuses the bind), 4.4 submit_sm, 4.6 deliver_sm (answered with
deliver_sm_resp, message_id NULL), 4.2 unbind. The session layer (window, sequence numbers, enquire_link) is
:class:`gpchannel.smpp.session.SmppSession`.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum

from gpchannel.errors import SmppStatusError, TransportError
from gpchannel.smpp.pdu import BindBody, CommandId, CommandStatus, MessageIdBody, Pdu, ShortMessageBody
from gpchannel.smpp.session import (
    DEFAULT_ENQUIRE_INTERVAL,
    DEFAULT_RESPONSE_TIMEOUT,
    DEFAULT_WINDOW,
    SmppSession,
)

__all__ = ["BindMode", "Esme"]

_INBOX = 1000


class BindMode(Enum):
    """How an ESME binds (SMPP 3.4 2.2): the bind command of each."""

    TRANSMITTER = CommandId.BIND_TRANSMITTER
    RECEIVER = CommandId.BIND_RECEIVER
    TRANSCEIVER = CommandId.BIND_TRANSCEIVER

    @property
    def can_send(self) -> bool:
        return self is not BindMode.RECEIVER

    @property
    def can_receive(self) -> bool:
        return self is not BindMode.TRANSMITTER


class Esme:
    """A bound ESME. :meth:`bind` connects and binds; :meth:`submit_sm` returns the submit_sm_resp;
    :meth:`next` the next deliver_sm (each is answered ESME_ROK when it is queued, ESME_RMSGQFUL when
    ``inbox`` of them wait unread), or ``None`` once the session ended; :meth:`unbind` ends it."""

    def __init__(self, session: SmppSession, mode: BindMode, smsc_system_id: str, inbox: int = _INBOX) -> None:
        self.session = session
        self.mode = mode
        self.smsc_system_id = smsc_system_id
        self._inbox: asyncio.Queue[Pdu | None] = asyncio.Queue(inbox + 1)
        self._inbox_size = inbox

    @classmethod
    async def bind(
        cls,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        mode: BindMode = BindMode.TRANSCEIVER,
        system_type: str = "",
        timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        window: int = DEFAULT_WINDOW,
        enquire_interval: float = DEFAULT_ENQUIRE_INTERVAL,
    ) -> Esme:
        """Connect and bind; :class:`TransportError` when the SMSC cannot be reached or does not answer,
        :class:`SmppStatusError` (a TransportError) when it refuses the bind."""
        body = BindBody(system_id, password, system_type)
        Pdu(mode.value, 1, 0, body).encode()  # LocalProtocolError for a field past the limits of 4.1, unconnected
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise TransportError(f"cannot connect to the SMSC at {host}:{port}: {exc or 'timed out'}") from None
        holder: list[Esme] = []

        async def handle(session: SmppSession, pdu: Pdu) -> None:
            if holder:
                await holder[0]._request(pdu)
            else:
                await session.nack(pdu.sequence_number, CommandStatus.ESME_RINVBNDSTS)

        session = SmppSession(
            reader,
            writer,
            handle,
            window=window,
            response_timeout=timeout,
            enquire_interval=enquire_interval,
            name=f"esme {system_id}@{host}:{port}",
        )
        session.start()
        try:
            resp = await session.request(mode.value, body)
        except TransportError:
            await session.close(unbind=False)
            raise
        if resp.command_id is not mode.value.response or not resp.ok:
            await session.close(unbind=False)
            raise SmppStatusError(resp.command_status, f"the SMSC at {host}:{port} refused the bind")
        session.bound = True
        esme = cls(session, mode, getattr(resp.body, "system_id", ""))
        holder.append(esme)
        session.on_close(esme._ended)
        return esme

    @property
    def closed(self) -> bool:
        return self.session.closed

    def _ended(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(None)

    async def _request(self, pdu: Pdu) -> None:
        if pdu.command_id is not CommandId.DELIVER_SM:
            await self.session.respond(pdu, CommandStatus.ESME_RINVCMDID)
            return
        if not self.mode.can_receive:
            await self.session.respond(pdu, CommandStatus.ESME_RINVBNDSTS, MessageIdBody())
            return
        if self._inbox.qsize() >= self._inbox_size:
            await self.session.respond(pdu, CommandStatus.ESME_RMSGQFUL, MessageIdBody())
            return
        self._inbox.put_nowait(pdu)
        await self.session.respond(pdu, CommandStatus.ESME_ROK, MessageIdBody())

    async def submit_sm(self, body: ShortMessageBody, *, timeout: float | None = None) -> Pdu:
        """Send a submit_sm, return its _resp (check ``ok``; ``body.message_id`` when accepted)."""
        if not self.mode.can_send:
            raise TransportError("a receiver bind cannot submit_sm (SMPP 3.4 2.2)")
        return await self.session.request(CommandId.SUBMIT_SM, body, timeout=timeout)

    @property
    def waiting(self) -> int:
        """deliver_sm received and not yet taken by :meth:`next` (which then returns without waiting)."""
        return self._inbox.qsize()

    async def next(self) -> Pdu | None:
        """The next deliver_sm, ``None`` when the session has ended (and stays so)."""
        if self.session.closed and self._inbox.empty():
            return None
        pdu = await self._inbox.get()
        if pdu is None:
            self._ended()  # the next call sees it too
        return pdu

    async def unbind(self) -> None:
        """Unbind and close (SMPP 3.4 4.2); idempotent."""
        await self.session.close()
