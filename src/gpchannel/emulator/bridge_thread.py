"""A handset bridge serving on its own event loop in a background thread, for synchronous callers (tests,
benchmarks, scripts): :class:`BridgeThread`."""

from __future__ import annotations

import asyncio
import threading

from gpchannel.emulator.bridge import HandsetBridge

__all__ = ["BridgeThread"]


class BridgeThread:
    """A :class:`~gpchannel.emulator.bridge.HandsetBridge` serving on its own event loop in a background thread (tests,
    benchmarks and scripts that drive the bridge from synchronous code)::

        with BridgeThread(HandsetBridge(None, port=port, fleet=FleetHandsets(fleet))) as bridge:
            ...   # ESMEs bind to 127.0.0.1:port

    :meth:`start` returns once the bridge listens (or raises what listening raised); :meth:`stop` finishes the
    queued messages and stops listening.
    """

    def __init__(self, bridge: HandsetBridge, *, timeout: float = 30.0) -> None:
        self.bridge = bridge
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="handset-bridge", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                await self.bridge.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self.bridge.serve(self._stop)

        asyncio.run(serve())

    def start(self) -> BridgeThread:
        self._thread.start()
        if not self._ready.wait(self.timeout):
            raise TimeoutError("the handset bridge did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(self.timeout)
        if self.bridge.fleet is not None and not self._thread.is_alive():
            self.bridge.fleet.close()

    def __enter__(self) -> BridgeThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
