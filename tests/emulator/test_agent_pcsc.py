"""The SCP81 trigger through the real PC/SC stack: the emulator as ``gpchannel card serve`` runs it
(emulator.app.serve on a vpcd slot), an SMS-PP ENVELOPE carrying the SCP80-secured tag-81 trigger sent with
pyscard -> pcscd -> vpcd, and the admin session that the emulator then runs in the background against a RAS on
127.0.0.1 (the in-test RAS of test_agent.py) while the reader keeps talking to the card."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from gpchannel.io.pcsc import PcscTransport
from gpchannel.io.store import DirectoryStore
from gpchannel.io.tls_psk import PskServerContext
from gpchannel.io.tls_stream import serve_psk
from gpchannel.ota import CommandScript
from tests.card.harness import profile_text
from tests.card.test_ota_handler import OTA
from tests.emulator.pyscard_user import served
from tests.emulator.test_agent import IDENTITY, PSK, SSD, MiniRas, Script, envelopes, install_ssd, scp81_section

pytestmark = pytest.mark.pcsc


def test_sms_trigger_through_pcscd_starts_the_session(pcscd_readers: list[str], tmp_path: Path) -> None:
    ras = MiniRas([Script(CommandScript.of([install_ssd()]).to_bytes())])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    context = PskServerContext(lambda identity: PSK if identity == IDENTITY else None)
    server = asyncio.run_coroutine_threadsafe(serve_psk(ras.handle, "127.0.0.1", 0, context), loop).result(10)
    port = server.sockets[0].getsockname()[1]
    profile = tmp_path / "card.toml"
    profile.write_text(profile_text() + OTA + scp81_section(f"127.0.0.1:{port}"))
    state = tmp_path / "state"
    try:
        with served(pcscd_readers, state, profile) as card, PcscTransport(card.reader, timeout=20) as pcsc:
            for apdu in envelopes(bytes.fromhex("8100"), 1):
                sw = pcsc.transmit_raw(apdu)[-2:]
                assert sw[0] in (0x90, 0x61, 0x91), sw.hex()
            # The reader keeps working while the session runs (SELECT the ISD).
            assert pcsc.transmit_raw(bytes.fromhex("00A4040008A000000151000000"))[-2:] == b"\x90\x00"
            done = asyncio.run_coroutine_threadsafe(_ended(ras), loop)
            done.result(60)
        asyncio.run_coroutine_threadsafe(ras.idle(), loop).result(10)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert [r.sw for r in ras.results(0).responses] == [0x9000]
    assert ras.requests[0].first and ras.requests[0].agent_from == "//se-id/iccid/8988211000000000001"
    on_disk = DirectoryStore(state).load()
    assert on_disk is not None and on_disk.application(SSD) is not None


async def _ended(ras: MiniRas) -> None:
    """Until the card's response to the script reached the RAS (the session's last request)."""
    await ras.until(lambda: 0 in ras.responses)
