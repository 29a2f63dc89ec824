"""A fleet's cards committing through the fleet journal (group commit), SIGKILLed at any point, checkpoints
included: every card restarts whole, at the state of just before or just after its last packet, and never
behind a PoR that left (its counter is durable before its answer). After a clean close the cards' own state
directories hold everything, readable by the single-card store. ``GPCHANNEL_KILLS`` sets the number of kills
(default 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gpchannel.emulator.fleet import Fleet, generate_fleet
from gpchannel.io.fleet_journal import FLEET_JOURNAL_FILE
from gpchannel.io.store import DirectoryStore

CARDS = 24

_CHILD = textwrap.dedent(
    """
    import sys, threading
    sys.path.insert(0, ".")
    from gpchannel.codec.apdu import CommandApdu
    from gpchannel.emulator.bridge import deliver_tpdu
    from gpchannel.emulator.fleet import Fleet
    from gpchannel.emulator.fleet_handsets import FleetHandsets
    from gpchannel.ota import CipherAlgorithm, Kic, Kid, MacAlgorithm, Scp80KeySet, Spi, encode_compact
    from gpchannel.ota import secure_command
    from gpchannel.ota.packet import SMS_COMMAND_UDH

    SPI = Spi.from_bytes(bytes.fromhex("1619"))
    KIC, KID = Kic.for_cipher(CipherAlgorithm.AES_CBC, 1), Kid.for_mac(MacAlgorithm.AES_CMAC, 1)
    DATA = encode_compact([CommandApdu.from_bytes(bytes.fromhex("80CA004200"))])
    fleet = Fleet.load(sys.argv[1])
    fleet.checkpoint_bytes = 6000  # checkpoints all the time, so that kills land in them too
    handsets = FleetHandsets(fleet)
    out = threading.Lock()
    print("ready", flush=True)

    def drive(cards):
        counters = {card.iccid: fleet.ota_counter(card) for card in cards}
        while True:
            for card in cards:
                n = counters[card.iccid] + 1
                keys = Scp80KeySet(card.kic, card.kid, cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
                packet = secure_command(DATA, spi=SPI, kic=KIC, kid=KID, tar=bytes(3), counter=n, keyset=keys)
                sms = deliver_tpdu("0", 0, 0x40, 0x7F, 0xF6, SMS_COMMAND_UDH + packet.to_bytes())
                outcome = handsets.deliver(card.msisdn, sms)
                activity = handsets.activity[card.iccid]
                if not outcome.delivered or activity.counter != n or set(activity.statuses) != {0}:
                    print("refused", card.iccid, n, activity.statuses, flush=True)
                    raise SystemExit(1)
                counters[card.iccid] = n
                with out:
                    sys.stdout.write(f"por {card.iccid} {n}\\n")  # this PoR has left the bridge (one write: a
                    sys.stdout.flush()  # print() of several arguments may reach the pipe in pieces)

    threads = [threading.Thread(target=drive, args=(fleet.cards[i::8],), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


def test_sigkill_leaves_every_card_old_or_new_and_never_behind_its_por(tmp_path: Path) -> None:
    kills = int(os.environ.get("GPCHANNEL_KILLS", "12"))
    root = Path(__file__).resolve().parents[2]
    fleet = generate_fleet(tmp_path / "fleet", CARDS)
    answered: dict[str, int] = {}
    started: dict[str, int] = {}
    for round_ in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(fleet.directory)], cwd=root, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        for _ in range(5 + 23 * round_ % 60):  # kill after a varying number of PoRs (the child goes on meanwhile)
            line = child.stdout.readline().split()
            assert line and line[0] == "por", f"the child stopped: {line}"
            answered[line[1]] = max(answered.get(line[1], 0), int(line[2]))
        child.send_signal(signal.SIGKILL)
        for rest in child.stdout:  # PoRs printed before the kill landed; a line the kill cut short is not one
            if rest.startswith("por ") and rest.endswith("\n") and len(rest.split()) == 3:
                _, iccid, n = rest.split()
                answered[iccid] = max(answered.get(iccid, 0), int(n))
        child.wait()
        loaded = Fleet.load(fleet.directory)  # read only: the journal file as the kill left it
        for card in loaded.cards:
            counter = loaded.ota_counter(card)
            assert counter >= answered.get(card.iccid, 0), f"{card.iccid}: a PoR left before its counter was durable"
            # Ahead of the last PoR (or of where the round started) by the one packet in flight at most.
            assert counter <= max(answered.get(card.iccid, 0), started.get(card.iccid, 0)) + 1
            started[card.iccid] = counter
    assert sum(answered.values()) > kills, "the kills did not let the cards work"
    final = Fleet.load(fleet.directory)
    counters = {card.iccid: final.ota_counter(card) for card in final.cards}
    final.journal()
    final.close()  # a clean close folds the journal into the cards' directories
    assert (fleet.directory / FLEET_JOURNAL_FILE).stat().st_size == 0
    for card in final.cards:
        state = DirectoryStore(final.state_dir(card)).load()
        if counters[card.iccid]:
            assert state is not None
            keysets = state.ota["ota"]["keysets"]
            assert [k["counter"] for k in keysets if k["kvn"] == final.settings.kvn] == [counters[card.iccid]]
