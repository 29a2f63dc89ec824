"""The server's event loop (io/event_loop.py): a PSK-TLS session runs on it as on asyncio's own."""

from __future__ import annotations

import asyncio

from gpchannel.io import event_loop
from gpchannel.io.tls_psk import PskClientContext, PskServerContext
from gpchannel.io.tls_stream import PskStream, open_psk_stream, serve_psk

PSK = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
IDENTITY = b"card-0001"


def test_a_psk_tls_session_on_the_server_loop() -> None:
    async def handler(stream: PskStream) -> None:
        await stream.write(b"echo:" + await stream.read())

    async def main() -> tuple[bytes, str]:
        server = await serve_psk(handler, "127.0.0.1", 0, PskServerContext({IDENTITY: PSK}.get))
        port = server.sockets[0].getsockname()[1]
        async with server:
            stream = await open_psk_stream("127.0.0.1", port, PskClientContext(IDENTITY, PSK), timeout=20)
            await stream.write(b"hi")
            answer = await stream.read()
            await stream.close()
        return answer, type(asyncio.get_running_loop()).__module__

    answer, loop_module = event_loop.run(main())
    assert answer == b"echo:hi"
    assert loop_module.startswith("uvloop")  # the server extra installs it
