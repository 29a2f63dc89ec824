"""The OTA server's side of the SMS link: SCP80 packets out as submit_sm, PoRs and delivery receipts back as
deliver_sm, over SMPP 3.4 with :class:`gpchannel.smpp.esme.Esme` (binding, framing, window and timers).

SMPP 3.4 4.4 (submit_sm) / 4.6 (deliver_sm); 5.2.12 esm_class, 5.2.14 protocol_id, 5.2.19 data_coding (see
:mod:`gpchannel.smpp.receipt`). A command packet travels as in an SMS-DELIVER (3GPP TS 31.115 4.2): TP-UD =
UDH ``02 70 00`` + the packet, with esm_class UDHI (``40``), protocol_id ``7F`` and data_coding ``F6``. A
packet longer than one SM goes as several submit_sm, one per segment, each with the concatenation IE of
:func:`gpchannel.ota.udh.split_packet` in its UDH (TS 23.040 9.2.3.24.1). The card's PoR comes back as a
deliver_sm from the card's number (the SMS-SUBMIT of TS 31.115 4.4, or the DELIVER-REPORT relayed by the
bridge), UDH ``02 71 00``, possibly concatenated; :meth:`OtaSmppClient.next_event` reassembles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from gpchannel.errors import DecodeError, SmppStatusError, TransportError
from gpchannel.ota.udh import Reassembler, split_packet
from gpchannel.smpp.esme import BindMode, Esme
from gpchannel.smpp.pdu import MessageIdBody, ShortMessageBody
from gpchannel.smpp.receipt import (
    DATA_CODING_OTA,
    ESM_CLASS_UDHI,
    PROTOCOL_ID_OTA,
    REGISTERED_DELIVERY_RECEIPT,
    TLV_MESSAGE_STATE,
    TLV_RECEIPTED_MESSAGE_ID,
    DeliveryReceipt,
    MessageState,
    is_receipt,
)
from gpchannel.smpp.session import DEFAULT_WINDOW

__all__ = ["OtaSmppClient", "PorMessage", "Submitted", "command_segments"]

DEFAULT_TIMEOUT = 10.0


def command_segments(packet: bytes, reference: int = 0) -> list[bytes]:
    """The short_message of each submit_sm carrying ``packet`` (one, or concatenated segments)."""
    return split_packet(packet, reference=reference)


@dataclass(frozen=True, slots=True)
class Submitted:
    """What the SMSC answered: one message_id per submit_sm, in segment order."""

    destination: str
    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PorMessage:
    """A whole secured packet that came back from ``originator`` (UDH IEI 71: a response packet)."""

    originator: str
    packet: bytes
    response: bool = True


_STATES = frozenset(MessageState)


def _receipt(event: ShortMessageBody) -> DeliveryReceipt:
    """The receipt's text, with the TLVs (receipted_message_id, message_state) winning where present."""
    receipt = DeliveryReceipt.from_text(event.short_message)
    message_id, state = receipt.message_id, receipt.state
    for tlv in event.tlvs:
        if tlv.tag == TLV_RECEIPTED_MESSAGE_ID and tlv.as_string():
            message_id = str(tlv.as_string())
        elif tlv.tag == TLV_MESSAGE_STATE and tlv.as_int() in _STATES:
            state = MessageState(int(tlv.as_int() or 0))
    if (message_id, state) == (receipt.message_id, receipt.state):
        return receipt  # the TLVs agree with the text (the usual case): no second receipt to build and check
    return DeliveryReceipt(
        message_id,
        state,
        receipt.error,
        receipt.submit_date,
        receipt.done_date,
        receipt.submitted,
        receipt.delivered,
        receipt.text,
    )


class OtaSmppClient:
    """A bound ESME session (transceiver) that sends SCP80 command packets and receives PoRs and receipts.

    ``source_addr`` is the OTA server's address (the TP-OA the card sees, and where its PoR goes). Inbound
    deliver_sm that are neither receipts nor UDH-carrying secured packets are counted in :attr:`ignored`.
    """

    def __init__(self, esme: Esme, source_addr: str, *, max_pending: int = 8) -> None:
        self.esme = esme
        self.source_addr = source_addr
        self._reassembler = Reassembler(max_pending)
        self.ignored = 0
        self.closed = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        system_id: str,
        password: str,
        *,
        source_addr: str,
        system_type: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        window: int = DEFAULT_WINDOW,
    ) -> OtaSmppClient:
        """Connect and bind as a transceiver; :class:`TransportError` if the SMSC cannot be reached or refuses.
        ``window``: submit_sm sent at most before their _resp came (SMPP 3.4 2.8; the SMSC's contract says how many)."""
        try:
            esme = await Esme.bind(
                host, port, system_id, password, mode=BindMode.TRANSCEIVER, system_type=system_type, timeout=timeout,
                window=window,
            )  # fmt: skip
        except SmppStatusError as exc:
            raise SmppStatusError(exc.command_status, f"cannot bind to the SMSC at {host}:{port}: refused") from None
        except TransportError as exc:
            raise TransportError(f"cannot bind to the SMSC at {host}:{port}: {exc}") from None
        return cls(esme, source_addr)

    async def submit_packet(
        self,
        destination: str,
        packet: bytes,
        *,
        reference: int = 0,
        receipt: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Submitted:
        """Send a command packet (CPL..end) to ``destination`` as one submit_sm per segment.

        :class:`SmppStatusError` when the SMSC refuses a segment (the ones before it were accepted).
        """
        return await self.submit_user_data(
            destination, command_segments(packet, reference), receipt=receipt, timeout=timeout
        )

    async def submit_user_data(
        self, destination: str, segments: Sequence[bytes], *, receipt: bool = True, timeout: float = DEFAULT_TIMEOUT
    ) -> Submitted:
        """Send TP-UD segments (each with its UDH) as submit_sm with the OTA esm_class / PID / DCS."""
        if self.closed:
            raise TransportError("the SMPP session is closed")
        ids = []
        for segment in segments:
            body = ShortMessageBody(
                destination,
                segment,
                source_addr=self.source_addr,
                esm_class=ESM_CLASS_UDHI,
                protocol_id=PROTOCOL_ID_OTA,
                data_coding=DATA_CODING_OTA,
                registered_delivery=REGISTERED_DELIVERY_RECEIPT if receipt else 0,
            )
            try:
                resp = await self.esme.submit_sm(body, timeout=timeout)
            except TransportError as exc:
                self.closed = self.esme.closed
                raise TransportError(f"submit_sm to {destination} failed: {exc}") from None
            if not resp.ok:
                raise SmppStatusError(resp.command_status, f"submit_sm to {destination} refused")
            ids.append(resp.body.message_id if isinstance(resp.body, MessageIdBody) else "")
        return Submitted(destination, tuple(ids))

    async def next_event(self, timeout: float = DEFAULT_TIMEOUT) -> DeliveryReceipt | PorMessage | None:
        """The next receipt or whole secured packet; ``None`` when ``timeout`` passes first.

        Segments of a concatenated PoR are collected until whole. :class:`TransportError` when the session
        ended; :class:`DecodeError` for a receipt or UDH that does not parse (the session stays usable).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            if self.esme.waiting:  # one is there: taken at once, no timer
                pdu = await self.esme.next()
            else:
                try:
                    pdu = await asyncio.wait_for(self.esme.next(), left)
                except TimeoutError:
                    return None
            if pdu is None or not isinstance(pdu.body, ShortMessageBody):
                self.closed = True
                raise TransportError("the SMSC ended the SMPP session")
            event = pdu.body
            if is_receipt(event.esm_class):
                return _receipt(event)
            if not event.esm_class & ESM_CLASS_UDHI:
                self.ignored += 1
                continue
            message = self._reassembler.feed(event.short_message, event.source_addr)
            if message is not None:
                return PorMessage(event.source_addr, message.packet, message.response)

    async def wait_por(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[PorMessage, list[DeliveryReceipt]]:
        """The next secured packet, with the receipts that arrived before it; :class:`TransportError` on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        receipts: list[DeliveryReceipt] = []
        while True:
            event = await self.next_event(max(0.0, deadline - loop.time()))
            if event is None:
                raise TransportError(f"no PoR within {timeout} s")
            if isinstance(event, DeliveryReceipt):
                receipts.append(event)
                continue
            if not event.response:
                raise DecodeError("a command packet (IEI 70) came back where a PoR (IEI 71) was expected")
            return event, receipts

    async def close(self) -> None:
        """Unbind (SMPP 3.4 4.2); idempotent."""
        if self.closed:
            return
        self.closed = True
        await self.esme.unbind()

    async def __aenter__(self) -> OtaSmppClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
