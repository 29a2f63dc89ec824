"""The asyncio protocol under the PSK-TLS streams (io/tls_protocol.py): which flights may skip the thread hop of
``lookup_in_thread``, and reading pausing while plaintext waits for a reader."""

from __future__ import annotations

import asyncio

from gpchannel.io.tls_protocol import MAX_BUFFERED, _lone_client_hello
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
