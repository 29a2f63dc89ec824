"""`make bench`: every benchmark, each figure beside a baseline measured in the same process."""

from __future__ import annotations

import argparse
import sys

from bench import fleet, ota_packets, pcsc, scp, tls
from bench.timing import Comparison
from gpchannel.errors import TransportError

_aims: list[tuple[str, bool]] = []


def _show(line: Comparison) -> None:
    print(line.line())
    if line.aim is not None:
        _aims.append((line.name, line.met))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per figure")
    parser.add_argument("--pcsc-apdus", type=int, default=2000, help="APDUs per PC/SC figure")
    parser.add_argument("--fleet-cards", type=int, default=600, help="cards in the fleet bridge figure")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure is below its aim")
    args = parser.parse_args()
    print("== secure messaging, bytes in and out, vs raw cryptography calls (sans-I/O core) ==")
    for line in scp.run(args.seconds):
        _show(line)
    print("== SCP80 OTA packets vs raw cryptography calls (sans-I/O core) ==")
    for line in ota_packets.run(args.seconds):
        _show(line)
    print("== Fleet bridge: one OTA packet per card (bench/fleet.py) ==")
    fleet_line = fleet.run(args.fleet_cards)
    print(fleet_line)
    _aims.append(("fleet bridge", fleet_line.endswith(": met")))
    print("== PSK-TLS handshakes: serve_psk vs openssl s_server (same asyncio client, sequential; wall clock, then")
    print("   per server CPU second) ==")
    try:
        for row in tls.run(args.seconds):
            print(row.line())
            if isinstance(row, tls.CpuLine):
                _aims.append((f"PSK-TLS server CPU, {row.cipher}", row.ratio >= tls.CPU_AIM))
    except TransportError as exc:
        print(f"skipped: {exc}")
    print("== PC/SC: pyscard -> pcscd -> vpcd -> card (emulator vs null card, same run) ==")
    try:
        pcsc_lines, how = pcsc.run(args.pcsc_apdus)
    except TransportError as exc:
        print(f"skipped: pcscd is not available ({exc}); start it with scripts/pcscd.sh start")
    else:
        print(f"({how})")
        for line in pcsc_lines:
            _show(line)
    print("== SCP80 packets: keys in the DB vs in a PKCS#11 token (bench/keys.py) ==")
    from bench import keys

    try:
        print("\n".join(line.line() for line in keys.run(args.seconds)))
    except TransportError as exc:
        print(f"skipped: {exc}")
    print("== SCP81: card agents -> gpchannel server over PSK-TLS (bench/scp81.py) ==")
    from bench import scp81

    try:
        figures = scp81.run()
        print("\n".join(figures.lines()))
        _aims.append(("SCP81 admin sessions/s", figures.rate >= scp81.RATE_AIM))
        _aims.append(("SCP81 exactly once", figures.exactly_once))
    except TransportError as exc:
        print(f"skipped: {exc}")
    print("== Campaigns: SCP80 to the bridge (sink), SCP81 to agents; SQLite, PostgreSQL x 1/2/4 (bench/campaign) ==")
    from bench import campaign

    for run in campaign.main([]):
        name = f"{run.transport} campaign, {run.store} x {run.processes}"
        if run.aim is not None:
            _aims.append((name, run.rate >= run.aim))
        _aims.append((f"{name}: exactly once", run.once))
    below = [name for name, met in _aims if not met]
    print(f"== aims: {len(_aims) - len(below)} met, {len(below)} below aim ==")
    for name in below:
        print(f"below aim: {name}")
    if below and args.check:
        sys.exit(1)


if __name__ == "__main__":
    main()
