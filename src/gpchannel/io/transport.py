"""How the host side reaches a card: the :class:`Transport` protocol and its simple implementations.

- :class:`InProcessTransport`: any ``bytes -> bytes`` callable, e.g. the emulator's ``Card.process`` in-process.
- :class:`TracingTransport`: wraps a transport and reports every C-APDU / R-APDU in hex to a callback.
- :class:`~gpchannel.io.pcsc.PcscTransport` (re-exported here with :func:`~gpchannel.io.pcsc.list_readers`): a
  card in a PC/SC reader, through pcscd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import DecodeError, TransportError
from gpchannel.io.pcsc import PcscTransport, list_readers

__all__ = ["InProcessTransport", "PcscTransport", "TracingTransport", "Transport", "list_readers"]


class Transport(Protocol):
    """One command APDU to the card, its complete response back (61xx / 6Cxx already handled)."""

    def transmit(self, command: CommandApdu) -> ResponseApdu: ...

    def close(self) -> None: ...


class InProcessTransport:
    """A transport over ``process`` (one C-APDU in bytes -> its R-APDU in bytes), in the same process."""

    def __init__(self, process: Callable[[bytes], bytes]) -> None:
        self.process = process
        self.closed = False

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        if self.closed:
            raise TransportError("the in-process transport is closed")
        raw = self.process(command.to_bytes())
        try:
            return ResponseApdu.from_bytes(raw)
        except DecodeError as exc:
            raise TransportError(f"the card returned a malformed R-APDU ({raw.hex().upper()}): {exc}") from exc

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> InProcessTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TracingTransport:
    """Wraps ``inner`` and calls ``sink`` with ``"> " + C-APDU hex`` before and ``"< " + R-APDU hex`` after each
    exchange (upper-case hex, no spaces). Secure-channel traffic is traced as on the wire (MACed and, at the
    levels that ask for it, encrypted)."""

    def __init__(self, inner: Transport, sink: Callable[[str], None]) -> None:
        self.inner = inner
        self.sink = sink

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        self.sink("> " + command.to_bytes().hex().upper())
        response = self.inner.transmit(command)
        self.sink("< " + response.to_bytes().hex().upper())
        return response

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> TracingTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
