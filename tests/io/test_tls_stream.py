"""PSK-TLS over asyncio on 127.0.0.1: our server against the openssl command line's s_client, our client against
openssl s_server (independent peers, marker ``openssl``), and our client against our server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gpchannel.errors import TlsError, TransportError
from gpchannel.io.tls_policy import PskTlsPolicy
from gpchannel.io.tls_psk import PskClientContext, PskServerContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream, serve_psk
from tests.io.openssl_peer import SServer, s_client, spawn_s_client

PSK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
WRONG_PSK = bytes.fromhex("404142434445464748494A4B4C4D4E40")
IDENTITY = "card-0001"
KEYS = {IDENTITY.encode(): PSK}
SUITES = ["PSK-AES128-CBC-SHA256", "PSK-AES128-GCM-SHA256"]

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def echo_once(stream: PskStream) -> None:
    """Read one chunk, answer it prefixed, then close (close_notify ends openssl s_client)."""
    data = await stream.read()
    await stream.write(b"echo:" + data)


class LogEvent(logging.Handler):
    """An asyncio.Event set (from whatever thread logs) once ``logger`` logs a message containing ``needle``:
    a test waits for the server's log line instead of hoping it was written already."""

    def __init__(self, needle: str, logger: str = "gpchannel.io.tls") -> None:
        super().__init__(logging.DEBUG)
        self.needle = needle
        self.logger = logging.getLogger(logger)
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.loop.call_soon_threadsafe(self.event.set)

    async def __aenter__(self) -> LogEvent:
        self.logger.addHandler(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)

    async def wait(self, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            await self.event.wait()


async def serving(
    handler: Callable[[PskStream], Awaitable[None]],
    policy: PskTlsPolicy = PskTlsPolicy(),
    handshake_timeout: float = 30.0,
) -> tuple[asyncio.Server, int]:
    server = await serve_psk(
        handler, "127.0.0.1", 0, PskServerContext(KEYS.get, policy), handshake_timeout=handshake_timeout
    )
    return server, server.sockets[0].getsockname()[1]


# -- our server <- openssl s_client --------------------------------------------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("cipher", SUITES)
def test_openssl_client_to_our_server(cipher: str) -> None:
    seen: list[tuple[bytes | None, str | None, str | None, tuple[str, int] | None]] = []

    async def handler(stream: PskStream) -> None:
        seen.append((stream.identity, stream.cipher_name, stream.version, stream.peername))
        await echo_once(stream)

    async def main() -> None:
        server, port = await serving(handler)
        async with server:
            result = await s_client(port, psk=PSK, identity=IDENTITY, cipher=cipher, stdin=b"ping\n")
        assert result.returncode == 0, result.output
        assert result.stdout == b"echo:ping\n"

    run(main())
    assert len(seen) == 1
    identity, suite, version, peer = seen[0]
    assert (identity, suite, version) == (IDENTITY.encode(), cipher, "TLSv1.2")
    assert peer is not None and peer[0] == "127.0.0.1"


@pytest.mark.openssl
def test_openssl_client_wrong_psk(caplog: pytest.LogCaptureFixture) -> None:
    called: list[PskStream] = []

    async def handler(stream: PskStream) -> None:
        called.append(stream)

    async def main() -> None:
        server, port = await serving(handler)
        async with server, LogEvent("failed") as logged:
            result = await s_client(port, psk=WRONG_PSK, identity=IDENTITY, cipher=SUITES[0], stdin=b"ping\n")
            await logged.wait()  # the server task's log line
        assert result.returncode != 0
        assert "alert bad record mac" in result.output  # the alert our server sent, as openssl reports it

    with caplog.at_level(logging.INFO, logger="gpchannel.io.tls"):
        run(main())
    assert not called
    failures = [r for r in caplog.records if "handshake" in r.getMessage() and "failed" in r.getMessage()]
    assert failures, caplog.text
    assert "bad_record_mac" in failures[0].getMessage()
    assert IDENTITY in failures[0].getMessage()
    assert PSK.hex() not in caplog.text.lower() and WRONG_PSK.hex() not in caplog.text.lower()


@pytest.mark.openssl
def test_openssl_client_unknown_identity(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, port = await serving(echo_once)
        async with server, LogEvent("unknown_psk_identity") as logged:
            result = await s_client(port, psk=PSK, identity="stranger", cipher=SUITES[1], stdin=b"ping\n")
            await logged.wait()
        assert result.returncode != 0
        assert "alert unknown psk identity" in result.output

    with caplog.at_level(logging.INFO, logger="gpchannel.io.tls"):
        run(main())
    assert "unknown_psk_identity" in caplog.text
    assert "stranger" in caplog.text


@pytest.mark.openssl
def test_openssl_client_null_suite_refused() -> None:
    async def main() -> None:
        server, port = await serving(echo_once)
        async with server:
            result = await s_client(
                port, psk=PSK, identity=IDENTITY, cipher="PSK-NULL-SHA256:@SECLEVEL=0", stdin=b"ping\n"
            )
        assert result.returncode != 0
        assert "alert handshake failure" in result.output
        assert b"echo:" not in result.stdout

    run(main())


@pytest.mark.openssl
def test_openssl_client_null_suite_with_allow_null() -> None:
    async def main() -> None:
        server, port = await serving(echo_once, PskTlsPolicy.legacy(allow_null=True))
        async with server:
            result = await s_client(
                port, psk=PSK, identity=IDENTITY, cipher="PSK-NULL-SHA256:@SECLEVEL=0", stdin=b"ping\n"
            )
        assert result.returncode == 0, result.output
        assert result.stdout == b"echo:ping\n"

    run(main())


@pytest.mark.openssl
def test_openssl_client_legacy_tls1_0() -> None:
    async def main() -> None:
        server, port = await serving(echo_once, PskTlsPolicy.legacy())
        async with server:
            result = await s_client(
                port,
                psk=PSK,
                identity=IDENTITY,
                cipher="PSK-AES128-CBC-SHA:@SECLEVEL=0",
                version="-tls1",
                stdin=b"ping\n",
            )
        assert result.returncode == 0, result.output
        assert result.stdout == b"echo:ping\n"
        refused = await serving(echo_once)
        async with refused[0]:
            result = await s_client(
                refused[1],
                psk=PSK,
                identity=IDENTITY,
                cipher="PSK-AES128-CBC-SHA:@SECLEVEL=0",
                version="-tls1",
                stdin=b"ping\n",
            )
        assert result.returncode != 0
        assert "protocol version" in result.output

    run(main())


def _server_hello_extensions(output: str) -> list[str]:
    """The "TLS server extension ..." lines openssl s_client -tlsextdebug prints for the ServerHello."""
    return [line for line in output.splitlines() if line.startswith("TLS server extension")]


@pytest.mark.openssl
def test_no_session_ticket_and_no_encrypt_then_mac() -> None:
    """The client offers session tickets and encrypt-then-MAC (RFC 7366) by default; our ServerHello must carry
    neither and no NewSessionTicket may follow (ota-notes B.1). The same client against openssl s_server shows
    both, so the check can fail."""
    extra = ("-ign_eof", "-tlsextdebug", "-msg")

    async def main() -> None:
        server, port = await serving(echo_once)
        async with server:
            ours = await s_client(port, psk=PSK, identity=IDENTITY, cipher=SUITES[0], extra=extra, stdin=b"ping\n")
        assert ours.returncode == 0, ours.output
        assert "echo:ping" in ours.output
        ours_ext = _server_hello_extensions(ours.output)
        assert ours_ext, ours.output  # extended master secret, renegotiation info
        assert not any("encrypt-then-mac" in line for line in ours_ext), ours_ext
        assert not any("session ticket" in line for line in ours_ext), ours_ext
        assert "NewSessionTicket" not in ours.output
        assert any("extended master secret" in line for line in ours_ext)
        # control: openssl s_server (defaults) negotiates both
        async with SServer(PSK, IDENTITY, SUITES[0]) as reference:
            theirs = await s_client(
                reference.port, psk=PSK, identity=IDENTITY, cipher=SUITES[0], extra=extra, stdin=b"CLOSE\n"
            )
        theirs_ext = _server_hello_extensions(theirs.output)
        assert any("encrypt-then-mac" in line for line in theirs_ext), theirs.output
        assert any("session ticket" in line for line in theirs_ext), theirs.output
        assert "NewSessionTicket" in theirs.output

    run(main())


@pytest.mark.openssl
def test_renegotiation_refused() -> None:
    """openssl s_client's "R" command asks for a renegotiation: the server answers no_renegotiation and the
    client gives up with handshake_failure; no second handshake ever happens (ota-notes B.1 profile)."""
    failures: list[TlsError] = []
    received: list[bytes] = []
    failed = asyncio.Event()

    async def handler(stream: PskStream) -> None:
        try:
            while chunk := await stream.read():
                received.append(chunk)
                await stream.write(b"echo:" + chunk)
        except TlsError as exc:
            failures.append(exc)
            failed.set()
            assert stream.connection.alert_sent == "no_renegotiation"

    async def main() -> None:
        server, port = await serving(handler)
        async with server:
            proc = await spawn_s_client(port, psk=PSK, identity=IDENTITY, cipher=SUITES[0])
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"hello\n")
            output = b""
            async with asyncio.timeout(20):
                while b"echo:hello" not in output:
                    line = await proc.stdout.readline()
                    assert line, output
                    output += line
                proc.stdin.write(b"R\n")
                output += await proc.stdout.read()
                await proc.wait()
            text = output.decode(errors="replace")
            assert "RENEGOTIATING" in text
            assert "no renegotiation" in text or "handshake failure" in text, text
            await failed.wait()

    run(main())
    assert received == [b"hello\n"]
    assert failures[0].alert == "handshake_failure"


# -- our client -> openssl s_server --------------------------------------------------------------------------------


@pytest.mark.openssl
@pytest.mark.parametrize("cipher", SUITES)
def test_our_client_to_openssl_server(cipher: str) -> None:
    async def main() -> None:
        async with SServer(PSK, IDENTITY, cipher) as server:
            stream = await open_psk_stream("127.0.0.1", server.port, PskClientContext(IDENTITY.encode(), PSK))
            assert stream.cipher_name == cipher
            assert stream.version == "TLSv1.2"
            await stream.write(b"hello card\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = await stream.read()
                assert chunk, "s_server closed early"
                answer += chunk
            assert answer == b"drac olleh\n"  # s_server -rev answers each line reversed
            await stream.write(b"CLOSE\n")  # s_server -rev: send close_notify and close
            assert await stream.read() == b""
            await stream.close()
            result = await server.finish()
        assert result.returncode == 0, result.output

    run(main())


@pytest.mark.openssl
def test_our_client_wrong_psk_against_openssl_server() -> None:
    async def main() -> None:
        async with SServer(PSK, IDENTITY, SUITES[0]) as server:
            with pytest.raises(TlsError) as info:
                await open_psk_stream("127.0.0.1", server.port, PskClientContext(IDENTITY.encode(), WRONG_PSK))
        assert info.value.alert == "bad_record_mac"

    run(main())


# -- our client -> our server --------------------------------------------------------------------------------------


def test_engine_to_engine_over_tcp_half_close_and_a_large_transfer() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: several drains (write backpressure) on both sides
    got: list[bytes] = []

    async def handler(stream: PskStream) -> None:
        received = bytearray()
        while chunk := await stream.read():
            received += chunk
        got.append(bytes(received))
        await stream.write(b"total %d" % len(received))  # after the client's close_notify: half-close

    async def main() -> None:
        server, port = await serving(handler, PskTlsPolicy(max_record_plaintext=1024))
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
            await stream.write(payload)
            await stream.write_eof()  # close_notify; keep reading
            answer = b""
            while chunk := await stream.read():
                answer += chunk
            assert answer == b"total %d" % len(payload)
            await stream.close()

    run(main())
    assert got == [payload]


def test_lookup_in_thread_keeps_the_event_loop_free() -> None:
    """A lookup that blocks (a database) runs off the event loop with lookup_in_thread=True: another coroutine
    keeps running while it blocks, and the lookup ran on another thread."""
    import threading

    release = threading.Event()
    lookup_threads: list[int] = []
    looking_up = threading.Event()

    def slow_lookup(identity: bytes) -> bytes | None:
        lookup_threads.append(threading.get_ident())
        looking_up.set()
        release.wait(10)
        return KEYS.get(identity)

    async def main() -> None:
        server = await serve_psk(echo_once, "127.0.0.1", 0, PskServerContext(slow_lookup), lookup_in_thread=True)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = asyncio.create_task(
                open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK), timeout=20)
            )
            # The loop is free while the lookup blocks: this coroutine waits for it without blocking the loop.
            assert await asyncio.get_running_loop().run_in_executor(None, looking_up.wait, 20)
            release.set()
            stream = await client
            await stream.write(b"hi")
            assert await stream.read() == b"echo:hi"
            await stream.close()
        assert lookup_threads[0] != threading.get_ident()

    run(main())


def test_handshake_timeout_drops_a_stalling_client(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server, port = await serving(echo_once, handshake_timeout=0.5)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await reader.read() == b""  # the server closed without a word
            writer.close()
            await writer.wait_closed()

    with caplog.at_level(logging.INFO, logger="gpchannel.io.tls"):
        run(main())
    assert "timed out" in caplog.text


def test_each_stalling_client_is_dropped_at_its_own_deadline(caplog: pytest.LogCaptureFixture) -> None:
    """One timer serves all handshakes: a client that completes in time keeps its session, two that stall, one
    after the other, are each dropped no sooner than the timeout after they connected."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server, port = await serving(echo_once, handshake_timeout=0.5)
        async with server:
            started = loop.time()
            first = await asyncio.open_connection("127.0.0.1", port)
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
            second_start = loop.time()
            second = await asyncio.open_connection("127.0.0.1", port)
            assert await first[0].read() == b""
            assert loop.time() - started >= 0.45  # the loop's clock, rounded by the timer's granularity
            assert await second[0].read() == b""
            assert loop.time() - second_start >= 0.45
            await stream.write(b"still here")  # the completed handshake was not dropped with them
            assert await stream.read() == b"echo:still here"
            await stream.close()
            for _, writer in (first, second):
                writer.close()
                await writer.wait_closed()

    with caplog.at_level(logging.INFO, logger="gpchannel.io.tls"):
        run(main())
    assert caplog.text.count("timed out") == 2


def test_handler_errors_are_logged_and_the_stream_closed(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(stream: PskStream) -> None:
        raise RuntimeError("handler bug")

    async def main() -> None:
        server, port = await serving(handler)
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
            assert await stream.read() == b""  # close_notify from the server's cleanup
            await stream.close()

    with caplog.at_level(logging.INFO, logger="gpchannel.io.tls"):
        run(main())
    assert "handler bug" in caplog.text


def test_client_errors() -> None:
    async def main() -> None:
        server, port = await serving(echo_once)
        async with server:
            with pytest.raises(TlsError) as info:
                await open_psk_stream("127.0.0.1", port, PskClientContext(b"stranger", PSK))
            assert info.value.alert == "unknown_psk_identity"
        with pytest.raises(TransportError):
            await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK), timeout=5)
        # a server that accepts TCP but never answers the ClientHello
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        async with silent:
            silent_port = silent.sockets[0].getsockname()[1]
            with pytest.raises(TlsError, match="did not complete"):
                await open_psk_stream("127.0.0.1", silent_port, PskClientContext(IDENTITY.encode(), PSK), timeout=0.5)

    run(main())


def test_truncation_is_reported_to_the_reader() -> None:
    async def handler(stream: PskStream) -> None:
        await stream.write(b"partial answer")
        stream._transport.close()  # TCP close without close_notify

    async def main() -> None:
        server, port = await serving(handler)
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
            assert await stream.read(7) == b"partial"  # max_bytes honoured, the rest kept
            assert await stream.read() == b" answer"
            with pytest.raises(TlsError, match="truncation"):
                await stream.read()
            await stream.close()

    run(main())


def test_close_does_not_hang_on_a_peer_that_stops_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that never reads: our writes fill the socket buffers; close() aborts after CLOSE_TIMEOUT instead
    of waiting forever for the buffer to drain."""
    from gpchannel.io import tls_stream

    monkeypatch.setattr(tls_stream, "CLOSE_TIMEOUT", 0.5)
    done: list[str] = []
    closed = asyncio.Event()

    async def handler(stream: PskStream) -> None:
        chunk = bytes(65536)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while True:  # until backpressure blocks: the client does not read
                    await stream.write(chunk)
        await stream.close()
        done.append("closed")
        closed.set()

    async def main() -> None:
        server, port = await serving(handler)
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
            async with asyncio.timeout(20):
                await closed.wait()
            stream._transport.abort()

    run(main())
    assert done == ["closed"]


@pytest.mark.openssl
def test_small_records_to_openssl_client(tmp_path: Path) -> None:
    """max_record_plaintext=256 (cards with small TLS buffers, ota-notes B.1): a 5000-byte answer goes out in
    256-byte records and openssl reassembles it exactly."""
    answer = bytes(range(33, 123)) * 55 + b"\n"  # 4951 printable bytes and a newline

    async def handler(stream: PskStream) -> None:
        await stream.read()
        await stream.write(answer)

    async def main() -> None:
        msgfile = tmp_path / "msg.txt"
        server, port = await serving(handler, PskTlsPolicy(max_record_plaintext=256))
        async with server:
            result = await s_client(
                port,
                psk=PSK,
                identity=IDENTITY,
                cipher=SUITES[1],
                extra=("-quiet", "-msg", "-msgfile", str(msgfile)),
                stdin=b"go\n",
            )
        assert result.returncode == 0, result.output
        assert result.stdout == answer
        # -msg prints "<<< ... RecordHeader" then the 5 header bytes for every record received
        lines = msgfile.read_text().splitlines()
        sizes = [
            int(nxt.split()[3] + nxt.split()[4], 16)
            for line, nxt in itertools.pairwise(lines)
            if line.startswith("<<<") and "RecordHeader" in line and nxt.split()[0] == "17"
        ]
        assert len(sizes) == 20, sizes  # ceil(4952 / 256) application-data records
        assert max(sizes) == 256 + 8 + 16  # GCM: explicit nonce + tag around 256 plaintext bytes

    run(main())


def test_many_concurrent_clients() -> None:
    async def main() -> None:
        server, port = await serving(echo_once)
        async with server:

            async def one(n: int) -> bytes:
                stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
                await stream.write(b"client %d" % n)
                data = await stream.read()
                await stream.close()
                return data

            answers = await asyncio.gather(*(one(n) for n in range(40)))
        assert answers == [b"echo:client %d" % n for n in range(40)]

    run(main())


def test_concurrent_reads_take_turns_in_order() -> None:
    """Reads that overlap are served in the order they were called; a read cancelled while it waits for its turn
    leaves the others their data."""
    got: list[bytes] = []

    async def handler(stream: PskStream) -> None:
        first = asyncio.ensure_future(stream.read())
        dropped = asyncio.ensure_future(stream.read())
        second = asyncio.ensure_future(stream.read())
        await asyncio.sleep(0)  # all three are queued now
        dropped.cancel()
        got.append(await first)
        await stream.write(b"ack")  # the client sends its second record only now: no two records in one read
        got.append(await second)
        await stream.write(b"done")

    async def main() -> None:
        server = await serve_psk(handler, "127.0.0.1", 0, PskServerContext(KEYS.get))
        port = server.sockets[0].getsockname()[1]
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY.encode(), PSK))
            await stream.write(b"one")
            assert await stream.read() == b"ack"
            await stream.write(b"two")
            assert await stream.read() == b"done"
            await stream.close()

    run(main())
    assert got == [b"one", b"two"]
