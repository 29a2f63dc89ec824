"""`make bench`: every benchmark, each figure beside a baseline measured in the same process."""

from __future__ import annotations

import argparse

from bench import ota_packets, pcsc, scp, tls
from gpchannel.errors import TransportError


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per figure")
    parser.add_argument("--pcsc-apdus", type=int, default=2000, help="APDUs per PC/SC figure")
    args = parser.parse_args()
    print("== secure messaging (sans-I/O core) ==")
    for line in scp.run(args.seconds):
        print(line.line())
    print("== SCP80 OTA packets (sans-I/O core) ==")
    for line in ota_packets.run(args.seconds):
        print(line.line())
    print("== PSK-TLS handshakes: serve_psk vs openssl s_server (same asyncio client, sequential; wall clock, then")
    print("   per server CPU second) ==")
    try:
        print("\n".join(row.line() for row in tls.run(args.seconds)))
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
            print(line.line())
    print("== SCP80 packets: keys in the DB vs in a PKCS#11 token (bench/keys.py) ==")
    from bench import keys

    try:
        print("\n".join(line.line() for line in keys.run(args.seconds)))
    except TransportError as exc:
        print(f"skipped: {exc}")
    print("== SCP81: card agents -> gpchannel server over PSK-TLS (bench/scp81.py) ==")
    from bench import scp81

    try:
        print("\n".join(scp81.run().lines()))
    except TransportError as exc:
        print(f"skipped: {exc}")
    print("== Campaigns: SCP80 to the bridge (sink), SCP81 to agents; SQLite, PostgreSQL x 1/2/4 (bench/campaign) ==")
    from bench import campaign

    campaign.main([])


if __name__ == "__main__":
    main()
