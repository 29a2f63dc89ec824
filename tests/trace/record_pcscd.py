"""Record real pcscd APDU logs of gpchannel's host talking to the emulator through vpcd (run by hand, as root).

Not a test: it produced tests/vectors/trace/pcscd-emulator-*.log, which tests/trace/test_pcscd_log.py decodes. It
starts a private pcscd (``--foreground --apdu --debug``) with its own vpcd reader configuration, so it must run in
a mount namespace of its own, where /run/pcscd is a fresh tmpfs (the machine's pcscd is left alone)::

    unshare -m bash -c 'mount -t tmpfs tmpfs /run/pcscd && .venv/bin/python -m tests.trace.record_pcscd OUTDIR'

For each protocol (SCP02 i=55 level 03, SCP03 i=70 level 33), an emulated card (gpchannel.card, from the test
profile, the GlobalPlatform test key 40..4F) is served on the vpcd slot; the host selects the ISD, opens the
secure channel through pcscd and sends GET STATUS / GET DATA commands. Then one session with a wrong key, which
the host abandons after INITIALIZE UPDATE (the card cryptogram does not verify), for the key doctor.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpchannel.card.dispatcher import Card
from gpchannel.codec.apdu import CommandApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import AuthenticationError
from gpchannel.host.session import CardSession, ChannelOptions
from gpchannel.io.vpcd import VpcdThread
from gpchannel.scp.common import SecurityLevel
from tests.card.harness import DEFAULT_KEY, ISD_AID, make_card

PORT = 0x8D10
CONF = f"""FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x{PORT:04X}
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    0x{PORT:04X}
"""


class CardAdapter:
    """The emulator as a vpcd VirtualCard."""

    def __init__(self, card: Card) -> None:
        self.card = card

    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> None:
        self.card.reset()

    def power_off(self) -> None:
        self.card.reset()

    def reset(self) -> None:
        self.card.reset()

    def transmit(self, apdu: bytes) -> bytes:
        return self.card.process(apdu)


def _session(reader: str, scp: str, level: int, key: bytes) -> None:
    from gpchannel.io.transport import PcscTransport

    counter = iter(range(1, 1000))
    transport = PcscTransport(reader)
    try:
        session = CardSession(transport, random=lambda n: bytes((next(counter) + k) & 0xFF for k in range(n)))
        session.transmit_plain(CommandApdu(0x00, 0xA4, 0x04, 0x00, ISD_AID, le=256))
        key_type = KeyType.AES if scp == "03" else KeyType.DES3
        options = ChannelOptions(StaticKeys.single(key, 0x30, key_type), level=SecurityLevel(level), kvn=0x30)
        try:
            session.open_secure_channel(options, aid=ISD_AID)
        except AuthenticationError:
            return
        session.transmit(CommandApdu(0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", le=256))
        session.transmit(CommandApdu(0x80, 0xF2, 0x40, 0x02, b"\x4f\x00", le=256))
        session.transmit(CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256))
        session.transmit(CommandApdu(0x80, 0xCA, 0x00, 0xE0, le=256))
    finally:
        transport.close()


def record(out_dir: Path, scp: str, i: str, level: int) -> Path:
    work = Path(tempfile.mkdtemp(prefix="gptrace-"))
    (work / "conf").mkdir()
    (work / "conf" / "vpcd").write_text(CONF)
    log = out_dir / f"pcscd-emulator-scp{scp}.log"
    card, _ = make_card(scp, i)
    with log.open("w") as sink:
        daemon = subprocess.Popen(
            ["pcscd", "--foreground", "--apdu", "--debug", "-c", str(work / "conf")], stdout=sink, stderr=sink
        )
        try:
            with VpcdThread(CardAdapter(card), port=PORT):
                from gpchannel.io.pcsc import list_readers

                deadline = time.monotonic() + 15
                readers: list[str] = []
                while time.monotonic() < deadline and not readers:
                    time.sleep(0.5)
                    try:
                        readers = [r for r in list_readers() if "Virtual PCD" in r]
                    except Exception:  # the daemon is still starting
                        continue
                if not readers:
                    raise SystemExit("pcscd lists no Virtual PCD reader")
                time.sleep(1.0)  # vpcd connects and the card is powered
                _session(readers[0], scp, level, DEFAULT_KEY)
                _session(readers[0], scp, level, bytes(16))
        finally:
            daemon.terminate()
            daemon.wait(10)
    return log


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    print(record(out_dir, "02", "55", 0x03))
    print(record(out_dir, "03", "70", 0x33))


if __name__ == "__main__":
    main()
