"""The handset half of the bridge: one SMS-DELIVER in, through an SMS-PP DOWNLOAD ENVELOPE to a card, and the
card's PoR out as the TP-UD of the short messages going back to the sender (synchronous; the card behind any
:class:`gpchannel.io.transport.Transport`).

3GPP TS 31.111 7.1.1 / ETSI TS 102 223 7.1.1 (SMS-PP data download): the ME wraps the SMS-DELIVER TPDU in the
D1 ENVELOPE; the card answers with the PoR as response data (``61 xx`` then GET RESPONSE on a UICC, ``9F xx``
then ``A0 C0`` on a GSM SIM; a PC/SC transport already completes ``61 xx``) which the ME returns in the
SMS-DELIVER-REPORT, or with ``91 xx``: the ME FETCHes the proactive SEND SHORT MESSAGE (TS 102 223 6.6.9),
sends its SMS-SUBMIT and confirms with TERMINAL RESPONSE (6.8, result ``00``). Here the DELIVER-REPORT PoR
goes back as short messages too (split per :func:`gpchannel.ota.udh.split_packet` when it exceeds one SM),
since an SMPP ESME has no other way to see it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError, TransportError
from gpchannel.io.transport import Transport
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.sms import Address, SmsDeliver, SmsSubmit
from gpchannel.ota.udh import MAX_USER_DATA, secured_message, split_packet

__all__ = ["CardOutcome", "HandsetCard", "submit_in_proactive"]

_FETCH, _TERMINAL_RESPONSE, _GET_RESPONSE = 0x12, 0x14, 0xC0
_TERMINAL_RESPONSE_OK = bytes.fromhex("810301130082028281830100")
"""Command details (SEND SHORT MESSAGE), device identities ME -> UICC, result 00 (TS 102 223 6.8)."""
MAX_PROACTIVE = 16
"""More SEND SHORT MESSAGE commands than this for one ENVELOPE means a card that never stops: give up."""


@dataclass(frozen=True, slots=True)
class CardOutcome:
    """What one ENVELOPE gave: the card's final status word and the short messages (TP-UD, TP-DA digits) it
    sends back; ``replies`` is empty when the card keeps a segment or SPI2 asks for no PoR."""

    sw: int
    replies: tuple[tuple[str, bytes], ...] = ()

    @property
    def delivered(self) -> bool:
        return self.sw >> 8 in (0x90, 0x91)


def submit_in_proactive(proactive: bytes) -> SmsSubmit:
    """The SMS-SUBMIT of a proactive SEND SHORT MESSAGE (TS 102 223 6.6.9: ``D0`` {81, 82, [05, 06,] 8B})."""
    if len(proactive) < 2 or proactive[0] != 0xD0:
        raise DecodeError("not a proactive command (D0)", offset=0)
    at = 3 if proactive[1] == 0x81 else 2
    while at + 2 <= len(proactive):
        tag, length, start = proactive[at] & 0x7F, proactive[at + 1], at + 2
        if length == 0x81:
            if start >= len(proactive):
                break
            length, start = proactive[start], start + 1
        if start + length > len(proactive):
            raise DecodeError(f"proactive TLV {tag:02X} overruns", offset=len(proactive))
        if tag == 0x0B:
            return SmsSubmit.from_bytes(proactive[start : start + length])
        at = start + length
    raise DecodeError("the proactive command has no SMS TPDU (8B)", offset=len(proactive))


class HandsetCard:
    """A handset in front of ``transport``'s card. ``sim``: GSM SIM class ``A0`` rather than a UICC's ``80``;
    ``service_centre``: the SC address put in the ENVELOPE (optional in TS 31.111 7.1.1.2)."""

    def __init__(self, transport: Transport, *, sim: bool = False, service_centre: Address | None = None) -> None:
        self.transport = transport
        self.cla = 0xA0 if sim else 0x80
        self.service_centre = service_centre
        self._reference = 0

    def deliver(self, deliver: SmsDeliver) -> CardOutcome:
        """Download one SMS-DELIVER; :class:`TransportError` when the card cannot be reached or misbehaves,
        :class:`DecodeError` when its proactive command does not parse."""
        envelope = SmsPpDownload(deliver.to_bytes(), self.service_centre).to_apdu(self.cla)
        response = self.transport.transmit(envelope)
        sw1 = response.sw >> 8
        if sw1 in (0x61, 0x9F):
            cla = self.cla if sw1 == 0x9F else 0x00
            response = self.transport.transmit(CommandApdu(cla, _GET_RESPONSE, 0, 0, le=(response.sw & 0xFF) or 256))
        if response.sw >> 8 == 0x91:
            return self._fetch(response.sw)
        if response.sw != 0x9000 or not response.data:
            return CardOutcome(response.sw)
        return CardOutcome(response.sw, tuple((deliver.originator.digits, ud) for ud in self._report(response)))

    def _report(self, response: ResponseApdu) -> list[bytes]:
        """The DELIVER-REPORT user data as short messages: as is when it fits, else re-split."""
        if len(response.data) <= MAX_USER_DATA:
            return [response.data]
        message = secured_message(response.data)
        self._reference = (self._reference + 1) & 0xFF
        return split_packet(message.packet, response=message.response, reference=self._reference)

    def _fetch(self, sw: int) -> CardOutcome:
        replies: list[tuple[str, bytes]] = []
        for _ in range(MAX_PROACTIVE):
            if sw >> 8 != 0x91:
                return CardOutcome(sw, tuple(replies))
            proactive = self.transport.transmit(CommandApdu(self.cla, _FETCH, 0, 0, le=(sw & 0xFF) or 256))
            if proactive.sw != 0x9000:
                raise TransportError(f"the card answered FETCH with {proactive.sw:04X}")
            submit = submit_in_proactive(proactive.data)
            replies.append((submit.destination.digits, submit.user_data))
            sw = self.transport.transmit(CommandApdu(self.cla, _TERMINAL_RESPONSE, 0, 0, _TERMINAL_RESPONSE_OK)).sw
        raise TransportError(f"the card asked for more than {MAX_PROACTIVE} proactive commands")
