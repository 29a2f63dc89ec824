"""``gpchannel ota send``'s exchange with the card (ENVELOPEs, GET RESPONSE or FETCH of the PoR) and what makes a
PoR a refusal: a response status other than 00 (ETSI TS 102 225 5.2.1 Table 5) or a last status word that is not
success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.sw import describe
from gpchannel.codec.sw import is_success as sw_success
from gpchannel.errors import CardStatusError, TransportError
from gpchannel.ota import Reassembler, Response, ResponseStatus
from gpchannel.ota.envelope import proactive_submit
from gpchannel.trace.ourformat import HEADER, format_exchange

__all__ = ["REFUSAL_ADVICE", "TracedTransport", "exchange", "proactive_submit", "refusal"]

REFUSAL_ADVICE = {
    ResponseStatus.RC_CC_DS_FAILED: "the card's KID key is not this one: check --kid / the profile's key set and --kvn",
    ResponseStatus.CNTR_LOW: "the card has taken a higher counter: drop --counter (the store picks the next one)",
    ResponseStatus.CNTR_HIGH: "the counter is too far above the card's for this SPI: give a lower --counter",
    ResponseStatus.CNTR_BLOCKED: "the card's counter is exhausted for this key set: use another --kvn",
    ResponseStatus.CIPHERING_ERROR: "the card's KIc key is not this one: check --kic / the profile's key set",
    ResponseStatus.INSUFFICIENT_MEMORY: "the card has no room for the script's effect: free some or send less",
    ResponseStatus.MORE_TIME: "the card needs more time: the outcome is not known yet",
    ResponseStatus.TAR_UNKNOWN: "no application with this TAR on the card: check --tar",
    ResponseStatus.INSUFFICIENT_SECURITY_LEVEL: "the TAR asks for more security: use a stronger --spi",
}
"""What to do about a PoR status (TS 102 225 5.2.1 Table 5)."""


def refusal(por: Response, info: dict[str, Any]) -> str | None:
    """Why the card refused the script (a PoR status other than 00, or a last status word that is not success)."""
    if por.status is not ResponseStatus.POR_OK:
        advice = REFUSAL_ADVICE.get(ResponseStatus(por.status), "the script did not run")
        return f"the card refused the packet: PoR status {info['status']} ({info['status_name']}); {advice}"
    last = info.get("responses", [])[-1:]
    if last and not sw_success(int(last[0]["sw"], 16)):
        sw = int(last[0]["sw"], 16)
        return f"the card ran the script but its last command answered {describe(sw)}"
    return None


class TracedTransport:
    """The global ``--trace-file``: every ENVELOPE, GET RESPONSE, FETCH and TERMINAL RESPONSE written in
    gpchannel's trace format, which ``gpchannel trace decode`` reads back (OTA packets and PoRs included)."""

    def __init__(self, inner: Any, path: Path) -> None:
        self.inner = inner
        try:
            self.stream = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--trace-file {path}: {exc.strerror or exc}") from None
        self.stream.write(HEADER + "\n")

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        response: ResponseApdu = self.inner.transmit(command)
        self.stream.write("\n".join(format_exchange(command, response)) + "\n")
        self.stream.flush()
        return response

    def close(self) -> None:
        self.stream.close()
        self.inner.close()


def exchange(transport: Any, envelopes: list[CommandApdu], sim: bool) -> bytes:
    """Send the ENVELOPEs; return the PoR's user data (DELIVER-REPORT) or the SMS-SUBMIT's (FETCH)."""
    por = b""
    cla = 0xA0 if sim else 0x80
    for envelope in envelopes:
        response: ResponseApdu = transport.transmit(envelope)
        sw1 = response.sw >> 8
        if sw1 in (0x61, 0x9F):
            get = CommandApdu(cla if sim else 0x00, 0xC0, 0, 0, le=(response.sw & 0xFF) or 256)
            response = transport.transmit(get)
            por = response.data
        elif sw1 == 0x91:
            return _fetch_submits(transport, cla, response.sw)
        elif response.data:
            por = response.data
        if response.sw != 0x9000:
            raise CardStatusError(response.sw, "ENVELOPE (SMS-PP DOWNLOAD)")
    return por


def _fetch_submits(transport: Any, cla: int, sw: int) -> bytes:
    """FETCH each proactive SEND SHORT MESSAGE, confirm it with TERMINAL RESPONSE (TS 102 223 6.6.9, 6.8),
    and reassemble the SMS-SUBMITs' user data into the PoR (``02 71 00`` + the response packet)."""
    reassembler = Reassembler()
    while sw >> 8 == 0x91:
        proactive = transport.transmit(CommandApdu(cla, 0x12, 0, 0, le=(sw & 0xFF) or 256))
        submit = proactive_submit(proactive.data)
        sw = transport.transmit(CommandApdu(cla, 0x14, 0, 0, bytes.fromhex("810301130082028281830100"))).sw
        message = reassembler.feed(submit.user_data, "card")
        if message is not None:
            return b"\x02\x71\x00" + message.packet
    raise TransportError(f"the card stopped its SMS-SUBMITs ({sw:04X}) before the PoR was whole")
