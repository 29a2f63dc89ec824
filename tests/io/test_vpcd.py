"""VpcdFramer (hypothesis: whole, byte at a time, any split) and serve_vpcd against an in-test fake vpcd.

The fake vpcd is a listening socket on 127.0.0.1 (an ephemeral port) that speaks the reader side of the
protocol, so the loop is tested without pcscd; tests/io/test_pcsc.py runs it through the real stack.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpchannel.errors import DecodeError, LocalProtocolError, TransportError
from gpchannel.io.vpcd import (
    Apdu,
    Control,
    VpcdControl,
    VpcdFramer,
    VpcdMessage,
    VpcdSlotLock,
    VpcdThread,
    install_sigterm_handler,
    serve_vpcd,
    vpcd_base_port,
)
from tests.io.cards import ATR_T1, EchoCard

messages = st.lists(
    st.one_of(
        st.integers(0, 255).map(Control),
        st.binary(min_size=2, max_size=300).map(Apdu),
    ),
    max_size=12,
)


def _stream(msgs: list[VpcdMessage]) -> bytes:
    return b"".join(VpcdFramer.encode_message(m) for m in msgs)


@given(messages)
def test_frames_fed_whole(msgs: list[VpcdMessage]) -> None:
    framer = VpcdFramer()
    assert framer.feed(_stream(msgs)) == msgs
    assert framer.pending == 0


@given(messages)
def test_frames_fed_byte_at_a_time(msgs: list[VpcdMessage]) -> None:
    framer = VpcdFramer()
    out: list[VpcdMessage] = []
    for b in _stream(msgs):
        out += framer.feed(bytes([b]))
    assert out == msgs
    assert framer.pending == 0


@given(messages, st.data())
def test_frames_fed_in_any_split(msgs: list[VpcdMessage], data: st.DataObject) -> None:
    stream = _stream(msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = VpcdFramer()
    out: list[VpcdMessage] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[start:cut])
        start = cut
    assert out == msgs


@given(st.binary(max_size=400))
def test_any_bytes_give_messages_or_decode_error(raw: bytes) -> None:
    framer = VpcdFramer()
    try:
        out = framer.feed(raw)
    except DecodeError as exc:
        assert exc.offset is not None and raw[exc.offset : exc.offset + 2] == b"\x00\x00"
        return
    assert _stream(out) + raw[len(raw) - framer.pending :] == raw


def test_wire_layout() -> None:
    """2-byte big-endian length, then the payload; one byte is a control code (vsmartcard vpcd.h)."""
    assert VpcdFramer.encode(b"\x90\x00") == b"\x00\x02\x90\x00"
    assert VpcdFramer.encode(bytes(300))[:2] == b"\x01\x2c"
    assert VpcdFramer().feed(b"\x00\x01\x04\x00\x01\x01") == [Control(4), Control(1)]
    assert Control(4).known is VpcdControl.GET_ATR
    assert Control(3).known is None
    assert VpcdFramer().feed(b"\x00\x04\x00\xa4\x04\x00") == [Apdu(b"\x00\xa4\x04\x00")]


def test_zero_length_frame_breaks_the_stream() -> None:
    framer = VpcdFramer()
    assert framer.feed(b"\x00\x01\x01") == [Control(1)]
    with pytest.raises(DecodeError) as info:
        framer.feed(b"\x00\x00")
    assert info.value.offset == 3
    with pytest.raises(LocalProtocolError):
        framer.feed(b"\x00\x01\x01")


@pytest.mark.parametrize("payload", [b"", bytes(0x10000)])
def test_encode_refuses_what_the_prefix_cannot_carry(payload: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        VpcdFramer.encode(payload)


def test_encode_message_refuses_ambiguous_messages() -> None:
    with pytest.raises(LocalProtocolError):
        VpcdFramer.encode_message(Apdu(b"\x00"))
    with pytest.raises(LocalProtocolError):
        VpcdFramer.encode_message(Control(256))


def test_base_port_from_reader_conf(tmp_path: pytest.TempPathFactory) -> None:
    conf = tmp_path / "vpcd"  # type: ignore[operator]
    conf.write_text('FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x9C40\nCHANNELID    0x9C40\n')
    assert vpcd_base_port(conf) == 0x9C40
    assert vpcd_base_port(tmp_path / "missing") == 35963  # type: ignore[operator]


# --- serve_vpcd against a fake vpcd ------------------------------------------------------------------------------


class FakeVpcd:
    """The reader side: accepts the card's connection and exchanges frames with it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.port: int = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.framer = VpcdFramer()

    def accept(self) -> socket.socket:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(10)
        self.framer = VpcdFramer()
        return self.conn

    def ask(self, message: VpcdMessage) -> bytes:
        assert self.conn is not None
        self.conn.sendall(VpcdFramer.encode_message(message))
        return self.receive()

    def send(self, message: VpcdMessage) -> None:
        assert self.conn is not None
        self.conn.sendall(VpcdFramer.encode_message(message))

    def receive(self) -> bytes:
        assert self.conn is not None
        while True:
            out = self.framer.feed(self.conn.recv(4096))
            if out:
                assert len(out) == 1
                msg = out[0]
                return bytes([msg.code]) if isinstance(msg, Control) else msg.data

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.server.close()


@pytest.fixture
def fake() -> Iterator[FakeVpcd]:
    vpcd = FakeVpcd()
    yield vpcd
    vpcd.close()


def test_serves_controls_and_apdus(
    fake: FakeVpcd, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = EchoCard()
    trace = logging.getLogger("test.vpcd.trace")
    card_sockets: list[socket.socket] = []
    create_connection = socket.create_connection

    def spy(*args: object, **kwargs: object) -> socket.socket:
        sock = create_connection(*args, **kwargs)  # type: ignore[arg-type]
        card_sockets.append(sock)
        return sock

    monkeypatch.setattr("gpchannel.io.vpcd.socket.create_connection", spy)
    with caplog.at_level(logging.DEBUG, logger="test.vpcd.trace"), VpcdThread(card, port=fake.port, trace=trace):
        fake.accept()
        fake.send(Control(VpcdControl.POWER_ON))
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
        assert fake.ask(Apdu(bytes.fromhex("00A4040003A00000"))) == b"\x90\x00"
        assert fake.ask(Apdu(bytes.fromhex("8050000002CAFE"))) == bytes.fromhex("CAFE9000")
        fake.send(Control(VpcdControl.RESET))
        fake.send(Control(0x7F))  # unknown: ignored, the session goes on
        fake.send(Control(VpcdControl.POWER_OFF))
        assert fake.ask(Apdu(bytes.fromhex("80500000021234"))) == bytes.fromhex("12349000")
        assert card_sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert card.controls == ["on", "atr", "reset", "off"]
    assert card.seen[0] == bytes.fromhex("00A4040003A00000")
    traced = [r.getMessage() for r in caplog.records if r.name == "test.vpcd.trace"]
    assert "C-APDU 8050000002CAFE" in traced and "R-APDU CAFE9000" in traced and "control GET_ATR" in traced


def test_card_exception_answers_6f00_and_the_loop_goes_on(fake: FakeVpcd, caplog: pytest.LogCaptureFixture) -> None:
    card = EchoCard()
    with caplog.at_level(logging.ERROR, logger="gpchannel.io.vpcd"), VpcdThread(card, port=fake.port):
        fake.accept()
        assert fake.ask(Apdu(bytes.fromhex("80EE0000"))) == b"\x6f\x00"
        assert fake.ask(Apdu(bytes.fromhex("8050000001AA"))) == bytes.fromhex("AA9000")
    assert any("answering 6F00" in r.getMessage() for r in caplog.records)


def test_short_answer_from_the_card_becomes_6f00(fake: FakeVpcd) -> None:
    class Mute(EchoCard):
        def transmit(self, apdu: bytes) -> bytes:
            return b"\x90"

    with VpcdThread(Mute(), port=fake.port):
        fake.accept()
        assert fake.ask(Apdu(bytes.fromhex("80500000"))) == b"\x6f\x00"


def test_reconnects_when_the_reader_side_drops(fake: FakeVpcd) -> None:
    card = EchoCard()
    with VpcdThread(card, port=fake.port) as runner:
        fake.accept()
        assert fake.ask(Control(VpcdControl.GET_ATR)) == card.atr()
        assert runner.connections == 0  # vpcd polls it, but pcscd has not powered it on: not inserted yet
        fake.send(Control(VpcdControl.POWER_ON))
        assert runner.wait_connected(1)
        fake.drop()  # pcscd stopped
        fake.accept()  # pcscd back
        assert fake.ask(Control(VpcdControl.GET_ATR)) == card.atr()
        fake.send(Control(VpcdControl.POWER_ON))
        assert runner.wait_connected(2)
        assert fake.ask(Apdu(bytes.fromhex("8050000001BB"))) == bytes.fromhex("BB9000")


def test_reconnects_after_refused_connections() -> None:
    # A port with no listener: connections are refused; the loop retries until a listener appears there.
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with VpcdThread(EchoCard(), port=port) as runner:
        server = socket.create_server(("127.0.0.1", port))
        server.settimeout(10)
        try:
            conn, _ = server.accept()
            conn.settimeout(10)
            conn.sendall(VpcdFramer.encode_message(Control(VpcdControl.GET_ATR)))
            assert conn.recv(64) == VpcdFramer.encode(ATR_T1)
            conn.sendall(VpcdFramer.encode_message(Control(VpcdControl.POWER_ON)))
            assert runner.wait_connected(1)
            conn.close()
        finally:
            server.close()


def test_without_reconnect_an_absent_vpcd_is_a_transport_error() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(TransportError, match=r"pcscd\.sh start"):
        serve_vpcd(EchoCard(), port=port, reconnect=False)


def test_without_reconnect_the_loop_returns_when_vpcd_closes(fake: FakeVpcd) -> None:
    done = threading.Event()

    def run() -> None:
        serve_vpcd(EchoCard(), port=fake.port, reconnect=False)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    fake.accept()
    assert fake.ask(Apdu(bytes.fromhex("8050000001CC"))) == bytes.fromhex("CC9000")
    fake.drop()
    thread.join(10)
    assert done.is_set()


def test_a_malformed_stream_ends_the_session_and_reconnects(fake: FakeVpcd) -> None:
    with VpcdThread(EchoCard(), port=fake.port) as runner:
        conn = fake.accept()
        conn.sendall(b"\x00\x00")
        fake.accept()
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
        fake.send(Control(VpcdControl.RESET))
        assert runner.wait_connected(1)


def test_stop_event_ends_the_loop(fake: FakeVpcd) -> None:
    runner = VpcdThread(EchoCard(), port=fake.port).start()
    fake.accept()
    assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
    fake.send(Control(VpcdControl.POWER_ON))
    assert runner.wait_connected(1)
    runner.close()
    assert not runner._thread.is_alive()
    assert fake.conn is not None and fake.conn.recv(16) == b""  # the card closed its side


# --- the reconnect trap (gpchannel.io.vpcd_watch): serve_vpcd on a hand-driven clock -------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Clocked:
    """serve_vpcd in a thread on a hand-driven clock; ``inserted`` is set at each insertion."""

    def __init__(self, port: int, rest: float = 0.0) -> None:
        self.clock = Clock()
        self.stop = threading.Event()
        self.inserted = threading.Semaphore(0)
        self.card = EchoCard()
        kwargs = {"stop": self.stop, "accepted": self.inserted.release, "patience": 1.5, "rest": rest}
        self.thread = threading.Thread(
            target=serve_vpcd, args=(self.card, "127.0.0.1", port), kwargs={**kwargs, "clock": self.clock}
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def clocked(fake: FakeVpcd) -> Iterator[Clocked]:
    runner = Clocked(fake.port)
    yield runner
    runner.close()


def test_polled_but_never_powered_is_reopened(
    fake: FakeVpcd, clocked: Clocked, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gpchannel.io.vpcd"):
        conn = fake.accept()
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1  # the poll that took it for the card before
        clocked.clock.now += 1.0
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
        fake.send(Control(VpcdControl.POWER_OFF))
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1  # answered: the power-off was handled before
        clocked.clock.now += 0.5  # 1.5 s of nothing but polls: the card closes its side ...
        assert conn.recv(16) == b""
        fake.accept()  # ... and connects again, for a real insertion
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
        fake.send(Control(VpcdControl.POWER_ON))
        assert clocked.inserted.acquire(timeout=10)
        clocked.clock.now += 3600  # powered: kept however long vpcd only polls it afterwards
        assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
        assert fake.ask(Apdu(bytes.fromhex("8050000001DD"))) == bytes.fromhex("DD9000")
    assert not clocked.inserted.acquire(timeout=0)  # the stuck connection was never counted as an insertion
    assert clocked.card.controls == ["atr", "atr", "off", "atr", "atr", "on", "atr"]
    assert any("without powering it on" in r.getMessage() for r in caplog.records)


def test_the_patience_doubles_while_stuck(fake: FakeVpcd, clocked: Clocked) -> None:
    conn = fake.accept()
    assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
    clocked.clock.now += 1.5
    assert conn.recv(16) == b""
    conn = fake.accept()
    assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
    clocked.clock.now += 2.75  # the second connection gets 3 s ...
    assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
    clocked.clock.now += 0.25
    assert conn.recv(16) == b""  # ... and no more
    fake.accept()
    fake.send(Control(VpcdControl.POWER_ON))
    assert clocked.inserted.acquire(timeout=10)


@pytest.mark.parametrize(
    "first", [Control(VpcdControl.POWER_ON), Control(VpcdControl.RESET), Apdu(bytes.fromhex("8050000001EE"))]
)
def test_power_on_reset_or_an_apdu_keeps_the_connection(fake: FakeVpcd, clocked: Clocked, first: VpcdMessage) -> None:
    fake.accept()
    assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1
    if isinstance(first, Apdu):
        assert fake.ask(first) == bytes.fromhex("EE9000")
    else:
        fake.send(first)
        assert clocked.inserted.acquire(timeout=10)  # handled before the clock moves on
    clocked.clock.now += 3600
    assert fake.ask(Control(VpcdControl.GET_ATR)) == ATR_T1  # still the same connection
    assert fake.ask(Apdu(bytes.fromhex("8050000001FF"))) == bytes.fromhex("FF9000")
    assert not clocked.inserted.acquire(timeout=0)  # one insertion at most (none for an APDU)


def test_sigterm_handler_sets_the_event() -> None:
    import os
    import signal

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        install_sigterm_handler(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(10)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_slot_lock_is_exclusive(tmp_path: pytest.TempPathFactory) -> None:
    first = VpcdSlotLock(35999, directory=str(tmp_path))
    second = VpcdSlotLock(35999, directory=str(tmp_path))
    other_slot = VpcdSlotLock(36000, directory=str(tmp_path))
    assert first.try_acquire() and first.try_acquire()
    assert not second.try_acquire()
    assert other_slot.try_acquire()
    with pytest.raises(TransportError, match="in use by another process"), second:
        pass
    first.release()
    with second:
        assert not first.try_acquire()
    assert first.try_acquire()
    first.release()
    other_slot.release()
