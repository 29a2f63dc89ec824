"""The card side of vsmartcard's vpcd protocol: a virtual card reachable through the real PC/SC stack.

vpcd (the ``libifdvpcd`` driver that pcscd loads, configured in ``/etc/reader.conf.d/vpcd``) listens on TCP
port ``CHANNELID`` (35963 by default) for reader slot 0 and on the next ports for the next slots ("Virtual PCD
00 00", "Virtual PCD 00 01"). The virtual card connects to it as a client. Every message, both ways, is a
2-byte big-endian length followed by that many bytes. From vpcd, a 1-byte message is a control code (00 power
off, 01 power on, 02 reset, 04 get ATR: answered with the ATR, the others with nothing); a longer one is a
C-APDU, answered with the R-APDU.

:class:`VpcdFramer` is the sans-I/O part (bytes in, messages out; answers encoded); :func:`serve_vpcd` is the
socket loop that drives a :class:`VirtualCard` with it.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import FrameType
from typing import Protocol

from gpchannel.errors import DecodeError, LocalProtocolError, TransportError
from gpchannel.io.vpcd_notice import DEFAULT_SILENCE, SlotNotice
from gpchannel.io.vpcd_slot import VpcdSlotLock
from gpchannel.io.vpcd_watch import DEFAULT_PATIENCE, DEFAULT_REST, InsertionWatch, next_patience

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Apdu",
    "Control",
    "VirtualCard",
    "VpcdControl",
    "VpcdFramer",
    "VpcdMessage",
    "VpcdSlotLock",
    "VpcdThread",
    "install_sigterm_handler",
    "serve_vpcd",
    "vpcd_base_port",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
"""vpcd's default CHANNELID (0x8C7B): the TCP port of reader slot 0."""

MAX_PAYLOAD = 0xFFFF
"""The length prefix is 2 bytes."""

_SW_EXECUTION_ERROR = b"\x6f\x00"
"""ISO 7816-4 6F00 "no precise diagnosis": the answer when the card itself fails."""

_log = logging.getLogger(__name__)


class VpcdControl(IntEnum):
    """The 1-byte control messages vpcd sends (vsmartcard's vpcd.h: VPCD_CTRL_*)."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


@dataclass(frozen=True, slots=True)
class Control:
    """A 1-byte message. ``code`` is kept raw so an unknown one can be reported rather than rejected."""

    code: int

    @property
    def known(self) -> VpcdControl | None:
        """The control code, or None when vpcd sent one this module does not know."""
        try:
            return VpcdControl(self.code)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Apdu:
    """A message of two bytes or more: a C-APDU (from vpcd) to answer with an R-APDU."""

    data: bytes


VpcdMessage = Control | Apdu


class VpcdFramer:
    """Sans-I/O framing of the vpcd stream: ``feed`` received bytes, get complete messages in order.

    A zero-length frame is not part of the protocol: :meth:`feed` raises DecodeError (with the stream offset
    of its length prefix) and the framer refuses further input, since the stream can no longer be trusted.
    """

    __slots__ = ("_broken", "_buffer", "_consumed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._consumed = 0
        self._broken = False

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[VpcdMessage]:
        """Add received bytes; return the messages they complete (possibly none)."""
        if self._broken:
            raise LocalProtocolError("the vpcd stream was malformed; open a new connection")
        self._buffer += data
        messages: list[VpcdMessage] = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 2:
            length = (buf[pos] << 8) | buf[pos + 1]
            if length == 0:
                self._broken = True
                offset = self._consumed + pos
                del buf[:pos]
                self._consumed += pos
                raise DecodeError("vpcd frame of length 0", offset)
            end = pos + 2 + length
            if len(buf) < end:
                break
            payload = bytes(buf[pos + 2 : end])
            messages.append(Control(payload[0]) if length == 1 else Apdu(payload))
            pos = end
        if pos:
            del buf[:pos]
            self._consumed += pos
        return messages

    @staticmethod
    def encode(payload: bytes) -> bytes:
        """One frame: the 2-byte big-endian length, then ``payload`` (1..65535 bytes)."""
        if not 1 <= len(payload) <= MAX_PAYLOAD:
            raise LocalProtocolError(f"a vpcd frame carries 1..{MAX_PAYLOAD} bytes, got {len(payload)}")
        return len(payload).to_bytes(2, "big") + payload

    @classmethod
    def encode_message(cls, message: VpcdMessage) -> bytes:
        """The frame for ``message`` as vpcd sends it (used by tests and by fake readers)."""
        if isinstance(message, Control):
            if not 0 <= message.code <= 0xFF:
                raise LocalProtocolError(f"a control code is one byte, got {message.code}")
            return cls.encode(bytes([message.code]))
        if len(message.data) < 2:
            raise LocalProtocolError("an APDU message carries at least 2 bytes (1 byte is a control code)")
        return cls.encode(message.data)


class VirtualCard(Protocol):
    """What :func:`serve_vpcd` drives: the emulator, or any test card."""

    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def transmit(self, apdu: bytes) -> bytes: ...


def vpcd_base_port(conf: str | Path = "/etc/reader.conf.d/vpcd") -> int:
    """The TCP port of vpcd's slot 0: the CHANNELID of its reader.conf entry (DEFAULT_PORT when unreadable)."""
    try:
        text = Path(conf).read_text()
    except OSError:
        return DEFAULT_PORT
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "CHANNELID":
            try:
                return int(fields[1], 0)
            except ValueError:
                break
    return DEFAULT_PORT


def _set_quickack(sock: socket.socket) -> None:
    # Linux leaves quick-ACK mode on its own; re-armed after every receive so our ACKs are never delayed
    # (pcscd waits on each answer, so a delayed ACK would stall the next exchange by up to 40 ms).
    if hasattr(socket, "TCP_QUICKACK"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class _Session:
    """One connection to vpcd: frames in, card calls, frames out."""

    def __init__(
        self,
        card: VirtualCard,
        sock: socket.socket,
        trace: logging.Logger | None,
        quickack: bool,
        poll: float,
        accepted: Callable[[], None] | None,
        watch: InsertionWatch,
        clock: Callable[[], float],
        notice: SlotNotice,
    ) -> None:
        self.card = card
        self.notice = notice
        self.accepted = accepted
        self.watch = watch
        self.clock = clock
        self.poll = poll
        self.sock = sock
        self.trace = trace
        self.quickack = quickack
        self.framer = VpcdFramer()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if quickack:
            _set_quickack(sock)

    def run(self, stop: threading.Event) -> bool:
        """Serve until vpcd closes the connection or ``stop`` is set; True when the connection is stuck (vpcd
        took this card for the one before, see gpchannel.io.vpcd_watch) and must be reopened.
        OSError / DecodeError end the session."""
        while not stop.is_set():
            if self.watch.stuck(self.clock()):
                return True
            self.notice.check(self.clock())  # silent: another card holds the slot (gpchannel.io.vpcd_notice)
            self.sock.settimeout(self._timeout())
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if data:
                self.notice.heard()
            if self.quickack:
                _set_quickack(self.sock)
            if not data:
                _log.info("vpcd closed the connection")
                return False
            for message in self.framer.feed(data):
                # vpcd speaks first (a GET ATR from its presence poll) once it has accepted this connection; a
                # TCP connect alone may only sit in the listen backlog while another card holds the slot. The
                # card is in the reader only once pcscd powers it on (or resets it).
                now = self.clock()
                inserted = isinstance(message, Control) and self.watch.control(message.code, now)
                if isinstance(message, Apdu):
                    self.watch.apdu(now)
                answer = self.handle(message)
                if answer is not None:
                    self.sock.sendall(VpcdFramer.encode(answer))
                if inserted:
                    _log.info("vpcd powered the card on: it is in the reader")
                    if self.accepted is not None:
                        self.accepted()
        return False

    def _timeout(self) -> float:
        """The receive timeout: ``poll``, or less when the watch's deadline comes first."""
        deadlines = [d for d in (self.watch.deadline(), self.notice.deadline()) if d is not None]
        if not deadlines:
            return self.poll
        return max(0.001, min(self.poll, min(deadlines) - self.clock()))

    def handle(self, message: VpcdMessage) -> bytes | None:
        if isinstance(message, Apdu):
            if self.trace:
                self.trace.debug("C-APDU %s", message.data.hex().upper())
            try:
                response = self.card.transmit(message.data)
                if len(response) < 2:
                    raise ValueError(f"the card answered {len(response)} bytes (an R-APDU has at least 2)")
            except Exception:
                _log.exception("the virtual card failed on %s; answering 6F00", message.data[:5].hex().upper())
                response = _SW_EXECUTION_ERROR
            if self.trace:
                self.trace.debug("R-APDU %s", response.hex().upper())
            return response
        code = message.known
        if self.trace:
            self.trace.debug("control %s", code.name if code is not None else f"{message.code:02X}")
        if code is VpcdControl.GET_ATR:
            # An exception here propagates: without an ATR vpcd cannot go on, the session is dropped.
            return self.card.atr()
        try:
            if code is VpcdControl.POWER_ON:
                self.card.power_on()
            elif code is VpcdControl.POWER_OFF:
                self.card.power_off()
            elif code is VpcdControl.RESET:
                self.card.reset()
            else:
                _log.warning("unknown vpcd control code %02X ignored", message.code)
        except Exception:
            _log.exception("the virtual card failed on %s", code.name if code else message.code)
        return None


def serve_vpcd(
    card: VirtualCard,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    stop: threading.Event | None = None,
    reconnect: bool = True,
    trace: logging.Logger | None = None,
    quickack: bool = True,
    poll: float = 0.2,
    max_backoff: float = 2.0,
    accepted: Callable[[], None] | None = None,
    patience: float | None = DEFAULT_PATIENCE,
    rest: float = DEFAULT_REST,
    clock: Callable[[], float] = time.monotonic,
    silence: float | None = DEFAULT_SILENCE,
) -> None:
    """Connect ``card`` to vpcd at ``host:port`` and answer it until ``stop`` is set.

    TCP_NODELAY is set and (on Linux, unless ``quickack`` is False) TCP_QUICKACK re-armed after every receive.
    When vpcd is not there or drops the connection (pcscd restarted), the loop reconnects with an exponential
    backoff (50 ms up to ``max_backoff`` s) if ``reconnect``; otherwise it returns when the connection ends and
    raises TransportError when the first connection fails. ``stop`` is checked every ``poll`` seconds.
    ``trace`` gets every C-APDU / R-APDU in hex and every control code at DEBUG level; ``accepted`` is called
    when vpcd first powers the card on (or resets it) on a new connection: pcscd has seen it inserted. An
    exception from ``card.transmit`` never ends the loop: it is logged and answered with 6F00.

    The reconnect trap (gpchannel.io.vpcd_watch): when vpcd sends nothing but ATR requests for ``patience``
    seconds (``clock`` time) after it first spoke, it took this card for the previous one and pcscd will never
    power it on; the loop closes, waits ``rest`` seconds (so a presence poll records the removal) and reconnects
    (a real insertion), giving the next connection twice the patience while it stays stuck. ``patience`` None
    turns the watch off.

    The notices (gpchannel.io.vpcd_notice): a refused connection is said once (WARNING) and again when one
    succeeds; a connection on which vpcd sends nothing for ``silence`` seconds (another card holds the slot) is
    said once and kept (vpcd accepts it when the slot is free).
    """
    stop = stop or threading.Event()
    notice = SlotNotice(host, port, retry=max_backoff, silence=silence)
    backoff = 0.05
    current = patience
    while not stop.is_set():
        try:
            sock = socket.create_connection((host, port), timeout=max(poll, 1.0))
        except OSError as exc:
            if not reconnect:
                raise TransportError(
                    f"cannot reach vpcd at {host}:{port} ({exc}); is pcscd running (scripts/pcscd.sh start)?"
                ) from exc
            notice.refused(exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        backoff = 0.05
        notice.connected(clock())
        watch = InsertionWatch(current)
        stuck = False
        try:
            stuck = _Session(card, sock, trace, quickack, poll, accepted, watch, clock, notice).run(stop)
        except (OSError, DecodeError) as exc:
            _log.warning("vpcd connection to %s:%d lost: %s", host, port, exc)
        finally:
            sock.close()
        if not reconnect:
            return
        if patience is not None:
            current = next_patience(current or patience, stuck, patience)
        if stuck:
            _log.warning(
                "vpcd polled this card for %.1fs without powering it on (it took it for the card before); "
                "reconnecting in %.1fs",
                watch.patience,
                rest,
            )
            stop.wait(rest)


class VpcdThread:
    """:func:`serve_vpcd` in a daemon thread: ``start()``, then ``close()`` (or use it as a context manager)."""

    def __init__(
        self,
        card: VirtualCard,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        trace: logging.Logger | None = None,
        quickack: bool = True,
        patience: float | None = DEFAULT_PATIENCE,
        rest: float = DEFAULT_REST,
    ) -> None:
        self.stop = threading.Event()
        self.connections = 0
        """How many times pcscd has seen the card inserted (vpcd powered it on or reset it on a new connection;
        a reconnection after a pcscd restart adds one)."""
        self._connected = threading.Condition()
        self._thread = threading.Thread(
            target=serve_vpcd,
            args=(card, host, port),
            kwargs={
                "stop": self.stop,
                "trace": trace,
                "quickack": quickack,
                "accepted": self._on_connect,
                "patience": patience,
                "rest": rest,
            },
            name=f"vpcd-{port}",
            daemon=True,
        )

    def _on_connect(self) -> None:
        with self._connected:
            self.connections += 1
            self._connected.notify_all()

    def start(self) -> VpcdThread:
        self._thread.start()
        return self

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until the card was inserted ``count`` times in all (see :attr:`connections`); False on timeout."""
        with self._connected:
            return self._connected.wait_for(lambda: self.connections >= count, timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> VpcdThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def install_sigterm_handler(stop: threading.Event, *, also_sigint: bool = False) -> None:
    """Make SIGTERM (and SIGINT if asked) set ``stop``, so :func:`serve_vpcd` ends cleanly. Main thread only."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    if also_sigint:
        signal.signal(signal.SIGINT, handler)
