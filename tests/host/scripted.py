"""Test transports: a scripted card that answers recorded R-APDUs (checking the C-APDUs it is sent), and a card
built from our own card-side channel classes, answering the handshake and echoing wrapped commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import CardError
from gpchannel.scp.common import CardChannel


@dataclass
class Step:
    response: bytes
    expect: bytes | None = None
    """The exact command bytes the host must send; None accepts any command."""


@dataclass
class ScriptedCard:
    steps: list[Step]
    sent: list[bytes] = field(default_factory=list)
    closed: bool = False

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        raw = command.to_bytes()
        self.sent.append(raw)
        assert self.steps, f"the script has no answer for {raw.hex().upper()}"
        step = self.steps.pop(0)
        if step.expect is not None:
            assert raw.hex().upper() == step.expect.hex().upper()
        return ResponseApdu.from_bytes(step.response)

    def close(self) -> None:
        self.closed = True


def fixed_random(*values: bytes) -> Callable[[int], bytes]:
    queue = list(values)

    def draw(n: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == n, f"asked {n} random bytes, the test has {len(value)}"
        return value

    return draw


@dataclass
class ChannelCard:
    """A card with one secure channel (our card classes); after the handshake it echoes each command's data."""

    channel: CardChannel
    application: Callable[[CommandApdu], ResponseApdu] = field(
        default=lambda c: ResponseApdu(c.data[::-1] if c.data else b"\x01\x02", 0x9000)
    )
    seen: list[CommandApdu] = field(default_factory=list)

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        try:
            if command.ins == 0x50:
                return self.channel.initialize_update(command)
            if command.ins == 0x82:
                return self.channel.external_authenticate(command)
            plain = self.channel.unwrap(command)
            self.seen.append(plain)
            return self.channel.wrap(self.application(plain))
        except CardError as exc:
            return ResponseApdu(b"", exc.sw)

    def close(self) -> None:
        pass
