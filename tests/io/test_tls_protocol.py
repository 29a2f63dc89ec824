"""The asyncio protocol under the PSK-TLS streams (io/tls_protocol.py): which flights may skip the thread hop of
``lookup_in_thread``, and reading pausing while plaintext waits for a reader."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gpchannel.errors import TlsError
from gpchannel.io.tls_protocol import MAX_BUFFERED, _lone_client_hello, psk_identity
from gpchannel.io.tls_psk import PskClientContext, PskServerContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream, serve_psk

PSK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
IDENTITY = b"card-0001"


def test_only_a_lone_client_hello_record_skips_the_thread() -> None:
    """RFC 4279 2: the PSK identity travels in the ClientKeyExchange, so a flight of exactly one ClientHello
    record cannot reach the lookup; anything else (more records, a fragment, another message) may."""
    hello = PskClientContext(IDENTITY, PSK).connection()
    hello.start()
    record = hello.data_to_send()
    assert _lone_client_hello(record)
    assert not _lone_client_hello(record[:-1])  # a fragment
    assert not _lone_client_hello(record + record[:5])  # pipelined bytes after it
    assert not _lone_client_hello(b"\x16\x03\x03\x00\x04\x10\x00\x00\x00")  # a ClientKeyExchange
    assert not _lone_client_hello(b"")


def test_reading_pauses_while_plaintext_waits_and_resumes_for_the_reader() -> None:
    payload = bytes(3 * MAX_BUFFERED)
    got = bytearray()
    done = asyncio.Event()

    async def handler(stream: PskStream) -> None:
        await asyncio.sleep(0.2)  # let the client fill the buffers: the server stops reading from the socket
        while len(got) < len(payload):
            chunk = await stream.read()
            if not chunk:
                break
            got.extend(chunk)
        done.set()

    async def main() -> None:
        server = await serve_psk(handler, "127.0.0.1", 0, PskServerContext({IDENTITY: PSK}.get))
        port = server.sockets[0].getsockname()[1]
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY, PSK))
            await stream.write(payload)
            async with asyncio.timeout(30):
                await done.wait()
            await stream.close()

    asyncio.run(main())
    assert bytes(got) == payload


def _second_flight(identity: bytes = IDENTITY) -> bytes:
    """The client's ClientKeyExchange, ChangeCipherSpec and Finished, as two engines in memory produce them."""
    client = PskClientContext(identity, PSK).connection()
    server = PskServerContext({identity: PSK}.get).connection()
    client.start()
    server.receive(client.data_to_send())
    client.receive(server.data_to_send())
    return client.data_to_send()


def test_the_identity_is_read_from_a_whole_client_key_exchange_only() -> None:
    flight = _second_flight()
    assert psk_identity(flight) == IDENTITY
    assert psk_identity(flight[:12]) is None  # the record is not complete
    assert psk_identity(_second_flight(b"x" * 128)) == b"x" * 128
    assert psk_identity(b"\x16\x03\x03\x00\x06\x10\x00\x00\x02\x00\x00") is None  # an empty identity
    assert psk_identity(b"\x16\x03\x03\x00\x07\x10\x00\x00\x03\x00\x01\x00") is None  # a NUL in it
    assert psk_identity(b"\x16\x03\x03\x00\x08\x10\x00\x00\x04\x00\x01ab") is None  # more than the identity
    assert psk_identity(b"\x16\x03\x03\x00\x07\x10\x00\x00\x03\x00\x02a") is None  # the identity runs over
    hello = PskClientContext(IDENTITY, PSK).connection()
    hello.start()
    assert psk_identity(hello.data_to_send()) is None
    assert psk_identity(b"") is None


@pytest.mark.parametrize("outcome", ["psk", "unknown", "error"])
def test_a_prefetched_psk_is_the_one_the_handshake_uses(outcome: str) -> None:
    """With a context's prefetch, the lookup_in_thread listener awaits it on the loop for the identity read from
    the ClientKeyExchange: no thread, and the blocking lookup is not called."""
    awaited: list[bytes] = []
    threads: list[int] = []

    def lookup(identity: bytes) -> bytes | None:
        raise AssertionError("the blocking lookup must not run")

    async def prefetch(identity: bytes) -> bytes | None:
        awaited.append(identity)
        threads.append(threading.get_ident())
        if outcome == "error":
            raise RuntimeError("the store is down")
        return PSK if outcome == "psk" else None

    async def handler(stream: PskStream) -> None:
        await stream.write(await stream.read())

    async def main() -> bytes:
        context = PskServerContext(lookup, prefetch=prefetch)
        server = await serve_psk(handler, "127.0.0.1", 0, context, lookup_in_thread=True)
        async with server:
            port = server.sockets[0].getsockname()[1]
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY, PSK))
            await stream.write(b"ping")
            echo = await stream.read()
            await stream.close()
            return echo

    if outcome == "psk":
        assert asyncio.run(main()) == b"ping"
    else:
        with pytest.raises(TlsError) as info:
            asyncio.run(main())
        assert info.value.alert == ("unknown_psk_identity" if outcome == "unknown" else "internal_error")
    assert awaited == [IDENTITY] and threads == [threading.get_ident()]


def _prefetching_server(prefetch: object) -> PskServerContext:
    def lookup(identity: bytes) -> bytes | None:
        return PSK if identity == IDENTITY else None

    return PskServerContext(lookup, prefetch=prefetch)  # type: ignore[arg-type]


def test_no_identity_is_looked_up_ahead_before_a_client_hello_was_answered() -> None:
    """A ClientKeyExchange sent first (no ClientHello before it) never reaches the prefetch: a client cannot make
    the store look up identities of its choosing before its handshake got that far."""
    awaited: list[bytes] = []

    async def prefetch(identity: bytes) -> bytes | None:
        awaited.append(identity)
        return PSK

    async def handler(stream: PskStream) -> None:
        await stream.read()

    async def main() -> bytes:
        server = await serve_psk(handler, "127.0.0.1", 0, _prefetching_server(prefetch), lookup_in_thread=True)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_second_flight())
            async with asyncio.timeout(30):
                answer = await reader.read()  # the server's alert, then its close
            writer.close()
            return answer

    answer = asyncio.run(main())
    assert answer[:1] == b"\x15"  # an alert record
    assert awaited == []


def test_a_cancelled_prefetch_fails_the_handshake_at_once() -> None:
    async def prefetch(identity: bytes) -> bytes | None:
        raise asyncio.CancelledError

    async def handler(stream: PskStream) -> None:
        await stream.read()

    async def main() -> None:
        server = await serve_psk(
            handler, "127.0.0.1", 0, _prefetching_server(prefetch), lookup_in_thread=True, handshake_timeout=600
        )
        async with server:
            port = server.sockets[0].getsockname()[1]
            async with asyncio.timeout(30):  # not the handshake timeout: the failure is at once
                await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY, PSK))

    with pytest.raises(TlsError) as info:
        asyncio.run(main())
    assert info.value.alert == "internal_error"
