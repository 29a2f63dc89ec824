"""A host channel and a card channel joined in memory, with no card reader in between.

For applet developers' unit tests, the demo and the benchmarks: ``handshake`` runs INITIALIZE UPDATE and
EXTERNAL AUTHENTICATE between the two objects, ``exchange`` carries one command through both sides' secure
messaging, the card's application logic being any ``Callable[[CommandApdu], ResponseApdu]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import CardError
from gpchannel.scp.common import CardChannel, HostChannel
from gpchannel.scp.symmetric import SymmetricHostChannel

__all__ = ["Exchange", "exchange", "handshake"]

Application = Callable[[CommandApdu], ResponseApdu]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command's journey: as the host meant it, on the wire, as the card saw it, and back."""

    command: CommandApdu
    wire_command: CommandApdu
    card_command: CommandApdu | None
    card_response: ResponseApdu
    wire_response: ResponseApdu
    response: ResponseApdu


def _card_answer(step: Callable[[], ResponseApdu]) -> ResponseApdu:
    try:
        return step()
    except CardError as exc:
        return ResponseApdu(b"", exc.sw)


def handshake(host: SymmetricHostChannel, card: CardChannel) -> list[tuple[CommandApdu, ResponseApdu]]:
    """Run explicit initiation between ``host`` and ``card``; returns the two wire exchanges.

    Errors surface as the host raises them (AuthenticationError, CardStatusError, ...), exactly as they would
    over a reader: the card's CardErrors become status words first.
    """
    iu = host.initialize_update()
    iu_response = _card_answer(lambda: card.initialize_update(iu))
    host.receive_initialize_update(iu_response)
    ea = host.external_authenticate()
    ea_response = _card_answer(lambda: card.external_authenticate(ea))
    host.receive_external_authenticate(ea_response)
    return [(iu, iu_response), (ea, ea_response)]


def exchange(host: HostChannel, card: CardChannel, command: CommandApdu, application: Application) -> Exchange:
    """Wrap ``command`` on the host, unwrap it on the card, answer it with ``application``, and back."""
    wire = host.wrap(command)
    seen: list[CommandApdu] = []

    def card_side() -> ResponseApdu:
        plain = card.unwrap(wire)
        seen.append(plain)
        answer = _card_answer(lambda: application(plain))
        return answer

    card_response = _card_answer(card_side)
    wire_response = card.wrap(card_response) if seen and card.is_open else card_response
    response = host.unwrap(wire_response)
    return Exchange(command, wire, seen[0] if seen else None, card_response, wire_response, response)
