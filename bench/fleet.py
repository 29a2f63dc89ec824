"""The fleet bridge's card side: one SCP80 OTA packet (a RAM GET DATA, AES-CBC + AES-CMAC, counter higher) to
each card of a fleet that was never used, as the handset bridge in fleet mode hands them over
(``FleetHandsets.deliver`` from its worker threads, ``FLEET_WORKERS`` by default): the card's state is opened
(built from the fleet's profile and its own keys), the packet verified, its counter and state written durably
(the fleet journal's group commit), and its PoR built; the journal is folded into the cards' state directories
at the end, outside the timed part (its time is printed). The figure is cards per second; the aim is 1,000 or more.

Run alone: ``python -m bench.fleet [CARDS]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gpchannel.codec.apdu import CommandApdu
from gpchannel.emulator.bridge import FLEET_WORKERS, deliver_tpdu
from gpchannel.emulator.fleet import FleetCard, generate_fleet
from gpchannel.emulator.fleet_handsets import FleetHandsets
from gpchannel.io.collector import server_collector
from gpchannel.ota import CipherAlgorithm, Kic, Kid, MacAlgorithm, Scp80KeySet, Spi, encode_compact, secure_command
from gpchannel.ota.packet import SMS_COMMAND_UDH

__all__ = ["AIM", "run"]

AIM = 1000.0
SPI = Spi.from_bytes(bytes.fromhex("1619"))
KIC, KID = Kic.for_cipher(CipherAlgorithm.AES_CBC, 1), Kid.for_mac(MacAlgorithm.AES_CMAC, 1)
RAM = bytes.fromhex("000000")
GET_DATA_IIN = CommandApdu.from_bytes(bytes.fromhex("80CA004200"))


def _short_message(card: FleetCard) -> bytes:
    keys = Scp80KeySet(card.kic, card.kid, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
    data = encode_compact([GET_DATA_IIN])
    packet = secure_command(data, spi=SPI, kic=KIC, kid=KID, tar=RAM, counter=1, keyset=keys)
    return SMS_COMMAND_UDH + packet.to_bytes()


def run(cards: int = 600, workers: int = FLEET_WORKERS) -> str:
    """One line: cards/s of one packet per card, and whether it meets the aim."""
    with tempfile.TemporaryDirectory(prefix="gpchannel-bench-fleet-") as tmp:
        fleet = generate_fleet(Path(tmp) / "fleet", cards)
        handsets = FleetHandsets(fleet)
        jobs = [(card.msisdn, deliver_tpdu("0", 0, 0x40, 0x7F, 0xF6, _short_message(card))) for card in fleet.cards]
        with server_collector():  # as `bridge --fleet` runs once its fleet is loaded (io/collector.py)
            start = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                outcomes = list(pool.map(lambda job: handsets.deliver(*job), jobs))
            elapsed = time.perf_counter() - start
        accepted = handsets.totals().accepted
        journal = fleet.journal()
        group = journal.lines / max(journal.flushes, 1)
        start = time.perf_counter()
        handsets.close()
        folded = time.perf_counter() - start
    if accepted != cards or not all(o.delivered for o in outcomes):
        return f"fleet bridge: only {accepted} of {cards} cards accepted their packet (a bug)"
    per_second = cards / elapsed
    verdict = "met" if per_second >= AIM else "below aim"
    return (
        f"{'fleet bridge: one OTA packet per new card':<48} {per_second:>10.0f} cards/s   "
        f"({cards} cards, {workers} workers, durable; {group:.1f} cards per flush, journal folded into the cards' "
        f"directories at close in {folded * 1000:.0f} ms)   aim >= {AIM:.0f}: {verdict}"
    )


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 600))
