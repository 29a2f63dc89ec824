"""Test cards for the bridge: a scripted card answering from a table, and the pySim smpp-ota-tool session."""

from __future__ import annotations

from collections.abc import Callable

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.ota import Kic, Kid, Scp80KeySet, Spi
from tests.ota._ota_cases import pysim_keyset
from tests.vectors import VectorCase, cases

PYSIM_SESSION = cases("smpp/pysim.json", "ota-sms-cmd-encode+por-decode")[0]


def pysim_keys(case: VectorCase = PYSIM_SESSION) -> tuple[Spi, Kic, Kid, Scp80KeySet]:
    return pysim_keyset(case)


class ScriptedCard:
    """A transport whose card answers each C-APDU with ``answer(command)``; every command is kept in ``seen``."""

    def __init__(self, answer: Callable[[CommandApdu], ResponseApdu]) -> None:
        self.answer = answer
        self.seen: list[CommandApdu] = []
        self.closed = False

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        self.seen.append(command)
        return self.answer(command)

    def close(self) -> None:
        self.closed = True


def pysim_card(case: VectorCase = PYSIM_SESSION) -> ScriptedCard:
    """The real card of the pySim session: its PoR after ``61 xx`` and GET RESPONSE (a UICC, CLA 80)."""
    por = case.hex_in("encoded_resp")

    def answer(command: CommandApdu) -> ResponseApdu:
        if command.ins == 0xC2:
            return ResponseApdu(sw=0x6100 | len(por))
        if command.cla == 0x00 and command.ins == 0xC0 and command.le == len(por):
            return ResponseApdu(por)
        return ResponseApdu(sw=0x6D00)

    return ScriptedCard(answer)
