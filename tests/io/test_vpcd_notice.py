"""SlotNotice on its own (hand-given times), then serve_vpcd saying it: against a port where nothing listens
(a listener appears later) and against a silent vpcd (a listening socket that never accepts, as vpcd does while
another card holds the slot), on a hand-driven clock; and a second card on a slot of the real pcscd + vpcd
that a first card holds (marker pcsc). Every wait is on a log line."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator

import pytest

from gpchannel.io.vpcd import Control, VpcdControl, VpcdFramer, serve_vpcd
from gpchannel.io.vpcd_notice import SlotNotice
from tests.io.cards import ATR_T0, ATR_T1, EchoCard
from tests.io.conftest import Serve

LOGGER = "gpchannel.io.vpcd"


def _notice(caplog: pytest.LogCaptureFixture, silence: float | None = 2.0) -> SlotNotice:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return SlotNotice("127.0.0.1", 35963, retry=2.0, silence=silence)


def _said(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= level]


def test_a_refused_connection_is_said_once_then_its_end(caplog: pytest.LogCaptureFixture) -> None:
    notice = _notice(caplog)
    for _ in range(3):
        notice.refused(ConnectionRefusedError(111, "Connection refused"))
    assert _said(caplog) == [
        "nothing listens on vpcd at 127.0.0.1:35963: is pcscd running with the vpcd driver? "
        "retrying every 2 s (Connection refused)"
    ]
    caplog.clear()
    notice.connected(0.0)
    assert _said(caplog) == ["vpcd at 127.0.0.1:35963 is listening now: connected to vpcd at 127.0.0.1:35963"]
    caplog.clear()
    notice.refused(ConnectionRefusedError(111, "Connection refused"))  # pcscd stopped again: said again
    assert len(_said(caplog)) == 1


def test_a_first_connection_is_info_only(caplog: pytest.LogCaptureFixture) -> None:
    notice = _notice(caplog)
    notice.connected(0.0)
    assert _said(caplog) == []
    assert _said(caplog, logging.INFO) == ["connected to vpcd at 127.0.0.1:35963"]


def test_silence_is_said_once_per_connection_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    notice = _notice(caplog)
    notice.connected(10.0)
    assert notice.deadline() == 12.0
    assert not notice.check(11.9)
    assert notice.check(12.0)
    assert not notice.check(30.0)
    assert notice.deadline() is None
    assert _said(caplog) == [
        "connected to vpcd at 127.0.0.1:35963 but it sends nothing: another card may hold this slot "
        "(try --vpcd 127.0.0.1:35964 for the next slot); waiting for the slot"
    ]
    caplog.clear()
    notice.heard()
    assert _said(caplog) == ["vpcd at 127.0.0.1:35963 speaks now: the slot is free and this card is in it"]
    notice.connected(40.0)  # a new connection is watched again
    assert notice.check(42.0)


def test_a_vpcd_that_speaks_in_time_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    notice = _notice(caplog)
    notice.connected(0.0)
    notice.heard()
    assert notice.deadline() is None
    assert not notice.check(100.0)
    caplog.clear()
    notice.heard()
    assert _said(caplog) == []


def test_silence_none_never_reports(caplog: pytest.LogCaptureFixture) -> None:
    notice = _notice(caplog, silence=None)
    notice.connected(0.0)
    assert not notice.check(1e9)


# --- serve_vpcd saying it ---------------------------------------------------------------------------------------


class LogLines(logging.Handler):
    """Collects the vpcd logger's lines; :meth:`wait` blocks until one matches (an event, not a sleep)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append((record.levelno, record.getMessage()))
            self.changed.notify_all()

    def wait(self, pattern: str, timeout: float = 10.0) -> str:
        regex = re.compile(pattern)
        found: list[str] = []

        def match() -> bool:
            found[:] = [m for _, m in self.lines if regex.search(m)]
            return bool(found)

        with self.changed:
            assert self.changed.wait_for(match, timeout), f"no log line matching {pattern!r} in {self.lines}"
        return found[0]

    def count(self, pattern: str) -> int:
        with self.changed:
            return sum(1 for _, m in self.lines if re.search(pattern, m))


@pytest.fixture
def lines() -> Iterator[LogLines]:
    logger = logging.getLogger(LOGGER)
    handler = LogLines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _serve(port: int, clock: Clock) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_vpcd,
        args=(EchoCard(), "127.0.0.1", port),
        kwargs={"stop": stop, "clock": clock, "silence": 2.0, "max_backoff": 0.2},
    )
    thread.start()
    return thread, stop


def _free_port() -> int:
    probe = socket.create_server(("127.0.0.1", 0))
    port: int = probe.getsockname()[1]
    probe.close()
    return port


def test_nothing_listening_is_said_once_and_the_loop_connects_when_vpcd_comes(lines: LogLines) -> None:
    port = _free_port()
    thread, stop = _serve(port, Clock())
    try:
        said = lines.wait(r"nothing listens on vpcd")
        assert said.startswith(f"nothing listens on vpcd at 127.0.0.1:{port}: is pcscd running with the vpcd driver?")
        lines.wait(r"still not reachable")  # it retried, quietly
        server = socket.create_server(("127.0.0.1", port))
        try:
            lines.wait(rf"is listening now: connected to vpcd at 127.0.0.1:{port}")
        finally:
            server.close()
        assert lines.count(r"nothing listens") == 1
    finally:
        stop.set()
        thread.join(10)


def test_a_silent_vpcd_is_said_and_the_connection_kept_until_it_speaks(lines: LogLines) -> None:
    # A listening socket that does not accept: the card's connect succeeds (the listen backlog) and nothing comes,
    # as with vpcd while another card holds the slot.
    server = socket.create_server(("127.0.0.1", 0), backlog=4)
    server.settimeout(10)
    port = server.getsockname()[1]
    clock = Clock()
    thread, stop = _serve(port, clock)
    try:
        lines.wait(rf"connected to vpcd at 127.0.0.1:{port}$")
        clock.now = 2.5
        said = lines.wait(r"sends nothing")
        assert f"try --vpcd 127.0.0.1:{port + 1} for the next slot" in said
        conn, _ = server.accept()  # the slot is free: vpcd accepts the waiting connection and polls it
        conn.settimeout(10)
        conn.sendall(VpcdFramer.encode_message(Control(VpcdControl.GET_ATR)))
        assert conn.recv(64) == VpcdFramer.encode(ATR_T1)
        lines.wait(r"speaks now: the slot is free")
        assert lines.count(r"^connected to vpcd at [0-9.:]+$") == 1  # the same connection throughout
        conn.close()
    finally:
        stop.set()
        thread.join(10)
        server.close()


@pytest.mark.pcsc
def test_a_second_card_on_a_held_slot_of_the_real_vpcd_is_told_so(virtual_reader: Serve, lines: LogLines) -> None:
    # Through pcscd + vpcd: one card is in the slot; a second one connected to the same port hears nothing.
    with virtual_reader(EchoCard()) as reader:
        stop = threading.Event()
        second = threading.Thread(
            target=serve_vpcd,
            args=(EchoCard(ATR_T0), "127.0.0.1", reader.port),
            kwargs={"stop": stop, "silence": 1.0},
        )
        second.start()
        try:
            said = lines.wait(rf"127.0.0.1:{reader.port} but it sends nothing", timeout=20)
            assert f"try --vpcd 127.0.0.1:{reader.port + 1}" in said
            assert lines.count(r"speaks now") == 0
        finally:
            stop.set()
            second.join(10)
